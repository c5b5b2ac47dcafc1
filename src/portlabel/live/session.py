"""The live capture loop: source -> decode -> flow table -> labels -> sink, until told to stop.

Theory of operation: the loop asks the source for whatever is ready, waiting at most a
tick (0.2 s) so that timers still run when no packet arrives. Each batch gets its frame
numbers, is put in time order when several interfaces are merged, and is pushed through
``pipeline.LabelPipeline``; the flows it finished are queued and written, at most
``WRITE_ROWS`` per batch while packets flow (all at once when idle). When the source
had nothing, the flow table's clock is moved to the wall clock (less a small slack for
blocks the kernel has not handed over yet) so idle and active timeouts fire in quiet
periods too. The stop flag (set by SIGINT/SIGTERM, ``--count`` or ``--duration``) ends the
loop; the source is then drained, every active flow flushed and labelled, and the sink
closed, so nothing captured is lost.
"""

from __future__ import annotations

import gc
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from portlabel.capture.batch import RawBatch
from portlabel.labelling.pipeline import LabelPipeline
from portlabel.live.output import FlowSink
from portlabel.live.stats import SessionTotals, stats_line, sum_counters

TICK = 0.2  # longest wait for packets, so timers and the stop flag are seen promptly
CLOCK_SLACK_NS = 500_000_000  # packets may sit in a not yet retired block this long
# most flows written per batch read: a burst of ended flows (~7 us each as JSON) is spread
# over several turns instead of stalling reads while the kernel ring fills
WRITE_ROWS = 1024


@dataclass
class Limits:
    count: int | None = None  # stop after this many packets
    duration: float | None = None  # stop after this many seconds
    stats_interval: float | None = 10.0  # seconds between stats lines (None: only at exit)


def advance_clock(pipe: LabelPipeline, now_ns: int) -> pa.Table | None:
    """Expire flows as of ``now_ns`` with no packet to carry the time; labelled, if any."""
    return pipe.advance(now_ns)


class LiveSession:
    """Runs one capture; ``stop()`` (or a signal) ends it cleanly."""

    def __init__(
        self,
        source,
        pipeline: LabelPipeline,
        sink: FlowSink,
        limits: Limits | None = None,
        quiet: bool = False,
        on_batch: Callable[[RawBatch, pa.Table | None], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.pipe = pipeline
        self.sink = sink
        self.limits = limits or Limits()
        self.quiet = quiet
        self.on_batch = on_batch
        self.on_tick = on_tick
        self.totals = SessionTotals()
        self.stopping = False
        self.stop_reason = ""
        self._pending: list[pa.Table] = []  # finished flows not yet written

    def stop(self, reason: str = "stopped") -> None:
        if not self.stopping:
            self.stopping, self.stop_reason = True, reason

    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self.stop(signal.Signals(signum).name)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def run(self) -> SessionTotals:
        gc.freeze()  # start-up objects (modules, registry) out of every later full collection
        next_stats = self._next(self.limits.stats_interval)
        deadline = self._next(self.limits.duration)
        while not self.stopping:
            raw = self.source.read(TICK)
            if raw is not None:
                self._process(raw)
                del raw  # the native source lends its ring: blocks go back once unviewed
                self._flush(WRITE_ROWS)
            else:
                self._write(advance_clock(self.pipe, time.time_ns() - CLOCK_SLACK_NS))
                self._flush(None)
            now = time.monotonic()
            if self.sink.due(time.time()):
                self._flush(None)
                self.sink.rotate_now()
            if now >= next_stats:
                self.report(final=False)
                next_stats = now + self.limits.stats_interval
            if now >= deadline:
                self.stop("duration")
            if self.on_tick is not None:
                self.on_tick()
        self._finish()
        return self.totals

    def _next(self, interval: float | None) -> float:
        return time.monotonic() + interval if interval else float("inf")

    def _process(self, raw: RawBatch) -> None:
        if self.limits.count is not None:
            left = self.limits.count - self.totals.packets
            if len(raw) >= left:
                raw = _head(raw, left)
                self.stop("count")
        if len(raw) == 0:
            return
        if raw.iface.size and raw.iface.max() > 0:
            raw = _time_order(raw)
        raw.frame = np.arange(self.totals.packets, self.totals.packets + len(raw), dtype=np.int64)
        self.totals.packets += len(raw)
        self.totals.bytes += int(raw.wirelen.sum(dtype=np.int64))
        self.totals.batches += 1
        finished = self.pipe.feed(raw)
        self._write(finished)
        if self.on_batch is not None:
            self.on_batch(raw, finished)

    def _write(self, table: pa.Table | None) -> None:
        if table is not None and table.num_rows:
            self._pending.append(table)

    def _flush(self, budget: int | None) -> None:
        """Write pending flows, at most ``budget`` rows (None: all)."""
        while self._pending and (budget is None or budget > 0):
            table = self._pending[0]
            if budget is not None and table.num_rows > budget:
                self._pending[0] = table.slice(budget)
                table = table.slice(0, budget)
            else:
                self._pending.pop(0)
            self.sink.write(table)
            self.totals.flows += table.num_rows
            if budget is not None:
                budget -= table.num_rows

    def _finish(self) -> None:
        """Drain what the kernel still holds, flush every flow, close the output."""
        stop = getattr(self.source, "stop", None)
        if stop is not None:
            stop()
        while self.limits.count is None or self.totals.packets < self.limits.count:
            raw = self.source.read(0)
            if raw is None:
                break
            self._process(raw)
            del raw
        self._write(self.pipe.finish())
        self._flush(None)
        self.sink.close()
        self.report(final=True)

    def report(self, final: bool) -> None:
        left = int(self.pipe.flows.left_out.sum())
        self.totals.left_out = left
        self.totals.in_flows = self.totals.packets - left
        if self.quiet:
            return
        kernel = sum_counters(self.source.counters())
        print(stats_line(self.source.name, kernel, self.totals, final), file=sys.stderr)
        sys.stderr.flush()


def _head(raw: RawBatch, n: int) -> RawBatch:
    return RawBatch(
        raw.buf, raw.offset[:n], raw.caplen[:n], raw.wirelen[:n], raw.ts_ns[:n],
        raw.linktype[:n], raw.iface[:n], raw.frame[:n],
    )  # fmt: skip


def _time_order(raw: RawBatch) -> RawBatch:
    """Records from several interfaces interleaved by timestamp (stable)."""
    order = np.argsort(raw.ts_ns, kind="stable")
    return RawBatch(
        raw.buf, raw.offset[order], raw.caplen[order], raw.wirelen[order], raw.ts_ns[order],
        raw.linktype[order], raw.iface[order], raw.frame[order],
    )  # fmt: skip
