"""IP fragment reassembly (IPv4 and IPv6), as Zeek does it before it keys connections.

The decoder notes every fragment of a frame's first IP datagram (``PacketBatch.frag_*``:
where its header and data are, its id, offset and more-fragments bit). A ``Reassembler``
holds the fragments of each datagram (keyed by addresses, protocol and id) until all of
its bytes are there, then builds the whole frame -- the first fragment's link and IP
headers, with the lengths, offset and (IPv4) checksum set for the whole datagram and
(IPv6) the fragment header taken out, followed by every fragment's data in order -- and
decodes it: the datagram becomes one packet, at the place and time of the fragment that
completed it, with ports, TCP flags and any tunnel inside it, as one unfragmented packet
would. Its fragments leave the batch.

What cannot be put together is counted, never silently lost: fragments of datagrams
still incomplete after ``timeout`` seconds (or at the end of input, ``finish``) are
``incomplete``; datagrams whose fragments overlap are reassembled with the bytes that
lie first in the datagram and counted in ``overlaps``. Fragments inside a tunnel are not reassembled
(each stays a packet of its flow, ``flows.packets.FragmentPorts``).

Fragments are few, so this is the one place that loops over packets in Python; a batch
without fragments costs one comparison per row.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from portlabel.capture.batch import DecodeStatus, PacketBatch, RawBatch

DEFAULT_TIMEOUT_S = 60.0
MAX_PENDING = 1 << 16  # datagrams waiting for fragments; the oldest go first past this


@dataclass
class _Datagram:
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> data
    end: int | None = None  # total data length, once the last fragment is seen
    head: bytes | None = None  # the first fragment's frame up to its data
    head_info: tuple = ()  # (ip_at, nh_at, nh, version) of the first fragment
    first_ts: int = 0
    count: int = 0
    overlap: bool = False
    short: bool = False  # a fragment was captured shorter than its IP length

    def add(self, pos: int, data: bytes, more: bool) -> None:
        self.count += 1
        for at, piece in self.pieces.items():
            if at < pos + len(data) and pos < at + len(piece):
                self.overlap = True
        if pos not in self.pieces or len(data) > len(self.pieces[pos]):
            self.pieces.setdefault(pos, data)
        if not more:
            self.end = pos + len(data)

    def data(self) -> bytes | None:
        """The datagram's data if every byte is there, else None."""
        if self.end is None or self.head is None or self.short:
            return None
        out = bytearray(self.end)
        covered = 0
        for at in sorted(self.pieces):
            if at > covered:  # a hole
                return None
            piece = self.pieces[at]
            stop = min(at + len(piece), self.end)
            if stop > covered:  # an overlap keeps the bytes already placed
                out[covered:stop] = piece[covered - at : stop - at]
                covered = stop
        return bytes(out) if covered >= self.end else None


class Reassembler:
    """Fragments of frames' first IP datagrams, put back together across batches."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S, max_pending: int = MAX_PENDING):
        self.timeout_ns = int(timeout * 1e9)
        self.max_pending = max_pending
        self._pending: dict[bytes, _Datagram] = {}
        self.fragments = 0  # fragments that went into reassembled datagrams
        self.datagrams = 0  # datagrams reassembled
        self.incomplete = 0  # fragments of datagrams never completed
        self.overlaps = 0  # reassembled datagrams whose fragments overlapped

    def reassemble(self, raw: RawBatch, batch: PacketBatch, decode) -> PacketBatch:
        """``batch`` with its fragments replaced by the datagrams they complete
        (``decode``: the decoder, for the rebuilt frames)."""
        if not self._pending and not batch.frag_at.any():
            return batch
        usable = (batch.status == DecodeStatus.OK) | (batch.status == DecodeStatus.FRAGMENT)
        rows = np.flatnonzero((batch.frag_at > 0) & usable)
        built: list[tuple[int, bytes]] = []  # (row of the completing fragment, frame)
        for i in rows.tolist():
            frame = self._add(raw, batch, i)
            if frame is not None:
                built.append((i, frame))
        if len(batch):
            self._expire(int(batch.ts_ns.max()))
        keep = np.ones(len(batch), dtype=bool)
        keep[rows] = False
        if not built:
            return batch.take(keep)
        whole = decode(_frames_batch(raw, [i for i, _ in built], [f for _, f in built]))
        at = np.array([i for i, _ in built], dtype=np.int64)
        keep[at] = True
        out = batch.take(keep)
        where = np.searchsorted(np.flatnonzero(keep), at)
        for name, column in whole.columns().items():
            getattr(out, name)[where] = column
        return out

    def hand_over(self) -> dict:
        """The datagrams still waiting for fragments, taken out (for ``take_over`` by the
        reassembler of the capture's next part, which may complete them)."""
        pending, self._pending = self._pending, {}
        return pending

    def take_over(self, pending: dict) -> None:
        """Wait for the rest of datagrams another reassembler handed over."""
        self._pending.update(pending)

    def finish(self) -> int:
        """End of input: what is still pending is incomplete; how many fragments."""
        left = sum(d.count for d in self._pending.values())
        self.incomplete += left
        self._pending.clear()
        return left

    def _add(self, raw: RawBatch, batch: PacketBatch, i: int) -> bytes | None:
        start = int(raw.offset[i])
        ip_at = start + int(batch.frag_at[i]) - 1
        # the fragmented header's own addresses: a first fragment's columns hold those of
        # whatever it carries (a tunnel's inner packet)
        v4 = raw.buf[ip_at] >> 4 == 4
        addresses = raw.buf[ip_at + 12 : ip_at + 20] if v4 else raw.buf[ip_at + 8 : ip_at + 40]
        key = addresses.tobytes() + struct.pack(
            "!BIH", int(batch.frag_nh[i]), int(batch.frag_id[i]), int(batch.linktype[i])
        )
        gram = self._pending.get(key)
        if gram is None:
            if len(self._pending) >= self.max_pending:
                self._drop(next(iter(self._pending)))
            gram = self._pending[key] = _Datagram(first_ts=int(batch.ts_ns[i]))
        data_at, length = int(batch.frag_data[i]), int(batch.frag_len[i])
        captured = raw.buf[start + data_at : start + min(data_at + length, int(raw.caplen[i]))]
        gram.short |= len(captured) < length
        pos = int(batch.frag_pos[i])
        if pos == 0 and gram.head is None:
            gram.head = raw.buf[start : start + data_at].tobytes()
            gram.head_info = (int(batch.frag_at[i]) - 1, int(batch.frag_nh_at[i]),
                              int(batch.frag_nh[i]), 4 if v4 else 6)  # fmt: skip
        gram.add(pos, captured.tobytes(), bool(batch.frag_more[i]))
        data = gram.data()
        if data is None:
            return None
        del self._pending[key]
        self.datagrams += 1
        self.fragments += gram.count
        self.overlaps += gram.overlap
        return _whole_frame(gram, data)

    def _expire(self, now: int) -> None:
        old = [k for k, d in self._pending.items() if now - d.first_ts > self.timeout_ns]
        for key in old:
            self._drop(key)

    def _drop(self, key: bytes) -> None:
        self.incomplete += self._pending.pop(key).count


def _whole_frame(gram: _Datagram, data: bytes) -> bytes:
    """The first fragment's headers, set for the whole datagram, then all its data."""
    head = bytearray(gram.head)
    ip_at, nh_at, nh, version = gram.head_info
    if version == 4:
        ihl = len(head) - ip_at
        struct.pack_into("!H", head, ip_at + 2, min(ihl + len(data), 0xFFFF))
        struct.pack_into("!H", head, ip_at + 6, 0)  # no more fragments, offset 0
        struct.pack_into("!H", head, ip_at + 10, 0)
        struct.pack_into("!H", head, ip_at + 10, _ip_checksum(head[ip_at:]))
    else:
        del head[-8:]  # the fragment header
        head[nh_at] = nh
        struct.pack_into("!H", head, ip_at + 4, min(len(head) - ip_at - 40 + len(data), 0xFFFF))
    return bytes(head) + data


def _ip_checksum(header: bytes | bytearray) -> int:
    words = np.frombuffer(bytes(header[: len(header) // 2 * 2]), dtype=">u2").astype(np.int64)
    total = int(words.sum())
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frames_batch(raw: RawBatch, rows: list[int], frames: list[bytes]) -> RawBatch:
    """A RawBatch of rebuilt frames, with the metadata of the fragments that completed them."""
    at = np.array(rows, dtype=np.int64)
    lengths = np.array([len(f) for f in frames], dtype=np.int64)
    return RawBatch(
        buf=np.frombuffer(b"".join(frames), dtype=np.uint8),
        offset=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        caplen=lengths.astype(np.uint32),
        wirelen=lengths.astype(np.uint32),
        ts_ns=raw.ts_ns[at],
        linktype=raw.linktype[at],
        iface=raw.iface[at],
        frame=raw.frame[at],
    )
