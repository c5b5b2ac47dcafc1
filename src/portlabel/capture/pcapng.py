"""pcapng capture files: sections, interfaces, packet blocks and ``RawBatch`` assembly.

Theory of operation: a kernel walks consecutive packet blocks (Enhanced, Simple and
obsolete Packet blocks), checks their framing, and fills preallocated arrays with the data
offset, lengths, raw 64-bit timestamp, interface id and where the options are. It stops at
any other block; Python then handles that block (a Section Header switches byte order and
starts a fresh interface table, an Interface Description adds an interface with its link
type, snaplen, ``if_tsresol`` and ``if_tsoffset``; the rest are skipped) and resumes the
kernel. After each kernel run the new rows are finished with numpy: timestamps scaled per
interface, link types looked up, local interface ids made file-global (interfaces of later
sections get the next numbers). Packet comments (``opt_comment``) are decoded in Python only
for the records whose options the kernel saw a comment in. The kernel is the C extension
``_pcapngwalk`` when it was built; without it, ``walk_blocks`` below (the same rules) runs
as plain Python for small inputs and compiled by numba (imported only then) for big ones.

Simple Packet Blocks carry no timestamp; they get the previous packet's time (0 if none).
"""

from __future__ import annotations

import struct
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from portlabel.capture.batch import RawBatch
from portlabel.capture.compression import ByteWindow, damaged_stream
from portlabel.capture.pcap import make_batch
from portlabel.errors import CaptureError

try:
    from portlabel.capture import _pcapngwalk
except ImportError:  # built without a C compiler: walk_blocks, in Python or numba
    _pcapngwalk = None

SHB, IDB, OPB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT, OPT_COMMENT = 0, 1
IF_TSRESOL, IF_TSOFFSET = 9, 14
MIN_BLOCK = 12
MAX_BLOCK = 256 << 20
COMPILE_BYTES = 8 << 20  # inputs from this size on walk with the numba-compiled kernel
# fixed part before the packet data: (header+body bytes, trailing bytes)
EPB_FIXED = 28
SPB_FIXED = 12
SHB_FIXED = 24  # type, length, byte-order magic, version, section length

# kernel exit status
FULL, NEED_MORE, OTHER_BLOCK, BAD_LENGTH, BAD_TRAILER, BAD_BODY, BAD_IFACE = range(7)
_MESSAGES = {
    BAD_LENGTH: "block length {blen} is not a multiple of 4 in [12, 256 MiB]",
    BAD_TRAILER: "trailing block length differs from the leading length {blen}",
    BAD_BODY: "packet block of length {blen} too short for its captured length",
    BAD_IFACE: "packet block names an interface not described in this section",
}


def _u16(b, p, big):
    if big:
        return (np.uint32(b[p]) << 8) | np.uint32(b[p + 1])
    return (np.uint32(b[p + 1]) << 8) | np.uint32(b[p])


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


def _count_comments(b, q, opt_end, big):
    count = 0
    while q + 4 <= opt_end:
        code = _u16(b, q, big)
        olen = np.int64(_u16(b, q + 2, big))
        if code == OPT_ENDOFOPT or q + 4 + olen > opt_end:
            break
        if code == OPT_COMMENT:
            count += 1
        q += 4 + ((olen + 3) & ~3)
    return count


def walk_blocks(b, p, big, n_ifaces, spb_snaplen, cols_i64, cols_u32, n, maxn):
    """Walk packet blocks from ``b[p]`` filling rows from ``n``; return (n, p, status).

    ``cols_i64`` rows: data offset, timestamp units, options offset (-1: no timestamp).
    ``cols_u32`` rows: caplen, wirelen, local interface id, options length, comment count.
    """
    end = b.shape[0]
    while n < maxn:
        if p + 8 > end:
            return n, p, NEED_MORE
        btype = _u32(b, p, big)
        if btype != EPB and btype != SPB and btype != OPB:
            return n, p, OTHER_BLOCK
        blen = np.int64(_u32(b, p + 4, big))
        if blen < MIN_BLOCK or blen % 4 != 0 or blen > MAX_BLOCK:
            return n, p, BAD_LENGTH
        if p + blen > end:
            return n, p, NEED_MORE
        if _u32(b, p + blen - 4, big) != blen:
            return n, p, BAD_TRAILER
        has_ts = True
        if btype == SPB:
            if blen < SPB_FIXED + 4:
                return n, p, BAD_BODY
            if n_ifaces == 0:
                return n, p, BAD_IFACE
            iface = 0
            wire = np.int64(_u32(b, p + 8, big))
            cap = min(wire, blen - SPB_FIXED - 4)
            if spb_snaplen > 0 and cap > spb_snaplen:
                cap = spb_snaplen
            data = p + SPB_FIXED
            units = np.uint64(0)
            has_ts = False
            opt = opt_end = p + blen - 4
        else:
            if blen < EPB_FIXED + 4:
                return n, p, BAD_BODY
            iface = _u32(b, p + 8, big) if btype == EPB else _u16(b, p + 8, big)
            if iface >= n_ifaces:
                return n, p, BAD_IFACE
            units = (np.uint64(_u32(b, p + 12, big)) << np.uint64(32)) | np.uint64(
                _u32(b, p + 16, big)
            )
            cap = np.int64(_u32(b, p + 20, big))
            wire = np.int64(_u32(b, p + 24, big))
            data = p + EPB_FIXED
            opt = data + ((cap + 3) & ~3)
            opt_end = p + blen - 4
            if opt > opt_end:
                return n, p, BAD_BODY
        cols_i64[0, n] = data
        cols_i64[1, n] = np.int64(units)
        cols_i64[2, n] = opt if has_ts else -1
        cols_u32[0, n] = cap
        cols_u32[1, n] = wire
        cols_u32[2, n] = iface
        cols_u32[3, n] = opt_end - opt
        cols_u32[4, n] = _count_comments(b, opt, opt_end, big) if opt < opt_end else 0
        n += 1
        p += blen
    return n, p, FULL


_COMPILED: dict[str, Callable] = {}


def compiled_walk() -> Callable | None:
    """``walk_blocks`` compiled by numba (imported on first use), or None without numba.

    Importing numba and loading the cached machine code costs about half a second, so
    only inputs big enough to win that back use it; the same functions run as plain
    Python (over a memoryview, whose items are ints) otherwise.
    """
    if "walk" not in _COMPILED:
        try:
            from numba import njit
        except ImportError:  # pragma: no cover - numba is optional here
            return None
        space = dict(globals())
        for name in ("_u16", "_u32", "_count_comments", "walk_blocks"):
            fn = globals()[name]
            copy = types.FunctionType(fn.__code__, space, name, fn.__defaults__)
            copy.__module__, copy.__qualname__ = fn.__module__, fn.__qualname__
            inline = "always" if name in ("_u16", "_u32") else "never"
            space[name] = njit(cache=True, nogil=True, inline=inline)(copy)
        _COMPILED["walk"] = space["walk_blocks"]
    return _COMPILED["walk"]


@dataclass(slots=True)
class Section:
    """One Section Header Block's scope: byte order and its interfaces."""

    big: bool
    first_iface: int  # file-global number of this section's interface 0
    linktypes: list[int] = field(default_factory=list)
    snaplens: list[int] = field(default_factory=list)
    tsresol: list[int] = field(default_factory=list)  # raw if_tsresol byte
    tsoffset: list[int] = field(default_factory=list)  # seconds

    @property
    def order(self) -> str:
        return ">" if self.big else "<"


def is_pcapng(head: bytes) -> bool:
    return len(head) >= 4 and int.from_bytes(head[:4], "little") == SHB


def read_options(body: bytes, order: str) -> tuple[list[tuple[int, bytes]], str | None]:
    """(code, value) pairs of an options area, and a complaint if it is malformed."""
    out: list[tuple[int, bytes]] = []
    q = 0
    while q + 4 <= len(body):
        code, olen = struct.unpack_from(order + "HH", body, q)
        if code == OPT_ENDOFOPT:
            return out, None
        if q + 4 + olen > len(body):
            return out, f"option {code} length {olen} exceeds its block"
        out.append((code, body[q + 4 : q + 4 + olen]))
        q += 4 + ((olen + 3) & ~3)
    return out, None


def check_block(head: bytes, order: str) -> str | None:
    """Why a generic block (type, length ... length) is malformed, or None."""
    blen = struct.unpack_from(order + "I", head, 4)[0]
    if blen < MIN_BLOCK or blen % 4 or blen > MAX_BLOCK:
        return _MESSAGES[BAD_LENGTH].format(blen=blen)
    return None


def parse_shb(block: bytes, first_iface: int) -> tuple[Section, str | None]:
    """A new section from a complete SHB (both length fields present) or a complaint."""
    big = struct.unpack_from("<I", block, 8)[0] != BYTE_ORDER_MAGIC
    section = Section(big, first_iface)
    order = section.order
    if struct.unpack_from(order + "I", block, 8)[0] != BYTE_ORDER_MAGIC:
        return section, "section header has no byte-order magic"
    major, minor = struct.unpack_from(order + "HH", block, 12)
    if major != 1:
        return section, f"unsupported pcapng version {major}.{minor}"
    blen = len(block)
    if blen < SHB_FIXED + 4 or struct.unpack_from(order + "I", block, blen - 4)[0] != blen:
        return section, _MESSAGES[BAD_TRAILER].format(blen=blen)
    _, complaint = read_options(block[SHB_FIXED:-4], order)
    return section, complaint


def add_interface(section: Section, block: bytes) -> str | None:
    """Record an IDB's link type, snaplen and time options; return a complaint or None."""
    order = section.order
    if len(block) < 20:
        return "interface description block too short"
    linktype, _, snaplen = struct.unpack_from(order + "HHI", block, 8)
    options, complaint = read_options(block[16:-4], order)
    resol, offset = 6, 0
    for code, value in options:
        if code == IF_TSRESOL and len(value) >= 1:
            resol = value[0]
        elif code == IF_TSOFFSET and len(value) >= 8:
            offset = struct.unpack_from(order + "q", value)[0]
    section.linktypes.append(linktype)
    section.snaplens.append(snaplen)
    section.tsresol.append(resol)
    section.tsoffset.append(offset)
    return complaint


def units_to_ns(units: np.ndarray, tsresol: int, offset_s: int) -> np.ndarray:
    """Timestamps in interface units (``if_tsresol``) to int64 ns since the epoch."""
    u = units.view(np.uint64)
    exp = tsresol & 0x7F
    if tsresol & 0x80:  # a negative power of two
        whole = (u >> np.uint64(exp)).astype(np.int64) * 1_000_000_000
        rem = u & np.uint64((1 << exp) - 1)
        if exp <= 33:
            part = ((rem * np.uint64(1_000_000_000)) >> np.uint64(exp)).astype(np.int64)
        else:
            part = np.ldexp(rem.astype(np.float64) * 1e9, -exp).astype(np.int64)
        ns = whole + part
    elif exp <= 9:
        ns = u.astype(np.int64) * 10 ** (9 - exp)
    elif exp > 28:  # finer than 1e-28 s: nothing survives the scaling to ns
        ns = np.zeros(u.shape, np.int64)
    else:
        ns = (u // np.uint64(10 ** (exp - 9))).astype(np.int64)
    return ns + offset_s * 1_000_000_000 if offset_s else ns


def first_section(head: bytes, path: str, whole_file: bool) -> None:
    """Validate the leading SHB (CaptureError if unusable) when ``head`` holds all of it."""
    if len(head) < 12:
        raise CaptureError(path, "pcapng section header cut short", "offset 0")
    big = struct.unpack_from("<I", head, 8)[0] != BYTE_ORDER_MAGIC
    blen = struct.unpack_from((">" if big else "<") + "I", head, 4)[0]
    if blen < SHB_FIXED + 4 or blen % 4 or blen > MAX_BLOCK:
        raise CaptureError(path, f"section header block length {blen} is invalid", "offset 0")
    if blen > len(head):
        if whole_file:
            raise CaptureError(path, "pcapng section header cut short", "offset 0")
        return  # a huge SHB: checked while walking instead
    _, complaint = parse_shb(head[:blen], 0)
    if complaint:
        raise CaptureError(path, complaint, "offset 0")


class _Walk:
    """State of one pass over a pcapng window: the section, the batch being filled."""

    def __init__(self, window: ByteWindow, batch_size: int, first_frame: int) -> None:
        self.window = window
        self.batch_size = batch_size
        self.frame = first_frame
        self.section: Section | None = None
        self.next_iface = 0
        self.last_ts = 0
        self.pos = self.start = -window.base
        self.comments: dict[int, str] = {}
        self.snaplens: dict[int, int] = {}  # file-global interface number -> snaplen
        if _pcapngwalk is not None:
            self._walk = _pcapngwalk.walk_pcapng
        else:
            big_input = window.buf.shape[0] >= COMPILE_BYTES or not window.eof
            self._walk = (compiled_walk() if big_input else None) or walk_blocks
        self._new_batch()

    def _new_batch(self) -> None:
        size = self.batch_size
        self.n = 0
        self.i64 = np.empty((3, size), np.int64)
        self.u32 = np.empty((5, size), np.uint32)
        self.ts = np.empty(size, np.int64)
        self.lt = np.empty(size, np.uint16)
        self.iface = np.empty(size, np.uint16)

    def run_kernel(self) -> int:
        sec = self.section
        assert sec is not None
        n0 = self.n
        spb_snaplen = sec.snaplens[0] if sec.snaplens else 0
        buf = self.window.buf
        if self._walk is walk_blocks:  # plain Python: a memoryview yields int items
            buf = memoryview(buf)
        self.n, self.pos, status = self._walk(
            buf, self.pos, sec.big, len(sec.linktypes), spb_snaplen,
            self.i64, self.u32, n0, self.batch_size,
        )  # fmt: skip
        if self.n > n0:
            self._finish_rows(sec, n0, self.n)
        return status

    def _finish_rows(self, sec: Section, n0: int, n: int) -> None:
        local = self.u32[2, n0:n]
        self.iface[n0:n] = local + sec.first_iface
        self.lt[n0:n] = np.asarray(sec.linktypes, np.uint16)[local]
        units, ts = self.i64[1, n0:n], self.ts[n0:n]
        for i in np.unique(local).tolist() if len(sec.linktypes) > 1 else [0]:
            rows = local == i
            ts[rows] = units_to_ns(units[rows], sec.tsresol[i], sec.tsoffset[i])
        has_ts = self.i64[2, n0:n] >= 0
        if not has_ts.all():
            idx = np.where(has_ts, np.arange(n - n0), -1)
            np.maximum.accumulate(idx, out=idx)
            ts[:] = np.where(idx >= 0, ts[idx.clip(0)], self.last_ts)
        self.last_ts = int(ts[-1])
        for row in np.flatnonzero(self.u32[4, n0:n]).tolist():
            self._keep_comments(sec, n0 + row)

    def _keep_comments(self, sec: Section, row: int) -> None:
        opt = int(self.i64[2, row])
        body = bytes(self.window.buf[opt : opt + int(self.u32[3, row])])
        options, _ = read_options(body, sec.order)
        texts = [v.decode("utf-8", "replace") for c, v in options if c == OPT_COMMENT]
        self.comments[self.frame + row] = "\n".join(texts)

    def other_block(self) -> tuple[int, str | None]:
        """Handle the non-packet block at ``pos``: (status, complaint)."""
        buf, pos = self.window.buf, self.pos
        if pos + 12 > buf.shape[0]:
            return NEED_MORE, None
        head = bytes(buf[pos : pos + 12])
        is_shb = struct.unpack_from("<I", head)[0] == SHB
        if is_shb:
            big = struct.unpack_from("<I", head, 8)[0] != BYTE_ORDER_MAGIC
            order = ">" if big else "<"
        elif self.section is None:
            return BAD_LENGTH, "file does not start with a section header block"
        else:
            order = self.section.order
        complaint = check_block(head, order)
        if complaint:
            return BAD_LENGTH, complaint
        blen = struct.unpack_from(order + "I", head, 4)[0]
        if pos + blen > buf.shape[0]:
            return NEED_MORE, None
        block = bytes(buf[pos : pos + blen])
        if struct.unpack_from(order + "I", block, blen - 4)[0] != blen:
            return BAD_TRAILER, _MESSAGES[BAD_TRAILER].format(blen=blen)
        if is_shb:
            self.section, complaint = parse_shb(block, self.next_iface)
        elif struct.unpack_from(order + "I", block)[0] == IDB:
            assert self.section is not None
            complaint = add_interface(self.section, block)
            if self.section.snaplens:
                self.snaplens[self.next_iface] = self.section.snaplens[-1]
            self.next_iface += 1
        if complaint:
            return BAD_BODY, complaint
        self.pos += blen
        return FULL, None

    def take_batch(self) -> RawBatch:
        cols = {
            "offset": self.i64[0], "caplen": self.u32[0], "wirelen": self.u32[1],
            "ts_ns": self.ts, "linktype": self.lt, "iface": self.iface,
        }  # fmt: skip
        batch = make_batch(self.window.buf, self.start, self.pos, cols, self.n, self.frame)
        self.frame += self.n
        self.start = self.pos
        self._new_batch()
        return batch

    def refill(self) -> None:
        shift = self.window.refill(self.start)
        self.i64[0, : self.n] -= shift
        self.pos -= shift
        self.start -= shift


def iter_pcapng(
    window: ByteWindow,
    batch_size: int,
    first_frame: int,
    warnings: list[str],
    comments: dict[int, str],
    snaplens: dict[int, int] | None = None,
) -> Iterator[RawBatch]:
    """Batches of every packet block; problems go to ``warnings``, comments to ``comments``,
    each interface's snaplen to ``snaplens`` (by file-global interface number)."""
    walk = _Walk(window, batch_size, first_frame)
    if snaplens is not None:
        walk.snaplens = snaplens
    while True:
        if walk.section is None:
            status, complaint = OTHER_BLOCK, None
        else:
            status, complaint = walk.run_kernel(), None
        comments.update(walk.comments)
        walk.comments.clear()
        if status == OTHER_BLOCK:
            status, complaint = walk.other_block()
            if status == FULL:  # the kernel stopped short of a full batch: go on filling
                continue
        if status == NEED_MORE and not window.eof:
            walk.refill()
            continue
        if walk.n:
            yield walk.take_batch()
            # the consumer is done with that batch: its pages leave memory before the walk
            # maps the next one's (a batch still viewing them reads them back if needed)
            window.release(walk.start)
        if status == FULL:
            continue
        buf, where = window.buf, window.base + walk.pos
        if status == NEED_MORE and window.error:
            warnings.append(damaged_stream(window, walk.pos, "block"))
            return
        if status == NEED_MORE:
            if walk.pos < buf.shape[0]:
                warnings.append(
                    f"truncated block at offset {where}: "
                    f"{buf.shape[0] - walk.pos} bytes left of an incomplete block"
                )
        else:
            complaint = complaint or _kernel_complaint(buf, walk, status)
            warnings.append(f"offset {where}: {complaint}; rest of file skipped")
        if window.error:
            warnings.append(f"offset {window.base + buf.shape[0]}: {window.error}")
        return


def _kernel_complaint(buf: np.ndarray, walk: _Walk, status: int) -> str:
    assert walk.section is not None
    head = bytes(buf[walk.pos : walk.pos + 12])
    blen = struct.unpack_from(walk.section.order + "I", head, 4)[0]
    return _MESSAGES[status].format(blen=blen)
