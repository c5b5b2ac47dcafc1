"""Cutting grouped packet rows into flow segments and summing each segment.

Rows of one key are split into separate flows where Zeek would start a new connection:
after an idle gap longer than the transport's inactivity timeout (DNS over UDP: Zeek's
shorter ``dns_session_timeout``), after a quiet gap longer than the close delay that
follows a burst holding a RST, FINs from both sides, or any FIN on a connection joined
mid-stream (Zeek removes such connections after its close/reset/partial-close delays),
on a
fresh SYN after a RST/FIN in the same burst (connection reuse), and, if configured,
when a flow has been active longer than the active timeout.

``aggregate`` then computes per-segment sums with ``np.bincount``/``ufunc.at``; nothing
here loops over packets in Python.
"""

from __future__ import annotations

import numpy as np

from portlabel.flows.packets import Rows
from portlabel.flows.records import N_LETTERS, NO_POS, Records, empty_records
from portlabel.flows.tcp_state import ACK, FIN, K_D, RST, SYN, tcp_history_kind

_DNS_PORTS = np.zeros(65536, dtype=bool)
_DNS_PORTS[[53, 137, 5353, 5355]] = True  # where Zeek's DNS analyzer runs over UDP


def idle_timeouts(proto: np.ndarray, config, port_a=None, port_b=None) -> np.ndarray:
    """Inactivity timeout (ns) per row, by transport (and DNS ports for UDP)."""
    tcp, udp = int(config.tcp_inactivity * 1e9), int(config.udp_inactivity * 1e9)
    icmp, other = int(config.icmp_inactivity * 1e9), int(config.other_inactivity * 1e9)
    out = np.full(len(proto), other, dtype=np.int64)
    out[proto == 6] = tcp
    out[proto == 17] = udp
    out[(proto == 1) | (proto == 58)] = icmp
    if port_a is not None and config.dns_inactivity is not None:
        dns = (proto == 17) & (_DNS_PORTS[port_a] | _DNS_PORTS[port_b])
        out[dns] = int(config.dns_inactivity * 1e9)
    return out


def cut(rows: Rows, group_start: np.ndarray, config) -> np.ndarray:
    """Boolean ``starts`` over rows (sorted by key, then capture order): new flow here."""
    n = len(rows)
    ts = rows.ts
    dt = np.zeros(n, dtype=np.int64)
    dt[1:] = ts[1:] - ts[:-1]
    dt[group_start] = 0
    brk = group_start | (dt > idle_timeouts(rows.proto, config, rows.sport, rows.dport))

    close_ns = int(config.close_delay * 1e9)
    quiet = (dt > close_ns) & ~group_start
    burst = np.cumsum(group_start | quiet) - 1
    f = rows.flags
    rst = (f & RST) != 0
    fin = (f & FIN) != 0
    nb = int(burst[-1]) + 1 if n else 0
    rst_b = np.bincount(burst, weights=rst, minlength=nb) > 0
    fin0 = np.bincount(burst, weights=fin & (rows.dir == 0), minlength=nb) > 0
    fin1 = np.bincount(burst, weights=fin & (rows.dir == 1), minlength=nb) > 0
    # a flow whose first packet is no SYN is "partial": one FIN ends it
    gid = np.cumsum(group_start) - 1
    partial = (f[group_start] & SYN) == 0
    burst_partial = partial[gid[np.flatnonzero(group_start | quiet)]]
    closing = rst_b | (fin0 & fin1) | ((fin0 | fin1) & burst_partial)
    q = np.flatnonzero(quiet)
    brk[q] |= closing[burst[q] - 1]

    # a bare SYN after a RST/FIN earlier in the same burst opens a new connection
    ender = (rst | fin).astype(np.int64)
    c = np.cumsum(ender) - ender
    burst_first = np.flatnonzero(group_start | quiet)
    prior = c - c[burst_first][burst]
    bare_syn = ((f & SYN) != 0) & ((f & ACK) == 0)
    brk |= bare_syn & (prior > 0)

    if config.active_timeout is not None:
        limit = int(config.active_timeout * 1e9)
        while True:  # each pass cuts once more per over-long flow
            seg = np.cumsum(brk) - 1
            seg_start_ts = ts[np.flatnonzero(brk)][seg]
            over = (ts - seg_start_ts) > limit
            if not over.any():
                break
            first_over = over & ~np.r_[False, over[:-1] & (seg[1:] == seg[:-1])]
            brk |= first_over
    return brk


def first_index(bucket: np.ndarray, n_buckets: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Index of the first row in each bucket (rows are in order); len(bucket) if none."""
    n = len(bucket)
    out = np.full(n_buckets, n, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    if mask is not None:
        bucket, idx = bucket[mask], idx[mask]
    # reversed assignment: the earliest row writes last and wins
    out[bucket[::-1]] = idx[::-1]
    return out


def aggregate(rows: Rows, seg: np.ndarray, n_seg: int) -> Records:
    """Per-segment sums that need no flow state (TCP sequence work comes later)."""
    rec = empty_records(n_seg)
    sd = seg * 2 + rows.dir
    m = 2 * n_seg
    rec["pkts"] = np.bincount(sd, minlength=m).reshape(n_seg, 2).astype(np.int64)
    rec["ip_bytes"] = (
        np.bincount(sd, weights=rows.ip_len, minlength=m).reshape(n_seg, 2).astype(np.int64)
    )
    rec["payload"] = (
        np.bincount(sd, weights=rows.payload, minlength=m).reshape(n_seg, 2).astype(np.int64)
    )
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    ends = np.r_[starts[1:], len(seg)] - 1
    rec["key"] = rows.keys[starts]
    rec["ip_version"] = rows.ip_version[starts]
    rec["first_ts"] = rows.ts[starts]
    rec["last_ts"] = rows.ts[ends]
    first_sd = first_index(sd, m)
    has = first_sd < len(seg)
    mac = np.zeros(m, dtype=np.uint64)
    mac[has] = rows.mac[first_sd[has]]
    rec["mac"] = mac.reshape(n_seg, 2)
    rec["fins"] = (
        np.bincount(sd, weights=(rows.flags & FIN) != 0, minlength=m)
        .reshape(n_seg, 2)
        .astype(np.int64)
    )

    kind = tcp_history_kind(rows.flags, rows.payload)
    kind[rows.proto == 17] = K_D
    kind[(rows.proto != 6) & (rows.proto != 17)] = -1
    kind[rows.frag] = -1
    has_letter = kind >= 0
    col = seg * N_LETTERS + rows.dir.astype(np.int64) * 8 + kind
    first_col = first_index(col, n_seg * N_LETTERS, has_letter)
    pos = np.full(n_seg * N_LETTERS, NO_POS, dtype=np.int64)
    seen = first_col < len(seg)
    pos[seen] = rows.pos[first_col[seen]]
    rec["first_pos"] = pos.reshape(n_seg, N_LETTERS)
    return rec
