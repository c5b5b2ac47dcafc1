"""Writing captured packets back as pcapng, each with a comment (``portlabel packets -o``).

The output is one section: a Section Header Block, one Interface Description Block per
(link type, snaplen) seen (the snaplen of the packet's input interface), written just
before the first packet that needs it, with ``if_tsresol`` = 9 (nanosecond timestamps),
and one Enhanced Packet Block per packet with the original captured bytes and, when the
packet has one, an ``opt_comment`` option (Wireshark shows it as ``frame.comment``).
Little-endian throughout.

Blocks are assembled per batch in one numpy buffer: packet bytes and comments are copied
span-wise in 16-byte words with index arithmetic (in slices of a few MiB, so the index
arrays stay small), then the fixed fields are written as rows of a structured layout over
whatever the words spilled. No Python per packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import BinaryIO

import numpy as np

try:
    from portlabel.packet_writers import _spancopy
except ImportError:  # built without a C compiler: word-wise numpy copies
    _spancopy = None

SHB_TYPE, IDB_TYPE, EPB_TYPE = 0x0A0D0D0A, 1, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT, OPT_COMMENT, IF_TSRESOL = 0, 1, 9
# Enhanced Packet Block fixed part: type, total length, interface, ts high, ts low,
# captured length, original length (then data, options, total length again)
EPB_FIELDS = ("type", "length", "iface", "ts_high", "ts_low", "caplen", "wirelen")
EPB_HEAD = np.dtype([(name, "<u4") for name in EPB_FIELDS])
COPY_SLICE = 1 << 22  # bytes of packet data copied per index computation
WORD = 16  # bytes moved per index by the span copies (less than a block's fixed parts)


def _pad4(n: np.ndarray) -> np.ndarray:
    return (n + 3) & ~3


def section_header() -> bytes:
    """An SHB with no options and an unknown section length."""
    body = np.zeros(1, dtype=[("bom", "<u4"), ("major", "<u2"), ("minor", "<u2"), ("len", "<i8")])
    body[0] = (BYTE_ORDER_MAGIC, 1, 0, -1)
    return _block(SHB_TYPE, body.tobytes())


def interface_description(linktype: int, snaplen: int) -> bytes:
    """An IDB with ``if_tsresol`` = 9 (timestamps in nanoseconds)."""
    head = np.array([(linktype, 0, snaplen)], dtype=[("lt", "<u2"), ("r", "<u2"), ("snap", "<u4")])
    tsresol = np.array([IF_TSRESOL, 1], dtype="<u2").tobytes() + bytes([9, 0, 0, 0])
    end = np.array([OPT_ENDOFOPT, 0], dtype="<u2").tobytes()
    return _block(IDB_TYPE, head.tobytes() + tsresol + end)


def _block(kind: int, body: bytes) -> bytes:
    length = np.array([12 + len(body)], dtype="<u4").tobytes()
    return np.array([kind], dtype="<u4").tobytes() + length + body + length


def _copy_spans(out, dst, src_buf, src, lengths) -> None:
    """``out[dst[i]:dst[i]+lengths[i]] = src_buf[src[i]:src[i]+lengths[i]]`` for all i.

    In C (``_spancopy``) when built: exactly the spans. Without it: copies ``WORD``-byte
    words (one fancy index per word, not per byte), so up to
    ``WORD - 1`` bytes *after* each span are overwritten with whatever followed it in the
    source: the caller writes those bytes afterwards and gives ``out`` ``WORD`` bytes of
    slack at the end. Spans whose last word would read past ``src_buf`` go byte-wise.
    """
    src, dst = src.astype(np.int64), dst.astype(np.int64)
    lengths = lengths.astype(np.int64)
    if _spancopy is not None:
        _spancopy.copy_spans(out, dst, src_buf, src, lengths)
        return
    words = (lengths + WORD - 1) // WORD
    near_end = src + words * WORD > len(src_buf)
    for i in np.flatnonzero(near_end & (lengths > 0)).tolist():
        out[dst[i] : dst[i] + lengths[i]] = src_buf[src[i] : src[i] + lengths[i]]
    keep = ~near_end
    src, dst, words = src[keep], dst[keep], words[keep]
    if not len(words) or len(src_buf) < WORD:
        return
    read = np.ndarray((len(src_buf) - WORD + 1,), dtype=f"V{WORD}", buffer=src_buf, strides=(1,))
    write = np.ndarray((len(out) - WORD + 1,), dtype=f"V{WORD}", buffer=out, strides=(1,))
    lo, n = 0, len(words)
    ends = np.cumsum(words)
    per_slice = COPY_SLICE // WORD
    while lo < n:
        hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] - words[lo] + per_slice)))
        w = words[lo:hi]
        total = int(w.sum())
        if total:
            rel = (np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(w) - w, w)) * WORD
            write[np.repeat(dst[lo:hi], w) + rel] = read[np.repeat(src[lo:hi], w) + rel]
        lo = hi


def _zero_tails(out: np.ndarray, at: np.ndarray, used: np.ndarray, padded: np.ndarray) -> None:
    """Zero ``out[at[i]+used[i] : at[i]+padded[i]]`` (padding of at most 3 bytes)."""
    pad = padded - used
    cols = np.arange(3)
    where = (at + used)[:, None] + cols
    out[where[cols[None, :] < pad[:, None]]] = 0


def enhanced_packets(
    iface: np.ndarray,
    ts_ns: np.ndarray,
    wirelen: np.ndarray,
    buf: np.ndarray,
    offset: np.ndarray,
    caplen: np.ndarray,
    comments: np.ndarray,
    comment_len: np.ndarray,
) -> np.ndarray:
    """EPBs for a batch as one uint8 buffer.

    ``buf[offset[i]:offset[i]+caplen[i]]`` are packet i's bytes; ``comments`` is an
    ``(n, width)`` uint8 matrix of UTF-8 comment bytes, ``comment_len[i]`` of them used
    (0: no comment). Variable parts (packet bytes, comments) are copied first, word-wise;
    every fixed part (headers, padding, option codes, trailers) is written after them,
    which also repairs what the word copies wrote past their spans.
    """
    n = len(caplen)
    cap = caplen.astype(np.int64)
    clen = comment_len.astype(np.int64)
    has = clen > 0
    opts = np.where(has, 4 + _pad4(clen) + 4, 0)
    length = EPB_HEAD.itemsize + _pad4(cap) + opts + 4
    start = np.cumsum(length) - length
    total = int(length.sum())
    out = np.empty(total + WORD, dtype=np.uint8)
    width = EPB_HEAD.itemsize
    data_at = start + width
    opt_at = data_at + _pad4(cap)
    c = np.flatnonzero(has)
    _copy_spans(out, data_at, buf, offset, cap)
    if len(c):
        flat = np.ascontiguousarray(comments).reshape(-1)
        _copy_spans(out, opt_at[c] + 4, flat, c * comments.shape[1], clen[c])

    _zero_tails(out, data_at, cap, _pad4(cap))
    if len(c):
        code = np.zeros((len(c), 2), dtype="<u2")
        code[:, 0], code[:, 1] = OPT_COMMENT, clen[c]
        out[opt_at[c, None] + np.arange(4)] = code.view(np.uint8).reshape(len(c), 4)
        _zero_tails(out, opt_at[c] + 4, clen[c], _pad4(clen[c]))
        end_of_opt = opt_at[c] + 4 + _pad4(clen[c])
        out[end_of_opt[:, None] + np.arange(4)] = 0
    head = np.zeros(n, dtype=EPB_HEAD)
    ts = ts_ns.astype(np.int64).view(np.uint64)
    head["type"], head["length"], head["iface"] = EPB_TYPE, length, iface
    head["ts_high"], head["ts_low"] = ts >> np.uint64(32), ts & np.uint64(0xFFFFFFFF)
    head["caplen"], head["wirelen"] = cap, wirelen
    out[start[:, None] + np.arange(width)] = head.view(np.uint8).reshape(n, width)
    trailer = (start + length - 4)[:, None] + np.arange(4)
    out[trailer] = length.astype("<u4").view(np.uint8).reshape(n, 4)
    return out[:total]


class PcapngCommentWriter:
    """Writes packets with comments to a binary file as one pcapng section."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.interfaces: dict[tuple[int, int], int] = {}
        self.packets = 0
        out.write(section_header())

    def write(self, raw, snaplens: Mapping[int, int], comments, comment_len) -> None:
        """One ``RawBatch``, its file's snaplen by interface number, and its comments."""
        if not len(raw):
            return
        both = raw.iface.astype(np.int64) << 16 | raw.linktype
        pairs, inverse = np.unique(both, return_inverse=True)
        ids = np.empty(len(pairs), dtype=np.uint32)
        for i, pair in enumerate(pairs.tolist()):
            key = (pair & 0xFFFF, int(snaplens.get(pair >> 16, 0)))
            if key not in self.interfaces:
                self.interfaces[key] = len(self.interfaces)
                self.out.write(interface_description(*key))
            ids[i] = self.interfaces[key]
        blocks = enhanced_packets(
            ids[inverse.ravel()], raw.ts_ns, raw.wirelen, raw.buf, raw.offset, raw.caplen,
            comments, comment_len,
        )  # fmt: skip
        self.out.write(memoryview(blocks))
        self.packets += len(raw)
