"""Checksum verification, as Zeek does it when run without ``-C``: optional, after decoding.

``verify_checksums(raw, batch)`` checks, for each decoded packet, the innermost IPv4
header checksum and the innermost TCP or UDP checksum (pseudo-header included), where
the packet was captured whole and is not a fragment. A packet whose IPv4 header
checksum is wrong gets the status ``BAD_IP_CHECKSUM`` (Zeek drops it: no flow); one whose
TCP or UDP checksum is wrong keeps its status and gets ``bad_checksum = BAD_TRANSPORT``
(Zeek keeps the connection but counts nothing of the packet, and writes c/C in its
history). UDP over IPv4 with a zero checksum has none, and passes. Outer headers of
tunnelled packets are not checked.

Theory of operation: the 16-bit ones'-complement sum of a byte range is a difference of
two running sums over the buffer (bytes at even and at odd positions), taken in chunks
of rows whose bytes lie close together, so nothing here loops over packets in Python.
Capture hosts with checksum offloading record bad checksums on the packets they send:
this is off unless asked for (``FlowConfig.check_checksums``).
"""

from __future__ import annotations

import numpy as np

from portlabel.capture.batch import DecodeStatus, PacketBatch, RawBatch

BAD_TRANSPORT = 1  # PacketBatch.bad_checksum: the TCP/UDP checksum is wrong
_SPAN = 1 << 22  # bytes of buffer summed at a time


def verify_checksums(raw: RawBatch, batch: PacketBatch) -> None:
    """Mark ``batch``'s packets with bad checksums (see the module docstring)."""
    ok = batch.status == DecodeStatus.OK
    whole = ok & (batch.caplen == batch.wirelen) & (batch.ip_version != 0)
    whole &= ~batch.more_frags & (batch.frag_offset == 0)
    start = raw.offset.astype(np.int64)
    buf = np.ascontiguousarray(raw.buf, dtype=np.uint8)

    v4 = np.flatnonzero(whole & (batch.ip_version == 4))
    if len(v4):
        l3 = start[v4] + batch.l3_offset[v4]
        ihl = (buf[l3] & 0x0F).astype(np.int64) * 4
        bad = _folded(_range_sums(buf, l3, l3 + ihl)) != 0xFFFF
        batch.status[v4[bad]] = DecodeStatus.BAD_IP_CHECKSUM

    proto = batch.ip_proto
    rows = np.flatnonzero(whole & ((proto == 6) | (proto == 17)) & (batch.l4_offset > 0))
    rows = rows[batch.status[rows] == DecodeStatus.OK]
    if not len(rows):
        return
    header = batch.l4_offset[rows].astype(np.int64) - batch.l3_offset[rows]
    length = batch.ip_len[rows].astype(np.int64) - header  # the transport segment
    l4 = start[rows] + batch.l4_offset[rows]
    known = (length > 0) & (l4 + length <= start[rows] + batch.caplen[rows])
    udp4 = (proto[rows] == 17) & (batch.ip_version[rows] == 4)
    has_sum = np.ones(len(rows), dtype=bool)
    field = np.minimum(l4 + 6, len(buf) - 2)
    has_sum[udp4] = (buf[field[udp4]] | buf[field[udp4] + 1]) != 0  # 0: no UDP checksum
    rows, l4, length = rows[known & has_sum], l4[known & has_sum], length[known & has_sum]
    total = _range_sums(buf, l4, l4 + length) + _pseudo_header(batch, rows, length)
    batch.bad_checksum[rows[_folded(total) != 0xFFFF]] = BAD_TRANSPORT


def _pseudo_header(batch: PacketBatch, rows: np.ndarray, length: np.ndarray) -> np.ndarray:
    words = 0
    for column in (batch.src_ip, batch.dst_ip):
        w = column[rows].astype(np.int64).reshape(len(rows), 8, 2)
        w = (w[:, :, 0] << 8) | w[:, :, 1]
        v4 = batch.ip_version[rows] == 4
        words = words + np.where(v4, w[:, 6] + w[:, 7], w.sum(axis=1))
    return words + batch.ip_proto[rows].astype(np.int64) + (length >> 16) + (length & 0xFFFF)


def _folded(total: np.ndarray) -> np.ndarray:
    for _ in range(4):
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _range_sums(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The sum of the big-endian 16-bit words of each ``buf[start:end]`` (an odd last
    byte is a high byte), before folding."""
    out = np.zeros(len(starts), dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    lo = 0
    while lo < len(order):
        hi = lo + 1
        first = starts[order[lo]]
        # rows whose bytes lie within one span of the first (at least one row)
        hi = max(hi, int(np.searchsorted(starts[order], first + _SPAN, side="left")))
        sel = order[lo:hi]
        a, b = int(starts[sel].min()), int(ends[sel].max())
        chunk = buf[a:b].astype(np.int64)
        at_even = (np.arange(a, b) % 2) == 0
        even = np.concatenate([[0], np.cumsum(np.where(at_even, chunk, 0))])
        odd = np.concatenate([[0], np.cumsum(np.where(at_even, 0, chunk))])
        s, e = starts[sel] - a, ends[sel] - a
        se, so = even[e] - even[s], odd[e] - odd[s]
        out[sel] = np.where(starts[sel] % 2 == 0, (se << 8) + so, (so << 8) + se)
        lo = hi
    return out
