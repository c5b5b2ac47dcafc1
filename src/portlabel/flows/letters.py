"""Zeek's scaled history letters: c/C, t/T, w/W and g/G, repeated at 10, 100, 1000...

Zeek writes these letters "in a logarithmic fashion" (``Connection::ScaledHistoryEntry``):
when a direction's count of the event reaches 1, then 10, then 100 and so on, the letter
is appended to the history once more, upper case for the originator. A flow keeps its four
counts per canonical direction in ``rec["scaled"]`` (``SCALED_SLOTS`` of them, carried
across batches); ``scaled_events`` turns a batch's marked rows into the *events* where a
count reaches a power of ten: (segment, capture position, code), code being
``kind * 2 + canonical direction``. The engine keeps each flow's events with it
(``notes``) and ``history_with_events`` merges them into the rendered history by position.

Everything here is vectorised over the marked rows, which are few.
"""

from __future__ import annotations

import numpy as np

SCALED_KINDS = "CTWG"  # bad checksum, retransmission, zero window, content gap
K_CHECKSUM, K_RXMIT, K_ZERO_WINDOW, K_GAP = range(len(SCALED_KINDS))
SCALED_SLOTS = 2 * len(SCALED_KINDS)  # rec["scaled"] columns: kind * 2 + canonical dir
_POWERS = np.array([10**k for k in range(10)], dtype=np.int64)


def scaled_events(
    seg: np.ndarray, direction: np.ndarray, pos: np.ndarray, kind: int, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The events of one kind among marked rows, and ``counts`` updated in place.

    ``seg``, ``direction`` and ``pos`` are the marked rows' segment, canonical direction
    and capture position, in capture order within each segment; ``counts`` is the
    segments' ``rec["scaled"]`` (n_seg, SCALED_SLOTS). Returns (seg, pos, code) arrays.
    """
    if not len(seg):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    col = kind * 2 + direction.astype(np.int64)
    group = seg.astype(np.int64) * SCALED_SLOTS + col
    order = np.argsort(group, kind="stable")
    g = group[order]
    new = np.r_[True, g[1:] != g[:-1]]
    starts = np.flatnonzero(new)
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    # ``counts`` is a field of the records (a strided view): index it in two dimensions
    row, column = np.divmod(g, SCALED_SLOTS)
    number = counts[row, column].astype(np.int64) + rank + 1  # the occurrence each row is
    hit = np.isin(number, _POWERS)
    sizes = np.diff(np.r_[starts, len(g)])
    counts[row[starts], column[starts]] += sizes.astype(counts.dtype)
    picked = order[hit]
    return seg[picked].astype(np.int64), pos[picked].astype(np.int64), col[picked]


def letter_of(code: int, orig_side: int) -> str:
    """The history character of an event code for a flow whose originator is ``orig_side``."""
    kind, direction = divmod(code, 2)
    letter = SCALED_KINDS[kind]
    return letter if direction == orig_side else letter.lower()


def history_with_events(
    history: str, positions: list[int], events: list[tuple[int, int]], orig_side: int
) -> str:
    """``history`` (whose letters stand at ``positions``, in order) with the scaled
    letters of ``events`` ((position, code)...) inserted where they happened."""
    merged = [(p, 0, c) for p, c in zip(positions, history, strict=True)]
    merged += [(p, 1, letter_of(code, orig_side)) for p, code in events]
    merged.sort()
    return "".join(c for _, _, c in merged)


def batch_letters(rows, seg: np.ndarray, marks: np.ndarray, rec) -> tuple[np.ndarray, ...] | None:
    """The scaled-letter events of a batch: its bad checksums (``rows.uncounted``) and TCP
    marks (``tcp_track.MARK_*``), counted into ``rec["scaled"]``; None when there are none."""
    from portlabel.flows.tcp_track import MARK_GAP, MARK_RXMIT, MARK_ZERO_WINDOW

    bad = rows.uncounted
    if not marks.any() and (bad is None or not bad.any()):
        return None
    found = [] if bad is None else [(np.flatnonzero(bad), K_CHECKSUM)]
    for bit, kind in ((MARK_RXMIT, K_RXMIT), (MARK_ZERO_WINDOW, K_ZERO_WINDOW)):
        found.append((np.flatnonzero(marks & bit), kind))
    parts = []
    for at, kind in found:
        parts.append(scaled_events(seg[at], rows.dir[at], rows.pos[at], kind, rec["scaled"]))
    at = np.flatnonzero(marks & MARK_GAP)  # a gap is in the data of the ACK's peer
    parts.append(scaled_events(seg[at], 1 - rows.dir[at], rows.pos[at], K_GAP, rec["scaled"]))
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))
