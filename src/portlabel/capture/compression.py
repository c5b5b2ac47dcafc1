"""Byte windows over capture files: plain files mapped, compressed files streamed.

This module owns *getting at the bytes* of a capture, whatever wraps them:

* ``sniff_compression`` recognises gzip, zstd, xz and bzip2 by their magic bytes (never
  by the file name: corpora are full of ``.pcap`` files that are pcapng and the reverse).
* ``open_window`` gives a ``ByteWindow``: a ``uint8`` numpy array ``buf`` holding a stretch
  of the (decompressed) capture, the file offset ``base`` of ``buf[0]`` and an ``eof`` flag.
* ``PrefixedStream`` hands back the bytes already read from a pipe (standard input, a
  FIFO) to recognise it, so a stream that can be read only once is read once.

Theory of operation: format parsers walk records in ``buf`` and, when a record runs past
the end of ``buf`` while ``eof`` is false, call ``refill(keep_from)``. A mapped file is a
single window over the whole file (``eof`` is true from the start, nothing is ever copied);
readers call ``release`` behind the batch they hand out, which drops those pages from
the process's resident set, so a 10 GB file needs no 10 GB of RAM. A compressed stream
keeps ``buf[keep_from:]`` (the records of the batch being assembled), appends at least one
more decompressed chunk into a *fresh* array, and reports how far the old offsets moved.
Batches already handed out keep referring to the old arrays, which stay valid.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import mmap
import os
from typing import BinaryIO, Protocol

import numpy as np

# magic prefix -> compression name; facts from the gzip, zstd, xz and bzip2 formats
COMPRESSION_MAGIC: dict[bytes, str] = {
    b"\x1f\x8b": "gzip",
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "xz",
    b"BZh": "bz2",
}
SNIFF_BYTES = 8
CHUNK_BYTES = 8 << 20  # decompressed bytes added per refill (at least)
READ_PIECE = 64 << 10  # most decompressed bytes lost before a damaged spot
RELEASE_BYTES = 8 << 20  # mapped bytes dropped from memory at a time


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic ``head`` starts with, or None for raw bytes."""
    for magic, name in COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_decompressed(raw: BinaryIO, kind: str) -> BinaryIO:
    """A file object that decompresses ``raw`` (multi-member/multi-frame aware)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bz2":
        return bz2.BZ2File(raw, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    if kind == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        return dctx.stream_reader(raw, read_across_frames=True)  # type: ignore[return-value]
    raise ValueError(f"unknown compression {kind!r}")


class ByteWindow(Protocol):
    buf: np.ndarray
    base: int
    eof: bool
    error: str | None  # why the data ended early (decompression failure), if it did

    def refill(self, keep_from: int) -> int:
        """Drop ``buf[:keep_from]``, read more; return the shift applied to buf offsets."""
        ...

    def release(self, upto: int) -> None:
        """``buf[:upto]`` will not be read again soon: let its memory go (a hint)."""
        ...

    def close(self) -> None: ...


class MappedWindow:
    """The whole of an uncompressed file as one read-only memory map."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.base = 0
        self.eof = True
        self.error: str | None = None
        self._map: mmap.mmap | None = None
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                self.buf = np.zeros(0, dtype=np.uint8)
                return
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)
        self.buf = np.frombuffer(self._map, dtype=np.uint8)
        self._released = 0

    def refill(self, keep_from: int) -> int:
        return 0

    def release(self, upto: int) -> None:
        """Drop the mapped pages before ``upto`` from this process's resident set.

        The map is read-only and file-backed, so a batch still viewing those bytes reads
        them again from the page cache: only RSS changes, never the data.
        """
        upto -= upto % mmap.PAGESIZE
        if self._map is None or upto - self._released < RELEASE_BYTES:
            return
        if hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
        self._released = upto

    def close(self) -> None:
        # Batches handed out may still view the map; then the GC unmaps it later.
        self.buf = np.zeros(0, dtype=np.uint8)
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass


class StreamWindow:
    """A sliding window over a decompressed stream, refilled chunk by chunk."""

    def __init__(self, stream: BinaryIO, chunk: int | None = None, raw: BinaryIO | None = None):
        self._stream = stream
        self._raw = raw
        self._chunk = chunk or CHUNK_BYTES
        self.base = 0
        self.eof = False
        self.error: str | None = None
        self.buf = np.zeros(0, dtype=np.uint8)
        self.refill(0)

    def release(self, upto: int) -> None:
        pass  # refill drops what is behind the batch being assembled

    def refill(self, keep_from: int) -> int:
        if self.eof:
            return 0
        kept = self.buf[keep_from:]
        # Grow geometrically so a batch spanning many chunks costs linear copying.
        want = max(self._chunk, kept.shape[0])
        new = np.empty(kept.shape[0] + want, dtype=np.uint8)
        new[: kept.shape[0]] = kept
        filled = kept.shape[0] + self._read_into(memoryview(new)[kept.shape[0] :])
        self.buf = new[:filled]
        self.base += keep_from
        return keep_from

    def _read_into(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            try:
                # small reads: a decompressor that fails loses the data of that call
                n = self._stream.readinto(view[got : got + READ_PIECE])  # type: ignore[attr-defined]
            except Exception as exc:  # any decompressor failure means corrupt input
                self.error = f"decompression failed: {exc}"
                self.eof = True
                break
            if not n:
                self.eof = True
                break
            got += n
        return got

    def close(self) -> None:
        self._stream.close()
        if self._raw is not None:
            self._raw.close()


class PrefixedStream(io.RawIOBase):
    """``prefix`` then the rest of ``inner``: a pipe whose first bytes were read to sniff
    its format, as if they had not been. ``close_inner=False`` leaves ``inner`` open
    (standard input belongs to the process)."""

    def __init__(self, prefix: bytes, inner: BinaryIO, close_inner: bool = True) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._inner = inner
        self._close_inner = close_inner

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:  # type: ignore[override]
        if len(self._prefix):
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._inner.readinto(view)  # type: ignore[attr-defined]

    def close(self) -> None:
        if not self.closed and self._close_inner:
            self._inner.close()
        super().close()


def read_upto(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes from ``stream``: fewer only at its end (pipes give bytes in
    whatever pieces the writer wrote them)."""
    parts, got = [], 0
    while got < size:
        part = stream.read(min(size - got, 1 << 16))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def open_window(path: str | os.PathLike[str], compression: str | None) -> ByteWindow:
    """A window over the capture's bytes: a map when raw, a decompressing stream if not."""
    if compression is None:
        return MappedWindow(path)
    raw = open(path, "rb")
    return StreamWindow(open_decompressed(raw, compression), raw=raw)


def read_head(path: str | os.PathLike[str], compression: str | None, size: int) -> bytes:
    """Up to ``size`` leading bytes of the capture, decompressed."""
    with open(path, "rb") as raw:
        if compression is None:
            return raw.read(size)
        with open_decompressed(raw, compression) as stream:
            parts, got = [], 0
            while got < size:
                try:
                    part = stream.read(min(size - got, 16384))
                except Exception:
                    if parts:  # damage further in: the walk reports it where it is
                        break
                    raise
                if not part:
                    break
                parts.append(part)
                got += len(part)
            return b"".join(parts)
