"""Per-packet output: one record per packet rather than per flow.

- ``lines``: tcpdump-like text lines and JSON lines (``portlabel packets``).
- ``labels``: each packet's flow uid and IANA label, as fields of those lines and as
  the comments of a pcapng copy (``--label``, ``-o``).
- ``pcapng_comments``: the pcapng copy of a capture with a comment per packet.

Flow output (one record per flow) is ``portlabel.writers``.
"""
