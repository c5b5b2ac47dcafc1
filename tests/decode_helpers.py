"""Test helpers: build RawBatches from frame bytes or from a capture file."""

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


def read_capture(path: Path) -> RawBatch:
    """All frames of one capture file as a single RawBatch (portlabel's own reader)."""
    from portlabel.capture.reader import open_capture

    batches = list(open_capture(path).batches(batch_size=1 << 24))
    if not batches:
        return raw_batch([], [])
    return batches[0]
