"""Cutting grouped packet rows into flow segments and summing each segment.

Rows of one key are split into separate flows where Zeek would start a new connection:
after an idle gap longer than the transport's inactivity timeout (DNS over UDP: Zeek's
shorter ``dns_session_timeout``), after a quiet gap longer than the close delay that
follows a burst holding a RST, FINs from both sides, or any FIN on a connection joined
mid-stream (Zeek removes such connections after its close/reset/partial-close delays),
on a
fresh SYN after a RST/FIN in the same burst (connection reuse), when an unanswered
connection attempt outlives Zeek's ``tcp_attempt_delay`` (the flow began with a bare
SYN, the originator has sent no FIN/RST and the responder nothing that made it active:
Zeek removes the connection then, and a later packet starts a new one), and, if
configured, when a flow has been active longer than the active timeout.

Splitting a capture into batches must not change the result, so a flow that goes on in
the next batch carries what the cutting rules look back at: its last timestamp, whether
its first packet had a SYN, whether it is still an unanswered attempt, which side
originated it and which RST/FINs its last burst held (``Carry``, the ``cut_state`` bits).
Whether one FIN ends a flow depends on where the flow began, which
depends on earlier cuts; ``_partial_closes`` resolves that chain without a loop.

``aggregate`` then computes per-segment sums, in one pass of the C extension
``_aggregate`` when it is built, else with ``np.bincount`` and first-index tables; nothing
here loops over packets in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portlabel.flows.attempts import Attempts
from portlabel.flows.packets import Rows
from portlabel.flows.records import N_LETTERS, NO_POS, RECORD_DTYPE, Records, empty_records
from portlabel.flows.tcp_state import ACK, FIN, K_D, RST, SYN, tcp_history_kind

try:
    from portlabel.flows import _aggregate
except ImportError:  # built without a C compiler: bincount and first-index tables
    _aggregate = None

_DNS_PORTS = np.zeros(65536, dtype=bool)
_DNS_PORTS[[53, 137, 5353, 5355]] = True  # where Zeek's DNS analyzer runs over UDP


def idle_timeouts(proto: np.ndarray, config, port_a=None, port_b=None) -> np.ndarray:
    """Inactivity timeout (ns) per row, by transport (and DNS ports for UDP)."""
    out = _timeout_table(config)[proto]
    if port_a is not None and config.dns_timeout is not None:
        udp = np.flatnonzero(proto == 17)
        dns = udp[_DNS_PORTS[port_a[udp]] | _DNS_PORTS[port_b[udp]]]
        out[dns] = int(config.dns_timeout * 1e9)
    return out


def _timeout_table(config) -> np.ndarray:
    """Inactivity timeout (ns) by IP protocol number."""
    table = np.full(256, int(config.other_timeout * 1e9), dtype=np.int64)
    table[6] = int(config.tcp_timeout * 1e9)
    table[17] = int(config.udp_timeout * 1e9)
    table[[1, 58]] = int(config.icmp_timeout * 1e9)
    return table


# bits of a flow's cut state, carried between batches (``Records["cut_state"]``)
CS_RST, CS_FIN0, CS_FIN1, CS_PARTIAL = 1, 2, 4, 8  # and attempts.CS_ATTEMPT (16)
CS_ENDERS = CS_RST | CS_FIN0 | CS_FIN1


def closing(state: np.ndarray) -> np.ndarray:
    """Cut states whose last burst closes the flow once quiet for the close delay."""
    rst = (state & CS_RST) != 0
    fin0, fin1 = (state & CS_FIN0) != 0, (state & CS_FIN1) != 0
    return rst | (fin0 & fin1) | ((fin0 | fin1) & ((state & CS_PARTIAL) != 0))


@dataclass(slots=True)
class Carry:
    """What the stored flows of a batch's key groups bring in (one entry per group)."""

    known: np.ndarray  # bool: a stored flow has this key
    last_ts: np.ndarray  # int64
    first_ts: np.ndarray  # int64
    state: np.ndarray  # uint8 cut state (CS_* bits)
    orig_side: np.ndarray  # uint8: the canonical direction the originator sends in


@dataclass(slots=True)
class Cuts:
    """Where the rows of a batch start segments, and what each segment carries on."""

    starts: np.ndarray  # bool per row: a segment starts here (every group start is one)
    cont: np.ndarray  # bool per group: its first segment continues the stored flow
    state: np.ndarray  # uint8 cut state per segment


def cut(rows: Rows, group_start: np.ndarray, config, carry: Carry | None = None) -> Cuts:
    """Segments of rows sorted by key, then capture order.

    The result does not depend on how the capture was split into batches: a group that
    continues a stored flow sees that flow's last timestamp, first-packet SYN and last
    burst's RST/FINs (``carry``) as if its packets were in this batch.
    """
    n = len(rows)
    ts = rows.ts
    g0 = np.flatnonzero(group_start)
    gid = np.cumsum(group_start) - 1
    dt = np.zeros(n, dtype=np.int64)
    dt[1:] = ts[1:] - ts[:-1]
    virt = np.zeros(n, dtype=bool)  # first row of a group that has a stored flow
    if carry is not None and carry.known.any():
        virt[g0[carry.known]] = True
        dt[g0] = np.where(carry.known, ts[g0] - carry.last_ts, 0)
    else:
        dt[g0] = 0
        carry = None
    fresh = group_start & ~virt
    brk = fresh | (dt > idle_timeouts(rows.proto, config, rows.sport, rows.dport))

    close_ns = int(config.close_delay * 1e9)
    quiet = (dt > close_ns) & ~fresh
    new_burst = fresh | quiet | virt
    burst = np.cumsum(new_burst) - 1
    nb = int(burst[-1]) + 1 if n else 0
    f = rows.flags
    rst = (f & RST) != 0
    fin = (f & FIN) != 0
    # each burst's RST/FIN bits: an OR over its rows (bursts are runs of rows)
    row_bits = np.where(rst, CS_RST, 0).astype(np.uint8)
    row_bits |= np.where(fin, np.where(rows.dir == 0, CS_FIN0, CS_FIN1), 0).astype(np.uint8)
    burst_starts = np.flatnonzero(new_burst)
    bits = np.bitwise_or.reduceat(row_bits, burst_starts) if n else row_bits
    carried = np.flatnonzero(virt & ~quiet)  # bursts that go on from the stored flow's last
    if carry is not None:
        bits[burst[carried]] |= carry.state[gid[carried]] & CS_ENDERS

    # a bare SYN after a RST/FIN earlier in the same burst opens a new connection
    ender = (rst | fin).astype(np.int64)
    c = np.cumsum(ender) - ender
    prior = c - c[burst_starts][burst]
    if carry is not None and len(carried):
        in_carried = np.zeros(nb, dtype=bool)
        in_carried[burst[carried]] = (carry.state[gid[carried]] & CS_ENDERS) != 0
        prior += in_carried[burst]
    bare_syn = ((f & SYN) != 0) & ((f & ACK) == 0)
    brk |= bare_syn & (prior > 0)

    # after a quiet gap: RST or FINs both ways end the flow; one FIN only a partial one
    q = np.flatnonzero(quiet)
    before = bits[np.maximum(burst[q] - 1, 0)]
    if carry is not None:
        vq = virt[q]
        before[vq] = carry.state[gid[q[vq]]]
    rst_b, fin0, fin1 = before & CS_RST, before & CS_FIN0, before & CS_FIN1
    sure = (rst_b != 0) | ((fin0 != 0) & (fin1 != 0))
    brk[q[sure]] = True
    maybe = q[~sure & ((fin0 | fin1) != 0) & ~brk[q]]
    nosyn = (f & SYN) == 0
    attempts = Attempts(rows, carry, gid, config)
    timed = config.active_timeout is not None or attempts.possible(group_start, virt)
    if not timed:
        if len(maybe):
            brk[maybe[_partial_closes(brk, virt, nosyn, gid, carry, maybe)]] = True
    else:  # cuts by time since a flow's start start flows too: settle them all together
        sure_brk = brk.copy()
        while True:
            brk = sure_brk.copy()
            if len(maybe):
                brk[maybe[_partial_closes(brk, virt, nosyn, gid, carry, maybe)]] = True
            before = brk.copy()
            if config.active_timeout is not None:
                limit = int(config.active_timeout * 1e9)
                _cut_active(ts, brk, virt & ~brk, gid, carry, limit)
            attempts.cut(brk, virt & ~brk)
            if np.array_equal(before, brk):
                break
            sure_brk |= brk & ~before

    starts = brk | group_start
    seg_starts = np.flatnonzero(starts)
    cont_row = virt & ~brk
    partial = nosyn[seg_starts]
    if carry is not None:
        cs = cont_row[seg_starts]
        partial[cs] = (carry.state[gid[seg_starts[cs]]] & CS_PARTIAL) != 0
    ends = np.r_[seg_starts[1:], n] - 1
    state = bits[burst[ends]] | (partial * CS_PARTIAL).astype(np.uint8)
    return Cuts(starts, cont_row[g0], state)


def _partial_closes(brk, virt, nosyn, gid, carry, maybe) -> np.ndarray:
    """Which quiet rows after a one-sided FIN end a flow: those inside a partial flow.

    A row ends the flow when the flow so far began without a SYN. Between two sure cuts
    the flows are a chain: each such row that ends one starts the next, so the k-th
    candidate ends a flow iff the flow before the first one is partial and none of the
    candidates before it carries a SYN.
    """
    sure_start = brk | virt
    dseg = np.cumsum(sure_start) - 1
    heads = np.flatnonzero(sure_start)
    head_partial = nosyn[heads]
    if carry is not None:
        cv = virt[heads] & ~brk[heads]
        head_partial[cv] = (carry.state[gid[heads[cv]]] & CS_PARTIAL) != 0
    d = dseg[maybe]
    syn = (~nosyn[maybe]).astype(np.int64)
    before = np.cumsum(syn) - syn
    first = np.r_[True, d[1:] != d[:-1]]
    base = before[np.flatnonzero(first)][np.cumsum(first) - 1]
    return head_partial[d] & (before == base)


def _cut_active(ts, brk, cont_row, gid, carry, limit: int) -> None:
    """Cut flows longer than ``limit`` ns (each pass cuts once more per over-long flow)."""
    while True:
        head = brk | cont_row
        seg = np.cumsum(head) - 1
        heads = np.flatnonzero(head)
        start_ts = ts[heads]
        cv = cont_row[heads] & ~brk[heads]
        if carry is not None and cv.any():
            start_ts[cv] = carry.first_ts[gid[heads[cv]]]
        over = (ts - start_ts[seg]) > limit
        if not over.any():
            return
        first_over = over & ~np.r_[False, over[:-1] & (seg[1:] == seg[:-1])]
        brk |= first_over


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


def aggregate(
    rows: Rows, seg: np.ndarray, n_seg: int, seg_keys: np.ndarray, compiled: bool = True
) -> Records:
    """Per-segment sums that need no flow state (TCP sequence work comes later);
    ``seg_keys`` is each segment's packed key. Summed in one pass by ``_aggregate`` when
    it is built (``compiled=False``: numpy). Rows with a bad checksum (``uncounted``) are
    in their segment's times but not in its packets (nor, having neither, in its bytes
    or letters)."""
    if compiled and _aggregate is not None:
        rec = _aggregate_compiled(rows, seg, n_seg, seg_keys)
    else:
        rec = _aggregate_numpy(rows, seg, n_seg, seg_keys)
    if rows.uncounted is not None:
        bad = rows.uncounted
        sd = seg[bad] * 2 + rows.dir[bad]
        rec["pkts"] -= np.bincount(sd, minlength=2 * n_seg).reshape(n_seg, 2)
    return rec


def _aggregate_numpy(rows: Rows, seg: np.ndarray, n_seg: int, seg_keys: np.ndarray) -> Records:
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
    rec["key"][:, : seg_keys.shape[1]] = seg_keys  # short keys: the parent part stays 0
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

    kind = _letter_kinds(rows)
    has_letter = kind >= 0
    col = seg * N_LETTERS + rows.dir.astype(np.int64) * 8 + kind
    first_col = first_index(col, n_seg * N_LETTERS, has_letter)
    pos = np.full(n_seg * N_LETTERS, NO_POS, dtype=np.int64)
    seen = first_col < len(seg)
    pos[seen] = rows.pos[first_col[seen]]
    rec["first_pos"] = pos.reshape(n_seg, N_LETTERS)
    return rec


def _letter_kinds(rows: Rows) -> np.ndarray:
    """Each row's history letter kind (-1: none): TCP's from its flags, UDP's D."""
    kind = tcp_history_kind(rows.flags, rows.payload)
    kind[rows.proto == 17] = K_D
    kind[(rows.proto != 6) & (rows.proto != 17)] = -1
    kind[rows.frag] = -1
    if rows.uncounted is not None:
        kind[rows.uncounted] = -1
    return kind


_SUMMED_FIELDS = ("pkts", "ip_bytes", "payload", "fins", "mac", "first_ts", "last_ts",
                  "ip_version", "first_pos")  # fmt: skip
_OFFSETS = np.array([RECORD_DTYPE.fields[name][1] for name in _SUMMED_FIELDS], dtype=np.int64)
assert NO_POS == np.iinfo(np.int64).max  # _aggregate.c's "not seen"


def _aggregate_compiled(rows: Rows, seg: np.ndarray, n_seg: int, seg_keys: np.ndarray):
    def c(a: np.ndarray, dtype) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    rec = empty_records(n_seg)
    rec["key"][:, : seg_keys.shape[1]] = seg_keys  # short keys: the parent part stays 0
    _aggregate.aggregate_rows(
        c(seg, np.int64),
        c(rows.dir, np.uint8),
        c(rows.ip_len, np.int64),
        c(rows.payload, np.int64),
        c(rows.ts, np.int64),
        c(rows.mac, np.uint64),
        c(rows.flags, np.uint16),
        c(rows.ip_version, np.uint8),
        c(rows.pos, np.int64),
        c(_letter_kinds(rows), np.int8),
        rec,
        _OFFSETS,
        N_LETTERS,
    )
    return rec
