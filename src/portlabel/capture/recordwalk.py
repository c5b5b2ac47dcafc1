"""Finding where each record starts in a stream of length-prefixed records, vectorised.

A record stream is a linked list: record *i+1* starts where record *i*'s header says it
ends, so the walk looks sequential. It is made parallel by walking many chains at once
("lockstep"): the stretch to walk is cut into chunks, each chunk's first record start is
*guessed* by a vectorised scan for a plausible header near the chunk boundary, and every
chunk is walked from its guess at the same time, one numpy step per record rank, until
its cursor passes the next chunk's guess.

Guesses are then *proved*: the first chunk starts at a known record, and chunk k+1 is
right exactly when the proved walk of chunk k lands on its guess. A chunk whose guess was
wrong is walked again from where its predecessor landed (in a round of its own, together
with every other such chunk), so the result is always the true chain, whatever the data;
bad guesses only cost time. Pathological data ends in a single cursor walking the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

# step(p) -> bytes from record start p to the next record start (int64 array)
Step = Callable[[np.ndarray], np.ndarray]
# plausible(field) -> mask of candidate starts that look like a record header, where
# field(offset) gives the u32 header field at that offset for every candidate
Plausible = Callable[[Callable[[int], np.ndarray]], np.ndarray]


@dataclass(frozen=True, slots=True)
class RecordShape:
    """How to step from record to record and how to recognise a header."""

    step: Step
    plausible: Plausible
    key_offset: int  # a header byte with a predictable value (a timestamp's high byte)
    key_value: int
    max_step: int  # a longer step means the length field is corrupt


CHUNK_BYTES = 64 << 10  # distance between guessed chunk starts
SCAN_BYTES = 1600  # how far past a boundary a header is looked for (an Ethernet frame)
MAX_ROUNDS = 6  # correction rounds before the rest is walked by one cursor
BROKEN = np.iinfo(np.int64).max  # landing of a cursor that met an impossible length


def u32_view(buf: np.ndarray, byteorder: str) -> np.ndarray:
    """Every 4-byte field of ``buf`` at every byte offset, as uint32 (stride 1)."""
    n = max(len(buf) - 3, 0)
    return np.ndarray((n,), dtype=np.dtype(byteorder + "u4"), buffer=buf, strides=(1,))


def _guesses(buf: np.ndarray, u: np.ndarray, lo: int, hi: int, shape: RecordShape) -> np.ndarray:
    """A plausible record start at or after each chunk boundary in ``(lo, hi)``.

    A first pass compares one key byte over the scanned bytes (cheap, contiguous); only
    its matches are checked field by field, and so is the record each one points to.
    """
    first = lo + CHUNK_BYTES
    k = (hi - SCAN_BYTES - 64 - first) // CHUNK_BYTES + 1
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    grid = as_strided(
        buf[first + shape.key_offset :], shape=(k, SCAN_BYTES), strides=(CHUNK_BYTES, 1)
    )
    rows, cols = np.nonzero(grid == shape.key_value)
    cand = first + CHUNK_BYTES * rows.astype(np.int64) + cols
    ok = shape.plausible(lambda off: u[cand + off])
    rows, cand = rows[ok], cand[ok]
    nxt = np.minimum(cand + shape.step(cand), len(u) - 16)
    ok = shape.plausible(lambda off: u[nxt + off])
    rows, cand = rows[ok], cand[ok]
    first_of_row = np.r_[True, rows[1:] != rows[:-1]] if len(rows) else np.zeros(0, bool)
    return cand[first_of_row]


def _lockstep(
    starts: np.ndarray, stops: np.ndarray, step: Step, max_step: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Walk every chunk from ``starts[i]`` until it reaches ``stops[i]``.

    Returns the record starts met and their chunk numbers (lists of arrays) and each
    chunk's landing (first chain position >= its stop, or ``BROKEN``).
    """
    landing = np.zeros(len(starts), dtype=np.int64)
    alive = starts < stops
    landing[~alive] = starts[~alive]
    ids = np.flatnonzero(alive)
    p, st = starts[ids], stops[ids]
    found, owner = [], []
    while len(p):
        size = step(p)
        q = p + size
        found.append(p)
        owner.append(ids)
        dead = q >= st  # an impossible length also jumps past any stop
        if dead.any():
            landing[ids[dead]] = np.where(size[dead] > max_step, BROKEN, q[dead])
            keep = ~dead
            p, st, ids = q[keep], st[keep], ids[keep]
        else:
            p = q
    return found, owner, landing


def walk(
    buf: np.ndarray, u: np.ndarray, start: int, stop: int, shape: RecordShape
) -> tuple[np.ndarray, int]:
    """Record starts of the chain from ``start`` that lie before ``stop``, and where the
    chain goes on (the first start >= ``stop``, or ``BROKEN`` after an impossible length).

    ``u`` is ``u32_view(buf)``. ``shape.step(p)`` is only called with ``p < stop``: the
    caller keeps ``stop`` where a whole header can still be read.
    """
    step, max_step = shape.step, shape.max_step
    guesses = _guesses(buf, u, start, stop, shape)
    starts = np.r_[np.int64(start), guesses].astype(np.int64)
    stops = np.r_[starts[1:], np.int64(stop)]
    found, owner, landing = _lockstep(starts, stops, step, max_step)
    rounds = [(found, owner)]
    generation = np.zeros(len(starts), dtype=np.int64)
    proved = 0  # chunks [0, proved) are known right
    while True:
        ok = landing[:-1] == starts[1:]
        bad = np.flatnonzero(~ok[proved:])
        if not len(bad):
            proved = len(starts)
            break
        j = proved + int(bad[0]) + 1  # chunks < j are right; j's guess was wrong
        proved = j
        if landing[j - 1] == BROKEN:
            break
        redo = np.flatnonzero(~ok[j - 1 :]) + j
        if len(rounds) > MAX_ROUNDS:  # one cursor walks everything left
            redo = np.array([j])
            stops[j] = stop
            starts, stops, landing = starts[: j + 1], stops[: j + 1], landing[: j + 1]
        starts[redo] = landing[redo - 1]
        found, owner, again = _lockstep(starts[redo], stops[redo], step, max_step)
        landing[redo] = again
        generation[redo] = len(rounds)
        rounds.append((found, [redo[o] for o in owner]))
    parts = []
    for g, (found, owner) in enumerate(rounds):
        for p, k in zip(found, owner, strict=True):
            keep = (k < proved) & (generation[np.minimum(k, len(generation) - 1)] == g)
            parts.append(p[keep])
    offsets = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
    return offsets, int(landing[proved - 1])
