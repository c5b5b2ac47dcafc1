"""Classic libpcap capture files: file header, record walk and ``RawBatch`` assembly.

Theory of operation: the record walk is sequential by nature (record *i+1* starts where
record *i*'s ``caplen`` says). It runs in a small numba kernel (pure Python when numba is
missing) that fills preallocated arrays with each record's data offset, lengths and raw
timestamp fields; everything else (timestamp scaling, batch slicing) is vectorised numpy.
The window's bytes are never copied for a mapped file: a batch's ``buf`` is a view.

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
from portlabel.capture.compression import ByteWindow
from portlabel.errors import CaptureError

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a slow path

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        return lambda f: f


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
# kernel exit status
FULL, NEED_MORE, BAD_LENGTH = 0, 1, 2


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


@njit(cache=True, nogil=True)
def _u32(b, p, big):
    if big:
        return (
            (np.uint32(b[p]) << 24)
            | (np.uint32(b[p + 1]) << 16)
            | (np.uint32(b[p + 2]) << 8)
            | np.uint32(b[p + 3])
        )
    return (
        (np.uint32(b[p + 3]) << 24)
        | (np.uint32(b[p + 2]) << 16)
        | (np.uint32(b[p + 1]) << 8)
        | np.uint32(b[p])
    )


@njit(cache=True, nogil=True)
def walk_records(b, p, big, hdr_len, lengths, data_off, caplen, wirelen, sec, frac, n, maxn):
    """Walk records from ``b[p]`` into the arrays from row ``n``; return (n, p, status)."""
    end = b.shape[0]
    while n < maxn:
        if p + hdr_len > end:
            return n, p, NEED_MORE
        cap = _u32(b, p + 8, big)
        wire = _u32(b, p + 12, big)
        if lengths != LENGTHS_NORMAL:
            if lengths == LENGTHS_SWAPPED or cap > wire:
                cap, wire = wire, cap
        if cap > MAX_RECORD:
            return n, p, BAD_LENGTH
        q = p + hdr_len + np.int64(cap)
        if q > end:
            return n, p, NEED_MORE
        data_off[n] = p + hdr_len
        caplen[n] = cap
        wirelen[n] = wire
        sec[n] = _u32(b, p, big)
        frac[n] = _u32(b, p + 4, big)
        n += 1
        p = q
    return n, p, FULL


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


def _new_columns(size: int) -> dict[str, np.ndarray]:
    return {
        "offset": np.empty(size, np.int64),
        "caplen": np.empty(size, np.uint32),
        "wirelen": np.empty(size, np.uint32),
        "sec": np.empty(size, np.uint32),
        "frac": np.empty(size, np.uint32),
        "ts_ns": np.empty(size, np.int64),
        "linktype": np.empty(size, np.uint16),
        "iface": np.zeros(size, np.uint16),
    }


def iter_pcap(
    window: ByteWindow,
    header: PcapHeader,
    batch_size: int,
    first_frame: int,
    warnings: list[str],
) -> Iterator[RawBatch]:
    """Batches of the records after the file header; problems end up in ``warnings``."""
    big = header.byteorder == ">"
    frac_ns = 1 if header.nanosecond else 1000
    pos = start = FILE_HEADER_LEN - window.base
    frame = first_frame
    cols, n = _new_columns(batch_size), 0
    while True:
        buf = window.buf
        n, pos, status = walk_records(
            buf, pos, big, header.record_header_len, header.lengths, cols["offset"],
            cols["caplen"], cols["wirelen"], cols["sec"], cols["frac"], n, batch_size,
        )  # fmt: skip
        if status == NEED_MORE and not window.eof:
            shift = window.refill(start)
            cols["offset"][:n] -= shift
            pos, start = pos - shift, start - shift
            continue
        if n:
            ts = cols["ts_ns"][:n]
            np.multiply(cols["sec"][:n], 1_000_000_000, out=ts, dtype=np.int64)
            ts += cols["frac"][:n].astype(np.int64) * frac_ns
            cols["linktype"][:n] = header.linktype
            yield make_batch(buf, start, pos, cols, n, frame)
            frame += n
            cols, n, start = _new_columns(batch_size), 0, pos
        if status == FULL:
            continue
        if status == BAD_LENGTH:
            warnings.append(_bad_record(buf, pos, window.base, header))
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
