"""Vectorised byte surgery on a block of text lines: find fields, parse them, splice.

A block is a ``bytes``-like object holding whole lines. Everything here works on the
raw bytes with numpy, never with a Python object per line:

* ``line_bounds`` -- start and end (exclusive of ``\\n``) of every line; ``line_groups``
  cuts a block of too many lines into smaller blocks;
* ``field_spans`` -- the byte span of chosen fields of every line that has exactly the
  expected number of separators (the others are malformed);
* ``words_at`` / ``parse_uint`` / ``match_values`` -- the first bytes of those fields
  as 8-byte words, decoded as numbers or matched against a small table of known values;
* ``splice`` -- the output: original bytes with a suffix inserted at each cut.

Theory of ``splice``: the pieces between consecutive cuts are a pyarrow binary array
whose offsets are the cuts themselves (zero-copy over the block); joining it row-wise
with the suffixes (``textrows.join_columns``) lays out piece, suffix, piece, suffix...
in one pass, so every original byte is copied once and exactly once, and no line is
touched from Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa

from portlabel.textrows import Gathered, join_columns

try:
    from portlabel.enrich import _logscan
except ImportError:  # not built: numpy finds the lines
    _logscan = None

NEWLINE = 10
# Lines handled at once: bounds the per-line arrays (~150 bytes a line) when a block of
# very short lines holds hundreds of thousands of them.
MAX_LINES = 1 << 16


def line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of every line (the end excludes the newline). In C
    (``_logscan``, memchr) when built; numpy's twin below."""
    if _logscan is not None:
        starts, ends = _logscan.line_bounds(buf)
        return np.frombuffer(starts, dtype=np.int64), np.frombuffer(ends, dtype=np.int64)
    return numpy_line_bounds(buf)


def numpy_line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nl = np.flatnonzero(buf == NEWLINE)
    n = len(buf)
    tail = bool(n) and (len(nl) == 0 or nl[-1] != n - 1)
    starts = np.empty(len(nl) + tail, dtype=np.int64)
    starts[0:1] = 0
    starts[1:] = nl[: len(starts) - 1] + 1
    ends = np.empty_like(starts)
    ends[: len(nl)] = nl
    if tail:
        ends[-1] = n
    return starts, ends


def line_groups(block, starts: np.ndarray, most: int) -> list[memoryview]:
    """``block`` cut before every ``most``-th line start: pieces of at most ``most`` lines."""
    view = memoryview(block)
    edges = [0, *starts[most::most].tolist(), len(view)]
    return [view[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def field_spans(
    buf: np.ndarray,
    sep: int,
    starts: np.ndarray,
    ends: np.ndarray,
    n_fields: int,
    wanted: list[int],
) -> tuple[np.ndarray, dict]:
    """Rows whose line has ``n_fields`` fields, and ``{k: (start, end)}`` of field k there."""
    if not len(starts):
        return np.zeros(0, dtype=np.int64), {k: (starts, ends) for k in wanted}
    lo, hi = int(starts[0]), int(ends[-1])
    seps = np.flatnonzero(buf[lo:hi] == sep)
    seps += lo
    before_end = np.searchsorted(seps, ends)
    if sep == NEWLINE or not np.array_equal(starts[1:], ends[:-1] + 1):
        first = np.searchsorted(seps, starts)
    else:
        # Consecutive lines: the separators before a line's start are those before the
        # previous line's end (its newline is no separator).
        first = np.empty_like(before_end)
        first[:1] = 0
        first[1:] = before_end[:-1]
    count = before_end - first
    rows = np.flatnonzero(count == n_fields - 1)
    first = first[rows]
    spans = {}
    for k in wanted:
        fs = starts[rows] if k == 0 else seps[first + k - 1] + 1
        fe = ends[rows] if k == n_fields - 1 else seps[first + k]
        spans[k] = (fs, fe)
    return rows, spans


_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)


def words_at(buf: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The 8 bytes at each position as a little-endian uint64 (bytes past the end: 0).

    One gather through an unaligned view with a stride of one byte, instead of an
    (n, 8) matrix of byte indices.
    """
    n = len(buf)
    if n < 8:
        buf = np.concatenate([buf, np.zeros(8 - n, dtype=np.uint8)])
    view = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
    clipped = np.minimum(positions, len(buf) - 8)
    words = view[clipped]
    # Near the end the word was read from further back: shift the wanted bytes down.
    behind = (positions - clipped).astype(np.uint64)
    words >>= np.minimum(behind, 7) * np.uint64(8)
    words[behind >= 8] = 0
    return words


def _masked(words: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Each word with the bytes at and past ``length`` zeroed."""
    return words & _LOW_BYTES[np.clip(length, 0, 8)]


def parse_uint(
    buf: np.ndarray, fs: np.ndarray, fe: np.ndarray, digits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Decimal fields of at most ``digits`` (<= 8) digits: (values, ok)."""
    if digits > 8:
        raise ValueError("parse_uint reads at most 8 digits")
    length = fe - fs
    words = words_at(buf, fs)
    ok = (length >= 1) & (length <= digits)
    values = np.zeros(len(fs), dtype=np.int64)
    for j in range(digits):
        digit = ((words >> np.uint64(8 * j)) & np.uint64(0xFF)).astype(np.int64) - 48
        inside = length > j
        ok &= ~inside | ((digit >= 0) & (digit <= 9))
        values = np.where(inside, values * 10 + digit, values)
    return values, ok


def match_values(
    buf: np.ndarray, fs: np.ndarray, fe: np.ndarray, table: dict[str, int], default: int
) -> np.ndarray:
    """Each field's code from ``table`` (exact byte match, values up to 16 bytes)."""
    length = fe - fs
    low = _masked(words_at(buf, fs), length)
    high = _masked(words_at(buf, fs + 8), length - 8)
    out = np.full(len(fs), default, dtype=np.int64)
    for text, code in table.items():
        key = text.encode()
        if len(key) > 16:
            continue
        k = np.frombuffer(key.ljust(16, b"\0"), dtype="<u8")
        hit = (length == len(key)) & (low == k[0]) & (high == k[1])
        out[hit] = code
    return out


def plausible_time(buf: np.ndarray, fs: np.ndarray, fe: np.ndarray) -> np.ndarray:
    """Fields that may be a Zeek ``time``: 1-20 bytes, first and last a digit or ``X``.

    Cheap on purpose (two byte reads per record); it catches the usual damage of
    interleaved writes, where a record starts in the middle of another one's ``ts``.
    """
    length = fe - fs
    ok = (length >= 1) & (length <= 20)
    first = buf[np.minimum(fs, len(buf) - 1)]
    last = buf[np.maximum(fe - 1, 0)]
    unset = (length == 1) & (first == 45)

    def timeish(c: np.ndarray) -> np.ndarray:
        return ((c >= 48) & (c <= 57)) | (c == 88)

    return ok & (timeish(first) & timeish(last) | unset)


def splice(block, lo: int, hi: int, cuts: np.ndarray, suffixes: pa.Array, ids=None) -> list:
    """``block[lo:hi]`` with ``suffixes[i]`` inserted before byte ``cuts[i]`` (with
    ``ids``: ``suffixes[ids[i]]``, a suffix table's entries, never gathered into an array).

    Returns buffers to write in order. ``cuts`` must be increasing and inside [lo, hi].
    """
    view = memoryview(block)
    if not len(cuts):
        return [view[lo:hi]]
    large = hi >= 2**31
    offsets = np.empty(len(cuts) + 1, dtype=np.int64 if large else np.int32)
    offsets[0] = lo
    offsets[1:] = cuts
    kind = pa.large_binary() if large else pa.binary()
    pieces = pa.Array.from_buffers(
        kind, len(cuts), [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    )
    if large:
        suffixes = suffixes.cast(pa.large_binary())
    added = suffixes if ids is None else Gathered(suffixes, ids)
    return [join_columns([pieces, added]), view[int(cuts[-1]) : hi]]


class BlockFeeder:
    """What both enrichers share: big blocks are fed in line groups, lazily, and nothing is
    held back at the end of a stream (each line is complete when it is fed)."""

    def feed(self, block) -> Iterable:  # pragma: no cover - defined by each enricher
        raise NotImplementedError

    def _feed_groups(self, groups: list) -> Iterator:
        """Feed smaller blocks one by one: each one's output can be written before the
        next is made."""
        for group in groups:
            yield from self.feed(group)

    def finish(self) -> list:
        return []
