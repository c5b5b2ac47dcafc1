"""Test helpers: build RawBatches from frame bytes or from a capture file.

Capture files are read with portlabel's own reader when it is present, else through
scapy's raw readers (bytes + metadata, no dissection), so the decoder tests do not depend
on which reader landed first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from portlabel.capture.batch import RawBatch


def raw_batch(frames: list[bytes], linktypes: list[int] | int) -> RawBatch:
    """One RawBatch holding ``frames`` back to back (each with its link type)."""
    n = len(frames)
    lengths = np.array([len(f) for f in frames], dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if n else lengths
    buf = np.frombuffer(b"".join(frames), dtype=np.uint8).copy()
    lt = np.broadcast_to(np.asarray(linktypes, dtype=np.uint16), (n,)).copy()
    return RawBatch(
        buf=buf,
        offset=offset,
        caplen=lengths.astype(np.uint32),
        wirelen=lengths.astype(np.uint32),
        ts_ns=np.zeros(n, dtype=np.int64),
        linktype=lt,
        iface=np.zeros(n, dtype=np.uint16),
        frame=np.arange(n, dtype=np.int64),
    )


def _scapy_frames(path: Path) -> tuple[list[bytes], list[int]]:
    from scapy.utils import RawPcapReader

    frames, linktypes = [], []
    with RawPcapReader(str(path)) as reader:
        for data, meta in reader:
            frames.append(bytes(data))
            linktypes.append(getattr(meta, "linktype", None) or reader.linktype)
    return frames, linktypes


def read_capture(path: Path) -> RawBatch:
    """All frames of one capture file as a single RawBatch."""
    try:
        from portlabel.capture.reader import open_capture
    except ImportError:
        frames, linktypes = _scapy_frames(path)
        return raw_batch(frames, linktypes)
    batches = list(open_capture(path).batches())
    if len(batches) == 1:
        return batches[0]
    frames = [b.frame_bytes(i) for b in batches for i in range(len(b))]
    linktypes = [int(t) for b in batches for t in b.linktype]
    return raw_batch(frames, linktypes)
