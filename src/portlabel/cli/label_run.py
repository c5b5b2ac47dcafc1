"""The body of ``portlabel label``: inputs -> pipeline -> writer, with the terminal extras.

Imported by ``cli.label.run`` only (it pulls in numpy and pyarrow). Problems with an input
are printed as they happen, one line each (``portlabel: PATH: reason``); the progress bar
(rich, on stderr) exists only when asked for, so pipes and ``-q`` stay silent.
"""

from __future__ import annotations

import contextlib
import sys
from typing import BinaryIO

from portlabel.atomicfile import atomic_output
from portlabel.capture.inputs import CaptureInputs
from portlabel.errors import InputError, UsageError
from portlabel.labelling.flows import labelled_schema
from portlabel.labelling.pipeline import LabelPipeline, label_batches
from portlabel.terminal import console
from portlabel.writers import writer_class
from portlabel.writers.summary import Summary

# below this much input, starting workers costs more than they save
PARALLEL_MIN_BYTES = 64 << 20


def parallel_workers(paths, jobs, backend, count, independent) -> int:
    """How many worker processes ``portlabel label`` uses: ``jobs``, by default the CPUs
    this process may use when there are three or more and 64 MB of files or more (on two,
    the in-process pipeline's three threads already keep both busy and run faster: see
    benchmarks/scale.py); one for a single file that cannot be cut into byte ranges (not
    a plain pcap, under 16 MB), for stdin, for another backend than the native one, and
    under ``-c`` (a count of the whole capture)."""
    from portlabel.labelling.stages import usable_cpus

    if "-" in paths or backend != "native" or count is not None:
        return 1
    if len(paths) < 2 and not _splittable(paths):
        return 1
    if jobs is None:
        import os

        total = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
        cpus = usable_cpus()
        if (total < PARALLEL_MIN_BYTES or cpus <= 2) and not independent:
            return 1
        jobs = cpus
    return jobs if len(paths) == 1 else min(jobs, len(paths))


def _splittable(paths) -> bool:
    """One plain pcap file big enough to be labelled in byte ranges."""
    import os

    from portlabel.parallel.jobs import MIN_SPLIT
    from portlabel.parallel.split import cuttable

    return (len(paths) == 1 and os.path.isfile(paths[0])
            and os.path.getsize(paths[0]) >= MIN_SPLIT and cuttable(paths[0]))  # fmt: skip


class _AllInputsFailed(Exception):
    """Raised inside the atomic output to leave no file behind."""


def _say(text: str) -> None:
    print(f"portlabel: {text}", file=sys.stderr, flush=True)


class LabelJob:
    """One ``portlabel label`` run over ``paths``."""

    def __init__(
        self,
        paths,
        registry,
        config,
        batch_size: int,
        quiet: bool = False,
        backend="native",
        packet_filter: str | None = None,
        count: int | None = None,
        jobs: int | None = None,
        independent: bool = False,
    ) -> None:
        self.registry = registry
        self.config = config
        self.quiet = quiet
        self.progress = False
        self.summary = Summary()
        self.summarise = True  # False: nobody will read ``summary`` (it costs a pass per table)
        self.inputs = CaptureInputs(
            paths,
            batch_size,
            backend=backend,
            on_problem=lambda exc: _say(str(exc)),
            on_warning=_say,
            packet_filter=packet_filter,
            count=count,
        )
        self.pipeline = LabelPipeline(registry, config)
        self.parallel = None
        workers = parallel_workers(paths, jobs, backend, count, independent)
        if independent and ("-" in paths or backend != "native" or count is not None):
            raise UsageError("--independent reads capture files with the native backend, "
                             "without -c")  # fmt: skip
        if workers > 1 or (independent and len(paths) > 1):
            from portlabel.parallel.jobs import ParallelLabelling

            self.parallel = ParallelLabelling(
                paths, registry, config, workers, batch_size=batch_size,
                packet_filter=packet_filter, independent=independent,
                on_problem=_say, on_warning=_say,
            )  # fmt: skip

    @property
    def stats(self):
        """The run's counts (``PipelineStats``)."""
        return self.parallel.stats if self.parallel is not None else self.pipeline.stats

    @property
    def failures(self) -> list:
        return self.parallel.failures if self.parallel is not None else self.inputs.failures

    @property
    def all_failed(self) -> bool:
        return self.parallel.all_failed if self.parallel is not None else self.inputs.all_failed

    def _tables(self):
        if self.parallel is not None:
            return iter(self.parallel)
        return label_batches(self.inputs, self.registry, pipeline=self.pipeline)

    def to_file(self, path: str, fmt: str, summary: bool = True) -> bool:
        """Write the output to ``path`` atomically; False (no file) if every input failed."""
        try:
            with atomic_output(path) as out:
                self._run(out, fmt, summary)
                if self.all_failed:
                    raise _AllInputsFailed
        except _AllInputsFailed:
            return False
        except OSError as exc:
            raise InputError(path, f"cannot write: {exc.strerror or exc}") from None
        return True

    def to_stream(self, out: BinaryIO, fmt: str, summary: bool = True) -> bool:
        self._run(out, fmt, summary)
        out.flush()
        return not self.all_failed

    def _run(self, out: BinaryIO, fmt: str, summary: bool) -> None:
        options = {"summary": summary} if fmt == "table" else {}
        writer = writer_class(fmt)(out, labelled_schema(), **options)
        try:
            with self._progress_bar() as advance:
                self.inputs.on_progress = advance
                if self.parallel is not None:
                    self.parallel.on_progress = advance
                for table in self._tables():
                    writer.write(table)
                    if fmt != "table" and self.summarise:
                        self.summary.add(table)
        except BaseException:  # Ctrl-C or an error: the output is discarded
            abandon = getattr(writer, "abandon", None)
            if abandon is not None:
                with contextlib.suppress(Exception):
                    abandon()
            raise
        if fmt == "table":
            self.summary = writer.summary
        self.summary.not_in_flows = self.stats.not_in_flows
        writer.close()
        for line in self.stats.undecodable():
            _say(f"warning: {line}")
        evicted = self.stats.evicted
        if evicted:
            each = " per worker" if self.parallel is not None else ""
            _say(
                f"warning: {evicted:,} flows ended early (end_reason evicted) to keep at most "
                f"{self.pipeline.flows.max_flows:,} active{each} (--max-flows)"
            )

    @contextlib.contextmanager
    def _progress_bar(self):
        if not self.progress:
            yield None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn("labelling"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        with bar:
            task = bar.add_task("label", total=self.inputs.total_bytes or None)
            yield lambda done: bar.update(task, completed=done)
