"""Enrich one log from a file, stdin or a stream: the adapter around the enrichers.

Reading is bounded: the input is read in blocks of ``block_size`` bytes, each cut after
its last newline (the rest is carried into the next block), so memory depends on the
block size, not the log's size. A gzip input is recognised by its magic bytes; a
truncated or damaged one keeps every whole line decoded before the damage, with one note
naming where it ends (an in-place rewrite of such a log is refused, so what a repair tool
could still recover is not overwritten). The format is told from the first byte: ``#`` a
TSV log, ``{`` JSON lines; a file with NUL bytes at its start is not a log at all.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from portlabel.atomicfile import atomic_output
from portlabel.capture.compression import DecompressedStream, TruncatedStream
from portlabel.enrich.report import Report
from portlabel.enrich.transport import path_from_filename
from portlabel.errors import LogFormatError
from portlabel.labelling.stages import prefetched, usable_cpus

BLOCK_SIZE = 4 << 20
MAX_LINE = 16 << 20  # no Zeek log line is this long; a longer one is not a log
GZIP_MAGIC = b"\x1f\x8b"


def open_log(src: str, stack: contextlib.ExitStack) -> tuple[BinaryIO, bool]:
    """A binary reader over ``src`` (``-``: stdin), decompressing gzip; and whether it was.

    Files opened here are closed by ``stack``.
    """
    try:
        raw = sys.stdin.buffer if src == "-" else stack.enter_context(open(src, "rb"))
    except OSError as exc:
        raise LogFormatError(src, exc.strerror or str(exc)) from None
    if not hasattr(raw, "peek"):
        raw = io.BufferedReader(raw)
    try:
        magic = raw.peek(2)[:2]
    except OSError as exc:
        raise LogFormatError(src, exc.strerror or str(exc)) from None
    if magic == GZIP_MAGIC:
        return DecompressedStream(raw, "gzip"), True
    return raw, False


def blocks(
    fh: BinaryIO,
    name: str,
    block_size: int = BLOCK_SIZE,
    damaged: Callable[[str], object] | None = None,
) -> Iterator[memoryview]:
    """Whole-line blocks of about ``block_size`` bytes (the last may lack a newline).

    A line cut by the end of a read is finished by the next read and yielded as a
    small block of its own, so each read's bulk is yielded without being copied.
    When a compressed input ends early or turns corrupt, the lines before the damage
    have been yielded; the partial line at the damage is dropped and ``damaged`` is
    told why and where (without it, that is an error).
    """
    carry = b""
    offset = 0  # decompressed bytes read
    while True:
        try:
            chunk = fh.read(block_size)
        except (TruncatedStream, ValueError) as exc:
            if damaged is None or not offset:
                raise LogFormatError(name, f"cannot read: {exc}") from None
            cut = f"; the partial line after it ({len(carry)} bytes) dropped" if carry else ""
            damaged(f"{exc}: every line before byte {offset - len(carry)} kept{cut}")
            return
        except (OSError, EOFError, zlib.error) as exc:
            raise LogFormatError(name, f"cannot read: {exc}") from None
        offset += len(chunk)
        if not chunk:
            if carry:
                yield memoryview(carry)
            return
        view = memoryview(chunk)
        head = 0
        if carry:
            first = chunk.find(b"\n")
            if first < 0:
                carry += chunk
                if len(carry) > MAX_LINE:
                    raise LogFormatError(
                        name,
                        f"a line of more than {MAX_LINE} bytes from byte {offset - len(carry)}:"
                        " not a Zeek log",
                    )
                continue
            head = first + 1
            yield memoryview(carry + chunk[:head])
        cut = chunk.rfind(b"\n")
        if cut >= head:
            yield view[head : cut + 1]
        carry = bytes(view[max(cut + 1, head) :])


def _enricher(first: bytes, registry, name: str, hint: str | None):
    from portlabel.enrich.zeek_json import JsonEnricher
    from portlabel.enrich.zeek_tsv import TsvEnricher

    head = bytes(first[:4096]).lstrip()
    if head[:1] == b"{":
        return JsonEnricher(registry, name, hint)
    if head[:1] != b"#" and (b"\0" in head or not _is_text(head)):
        raise LogFormatError(name, "not a Zeek log (binary data)", "line 1")
    enricher = TsvEnricher(registry, name, hint)
    enricher.report.format = "zeek-tsv"
    return enricher


def _is_text(head: bytes) -> bool:
    try:
        head[:-4].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def enrich_stream(
    fh: BinaryIO,
    write: Callable[[bytes], object],
    registry=None,
    name: str = "-",
    block_size: int = BLOCK_SIZE,
) -> Report:
    """Enrich the log read from ``fh``, passing the output to ``write`` piece by piece."""
    if registry is None:
        from portlabel.registry import default_registry

        registry = default_registry()
    hint = path_from_filename(name)
    damage: list[str] = []
    made: list = []  # the enricher, once the first block has chosen it

    def pieces() -> Iterator:
        for block in blocks(fh, name, block_size, damage.append):
            if not made:
                made.append(_enricher(block, registry, name, hint))
            yield from made[0].feed(block)

    output = pieces()
    if usable_cpus() > 1:
        # reading and enriching in a second thread, writing in this one: on a disk that
        # writes slower than the enricher works, the two overlap instead of adding up
        output = prefetched(output, depth=8, name="portlabel-enrich")
    for piece in output:
        write(piece)
    report = Report(name) if not made else made[0].report
    report.lines = made[0].line if made else 0
    if damage:
        report.damaged = damage[0]
        report.note(damage[0])
    return report


def enrich_log(
    src, dst, registry=None, *, compress: bool | None = None, block_size: int = BLOCK_SIZE
) -> Report:
    """Enrich the Zeek log ``src`` into ``dst`` and return what was found.

    ``src`` is a path, ``"-"`` (stdin) or a binary file object; gzip is recognised.
    ``dst`` is a path (written atomically: a temporary file renamed into place when
    complete; ``dst == src`` enriches in place), ``"-"`` (stdout) or a binary file
    object. ``compress=None`` gzips a path output ending in ``.gz``, or in place when
    the input was gzip. Raises ``LogFormatError`` if ``src`` is not a Zeek log.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(src, (str, os.PathLike)):
            name = os.fspath(src)
            fh, was_gzip = open_log(name, stack)
        else:
            name, was_gzip = str(getattr(src, "name", "<stream>")), False
            fh = src
        return _enrich_to(fh, name, was_gzip, dst, registry, compress, block_size)


def _enrich_to(
    fh: BinaryIO, name: str, was_gzip: bool, dst, registry, compress: bool | None, block_size: int
) -> Report:
    if not isinstance(dst, (str, os.PathLike)):
        return enrich_stream(fh, dst.write, registry, name, block_size)
    target = os.fspath(dst)
    if target == "-":
        out = sys.stdout.buffer
        report = enrich_stream(fh, out.write, registry, name, block_size)
        out.flush()
        return report
    if compress is None:
        compress = target.endswith(".gz") or (was_gzip and _same_file(name, target))
    with atomic_output(target, compress=compress) as out:
        report = enrich_stream(fh, out.write, registry, name, block_size)
        if report.damaged and _same_file(name, target):
            # raising inside atomic_output discards the new file: the log stays as it was
            raise LogFormatError(
                name, f"{report.damaged}; not rewritten in place, the damaged log is left as it is"
            )
        return report


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
