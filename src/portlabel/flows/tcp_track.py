"""TCP per-segment work that needs flow state: sequence space and the state machine.

Sequence numbers are kept relative to a per-direction ``base`` (Zeek's start_seq: the
SYN's sequence number, or one before the first octet seen for a flow joined mid-stream);
bytes per direction are then ``max(highest sequence end, highest ack from the peer)``
minus the SYN and FIN octets, as Zeek computes orig_bytes/resp_bytes.

The state machine runs ``TRANSITIONS`` over the packets that can change state, one
"round" per event rank: round k applies every segment's k-th event at once. When the C
extension ``_tcptrack`` is built, both run instead as one loop over the rows, without the
GIL.
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
    RST,
    SYN,
    TRANSITIONS,
    packet_events,
)

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


def track(rows: Rows, seg: np.ndarray, rec: Records, compiled: bool = True) -> None:
    """Update ``rec``'s TCP fields (base, seq_end, acked, joint) from this batch's rows.

    ``rows`` are in group order and ``seg`` gives each row's segment of ``rec``. The
    compiled version (``_tcptrack``, when built; ``compiled=False`` skips it) applies the
    same rules row by row.
    """
    if compiled and _tcptrack is not None:
        _track_compiled(rows, seg, rec)
        return
    idx = np.flatnonzero((rows.proto == 6) & ~rows.frag)
    if not len(idx):
        return
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
    od = s * 2 + (1 - d)
    # an ACK counts once the acked side's base is known: from an earlier batch or an
    # earlier packet of this one (never from a later packet, which a split would not see)
    known = had[od] | (first[od] < np.arange(len(idx)))
    acking = ((f & ACK) != 0) & known
    acked = rec["acked"].reshape(-1)
    np.maximum.at(acked, od[acking], _rel(ack[acking], base[od[acking]]))
    for name, flat in (("base", base), ("has_base", has), ("seq_end", seq_end), ("acked", acked)):
        rec[name] = flat.reshape(-1, 2)

    _run_state_machine(s, d, f, plen, rec)


def _run_state_machine(s, d, f, plen, rec: Records) -> None:
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
    e, sp = e[~repeat], sp[~repeat]
    if not len(e):
        return
    starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
    rank = np.arange(len(e)) - np.repeat(starts, np.diff(np.r_[starts, len(e)]))
    order = np.argsort(rank, kind="stable")
    joint = rec["joint"]
    lo = 0
    for count in np.bincount(rank).tolist():
        sel = order[lo : lo + count]
        lo += count
        js = sp[sel]
        joint[js] = TRANSITIONS[joint[js], e[sel]]


def _track_compiled(rows: Rows, seg: np.ndarray, rec: Records) -> None:
    def c(a: np.ndarray, dtype) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=dtype)

    state = {
        name: np.ascontiguousarray(rec[name])
        for name in ("base", "has_base", "seq_end", "acked", "joint")
    }
    _tcptrack.track_tcp(
        c(rows.proto, np.uint8),
        c(rows.frag, np.bool_),
        c(rows.dir, np.uint8),
        c(seg, np.int64),
        c(rows.payload, np.int64),
        c(rows.flags, np.uint16),
        c(rows.seq, np.uint32),
        c(rows.ack, np.uint32),
        *state.values(),
        c(rec["orig_side"], np.uint8),
        _EVENTS,
        _TRANSITIONS,
        TRANSITIONS.shape[1],
    )
    for name, value in state.items():
        rec[name] = value
