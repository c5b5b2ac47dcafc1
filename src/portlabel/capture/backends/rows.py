"""Per-packet records for the slow backends, and their conversion to a ``PacketBatch``.

The scapy and tshark backends look at one packet at a time, so they describe each one as a
``dict`` of ``PACKET_COLUMNS`` names (absent names keep ``PacketBatch.empty``'s defaults)
and turn a list of them into columns once per batch. Addresses are given as text or as
packed bytes and stored the decoder's way: 16 bytes, IPv4 as ``::ffff:a.b.c.d``.
"""

from __future__ import annotations

import socket

import numpy as np

from portlabel.capture.batch import PACKET_COLUMNS, DecodeStatus, PacketBatch

Row = dict[str, object]
ADDRESS_COLUMNS = ("src_ip", "dst_ip", "outer_src_ip", "outer_dst_ip", "mid_src_ip", "mid_dst_ip")
_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_NO_ADDRESS = b"\x00" * 16

# The inner-datagram columns a tunnel moves to outer_* (and clears) when it is entered.
INNER_TO_OUTER = {
    "src_ip": "outer_src_ip",
    "dst_ip": "outer_dst_ip",
    "ip_proto": "outer_proto",
    "sport": "outer_sport",
    "dport": "outer_dport",
    "ip_len": "outer_ip_len",
}
INNER_COLUMNS = (
    "ip_version", "src_ip", "dst_ip", "ip_proto", "ip_len", "ip_id", "frag_offset",
    "more_frags", "sport", "dport", "payload_len", "tcp_flags", "tcp_seq", "tcp_ack", "tcp_window",
    "icmp_type", "icmp_code", "icmp_id", "sctp_chunk",
)  # fmt: skip


def packed_address(text: str) -> bytes:
    """16-byte form of an IPv4 or IPv6 address in text (ValueError if it is neither)."""
    try:
        return _V4_MAPPED + socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        return socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        raise ValueError(f"not an IP address: {text!r}") from None


def widen(packed: bytes) -> bytes:
    """4- or 16-byte packed address to the 16-byte column form."""
    return _V4_MAPPED + packed if len(packed) == 4 else packed


def enter_tunnel(row: Row, kind: int) -> None:
    """Record a tunnel: the datagram so far becomes its ``outer_*`` parent (the outermost
    tunnel) or its ``mid_*`` one (a tunnel inside it)."""
    prefix = "mid" if row.get("tunnel") else "outer"
    row["inner_tunnel" if prefix == "mid" else "tunnel"] = kind
    for inner, outer in INNER_TO_OUTER.items():
        if inner in row:
            row[outer.replace("outer", prefix, 1)] = row[inner]
    for name in INNER_COLUMNS:
        row.pop(name, None)


def rows_to_batch(rows: list[Row]) -> PacketBatch:
    """One ``PacketBatch`` holding ``rows`` in order."""
    batch = PacketBatch.empty(len(rows))
    columns = batch.columns()
    for name, (dtype, _shape) in PACKET_COLUMNS.items():
        if name in ADDRESS_COLUMNS:
            packed = b"".join(r.get(name, _NO_ADDRESS) for r in rows)  # type: ignore[misc]
            columns[name][:] = np.frombuffer(packed, dtype=np.uint8).reshape(len(rows), 16)
            continue
        present = [(i, r[name]) for i, r in enumerate(rows) if name in r]
        if present:
            index, values = zip(*present, strict=True)
            columns[name][list(index)] = np.array(values, dtype=dtype)
    # the native decoder's rule for IPv6 with no next header, whatever the dissector said
    bubble = (batch.ip_version == 6) & (batch.ip_proto == 59) & (batch.status == DecodeStatus.OK)
    batch.status[bubble] = DecodeStatus.NO_NEXT_HEADER
    return batch
