"""Labelling capture files from Python: ``label`` and ``iter_labelled``, and the file edge.

``CaptureInputs`` is the adapter between paths and the pure pipeline: it reads several
files as one capture (frame numbers continue), and where a file cannot be read it records
the reason and goes on with the next one; whatever a damaged file yielded before the
damage is kept, and the reader's warnings (``truncated record at offset N``) are kept
too. Callbacks let the CLI print problems and move a progress bar as they happen.

    >>> import portlabel
    >>> flows = portlabel.label("captures/zeekreal_infected.pcap")  # doctest: +SKIP
    >>> flows.to_pandas()[["id.resp_p", "iana.service"]]            # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from portlabel.capture.batch import RawBatch
from portlabel.capture.reader import DEFAULT_BATCH, open_capture
from portlabel.errors import CaptureError, InputError

Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]


class CaptureWarning(UserWarning):
    """A capture was read only in part (truncated or damaged after its start)."""


def as_paths(paths: Paths) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


class CaptureInputs:
    """The batches of several capture files as one capture, skipping unreadable files.

    ``on_problem(error)`` is called with each ``InputError`` (the file is then skipped, or
    its remainder is), ``on_warning(text)`` with each reader warning (prefixed with the
    path), ``on_progress(done_bytes)`` after each batch with an estimate of the input
    bytes consumed so far (``total_bytes`` is the sum of the file sizes).
    """

    def __init__(
        self,
        paths: Paths,
        batch_size: int = DEFAULT_BATCH,
        on_problem: Callable[[InputError], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.paths = as_paths(paths)
        self.batch_size = batch_size
        self.failures: list[InputError] = []
        self.warnings: list[str] = []
        self.frames = 0
        self.on_problem = on_problem
        self.on_warning = on_warning
        self.on_progress = on_progress
        self.total_bytes = sum(_size(p) for p in self.paths)

    def __iter__(self) -> Iterator[RawBatch]:
        done = 0
        for path in self.paths:
            size = _size(path)
            yield from self._one(path, done, size)
            done += size
            if self.on_progress:
                self.on_progress(done)

    def _one(self, path: str, done: int, size: int) -> Iterator[RawBatch]:
        try:
            reader = open_capture(path)
            read = 0
            for batch in reader.batches(self.batch_size, first_frame=self.frames):
                self.frames += len(batch)
                yield batch
                if self.on_progress:
                    # record bytes plus a 16-byte record header each; a compressed file
                    # holds more than its size, so stop at the file's end
                    read += int(batch.caplen.sum()) + 16 * len(batch)
                    self.on_progress(done + min(read, size))
        except CaptureError as exc:
            self.failures.append(exc)
            if self.on_problem:
                self.on_problem(exc)
            return
        for text in reader.warnings:
            line = f"{path}: {text}"
            self.warnings.append(line)
            if self.on_warning:
                self.on_warning(line)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def flow_config(config=None, **options: Any):
    """A ``FlowConfig`` from ``config`` (or the defaults) with ``options`` replaced."""
    from portlabel.flows import FlowConfig

    base = config or FlowConfig()
    known = {f.name for f in dataclasses.fields(FlowConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown flow options: {', '.join(unknown)} (known: {sorted(known)})")
    return dataclasses.replace(base, **options)


def _registry(registry, overlays):
    from portlabel.registry import default_registry, load_registry
    from portlabel.registry.compiled import Registry

    if isinstance(registry, Registry) and not overlays:
        return registry
    if registry is None and not overlays:
        return default_registry()
    if isinstance(registry, Registry):
        raise TypeError("overlays need a registry path, not a loaded Registry")
    return load_registry(None if registry is None else os.fspath(registry), overlays=overlays)


def iter_labelled(
    paths: Paths,
    *,
    registry=None,
    overlays: Iterable[str] = (),
    batch_size: int = DEFAULT_BATCH,
    errors: str = "raise",
    config=None,
    **flow_options: Any,
):
    """Labelled flow tables (pyarrow) of the capture file(s) ``paths``, as flows finish.

    Several paths are one capture (rotated files). ``registry`` is a ``Registry`` or a
    registry file; ``overlays`` are extra name files. Flow options are ``FlowConfig``
    fields (``tcp_inactivity=60``, ``uid_seed=1``...) or a whole ``config``.
    ``errors="raise"`` raises ``CaptureError`` at a file that cannot be read;
    ``errors="warn"`` warns (``CaptureWarning``) and goes on with the next file.
    Reader warnings (a truncated file) are always issued as ``CaptureWarning``.
    """
    if errors not in ("raise", "warn"):
        raise ValueError("errors must be 'raise' or 'warn'")
    return _labelled_tables(paths, registry, overlays, batch_size, errors, config, flow_options)


def _labelled_tables(paths, registry, overlays, batch_size, errors, config, flow_options):
    """``iter_labelled``'s generator (warnings point at the frame that iterates it)."""
    from portlabel.pipeline import label_batches

    reg = _registry(registry, list(overlays))
    cfg = flow_config(config, **flow_options)

    # the files are read in a worker thread: its warnings are issued from this generator,
    # in the caller's thread, so that they point at the caller's code
    pending: list[str] = []

    def problem(exc: InputError) -> None:
        if errors == "raise":
            raise exc
        pending.append(str(exc))

    def issue_pending() -> None:
        while pending:
            warnings.warn(pending.pop(0), CaptureWarning, stacklevel=3)

    inputs = CaptureInputs(paths, batch_size, on_problem=problem, on_warning=pending.append)
    for table in label_batches(inputs, reg, cfg):
        issue_pending()
        yield table
    issue_pending()


def label(paths: Paths, **options: Any):
    """All labelled flows of the capture file(s) as one pyarrow Table (see ``iter_labelled``).

    ``label(...).to_pandas()`` gives a DataFrame.
    """
    import pyarrow as pa

    from portlabel.flows.columns import empty_table
    from portlabel.label_flows import labelled_schema

    tables = list(iter_labelled(paths, **options))
    if not tables:
        return empty_table(labelled_schema())
    return pa.concat_tables(tables)
