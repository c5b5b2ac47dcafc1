"""The incremental bidirectional flow engine, the same for files and live capture.

``FlowTable(config).update(batch)`` folds one ``PacketBatch`` into the table and returns
the flows that finished by the batch's time (closed or reset and quiet for the close
delay, idle or active timed out, or cut by a new connection on the same key);
``flush()`` returns everything still active. ``fold``/``drain`` are the same steps
without rendering the finished flows (``results.FinishedFlows.table()`` does that later,
possibly in another thread), and ``fold`` is itself two steps, ``key`` (no flow state
read: it may run ahead in another thread) and ``fold_keyed``. Several files are one
capture when fed to the same table. Memory is bounded by the number of active flows.

Per batch: rows are keyed and grouped (keys), cut into segments where Zeek would start a
new connection (segments), summed per segment, merged with the stored state of flows
that continue, oriented (direction) and run through the TCP tables (tcp_track). Only
per-flow work happens in Python (dict lookups by key bytes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from portlabel.capture.batch import DecodeStatus, PacketBatch
from portlabel.constants import BATCH_SIZE
from portlabel.flows.attempts import CS_ATTEMPT
from portlabel.flows.columns import END_REASONS, FLOW_SCHEMA, empty_table
from portlabel.flows.config import FlowConfig
from portlabel.flows.direction import decide_orientation
from portlabel.flows.keys import KEY_FIELDS, KEY_WIDTH, group_rows, unpack_int
from portlabel.flows.letters import batch_letters
from portlabel.flows.notes import FlowNotes, letter_lists, parent_sets
from portlabel.flows.packets import FragmentPorts, Rows, batch_rows
from portlabel.flows.pieces import PIECE_FLOWS
from portlabel.flows.records import NO_POS, Records, concat, take
from portlabel.flows.results import FinishedFlows, FlowUpdate, PacketFlows
from portlabel.flows.segments import (
    CS_PARTIAL,
    Carry,
    aggregate,
    closing,
    cut,
    idle_timeouts,
)
from portlabel.flows.store import FlowStore
from portlabel.flows.tcp_state import K_S, N_STATES, Endpoint, finished
from portlabel.flows.tcp_track import track
from portlabel.flows.uid import UidSource

CLOSED, IDLE, ACTIVE, FLUSH, EVICTED = range(len(END_REASONS))
_PROTO_AT = KEY_FIELDS["proto"][0]
_SUMMED = ("pkts", "ip_bytes", "payload", "fins")
_FROM_STATE = (
    "uid",
    "pos0",
    "orig_side",
    "flipped",
    "by",
    "base",
    "has_base",
    "seq_end",
    "acked",
    "joint",
    "first_ts",
    "ip_version",
    "vlans",
    "scaled",
    "seq_prev",
    "seq_u",
    "seq_top",
    "deliv",
    "hole_end",
)


@dataclass(frozen=True, slots=True)
class KeyedBatch:
    """A batch's flow rows grouped by key (``FlowTable.key``), ready to fold."""

    rows: Rows  # in group order, without per-row keys
    gstarts: np.ndarray  # where each group starts in ``rows``
    group_keys: np.ndarray  # (groups, width) uint8: SHORT_WIDTH when no row has a parent
    first_pos: int  # capture position of the batch's first packet
    last_ts: int | None  # the batch's latest timestamp (None: an empty batch)


def _end_reasons(rec: Records) -> np.ndarray:
    """CLOSED for flows that were closed or reset (by their TCP state or last burst)."""
    pos = rec["first_pos"]
    no_syn = (pos[:, K_S] == NO_POS) & (pos[:, 8 + K_S] == NO_POS)
    over = (rec["key"][:, _PROTO_AT] == 6) & finished(rec["joint"], no_syn)
    return np.where(over | closing(rec["cut_state"]), CLOSED, IDLE).astype(np.uint8)


def _attempt_bits(rec: Records) -> np.ndarray:
    """``CS_ATTEMPT`` where a flow is still an unanswered attempt: it began with a SYN and
    its originator is SYN_SENT, its responder INACTIVE (the rule ``segments.cut`` applies
    packet by packet, read here from the state machine's result)."""
    joint = rec["joint"].astype(np.int64)
    orig, resp = np.divmod(joint, N_STATES)
    began = (rec["cut_state"] & CS_PARTIAL) == 0
    open_ = began & (orig == Endpoint.SYN_SENT) & (resp == Endpoint.INACTIVE)
    open_ &= rec["key"][:, _PROTO_AT] == 6
    return np.where(open_, CS_ATTEMPT, 0).astype(np.uint8)


_NEVER = np.iinfo(np.int64).max  # the last packet time of a slot not in use
FLOW_BYTES = 1024  # what one active flow costs, all told (its record, index, notes)
DRAIN_CHUNK = PIECE_FLOWS  # flows ended (and rendered) at a time at the end of input


def default_max_flows() -> int:
    """Active flows allowed when ``max_flows`` is not set: a quarter of the memory
    available now, at ``FLOW_BYTES`` a flow, and never under a million."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = 4 << 30
    return max(1_000_000, available // 4 // FLOW_BYTES)


class FlowTable:
    """Active flows and the rules that finish them. Not thread-safe."""

    def __init__(self, config: FlowConfig | None = None) -> None:
        self.config = config or FlowConfig()
        self.store = FlowStore()
        self._frags = FragmentPorts()
        self._uids = UidSource(self.config.uid_seed)
        self._notes = FlowNotes()  # tunnel parents and scaled letters, for the flows with any
        # finished UDP flow key -> uid limbs, for tunnel parents that finish before a
        # flow inside them; kept only once tunnelled packets were seen (parents are the
        # outer UDP flows those packets make)
        self._recent_uid: dict[bytes, bytes] = {}
        self._tunnels_seen = False
        self._next_pos = 0
        self._now = np.iinfo(np.int64).min
        self.left_out = np.zeros(len(DecodeStatus), dtype=np.int64)  # packets not in flows
        self.max_flows = self.config.max_flows or default_max_flows()
        self.store.limit = self.max_flows + BATCH_SIZE  # a batch may add this many first
        self.evicted = 0  # flows ended early to keep at most max_flows active
        # the group (of the last folded batch) of each flow that batch started
        self.new_flow_groups = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.store)

    # ---- public API ------------------------------------------------------------------

    def update(self, batch: PacketBatch, want_rows: bool = False) -> pa.Table | None | FlowUpdate:
        """Fold ``batch`` in; return the flows finished as of its last timestamp, if any.

        With ``want_rows`` the result is a ``FlowUpdate``: the finished flows and, for
        each packet of ``batch``, the flow it went to (``PacketFlows``).
        """
        packets = PacketFlows.empty(len(batch)) if want_rows else None
        done = self._fold_batch(batch, packets)
        finished = done.table() if done is not None else None
        return FlowUpdate(finished, packets) if want_rows else finished

    def fold(self, batch: PacketBatch) -> FinishedFlows | None:
        """``update`` without rendering: the finished flows as records, if any.

        ``FinishedFlows.table()`` gives the same table ``update`` would have; it reads
        nothing from this table, so it may run in another thread while the next batch
        is folded. ``fold(b)`` is ``fold_keyed(key(b))``.
        """
        return self._fold_batch(batch, None)

    def advance(self, now_ns: int) -> pa.Table | None:
        """Move the flow clock to ``now_ns`` with no packet; the flows that timed out.

        For live capture in quiet periods: idle, closed and active flows finish as if a
        packet with that timestamp had arrived. A time at or before the clock does nothing.
        """
        if now_ns <= self._now:
            return None
        self._now = int(now_ns)
        done = self._finished([self._expire(self._now)])
        return None if done is None else done.table()

    def flush(self) -> pa.Table:
        """Finish and return every active flow (end of input)."""
        done = self.drain()
        return empty_table(FLOW_SCHEMA) if done is None else done.table()

    def drain(self) -> FinishedFlows | None:
        """``flush`` without rendering (None when no flow was active)."""
        return next(self.drain_chunks(max(len(self.store), 1)), None)

    def drain_chunks(self, size: int = DRAIN_CHUNK) -> Iterator[FinishedFlows]:
        """``drain`` a piece at a time: at most ``size`` flows each, in the order ``drain``
        gives them (start time), so that ending a million flows does not hold them all,
        rendered, at once. Tunnel parents ended in an earlier piece are still named."""
        slots = np.flatnonzero(self.store.used)
        cols = self.store.cols
        slots = slots[np.lexsort((cols["uid"][slots, 2], cols["first_ts"][slots]))]
        for start in range(0, len(slots), size):
            part = slots[start : start + size]
            rec, notes = self._release(part)
            done = self._finished([(rec, np.full(len(part), FLUSH, dtype=np.uint8), notes)])
            if done is not None:
                yield done

    @property
    def position(self) -> int:
        """The capture position the next keyed packet gets (packets keyed so far)."""
        return self._next_pos

    @position.setter
    def position(self, value: int) -> None:
        """Go on from another capture position: the table reads a later part of a
        capture whose earlier part another table read."""
        self._next_pos = int(value)

    def scratch(self) -> FlowTable:
        """An empty table with this one's options (no flow cap), clock and memory of
        finished tunnel parents: for replaying some flows' packets on the side."""
        other = FlowTable(dataclasses.replace(self.config, max_flows=1 << 62))
        other._now = self._now
        other._recent_uid = self._recent_uid
        other._tunnels_seen = self._tunnels_seen
        return other

    def take_active(self, slots: np.ndarray | None = None) -> tuple[Records, list | None]:
        """Remove active flows (all of them, or those in ``slots``) without finishing
        them: their records and notes, for ``adopt`` by another table (flows handed from
        one part of a capture to the next)."""
        if slots is None:
            slots = np.flatnonzero(self.store.used)
        return self._release(np.asarray(slots, dtype=np.int64))

    def end(self, slots: np.ndarray) -> FinishedFlows | None:
        """Finish the active flows in ``slots`` now, unrendered (``fold``'s result)."""
        rec, notes = self._release(np.asarray(slots, dtype=np.int64))
        return self._finished([(rec, _end_reasons(rec), notes)])

    def adopt(self, rec: Records, notes: list | None) -> None:
        """Make flows taken from another table (``take_active``) active here. Their keys
        must not be active here already."""
        if not len(rec):
            return
        slots = self.store.put(np.full(len(rec), -1, dtype=np.int64), rec)
        if notes is not None and any(n is not None for n in notes):
            kept = {i: n for i, n in enumerate(notes) if n is not None}
            self._notes.keep(np.arange(len(rec)), slots, kept)
            if any(n.parents for n in kept.values()):
                self._tunnels_seen = True

    def key(self, batch: PacketBatch) -> KeyedBatch:
        """The first step of ``fold``, which reads no flow: ``batch``'s rows keyed and
        grouped. ``fold_keyed`` does the rest. The two steps may run in two threads (one
        each) as long as batches are keyed in capture order and folded in that order."""
        first_pos = self._next_pos
        rows, left_out = batch_rows(batch, first_pos, self._frags, self.config.key_by_tunnel_parent)
        self._next_pos += len(batch)
        self.left_out += left_out
        last_ts = int(batch.ts_ns.max()) if len(batch) else None
        if not len(rows):
            empty = np.zeros(0, dtype=np.int64)
            return KeyedBatch(rows, empty, np.zeros((0, KEY_WIDTH), np.uint8), first_pos, last_ts)
        order, gstarts, group_keys = group_rows(rows.keys)
        return KeyedBatch(rows.take(order, drop_keys=True), gstarts, group_keys, first_pos, last_ts)

    def fold_keyed(self, keyed: KeyedBatch) -> FinishedFlows | None:
        """``fold`` for a batch ``key`` has keyed."""
        return self._fold_keyed(keyed, None)

    def fold_keyed_pieces(self, keyed: KeyedBatch, settle: bool = True) -> Iterator[FinishedFlows]:
        """``fold_keyed``, its finished flows ``PIECE_FLOWS`` at a time: those the batch
        ended or timed out, then the evicted ones, each piece taken out of the store only
        when it is asked for (a flood evicts a batch's worth of flows at once). The same
        flows as ``fold_keyed``; consume every piece before the next fold. With
        ``settle`` False the flows that timed out and those over ``max_flows`` stay for
        the next call: for the pieces of one batch (``pieces.split_keyed``), all but the
        last."""
        done = self._fold_keyed(keyed, None, settle, evict=False)
        if done is not None:
            yield from done.pieces(PIECE_FLOWS)
            del done  # this generator keeps none of the flows it has handed on
        if settle and len(self.store) > self.max_flows:
            victims = self._victims(len(self.store) - self.max_flows)
            for at in range(0, len(victims), PIECE_FLOWS):
                part = self._finished([self._evict_slots(victims[at : at + PIECE_FLOWS])])
                if part is not None:
                    yield part
                    del part

    def _fold_batch(self, batch: PacketBatch, packets: PacketFlows | None) -> FinishedFlows | None:
        return self._fold_keyed(self.key(batch), packets)

    def _fold_keyed(
        self,
        keyed: KeyedBatch,
        packets: PacketFlows | None,
        settle: bool = True,
        evict: bool = True,
    ) -> FinishedFlows | None:
        if keyed.last_ts is not None:
            self._now = max(self._now, keyed.last_ts)
        done: list[tuple[Records, np.ndarray, list]] = []
        self.new_flow_groups = np.zeros(0, dtype=np.int64)
        if len(keyed.rows):
            done.append(self._fold(keyed, done, packets))
        if settle:
            done.append(self._expire(self._now))
            if evict and len(self.store) > self.max_flows:
                done.append(self._evict_slots(self._victims(len(self.store) - self.max_flows)))
        return self._finished(done)

    # ---- one batch -------------------------------------------------------------------

    def _fold(self, keyed: KeyedBatch, done: list, packets) -> tuple:
        rows, gstarts, group_keys = keyed.rows, keyed.gstarts, keyed.group_keys
        first_pos = keyed.first_pos
        group_start = np.zeros(len(rows), dtype=bool)
        group_start[gstarts] = True
        slots = self.store.lookup(group_keys)
        cuts = cut(rows, group_start, self.config, self._carry(slots))
        seg = np.cumsum(cuts.starts) - 1
        seg_starts = np.flatnonzero(cuts.starts)
        n_seg = len(seg_starts)
        seg_group = np.cumsum(group_start)[seg_starts] - 1
        rec = aggregate(rows, seg, n_seg, group_keys[seg_group])
        rec["cut_state"] = cuts.state
        rec["vlans"] = rows.vlans[seg_starts]
        first_seg = seg[gstarts]
        last_seg = np.r_[first_seg[1:], n_seg] - 1

        seg_slot = self._continue(rec, first_seg, slots, cuts.cont, done)
        self._orient_new(rows, rec, seg_slot, seg_starts)
        self.new_flow_groups = seg_group[seg_slot < 0]
        if packets is not None:  # uids and orientation are final from here on
            packets.fill(rows, seg, rec, first_pos)
        marks = track(rows, seg, rec)
        rec["cut_state"] |= _attempt_bits(rec)
        letters = batch_letters(rows, seg, marks, rec)
        notes = self._notes.by_segment(seg_slot, self._segment_parents(rows, seg), letters)

        is_last = np.zeros(n_seg, dtype=bool)
        is_last[last_seg] = True
        ended = np.flatnonzero(~is_last)
        moved = seg_slot[ended]  # a stored flow that continued here and then ended
        self.store.release(moved[moved >= 0])  # its notes went to ``notes`` above
        keep = np.flatnonzero(is_last)
        slots = self.store.put(seg_slot[keep], take(rec, keep))
        self._notes.keep(keep, slots, notes)
        ended_rec = take(rec, ended)
        ended_notes = [notes.get(s) for s in ended.tolist()] if notes else None
        return ended_rec, _end_reasons(ended_rec), ended_notes

    def _carry(self, slots: np.ndarray) -> Carry | None:
        known = slots >= 0
        if not known.any():
            return None
        cols, sl = self.store.cols, np.where(known, slots, 0)
        return Carry(
            known,
            cols["last_ts"][sl],
            cols["first_ts"][sl],
            cols["cut_state"][sl],
            cols["orig_side"][sl],
        )

    def _continue(self, rec: Records, first_seg, slots, cont, done) -> np.ndarray:
        """Slot per segment (-1: new flow); merges stored state into continuing segments.

        Stored flows whose key starts a new flow in this batch (``cont`` False) are done.
        """
        seg_slot = np.full(len(rec["key"]), -1, dtype=np.int64)
        known = slots >= 0
        if not known.any():
            return seg_slot
        gone = slots[known & ~cont]
        if len(gone):
            old, notes = self._release(gone)
            done.append((old, _end_reasons(old), notes))
        go_on = known & cont
        fs, sl = first_seg[go_on], slots[go_on]
        seg_slot[fs] = sl
        old = self.store.get(sl)
        for name in _SUMMED:
            rec[name][fs] += old[name]
        for name in _FROM_STATE:
            rec[name][fs] = old[name]
        rec["mac"][fs] = np.where(old["mac"] != 0, old["mac"], rec["mac"][fs])
        rec["first_pos"][fs] = np.minimum(old["first_pos"], rec["first_pos"][fs])
        return seg_slot

    def _orient_new(self, rows: Rows, rec: Records, seg_slot, seg_starts) -> None:
        new = np.flatnonzero(seg_slot < 0)
        r0 = seg_starts[new]
        flip, by = decide_orientation(
            rows.proto[r0], rows.flags[r0], rows.sport[r0], rows.dport[r0]
        )
        first_dir = rows.dir[r0]
        rec["orig_side"][new] = np.where(flip, 1 - first_dir, first_dir)
        rec["flipped"][new] = flip
        rec["by"][new] = by
        rec["pos0"][new] = rows.pos[r0]
        rec["uid"][new] = self._uids.draw(len(new), rows.pos[r0], rec["key"][new])

    def _segment_parents(self, rows: Rows, seg) -> dict[int, set[bytes]]:
        if rows.parent is None:
            return {}
        self._tunnels_seen = True
        has = rows.parent.any(axis=1)
        if not has.any():
            return {}
        pairs = np.concatenate(
            [seg[has].astype(">i8").view(np.uint8).reshape(-1, 8), rows.parent[has]], axis=1
        )
        uniq = np.unique(np.ascontiguousarray(pairs).view(f"V{pairs.shape[1]}").ravel())
        out: dict[int, set[bytes]] = {}
        for raw in uniq.tolist():
            s = int.from_bytes(raw[:8], "big")
            out.setdefault(s, set()).add(raw[8:])
        return out

    # ---- finishing -------------------------------------------------------------------

    def _expire(self, now: int) -> tuple[Records, np.ndarray, list]:
        config, cols = self.config, self.store.cols
        # only flows quiet for the shortest wait, or as old as the attempt or active
        # timeout, can end now: the rest of the table is not looked at any further
        # (compared with the column itself, not with ``now - column``: no table-sized
        # temporary; exact, as the integer nanoseconds are: d > x iff d > floor(x))
        maybe = cols["last_ts"] < now - math.floor(config.shortest_wait * 1e9)
        ages = [t for t in (config.attempt_timeout, config.active_timeout) if t is not None]
        if ages:
            maybe |= cols["first_ts"] <= now - math.ceil(min(ages) * 1e9)
        cand = np.flatnonzero(maybe & self.store.used)
        key, state = cols["key"][cand], cols["cut_state"][cand]
        quiet, age = now - cols["last_ts"][cand], now - cols["first_ts"][cand]
        closed = closing(state) & (quiet > config.close_delay * 1e9)
        port_a = unpack_int(key, "a_port", ">u2")
        port_b = unpack_int(key, "b_port", ">u2")
        idle = ~closed & (quiet > idle_timeouts(key[:, _PROTO_AT], config, port_a, port_b))
        if config.attempt_timeout is not None:  # an unanswered attempt timed out
            attempt = (state & CS_ATTEMPT) != 0
            idle |= ~closed & attempt & (age >= config.attempt_timeout * 1e9)
        active = np.zeros(len(cand), dtype=bool)
        if config.active_timeout is not None:
            active = ~closed & ~idle & (age > config.active_timeout * 1e9)
        ending = closed | idle | active
        slots = cand[ending]
        rec, notes = self._release(slots)
        why = np.where(active[ending], ACTIVE, _end_reasons(rec)).astype(np.uint8)
        return rec, why, notes

    def _victims(self, n: int) -> np.ndarray:
        """The slots of the ``n`` flows idle the longest, in start order: they end as
        ``evicted`` because the table is over ``max_flows``, as under a flood of new
        connections."""
        cols, used = self.store.cols, self.store.used
        # the n-th oldest last packet time, then the slots before it and, of those at
        # it, the lowest: two table-sized temporaries, not the four of an argpartition
        last = np.where(used, cols["last_ts"], _NEVER)
        cut = np.partition(last, n - 1)[n - 1]
        oldest = np.flatnonzero(last < cut)
        oldest = np.r_[oldest, np.flatnonzero(last == cut)[: n - len(oldest)]]
        # in start order: ``_finished`` need not copy them again
        return oldest[np.lexsort((cols["uid"][oldest, 2], cols["first_ts"][oldest]))]

    def _evict_slots(self, slots: np.ndarray) -> tuple[Records, np.ndarray, list]:
        self.evicted += len(slots)
        rec, notes = self._release(slots)
        return rec, np.full(len(slots), EVICTED, dtype=np.uint8), notes

    def _release(self, slots: np.ndarray) -> tuple[Records, list]:
        return self.store.release(slots), self._notes.take(slots)

    def _finished(self, parts: list[tuple[Records, np.ndarray, list]]) -> FinishedFlows | None:
        parts = [p for p in parts if len(p[1])]
        if not parts:
            return None
        rec = concat([p[0] for p in parts])
        reasons = np.concatenate([p[1] for p in parts])
        by_time = np.lexsort((rec["uid"][:, 2], rec["first_ts"]))  # writers like ts order
        if (by_time[1:] < by_time[:-1]).any():  # else in order already (an eviction alone)
            rec, reasons = take(rec, by_time), reasons[by_time]
        notes = None
        if any(p[2] is not None for p in parts):
            joined = [n for p in parts for n in (p[2] or [None] * len(p[1]))]
            notes = [joined[i] for i in by_time.tolist()]
        keys = parent_sets(notes)
        if self._tunnels_seen:
            self._remember_uids(rec)
        # after the update above: a parent may finish in this very batch
        parents = None if keys is None else self._parent_uids(keys)
        return FinishedFlows(
            rec, reasons, parents, self.config.community_id_seed, letter_lists(notes)
        )

    def _remember_uids(self, rec: Records) -> None:
        udp = rec[rec["key"][:, _PROTO_AT] == 17]
        raw_keys = np.ascontiguousarray(udp["key"]).view(f"V{KEY_WIDTH}").ravel().tolist()
        raw_uids = np.ascontiguousarray(udp["uid"]).view("V12").ravel().tolist()
        self._recent_uid.update(zip(raw_keys, raw_uids, strict=True))
        if len(self._recent_uid) > 1 << 17:
            items = list(self._recent_uid.items())
            self._recent_uid = dict(items[len(items) // 2 :])

    def _parent_uids(self, parent_sets: list[set[bytes]]) -> list[list[str]]:
        out: list[list[str]] = []
        if not any(parent_sets):
            return [[] for _ in parent_sets]
        for keys in parent_sets:
            if not keys:
                out.append([])
                continue
            limbs = []
            for k in sorted(keys):
                slot = self.store.slot(k)
                if slot is not None:
                    limbs.append(self.store.cols["uid"][slot])
                elif k in self._recent_uid:
                    limbs.append(np.frombuffer(self._recent_uid[k], dtype=np.uint32))
            out.append(UidSource.render(np.array(limbs).reshape(-1, 3)) if limbs else [])
        return out
