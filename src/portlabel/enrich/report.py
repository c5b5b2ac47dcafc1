"""What enriching one log found: counts, malformed lines, notes; and how to print it.

Malformed lines are passed through unchanged; their numbers are kept (up to
``KEEP_LINES``) so the end-of-run report can name them, one line each, capped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KEEP_LINES = 1000


@dataclass
class Report:
    """Counts for one input; ``EnrichStats`` in the public API."""

    source: str
    format: str = "empty"
    lines: int = 0
    records: int = 0
    unlabelled: int = 0
    malformed: int = 0
    header_blocks: int = 0
    malformed_lines: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damaged: str | None = None  # why a compressed input ended early, if it did

    @property
    def labelled(self) -> int:
        return self.records - self.unlabelled

    def malformed_at(self, lines: np.ndarray, reason: str) -> None:
        self.malformed += len(lines)
        room = KEEP_LINES - len(self.malformed_lines)
        if room > 0:
            self.malformed_lines += [(int(n), reason) for n in lines[:room].tolist()]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def problems(self, cap: int = 20) -> list[str]:
        """One line per malformed line (at most ``cap``), then the total; then notes."""
        out = [
            f"{self.source}: line {n}: {why}; passed through unchanged"
            for n, why in self.malformed_lines[:cap]
        ]
        if self.malformed > cap:
            out.append(f"{self.source}: ... {self.malformed - cap} more malformed lines")
        if self.malformed:
            out.append(f"{self.source}: {self.malformed} malformed line(s) in total")
        out += [f"{self.source}: {n}" for n in self.notes]
        return out

    def summary(self) -> str:
        return (
            f"{self.source}: {self.format}: {self.records} records enriched "
            f"({self.labelled} labelled), {self.malformed} malformed"
        )


EnrichStats = Report
