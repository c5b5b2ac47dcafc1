"""Cutting one plain pcap file into byte ranges that start at records, for workers.

``record_ranges(path, pieces)`` guesses, near each ``k / pieces`` of the file, where a
record header starts: a header is recognised by its fields (a timestamp within 20 years
of the first record's, a sub-second part below one second, lengths a record can have)
and by the chain of the next 32 headers it leads to, found with numpy over a window of
the file.
A guess can be wrong only for a file crafted to hold fake headers in its payloads; the
merge step checks every guess against the chain the worker before it walked
(``CaptureReader.range_end``) and reads the range itself from the true start when
they differ, so a wrong guess costs time, never flows. pcapng files, compressed files
and pcap files with the 24-byte record variant are not cut.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from portlabel.capture.pcap import FILE_HEADER_LEN, MAX_RECORD, PCAP_MAGICS

WINDOWS = (1 << 16, 1 << 20, MAX_RECORD + (1 << 16))  # bytes searched after a cut point
CHAIN = 32  # headers a guess must lead to
_SPAN = 20 * 366 * 86_400  # seconds from the first record's time a record may lie


def _cuttable_head(head: bytes) -> tuple[str, bool] | None:
    """(byte order, nanosecond?) of a plain pcap file with 16-byte record headers and a
    first record, from its first bytes; None for anything else."""
    if len(head) < FILE_HEADER_LEN + 16:
        return None
    magic = struct.unpack_from("<I", head)[0]
    if magic not in PCAP_MAGICS or PCAP_MAGICS[magic][2] != 16:
        return None
    order, nano, _ = PCAP_MAGICS[magic]
    return order, nano


def cuttable(path: str) -> bool:
    """Whether ``record_ranges`` can cut ``path`` (it reads the file's first bytes)."""
    try:
        with open(path, "rb") as f:
            return _cuttable_head(f.read(FILE_HEADER_LEN + 16)) is not None
    except OSError:
        return False


def record_ranges(path: str, pieces: int) -> list[tuple[int, int]] | None:
    """``pieces`` (or fewer) byte ranges covering the records of ``path``, each starting
    at a record; None when the file cannot be cut (not a plain pcap, too small)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER_LEN + 16)
        kind = _cuttable_head(head)
        if kind is None or pieces < 2:
            return None
        order, nano = kind
        sec0 = struct.unpack_from(order + "I", head, FILE_HEADER_LEN)[0]
        cuts = [FILE_HEADER_LEN]
        for k in range(1, pieces):
            at = max(size * k // pieces, cuts[-1] + 1)
            for window in WINDOWS:  # small first: a record is found in a few kB
                f.seek(at)
                found = find_record(f.read(window), order, nano, sec0, at, size)
                if found is not None:
                    break
            if found is not None and found > cuts[-1]:
                cuts.append(found)
    if len(cuts) < 2:
        return None
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], size], strict=True)]


def find_record(data: bytes, order: str, nano: bool, sec0: int, base: int, size: int) -> int | None:
    """The file offset of the first record header in ``data`` (read at ``base``) that
    leads to a chain of ``CHAIN`` plausible headers (or to the file's end)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    n = len(buf) - 15
    if n <= 0:
        return None
    b = [buf[i : i + n].astype(np.uint32) for i in range(16)]

    def word(k: int) -> np.ndarray:
        p = b[4 * k : 4 * k + 4]
        if order == ">":
            p = p[::-1]
        return p[0] | (p[1] << 8) | (p[2] << 16) | (p[3] << 24)

    sec, frac, cap, wire = word(0), word(1), word(2), word(3)
    ok = _plausible(sec, frac, cap, wire, nano, sec0)
    for p in np.flatnonzero(ok).tolist():
        if _chain(data, p, order, nano, sec0, base, size):
            return base + p
    return None


def _plausible(sec, frac, cap, wire, nano: bool, sec0: int) -> np.ndarray:
    # loose on time (captures hold odd clocks), strict on the sub-second part and lengths
    low = max(sec0 - _SPAN, 0)
    high = sec0 + _SPAN
    return (
        (sec >= low) & (sec <= high) & (frac < (10**9 if nano else 10**6))
        & (cap <= MAX_RECORD) & (wire <= MAX_RECORD) & ((cap <= wire) | (wire == 0))
    )  # fmt: skip


def _chain(data: bytes, p: int, order: str, nano: bool, sec0: int, base: int, size: int) -> bool:
    for _ in range(CHAIN):
        if base + p == size:
            return True  # the chain ends exactly at the end of the file
        if p + 16 > len(data):
            return False  # past the window: a wider one decides
        sec, frac, cap, wire = struct.unpack_from(order + "IIII", data, p)
        if not _plausible(np.uint32(sec), np.uint32(frac), np.uint32(cap), np.uint32(wire),
                          nano, sec0):  # fmt: skip
            return False
        p += 16 + cap
    return True
