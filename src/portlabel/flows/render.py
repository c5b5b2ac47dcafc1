"""Text columns of finished flows, rendered vectorised straight into Arrow string arrays.

Every renderer builds an ``(n, width)`` uint8 matrix of ASCII characters in which NUL bytes
are padding, and ``fixed_width`` packs the non-NUL bytes of each row into one blob plus
offsets (``pa.Array.from_buffers`` through ``portlabel.arrowutil``): no Python string per
flow, and never ``pa.array`` (which imports pandas). IPv4 addresses are spelled from a
per-octet digit table; IPv6 addresses from a hex nibble table with the longest zero run
compressed (``inet_ntop`` only for the dotted-quad forms). When the C extension
``_flowtext`` is built, addresses and uids are written by it instead (the same text,
without the GIL).
"""

from __future__ import annotations

import functools
import socket

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import from_blob, strings, take
from portlabel.flows.uid import UID_ALPHABET, UID_DIGITS, UidSource

try:
    from portlabel.flows import _flowtext
except ImportError:  # built without a C compiler: the numpy renderers below
    _flowtext = None

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
V6_TEXT_WIDTH = 46  # the longest IPv6 text: eight groups, or six plus a dotted quad


def _octet_table(dot: bool) -> np.ndarray:
    """Digits of 0..255, left-aligned and NUL-padded to 3 (plus a trailing "." if asked)."""
    table = np.zeros((256, 4 if dot else 3), dtype=np.uint8)
    for i in range(256):
        text = str(i).encode() + (b"." if dot else b"")
        table[i, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return table


_OCTET_DOT, _OCTET_END = _octet_table(True), _octet_table(False)


def fixed_width(chars: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """A string array whose i-th value is row i of ``chars`` without its NUL bytes."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    n, width = chars.shape
    keep = chars != 0
    if keep.all():
        blob, offsets = chars.tobytes(), np.arange(n + 1, dtype=np.int64) * width
    else:
        blob = chars[keep].tobytes()
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return from_blob(blob, offsets, null_mask)


def names(codes: np.ndarray, table: tuple[str, ...] | list[str]) -> pa.Array:
    """The strings ``table[codes]`` (one gather from a small dictionary)."""
    return take(_dictionary(tuple(table)), codes)


@functools.lru_cache(maxsize=64)
def _dictionary(table: tuple[str, ...]) -> pa.Array:
    return strings(list(table))  # built once per table, not once per batch


def ipv4_chars(ip4: np.ndarray) -> np.ndarray:
    """``(n, 15)`` dotted-quad characters of ``(n, 4)`` address bytes."""
    octets = np.ascontiguousarray(ip4, dtype=np.uint8)
    head = _OCTET_DOT[octets[:, :3]].reshape(len(octets), 12)
    return np.concatenate([head, _OCTET_END[octets[:, 3]]], axis=1)


def _ntop_chars(ips: np.ndarray) -> np.ndarray:
    """``(n, V6_TEXT_WIDTH)`` text of 16-byte addresses, one ``inet_ntop`` each."""
    raw = np.ascontiguousarray(ips).tobytes()
    ntop, v6 = socket.inet_ntop, socket.AF_INET6
    text = "".join(
        ntop(v6, raw[i : i + 16]).ljust(V6_TEXT_WIDTH, "\0") for i in range(0, len(raw), 16)
    )
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, V6_TEXT_WIDTH)


def _ipv6_chars(ips: np.ndarray) -> np.ndarray:
    """``(n, V6_TEXT_WIDTH)`` RFC 5952 text of 16-byte addresses, NUL bytes anywhere.

    Each of the 8 groups is a cell ``[":", hex digits without leading zeros]`` (no ":" in
    the first); the longest run of two or more zero groups (the first of equal ones) is
    blanked and marked by one extra ":" (two when it ends the address). Addresses that
    ``inet_ntop`` spells with a dotted quad (``::a.b.c.d``, ``::ffff:a.b.c.d``) go
    through ``inet_ntop``.
    """
    n = len(ips)
    groups = np.ascontiguousarray(ips).view(">u2").astype(np.int64)
    zero = groups == 0
    run = np.zeros((n, 9), dtype=np.int64)  # run[:, j]: zero groups starting at j
    for j in range(7, -1, -1):
        run[:, j] = (run[:, j + 1] + 1) * zero[:, j]
    base = np.argmax(run[:, :8], axis=1)
    length = run[np.arange(n), base]
    length[length < 2] = 0
    cells = np.zeros((n, 8, 5), dtype=np.uint8)
    cells[:, 1:, 0] = ord(":")
    for k in range(4):  # nibble k from the right, kept if the group reaches it
        shown = (groups >= 16**k) if k else np.ones_like(zero)
        cells[:, :, 4 - k] = np.where(shown, _HEX[(groups >> (4 * k)) & 15], 0)
    col = np.arange(8)
    in_run = (col >= base[:, None]) & (col < (base + length)[:, None])
    cells[in_run] = 0
    rows = np.flatnonzero(length > 0)
    cells[rows, base[rows], 0] = ord(":")
    at_end = rows[base[rows] + length[rows] == 8]
    cells[at_end, base[at_end], 1] = ord(":")
    chars = np.zeros((n, V6_TEXT_WIDTH), dtype=np.uint8)
    chars[:, :40] = cells.reshape(n, 40)
    dotted = (base == 0) & ((length == 6) | ((length == 5) & (groups[:, 5] == 0xFFFF)))
    if dotted.any():
        chars[dotted] = _ntop_chars(ips[dotted])
    return chars


def addresses(ips: np.ndarray, v4: np.ndarray, compiled: bool = True) -> pa.Array:
    """Address text of ``(n, 16)`` address rows (IPv4 rows hold the address in bytes 12-15).

    Spelled by ``_flowtext`` (the C library's ``inet_ntop``) when it is built;
    ``compiled=False`` uses the numpy renderers, which spell them the same."""
    n = len(ips)
    if compiled and _flowtext is not None:
        blob = np.empty(n * V6_TEXT_WIDTH, dtype=np.uint8)
        offsets = np.empty(n + 1, dtype=np.int64)
        rows, is_v4 = np.ascontiguousarray(ips, np.uint8), np.ascontiguousarray(v4, np.bool_)
        _flowtext.address_text(rows, is_v4, blob, offsets)
        return from_blob(blob[: offsets[-1]].tobytes(), offsets)
    if v4.all():
        return fixed_width(ipv4_chars(ips[:, 12:]))
    chars = np.zeros((n, V6_TEXT_WIDTH), dtype=np.uint8)
    chars[v4, :15] = ipv4_chars(ips[v4, 12:])
    if (~v4).any():
        chars[~v4] = _ipv6_chars(ips[~v4])
    return fixed_width(chars)


def macs(mac: np.ndarray) -> pa.Array:
    """``aa:bb:cc:dd:ee:ff`` text of MACs held in the low 48 bits; 0 is null."""
    b = mac.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 2:]
    chars = np.full((len(mac), 17), ord(":"), dtype=np.uint8)
    chars[:, 0::3] = _HEX[b >> 4]
    chars[:, 1::3] = _HEX[b & 15]
    return fixed_width(chars, null_mask=mac == 0)


def uid_strings(limbs: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """Uid text of ``(n, 3)`` uint32 limbs (``UidSource``'s encoding), in C when built."""
    if _flowtext is None:
        return fixed_width(UidSource.chars(limbs), null_mask=null_mask)
    n = len(limbs)
    blob = np.empty(n * (UID_DIGITS + 1), dtype=np.uint8)
    offsets = np.empty(n + 1, dtype=np.int64)
    _flowtext.uid_text(np.ascontiguousarray(limbs, np.uint32), UID_ALPHABET, blob, offsets)
    return from_blob(blob[: offsets[-1]].tobytes(), offsets, null_mask)


def letters_by_position(
    pos: np.ndarray, letters: np.ndarray, missing: int, compiled: bool = True
) -> np.ndarray:
    """``(n, w)`` uint8: each row's ``letters[j]`` in order of ``pos[:, j]`` (ties in column
    order), the columns whose position is ``missing`` left out, NUL-padded."""
    pos = np.ascontiguousarray(pos, dtype=np.int64)
    if compiled and _flowtext is not None:
        codes = np.empty(pos.shape, dtype=np.uint8)
        _flowtext.history_codes(pos, np.ascontiguousarray(letters, np.uint8), missing, codes)
        return codes
    order = np.argsort(pos, axis=1, kind="stable")
    codes = np.where(np.take_along_axis(pos, order, 1) == missing, 0, letters[order])
    return codes.astype(np.uint8)
