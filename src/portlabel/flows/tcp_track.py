"""TCP per-segment work that needs flow state: sequence space and the state machine.

Sequence numbers are kept relative to a per-direction ``base`` (Zeek's start_seq: the
SYN's sequence number, or one before the first octet seen for a flow joined mid-stream);
bytes per direction are then ``max(highest sequence end, highest ack from the peer)``
minus the SYN and FIN octets, as Zeek computes orig_bytes/resp_bytes.

The state machine runs ``TRANSITIONS`` over the packets that can change state, one
"round" per event rank: round k applies every segment's k-th event at once. When the C
extension ``_tcptrack`` is built, both run instead as one loop over the rows, without the
GIL.

``track`` also marks each row as Zeek's TCP endpoint sees it (``MARK_*`` bits, judged
with the state after the row): a *retransmission* is payload whose sequence end does not
reach past the highest end its sender sent before (a first SYN counts its own end as
sent), from an endpoint that is not reset; a *zero window* is a window of 0 advertised on
a packet without RST, by an endpoint not reset, to a peer that has not closed. The marks
become the scaled t/T and w/W history letters (``letters``).
"""

from __future__ import annotations

import numpy as np

from portlabel.flows.packets import Rows
from portlabel.flows.records import Records
from portlabel.flows.segments import first_index
from portlabel.flows.tcp_state import (
    ACK,
    EVENT_TABLE,
    FIN,
    N_STATES,
    RST,
    SYN,
    TRANSITIONS,
    Endpoint,
    packet_events,
)

MARK_RXMIT, MARK_ZERO_WINDOW, MARK_GAP = 1, 2, 4  # _tcptrack.c's bits

try:
    from portlabel.flows import _tcptrack
except ImportError:  # built without a C compiler: the vectorised rounds below
    _tcptrack = None

_EVENTS = np.ascontiguousarray(EVENT_TABLE, dtype=np.uint8)
_TRANSITIONS = np.ascontiguousarray(TRANSITIONS, dtype=np.uint8)

_CHANGING = SYN | FIN | RST
# events whose repetition cannot change the state (safe to drop repeats)
IDEMPOTENT = np.array(
    [
        np.array_equal(TRANSITIONS[TRANSITIONS[:, e], e], TRANSITIONS[:, e])
        for e in range(TRANSITIONS.shape[1])
    ]
)


def _rel(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Signed 32-bit distance ``x - base`` in sequence space, as int64."""
    d = (x.astype(np.int64) - base.astype(np.int64)) & 0xFFFFFFFF
    return np.where(d >= 2**31, d - 2**32, d)


def track(rows: Rows, seg: np.ndarray, rec: Records, compiled: bool = True) -> np.ndarray:
    """Update ``rec``'s TCP fields (base, seq_end, acked, joint) from this batch's rows;
    each row's ``MARK_*`` bits (0 for rows that are not TCP).

    ``rows`` are in group order and ``seg`` gives each row's segment of ``rec``. The
    compiled version (``_tcptrack``, when built; ``compiled=False`` skips it) applies the
    same rules row by row.
    """
    marks = np.zeros(len(rows), dtype=np.uint8)
    if compiled and _tcptrack is not None:
        _track_compiled(rows, seg, rec, marks)
        return marks
    idx = np.flatnonzero((rows.proto == 6) & ~_skipped(rows))
    if not len(idx):
        return marks
    n_seg = len(rec["joint"])
    s = seg[idx]
    d = rows.dir[idx].astype(np.int64)
    f = rows.flags[idx]
    seq, ack, plen = rows.seq[idx], rows.ack[idx], rows.payload[idx]
    syn, fin, rst = (f & SYN) != 0, (f & FIN) != 0, (f & RST) != 0
    sd = s * 2 + d

    # flat (segment, direction) copies of the per-direction fields, written back at the end
    # (a field of a structured array is a strided view: reshaping it copies)
    base = rec["base"].reshape(-1)
    has = rec["has_base"].reshape(-1)
    first = first_index(sd, 2 * n_seg)
    seen = first < len(idx)
    had = has.copy()
    new = seen & ~has
    cand = (seq[first[new]].astype(np.int64) - np.where(syn[first[new]], 0, 1)) & 0xFFFFFFFF
    base[new] = cand.astype(np.uint32)
    has[new] = True

    end = _rel(seq.astype(np.int64) + plen + syn + fin, base[sd])
    seq_end = rec["seq_end"].reshape(-1)
    np.maximum.at(seq_end, sd[~rst], end[~rst])
    new_dir = np.zeros(len(idx), dtype=bool)
    new_dir[first[first < len(idx)]] = True
    new_dir &= ~had[sd]
    before = {n: rec[n].reshape(-1).copy() for n in ("seq_prev", "seq_u", "seq_top")}
    u, sent = _unwrapped(sd, seq, plen, syn, fin, rst, end, new_dir, rec)
    gaps = _gap_marks(sd, u, plen + syn + fin, rst, (f & ACK) != 0, ack, seq, had, before, rec)
    od = s * 2 + (1 - d)
    # an ACK counts once the acked side's base is known: from an earlier batch or an
    # earlier packet of this one (never from a later packet, which a split would not see)
    known = had[od] | (first[od] < np.arange(len(idx)))
    acking = ((f & ACK) != 0) & known
    acked = rec["acked"].reshape(-1)
    np.maximum.at(acked, od[acking], _rel(ack[acking], base[od[acking]]))
    for name, flat in (("base", base), ("has_base", has), ("seq_end", seq_end), ("acked", acked)):
        rec[name] = flat.reshape(-1, 2)

    joint = _run_state_machine(s, d, f, plen, rec)
    from_orig = d == rec["orig_side"][s]
    own = np.where(from_orig, joint // N_STATES, joint % N_STATES)
    peer = np.where(from_orig, joint % N_STATES, joint // N_STATES)
    alive = own != Endpoint.RESET
    m = np.where((plen > 0) & alive & (u <= sent), MARK_RXMIT, 0)
    m |= np.where((rows.window[idx] == 0) & ~rst & alive & (peer != Endpoint.CLOSED),
                  MARK_ZERO_WINDOW, 0)  # fmt: skip
    m |= np.where(gaps, MARK_GAP, 0)
    marks[idx] = m
    return marks


_NOT_SENT = -(1 << 40)  # below any relative sequence end


def _int32(x: np.ndarray) -> np.ndarray:
    """``x`` mod 2**32 as a signed 32-bit distance (int64)."""
    return ((x & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def _unwrapped(sd, seq, plen, syn, fin, rst, end, new_dir, rec: Records):
    """Per row its sequence end unwrapped (the previous packet's of its direction plus
    their signed 32-bit distance; a direction's first packet: its end from the base) and
    the highest unwrapped end its direction sent before it (not counting RSTs; a first
    SYN's own; ``_NOT_SENT`` before a first non-SYN). Updates rec's seq_prev, seq_u and
    seq_top, which carry this across batches."""
    n = len(sd)
    order = np.argsort(sd, kind="stable")
    g = sd[order]
    start = np.r_[True, g[1:] != g[:-1]]
    starts = np.flatnonzero(start)
    rank = np.cumsum(start) - 1
    end_abs = (seq.astype(np.int64) + plen + syn + fin)[order] & 0xFFFFFFFF
    prev0 = rec["seq_prev"].reshape(-1)
    u0 = rec["seq_u"].reshape(-1)
    top0 = rec["seq_top"].reshape(-1)
    step = np.empty(n, dtype=np.int64)
    step[1:] = _int32(end_abs[1:] - end_abs[:-1])
    fresh = new_dir[order][starts]
    step[starts] = np.where(
        fresh, end[order][starts], u0[g[starts]] + _int32(end_abs[starts] - prev0[g[starts]])
    )
    total = np.cumsum(step)
    u = total - (total[starts] - step[starts])[rank]
    value = np.where(rst[order], _NOT_SENT, u)
    shift = rank.astype(np.int64) << 42  # groups never mix in one running maximum
    running = np.maximum.accumulate(value + shift) - shift
    carried_top = np.where(fresh, _NOT_SENT, top0[g[starts]])  # per direction
    before = np.empty(n, dtype=np.int64)
    before[1:] = running[:-1]
    before[starts] = _NOT_SENT
    before = np.maximum(before, carried_top[rank])
    syn_first = fresh & syn[order][starts]
    before[starts[syn_first]] = u[starts[syn_first]]
    ends = np.r_[starts[1:], n] - 1
    prev0[g[starts]] = end_abs[ends]
    u0[g[starts]] = u[ends]
    top0[g[starts]] = np.maximum(top0[g[starts]], running[ends])
    for name, flat in (("seq_prev", prev0), ("seq_u", u0), ("seq_top", top0)):
        rec[name] = flat.reshape(-1, 2)
    out_u, out_sent = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    out_u[order], out_sent[order] = u, before
    return out_u, out_sent


def _gap_marks(sd, u, span, rst, has_ack, ack, seq, had, before, rec: Records) -> np.ndarray:
    """Rows whose ACK acknowledges the peer's sequence space beyond the data it was seen
    to send without a hole (``deliv``), which then counts as delivered, with what was
    seen beyond the hole. Sequential across both directions: a loop over the rows (the
    compiled kernel's rule; used only without it)."""
    deliv, hole = rec["deliv"].reshape(-1), rec["hole_end"].reshape(-1)
    prev = before["seq_prev"].astype(np.int64).tolist()
    last, top = before["seq_u"].tolist(), before["seq_top"].tolist()
    known = had.tolist()
    out = np.zeros(len(sd), dtype=bool)
    end_abs = ((seq.astype(np.int64) + span) & 0xFFFFFFFF).tolist()
    for i, (k, ui, si, ri, ai, acki) in enumerate(
        zip(
            sd.tolist(),
            u.tolist(),
            span.tolist(),
            rst.tolist(),
            has_ack.tolist(),
            ack.tolist(),
            strict=True,
        )  # fmt: skip
    ):
        if not ri:
            top[k] = max(top[k], ui) if known[k] else ui
            start = ui - si
            if not known[k]:
                deliv[k], hole[k] = ui, _NOT_SENT
            elif start <= deliv[k]:
                deliv[k] = max(deliv[k], ui)
                if hole[k] != _NOT_SENT and deliv[k] >= hole[k]:  # the hole is filled
                    deliv[k], hole[k] = top[k], _NOT_SENT
            elif hole[k] == _NOT_SENT or start < hole[k]:
                hole[k] = start
        known[k], prev[k], last[k] = True, end_abs[i], ui
        peer = k ^ 1
        if ai and not ri and known[peer]:
            step = (acki - prev[peer]) & 0xFFFFFFFF
            acked = last[peer] + (step - (1 << 32) if step >= 1 << 31 else step)
            if acked > deliv[peer]:
                out[i] = True
                deliv[peer], hole[peer] = max(acked, top[peer]), _NOT_SENT
    rec["deliv"], rec["hole_end"] = deliv.reshape(-1, 2), hole.reshape(-1, 2)
    return out


def _run_state_machine(s, d, f, plen, rec: Records) -> np.ndarray:
    """Apply the rows' events to ``rec["joint"]``; each row's joint state after it."""
    is_resp = d != rec["orig_side"][s]
    ev = packet_events(f, plen, is_resp)
    changing = (f & _CHANGING) != 0
    seg_start = np.r_[True, s[1:] != s[:-1]]
    epoch = np.cumsum(changing | seg_start)
    # plain packets only matter as the first of their kind after each state-changing one
    kind = epoch * 4 + d * 2 + (plen > 0)
    first_plain = first_index(kind, int(kind.max()) + 1, ~changing)
    sig = changing.copy()
    sig[first_plain[first_plain < len(s)]] = True
    p = np.flatnonzero(sig)
    e, sp = ev[p], s[p]
    repeat = np.r_[False, (sp[1:] == sp[:-1]) & (e[1:] == e[:-1])] & IDEMPOTENT[e]
    e, sp, p = e[~repeat], sp[~repeat], p[~repeat]
    joint = rec["joint"]
    after = np.full(len(s), -1, dtype=np.int64)  # the joint state after each row
    after[seg_start] = joint[s[seg_start]]  # until a row changes it: the stored state
    if len(e):
        starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
        rank = np.arange(len(e)) - np.repeat(starts, np.diff(np.r_[starts, len(e)]))
        order = np.argsort(rank, kind="stable")
        lo = 0
        for count in np.bincount(rank).tolist():
            sel = order[lo : lo + count]
            lo += count
            js = sp[sel]
            joint[js] = TRANSITIONS[joint[js], e[sel]]
            after[p[sel]] = joint[js]
    # rows that changed nothing have the state of the last row before them that did
    last = np.maximum.accumulate(np.where(after >= 0, np.arange(len(s)), 0))
    return after[last]


def _skipped(rows: Rows) -> np.ndarray:
    """Rows that change no TCP state: later fragments and bad checksums."""
    return rows.frag if rows.uncounted is None else rows.frag | rows.uncounted


def _track_compiled(rows: Rows, seg: np.ndarray, rec: Records, marks: np.ndarray) -> None:
    def c(a: np.ndarray, dtype) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    state = {
        name: np.ascontiguousarray(rec[name])
        for name in ("base", "has_base", "seq_end", "acked", "joint")
    }
    carried = {
        name: np.ascontiguousarray(rec[name])
        for name in ("seq_prev", "seq_u", "seq_top", "deliv", "hole_end")
    }
    _tcptrack.track_tcp(
        c(rows.proto, np.uint8),
        c(_skipped(rows), np.bool_),
        c(rows.dir, np.uint8),
        c(seg, np.int64),
        c(rows.payload, np.int64),
        c(rows.flags, np.uint16),
        c(rows.seq, np.uint32),
        c(rows.ack, np.uint32),
        c(rows.window, np.uint16),
        marks,
        *state.values(),
        c(rec["orig_side"], np.uint8),
        *carried.values(),
        _EVENTS,
        _TRANSITIONS,
        TRANSITIONS.shape[1],
    )
    for name, value in {**state, **carried}.items():
        rec[name] = value
