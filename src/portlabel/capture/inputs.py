"""Several captures read as one: the only place that chains capture files.

Every command and API that reads files (``portlabel label``, ``portlabel packets``,
``portlabel.label()``, the scapy and tshark backends) reads them through
``CaptureInputs``, which keeps these rules:

- files are read in the order given, as one capture: frame numbers continue from file
  to file;
- a file that cannot be read (or whose remainder cannot) is a *problem*: with an
  ``on_problem`` callback it is recorded in ``failures``, reported, and the next file is
  read; without one the ``InputError`` is raised;
- what a damaged file gave before the damage is kept, and each note its reader made
  (``truncated record at offset N``) is a *warning*, ``"path: where: what"``, kept in
  ``warnings`` and passed to ``on_warning``;
- a file given twice (by the same name, or through a link) is read once: the second
  mention is skipped with a warning, as its packets would double every flow;
- a file whose first packet is older than the last packet of the file before it is read
  where it was given, with a warning naming both times (rotated captures given out of
  order; flows spanning them may then be split or merged);
- ``packet_filter`` (a BPF expression, native backend) keeps only the records it
  accepts, before decoding; frame numbers stay those of the file, as tshark shows them;
- ``count`` stops after that many packets (after the filter), as ``tcpdump -c`` does:
  files after the one that reaches it are not opened;
- ``on_progress(done_bytes)`` is called after each batch with an estimate of the input
  bytes consumed so far (at most each file's size; ``total_bytes`` is their sum).

``raw_batches()`` gives the native readers' ``RawBatch``es (``reader`` is the
``CaptureReader`` of the file being read: its snaplens and comments);
``packet_batches()`` gives ``PacketBatch``es decoded by the chosen backend; iterating
the object gives what ``labelling.label_batches`` takes (raw batches for the native
backend, which the pipeline decodes and counts, decoded ones otherwise).
"""

from __future__ import annotations

import datetime
import os
import stat
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from portlabel.capture.backends import get_backend
from portlabel.capture.batch import PacketBatch, RawBatch
from portlabel.capture.reader import CaptureReader, open_capture
from portlabel.constants import BATCH_SIZE
from portlabel.errors import InputError, UsageError

Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
# a per-packet record header's size, for progress estimates (pcap's is 16 bytes)
_RECORD_OVERHEAD = 16


def as_paths(paths: Paths) -> list[str]:
    """One path or several, as a list of strings."""
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


class CaptureInputs:
    """The batches of several capture files as one capture (see the module docstring)."""

    def __init__(
        self,
        paths: Paths,
        batch_size: int = BATCH_SIZE,
        *,
        backend: str = "native",
        on_problem: Callable[[InputError], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        packet_filter: str | None = None,
        count: int | None = None,
        byte_range: tuple[int, int] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if count is not None and count < 0:
            raise ValueError("count must be 0 or more")
        self.paths = as_paths(paths)
        self.batch_size = batch_size
        # one plain pcap file's records in (start, end) only (``CaptureReader.batches``)
        self.byte_range = byte_range
        if byte_range is not None and len(self.paths) != 1:
            raise ValueError("a byte range is for one file")
        self.backend = get_backend(backend)
        self.on_problem = on_problem
        self.on_warning = on_warning
        self.on_progress = on_progress
        self.failures: list[InputError] = []
        self.warnings: list[str] = []
        self.frames = 0  # records read so far, over all files
        self.reader: CaptureReader | None = None  # the native reader of the current file
        # raw batches a consumer may still be using when the next is read (it reads
        # ahead in another thread): their mapped pages are kept until then
        self.held_batches = 0
        self.total_bytes = sum(_size(p) for p in self.paths)
        self.count = count
        self.delivered = 0  # packets handed out (after the filter)
        self.filter = None
        if packet_filter:
            if self.backend.name != "native":
                raise UsageError(
                    f"a capture filter needs the native backend, not {self.backend.name}"
                )
            from portlabel.capture.bpf import PacketFilter

            self.filter = PacketFilter(packet_filter)

    def __iter__(self) -> Iterator[RawBatch | PacketBatch]:
        if self.backend.name == "native":
            return self.raw_batches()
        return self.packet_batches()

    @property
    def all_failed(self) -> bool:
        """Every input failed before giving a packet (nothing useful can be written)."""
        return len(self.failures) == len(self.paths)

    # -- the two kinds of batch ------------------------------------------------------
    def raw_batches(self) -> Iterator[RawBatch]:
        """The native readers' batches of every file (whatever ``backend`` is)."""
        return self._chain(self._raw_file)

    def packet_batches(self) -> Iterator[PacketBatch]:
        """Batches decoded by ``backend`` (the native one decodes raw batches itself)."""
        return self._chain(self._decoded_file)

    # -- one file --------------------------------------------------------------------
    def _raw_file(self, path: str, notes: list[str]) -> Iterator[RawBatch]:
        self.reader = reader = open_capture(path)
        first = self.frames
        try:
            for batch in reader.batches(self.batch_size, first, self.byte_range,
                                        self.held_batches):  # fmt: skip
                self.frames = first + reader.frames_read
                if self.filter is not None:
                    try:
                        batch = batch.take(self.filter.keep(batch))
                    except UsageError as exc:
                        raise UsageError(f"{path}: {exc}") from None
                yield batch
        finally:
            self.frames = first + reader.frames_read
            notes.extend(reader.warnings)

    def _decoded_file(self, path: str, notes: list[str]) -> Iterator[PacketBatch]:
        if self.backend.name == "native":
            from portlabel.capture.decode import decode

            return (decode(raw) for raw in self._raw_file(path, notes))
        return self._counted(self.backend.read_file(path, self.batch_size, self.frames, notes))

    def _counted(self, batches: Iterator[PacketBatch]) -> Iterator[PacketBatch]:
        for batch in batches:
            self.frames += len(batch)
            yield batch

    def _chain(self, read_one) -> Iterator:
        done = 0
        latest: tuple[str, int] | None = None  # the file before and its last timestamp
        for path, first in with_repeats(self.paths):
            size = _size(path)
            if first is not None:
                self._warn(repeat_warning(path, first))
                done += size
                continue
            notes: list[str] = []
            read = 0
            first = True
            if self.count is not None and self.delivered >= self.count:
                break  # -c reached: the files after are not opened
            batches = read_one(path, notes)
            try:
                for batch in batches:
                    if self.count is not None and self.delivered + len(batch) >= self.count:
                        batch = batch.take(np.arange(self.count - self.delivered))
                    self.delivered += len(batch)
                    if len(batch):
                        if first and latest is not None and batch.ts_ns[0] < latest[1]:
                            self._warn(backwards_warning(path, int(batch.ts_ns[0]), *latest))
                        first = False
                        latest = (path, int(batch.ts_ns[-1]))
                    yield batch
                    if self.count is not None and self.delivered >= self.count:
                        break
                    if self.on_progress:
                        # a compressed file holds more than its size: stop at its end
                        read += int(batch.caplen.sum()) + _RECORD_OVERHEAD * len(batch)
                        self.on_progress(done + min(read, size))
            except InputError as exc:
                self._problem(exc)
            finally:
                close = getattr(batches, "close", None)
                if close is not None:
                    close()  # a file left early (-c) still reports its notes
            for note in notes:
                self._warn(f"{path}: {note}")
            done += size
            if self.on_progress:
                self.on_progress(done)

    def _problem(self, exc: InputError) -> None:
        if self.on_problem is None:
            raise exc
        self.failures.append(exc)
        self.on_problem(exc)

    def _warn(self, line: str) -> None:
        self.warnings.append(line)
        if self.on_warning:
            self.on_warning(line)


def packet_batches(
    paths: Paths,
    backend: str = "native",
    batch_size: int = BATCH_SIZE,
    on_problem: Callable[[InputError], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Iterator[PacketBatch]:
    """Decoded batches of all ``paths`` as one capture, read by ``backend``
    (``CaptureInputs(...).packet_batches()``)."""
    inputs = CaptureInputs(
        paths, batch_size, backend=backend, on_problem=on_problem, on_warning=on_warning
    )
    return inputs.packet_batches()


def with_repeats(paths: list[str]) -> Iterator[tuple[str, str | None]]:
    """Each path with the earlier path naming the same file (by name or through a link),
    or None: a file given twice is read once, as its packets would double every flow."""
    seen: dict[tuple[int, int], str] = {}
    for path in paths:
        identity = file_identity(path)
        first = seen.get(identity) if identity is not None else None
        if identity is not None and first is None:
            seen[identity] = path
        yield path, first


def repeat_warning(path: str, first: str) -> str:
    return f"{path}: the same file as {first}, given again: read once"


def file_identity(path: str) -> tuple[int, int] | None:
    """The file behind ``path`` (device, inode), so a link to it is the same file."""
    if path == "-":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # a pipe or device is read once whatever it is called
    return (st.st_dev, st.st_ino)


def backwards_warning(path: str, start: int, before: str, end: int) -> str:
    return (
        f"{path}: starts at {_utc(start)}, before the last packet of {before} "
        f"({_utc(end)}): read after it, in the order given; if the files are one "
        "capture, give them in time order"
    )


def _utc(ts_ns: int) -> str:
    seconds, ns = divmod(ts_ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S") + f".{ns // 1000:06d} UTC"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
