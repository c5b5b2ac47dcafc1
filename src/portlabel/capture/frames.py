"""Frames held in memory (a scapy or pyshark packet's bytes) as the raw batches readers give.

``frames_batch`` packs a list of frames (bytes) with their timestamps, wire lengths and
link types into one ``RawBatch``: one buffer, per-record offsets. ``frame_batches`` does
it for any iterable of ``Frame`` tuples, ``batch_size`` at a time, numbering frames from
``first_frame``. Everything after (decode, flows, labels) is what files get, so packets in
memory give exactly the flows the same packets written to a pcap give.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from portlabel.capture.batch import RawBatch
from portlabel.constants import BATCH_SIZE


class Frame(NamedTuple):
    data: bytes  # the captured bytes, from the link-layer header on
    ts_ns: int  # capture time, nanoseconds since the epoch
    wirelen: int  # length on the wire (>= len(data) when the capture was cut short)
    linktype: int  # LINKTYPE_* of the first header (1 Ethernet, 101 raw IP...)
    iface: int = 0


def frames_batch(frames: list[Frame], first_frame: int = 0) -> RawBatch:
    """One raw batch of ``frames``."""
    n = len(frames)
    caplen = np.fromiter((len(f.data) for f in frames), np.uint32, n)
    offset = np.zeros(n, np.int64)
    if n > 1:
        np.cumsum(caplen[:-1], out=offset[1:])
    buf = np.frombuffer(b"".join(f.data for f in frames), np.uint8)
    wirelen = np.maximum(np.fromiter((f.wirelen for f in frames), np.uint32, n), caplen)
    return RawBatch(
        buf,
        offset,
        caplen,
        wirelen,
        np.fromiter((f.ts_ns for f in frames), np.int64, n),
        np.fromiter((f.linktype for f in frames), np.uint16, n),
        np.fromiter((f.iface for f in frames), np.uint16, n),
        np.arange(first_frame, first_frame + n, dtype=np.int64),
    )


def frame_batches(
    frames: Iterable[Frame], batch_size: int = BATCH_SIZE, first_frame: int = 0
) -> Iterator[RawBatch]:
    """Raw batches of at most ``batch_size`` frames each."""
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == batch_size:
            yield frames_batch(chunk, first_frame)
            first_frame += len(chunk)
            chunk = []
    if chunk:
        yield frames_batch(chunk, first_frame)
