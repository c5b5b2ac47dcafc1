"""Flow keys: per-packet ports, canonical direction, fixed-width packing and grouping.

A flow key is the transport, both endpoints (address + port), the VLAN pair and (when
configured) the tunnel parent. Packets of both directions must get the same key, so each
packet's endpoints are put in canonical order -- the lower (address, port) first -- and
the packet remembers whether it travels a->b (dir 0) or b->a (dir 1).

ICMP has no ports; following Zeek, the "ports" are (type, counterpart type) for paired
message types (echo request/reply, ...) so that a request and its reply share a key, and
(type, code) for one-way types.

Keys are packed into an ``(n, KEY_WIDTH)`` uint8 array whose fields are laid out on
8-byte words (so packing, hashing and comparing work on uint64 words, not bytes) and
grouped by a 64-bit hash of the rows (argsort of uint64 is much cheaper than sorting long
byte strings); hash collisions are detected exactly and resolved by an exact sort. When
the C extension ``_flowkeys`` is built, short keys are packed by it and grouping is one
hash-table pass in C instead (exact comparisons, no sort), both without the GIL.
"""

from __future__ import annotations

import os

import numpy as np

from portlabel.constants import ICMP_PROTOCOLS, PORTED_PROTOCOLS

try:
    from portlabel.flows import _flowkeys
except ImportError:  # built without a C compiler: grouping by sorting hashes in numpy
    _flowkeys = None

# ICMP message types that come in request/reply pairs (the rest are one-way)
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_PAIRS = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 139: 140, 140: 139, 144: 145, 145: 144,
}  # fmt: skip

# key layout: name -> (offset, width); declared once, read by pack/unpack
KEY_FIELDS: dict[str, tuple[int, int]] = {}
_off = 0
for _name, _width in (
    ("a_ip", 16), ("b_ip", 16),
    ("a_port", 2), ("b_port", 2), ("vlan", 4),  # word 4
    ("inner_vlan", 4), ("proto", 1), ("pad", 3),  # word 5
    ("parent", 40),  # words 6-10: zero unless keyed by a tunnel parent
):  # fmt: skip
    KEY_FIELDS[_name] = (_off, _width)
    _off += _width
KEY_WIDTH = (_off + 7) // 8 * 8
KEY_WORDS = KEY_WIDTH // 8
PARENT_WIDTH = KEY_FIELDS["parent"][1]
PARENT_WORD = KEY_FIELDS["parent"][0] // 8
SHORT_WIDTH = PARENT_WORD * 8  # a key without its parent field
assert SHORT_WIDTH == 48, "_flowkeys.c packs 48-byte short keys"


def _pair_table(pairs: dict[int, int]) -> np.ndarray:
    table = np.full(256, -1, dtype=np.int16)
    for k, v in pairs.items():
        table[k] = v
    return table


_PAIR4, _PAIR6 = _pair_table(ICMP4_PAIRS), _pair_table(ICMP6_PAIRS)
_PORTED = np.isin(np.arange(256), PORTED_PROTOCOLS)
_ICMP = np.isin(np.arange(256), ICMP_PROTOCOLS)


def icmp_ports(
    ip_proto: np.ndarray, icmp_type: np.ndarray, icmp_code: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zeek's ICMP pseudo-ports: (type, counterpart-or-code, one_way)."""
    counterpart = np.where(ip_proto == 58, _PAIR6[icmp_type], _PAIR4[icmp_type])
    one_way = counterpart < 0
    dport = np.where(one_way, icmp_code, counterpart).astype(np.uint16)
    return icmp_type.astype(np.uint16), dport, one_way


def flow_ports(
    ip_proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    icmp_type: np.ndarray,
    icmp_code: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The two 16-bit values that identify a flow's endpoints beside the addresses."""
    ported = _PORTED[ip_proto]
    s = np.where(ported, sport, 0).astype(np.uint16)
    d = np.where(ported, dport, 0).astype(np.uint16)
    icmp = np.flatnonzero(_ICMP[ip_proto])
    if len(icmp):
        s[icmp], d[icmp], _ = icmp_ports(ip_proto[icmp], icmp_type[icmp], icmp_code[icmp])
    return s, d


def _ip_words(ip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """16-byte addresses as two big-endian-ordered uint64 words (hi, lo) for comparison."""
    w = np.ascontiguousarray(ip).view(">u8").astype(np.uint64)
    return w[:, 0], w[:, 1]


def endpoint_greater(
    ip1: np.ndarray, port1: np.ndarray, ip2: np.ndarray, port2: np.ndarray
) -> np.ndarray:
    """Row-wise (ip1, port1) > (ip2, port2) in network byte order."""
    h1, l1 = _ip_words(ip1)
    h2, l2 = _ip_words(ip2)
    return (h1 > h2) | ((h1 == h2) & ((l1 > l2) | ((l1 == l2) & (port1 > port2))))


def _be_word(hi32: np.ndarray, lo32: np.ndarray) -> np.ndarray:
    """A uint64 whose big-endian bytes are ``hi32`` then ``lo32`` (each taken mod 2**32)."""
    hi = hi32.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFF_FFFF)
    lo = lo32.astype(np.int64).astype(np.uint64) & np.uint64(0xFFFF_FFFF)
    return (hi << np.uint64(32)) | lo


def pack_keys(
    src_ip: np.ndarray,
    dst_ip: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    proto: np.ndarray,
    vlan: np.ndarray,
    inner_vlan: np.ndarray,
    parent: np.ndarray | None = None,
    full: bool = True,
    compiled: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical packed keys and each row's direction (0 a->b, 1 b->a).

    Keys are ``(n, KEY_WIDTH)``; with ``full=False`` and no ``parent`` they stop before
    the parent field (``(n, SHORT_WIDTH)``, the bytes a full key would start with): less
    to write, hash and compare per packet when no tunnel is involved (``widen`` pads).
    Short keys come from ``_flowkeys`` when it is built (``compiled=False``: numpy).
    """
    n = len(proto)
    if compiled and _flowkeys is not None and not full and parent is None:
        return _pack_compiled(src_ip, dst_ip, sport, dport, proto, vlan, inner_vlan)
    swap = endpoint_greater(src_ip, sport, dst_ip, dport)
    width = KEY_WIDTH if full or parent is not None else SHORT_WIDTH
    keys = np.empty((n, width), dtype=np.uint8)
    if not n:
        return keys, swap.astype(np.uint8)
    raw = keys.view(np.uint64)  # byte copies: the words' byte order does not matter here
    src = np.ascontiguousarray(src_ip).view(np.uint64)
    dst = np.ascontiguousarray(dst_ip).view(np.uint64)
    # swap the address words by XOR with a per-row all-ones mask: cheaper than np.where
    # with a broadcast condition
    flip = src ^ dst
    flip &= (swap.astype(np.uint64) * np.uint64(0xFFFF_FFFF_FFFF_FFFF))[:, None]
    np.bitwise_xor(src, flip, out=raw[:, 0:2])
    np.bitwise_xor(dst, flip, out=raw[:, 2:4])
    sp, dp = sport.astype(np.int64), dport.astype(np.int64)
    ports = (np.where(swap, dp, sp) << 16) | np.where(swap, sp, dp)
    be = keys.view(">u8")
    be[:, 4] = _be_word(ports, vlan)
    be[:, 5] = _be_word(inner_vlan, proto.astype(np.int64) << 24)
    if width == KEY_WIDTH:
        keys[:, PARENT_WORD * 8 :] = 0 if parent is None else parent
    return keys, swap.astype(np.uint8)


def widen(keys: np.ndarray) -> np.ndarray:
    """Keys padded to ``KEY_WIDTH`` (short keys get an all-zero parent field)."""
    if keys.shape[1] == KEY_WIDTH:
        return keys
    out = np.zeros((len(keys), KEY_WIDTH), dtype=np.uint8)
    out[:, : keys.shape[1]] = keys
    return out


def pack_parent(
    outer_src: np.ndarray,
    outer_dst: np.ndarray,
    outer_sport: np.ndarray,
    outer_dport: np.ndarray,
    outer_proto: np.ndarray,
    tunnel: np.ndarray,
) -> np.ndarray:
    """Direction-free bytes naming a tunnel parent (zeros when the packet has none)."""
    swap = endpoint_greater(outer_src, outer_sport, outer_dst, outer_dport)
    out = np.zeros((len(tunnel), PARENT_WIDTH), dtype=np.uint8)
    out[:, 0:16] = np.where(swap[:, None], outer_dst, outer_src)
    out[:, 16:32] = np.where(swap[:, None], outer_src, outer_dst)
    out[:, 32:34] = (
        np.where(swap, outer_dport, outer_sport).astype(">u2").view(np.uint8).reshape(-1, 2)
    )
    out[:, 34:36] = (
        np.where(swap, outer_sport, outer_dport).astype(">u2").view(np.uint8).reshape(-1, 2)
    )
    out[:, 36] = outer_proto
    out[:, 37] = tunnel
    out[tunnel == 0] = 0
    return out


def unpack(keys: np.ndarray, name: str) -> np.ndarray:
    """One field of packed keys, as raw bytes ``(n, width)``."""
    off, width = KEY_FIELDS[name]
    return keys[:, off : off + width]


def unpack_int(keys: np.ndarray, name: str, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(unpack(keys, name)).view(dtype).ravel().astype(np.int64)


_M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9)


def hash_rows(keys: np.ndarray, n_words: int | None = None) -> np.ndarray:
    """A 64-bit mixing hash of each packed key row (of its first ``n_words`` words)."""
    words = np.ascontiguousarray(keys).view(np.uint64)
    h = np.zeros(len(keys), dtype=np.uint64)
    t = np.empty_like(h)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1] if n_words is None else n_words):
            np.bitwise_xor(h, words[:, j], out=h)
            np.multiply(h, _M1, out=h)
            np.right_shift(h, np.uint64(29), out=t)
            h ^= t
        h *= _M2
        np.right_shift(h, np.uint64(32), out=t)
        h ^= t
    return h


def group_rows(
    keys: np.ndarray, compiled: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable grouping of equal key rows (full or short keys).

    Returns ``order`` (row indices, equal keys adjacent, original order kept within a
    group), ``starts`` (the positions in ``order`` where each group begins) and each
    group's key, as wide as ``keys`` (short keys stay short: a flood's batch has a group
    per row, and ``widen`` would add 40 zero bytes to each). The order of the groups is
    unspecified: the compiled grouping (``_flowkeys``, when built; ``compiled=False``
    skips it) lists them by first appearance, the numpy one by hash.
    """
    n = len(keys)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, keys[:0]
    if compiled and _flowkeys is not None:
        return _group_compiled(keys)
    words = np.ascontiguousarray(keys).view(np.uint64)
    used = words.shape[1]
    if used > PARENT_WORD and not words[:, PARENT_WORD:].any():
        used = PARENT_WORD  # within one call the hash only has to be consistent
    # one plain sort of (hash high bits | row number): unique values, so the order within
    # a group is the row order without a (much slower) stable argsort
    bits = max(int(n - 1).bit_length(), 1)
    low = np.uint64((1 << bits) - 1)
    packed = hash_rows(keys, used)
    packed &= ~low
    packed |= np.arange(n, dtype=np.uint64)
    packed.sort()
    order = (packed & low).astype(np.int64)
    hs = packed >> np.uint64(bits)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    # exact check against 64-bit hash collisions: neighbours in the same group must have
    # equal keys (word by word over the words that can differ: faster than comparing
    # rows as void values or reducing a 2-D mask)
    ordered = np.take(words, order, axis=0)  # a row gather: faster than words[order]
    differ = ordered[1:, 0] != ordered[:-1, 0]
    for j in range(1, used):
        differ |= ordered[1:, j] != ordered[:-1, j]
    if not np.array_equal(differ, new[1:]):  # a 64-bit hash collision: sort exactly
        void = np.ascontiguousarray(keys).view(f"V{keys.shape[1]}").ravel()
        order = np.argsort(void, kind="stable")
        ordered = words[order]
        new[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    starts = np.flatnonzero(new)
    return order, starts, keys[order[starts]]


# The grouping table's hash key, drawn per process: keys crafted against a known hash
# could all fall in one probe chain (quadratic grouping).
_HASH_KEY = np.frombuffer(os.urandom(16), dtype=np.uint8)


def _group_compiled(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys = np.ascontiguousarray(keys, dtype=np.uint8)
    order = np.empty(len(keys), dtype=np.int64)
    starts = np.empty(len(keys), dtype=np.int64)
    groups = _flowkeys.group_keys(keys, keys.shape[1], order, starts, _HASH_KEY)
    starts = starts[:groups]
    return order, starts, keys[order[starts]]


def _pack_compiled(src_ip, dst_ip, sport, dport, proto, vlan, inner_vlan):
    n = len(proto)
    keys = np.empty((n, SHORT_WIDTH), dtype=np.uint8)
    direction = np.empty(n, dtype=np.uint8)
    _flowkeys.pack_short_keys(
        np.ascontiguousarray(src_ip, dtype=np.uint8),
        np.ascontiguousarray(dst_ip, dtype=np.uint8),
        np.ascontiguousarray(sport, dtype=np.uint16),
        np.ascontiguousarray(dport, dtype=np.uint16),
        np.ascontiguousarray(proto, dtype=np.uint8),
        np.ascontiguousarray(vlan, dtype=np.int32),
        np.ascontiguousarray(inner_vlan, dtype=np.int32),
        keys,
        direction,
    )
    return keys, direction
