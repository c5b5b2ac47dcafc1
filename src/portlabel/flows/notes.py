"""What a few flows carry beside their record: tunnel parents and scaled history letters.

Most flows have neither, so these live in a dict from the flow's store slot to its
``Notes`` instead of in every record. Per batch, ``by_segment`` gathers, for each
segment, the notes of the stored flow it continues (taken out of the dict) and what the
batch adds; ``keep`` puts back the notes of the segments that stay active, and ``take``
hands over the notes of flows that finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_NONE: tuple = ()


@dataclass(slots=True)
class Notes:
    parents: set[bytes] = field(default_factory=set)  # tunnel parent flow keys
    letters: list[tuple[int, int]] = field(default_factory=list)  # (capture pos, code)


class FlowNotes:
    """Notes of the active flows, by store slot."""

    def __init__(self) -> None:
        self._by_slot: dict[int, Notes] = {}

    def __bool__(self) -> bool:
        return bool(self._by_slot)

    def by_segment(
        self,
        seg_slot: np.ndarray,
        parents: dict[int, set[bytes]],
        letters: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> dict[int, Notes]:
        """Notes per segment of a batch: ``seg_slot`` names the stored flow each segment
        continues (-1: none), ``parents`` the batch's parent keys per segment and
        ``letters`` its scaled-letter events (segment, position, code)."""
        out: dict[int, Notes] = {}
        if self._by_slot:
            for s in np.flatnonzero(seg_slot >= 0).tolist():
                stored = self._by_slot.pop(int(seg_slot[s]), None)
                if stored is not None:
                    out[s] = stored
        for s, keys in parents.items():
            out.setdefault(s, Notes()).parents.update(keys)
        if letters is not None and len(letters[0]):
            for s, p, c in zip(*(a.tolist() for a in letters), strict=True):
                out.setdefault(s, Notes()).letters.append((p, c))
        return out

    def keep(self, segments: np.ndarray, slots: np.ndarray, notes: dict[int, Notes]) -> None:
        """Store the notes of ``segments``, now active in ``slots``."""
        if notes:
            for s, slot in zip(segments.tolist(), slots.tolist(), strict=True):
                if s in notes:
                    self._by_slot[slot] = notes[s]

    def take(self, slots: np.ndarray) -> list[Notes | None] | None:
        """The notes of flows leaving ``slots`` (None where there are none; None for all
        when none has any)."""
        if not self._by_slot:
            return None
        return [self._by_slot.pop(s, None) for s in slots.tolist()]


def parent_sets(notes: list[Notes | None] | None) -> list[set[bytes]] | None:
    """Each flow's tunnel parent keys (None when no flow has any)."""
    if notes is None or not any(n is not None and n.parents for n in notes):
        return None
    return [n.parents if n is not None else set() for n in notes]


def letter_lists(notes: list[Notes | None] | None) -> list[list[tuple[int, int]]] | None:
    """Each flow's scaled-letter events (None when no flow has any)."""
    if notes is None or not any(n is not None and n.letters for n in notes):
        return None
    return [n.letters if n is not None else [] for n in notes]
