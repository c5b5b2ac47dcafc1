"""Text columns of finished flows, rendered vectorised straight into Arrow string arrays.

Every renderer builds an ``(n, width)`` uint8 matrix of ASCII characters in which NUL bytes
are padding, and ``fixed_width`` packs the non-NUL bytes of each row into one blob plus
offsets (``pa.Array.from_buffers`` through ``portlabel.arrowutil``): no Python string per
flow, and never ``pa.array`` (which imports pandas). IPv4 addresses are spelled from a
per-octet digit table; IPv6 addresses go through ``socket.inet_ntop`` (the compressed
``::`` form is not worth vectorising for the few there are).
"""

from __future__ import annotations

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
    return strings(list(table)).take(indices(codes))


def ipv4_chars(ip4: np.ndarray) -> np.ndarray:
    """``(n, 15)`` dotted-quad characters of ``(n, 4)`` address bytes."""
    octets = np.ascontiguousarray(ip4, dtype=np.uint8)
    head = _OCTET_DOT[octets[:, :3]].reshape(len(octets), 12)
    return np.concatenate([head, _OCTET_END[octets[:, 3]]], axis=1)


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a uint8 matrix whose width is a multiple of 8, and each row's index
    among them (a lexsort of uint64 words: much cheaper than ``np.unique`` on bytes)."""
    words = np.ascontiguousarray(rows).view(np.uint64)
    order = np.lexsort(words.T[::-1])
    ordered = words[order]
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    inverse = np.empty(len(rows), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new].view(np.uint8), inverse


def _ipv6_chars(ips: np.ndarray) -> np.ndarray:
    """``(n, V6_TEXT_WIDTH)`` text of 16-byte addresses (one ``inet_ntop`` per distinct one)."""
    uniq, inverse = unique_rows(ips)
    raw = uniq.tobytes()
    ntop, v6 = socket.inet_ntop, socket.AF_INET6
    text = "".join(
        ntop(v6, raw[i : i + 16]).ljust(V6_TEXT_WIDTH, "\0") for i in range(0, len(raw), 16)
    )
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(-1, V6_TEXT_WIDTH)
    return chars[inverse]


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
