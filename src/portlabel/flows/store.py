"""Active flows between batches: a compact slot array and an index from key to slot.

The engine folds batches on full ``Records`` (``records.RECORD_DTYPE``); the store keeps
what it needs to rebuild them exactly, in fewer bytes, because it holds every active
flow, up to ``max_flows`` of them (a flood fills it). A slot of ``STORED_DTYPE`` holds
the fields every flow uses, plus:

- ``side``: the flow's row in the side table of ``SIDE_FIELDS`` (TCP sequence tracking,
  FIN counts, scaled-letter counts), or -1 while all of them are at their initial values,
  as they stay for almost every flow that is not TCP;
- ``first_pos`` as 16-bit offsets from the flow's first packet (``pos0``), and the
  packet and byte counters (``COUNTERS``) in 32 bits; a flow for which any of them does
  not fit (one that first shows a history letter 65535 or more packets of the capture
  after its first packet, or sends 4 G packets or 4 GB) keeps them all at full width in
  a second side table, at ``wide``: the few long-lived flows of a capture, while the
  many short ones cost 32 bytes less each;
- ``vlans`` in 16 bits (802.1Q ids are 12 bits, -1 for none): the slot is then 184
  bytes, not 192;
- ``key`` with its tunnel-parent field (40 bytes, zero unless flows are keyed by their
  tunnel parent) replaced by a number (8 bytes, 0 for none) that ``ParentNumbers`` gives
  each parent key while a stored flow has it; the index hashes these 56-byte keys.

``get``/``release`` give back exactly the records ``put`` stored. The slot array and the
side tables grow in place where the allocator can (``ndarray.resize``, a remap for large
arrays) rather than by a copy that would hold the old and the new array at once; free
slots are reused last-freed first, new ones lowest first.
"""

from __future__ import annotations

import os

import numpy as np

from portlabel.capture.batch import NO_VLAN
from portlabel.flows.keys import KEY_WIDTH, SHORT_WIDTH
from portlabel.flows.records import NO_POS, RECORD_FIELDS, Records, empty_records

try:
    from portlabel.flows import _slotindex
except ImportError:  # built without a C compiler: a dict from key bytes to slot
    _slotindex = None

SIDE_FIELDS = (
    "seq_prev", "seq_u", "seq_top", "deliv", "hole_end", "base", "has_base",
    "seq_end", "acked", "fins", "scaled",
)  # fmt: skip
OFFSET_TYPE, COUNTER_TYPE = np.uint16, np.uint32  # a slot's letter offsets and counters
_NO_OFFSET = np.iinfo(OFFSET_TYPE).max  # a stored letter position never seen
_COUNTER_MAX = np.iinfo(COUNTER_TYPE).max  # the largest counter a slot holds
_VLAN_MAX = (1 << 12) - 1  # an 802.1Q id is 12 bits


def _compact_dtype(fields: list[tuple[str, str, tuple[int, ...]]]) -> np.dtype:
    """``fields`` in the order that needs no padding: ``key`` first (the index reads it
    at offset 0), then by alignment, widest first."""
    key = [f for f in fields if f[0] == "key"]
    rest = sorted((f for f in fields if f[0] != "key"), key=lambda f: -np.dtype(f[1]).itemsize)
    return np.dtype(key + rest, align=True)


STORED_KEY_WIDTH = SHORT_WIDTH + 8  # a key's first 48 bytes, then its parent's number
_NO_PARENT_MATCH = np.uint64(2**64 - 1)  # a number no parent gets: such a key is not stored
COUNTERS = ("pkts", "ip_bytes", "payload")  # stored as 32 bits while they fit
_NARROWED = ("first_pos", *COUNTERS)
VLAN_TYPE = np.int16  # a slot's VLAN ids (12 bits, or -1)
_CORE_COPIED = tuple(
    n for n in RECORD_FIELDS
    if n not in SIDE_FIELDS and n not in _NARROWED and n not in ("key", "vlans")
)  # fmt: skip
STORED_DTYPE = _compact_dtype(
    [("key", "uint8", (STORED_KEY_WIDTH,))]
    + [(n, *RECORD_FIELDS[n][:2]) for n in _CORE_COPIED]
    + [("vlans", VLAN_TYPE, RECORD_FIELDS["vlans"][1])]
    + [("first_pos", OFFSET_TYPE, RECORD_FIELDS["first_pos"][1])]
    + [(n, COUNTER_TYPE, RECORD_FIELDS[n][1]) for n in COUNTERS]
    + [("side", "int32", ()), ("wide", "int32", ())]
)
SIDE_DTYPE = np.dtype([(n, *RECORD_FIELDS[n][:2]) for n in SIDE_FIELDS], align=True)
WIDE_DTYPE = np.dtype([(n, *RECORD_FIELDS[n][:2]) for n in _NARROWED])
assert STORED_DTYPE.fields["key"][1] == 0  # _slotindex reads a slot's key at its start
_SIDE_FILLS = [(n, RECORD_FIELDS[n][2]) for n in SIDE_FIELDS]


def _lengthen(owner: object, name: str, n: int) -> None:
    """The array ``owner.<name>`` lengthened to ``n`` rows, the new ones zero: in place
    when nothing else holds it (a remap, no copy, for a large array), else by a copy.
    (Only the attribute may hold the array while it is resized, hence no local name.)"""
    tail = getattr(owner, name).shape[1:]
    try:
        getattr(owner, name).resize((n, *tail), refcheck=True)
    except ValueError:  # a view or another name holds it: copy
        old = getattr(owner, name)
        out = np.zeros((n, *tail), dtype=old.dtype)
        out[: len(old)] = old
        setattr(owner, name, out)


class FreeStack:
    """Numbers ``0 .. capacity-1`` (below 2^31) given out lowest first and taken back
    last-out first, kept in an int32 array (a million slots cost 4 MB, not a list of
    Python ints); ``take`` gives them as int64, the type slot arrays have."""

    def __init__(self, capacity: int = 0) -> None:
        self._stack = np.arange(capacity - 1, -1, -1, dtype=np.int32)
        self._top = capacity
        self.capacity = capacity

    def __len__(self) -> int:
        return self._top

    def grow(self, capacity: int) -> None:
        """Add the numbers from the current capacity up to ``capacity``, given out first
        (lowest first)."""
        added = np.arange(capacity - 1, self.capacity - 1, -1, dtype=np.int32)
        _lengthen(self, "_stack", capacity)
        self._stack[self._top : self._top + len(added)] = added
        self._top += len(added)
        self.capacity = capacity

    def take(self, n: int) -> np.ndarray:
        """``n`` numbers (there must be that many free)."""
        out = self._stack[self._top - n : self._top][::-1].astype(np.int64)
        self._top -= n
        return out

    def give_back(self, numbers: np.ndarray) -> None:
        n = len(numbers)
        if self._top + n > len(self._stack):  # a number given back twice: a bug upstream
            raise ValueError("more numbers given back than were taken")
        self._stack[self._top : self._top + n] = numbers
        self._top += n


class SideTable:
    """Rows of a side dtype handed out by number, growing by doubling."""

    def __init__(self, dtype: np.dtype) -> None:
        self.rows = np.zeros(0, dtype=dtype)
        self.free = FreeStack()

    def __len__(self) -> int:
        return self.free.capacity - len(self.free)

    def take(self, n: int) -> np.ndarray:
        if n > len(self.free):
            cap = max(2 * self.free.capacity, self.free.capacity + n, 64)
            _lengthen(self, "rows", cap)
            self.free.grow(cap)
        return self.free.take(n)


class ParentNumbers:
    """A number for each tunnel-parent key some stored flow has (0: no parent), counted
    so that it goes when the last such flow does. Only keys with a parent cost a lookup."""

    def __init__(self) -> None:
        self._number: dict[bytes, int] = {}
        self._parent: dict[int, bytes] = {}
        self._users: dict[int, int] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self._number)

    def stored_keys(self, keys: np.ndarray, take: bool = False) -> np.ndarray:
        """Full keys ``(n, KEY_WIDTH)`` as stored keys ``(n, STORED_KEY_WIDTH)``. With
        ``take`` each parent is counted once more (the keys are being stored); without,
        a parent no stored flow has gets a number no stored key holds."""
        out = np.zeros((len(keys), STORED_KEY_WIDTH), dtype=np.uint8)
        out[:, :SHORT_WIDTH] = keys[:, :SHORT_WIDTH]
        has = np.flatnonzero(keys[:, SHORT_WIDTH:].any(axis=1))
        if len(has):
            parents = np.ascontiguousarray(keys[has, SHORT_WIDTH:]).view(
                f"V{KEY_WIDTH - SHORT_WIDTH}"
            )
            numbers = [self._take(p) if take else self._number.get(p, _NO_PARENT_MATCH)
                       for p in parents.ravel().tolist()]  # fmt: skip
            out[has, SHORT_WIDTH:] = np.array(numbers, dtype="<u8").view(np.uint8).reshape(-1, 8)
        return out

    def _take(self, parent: bytes) -> int:
        number = self._number.get(parent)
        if number is None:
            number, self._next = self._next, self._next + 1
            self._number[parent], self._parent[number] = number, parent
            self._users[number] = 0
        self._users[number] += 1
        return number

    def full_keys(self, stored: np.ndarray) -> np.ndarray:
        """Stored keys back as full keys."""
        out = np.zeros((len(stored), KEY_WIDTH), dtype=np.uint8)
        out[:, :SHORT_WIDTH] = stored[:, :SHORT_WIDTH]
        numbers = np.ascontiguousarray(stored[:, SHORT_WIDTH:]).view("<u8").ravel()
        for i in np.flatnonzero(numbers).tolist():
            out[i, SHORT_WIDTH:] = np.frombuffer(self._parent[int(numbers[i])], dtype=np.uint8)
        return out

    def give_back(self, stored: np.ndarray) -> None:
        """The parents of stored keys that are leaving the store counted once less."""
        numbers = np.ascontiguousarray(stored[:, SHORT_WIDTH:]).view("<u8").ravel()
        for number in numbers[numbers != 0].tolist():
            self._users[number] -= 1
            if not self._users[number]:
                del self._users[number], self._number[self._parent.pop(number)]


class FlowStore:
    """Active flows: a slot array of compact records plus an index from key to slot."""

    def __init__(self, capacity: int = 1024, compiled: bool = True) -> None:
        self.cols = np.zeros(0, dtype=STORED_DTYPE)
        self.used = np.zeros(0, dtype=bool)
        self._slots = FreeStack()
        self._side = SideTable(SIDE_DTYPE)
        self._wide = SideTable(WIDE_DTYPE)
        self._tables = {"side": self._side, "wide": self._wide}  # by their slot field
        self._parents = ParentNumbers()
        use_c = compiled and _slotindex is not None
        self.index = CompiledIndex() if use_c else DictIndex()
        # slots past which the array grows only by what is needed (the table's cap on
        # active flows plus a batch of new ones: doubling there would double its memory)
        self.limit: int | None = None
        self._grow_to(capacity)

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each packed key row, -1 when not active."""
        return self.index.lookup(self.cols, self._parents.stored_keys(keys))

    def slot(self, key: bytes) -> int | None:
        """The slot of one packed key (``KEY_WIDTH`` bytes), None when not active."""
        found = int(self.lookup(np.frombuffer(key, dtype=np.uint8).reshape(1, -1))[0])
        return None if found < 0 else found

    def _grow_to(self, cap: int) -> None:
        if cap >= 1 << 31:  # the index keeps slot numbers in 32 bits
            raise MemoryError(f"a flow table of {cap:,} slots (at most 2^31 - 1)")
        old = len(self.cols)
        _lengthen(self, "cols", cap)
        self.cols["side"][old:] = self.cols["wide"][old:] = -1
        _lengthen(self, "used", cap)
        self._slots.grow(cap)

    def _grow(self, need: int) -> None:
        cap = len(self.cols)
        new_cap = max(cap * 2, cap + need)
        if self.limit is not None and new_cap * 2 > self.limit:
            new_cap = max(self.limit, cap + need)  # the last growth: straight to the limit
        self._grow_to(new_cap)

    def put(self, slots: np.ndarray, rec: Records) -> np.ndarray:
        """Store records in their slots; rows with slot -1 get new slots."""
        slots = slots.copy()
        fresh = np.flatnonzero(slots < 0)
        if len(fresh) > len(self._slots):
            self._grow(len(fresh) - len(self._slots))
        if len(fresh):
            slots[fresh] = self._slots.take(len(fresh))
        cols = self.cols
        if len(fresh):  # a stored flow's key does not change
            cols["key"][slots[fresh]] = self._parents.stored_keys(rec["key"][fresh], take=True)
        for name in _CORE_COPIED:
            cols[name][slots] = rec[name]
        vlans = rec["vlans"]
        if len(vlans) and (vlans.min() < NO_VLAN or vlans.max() > _VLAN_MAX):
            raise ValueError(
                f"a VLAN id outside {NO_VLAN}..{_VLAN_MAX}: {vlans.min()}, {vlans.max()}"
            )
        cols["vlans"][slots] = vlans
        self._put_side(slots, rec)
        self._put_narrowed(slots, rec)
        self.used[slots] = True
        if len(fresh):
            self.index.add(cols, slots[fresh], self.used)
        return slots

    def _store_side(self, field: str, slots, need, rec: Records) -> None:
        """The side-table rows (``field``: "side" or "wide") of the ``slots`` that
        ``need`` one written from ``rec``: kept, new, or given back (-1) where not."""
        table = self._tables[field]
        at = self.cols[field][slots]
        drop = ~need & (at >= 0)
        if drop.any():
            table.free.give_back(at[drop])
            at[drop] = -1
        new = need & (at < 0)
        if new.any():
            at[new] = table.take(int(new.sum()))
        self.cols[field][slots] = at
        if need.any():
            part = rec[need]
            for name in table.rows.dtype.names:
                table.rows[name][at[need]] = part[name]

    def _load_side(self, field: str, slots, rec: Records) -> None:
        """Into ``rec``, the side-table fields of the ``slots`` that have a row."""
        table = self._tables[field]
        at = self.cols[field][slots]
        has = at >= 0
        if has.any():
            rows = table.rows[at[has]]
            for name in table.rows.dtype.names:
                rec[name][has] = rows[name]

    def _put_side(self, slots: np.ndarray, rec: Records) -> None:
        need = np.zeros(len(rec), dtype=bool)
        for name, fill in _SIDE_FILLS:
            need |= (rec[name] != fill).reshape(len(rec), -1).any(axis=1)
        self._store_side("side", slots, need, rec)

    def _put_narrowed(self, slots: np.ndarray, rec: Records) -> None:
        """Letter positions as 16-bit offsets from ``pos0`` and the counters in 32 bits;
        a flow with any that does not fit has them all at full width in the wide table."""
        pos = rec["first_pos"]
        seen = pos != NO_POS
        offset = pos - rec["pos0"][:, None]
        fits = (~seen | ((offset >= 0) & (offset < _NO_OFFSET))).all(axis=1)
        for name in COUNTERS:
            fits &= ((rec[name] >= 0) & (rec[name] <= _COUNTER_MAX)).all(axis=1)
        cols, narrow = self.cols, fits[:, None]
        cols["first_pos"][slots] = np.where(seen & narrow, offset, _NO_OFFSET)
        for name in COUNTERS:
            cols[name][slots] = np.where(narrow, rec[name], 0)
        self._store_side("wide", slots, ~fits, rec)

    def get(self, slots: np.ndarray) -> Records:
        """The records of active ``slots`` (a copy; the flows stay stored)."""
        cols = self.cols
        rec = empty_records(len(slots))
        rec["key"] = self._parents.full_keys(cols["key"][slots])
        for name in _CORE_COPIED:
            rec[name] = cols[name][slots]
        rec["vlans"] = cols["vlans"][slots]
        self._load_side("side", slots, rec)
        offset = cols["first_pos"][slots]
        pos = offset.astype(np.int64) + rec["pos0"][:, None]
        rec["first_pos"] = np.where(offset == _NO_OFFSET, NO_POS, pos)
        for name in COUNTERS:
            rec[name] = cols[name][slots]
        self._load_side("wide", slots, rec)  # over the narrow values, where they did not fit
        return rec

    def release(self, slots: np.ndarray) -> Records:
        """Remove flows from the store and return their records."""
        rec = self.get(slots)
        cols = self.cols
        for field, table in self._tables.items():
            at = cols[field][slots]
            held = at >= 0
            if held.any():
                table.free.give_back(at[held])
            cols[field][slots] = -1
        self.index.remove(cols, slots)
        self._parents.give_back(cols["key"][slots])
        self.used[slots] = False
        self._slots.give_back(np.asarray(slots, dtype=np.int64))
        return rec


def _key_bytes(cols: np.ndarray, slots: np.ndarray) -> list[bytes]:
    return np.ascontiguousarray(cols["key"][slots]).view(f"V{STORED_KEY_WIDTH}").ravel().tolist()


class DictIndex:
    """Key bytes -> slot in a dict (builds without the C extension)."""

    def __init__(self) -> None:
        self.slot_of: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.slot_of)

    def lookup(self, cols: np.ndarray, keys: np.ndarray) -> np.ndarray:
        found = list(map(self.slot_of.get, keys.view(f"V{STORED_KEY_WIDTH}").ravel().tolist()))
        return np.array([-1 if s is None else s for s in found], dtype=np.int64)

    def add(self, cols: np.ndarray, slots: np.ndarray, used: np.ndarray) -> None:
        self.slot_of.update(zip(_key_bytes(cols, slots), slots.tolist(), strict=True))

    def remove(self, cols: np.ndarray, slots: np.ndarray) -> None:
        list(map(self.slot_of.pop, _key_bytes(cols, slots)))


class CompiledIndex:
    """Key -> slot in ``_slotindex``'s hash table (int32 cells), which this object owns: at most
    half of them are in use (live or removed), so probes stay short; past that the table
    is rebuilt from the live slots: the smallest power of two at least ``SPREAD`` times their
    number, which leaves room for half as many again before the next rebuild (a flood's
    million flows: 4 M cells, 16 MB)."""

    MIN_CELLS = 1024
    SPREAD = 3  # cells per live slot after a rebuild, at least
    REBUILD_SLOTS = 1 << 16  # slots scanned at a time by ``_rebuild``

    def __init__(self) -> None:
        self.cells = np.full(self.MIN_CELLS, -1, dtype=np.int32)
        self.live = 0
        self.filled = 0  # live plus removed cells
        # the table's hash key: random, so no capture can be crafted to collide its flows
        self.hash_key = np.frombuffer(os.urandom(16), dtype=np.uint8)

    def __len__(self) -> int:
        return self.live

    def lookup(self, cols: np.ndarray, keys: np.ndarray) -> np.ndarray:
        out = np.empty(len(keys), dtype=np.int64)
        _slotindex.lookup(
            self.cells, cols, cols.dtype.itemsize, STORED_KEY_WIDTH, keys, out, self.hash_key
        )
        return out

    def add(self, cols: np.ndarray, slots: np.ndarray, used: np.ndarray) -> None:
        if 2 * (self.filled + len(slots)) > len(self.cells):
            self._rebuild(cols, used)  # ``used`` already marks ``slots``
            return
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        reused = _slotindex.add(
            self.cells, cols, cols.dtype.itemsize, STORED_KEY_WIDTH, slots, self.hash_key
        )
        self.live += len(slots)
        self.filled += len(slots) - reused

    def remove(self, cols: np.ndarray, slots: np.ndarray) -> None:
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        _slotindex.remove(
            self.cells, cols, cols.dtype.itemsize, STORED_KEY_WIDTH, slots, self.hash_key
        )
        self.live -= len(slots)

    def _rebuild(self, cols: np.ndarray, used: np.ndarray) -> None:
        """The table made again from the slots ``used`` marks (the keys are in ``cols``),
        without its removed cells. The cells are all derived, so the old table goes
        before the new one is made, or is cleared and reused when its size stays: a
        flood, whose removed cells fill the table every few dozen batches, never holds
        two tables (16 MB each for a million flows) at once."""
        live = int(np.count_nonzero(used))
        size = max(self.MIN_CELLS, 1 << (self.SPREAD * live - 1).bit_length())
        if len(self.cells) == size:
            self.cells.fill(-1)
        else:
            self.cells = np.zeros(0, dtype=np.int32)  # the old table's memory goes first
            self.cells = np.full(size, -1, dtype=np.int32)
        for at in range(0, len(used), self.REBUILD_SLOTS):  # slot numbers a range at a time
            slots = np.flatnonzero(used[at : at + self.REBUILD_SLOTS]) + at
            _slotindex.add(
                self.cells, cols, cols.dtype.itemsize, STORED_KEY_WIDTH, slots, self.hash_key
            )
        self.live = self.filled = live
