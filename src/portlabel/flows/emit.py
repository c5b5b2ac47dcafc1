"""Turning finished flow records into a ``FlowBatch`` (a pyarrow Table, ``FLOW_SCHEMA``).

Records are in canonical direction; here each flow is turned to originator/responder,
Zeek's derived fields are computed (bytes from sequence space, conn_state, history string,
nulls for zero-duration flows) and the string columns are rendered. Text columns are rendered
vectorised (``render``); per-flow Python is limited to the Community ID SHA-1.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import numeric, string_lists, strings
from portlabel.constants import PROTOCOL_NAMES, ZEEK_PROTO_NAMES, ZEEK_UNKNOWN_PROTO
from portlabel.flows.columns import END_REASONS, FLOW_SCHEMA, RESPONDER_BY, TIMESTAMP, empty_table
from portlabel.flows.community_id import community_id_chars
from portlabel.flows.keys import unpack, unpack_int
from portlabel.flows.letters import history_with_events
from portlabel.flows.records import NO_POS, Records
from portlabel.flows.render import (
    addresses,
    fixed_width,
    letters_by_position,
    macs,
    names,
    uid_strings,
)
from portlabel.flows.tcp_state import (
    CONN_STATES,
    HISTORY_KINDS,
    K_A,
    K_F,
    K_H,
    K_I,
    K_Q,
    K_R,
    K_S,
    conn_state_codes,
)

_LETTERS = np.array(
    [ord(c) for c in HISTORY_KINDS.upper()] + [ord(c) for c in HISTORY_KINDS.lower()] + [ord("^")],
    dtype=np.uint8,
)


def _by_proto(proto: np.ndarray, table: dict[int, str], default: str) -> pa.Array:
    return names(proto, _proto_table(tuple(table.items()), default))


@functools.lru_cache(maxsize=8)
def _proto_table(pairs: tuple[tuple[int, str], ...], default: str) -> tuple[str, ...]:
    table = dict(pairs)
    return tuple(table.get(i, default) for i in range(256))


def _no_lists(n: int) -> pa.Array:
    """``n`` empty string lists."""
    return pa.ListArray.from_arrays(numeric(np.zeros(n + 1, dtype=np.int32)), strings([]))


def _orient(pair: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.arange(len(side))
    return pair[rows, side], pair[rows, 1 - side]


def _tcp_sizes(rec: Records) -> np.ndarray:
    size = np.maximum(rec["seq_end"], rec["acked"])
    size = np.where(size > 0, size - 1, 0)
    return np.where((rec["fins"] > 0) & (size > 0), size - 1, size)


def _history(first_pos: np.ndarray, side: np.ndarray, flipped: np.ndarray) -> np.ndarray:
    """History characters (NUL-padded rows) and letter positions; the position columns
    are reordered so that 0-7 are the originator's letters."""
    pos = np.where(side[:, None] == 0, first_pos, np.roll(first_pos, 8, axis=1))
    pos = np.concatenate([pos, np.where(flipped, -1, NO_POS)[:, None]], axis=1)
    return letters_by_position(pos, _LETTERS, NO_POS), pos


def _with_scaled_letters(history, pos, letters, side) -> np.ndarray:
    """The history matrix with each flow's scaled letters (c/t/w/g) inserted."""
    rows = [i for i, events in enumerate(letters) if events]
    if not rows:  # a piece of flows none of which has any
        return history
    texts = {}
    for i in rows:
        chars = history[i][history[i] != 0].tobytes().decode("ascii")
        positions = np.sort(pos[i][pos[i] != NO_POS]).tolist()
        texts[i] = history_with_events(chars, positions, letters[i], int(side[i]))
    width = max(history.shape[1], max(len(t) for t in texts.values()))
    out = np.zeros((len(history), width), dtype=np.uint8)
    out[:, : history.shape[1]] = history
    for i, text in texts.items():
        out[i, :] = 0
        out[i, : len(text)] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return out


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
    parents: list[list[str]] | None,
    cid_seed: int = 0,
    letters: list[list[tuple[int, int]]] | None = None,
) -> pa.Table:
    """The FlowBatch for finished records (``parents[i]``: tunnel parent uids of flow i;
    ``letters[i]``: its scaled-letter events; None: no flow has any)."""
    n = len(rec["key"])
    if n == 0:
        return empty_table(FLOW_SCHEMA)
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
    if letters is not None:
        history = _with_scaled_letters(history, pos, letters, side)
    states = conn_state_codes(
        proto, rec["joint"], o_pkts, r_pkts, (o_bytes == 0) & (r_bytes == 0), _syn_then_rst(pos)
    )
    vlan, ivlan = rec["vlans"][:, 0], rec["vlans"][:, 1]
    o_mac, r_mac = _orient(rec["mac"], side)
    cids = community_id_chars(
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
        "ts": numeric(rec["first_ts"].astype(np.int64)).view(TIMESTAMP),
        "uid": uid_strings(rec["uid"]),
        "id.orig_h": addresses(orig_ip, v4),
        "id.orig_p": numeric(orig_p.astype(np.uint16)),
        "id.resp_h": addresses(resp_ip, v4),
        "id.resp_p": numeric(resp_p.astype(np.uint16)),
        "proto": _by_proto(proto, ZEEK_PROTO_NAMES, ZEEK_UNKNOWN_PROTO),
        "duration": numeric(dur_ns / 1e9, zero),
        "orig_bytes": numeric(o_bytes.astype(np.uint64), zero),
        "resp_bytes": numeric(r_bytes.astype(np.uint64), zero),
        "conn_state": names(states, CONN_STATES),
        "missed_bytes": numeric(missed.astype(np.uint64)),
        "history": fixed_width(history, null_mask=history[:, 0] == 0),
        "orig_pkts": numeric(o_pkts.astype(np.uint64)),
        "orig_ip_bytes": numeric(o_ipb.astype(np.uint64)),
        "resp_pkts": numeric(r_pkts.astype(np.uint64)),
        "resp_ip_bytes": numeric(r_ipb.astype(np.uint64)),
        "tunnel_parents": _no_lists(n) if parents is None else string_lists(parents),
        "vlan": numeric(vlan.astype(np.int32), vlan < 0),
        "inner_vlan": numeric(ivlan.astype(np.int32), ivlan < 0),
        "community_id": fixed_width(cids),
        "orig_l2_addr": macs(o_mac),
        "resp_l2_addr": macs(r_mac),
        "ip_proto": numeric(proto.astype(np.uint8)),
        "transport": _by_proto(proto, PROTOCOL_NAMES, "other"),
        "responder_by": names(rec["by"], RESPONDER_BY),
        "end_reason": names(reasons, END_REASONS),
    }
    return pa.Table.from_arrays(list(cols.values()), schema=FLOW_SCHEMA)
