"""Capture counters: the kernel's (received, dropped) and the session's own, and their report.

``KernelCounters`` accumulates what a backend reads from the kernel or the capture tool
(``PACKET_STATISTICS`` resets on every read, so the totals live here). ``SessionTotals``
counts what the session did with the packets. ``stats_line`` renders both as the single
line printed on stderr every ``--stats-interval`` seconds and at exit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class KernelCounters:
    """Packets that passed the capture filter and those dropped before we read them.

    ``None`` means the backend cannot know (e.g. a tool that reports nothing).
    """

    received: int | None = 0
    dropped: int | None = 0

    def add(self, received: int, dropped: int) -> None:
        self.received = (self.received or 0) + received
        self.dropped = (self.dropped or 0) + dropped


@dataclass(slots=True)
class SessionTotals:
    started: float = field(default_factory=time.monotonic)
    packets: int = 0  # frames read from the backend
    bytes: int = 0  # wire bytes of those frames
    in_flows: int = 0  # packets the flow engine folded into flows
    left_out: int = 0  # packets not in any flow (not IP, truncated...)
    flows: int = 0  # flows written
    batches: int = 0

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)


def sum_counters(per_iface: list[KernelCounters]) -> KernelCounters:
    if any(c.received is None for c in per_iface):
        received = None
    else:
        received = sum(c.received or 0 for c in per_iface)
    if any(c.dropped is None for c in per_iface):
        dropped = None
    else:
        dropped = sum(c.dropped or 0 for c in per_iface)
    return KernelCounters(received, dropped)


def _n(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def stats_line(backend: str, kernel: KernelCounters, totals: SessionTotals, final: bool) -> str:
    """One human line: kernel counters, packets read, in flows, flows written, rate."""
    rate = totals.packets / totals.elapsed()
    head = "portlabel live: totals" if final else "portlabel live:"
    return (
        f"{head} [{backend}] kernel received {_n(kernel.received)} dropped "
        f"{_n(kernel.dropped)}; read {totals.packets:,} packets ({totals.bytes:,} bytes), "
        f"{totals.in_flows:,} in flows, {totals.left_out:,} not in flows; "
        f"{totals.flows:,} flows written; {rate:,.0f} pkt/s over {totals.elapsed():.1f} s"
    )


def stats_record(backend: str, kernel: KernelCounters, totals: SessionTotals) -> dict:
    """The same numbers as a dict (for ``--stats-json`` and the benchmark)."""
    return {
        "backend": backend,
        "kernel_received": kernel.received,
        "kernel_dropped": kernel.dropped,
        "packets": totals.packets,
        "bytes": totals.bytes,
        "in_flows": totals.in_flows,
        "left_out": totals.left_out,
        "flows": totals.flows,
        "seconds": round(totals.elapsed(), 3),
    }
