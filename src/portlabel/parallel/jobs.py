"""Many files on many cores: ``ParallelLabelling`` runs ``label_part`` in a pool of
worker processes and joins the parts in order (``stitch``). A part is a file, or a byte
range of a big plain pcap file (``split``): one big file uses every worker too.

Files are handed out in capture order, a few more than there are workers at a time (so
memory holds only the parts waiting to be joined); the parts are joined in order as they
come back, each file's problems and warnings reported then, as a sequential run reports
them. Workers are forked from this process (they share its loaded registry and
modules, and start in milliseconds). ``independent=True`` labels each file as its own
capture: no flow crosses files, nothing is stitched.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from portlabel.capture.inputs import backwards_warning, repeat_warning, with_repeats
from portlabel.errors import PortlabelError
from portlabel.flows.config import FlowConfig
from portlabel.labelling.pipeline import PipelineStats
from portlabel.parallel import part as part_module
from portlabel.parallel.heads import SpilledHeads
from portlabel.parallel.part import INHERITED, PartJob, PartResult, label_part
from portlabel.parallel.split import record_ranges
from portlabel.parallel.stitch import Stitcher, add_stats

SPLIT_BYTES = 256 << 20  # a plain pcap file bigger than this is labelled in ranges
MIN_SPLIT = 16 << 20  # a single file is cut into one range per worker from this size


def distinct_paths(paths: list[str], on_warning: Callable[[str], None]) -> list[str]:
    """``paths`` without a file given a second time (warned about, as a sequential run
    does: its packets would double every flow)."""
    out = []
    for path, first in with_repeats(paths):
        if first is not None:
            on_warning(repeat_warning(path, first))
        else:
            out.append(path)
    return out


class ParallelLabelling:
    """Label ``paths`` (one capture, or ``independent`` ones) with ``jobs`` workers.

    Iterate for the labelled flow tables; ``stats`` (a ``PipelineStats``), ``failures``
    (the paths that could not be read, as messages) and ``parts`` (each part's worker
    seconds and peak memory) are complete once the iteration ends.
    """

    def __init__(
        self,
        paths: list[str],
        registry,
        config: FlowConfig,
        jobs: int,
        *,
        batch_size: int = 65536,
        packet_filter: str | None = None,
        independent: bool = False,
        on_problem: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        submit=None,
        worker_registry: tuple | None = None,
        split_bytes: int | None = SPLIT_BYTES,
    ) -> None:
        self.registry = registry
        self.config = config
        self.jobs = max(1, jobs)
        self.batch_size = batch_size
        self.split_bytes = split_bytes  # plain pcap files bigger than this are cut
        self.packet_filter = packet_filter
        self.independent = independent
        self.problems: list[str] = []
        self._on_problem = on_problem or (lambda line: None)
        self.on_warning = on_warning or (lambda line: None)
        self.on_progress = on_progress
        self.paths = distinct_paths(list(paths), self.on_warning)
        self.stats = PipelineStats()
        self.parts: list[dict] = []
        self.stitcher: Stitcher | None = None
        self._submit = submit  # a different executor's submit (tests, Dask)
        self._spill_dir: str | None = None
        # what workers that were not forked from here load: (registry path or None,
        # overlays); None: workers inherit this process's registry
        self._worker_registry = worker_registry

    def _problem(self, line: str) -> None:
        self.problems.append(line)
        self._on_problem(line)

    @property
    def failures(self) -> list[str]:
        return self.problems

    @property
    def all_failed(self) -> bool:
        failed = [p for p in self.parts if p["failed"]]
        return bool(self.paths) and len(failed) == len(self.paths)

    def _jobs(self) -> Iterator[PartJob]:
        registry, overlays = INHERITED, ()
        if self._worker_registry is not None:
            registry, overlays = self._worker_registry
        index = 0
        for path in self.paths:
            for byte_range in self._ranges(path):
                yield PartJob(
                    index, path, self.config, registry, tuple(overlays),
                    batch_size=self.batch_size, packet_filter=self.packet_filter,
                    alone=self.independent, spill_dir=self._spill_dir, byte_range=byte_range,
                )  # fmt: skip
                index += 1

    def _ranges(self, path: str) -> list[tuple[int, int] | None]:
        """The byte ranges ``path`` is labelled in: [None] (whole) unless it is a plain
        pcap of more than ``split_bytes``, or the only file and ``MIN_SPLIT`` or more
        (then at least one range per worker)."""
        if self.independent or not self.split_bytes:
            return [None]
        size = _size(path)
        pieces = -(-size // self.split_bytes)
        if len(self.paths) == 1 and size >= MIN_SPLIT:
            pieces = max(pieces, self.jobs)
        if pieces < 2:
            return [None]
        return record_ranges(path, pieces) or [None]

    def __iter__(self) -> Iterator[pa.Table]:
        from portlabel.labelling.iana import prepare_labels

        part_module.inherit(self.registry)
        prepare_labels(self.registry)  # once, before the workers fork: they share it
        if self._submit is not None:  # another executor: heads travel with the results
            yield from self._joined(self._results(self._submit))
            return
        # heads go through a memory-backed file: a pipe would copy them twice
        shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        with tempfile.TemporaryDirectory(prefix="portlabel-", dir=shm) as spill_dir:
            self._spill_dir = spill_dir
            context = multiprocessing.get_context("fork")
            try:
                with ProcessPoolExecutor(self.jobs, mp_context=context) as pool:
                    yield from self._joined(self._results(pool.submit))
            finally:
                self._spill_dir = None

    def _results(self, submit) -> Iterator[PartResult]:
        """The parts' results in file order, at most a few ahead of the one joined."""
        ahead = 2 * self.jobs
        waiting: deque = deque()
        for job in self._jobs():
            waiting.append((job, submit(label_part, job)))
            if len(waiting) >= ahead:
                yield _result(*waiting.popleft())
        while waiting:
            yield _result(*waiting.popleft())

    def _joined(self, results: Iterator[PartResult]) -> Iterator[pa.Table]:
        from portlabel.capture.inputs import CaptureInputs

        def read_again(path: str, byte_range=None, report: bool = False):
            if not os.access(path, os.R_OK):
                return None  # a path of the cluster's workers, not of this machine
            quiet = not report
            return CaptureInputs(
                [path], self.batch_size, packet_filter=self.packet_filter,
                byte_range=byte_range,
                on_problem=(lambda exc: None) if quiet else (lambda exc: self._problem(str(exc))),
                on_warning=(lambda line: None) if quiet else self.on_warning,
            )  # fmt: skip

        stitcher = None
        if not self.independent:
            stitcher = Stitcher(self.registry, self.config, reprocess=read_again,
                                on_problem=self._problem, on_warning=self.on_warning)  # fmt: skip
            self.stitcher = stitcher
        done_bytes = 0
        latest = None
        for result in results:
            self.parts.append({"path": result.path, "range": result.byte_range,
                               "seconds": result.seconds,
                               "peak_rss": result.peak_rss, "frames": result.frames,
                               "failed": result.failed})  # fmt: skip
            if (not self.independent and latest is not None and result.first_packet_ts is not None
                    and result.first_packet_ts < latest[1]):  # fmt: skip
                self.on_warning(backwards_warning(result.path, result.first_packet_ts, *latest))
            if result.last_packet_ts is not None:
                latest = (result.path, result.last_packet_ts)
            if stitcher is None:
                for line in result.problems:
                    self._problem(line)
                for line in result.warnings:
                    self.on_warning(line)
                add_stats(self.stats, result.stats)
                for table in result.tables:
                    self.stats.count_flows(table)
                    yield table
            else:
                tables = stitcher.add(result)
                if isinstance(result.heads, SpilledHeads):
                    os.unlink(result.heads.path)  # joined: its memory can go
                yield from tables
            done_bytes += _size(result.path)
            if self.on_progress:
                self.on_progress(done_bytes)
        if stitcher is not None:
            yield from stitcher.finish()
            self.stats = stitcher.stats


def _result(job: PartJob, future) -> PartResult:
    """A part's result; a worker that died (killed, out of memory) is one line naming the
    file it was labelling, not a traceback."""
    try:
        return future.result()
    except BrokenProcessPool:
        raise PortlabelError(
            f"{job.path}: the worker process labelling it died (killed, or out of memory? "
            "try fewer --jobs or --max-flows)"
        ) from None


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
