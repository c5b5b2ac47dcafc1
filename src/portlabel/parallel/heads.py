"""The packet rows of each key's first flow in one part of a capture (``HeadCollector``).

The merge step replays them after the flows still open at the end of the parts before
(``stitch``). A key's rows are kept from its first row in the part until the batch in
which a second flow of that key starts (that batch included: the replay must see where
the second flow starts). Keys whose first row comes later than the config's longest wait
after the part's first packet are not kept: any flow of theirs left open before the part
would have timed out by then, so the worker's flows of those keys are already right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from portlabel.flows.engine import KeyedBatch
from portlabel.flows.keys import KEY_WIDTH, widen
from portlabel.flows.packets import Rows

_COLLECTING, _DONE = 1, 2


@dataclass(slots=True)
class Heads:
    """What ``HeadCollector`` kept: rows batch by batch (so in capture order within each
    key), each row's key number, the keys by number, and the keys whose second flow was
    seen (their heads end there)."""

    parts: list[Rows]  # without per-row keys
    numbers: np.ndarray  # int32 per row: its key's number
    keys: np.ndarray  # (keys, KEY_WIDTH) uint8, by number
    complete: np.ndarray  # (n, KEY_WIDTH) uint8: keys with a second flow in the part

    def __len__(self) -> int:
        return len(self.numbers)

    def select(self, wanted: np.ndarray) -> tuple[Rows, np.ndarray, np.ndarray]:
        """The rows of the keys ``wanted`` (bool per key number), grouped by key in
        capture order: (rows, where each key's rows start, the keys' numbers)."""
        index = np.flatnonzero(wanted[self.numbers])
        numbers = self.numbers[index]
        order = np.argsort(numbers, kind="stable")
        rows = _concat_rows(self.parts).take(index[order])
        picked = numbers[order]
        starts = np.flatnonzero(np.r_[True, picked[1:] != picked[:-1]]) if len(picked) else picked
        return rows, starts.astype(np.int64), picked[starts] if len(picked) else picked


class HeadCollector:
    """Watches a part's keyed batches before and after each fold (see the module)."""

    def __init__(self, horizon_ns: int) -> None:
        self.horizon_ns = horizon_ns
        self.start_ts: int | None = None
        self._state: dict[bytes, int] = {}
        self._id: dict[bytes, int] = {}  # collected key -> its number, in order seen
        self._kept: list[tuple[Rows, np.ndarray]] = []  # rows and each row's key number
        self._pending: tuple[np.ndarray, np.ndarray, list[bytes]] | None = None

    def before_fold(self, keyed: KeyedBatch) -> None:
        """Keep the rows of ``keyed`` that belong to heads (call before folding it)."""
        self._pending = None
        n = len(keyed.rows)
        if not n:
            return
        if self.start_ts is None:
            self.start_ts = int(keyed.rows.ts[np.argmin(keyed.rows.pos)])
        starts = keyed.gstarts
        raw = np.ascontiguousarray(widen(keyed.group_keys)).view(f"V{KEY_WIDTH}").ravel().tolist()
        state = self._state
        known = np.array([state.get(k, 0) for k in raw], dtype=np.int8)
        new = known == 0
        if new.any():
            late = keyed.rows.ts[starts] - self.start_ts > self.horizon_ns
            for g in np.flatnonzero(new).tolist():
                state[raw[g]] = _DONE if late[g] else _COLLECTING
                known[g] = _DONE if late[g] else -_COLLECTING  # negative: new in this batch
        collecting = np.flatnonzero(known != _DONE)
        if not len(collecting):
            return
        ids = self._id
        numbers = np.array([ids.setdefault(raw[g], len(ids)) for g in collecting.tolist()])
        lengths = np.diff(np.r_[starts, n])[collecting]
        if len(collecting) == len(starts):
            kept = keyed.rows  # every row (the fold only reads it)
        else:
            first = np.repeat(starts[collecting] - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
            kept = keyed.rows.take(first + np.arange(int(lengths.sum())))
        self._kept.append((kept, np.repeat(numbers, lengths)))
        self._pending = (collecting, known[collecting] < 0, raw)

    def after_fold(self, new_flow_groups: np.ndarray, n_groups: int) -> None:
        """Close the heads of keys whose second flow started in the batch just folded
        (``FlowTable.new_flow_groups``)."""
        if self._pending is None:
            return
        collecting, fresh, raw = self._pending
        self._pending = None
        started = np.bincount(new_flow_groups, minlength=n_groups)[collecting]
        # a key new in this batch started its first flow here: a second one ends its head
        ended = collecting[started >= np.where(fresh, 2, 1)]
        for g in ended.tolist():
            self._state[raw[g]] = _DONE

    def heads(self) -> Heads:
        """The kept rows, their key numbers, and the keys whose heads ended."""
        complete = [k for k, st in self._state.items() if st == _DONE]
        done = np.frombuffer(b"".join(complete), dtype=np.uint8).reshape(-1, KEY_WIDTH)
        keys = np.frombuffer(b"".join(self._id), dtype=np.uint8).reshape(-1, KEY_WIDTH)
        numbers = [k for _, k in self._kept]
        numbers = np.concatenate(numbers).astype(np.int32) if numbers else np.zeros(0, np.int32)
        return Heads([r for r, _ in self._kept], numbers, keys, done)


def _concat_rows(parts: list[Rows]) -> Rows:
    if len(parts) == 1:
        return parts[0]
    values = {}
    for name in Rows.__slots__:
        got = [getattr(p, name) for p in parts]
        if all(g is None for g in got):
            values[name] = None
        elif any(g is None for g in got):
            values[name] = np.concatenate(
                [_filled(g, p, name) for g, p in zip(got, parts, strict=True)]
            )
        else:
            values[name] = np.concatenate(got)
    return Rows(**values)


def _filled(value, rows: Rows, name: str) -> np.ndarray:
    """An optional column (``uncounted``, ``parent``, ``outer``) that ``rows`` lacks."""
    if value is not None:
        return value
    n = len(rows)
    if name == "parent":
        return np.zeros((n, KEY_WIDTH), dtype=np.uint8)
    return np.zeros(n, dtype=bool)


@dataclass(slots=True)
class SpilledHeads:
    """``Heads`` written to a file (``spill``) for a process on the same machine, which
    maps it (``load``) instead of receiving it through a pipe: it reads only the rows of
    the keys it replays. ``layout`` is (field, dtype, shape, offset) per array."""

    path: str
    layout: list[tuple[str, str, tuple, int]]
    rows: int

    def __len__(self) -> int:
        return self.rows

    def load(self) -> Heads:
        import mmap
        import os

        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            buf = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size else b""
        arrays = {}
        for name, dtype, shape, offset in self.layout:
            count = int(np.prod(shape))
            arrays[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(
                shape
            )
        fields = {n: arrays.get("rows." + n) for n in Rows.__slots__}
        parts = [Rows(**fields)] if self.rows else []
        return Heads(parts, arrays["numbers"], arrays["keys"], arrays["complete"])


def spill(heads: Heads, directory: str) -> SpilledHeads:
    """Write ``heads`` into a new file under ``directory`` (see ``SpilledHeads``), each
    row field written part after part (no concatenated copy)."""
    import tempfile

    columns: list[tuple[str, list[np.ndarray]]] = [
        ("numbers", [heads.numbers]), ("keys", [heads.keys]), ("complete", [heads.complete]),
    ]  # fmt: skip
    if heads.parts:
        for name in Rows.__slots__:
            got = [getattr(p, name) for p in heads.parts]
            if all(g is None for g in got):
                continue
            columns.append(("rows." + name, [_filled(g, p, name) for g, p in
                                             zip(got, heads.parts, strict=True)]))  # fmt: skip
    layout, offset = [], 0
    fd, path = tempfile.mkstemp(prefix="heads-", dir=directory)
    with open(fd, "wb") as f:
        for name, pieces in columns:
            first = pieces[0]
            rows = sum(len(p) for p in pieces)
            layout.append((name, first.dtype.str, (rows, *first.shape[1:]), offset))
            for piece in pieces:
                piece = np.ascontiguousarray(piece)
                if piece.size:
                    f.write(memoryview(piece.reshape(-1)).cast("B"))
                offset += piece.nbytes
            pad = -offset % 64
            f.write(b"\0" * pad)
            offset += pad
    return SpilledHeads(path, layout, len(heads))
