"""Text columns of finished flows, rendered vectorised straight into Arrow string arrays.

Every renderer builds an ``(n, width)`` uint8 matrix of ASCII characters in which NUL bytes
are padding, and ``fixed_width`` packs the non-NUL bytes of each row into one blob plus
offsets (``pa.Array.from_buffers`` through ``portlabel.arrowutil``): no Python string per
flow, and never ``pa.array`` (which imports pandas). IPv4 addresses are spelled from a
per-octet digit table; IPv6 addresses from a hex nibble table with the longest zero run
compressed (``inet_ntop`` only for the dotted-quad forms).
"""

from __future__ import annotations

import functools
import socket

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import from_blob, indices, strings

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
    return _dictionary(tuple(table)).take(indices(codes))


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


def addresses(ips: np.ndarray, v4: np.ndarray) -> pa.Array:
    """Address text of ``(n, 16)`` address rows (IPv4 rows hold the address in bytes 12-15)."""
    n = len(ips)
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
