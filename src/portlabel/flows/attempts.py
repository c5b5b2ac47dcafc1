"""Zeek's ``tcp_attempt_delay`` as a cutting rule of ``segments.cut``.

A TCP connection that began with the originator's bare SYN and is still unanswered the
delay after its start (``FlowConfig.attempt_timeout``, 5 s as Zeek) is removed by Zeek;
the key's next packet starts a new connection. Unanswered: since its start the
originator sent no FIN or RST and the responder nothing but bare ACKs (Zeek's endpoint
states SYN_SENT and INACTIVE). A flow still unanswered at the end of a batch carries the
``CS_ATTEMPT`` cut-state bit (set by the engine from the state machine).
"""

from __future__ import annotations

import numpy as np

from portlabel.flows.packets import Rows
from portlabel.flows.tcp_state import ACK, FIN, RST, SYN

CS_ATTEMPT = 16  # segments' cut-state bit: the flow is still an unanswered attempt


class Attempts:
    """Zeek's ``tcp_attempt_delay``: a connection that began with the originator's bare
    SYN and is still unanswered that long after its start is removed; the key's next
    packet starts a new connection. Unanswered: since its start the originator sent no
    FIN or RST and the responder nothing but bare ACKs (Zeek's endpoint states
    SYN_SENT and INACTIVE). Each ``cut`` pass cuts every flow once more where due.

    Only the rows of groups where a cut may be due are looked at (``possible``): groups
    with a bare SYN or a carried attempt, and a row at least the delay after the first
    of those. The rest of the batch costs a few vector operations."""

    def __init__(self, rows: Rows, carry, gid: np.ndarray, config) -> None:
        self.rows, self.carry, self.gid = rows, carry, gid
        delay = getattr(config, "attempt_timeout", None)
        self.limit = None if delay is None else int(delay * 1e9)
        self.sel = np.zeros(0, dtype=np.int64)

    def possible(self, group_start: np.ndarray, virt: np.ndarray) -> bool:
        """Whether any row may be due (and which rows to look at)."""
        if self.limit is None:
            return False
        rows, gid = self.rows, self.gid
        f = rows.flags
        bare_syn = (rows.proto == 6) & ((f & (SYN | ACK | RST | FIN)) == SYN)
        n_groups = int(group_start.sum())
        # the earliest time an attempt may start in each group
        earliest = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(earliest, gid[bare_syn], rows.ts[bare_syn])
        if self.carry is not None:
            g0 = np.flatnonzero(group_start)
            carried = virt[g0] & ((self.carry.state & CS_ATTEMPT) != 0)
            earliest[carried] = np.minimum(earliest[carried], self.carry.first_ts[carried])
        late = rows.ts - earliest[gid] >= self.limit
        if not late.any():
            return False
        groups = np.zeros(n_groups, dtype=bool)
        groups[gid[late]] = True
        self.sel = np.flatnonzero(groups[gid])
        return True

    def _segments(self, brk: np.ndarray, cont_row: np.ndarray):
        """Over the selected rows: per row its segment; per segment its head, start time,
        whether it began as an attempt; per row whether it answers or ends the attempt."""
        rows, carry, sel = self.rows, self.carry, self.sel
        ts, d, f = rows.ts[sel], rows.dir[sel], rows.flags[sel]
        tcp = rows.proto[sel] == 6
        cont = cont_row[sel]
        head = brk[sel] | cont
        seg = np.cumsum(head) - 1
        heads = np.flatnonzero(head)
        start_ts = ts[heads].copy()
        began = tcp[heads] & ((f[heads] & (SYN | ACK | RST | FIN)) == SYN)
        orig = d[heads].copy()
        cv = cont[heads]
        if carry is not None and cv.any():
            g = self.gid[sel[heads[cv]]]
            start_ts[cv] = carry.first_ts[g]
            began[cv] = (carry.state[g] & CS_ATTEMPT) != 0
            orig[cv] = carry.orig_side[g]
        from_orig = d == orig[seg]
        ends = np.where(
            from_orig,
            (f & (FIN | RST)) != 0,
            ((f & (SYN | FIN | RST)) != 0) | (rows.payload[sel] > 0),
        )
        return ts, seg, heads, start_ts, began, ends & tcp, cont

    def cut(self, brk: np.ndarray, cont_row: np.ndarray) -> None:
        if self.limit is None or not len(self.sel):
            return
        ts, seg, heads, start_ts, began, ends, cont = self._segments(brk, cont_row)
        e = ends.astype(np.int64)
        before = np.cumsum(e) - e  # answers/ends earlier in the segment
        before -= before[heads][seg]
        due = began[seg] & (before == 0) & (ts - start_ts[seg] >= self.limit)
        due[heads[~cont[heads]]] = False  # a flow's first packet; a carried one may be due
        first_due = due & ~np.r_[False, due[:-1] & (seg[1:] == seg[:-1])]
        brk[self.sel[first_due]] = True
