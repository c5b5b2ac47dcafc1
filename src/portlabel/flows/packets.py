"""From a ``PacketBatch`` to the per-packet rows the flow engine groups.

Selects the packets that belong to flows (decoded IP, including non-first fragments),
gives non-first fragments the ports of their first fragment (matched on src, dst, proto,
IP id, also across batches), adds one row per tunnelled packet for its UDP tunnel parent
flow (the VXLAN/Geneve/GTP-U/Teredo "outer" connection Zeek also reports), and packs
canonical flow keys. Everything is columnar; the only Python loop is a dict lookup per
non-first fragment, which are rare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portlabel.capture.batch import NO_VLAN, DecodeStatus, PacketBatch, TunnelType
from portlabel.flows.keys import (
    KEY_WIDTH,
    PARENT_WIDTH,
    flow_ports,
    hash_rows,
    pack_keys,
    pack_parent,
)

_V4_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)


@dataclass(slots=True)
class Rows:
    """Flow-ready packet rows (all arrays have one entry per row)."""

    keys: np.ndarray | None  # (n, KEY_WIDTH) uint8, canonical; None once grouped
    dir: np.ndarray  # uint8: 0 a->b, 1 b->a
    pos: np.ndarray  # int64: global capture order
    ts: np.ndarray
    proto: np.ndarray
    ip_version: np.ndarray
    sport: np.ndarray  # packet-direction flow ports
    dport: np.ndarray
    flags: np.ndarray  # TCP flags (0 for fragments and non-TCP)
    seq: np.ndarray
    ack: np.ndarray
    window: np.ndarray  # TCP window as sent (0 for non-TCP)
    payload: np.ndarray
    ip_len: np.ndarray
    mac: np.ndarray  # sender MAC
    vlans: np.ndarray  # (n, 2) int32: outer and inner VLAN id, -1 for none
    frag: np.ndarray  # bool: non-first fragment (counted, not analysed)
    uncounted: np.ndarray | None  # bool: a bad checksum (in its flow, counts nothing)
    parent: np.ndarray | None  # (n, KEY_WIDTH) key of the tunnel parent flow, or None
    outer: np.ndarray | None = None  # bool: a tunnel parent row (None: there are none)

    def __len__(self) -> int:
        return len(self.proto)

    def take(self, index: np.ndarray, drop_keys: bool = False) -> Rows:
        """Rows ``index`` (without their keys if ``drop_keys``: grouped rows keep one
        key per group instead of one per row)."""
        vals = {}
        for name in self.__slots__:
            v = None if drop_keys and name == "keys" else getattr(self, name)
            vals[name] = None if v is None else v[index]
        return Rows(**vals)


def is_v4(ip: np.ndarray) -> np.ndarray:
    return (ip[:, :12] == _V4_PREFIX).all(axis=1)


class FragmentPorts:
    """Remembers the flow ports of first fragments so later fragments can join them."""

    def __init__(self, limit: int = 65536) -> None:
        self._ports: dict[int, int] = {}
        self._limit = limit

    @staticmethod
    def _ids(b: PacketBatch, idx: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(idx), 40), dtype=np.uint8)
        rows[:, 0:16] = b.src_ip[idx]
        rows[:, 16:32] = b.dst_ip[idx]
        rows[:, 32] = b.ip_proto[idx]
        rows[:, 33:37] = b.ip_id[idx].astype("<u4").view(np.uint8).reshape(-1, 4)
        return hash_rows(rows)

    def resolve(self, b: PacketBatch, idx: np.ndarray, sport, dport) -> None:
        """Fill ``sport``/``dport`` (aligned with ``idx``) for non-first fragments."""
        first = (b.more_frags[idx]) & (b.frag_offset[idx] == 0)
        first &= b.status[idx] == DecodeStatus.OK
        if first.any():
            ids = self._ids(b, idx[first])
            packed = (sport[first].astype(np.int64) << 16) | dport[first]
            self._ports.update(zip(ids.tolist(), packed.tolist(), strict=True))
            if len(self._ports) > self._limit:  # forget the oldest half
                items = list(self._ports.items())
                self._ports = dict(items[len(items) // 2 :])
        later = np.flatnonzero(b.status[idx] == DecodeStatus.FRAGMENT)
        if len(later):
            found = [self._ports.get(h, -1) for h in self._ids(b, idx[later]).tolist()]
            found = np.array(found, dtype=np.int64)
            ok = found >= 0
            sport[later[ok]] = found[ok] >> 16
            dport[later[ok]] = found[ok] & 0xFFFF


def batch_rows(
    b: PacketBatch, first_pos: int, frags: FragmentPorts, key_by_parent: bool
) -> tuple[Rows, np.ndarray]:
    """Rows for the flowable packets of ``b`` plus rows for UDP tunnel parents.

    Returns the rows and a count of packets left out, indexed by ``DecodeStatus``.
    """
    status = b.status
    flowable = ((status == DecodeStatus.OK) | (status == DecodeStatus.FRAGMENT)) & (
        b.ip_version != 0
    )
    left_out = np.bincount(status[~flowable], minlength=len(DecodeStatus))
    idx = np.flatnonzero(flowable)
    sel = slice(None) if len(idx) == len(status) else idx  # a view when all are flowable
    proto = b.ip_proto[sel]
    sport, dport = flow_ports(proto, b.sport[sel], b.dport[sel], b.icmp_type[sel], b.icmp_code[sel])
    frag = status[sel] == DecodeStatus.FRAGMENT
    if frag.any() or b.more_frags[sel].any():
        frags.resolve(b, idx, sport, dport)
    tcp_ok = (proto == 6) & ~frag
    # a bad TCP/UDP checksum (checked only when asked): Zeek keeps the connection, but
    # the packet counts for nothing in it but its c/C letter
    bad = b.bad_checksum[sel] != 0 if b.bad_checksum.any() else None
    tunnelled = b.tunnel[sel] != TunnelType.NONE
    vlan, ivlan = _key_vlans(b, sel, key_by_parent)

    parent_keys = None
    parent_field = None
    if tunnelled.any():
        t = idx[tunnelled]
        direct = _direct_parent(b, t)
        parent_keys = np.zeros((len(idx), KEY_WIDTH), dtype=np.uint8)
        nested = b.inner_tunnel[t] != TunnelType.NONE
        parent_keys[tunnelled] = _layer_key(b, t, direct, nested, key_by_parent)
        if key_by_parent:
            parent_field = np.zeros((len(idx), PARENT_WIDTH), dtype=np.uint8)
            parent_field[tunnelled] = direct.parent_field()
    keys, direction = pack_keys(
        b.src_ip[sel], b.dst_ip[sel], sport, dport, proto, vlan, ivlan, parent_field, full=False
    )
    rows = Rows(
        keys=keys,
        dir=direction,
        pos=first_pos + idx.astype(np.int64),
        ts=b.ts_ns[sel],
        proto=proto,
        ip_version=b.ip_version[sel],
        sport=sport,
        dport=dport,
        flags=np.where(tcp_ok if bad is None else tcp_ok & ~bad, b.tcp_flags[sel], 0).astype(
            np.uint16
        ),
        seq=b.tcp_seq[sel],
        ack=b.tcp_ack[sel],
        window=b.tcp_window[sel],
        payload=_unless(bad, b.payload_len[sel]),
        ip_len=_unless(bad, b.ip_len[sel]),
        mac=b.src_mac[sel],
        vlans=np.stack([b.vlan[sel], b.inner_vlan[sel]], axis=1),
        frag=frag,
        uncounted=bad,
        parent=parent_keys,
    )
    # each UDP tunnel's own flow exists whatever the inner frame was (ARP inside VXLAN...)
    outer = np.flatnonzero((b.tunnel != TunnelType.NONE) & (b.outer_proto == 17))
    nested = tunnelled.any() and b.inner_tunnel.any()
    mid = (
        np.flatnonzero((b.inner_tunnel != TunnelType.NONE) & (b.mid_proto == 17))
        if nested
        else outer[:0]
    )
    if len(outer) or len(mid):
        rows = _with_tunnel_rows(rows, b, outer, mid, first_pos, key_by_parent)
        # a packet whose inner frame is no flow is still a packet of its tunnel's flow
        counted = outer[~flowable[outer]]
        if len(counted):
            left_out -= np.bincount(status[counted], minlength=len(DecodeStatus))
    return rows, left_out


@dataclass(slots=True)
class _Encapsulation:
    """The datagram that carries a tunnel, for some packets (one entry each)."""

    src: np.ndarray
    dst: np.ndarray
    proto: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    ip_len: np.ndarray
    tunnel: np.ndarray  # the TunnelType it carries

    def parent_field(self) -> np.ndarray:
        return pack_parent(self.src, self.dst, self.sport, self.dport, self.proto, self.tunnel)


def _outermost(b: PacketBatch, t: np.ndarray) -> _Encapsulation:
    return _Encapsulation(
        b.outer_src_ip[t],
        b.outer_dst_ip[t],
        b.outer_proto[t],
        b.outer_sport[t],
        b.outer_dport[t],
        b.outer_ip_len[t],
        b.tunnel[t],
    )


def _middle(b: PacketBatch, t: np.ndarray) -> _Encapsulation:
    return _Encapsulation(
        b.mid_src_ip[t],
        b.mid_dst_ip[t],
        b.mid_proto[t],
        b.mid_sport[t],
        b.mid_dport[t],
        b.mid_ip_len[t],
        b.inner_tunnel[t],
    )


def _direct_parent(b: PacketBatch, t: np.ndarray) -> _Encapsulation:
    """Each tunnelled packet's own tunnel: the innermost of two, else the only one."""
    outer = _outermost(b, t)
    nested = b.inner_tunnel[t] != TunnelType.NONE
    if not nested.any():
        return outer
    mid = _middle(b, t)
    pick = {}
    for name in _Encapsulation.__slots__:
        a, c = getattr(outer, name), getattr(mid, name)
        mask = nested.reshape(-1, *([1] * (a.ndim - 1)))
        pick[name] = np.where(mask, c, a)
    return _Encapsulation(**pick)


def _layer_key(
    b: PacketBatch, t: np.ndarray, layer: _Encapsulation, nested, key_by_parent: bool
) -> np.ndarray:
    """The full flow key of the flow ``layer`` makes (for packets ``t``): a ``nested``
    layer's key names its own parent, the outermost tunnel, when flows are keyed by
    parents."""
    ported = (layer.proto == 17)[:, None]
    ports = np.where(ported, np.stack([layer.sport, layer.dport], axis=1), 0)
    parent = None
    if key_by_parent:
        inside = np.broadcast_to(nested, t.shape)[:, None]
        parent = np.where(inside, _outermost(b, t).parent_field(), 0).astype(np.uint8)
    keys, _ = pack_keys(layer.src, layer.dst, ports[:, 0], ports[:, 1], layer.proto,
                        *_key_vlans(b, t, key_by_parent), parent)  # fmt: skip
    return keys


def _unless(bad: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    """``values`` as int64, 0 where ``bad``."""
    return values.astype(np.int64) if bad is None else np.where(bad, 0, values).astype(np.int64)


def _key_vlans(b: PacketBatch, sel, key_by_parent: bool) -> tuple[np.ndarray, np.ndarray]:
    """The VLAN ids that go into the keys of rows ``sel``: none with Zeek's keying, which
    is the 5-tuple only (a VLAN-aware key is an opt-in of Zeek's), so one connection
    whose two directions travel on different VLANs stays one flow."""
    if key_by_parent:
        return b.vlan[sel], b.inner_vlan[sel]
    none = np.full(len(b.vlan[sel]), NO_VLAN, dtype=b.vlan.dtype)
    return none, none


def _with_tunnel_rows(
    rows: Rows,
    b: PacketBatch,
    outer: np.ndarray,
    mid: np.ndarray,
    first_pos: int,
    key_by_parent: bool,
) -> Rows:
    """Append one UDP row per tunnelled packet for each UDP tunnel flow it crosses (the
    outermost, and a tunnel inside it), in capture order."""
    width = rows.keys.shape[1]
    parts = []
    if len(outer):
        parts.append(_tunnel_rows(b, outer, _outermost(b, outer), None, first_pos,
                                  key_by_parent, width))  # fmt: skip
    if len(mid):
        grand = _layer_key(b, mid, _outermost(b, mid), False, key_by_parent)
        grand[b.outer_proto[mid] != 17] = 0  # only a UDP tunnel has a flow of its own
        parts.append(_tunnel_rows(b, mid, _middle(b, mid), grand, first_pos, key_by_parent,
                                  width))  # fmt: skip
    merged = {}
    for name in Rows.__slots__:
        values = [getattr(r, name) for r in (rows, *parts)]
        if name in ("parent", "uncounted"):
            if all(v is None for v in values):
                merged[name] = None
                continue
            shape = (KEY_WIDTH,) if name == "parent" else ()
            dtype = np.uint8 if name == "parent" else bool
            values = [np.zeros((len(r), *shape), dtype) if v is None else v
                      for r, v in zip((rows, *parts), values, strict=True)]  # fmt: skip
        elif name == "outer":
            values = [np.zeros(len(rows), dtype=bool), *(np.ones(len(p), bool) for p in parts)]
        merged[name] = np.concatenate(values)
    both = Rows(**merged)
    return both.take(np.argsort(both.pos, kind="stable"))


def _tunnel_rows(
    b: PacketBatch,
    t: np.ndarray,
    layer: _Encapsulation,
    parent: np.ndarray | None,
    first_pos: int,
    key_by_parent: bool,
    width: int,
) -> Rows:
    """Rows of the UDP flow ``layer`` makes for packets ``t`` (``parent``: that flow's own
    tunnel parent's key, for a tunnel inside another)."""
    v4 = is_v4(layer.src)
    hdr = np.where(v4, 20, 40)
    ip_len = layer.ip_len.astype(np.int64)
    parent_field = None
    if key_by_parent and parent is not None:
        parent_field = _outermost(b, t).parent_field()
        parent_field[b.outer_proto[t] != 17] = 0
    keys, direction = pack_keys(
        layer.src, layer.dst, layer.sport, layer.dport, layer.proto,
        *_key_vlans(b, t, key_by_parent), parent_field, full=width == KEY_WIDTH,
    )  # fmt: skip
    zeros = np.zeros(len(t), dtype=np.uint32)
    return Rows(
        keys=keys,
        dir=direction,
        pos=first_pos + t.astype(np.int64),
        ts=b.ts_ns[t],
        proto=np.full(len(t), 17, dtype=np.uint8),
        ip_version=np.where(v4, 4, 6).astype(np.uint8),
        sport=layer.sport,
        dport=layer.dport,
        flags=zeros.astype(np.uint16),
        seq=zeros,
        ack=zeros,
        window=zeros.astype(np.uint16),
        payload=np.maximum(ip_len - hdr - 8, 0),
        ip_len=ip_len,
        mac=b.src_mac[t],
        vlans=np.stack([b.vlan[t], b.inner_vlan[t]], axis=1),
        frag=np.zeros(len(t), dtype=bool),
        uncounted=None,
        parent=parent,
    )
