"""Turning finished flow records into a ``FlowBatch`` (a pyarrow Table, ``FLOW_SCHEMA``).

Records are in canonical direction; here each flow is turned to originator/responder,
Zeek's derived fields are computed (bytes from sequence space, conn_state, history string,
nulls for zero-duration flows) and the string columns are rendered. Per-flow Python is
limited to address formatting and the Community ID SHA-1.
"""

from __future__ import annotations

import socket

import numpy as np
import pyarrow as pa

from portlabel.flows.columns import END_REASONS, FLOW_SCHEMA, RESPONDER_BY
from portlabel.flows.community_id import community_ids
from portlabel.flows.keys import unpack, unpack_int
from portlabel.flows.records import NO_POS, Records
from portlabel.flows.tcp_state import HISTORY_KINDS, K_A, K_F, K_H, K_I, K_Q, K_R, K_S, conn_state
from portlabel.flows.uid import UidSource

_LETTERS = np.array(
    [ord(c) for c in HISTORY_KINDS.upper()] + [ord(c) for c in HISTORY_KINDS.lower()] + [ord("^")],
    dtype=np.uint32,
)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
_TRANSPORTS = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp", 1: "icmp", 58: "icmp6"}


def _names(proto: np.ndarray, table: dict[int, str], default: str) -> np.ndarray:
    lut = np.array([table.get(i, default) for i in range(256)], dtype=object)
    return lut[proto]


def _addresses(ips: np.ndarray, v4: np.ndarray) -> list[str]:
    raw = np.ascontiguousarray(ips).tobytes()
    out = []
    for i, is4 in enumerate(v4.tolist()):
        b = raw[16 * i : 16 * i + 16]
        out.append(
            socket.inet_ntop(socket.AF_INET, b[12:])
            if is4
            else socket.inet_ntop(socket.AF_INET6, b)
        )
    return out


def _macs(mac: np.ndarray) -> pa.Array:
    b = mac.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 2:]
    chars = np.full((len(mac), 17), ord(":"), dtype=np.uint8)
    chars[:, 0::3] = _HEX[b >> 4]
    chars[:, 1::3] = _HEX[b & 15]
    strs = chars.view("S17").ravel().astype(str)
    return pa.array(strs, type=pa.string(), mask=mac == 0)


def _orient(pair: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(side))
    return pair[rows, side], pair[rows, 1 - side]


def _tcp_sizes(rec: Records) -> np.ndarray:
    size = np.maximum(rec["seq_end"], rec["acked"])
    size = np.where(size > 0, size - 1, 0)
    return np.where((rec["fins"] > 0) & (size > 0), size - 1, size)


def _history(first_pos: np.ndarray, side: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """History strings; columns reordered so that 0-7 are the originator's letters."""
    pos = np.where(side[:, None] == 0, first_pos, np.roll(first_pos, 8, axis=1))
    pos = np.concatenate([pos, np.where(flipped, -1, NO_POS)[:, None]], axis=1)
    order = np.argsort(pos, axis=1, kind="stable")
    codes = np.where(np.take_along_axis(pos, order, 1) == NO_POS, 0, _LETTERS[order])
    return codes.astype(np.uint32).view(f"<U{codes.shape[1]}").ravel(), pos


def _syn_then_rst(pos: np.ndarray) -> np.ndarray:
    """History matches ``^?S[^HAFGIQ]*R`` (an originator SYN answered by nothing but RST)."""
    s, r = pos[:, K_S], pos[:, K_R]
    letters = pos[:, :16]
    starts_with_s = (s != NO_POS) & (s == letters.min(axis=1))
    blockers = pos[:, [K_H, K_A, K_F, K_I, K_Q]].min(axis=1)
    return starts_with_s & (r != NO_POS) & (blockers > r)


def to_flow_batch(
    rec: Records,
    reasons: np.ndarray,
    parents: list[list[str]],
    cid_seed: int = 0,
) -> pa.Table:
    """The FlowBatch for finished records (``parents[i]``: tunnel parent uids of flow i)."""
    n = len(rec["key"])
    if n == 0:
        return FLOW_SCHEMA.empty_table()
    keys = rec["key"]
    side = rec["orig_side"].astype(np.int64)
    a_ip, b_ip = unpack(keys, "a_ip"), unpack(keys, "b_ip")
    a_p, b_p = unpack_int(keys, "a_port", ">u2"), unpack_int(keys, "b_port", ">u2")
    proto = unpack(keys, "proto")[:, 0].copy()
    orig_ip = np.where(side[:, None] == 0, a_ip, b_ip)
    resp_ip = np.where(side[:, None] == 0, b_ip, a_ip)
    orig_p, resp_p = np.where(side == 0, a_p, b_p), np.where(side == 0, b_p, a_p)
    v4 = rec["ip_version"] == 4

    o_pkts, r_pkts = _orient(rec["pkts"], side)
    o_ipb, r_ipb = _orient(rec["ip_bytes"], side)
    tcp = proto == 6
    sizes = np.where(tcp[:, None], _tcp_sizes(rec), rec["payload"])
    o_bytes, r_bytes = _orient(sizes, side)
    # sequence space never carried by a captured packet (retransmissions hide some)
    gap = np.maximum(_tcp_sizes(rec) - rec["payload"], 0).sum(axis=1)
    missed = np.where(tcp, gap, 0)
    dur_ns = rec["last_ts"] - rec["first_ts"]
    zero = dur_ns == 0
    history, pos = _history(rec["first_pos"], side, rec["flipped"])
    states = conn_state(
        proto, rec["joint"], o_pkts, r_pkts, (o_bytes == 0) & (r_bytes == 0), _syn_then_rst(pos)
    )
    vlan = unpack_int(keys, "vlan", ">i4")
    ivlan = unpack_int(keys, "inner_vlan", ">i4")
    o_mac, r_mac = _orient(rec["mac"], side)
    cids = community_ids(
        orig_ip,
        resp_ip,
        rec["ip_version"],
        proto,
        orig_p,
        resp_p,
        orig_p.astype(np.uint8),
        resp_p.astype(np.uint8),
        seed=cid_seed,
    )
    cols = {
        "ts": pa.array(rec["first_ts"] / 1e9),
        "uid": pa.array(UidSource.render(rec["uid"]), type=pa.string()),
        "id.orig_h": pa.array(_addresses(orig_ip, v4), type=pa.string()),
        "id.orig_p": pa.array(orig_p.astype(np.uint16)),
        "id.resp_h": pa.array(_addresses(resp_ip, v4), type=pa.string()),
        "id.resp_p": pa.array(resp_p.astype(np.uint16)),
        "proto": pa.array(_names(proto, _PROTO_NAMES, "unknown_transport"), type=pa.string()),
        "duration": pa.array(dur_ns / 1e9, mask=zero),
        "orig_bytes": pa.array(o_bytes.astype(np.uint64), mask=zero),
        "resp_bytes": pa.array(r_bytes.astype(np.uint64), mask=zero),
        "conn_state": pa.array(states, type=pa.string()),
        "missed_bytes": pa.array(missed.astype(np.uint64)),
        "history": pa.array(history, type=pa.string(), mask=history == ""),
        "orig_pkts": pa.array(o_pkts.astype(np.uint64)),
        "orig_ip_bytes": pa.array(o_ipb.astype(np.uint64)),
        "resp_pkts": pa.array(r_pkts.astype(np.uint64)),
        "resp_ip_bytes": pa.array(r_ipb.astype(np.uint64)),
        "tunnel_parents": pa.array(parents, type=pa.list_(pa.string())),
        "vlan": pa.array(vlan.astype(np.int32), mask=vlan < 0),
        "inner_vlan": pa.array(ivlan.astype(np.int32), mask=ivlan < 0),
        "community_id": pa.array(cids, type=pa.string()),
        "orig_l2_addr": _macs(o_mac),
        "resp_l2_addr": _macs(r_mac),
        "ip_proto": pa.array(proto.astype(np.uint8)),
        "transport": pa.array(_names(proto, _TRANSPORTS, "other"), type=pa.string()),
        "responder_by": pa.array(
            np.asarray(RESPONDER_BY, dtype=object)[rec["by"]], type=pa.string()
        ),
        "end_reason": pa.array(np.asarray(END_REASONS, dtype=object)[reasons], type=pa.string()),
    }
    return pa.Table.from_pydict(cols, schema=FLOW_SCHEMA)
