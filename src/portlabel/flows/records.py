"""Flow records in columnar form: the per-flow state the engine keeps between batches.

A ``Records`` is one structured numpy array, one element per flow, with the fields of
``RECORD_FIELDS`` (``rec["pkts"]`` is a view of one field). A flow's state is one
contiguous element, so moving flows around (taking finished ones out of a batch, storing,
releasing, concatenating) is one copy per flow instead of one per field. Per-direction
fields are ``(n, 2)`` indexed by the *canonical* direction (0: key endpoint a -> b,
1: b -> a); ``orig_side`` says which canonical direction the originator sends in.
``FlowStore`` keeps active flows in a slot array that grows by doubling, with an index
from packed key to slot (a C hash table, ``_slotindex``, or without it a dict of key
bytes); memory follows the number of active flows only.
"""

from __future__ import annotations

import os

import numpy as np

from portlabel.flows.keys import KEY_WIDTH

try:
    from portlabel.flows import _slotindex
except ImportError:  # built without a C compiler: a dict from key bytes to slot
    _slotindex = None

NO_POS = np.iinfo(np.int64).max  # "letter never seen"
N_LETTERS = 16  # 8 history kinds x 2 canonical directions

# name -> (dtype, per-row shape, fill value)
RECORD_FIELDS: dict[str, tuple[str, tuple[int, ...], int]] = {
    "key": ("uint8", (KEY_WIDTH,), 0),
    "ip_version": ("uint8", (), 0),
    "first_ts": ("int64", (), 0),
    "last_ts": ("int64", (), 0),
    "orig_side": ("uint8", (), 0),  # canonical direction of the originator's packets
    "flipped": ("bool", (), 0),  # the first packet's receiver is the originator
    "by": ("uint8", (), 0),  # responder_by code
    "pkts": ("int64", (2,), 0),
    "ip_bytes": ("int64", (2,), 0),
    "payload": ("int64", (2,), 0),
    "mac": ("uint64", (2,), 0),  # sender MAC per direction
    "vlans": ("int32", (2,), -1),  # the first packet's outer and inner VLAN (-1: none)
    "seq_prev": ("uint32", (2,), 0),  # TCP: the last packet's sequence end (tcp_track)
    "seq_u": ("int64", (2,), 0),  # TCP: that end unwrapped past 32 bits
    "seq_top": ("int64", (2,), -(1 << 40)),  # TCP: the highest unwrapped end sent (not RST)
    "deliv": ("int64", (2,), 0),  # TCP: the end of the data seen without a hole (unwrapped)
    "hole_end": ("int64", (2,), -(1 << 40)),  # TCP: where data seen beyond a hole starts
    "scaled": ("uint32", (8,), 0),  # letters.SCALED_KINDS counts per canonical direction
    "base": ("uint32", (2,), 0),  # TCP: sequence number "before" the first octet
    "has_base": ("bool", (2,), 0),
    "seq_end": ("int64", (2,), 0),  # TCP: highest relative sequence end sent
    "acked": ("int64", (2,), 0),  # TCP: highest relative ack received for this side
    "fins": ("int64", (2,), 0),
    "joint": ("uint8", (), 0),  # TCP joint endpoint state (tcp_state)
    "first_pos": ("int64", (N_LETTERS,), NO_POS),  # first packet position of each letter
    "uid": ("uint32", (3,), 0),
    "pos0": ("int64", (), 0),  # capture position of the flow's first packet (its uid's)
    "cut_state": ("uint8", (), 0),  # segments.CS_* bits: what the cutting rules look back at
}

RECORD_DTYPE = np.dtype(
    [(name, dtype, shape) for name, (dtype, shape, _) in RECORD_FIELDS.items()], align=True
)
assert RECORD_DTYPE.itemsize % 8 == 0  # _words relies on it (align=True, 8-byte fields)
assert RECORD_DTYPE.fields["key"][1] == 0  # _slotindex reads a record's key at its start
_FILLED = [(name, fill) for name, (_, _, fill) in RECORD_FIELDS.items() if fill != 0]

Records = np.ndarray  # of RECORD_DTYPE


def empty_records(n: int) -> Records:
    out = np.zeros(n, dtype=RECORD_DTYPE)
    for name, fill in _FILLED:
        out[name] = fill
    return out


def take(rec: Records, index: np.ndarray) -> Records:
    # np.take copies whole elements; ``rec[index]`` on a structured array goes field by
    # field and is several times slower
    return np.take(rec, index)


def _words(rec: Records) -> np.ndarray:
    """A contiguous ``Records`` seen as ``(n, itemsize / 8)`` uint64 (for fast scatters)."""
    return rec.view(np.uint64).reshape(len(rec), RECORD_DTYPE.itemsize // 8)


def concat(parts: list[Records]) -> Records:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_records(0)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class FlowStore:
    """Active flows: a slot array of records plus an index from key to slot."""

    def __init__(self, capacity: int = 1024, compiled: bool = True) -> None:
        self.cols: Records = empty_records(capacity)
        self.used = np.zeros(capacity, dtype=bool)
        use_c = compiled and _slotindex is not None
        self.index = CompiledIndex() if use_c else DictIndex()
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        # slots past which the array grows only by what is needed (the table's cap on
        # active flows plus a batch of new ones: doubling there would double its memory)
        self.limit: int | None = None

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each packed key row, -1 when not active."""
        return self.index.lookup(self.cols, np.ascontiguousarray(keys))

    def slot(self, key: bytes) -> int | None:
        """The slot of one packed key (``KEY_WIDTH`` bytes), None when not active."""
        found = int(self.lookup(np.frombuffer(key, dtype=np.uint8).reshape(1, -1))[0])
        return None if found < 0 else found

    def _grow(self, need: int) -> None:
        cap = len(self.used)
        new_cap = max(cap * 2, cap + need)
        if self.limit is not None and new_cap * 2 > self.limit:
            new_cap = max(self.limit, cap + need)  # the last growth: straight to the limit
        grown = empty_records(new_cap)  # then one copy: the old slots and the new array
        grown[:cap] = self.cols  # are all that is held at once (not a third, concatenated)
        self.cols = grown
        self.used = np.concatenate([self.used, np.zeros(new_cap - cap, dtype=bool)])
        self._free.extend(range(new_cap - 1, cap - 1, -1))

    def put(self, slots: np.ndarray, rec: Records) -> np.ndarray:
        """Write records into their slots; rows with slot -1 get new slots."""
        slots = slots.copy()
        fresh = np.flatnonzero(slots < 0)
        if len(fresh) > len(self._free):
            self._grow(len(fresh) - len(self._free))
        if len(fresh):
            slots[fresh] = self._free[-len(fresh) :][::-1]
            del self._free[-len(fresh) :]
        _words(self.cols)[slots] = _words(np.ascontiguousarray(rec))
        self.used[slots] = True
        if len(fresh):
            self.index.add(self.cols, slots[fresh], self.used)
        return slots

    def release(self, slots: np.ndarray) -> Records:
        """Remove flows from the store and return their records."""
        rec = take(self.cols, slots)
        self.index.remove(self.cols, slots)
        self.used[slots] = False
        self._free.extend(slots.tolist())
        return rec


def _key_bytes(cols: Records, slots: np.ndarray) -> list[bytes]:
    return np.ascontiguousarray(cols["key"][slots]).view(f"V{KEY_WIDTH}").ravel().tolist()


class DictIndex:
    """Key bytes -> slot in a dict (builds without the C extension)."""

    def __init__(self) -> None:
        self.slot_of: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self.slot_of)

    def lookup(self, cols: Records, keys: np.ndarray) -> np.ndarray:
        found = list(map(self.slot_of.get, keys.view(f"V{KEY_WIDTH}").ravel().tolist()))
        return np.array([-1 if s is None else s for s in found], dtype=np.int64)

    def add(self, cols: Records, slots: np.ndarray, used: np.ndarray) -> None:
        self.slot_of.update(zip(_key_bytes(cols, slots), slots.tolist(), strict=True))

    def remove(self, cols: Records, slots: np.ndarray) -> None:
        list(map(self.slot_of.pop, _key_bytes(cols, slots)))


class CompiledIndex:
    """Key -> slot in ``_slotindex``'s hash table, whose cells this object owns: at most
    half of them are in use (live or removed), so probes stay short; past that the table
    is rebuilt from the live slots, at least four times their number."""

    MIN_CELLS = 1024

    def __init__(self) -> None:
        self.cells = np.full(self.MIN_CELLS, -1, dtype=np.int64)
        self.live = 0
        self.filled = 0  # live plus removed cells
        # the table's hash key: random, so no capture can be crafted to collide its flows
        self.hash_key = np.frombuffer(os.urandom(16), dtype=np.uint8)

    def __len__(self) -> int:
        return self.live

    def lookup(self, cols: Records, keys: np.ndarray) -> np.ndarray:
        out = np.empty(len(keys), dtype=np.int64)
        _slotindex.lookup(
            self.cells, cols, RECORD_DTYPE.itemsize, KEY_WIDTH, keys, out, self.hash_key
        )
        return out

    def add(self, cols: Records, slots: np.ndarray, used: np.ndarray) -> None:
        if 2 * (self.filled + len(slots)) > len(self.cells):
            self._rebuild(cols, used)  # ``used`` already marks ``slots``
            return
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        reused = _slotindex.add(
            self.cells, cols, RECORD_DTYPE.itemsize, KEY_WIDTH, slots, self.hash_key
        )
        self.live += len(slots)
        self.filled += len(slots) - reused

    def remove(self, cols: Records, slots: np.ndarray) -> None:
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        _slotindex.remove(self.cells, cols, RECORD_DTYPE.itemsize, KEY_WIDTH, slots, self.hash_key)
        self.live -= len(slots)

    def _rebuild(self, cols: Records, used: np.ndarray) -> None:
        live = np.flatnonzero(used)
        size = max(self.MIN_CELLS, 1 << int(4 * len(live)).bit_length())
        self.cells = np.full(size, -1, dtype=np.int64)
        _slotindex.add(self.cells, cols, RECORD_DTYPE.itemsize, KEY_WIDTH, live, self.hash_key)
        self.live = self.filled = len(live)
