"""Classic libpcap capture files: file header, record walk and ``RawBatch`` assembly.

Theory of operation: the record walk is sequential by nature (record *i+1* starts where
record *i*'s ``caplen`` says); the compiled walk (``_pcapwalk``, when built) follows the
chain in one C loop without the GIL, and without it ``recordwalk`` finds the record starts
of a span of the file with many chains walked in lockstep (numpy), using the timestamp and
length fields to recognise headers. The fields of the records found are then gathered with one
numpy gather each, checked (an impossible length or a record running past the data ends
the walk there) and sliced into batches. The window's bytes are never copied for a mapped
file: a batch's ``buf`` is a view, and the pages behind the batch being handed out are
released (``ByteWindow.release``) as soon as the walk goes on past it, so memory stays
bounded whatever the file size.

Format facts handled here: both byte orders; microsecond (0xa1b2c3d4) and nanosecond
(0xa1b23c4d) magics, and the 24-byte-record variant (0xa1b2cd34); versions before 2.3
wrote ``caplen`` and ``len`` in the opposite order (2.3 itself is ambiguous: the smaller of
the two is the captured length); the link-type field keeps the link type in its low 16
bits, the FCS length in its high bits and reserved bits in between; ``snaplen`` is not
trusted (records may be longer).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from portlabel.capture.batch import RawBatch
from portlabel.capture.compression import ByteWindow, damaged_stream
from portlabel.capture.recordwalk import BROKEN, RecordShape, u32_view, walk
from portlabel.errors import CaptureError

try:
    from portlabel.capture import _pcapwalk
except ImportError:  # built without a C compiler: the vectorised lockstep walk
    _pcapwalk = None

# magic as read little-endian -> (byte order, nanosecond?, record header bytes)
PCAP_MAGICS: dict[int, tuple[str, bool, int]] = {
    0xA1B2C3D4: ("<", False, 16),
    0xD4C3B2A1: (">", False, 16),
    0xA1B23C4D: ("<", True, 16),
    0x4D3CB2A1: (">", True, 16),
    0xA1B2CD34: ("<", False, 24),  # "modified" pcap: ifindex, protocol, pkt_type added
    0x34CDB2A1: (">", False, 24),
}
FILE_HEADER = "IHHiIII"  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
FILE_HEADER_LEN = 24
LINKTYPE_MASK = 0x0000FFFF
LINKTYPE_RESERVED_MASK = 0x03FF0000  # must be zero; the bits above carry FCS info
MAX_RECORD = 256 << 20  # a caplen beyond this is a corrupt header, not a packet

# how the two length fields are read, by file version
LENGTHS_NORMAL, LENGTHS_SWAPPED, LENGTHS_MAYBE_SWAPPED = 0, 1, 2
# why a walk stopped
NEED_MORE, BAD_LENGTH = 1, 2
# bytes of records found per walk: sized to the records a batch still lacks (from the
# mean record size so far), so the walk touches few pages beyond the batch it completes,
# within these bounds
MIN_SPAN_BYTES, MAX_SPAN_BYTES = 1 << 20, 64 << 20
FIRST_SPAN_BYTES = 8 << 20  # before any record size is known
# guessing headers: a plausible record has both lengths below these and a timestamp
# within PLAUSIBLE_SECONDS of the file's first record
PLAUSIBLE_CAPLEN = 1 << 18
PLAUSIBLE_WIRELEN = 1 << 24
PLAUSIBLE_SECONDS = 1 << 24


@dataclass(frozen=True, slots=True)
class PcapHeader:
    byteorder: str  # "<" or ">"
    nanosecond: bool
    record_header_len: int
    version: tuple[int, int]
    snaplen: int
    linktype: int
    linktype_field: int  # the raw 32-bit field, upper bits included

    @property
    def lengths(self) -> int:
        if self.version < (2, 3):
            return LENGTHS_SWAPPED
        return LENGTHS_MAYBE_SWAPPED if self.version == (2, 3) else LENGTHS_NORMAL


def is_pcap(head: bytes) -> bool:
    return len(head) >= 4 and int.from_bytes(head[:4], "little") in PCAP_MAGICS


def parse_file_header(head: bytes, path: str) -> tuple[PcapHeader, list[str]]:
    """The file header and any warnings about it; CaptureError if it is unusable."""
    if len(head) < FILE_HEADER_LEN:
        raise CaptureError(
            path, f"pcap file header cut short ({len(head)} of 24 bytes)", "offset 0"
        )
    order, nano, rec_len = PCAP_MAGICS[int.from_bytes(head[:4], "little")]
    _, major, minor, _, _, snaplen, lt_field = struct.unpack_from(order + FILE_HEADER, head)
    if major != 2:
        raise CaptureError(path, f"unsupported pcap version {major}.{minor}", "offset 4")
    warnings = []
    if lt_field & LINKTYPE_RESERVED_MASK:
        warnings.append(
            f"offset 20: link-type field 0x{lt_field:08x} has reserved bits set; ignored"
        )
    header = PcapHeader(
        order, nano, rec_len, (major, minor), snaplen, lt_field & LINKTYPE_MASK, lt_field
    )
    return header, warnings


def _lengths(u: np.ndarray, at: np.ndarray, header: PcapHeader):
    """(caplen, wirelen) of the records starting at ``at``, as int64."""
    return _ordered(u[at + 8].astype(np.int64), u[at + 12].astype(np.int64), header)


def _ordered(first: np.ndarray, second: np.ndarray, header: PcapHeader):
    """(caplen, wirelen) from the header's two length fields, by file version."""
    if header.lengths == LENGTHS_NORMAL:
        return first, second
    if header.lengths == LENGTHS_SWAPPED:
        return second, first
    return np.minimum(first, second), np.maximum(first, second)


def _header_fields(buf: np.ndarray, at: np.ndarray, byteorder: str) -> np.ndarray:
    """The four u32 fields of the record headers at ``at`` as an aligned ``(n, 4)`` array."""
    if not len(at):
        return np.zeros((0, 4), dtype=np.int64)
    records = np.ndarray((len(buf) - 15,), dtype="V16", buffer=buf, strides=(1,))
    return records[at].view(byteorder + "u4").reshape(len(at), 4)


def record_shape(header: PcapHeader, u: np.ndarray, first_sec: int) -> RecordShape:
    """How ``recordwalk`` steps through this file's records and recognises a header."""
    hdr = header.record_header_len
    sec0 = np.uint32(first_sec)
    frac_limit = np.uint32(1_000_000_000 if header.nanosecond else 1_000_000)

    length_at = 12 if header.lengths == LENGTHS_SWAPPED else 8

    def step(at: np.ndarray) -> np.ndarray:
        if header.lengths == LENGTHS_MAYBE_SWAPPED:
            return _lengths(u, at, header)[0] + hdr
        return u[at + length_at].astype(np.int64) + hdr

    def plausible(field) -> np.ndarray:
        cap, wire = field(8), field(12)
        if header.lengths == LENGTHS_SWAPPED:
            cap, wire = wire, cap
        ok = (field(4) < frac_limit) & (cap > 0) & (cap <= PLAUSIBLE_CAPLEN)
        ok &= wire < PLAUSIBLE_WIRELEN
        if header.lengths == LENGTHS_NORMAL:
            ok &= cap <= wire
        age = field(0) - sec0 + np.uint32(PLAUSIBLE_SECONDS)  # wraps around: |dt| test
        return ok & (age < np.uint32(2 * PLAUSIBLE_SECONDS))

    key_offset = 0 if header.byteorder == ">" else 3  # the seconds' high byte
    return RecordShape(step, plausible, key_offset, int(sec0) >> 24, hdr + MAX_RECORD)


def walk_compiled(buf: np.ndarray, start: int, stop: int, header: PcapHeader):
    """``recordwalk.walk``'s result for this file's records, from the compiled walk, plus
    the ``(n, 4)`` header fields of the records found (what ``_header_fields`` reads)."""
    hdr = header.record_header_len
    found = np.empty((stop - start) // hdr + 1, dtype=np.int64)
    fields = np.empty((len(found), 4), dtype=np.uint32)
    big = header.byteorder == ">"
    k, nxt = _pcapwalk.walk_pcap(
        buf, start, stop, hdr, header.lengths, big, hdr + MAX_RECORD, BROKEN, found, fields
    )
    return found[:k].copy(), nxt, fields[:k].copy()


def make_batch(
    buf: np.ndarray, start: int, stop: int, cols: dict[str, np.ndarray], n: int, first: int
) -> RawBatch:
    """A batch viewing ``buf[start:stop]``; ``cols`` hold buf-relative offsets."""
    return RawBatch(
        buf=buf[start:stop],
        offset=cols["offset"][:n] - start,
        caplen=cols["caplen"][:n],
        wirelen=cols["wirelen"][:n],
        ts_ns=cols["ts_ns"][:n],
        linktype=cols["linktype"][:n],
        iface=cols["iface"][:n],
        frame=np.arange(first, first + n, dtype=np.int64),
    )


class _Records:
    """Record starts found and not yet handed out, with the walk's position."""

    def __init__(
        self, window: ByteWindow, header: PcapHeader, first_frame: int, begin: int | None = None
    ) -> None:
        self.window, self.header = window, header
        self.frame = first_frame
        begin = FILE_HEADER_LEN if begin is None else begin
        self.pos = self.start = begin - window.base  # start: next batch's bytes
        self.pending: list[np.ndarray] = []
        # the header fields of the pending records when the walk read them (else None)
        self.pending_fields: list[np.ndarray | None] = []
        self.count = 0
        self.first_pos = self.pos  # where the walk began (for the mean record size)
        self.walked_records = 0

    def find(self, wanted: int) -> int | None:
        """Walk one span, about long enough for ``wanted`` more records; None while more
        follows, else why the walk stopped."""
        # batches handed out are done with when the next walk starts: release their pages
        # before mapping more (or two batches' worth of pages would be resident)
        self.window.release(self.start)
        buf, hdr = self.window.buf, self.header.record_header_len
        end = buf.shape[0]
        limit = end - hdr + 1  # a record starting before this has its whole header
        if self.pos >= limit:
            return NEED_MORE
        u = u32_view(buf, self.header.byteorder)
        # headers are recognised by a timestamp near this span's first one
        shape = record_shape(self.header, u, int(u[self.pos]))
        stop = min(self.pos + self._span(wanted), limit)
        if _pcapwalk is None:
            found, nxt = walk(buf, u, self.pos, stop, shape)
            fields = None
        else:
            found, nxt, fields = walk_compiled(buf, self.pos, stop, self.header)
        status = None
        if nxt == BROKEN:  # a length field beyond MAX_RECORD
            i = int(np.argmax(_lengths(u, found, self.header)[0] > MAX_RECORD))
            status, found, nxt = BAD_LENGTH, found[:i], int(found[i])
        elif nxt > end:  # only the last record of a chain can run past the data
            status, found, nxt = NEED_MORE, found[:-1], int(found[-1])
        self.pending.append(found)
        self.pending_fields.append(None if fields is None else fields[: len(found)])
        self.count += len(found)
        self.walked_records += len(found)
        self.pos = nxt
        return status

    def _span(self, wanted: int) -> int:
        walked = self.pos - self.first_pos
        if self.walked_records == 0 or walked <= 0:
            return FIRST_SPAN_BYTES
        mean = walked / self.walked_records
        return int(min(max(wanted * mean * 1.02 + 4096, MIN_SPAN_BYTES), MAX_SPAN_BYTES))

    def batch(self, n: int) -> RawBatch:
        """The next ``n`` pending records as a batch."""
        found = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        take, rest = found[:n], found[n:]
        known = self.pending_fields
        if any(f is None for f in known):  # the vectorised walk: gather the headers now
            fields, rest_fields = None, None
        else:
            fields = np.concatenate(known) if len(known) > 1 else known[0]
            fields, rest_fields = fields[:n], fields[n:]
        self.pending, self.pending_fields, self.count = [rest], [rest_fields], len(rest)
        buf, header = self.window.buf, self.header
        hdr = header.record_header_len
        if fields is None:
            fields = _header_fields(buf, take, header.byteorder)  # one gather per batch
        cap, wire = _ordered(fields[:, 2], fields[:, 3], header)
        ts = fields[:, 0].astype(np.int64) * 1_000_000_000
        ts += fields[:, 1].astype(np.int64) * (1 if header.nanosecond else 1000)
        stop = int(rest[0]) if len(rest) else self.pos
        cols = {
            "offset": take + hdr,
            "caplen": cap.astype(np.uint32),
            "wirelen": wire.astype(np.uint32),
            "ts_ns": ts,
            "linktype": np.full(n, header.linktype, dtype=np.uint16),
            "iface": np.zeros(n, dtype=np.uint16),
        }
        self.window.release(self.start)
        out = make_batch(buf, self.start, stop, cols, n, self.frame)
        self.frame += n
        self.start = stop
        return out

    def refill(self) -> None:
        shift = self.window.refill(self.start)
        self.pending = [p - shift for p in self.pending]
        self.pos -= shift
        self.start -= shift
        self.first_pos -= shift


def iter_pcap(
    window: ByteWindow,
    header: PcapHeader,
    batch_size: int,
    first_frame: int,
    warnings: list[str],
    byte_range: tuple[int, int] | None = None,
    ends: list[int] | None = None,
) -> Iterator[RawBatch]:
    """Batches of the records after the file header; problems end up in ``warnings``.

    With ``byte_range`` (start, end): the records whose headers start at or after
    ``start`` (which must be a record's start) and before ``end``; ``ends`` then gets
    where the record chain crossed ``end`` (the next range's true start).
    """
    begin, end = byte_range if byte_range is not None else (None, None)
    records = _walked(_Records(window, header, first_frame, begin), batch_size, warnings, end)
    if byte_range is None:
        for batch, _ in records:
            yield batch
        return
    hdr = header.record_header_len
    chain = begin
    try:
        for batch, base in records:
            heads = base + batch.offset - hdr  # where each record's header starts
            inside = heads < end
            if len(batch):
                chain = int(heads[-1]) + hdr + int(batch.caplen[-1])
            if not inside.all():
                kept = int(np.argmin(inside))
                chain = int(heads[kept])
                if kept:
                    yield batch.take(np.arange(kept))
                return
            yield batch
    finally:
        records.close()
        if ends is not None:
            ends.append(chain)


def _walked(
    records: _Records, batch_size: int, warnings: list[str], end: int | None
) -> Iterator[tuple[RawBatch, int]]:
    """``iter_pcap``'s walk: each batch with the file offset its ``buf`` starts at; with
    ``end``, the walk stops once it has passed that offset."""
    window, header = records.window, records.header
    while True:
        status = records.find(batch_size - records.count)
        while records.count >= batch_size:
            base = window.base + records.start
            yield records.batch(batch_size), base
        if status is None:
            if end is not None and window.base + records.pos >= end:
                if records.count:  # the range is walked: what was found goes out
                    base = window.base + records.start
                    yield records.batch(records.count), base
                return
            continue
        if status == NEED_MORE and not window.eof:
            records.refill()
            continue
        if records.count:
            base = window.base + records.start
            yield records.batch(records.count), base
        buf, pos = window.buf, records.pos
        if status == BAD_LENGTH:
            warnings.append(_bad_record(buf, pos, window.base, header))
        elif window.error:
            warnings.append(damaged_stream(window, pos, "record"))
            return
        elif pos < buf.shape[0]:
            warnings.append(
                f"truncated record at offset {window.base + pos}: "
                f"{buf.shape[0] - pos} bytes left of an incomplete record"
            )
        if window.error:
            warnings.append(f"offset {window.base + buf.shape[0]}: {window.error}")
        return


def _bad_record(buf: np.ndarray, pos: int, base: int, header: PcapHeader) -> str:
    fields = struct.unpack_from(header.byteorder + "IIII", bytes(buf[pos : pos + 16]))
    return (
        f"corrupt record header at offset {base + pos}: "
        f"length fields {fields[2]}/{fields[3]} exceed {MAX_RECORD} bytes; rest of file skipped"
    )
