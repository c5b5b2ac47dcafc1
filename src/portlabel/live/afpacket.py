"""The native live backend: Linux AF_PACKET sockets with a TPACKET_V3 memory-mapped ring.

Theory of operation: the kernel writes each packet the socket accepts (after the attached
BPF filter) into a ring of fixed-size *blocks* shared with us through ``mmap``; a block is
handed to user space (its status gets ``TP_STATUS_USER``) when full or after the retire
timeout. One ``poll`` wakes us when any ring has a block ready; a numba kernel then walks
every ready block in order and fills the per-record columns, putting back the 802.1Q tag
the kernel moved into the packet header (as libpcap does). No per-packet Python object
exists.

With one interface the batch *is* the ring: its records point at the frames where the
kernel wrote them (the tag goes back in place, in headroom reserved with
``PACKET_RESERVE``), and the blocks return to the kernel at the next read, once nothing
views the ring any more (its reference count says so). Copying ~700-byte frames that the
kernel has just written on the other CPU cost ~0.65 us per packet; reading only the
headers costs a fraction of that. With several interfaces, or while an earlier batch is
still held, frames are copied back to back into a batch buffer and blocks go back at once.

The kernel's own counters (``PACKET_STATISTICS``: packets that passed the filter, packets
dropped because the ring was full) are read on demand; reading resets them, so they are
accumulated here.
"""

from __future__ import annotations

import mmap
import select
import socket
import struct
import sys
import time

import numpy as np

from portlabel.capture.batch import RawBatch
from portlabel.capture.bpf import Program, attach_filter
from portlabel.errors import CaptureError
from portlabel.live.stats import KernelCounters

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a slow path

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        return lambda f: f


SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_RESERVE = 12
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
ETH_P_ALL = 3

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100

TPACKET_REQ3 = struct.Struct("=7I")  # block_size, block_nr, frame_size, frame_nr, tov, priv, feat
PACKET_MREQ = struct.Struct("=iHH8s")
TPACKET_STATS_V3 = struct.Struct("=III")  # packets (incl. drops), drops, freeze_q_cnt

# struct tpacket_block_desc (version, offset_to_priv, then tpacket_hdr_v1): field offsets
BLOCK_STATUS, BLOCK_NUM_PKTS, BLOCK_FIRST_PKT, BLOCK_LEN = 8, 12, 16, 20
# struct tpacket3_hdr field offsets
PKT_NEXT, PKT_SEC, PKT_NSEC, PKT_SNAPLEN, PKT_LEN, PKT_STATUS, PKT_MAC = 0, 4, 8, 12, 16, 20, 24
PKT_VLAN_TCI, PKT_VLAN_TPID = 32, 36

# ARPHRD_* of the interface -> (DLT of the frames the ring holds)
ARPHRD_TO_DLT = {1: 1, 772: 1, 65534: 101}
FRAME_SIZE = 2048  # V3 packets are variable-size; this only sizes the kernel's bookkeeping
NAP = 0.002  # s between looks at a ring while we hold blocks (a busy block fills in ~5 ms)
VLAN_ROOM = 4  # headroom before each frame, so the 802.1Q tag can go back in place


@njit(cache=True, nogil=True, inline="always")
def _u32(b, p):
    return (
        np.int64(b[p])
        | (np.int64(b[p + 1]) << 8)
        | (np.int64(b[p + 2]) << 16)
        | (np.int64(b[p + 3]) << 24)
    )


@njit(cache=True, nogil=True, inline="always")
def _u16(b, p):
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@njit(cache=True, nogil=True, inline="always")
def _record(ring, p, n, dst, out, in_place, offset, caplen, wirelen, ts_ns):
    """Record ``n``: the frame of the packet header at ``p``, written at ``dst`` in
    ``out`` (``in_place``: ``out`` is ``ring`` and ``dst`` the frame's own place less the
    tag's room); returns the bytes it takes there."""
    snap = _u32(ring, p + PKT_SNAPLEN)
    length = _u32(ring, p + PKT_LEN)
    status = _u32(ring, p + PKT_STATUS)
    src = p + _u16(ring, p + PKT_MAC)
    ts_ns[n] = _u32(ring, p + PKT_SEC) * 1_000_000_000 + _u32(ring, p + PKT_NSEC)
    if (status & TP_STATUS_VLAN_VALID) != 0 and snap >= 12:
        tpid = np.int64(ETH_P_8021Q)
        if (status & TP_STATUS_VLAN_TPID_VALID) != 0:
            tpid = _u16(ring, p + PKT_VLAN_TPID)
        tci = _u32(ring, p + PKT_VLAN_TCI) & 0xFFFF
        for k in range(12):  # ascending: safe when dst overlaps src from below
            out[dst + k] = ring[src + k]
        out[dst + 12] = np.uint8(tpid >> 8)
        out[dst + 13] = np.uint8(tpid & 0xFF)
        out[dst + 14] = np.uint8(tci >> 8)
        out[dst + 15] = np.uint8(tci & 0xFF)
        if not in_place:
            out[dst + 16 : dst + snap + 4] = ring[src + 12 : src + snap]
        snap += 4
        length += 4
        offset[n] = dst
    elif in_place:
        offset[n] = src  # in place, untagged: nothing moves
    else:
        out[dst : dst + snap] = ring[src : src + snap]
        offset[n] = dst
    caplen[n] = snap
    wirelen[n] = length
    return snap


@njit(cache=True, nogil=True)
def drain_blocks(
    ring, block_size, n_blocks, block, out, pos, offset, caplen, wirelen, ts_ns, n, max_blocks=-1
):
    """Copy the frames of ready blocks from ``block`` on into ``out`` and the columns,
    returning each block to the kernel.

    Stops at the first block the kernel still owns or that would not fit, or after
    ``max_blocks`` (default: the whole ring; less while blocks further on are held, so as
    not to walk round into them). Returns (records, bytes used in ``out``, next block,
    blocks consumed)."""
    done = 0
    limit = n_blocks if max_blocks < 0 else max_blocks
    while done < limit:
        base = block * block_size
        if (_u32(ring, base + BLOCK_STATUS) & TP_STATUS_USER) == 0:
            break
        npk = _u32(ring, base + BLOCK_NUM_PKTS)
        need = _u32(ring, base + BLOCK_LEN) + 4 * npk
        if n + npk > offset.shape[0] or pos + need > out.shape[0]:
            break
        p = base + _u32(ring, base + BLOCK_FIRST_PKT)
        for _ in range(npk):
            pos += _record(ring, p, n, pos, out, False, offset, caplen, wirelen, ts_ns)
            n += 1
            p += _u32(ring, p + PKT_NEXT)
        ring[base + BLOCK_STATUS : base + BLOCK_STATUS + 4] = TP_STATUS_KERNEL
        block = (block + 1) % n_blocks
        done += 1
    return n, pos, block, done


@njit(cache=True, nogil=True)
def index_blocks(ring, block_size, n_blocks, block, max_blocks, offset, caplen, wirelen, ts_ns, n):
    """Fill the columns for the frames of ready blocks from ``block`` on, pointing into
    ``ring`` (tags restored in place); the blocks stay ours. Needs ``VLAN_ROOM`` bytes of
    reserved headroom before each frame. Returns (records, next block, blocks taken)."""
    done = 0
    while done < max_blocks:
        base = block * block_size
        if (_u32(ring, base + BLOCK_STATUS) & TP_STATUS_USER) == 0:
            break
        npk = _u32(ring, base + BLOCK_NUM_PKTS)
        if n + npk > offset.shape[0]:
            break
        p = base + _u32(ring, base + BLOCK_FIRST_PKT)
        for _ in range(npk):
            dst = p + _u16(ring, p + PKT_MAC) - VLAN_ROOM
            _record(ring, p, n, dst, ring, True, offset, caplen, wirelen, ts_ns)
            n += 1
            p += _u32(ring, p + PKT_NEXT)
        block = (block + 1) % n_blocks
        done += 1
    return n, block, done


def interface_dlt(iface: str) -> int:
    """The DLT of frames captured on ``iface`` (from its ARPHRD type in sysfs)."""
    try:
        with open(f"/sys/class/net/{iface}/type") as f:
            arphrd = int(f.read().strip())
    except (OSError, ValueError):
        arphrd = 1
    if arphrd not in ARPHRD_TO_DLT:
        raise CaptureError(iface, f"link type ARPHRD {arphrd} not supported by the native backend")
    return ARPHRD_TO_DLT[arphrd]


def check_interface(iface: str) -> int:
    """The interface index; CaptureError naming the interface when it does not exist."""
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise CaptureError(iface, "no such network interface") from None


def open_packet_socket(iface: str) -> socket.socket:
    """An unbound AF_PACKET socket (receives nothing yet); CaptureError if not permitted."""
    check_interface(iface)
    try:
        return socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise CaptureError(iface, "capture not permitted (needs root or CAP_NET_RAW)") from None


class PacketRing:
    """One interface's TPACKET_V3 ring."""

    def __init__(
        self,
        iface: str,
        program: Program | None = None,
        ring_mb: int = 256,
        block_kb: int = 1024,
        retire_ms: int = 20,
        promisc: bool = True,
    ) -> None:
        self.iface = iface
        self.dlt = interface_dlt(iface)
        self.block_size = block_kb * 1024
        self.n_blocks = max(2, ring_mb * 1024 // block_kb)
        self.counters = KernelCounters()
        self.sock = open_packet_socket(iface)
        try:
            self._setup(program, retire_ms, promisc)
        except OSError as exc:
            self.sock.close()
            raise CaptureError(iface, f"cannot open capture ring: {exc.strerror or exc}") from exc
        self.block = 0
        self.held = 0  # blocks from ``held_from`` on are ours until nothing views the ring
        self.held_from = 0
        self.froze = False  # the kernel found the ring full at least once

    def _setup(self, program: Program | None, retire_ms: int, promisc: bool) -> None:
        s = self.sock
        s.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        s.setsockopt(SOL_PACKET, PACKET_RESERVE, VLAN_ROOM)
        frames = self.block_size // FRAME_SIZE * self.n_blocks
        req = TPACKET_REQ3.pack(self.block_size, self.n_blocks, FRAME_SIZE, frames, retire_ms, 0, 0)
        s.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.map = mmap.mmap(s.fileno(), self.block_size * self.n_blocks, mmap.MAP_SHARED)
        self.ring = np.frombuffer(self.map, dtype=np.uint8)
        if program:
            attach_filter(s, program)
        s.bind((self.iface, ETH_P_ALL))
        if promisc:
            mreq = PACKET_MREQ.pack(socket.if_nametoindex(self.iface), PACKET_MR_PROMISC, 0, b"")
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_counters(self) -> KernelCounters:
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS_V3.size)
        packets, drops, freezes = TPACKET_STATS_V3.unpack(raw)
        self.counters.add(packets, drops)
        self.froze = self.froze or freezes > 0 or drops > 0
        return self.counters

    def viewed(self) -> bool:
        """Whether any array (a batch, or anything made from one) still views the ring."""
        return sys.getrefcount(self.ring) > 2  # this attribute, the call's argument

    def release(self) -> None:
        """Give the held blocks back to the kernel, oldest first."""
        words = self.ring.view(np.uint32)
        for i in range(self.held):
            block = (self.held_from + i) % self.n_blocks
            words[(block * self.block_size + BLOCK_STATUS) // 4] = TP_STATUS_KERNEL
        self.held = 0

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.read_counters()
        del self.ring
        try:
            self.map.close()
        except BufferError:
            pass  # a batch still views the ring; the mapping goes with its last reference
        self.sock.close()


class NativeSource:
    """Live ``RawBatch``es from one TPACKET_V3 ring per interface.

    Batches are gathered up to ``min_batch`` packets, waiting at most ``linger`` seconds
    after the first packet: the flow engine's cost per packet grows steeply as batches
    shrink (on the 1 M benchmark capture: ~5 us at 1 k packets, ~1.2 us at 16 k), and a
    busy link hands over one block (~1.4 k packets) at a time. A batch read in place holds
    at most a quarter of the ring.
    """

    name = "native"

    def __init__(
        self,
        ifaces: list[str],
        program_for,
        ring_mb: int = 256,
        batch_packets: int = 65536,
        promisc: bool = True,
        min_batch: int = 32768,
        linger: float = 0.1,
    ) -> None:
        self.ifaces = list(ifaces)
        self.rings: list[PacketRing] = []
        try:
            for iface in ifaces:
                dlt = interface_dlt(iface)
                program = program_for(dlt)
                self.rings.append(PacketRing(iface, program, ring_mb, promisc=promisc))
        except BaseException:
            self.close()
            raise
        self._poll = select.poll()
        for ring in self.rings:
            self._poll.register(ring.fileno(), select.POLLIN | select.POLLERR)
        block = max(r.block_size for r in self.rings)
        self.min_batch = min(min_batch, batch_packets // 2)
        self.linger = linger
        self._out_bytes = block * 40 + batch_packets * 4
        self._outs: list[np.ndarray] = []
        self._cols = _columns(batch_packets)
        self._iface = np.zeros(batch_packets, np.uint16)
        self._linktype = np.full(batch_packets, self.rings[0].dlt, np.uint16)
        _warm_up(self._cols)

    def read(self, timeout: float) -> RawBatch | None:
        """Frames of every ready block (waiting up to ``timeout`` s for one, then up to
        ``linger`` s for ``min_batch`` packets); None if none."""
        for ring in self.rings:
            if ring.held and not ring.viewed():
                ring.release()
        in_place = len(self.rings) == 1 and self.rings[0].held == 0 and not self._froze()
        out = self.rings[0].ring if in_place else self._free_buffer()
        n, pos = self._take(in_place, out, 0, 0)
        if n == 0 and timeout > 0:
            self._poll.poll(int(timeout * 1000))
            n, pos = self._take(in_place, out, 0, 0)
        if n == 0:
            return None
        deadline = time.monotonic() + self.linger
        while n < self.min_batch and self._has_room(in_place, out, n, pos):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if any(ring.held for ring in self.rings):
                # poll says "ready" while any block is ours, held or not: nap instead
                time.sleep(min(left, NAP))
            else:
                self._poll.poll(max(1, int(left * 1000)))
            n, pos = self._take(in_place, out, n, pos)
        return self._batch(out if in_place else out[:pos], n)

    def _froze(self) -> bool:
        """Whether the kernel ever found the ring full. Reading in place is only for a ring
        that keeps up: a full ring freezes on held blocks, and the in-place bookkeeping is
        not proven for that case, so from then on frames are copied (as libpcap does)."""
        ring = self.rings[0]
        if not ring.froze:
            ring.read_counters()
        return ring.froze

    def _take(self, in_place: bool, out: np.ndarray, n: int, pos: int) -> tuple[int, int]:
        """Records of the blocks ready now, after the ``n`` (``pos`` bytes) already taken."""
        cols = self._cols
        if in_place:
            ring = self.rings[0]
            if ring.held == 0:
                ring.held_from = ring.block
            n, ring.block, got = index_blocks(
                ring.ring, ring.block_size, ring.n_blocks, ring.block,
                max(1, ring.n_blocks // 4) - ring.held,
                cols["offset"], cols["caplen"], cols["wirelen"], cols["ts_ns"], n,
            )  # fmt: skip
            ring.held += got
            return n, pos
        for i, ring in enumerate(self.rings):
            first = n
            n, pos, ring.block, _ = drain_blocks(
                ring.ring, ring.block_size, ring.n_blocks, ring.block, out, pos,
                cols["offset"], cols["caplen"], cols["wirelen"], cols["ts_ns"], n,
                ring.n_blocks - ring.held,
            )  # fmt: skip
            self._iface[first:n] = i
            self._linktype[first:n] = ring.dlt
        return n, pos

    def _has_room(self, in_place: bool, out: np.ndarray, n: int, pos: int) -> bool:
        """Whether one more block surely fits (a block holds at most block // 96 packets)."""
        block = max(r.block_size for r in self.rings)
        if n + block // 96 + 1 > self._cols["offset"].shape[0]:
            return False
        if in_place:
            return self.rings[0].held < self.rings[0].n_blocks // 4
        return pos + block + 4 * (block // 96 + 1) <= out.shape[0]

    def _free_buffer(self) -> np.ndarray:
        """A copy buffer no earlier batch still views."""
        for out in self._outs:
            if sys.getrefcount(out) <= 3:  # the list, this loop's name, the call's argument
                return out
        out = np.empty(self._out_bytes, dtype=np.uint8)
        self._outs = [*self._outs[-1:], out]  # an older buffer lives on with its views
        return out

    def _batch(self, buf: np.ndarray, n: int) -> RawBatch:
        cols = self._cols
        return RawBatch(
            buf=buf,
            offset=cols["offset"][:n].copy(),
            caplen=cols["caplen"][:n].copy(),
            wirelen=cols["wirelen"][:n].copy(),
            ts_ns=cols["ts_ns"][:n].copy(),
            linktype=self._linktype[:n].copy(),
            iface=self._iface[:n].copy(),
            frame=np.zeros(n, dtype=np.int64),
        )

    def counters(self) -> list[KernelCounters]:
        return [ring.read_counters() for ring in self.rings]

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
        self.rings = []


def _warm_up(cols: dict[str, np.ndarray]) -> None:
    """Load both kernels now (numba's cache), not on the first busy batch."""
    ring = np.zeros(64, dtype=np.uint8)  # one block the kernel owns: nothing is read
    c = [cols[k][:1] for k in ("offset", "caplen", "wirelen", "ts_ns")]
    drain_blocks(ring, 64, 1, 0, np.zeros(64, np.uint8), 0, *c, 0)
    drain_blocks(ring, 64, 1, 0, np.zeros(64, np.uint8), 0, *c, 0, 1)
    index_blocks(ring, 64, 1, 0, 1, *c, 0)


def _columns(n: int) -> dict[str, np.ndarray]:
    return {
        "offset": np.empty(n, np.int64),
        "caplen": np.empty(n, np.uint32),
        "wirelen": np.empty(n, np.uint32),
        "ts_ns": np.empty(n, np.int64),
    }
