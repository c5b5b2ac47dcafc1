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
import io
import lzma
import mmap
import os
import zlib
from collections import deque
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
XZ_MEMORY_LIMIT = 128 << 20  # twice what xz -9 needs; a larger dictionary is refused
RELEASE_BYTES = 8 << 20  # mapped bytes dropped from memory at a time


def sniff_compression(head: bytes) -> str | None:
    """The compression whose magic ``head`` starts with, or None for raw bytes."""
    for magic, name in COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_decompressed(raw: BinaryIO, kind: str) -> BinaryIO:
    """A file object that decompresses ``raw`` (multi-member/multi-frame aware)."""
    if kind not in COMPRESSION_MAGIC.values():
        raise ValueError(f"unknown compression {kind!r}")
    # Unbuffered on purpose: io.BufferedReader drops the bytes of a read() whose later
    # raw read fails, which is exactly the data before the damage that must be kept.
    return DecompressedStream(raw, kind)


class TruncatedStream(EOFError):
    """A compressed stream ended inside a member or frame (its data before is kept)."""


def _decompressor(kind: str):
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        # a header may ask for a dictionary of any size, allocated up front: bounded
        return lzma.LZMADecompressor(memlimit=XZ_MEMORY_LIMIT)
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


class DecompressedStream(io.RawIOBase):
    """``raw`` decompressed as it is read, one small compressed piece at a time.

    Unlike the standard library's file wrappers, which drop what they decompressed when
    a stream turns out to be truncated or damaged, this hands out every byte decoded
    before the damage, then raises ``TruncatedStream`` (the stream ends inside a member)
    or the decompressor's error, naming the compressed offset, on that read and every
    later one. Concatenated members
    (gzip), streams (bzip2, xz) and frames (zstd) are read one after the other; zero
    padding after the last is ignored, however long. For gzip only the bytes at the
    damaged spot are lost (the zlib state is replayed); for xz, bzip2 and zstd, whose
    decoders cannot be copied, the output of the compressed piece (16 KiB) holding the
    damage is lost too.
    """

    def __init__(self, raw: BinaryIO, kind: str, piece: int = 1 << 14) -> None:
        super().__init__()
        self._raw, self._kind, self._piece = raw, kind, piece
        self._d = _decompressor(kind)
        self._out = bytearray()
        self._fed = 0  # compressed bytes consumed
        self._member_fed = False  # the current member has started
        self._error: Exception | None = None
        self._done = False
        self._padding = False  # the last member has ended in zeros: only zeros may follow

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all when negative), fewer only at the end or before
        damage; the error is raised by the first read that has nothing to give."""
        limit = size if size is not None and size >= 0 else float("inf")
        while len(self._out) < limit and not self._done:
            self._step()
        if not self._out and self._error is not None:
            raise self._error  # every later read too: a reader that caught it once
            # (the head read of a pipe) leaves the rest to see the damage
        if limit >= len(self._out):
            data, self._out = bytes(self._out), bytearray()
            return data
        data = bytes(self._out[: int(limit)])
        del self._out[: int(limit)]
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, view) -> int:  # type: ignore[override]
        while not self._out and not self._done:
            self._step()
        if not self._out:
            if self._error is not None:
                raise self._error
            return 0
        n = min(len(view), len(self._out))
        view[:n] = self._out[:n]
        del self._out[:n]
        return n

    def _step(self) -> None:
        data = self._raw.read(self._piece)
        if data and not self._member_fed and self._fed and data[:1] == b"\0":
            self._padding = True  # a member ended with this piece's start: zeros follow
        if data and self._padding:
            self._skip_padding(data)
            return
        if not data:
            self._done = True
            if self._member_fed and not self._d.eof:
                self._error = TruncatedStream(
                    f"{self._kind} stream ends early, after {self._fed} compressed bytes"
                )
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        while data:
            # zlib state can be copied: a failing piece is replayed in small steps from
            # the copy, so only the bytes at the damaged spot itself are lost
            snapshot = self._d.copy() if self._kind == "gzip" else None
            try:
                self._out += self._d.decompress(data)
            except Exception as exc:  # noqa: BLE001 - any decompressor error: corrupt data
                self._done = True
                at = self._fed + (self._replay(snapshot, data) if snapshot else 0)
                if isinstance(exc, lzma.LZMAError) and "limit" in str(exc).lower():
                    self._error = ValueError(
                        f"xz stream needs more than {XZ_MEMORY_LIMIT >> 20} MiB to decompress "
                        f"(a larger dictionary than xz -9 uses), near compressed offset {at}"
                    )
                    return
                self._error = ValueError(
                    f"{self._kind} data corrupt near compressed offset {at}: {exc}"
                )
                return
            self._member_fed = True
            if not self._d.eof:
                self._fed += len(data)
                return
            rest = self._d.unused_data
            self._fed += len(data) - len(rest)
            self._d = _decompressor(self._kind)
            self._member_fed = False
            if rest and rest.strip(b"\0") == b"":  # zero padding after the last member
                self._padding = True
                self._fed += len(rest)
                return
            # the next member, stream or frame
            self._member_fed = False
            data = rest

    def _skip_padding(self, data: bytes) -> None:
        """Zero padding goes on to the end (as tape and block devices leave it); anything
        else after it is not part of the stream: reported where it starts, not read."""
        body = data.lstrip(b"\0")
        self._fed += len(data) - len(body)
        if body:
            self._done = True
            self._error = ValueError(
                f"{self._kind}: {len(body)}+ bytes that are not zero padding after the "
                f"end of the stream, at compressed offset {self._fed}; not read"
            )

    def _replay(self, d, data: bytes, step: int = 64) -> int:
        """Decode ``data`` again with ``d`` in ``step``-byte pieces up to the failing
        one, keeping their output; the offset of that piece within ``data``."""
        for start in range(0, len(data), step):
            try:
                self._out += d.decompress(data[start : start + step])
            except Exception:  # noqa: BLE001 - the damaged piece
                return start
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
            # the decompressor's state (an xz dictionary: up to XZ_MEMORY_LIMIT) goes now,
            # not when a reference cycle around this stream is collected
            self._d, self._out, self._done = None, bytearray(), True
        super().close()


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
    """The whole of an uncompressed file as one read-only memory map.

    ``held``: how many of the latest batches handed out may still be in use when the
    reader asks to release what is behind it (0: none, the consumer is done with each
    batch before the next is read; a consumer that reads ahead in another thread holds
    a few): the pages of that many batches stay resident, so that they are not read
    back after their release, and then never released again."""

    def __init__(self, path: str | os.PathLike[str], held: int = 0) -> None:
        self._asked: deque[int] = deque()
        self._held = held
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
        if self._held:  # released ``held`` batch starts later than asked
            if not self._asked or upto != self._asked[-1]:
                self._asked.append(upto)
            if len(self._asked) <= self._held:
                return
            upto = self._asked.popleft()
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
        # the stream ended well short of the room made for it: keep only what it gave
        self.buf = new[:filled].copy() if self.eof and filled < new.shape[0] // 2 else new[:filled]
        self.base += keep_from
        return keep_from

    def _read_into(self, view: memoryview) -> int:
        got = 0
        while got < len(view):
            try:
                # small reads: a decompressor that fails loses the data of that call
                n = self._stream.readinto(view[got : got + READ_PIECE])  # type: ignore[attr-defined]
            except Exception as exc:  # any decompressor failure means corrupt input
                self.error = (
                    str(exc)
                    if isinstance(exc, (TruncatedStream, ValueError))
                    else (f"decompression failed: {exc}")
                )
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
    whatever pieces the writer wrote them) or before damage further in, which the record
    walk then reports where it is; damage before any byte is raised."""
    parts, got = [], 0
    while got < size:
        try:
            part = stream.read(min(size - got, 1 << 16))
        except Exception:  # noqa: BLE001 - a decompressor's error: corrupt input
            if parts:
                break
            raise
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def damaged_stream(window: ByteWindow, pos: int, unit: str) -> str:
    """The one warning for a compressed capture that ends early or turns corrupt:
    where (in decompressed bytes), why, and what was kept."""
    left = window.buf.shape[0] - pos
    dropped = f"; the {left} bytes of an incomplete {unit} after it dropped" if left else ""
    return (
        f"offset {window.base + pos}: {window.error}: every {unit} before this offset kept{dropped}"
    )


def open_window(path: str | os.PathLike[str], compression: str | None, held: int = 0) -> ByteWindow:
    """A window over the capture's bytes: a map when raw, a decompressing stream if not
    (whose buffers are new at each refill: batches still held keep theirs)."""
    if compression is None:
        return MappedWindow(path, held)
    raw = open(path, "rb")
    return StreamWindow(open_decompressed(raw, compression), raw=raw)


def read_head(path: str | os.PathLike[str], compression: str | None, size: int) -> bytes:
    """Up to ``size`` leading bytes of the capture, decompressed."""
    with open(path, "rb") as raw:
        if compression is None:
            return raw.read(size)
        with open_decompressed(raw, compression) as stream:
            return read_upto(stream, size)
