"""The merge step: parts of one capture joined, in order, into the flows of one run.

``Stitcher.add(part)`` takes the ``PartResult``s of consecutive files in capture order
and returns labelled flow tables; ``finish()`` returns the flows still open at the end.
The stitcher keeps one flow table: the flows open at the end of the parts joined so far.
For a new part:

1. its positions become capture positions (the part's first packet follows the last
   packet before it) and, with a uid seed, its flows' uids are drawn again from them,
   so they are the uids the sequential run draws;
2. the heads of keys that have a flow open here ("carried" flows) are replayed after
   those flows, in a scratch table: exactly what the sequential run does with them;
3. where the replay starts a flow at a packet where the worker also started one, both
   runs agree from there on: the worker's flows from that one on are kept, the replay's
   are dropped, and the worker's flows before it (its view of the carried connection's
   rest) are replaced by the replay's;
4. if the replay never meets the worker's flows again (an active timeout counted from a
   start the worker did not see), if an IP datagram's fragments straddle the cut, if the
   part's first packet is older than the parts before it, or if a range's guessed start
   is not where the record chain before it ended, the part is read again here, after
   the carried flows, as the sequential run reads it (``reprocess``); where it cannot be
   read here (``reprocess`` gives None: a path only the Dask workers see) the part is
   joined as well as it can be and a warning says so.

The flows still open after the part (the replay's and the worker's) go into the table;
flows that timed out in the part's time finish as the clock moves to its last packet.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import numeric, string_lists
from portlabel.flows import FinishedFlows, FlowConfig, FlowTable
from portlabel.flows.engine import KeyedBatch
from portlabel.flows.keys import KEY_WIDTH
from portlabel.flows.records import NO_POS, Records, empty_records
from portlabel.flows.render import uid_strings
from portlabel.flows.uid import UidSource
from portlabel.labelling.pipeline import LabelPipeline, PipelineStats
from portlabel.parallel.heads import SpilledHeads
from portlabel.parallel.part import PartResult


def _raw(keys: np.ndarray) -> list[bytes]:
    return np.ascontiguousarray(keys, dtype=np.uint8).view(f"V{KEY_WIDTH}").ravel().tolist()


def add_stats(into: PipelineStats, part: PipelineStats) -> None:
    """Add a part's read counts (not its flow counts: flows are counted as emitted)."""
    into.frames += part.frames
    into.captured_bytes += part.captured_bytes
    into.reassembled += part.reassembled
    into.datagrams += part.datagrams
    into.evicted += part.evicted
    for reason, n in part.not_in_flows.items():
        into.not_in_flows[reason] = into.not_in_flows.get(reason, 0) + n
    for linktype, (decoded, why) in part.by_linktype.items():
        mine = into.by_linktype.setdefault(linktype, [0, {}])
        mine[0] += decoded
        for name, n in why.items():
            mine[1][name] = mine[1].get(name, 0) + n


class Stitcher:
    """Joins ``PartResult``s in capture order (see the module docstring)."""

    def __init__(
        self,
        registry,
        config: FlowConfig,
        reprocess: Callable[[str, tuple | None, bool], Iterable] | None = None,
        on_problem: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.pipe = LabelPipeline(registry, config)  # the table of open flows
        self.table: FlowTable = self.pipe.flows
        self.reprocess = reprocess
        self.on_problem = on_problem or (lambda line: None)
        self.on_warning = on_warning or (lambda line: None)
        self.stats = PipelineStats()
        self.offset = 0  # capture position of the next part's first packet
        self.last_ts: int | None = None
        self.next_index = 0
        self.reread: list[str] = []  # parts read again by the merge step
        self.unjoined: list[str] = []  # parts joined without an exact replay
        self._uids = None if config.uid_seed is None else UidSource(config.uid_seed)
        self._fragments: dict | None = None  # datagrams the last part ended in the middle of
        self._range_end: dict[str, int] = {}  # path -> where its last range's chain ended

    # ---- public ----------------------------------------------------------------------

    def add(self, part: PartResult) -> list[pa.Table]:
        """Join the next part; the labelled flows that finished with it."""
        if part.index != self.next_index:
            raise ValueError(f"part {part.index} given where part {self.next_index} is next")
        self.next_index += 1
        # a range of a file must start where the chain of the range before it ended: the
        # cut was guessed (``split``), the chain is the truth
        start = part.byte_range[0] if part.byte_range is not None else None
        truth = self._range_end.get(part.path) if start is not None else None
        misplaced = truth is not None and truth != start
        if not misplaced:
            for line in part.problems:
                self.on_problem(line)
            for line in part.warnings:
                self.on_warning(line)
        out: list[pa.Table] = []
        in_order = self.last_ts is None or part.first_ts is None or part.first_ts >= self.last_ts
        # a datagram cut by the file end completes in this part: only a reading that
        # holds its first fragments can put it together
        fragments = self._fragments
        self._fragments = part.pending_fragments or None
        joined = None
        if in_order and fragments is None and not misplaced:
            joined = self._join(part, out)
        consumed = part.frames
        if joined is not None:
            if part.byte_range is not None:
                self._range_end[part.path] = part.range_end
        else:
            out = []
            where = None if start is None else (truth if misplaced else start,
                                                part.byte_range[1])  # fmt: skip
            inputs = None
            if self.reprocess is not None:
                inputs = self.reprocess(part.path, where, misplaced)
            if inputs is not None:
                consumed = self._read_again(part, out, fragments, inputs, where)
            else:  # the file is not readable here (a Dask worker's path)
                if fragments:  # nobody here can complete them
                    left = sum(d.count for d in fragments.values())
                    bad = self.stats.not_in_flows
                    bad["FRAGMENT_INCOMPLETE"] = bad.get("FRAGMENT_INCOMPLETE", 0) + left
                self.unjoined.append(part.path)
                why = (
                    "a guessed cut fell inside a record"
                    if misplaced
                    else "a flow's close, a datagram's fragments or the file's time order"
                )
                self.on_warning(f"{part.path}: flows crossing into this part could not be "
                                f"joined exactly ({why}; the file cannot be read here to "
                                "do it as one run would)")  # fmt: skip
                self._join(part, out, force=True)
        self.offset += consumed
        if part.last_ts is not None:
            self.last_ts = part.last_ts if self.last_ts is None else max(self.last_ts, part.last_ts)
        for table in out:
            self.stats.count_flows(table)
        return [t for t in out if t.num_rows]

    def finish(self) -> list[pa.Table]:
        """The flows still open at the end of the last part, labelled."""
        if self._fragments and self.pipe.reassembler is not None:
            self.pipe.reassembler.take_over(self._fragments)  # counted as incomplete
        table = self.pipe.finish()
        self.stats.count_flows(table)
        add_stats(self.stats, self.pipe.stats)  # the parts read again here
        return [table] if table.num_rows else []

    # ---- one part --------------------------------------------------------------------

    def _join(self, part: PartResult, out: list, force: bool = False) -> bool | None:
        off = self.offset
        tables = part.tables
        keys = np.concatenate(part.keys) if part.keys else np.zeros((0, KEY_WIDTH), np.uint8)
        pos0 = (np.concatenate(part.pos0) if part.pos0 else np.zeros(0, np.int64)) + off
        open_rec = part.open_records.copy()
        open_notes = copy.deepcopy(part.open_notes)
        _shift_positions(open_rec, open_notes, off)

        replay = self._replay(part, off)
        if replay is None:
            if not force:
                return None
            replay = _Replay.nothing()
        if replay.finished is not None and len(replay.finished):
            out.append(self.pipe.render(replay.finished))
        self.table.adopt(replay.open_records, replay.open_notes)
        # flows that timed out in the part's time finish as the clock reaches its end
        if part.last_ts is not None:
            late = self.pipe.advance(part.last_ts)
            if late is not None and late.num_rows:
                out.append(late)

        # uids the part's tables name (as tunnel parents) -> the uids they become
        tunnels = any(_has_parents(t) for t in tables)
        old_names = [u for t in tables for u in t.column("uid").to_pylist()] if tunnels else []
        old_open = UidSource.render(open_rec["uid"]) if tunnels and len(open_rec) else []
        renames: dict[str, str] = {}
        new_names = None
        if self._uids is not None:
            open_rec["uid"] = self._uids.draw(len(open_rec), open_rec["pos0"], open_rec["key"])
            if len(keys):
                new_names = uid_strings(self._uids.draw(len(keys), pos0, keys))
            if tunnels:
                renames.update(zip(old_open, UidSource.render(open_rec["uid"]), strict=True))
                renames.update(zip(old_names, new_names.to_pylist(), strict=True))
        if tunnels:
            renames.update(replay.renames(old_open, open_rec, old_names, keys, pos0))

        # worker flows of carried keys before the point where both runs agree: replaced
        keep = replay.kept(open_rec["key"], open_rec["pos0"])
        idx = np.flatnonzero(keep)
        notes = None if open_notes is None else [open_notes[i] for i in idx]
        self._adopt(open_rec[idx], notes, out)
        keep_all = replay.kept(keys, pos0)
        start = 0
        for table in tables:
            n = table.num_rows
            keep = keep_all[start : start + n]
            if new_names is not None:
                at = table.schema.get_field_index("uid")
                table = table.set_column(at, "uid", new_names.slice(start, n))
            start += n
            if not keep.all():
                table = table.filter(numeric(keep))
            out.append(_rename_parents(table, renames) if renames else table)
        if part.stats is not None:
            add_stats(self.stats, part.stats)
        return True

    def _adopt(self, rec: Records, notes: list | None, out: list) -> None:
        """Worker flows open at the part's end go on here. A key still active here (a
        carried flow the heads did not reach) had timed out by the rules, so it is
        finished first."""
        if not len(rec):
            return
        slots = self.table.store.lookup(rec["key"])
        clash = slots[slots >= 0]
        if len(clash):
            done = self.table.end(clash)
            if done is not None:
                out.append(self.pipe.render(done))
        self.table.adopt(rec, notes)

    def _replay(self, part: PartResult, off: int):
        heads = part.heads
        if isinstance(heads, SpilledHeads):
            heads = heads.load()
        if heads is None or not len(heads):
            return _Replay.nothing()
        slots = self.table.store.lookup(heads.keys)
        if not (slots >= 0).any():
            return _Replay.nothing()
        rows, c_starts, numbers = heads.select(slots >= 0)
        rows.pos = rows.pos + off
        c_keys = heads.keys[numbers]
        carried = numbers
        keyed = KeyedBatch(rows, c_starts, c_keys, off, int(rows.ts.max()))

        scratch = self.table.scratch()
        rec, notes = self.table.take_active(slots[carried])
        scratch.adopt(rec.copy(), copy.deepcopy(notes))
        done = scratch.fold_keyed(keyed)
        active, active_notes = scratch.take_active()

        # where the replay starts its first flow of each carried key in this part
        c_raw = _raw(c_keys)
        first_new: dict[bytes, int] = {}
        parts = [(active["key"], active["pos0"])]
        if done is not None:
            parts.append((done.records["key"], done.records["pos0"]))
        for k, p in parts:
            new = np.flatnonzero(p >= off)
            for raw, at in zip(_raw(k[new]), p[new].tolist(), strict=True):
                if at < first_new.get(raw, NO_POS):
                    first_new[raw] = at
        # the worker's flows of those keys, by first position
        worker: dict[bytes, set[int]] = {}
        w_keys = [part.open_records["key"], *part.keys]
        w_pos = [part.open_records["pos0"], *part.pos0]
        carried_set = set(c_raw)
        for k, p in zip(w_keys, w_pos, strict=True):
            for raw, at in zip(_raw(k), (p + off).tolist(), strict=True):
                if raw in carried_set:
                    worker.setdefault(raw, set()).add(at)
        complete = set(_raw(heads.complete)) & carried_set
        drop_before: dict[bytes, int] = {}
        for raw in c_raw:
            at = first_new.get(raw)
            if at is None:
                if raw in complete:  # the worker saw a second flow the replay did not
                    self.table.adopt(rec, notes)
                    return None
                drop_before[raw] = NO_POS
            elif at in worker.get(raw, ()):
                drop_before[raw] = at
            else:
                self.table.adopt(rec, notes)
                return None
        # the replay's flows that go on from before the part: kept; its new ones: dropped
        cont = np.flatnonzero(active["pos0"] < off)
        finished = None
        if done is not None:
            keep = np.flatnonzero(done.records["pos0"] < off)
            finished = _subset(done, keep)
        return _Replay(
            finished,
            active[cont],
            None if active_notes is None else [active_notes[i] for i in cont],
            drop_before,
            c_raw,
            rec,
        )

    def _read_again(
        self,
        part: PartResult,
        out: list,
        fragments: dict | None,
        inputs: Iterable,
        byte_range: tuple[int, int] | None = None,
    ) -> int:
        """The sequential run's way: the part's packets (``inputs``, the batches of the
        file or of its ``byte_range``) after the carried flows and after the fragments
        the part before ended with. Returns the packets read."""
        self.reread.append(part.path)
        self.table.position = self.offset
        reassembler = self.pipe.reassembler
        if fragments and reassembler is not None:
            reassembler.take_over(fragments)
        for batch in inputs:
            table = self.pipe.feed(batch)
            if table is not None:
                out.append(table)
        if reassembler is not None:
            self._fragments = reassembler.hand_over() or None
        if byte_range is not None and getattr(inputs, "reader", None) is not None:
            self._range_end[part.path] = inputs.reader.range_end
        return self.table.position - self.offset


@dataclasses.dataclass
class _Replay:
    finished: FinishedFlows | None  # carried flows that ended in the part
    open_records: Records  # carried flows still open at its end
    open_notes: list | None
    drop_before: dict[bytes, int]  # key -> worker flows starting before this are replaced
    carried: list[bytes]
    before: Records  # the carried flows as they were before the part

    @classmethod
    def nothing(cls) -> _Replay:
        return cls(None, empty_records(0), None, {}, [], empty_records(0))

    def kept(self, keys: np.ndarray, pos0: np.ndarray) -> np.ndarray:
        """Which of the worker's flows (by key and capture position) stand."""
        if not self.drop_before or not len(keys):
            return np.ones(len(keys), dtype=bool)
        cut = np.array([self.drop_before.get(r, -1) for r in _raw(keys)], dtype=np.int64)
        return ~((cut >= 0) & (pos0 < cut))

    def renames(self, old_open, open_rec, old_names, keys, pos0) -> dict[str, str]:
        """Uids of the worker's flows that this replay replaces -> the carried flow's."""
        if not self.carried:
            return {}
        before = self.before
        uid_of = dict(zip(_raw(before["key"]), UidSource.render(before["uid"]), strict=True))
        out: dict[str, str] = {}
        flows = list(zip(_raw(open_rec["key"]), open_rec["pos0"].tolist(), old_open, strict=True))
        flows += zip(_raw(keys), pos0.tolist(), old_names, strict=True)
        for raw, at, uid in flows:
            cut = self.drop_before.get(raw)
            if cut is not None and at < cut and raw in uid_of:
                out[uid] = uid_of[raw]
        return out


def _subset(done: FinishedFlows, index: np.ndarray) -> FinishedFlows:
    pick = index.tolist()
    return FinishedFlows(
        done.records[index],
        done.reasons[index],
        None if done.parents is None else [done.parents[i] for i in pick],
        done.community_id_seed,
        None if done.letters is None else [done.letters[i] for i in pick],
    )


def _shift_positions(rec: Records, notes: list | None, off: int) -> None:
    """A part's positions (from 0) as capture positions (from ``off``)."""
    if not off:
        return
    rec["pos0"] += off
    first = rec["first_pos"]
    first[first != NO_POS] += off
    for n in notes or ():
        if n is not None and n.letters:
            n.letters = [(p + off, c) for p, c in n.letters]


def _has_parents(table: pa.Table) -> bool:
    """Whether any flow of ``table`` names a tunnel parent (read from the list offsets)."""
    if "tunnel_parents" not in table.column_names:
        return False
    for chunk in table.column("tunnel_parents").chunks:
        offsets = np.frombuffer(chunk.buffers()[1], np.int32)[
            chunk.offset : chunk.offset + len(chunk) + 1
        ]
        if len(offsets) and offsets[-1] > offsets[0]:
            return True
    return False


def _rename_parents(table: pa.Table, renames: dict[str, str]) -> pa.Table:
    if not _has_parents(table):
        return table
    lists = [
        [renames.get(u, u) for u in v or ()] for v in table.column("tunnel_parents").to_pylist()
    ]
    at = table.schema.get_field_index("tunnel_parents")
    return table.set_column(at, table.schema.field(at), string_lists(lists))
