"""Opening capture files: format detection and the ``CaptureReader`` API.

This module owns the edge between paths and ``RawBatch`` streams. ``open_capture`` looks
at the (decompressed) leading bytes, never at the file name, to pick classic pcap or pcapng
and to reject what is neither with a ``CaptureError`` naming the file and offset. The
reader's ``batches`` then walks the file with the format module, keeping what went wrong
later in the file as ``warnings`` (everything before the damage is still yielded) and pcapng
packet comments in ``comments`` (frame number -> text). Several files read as one
capture are ``capture.inputs``' business.

A path that is a pipe (``-`` for standard input, a FIFO, a character device) is opened
once: its leading bytes are read to recognise it and handed back in front of the rest
(``PrefixedStream``), and its reader can give its batches only once.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from typing import BinaryIO

from portlabel.capture import pcap, pcapng
from portlabel.capture.batch import RawBatch
from portlabel.capture.compression import (
    PrefixedStream,
    StreamWindow,
    open_decompressed,
    open_window,
    read_head,
    read_upto,
    sniff_compression,
)
from portlabel.constants import BATCH_SIZE
from portlabel.errors import CaptureError

HEAD_BYTES = 1 << 16


class CaptureReader:
    """One capture file, ready to be read in batches (more than once, unless a pipe)."""

    def __init__(
        self,
        path: str,
        fmt: str,
        compression: str | None,
        pcap_header: pcap.PcapHeader | None,
        header_warnings: list[str],
    ) -> None:
        self.path = path
        self.format = fmt
        self.compression = compression
        self.pcap_header = pcap_header
        self._header_warnings = header_warnings
        self.warnings: list[str] = list(header_warnings)
        self.comments: dict[int, str] = {}
        self.snaplens: dict[int, int] = {}  # interface number -> snaplen (0: no limit)
        self.frames_read = 0
        self.pipe: BinaryIO | None = None  # a pipe's stream, until its batches are read
        self.range_end: int | None = None  # after reading a byte range: the chain's end

    def __repr__(self) -> str:
        return f"CaptureReader({self.path!r}, format={self.format!r})"

    def batches(
        self,
        batch_size: int = BATCH_SIZE,
        first_frame: int = 0,
        byte_range: tuple[int, int] | None = None,
        held: int = 0,
    ) -> Iterator[RawBatch]:
        """``RawBatch``es of at most ``batch_size`` records, frames numbered from
        ``first_frame``. Damage after the start ends the walk with a warning. ``held``:
        how many batches the consumer may still be using when the next is read
        (``compression.MappedWindow``).

        ``byte_range`` (start, end), for a plain pcap file only: the records whose
        headers lie in it, ``start`` being one's; ``range_end`` is then where the record
        chain crossed ``end``, the next range's true start."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        if byte_range is not None and self.format != "pcap":
            raise ValueError(f"byte ranges need a plain pcap file, not {self.format}")
        self.warnings = list(self._header_warnings)
        self.comments = {}
        self.snaplens = {0: self.pcap_header.snaplen} if self.pcap_header is not None else {}
        self.frames_read = 0
        try:
            window = _window_of(self, held)
        except OSError as exc:
            raise CaptureError(self.path, f"cannot read: {exc.strerror or exc}") from exc
        try:
            if self.pcap_header is not None:
                ends: list[int] = []
                records = pcap.iter_pcap(
                    window, self.pcap_header, batch_size, first_frame, self.warnings,
                    byte_range, ends,
                )  # fmt: skip
            else:
                records = pcapng.iter_pcapng(
                    window, batch_size, first_frame, self.warnings, self.comments, self.snaplens
                )
            try:
                for batch in records:
                    self.frames_read += len(batch)
                    yield batch
            finally:
                records.close()
                if byte_range is not None:
                    self.range_end = ends[0] if ends else byte_range[0]
        finally:
            window.close()


def open_capture(path: str | os.PathLike[str]) -> CaptureReader:
    """Recognise a pcap/pcapng file, plain or gzip/zstd/xz/bz2 compressed (``-``: stdin)."""
    name = os.fspath(path)
    if is_pipe(name):
        return _open_pipe(name)
    try:
        with open(name, "rb") as f:
            magic = f.read(8)
    except OSError as exc:
        raise CaptureError(name, f"cannot open: {exc.strerror or exc}") from exc
    compression = sniff_compression(magic)
    try:
        head = read_head(name, compression, HEAD_BYTES)
    except Exception as exc:  # any decompressor failure on the first bytes
        raise CaptureError(name, f"cannot decompress ({compression}): {exc}", "offset 0") from exc
    return _recognise(name, magic, compression, head)


def is_pipe(name: str) -> bool:
    """``-`` (standard input) or a path that can be read only once (FIFO, device)."""
    if name == "-":
        return True
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _open_pipe(name: str) -> CaptureReader:
    try:
        raw = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CaptureError(name, f"cannot open: {exc.strerror or exc}") from exc
    magic = read_upto(raw, 8)
    compression = sniff_compression(magic)
    stream: BinaryIO = PrefixedStream(magic, raw, close_inner=name != "-")
    if compression:
        stream = open_decompressed(stream, compression)
    try:
        head = read_upto(stream, HEAD_BYTES)
    except Exception as exc:  # any decompressor failure on the first bytes
        raise CaptureError(name, f"cannot decompress ({compression}): {exc}", "offset 0") from exc
    reader = _recognise(name, magic, compression, head)
    reader.pipe = PrefixedStream(head, stream)
    return reader


def _recognise(name: str, magic: bytes, compression: str | None, head: bytes) -> CaptureReader:
    if not head:
        raise CaptureError(name, "empty file" if not magic else f"empty {compression} stream")
    header, warnings = None, []
    if pcap.is_pcap(head):
        header, warnings = pcap.parse_file_header(head, name)
        fmt = "pcap"
    elif pcapng.is_pcapng(head):
        pcapng.first_section(head, name, whole_file=len(head) < HEAD_BYTES)
        fmt = "pcapng"
    else:
        raise CaptureError(
            name, f"not a pcap or pcapng file (starts with {head[:4].hex()})", "offset 0"
        )
    if compression:
        fmt += "+" + compression
    return CaptureReader(name, fmt, compression, header, warnings)


def _window_of(reader: CaptureReader, held: int = 0):
    if reader.pipe is not None:
        pipe, reader.pipe = reader.pipe, None
        return StreamWindow(pipe)
    if is_pipe(reader.path):
        raise CaptureError(reader.path, "a pipe can be read only once")
    return open_window(reader.path, reader.compression, held)
