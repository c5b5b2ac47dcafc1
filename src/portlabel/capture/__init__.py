"""Capture input: files (and pipes) in, columnar packet batches out.

- ``reader``: one capture file, recognised by content (pcap, pcapng; gzip/zstd/xz/bz2),
  read in ``RawBatch``es; ``pcap``, ``pcapng``, ``recordwalk``, ``cursor`` and
  ``compression`` are its format layers.
- ``inputs``: several files read as one capture (``CaptureInputs``), the one place that
  reports unreadable files, damage warnings and progress.
- ``backends``: the interchangeable ways of turning a file into ``PacketBatch``es
  (native, scapy, tshark).
- ``decode`` and the per-layer modules (``linklayer``, ``network``, ``transport``,
  ``tunnels``, ``nextlayer``, ``headers``, ``plaindecode``): ``RawBatch`` ->
  ``PacketBatch``, vectorised; ``batch`` declares both batch types.
"""
