"""Frames handed over one by one by a capture thread, gathered into ``RawBatch``es.

The slow backends (scapy, pyshark) deliver each packet as a Python object on their own
thread. ``FrameQueue`` is the hand-off: the thread appends (bytes, timestamp, wire length,
interface) and the session takes everything queued so far as one batch, waiting on a
condition variable up to the session's tick when the queue is empty.
"""

from __future__ import annotations

import threading

import numpy as np

from portlabel.capture.batch import RawBatch


class FrameQueue:
    def __init__(self, dlts: list[int]) -> None:
        self.dlts = np.asarray(dlts, dtype=np.uint16)
        self._cond = threading.Condition()
        self._frames: list[bytes] = []
        self._meta: list[tuple[int, int, int]] = []  # ts_ns, wirelen, iface
        self.closed = False

    def put(self, frame: bytes, ts_ns: int, wirelen: int, iface: int) -> None:
        with self._cond:
            self._frames.append(frame)
            self._meta.append((ts_ns, wirelen, iface))
            if len(self._frames) == 1:
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def take(self, timeout: float) -> RawBatch | None:
        with self._cond:
            if not self._frames and timeout > 0 and not self.closed:
                self._cond.wait(timeout)
            frames, meta = self._frames, self._meta
            self._frames, self._meta = [], []
        if not frames:
            return None
        return frames_to_batch(frames, meta, self.dlts)


def frames_to_batch(frames: list[bytes], meta: list[tuple[int, int, int]], dlts) -> RawBatch:
    """One contiguous buffer and the record columns for a list of frames."""
    caplen = np.fromiter((len(f) for f in frames), dtype=np.uint32, count=len(frames))
    offset = np.zeros(len(frames), dtype=np.int64)
    np.cumsum(caplen[:-1], out=offset[1:])
    cols = np.array(meta, dtype=np.int64).reshape(-1, 3)
    iface = cols[:, 2].astype(np.uint16)
    return RawBatch(
        buf=np.frombuffer(b"".join(frames), dtype=np.uint8),
        offset=offset,
        caplen=caplen,
        wirelen=np.maximum(cols[:, 1], caplen).astype(np.uint32),
        ts_ns=cols[:, 0].copy(),
        linktype=np.asarray(dlts, dtype=np.uint16)[iface],
        iface=iface,
        frame=np.zeros(len(frames), dtype=np.int64),
    )
