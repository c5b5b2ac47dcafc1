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
from portlabel.flows.keys import KEY_WIDTH, flow_ports, hash_rows, pack_keys, pack_parent

# bytes between an outer IP header and the inner IP header, per UDP tunnel type
# (used only when the decoder provides no outer IP length)
_TUNNEL_OVERHEAD = {
    TunnelType.VXLAN: 8 + 8 + 14,
    TunnelType.GENEVE: 8 + 8 + 14,
    TunnelType.GTP_U: 8 + 8,
    TunnelType.TEREDO: 8,
}
_OVERHEAD = np.zeros(256, dtype=np.int64)
for _t, _v in _TUNNEL_OVERHEAD.items():
    _OVERHEAD[_t] = _v
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
    payload: np.ndarray
    ip_len: np.ndarray
    mac: np.ndarray  # sender MAC
    vlans: np.ndarray  # (n, 2) int32: outer and inner VLAN id, -1 for none
    frag: np.ndarray  # bool: non-first fragment (counted, not analysed)
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
    tunnelled = b.tunnel[sel] != TunnelType.NONE
    vlan, ivlan = _key_vlans(b, sel, key_by_parent)

    parent_keys = None
    parent_field = None
    # the outer UDP flow exists whatever the inner frame was (ARP inside VXLAN, ...)
    outer = np.flatnonzero((b.tunnel != TunnelType.NONE) & (b.outer_proto == 17))
    if tunnelled.any():
        t = idx[tunnelled]
        outer_ports = np.where(
            (b.outer_proto[t] == 17)[:, None],
            np.stack([b.outer_sport[t], b.outer_dport[t]], axis=1),
            0,
        )
        pk, _ = pack_keys(
            b.outer_src_ip[t],
            b.outer_dst_ip[t],
            outer_ports[:, 0],
            outer_ports[:, 1],
            b.outer_proto[t],
            *_key_vlans(b, t, key_by_parent),
        )
        parent_keys = np.zeros((len(idx), pk.shape[1]), dtype=np.uint8)
        parent_keys[tunnelled] = pk
        if key_by_parent:
            parent_field = pack_parent(
                b.outer_src_ip[idx],
                b.outer_dst_ip[idx],
                b.outer_sport[idx],
                b.outer_dport[idx],
                b.outer_proto[idx],
                b.tunnel[idx],
            )
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
        flags=np.where(tcp_ok, b.tcp_flags[sel], 0).astype(np.uint16),
        seq=b.tcp_seq[sel],
        ack=b.tcp_ack[sel],
        payload=b.payload_len[sel].astype(np.int64),
        ip_len=b.ip_len[sel].astype(np.int64),
        mac=b.src_mac[sel],
        vlans=np.stack([b.vlan[sel], b.inner_vlan[sel]], axis=1),
        frag=frag,
        parent=parent_keys,
    )
    if len(outer):
        rows = _with_outer_rows(rows, b, outer, first_pos, key_by_parent)
    return rows, left_out


def _key_vlans(b: PacketBatch, sel, key_by_parent: bool) -> tuple[np.ndarray, np.ndarray]:
    """The VLAN ids that go into the keys of rows ``sel``: none with Zeek's keying, which
    is the 5-tuple only (a VLAN-aware key is an opt-in of Zeek's), so one connection
    whose two directions travel on different VLANs stays one flow."""
    if key_by_parent:
        return b.vlan[sel], b.inner_vlan[sel]
    none = np.full(len(b.vlan[sel]), NO_VLAN, dtype=b.vlan.dtype)
    return none, none


def _with_outer_rows(
    rows: Rows, b: PacketBatch, t: np.ndarray, first_pos: int, key_by_parent: bool
) -> Rows:
    """Append one UDP row per tunnelled packet for its outer (parent) flow, in time order."""
    v4 = is_v4(b.outer_src_ip[t])
    hdr = np.where(v4, 20, 40)
    outer_len = getattr(b, "outer_ip_len", None)
    if outer_len is not None:
        ip_len = outer_len[t].astype(np.int64)
    else:  # an estimate until the decoder records the outer IP length
        ip_len = b.ip_len[t].astype(np.int64) + hdr + _OVERHEAD[b.tunnel[t]]
        no_ip = b.ip_version[t] == 0
        tags = 4 * ((b.vlan[t] >= 0).astype(np.int64) + (b.inner_vlan[t] >= 0))
        ip_len[no_ip] = (b.wirelen[t].astype(np.int64) - 14 - tags)[no_ip]
    keys, direction = pack_keys(
        b.outer_src_ip[t],
        b.outer_dst_ip[t],
        b.outer_sport[t],
        b.outer_dport[t],
        b.outer_proto[t],
        *_key_vlans(b, t, key_by_parent),
        full=rows.keys.shape[1] == KEY_WIDTH,  # as wide as the rows they join
    )
    zeros = np.zeros(len(t), dtype=np.uint32)
    extra = Rows(
        keys=keys,
        dir=direction,
        pos=first_pos + t.astype(np.int64),
        ts=b.ts_ns[t],
        proto=np.full(len(t), 17, dtype=np.uint8),
        ip_version=np.where(v4, 4, 6).astype(np.uint8),
        sport=b.outer_sport[t],
        dport=b.outer_dport[t],
        flags=zeros.astype(np.uint16),
        seq=zeros,
        ack=zeros,
        payload=np.maximum(ip_len - hdr - 8, 0),
        ip_len=ip_len,
        mac=b.src_mac[t],
        vlans=np.stack([b.vlan[t], b.inner_vlan[t]], axis=1),
        frag=np.zeros(len(t), dtype=bool),
        parent=None if rows.parent is None else np.zeros((len(t), rows.parent.shape[1]), np.uint8),
    )
    merged = {}
    for name in Rows.__slots__:
        a, c = getattr(rows, name), getattr(extra, name)
        merged[name] = None if a is None else np.concatenate([a, c])
    merged["outer"] = np.r_[np.zeros(len(rows), dtype=bool), np.ones(len(t), dtype=bool)]
    both = Rows(**merged)
    return both.take(np.argsort(both.pos, kind="stable"))
