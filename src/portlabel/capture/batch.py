"""Columnar packet batches: the contract between capture sources and everything after them.

This module owns the two batch types that flow through portlabel:

* ``RawBatch``: what a capture *reader* yields. Frame bytes live in one contiguous
  ``uint8`` buffer; each record is a slice ``buf[offset : offset + caplen]``, with its
  timestamp, lengths, link type and interface. Readers (pcap, pcapng, live rings, scapy,
  tshark) only ever produce these.
* ``PacketBatch``: what the *decoder* yields. One numpy array per field, one row per
  packet, no per-packet Python objects. Flow building and labelling read only these.

The column declarations below are the single source of truth: the decoder, the
backends, the writers and the docs all read ``PACKET_COLUMNS``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

NO_VLAN = -1  # vlan / inner_vlan value when the frame carried no 802.1Q tag


class DecodeStatus(IntEnum):
    """Why a packet was (or was not) decoded down to its transport header."""

    OK = 0
    TRUNCATED = 1  # the capture cut the packet inside a header we needed
    MALFORMED = 2  # a header field is impossible (bad IHL, bad length, bad option...)
    UNSUPPORTED_LINK = 3  # the link type carries no IP we know how to find
    NOT_IP = 4  # a supported link layer whose payload is not IP (ARP, LLDP, STP...)
    FRAGMENT = 5  # a non-first IP fragment: addresses known, ports taken from its flow
    NO_NEXT_HEADER = 6  # IPv6 with no next header (a Teredo bubble): no transport, no flow
    BAD_IP_CHECKSUM = 7  # checksums checked, and the IPv4 header's is wrong: no flow (Zeek)


class TunnelType(IntEnum):
    NONE = 0
    GRE = 1
    ERSPAN = 2
    VXLAN = 3
    GENEVE = 4
    GTP_U = 5
    IP_IN_IP = 6  # 4in4, 6in4, 4in6, 6in6
    TEREDO = 7
    AYIYA = 8
    CAPWAP = 9


# name -> (dtype, per-row shape). Order is the documented column order.
PACKET_COLUMNS: dict[str, tuple[str, tuple[int, ...]]] = {
    "frame": ("int64", ()),  # 0-based frame number across all inputs of one run
    "ts_ns": ("int64", ()),  # capture timestamp, nanoseconds since the epoch
    "caplen": ("uint32", ()),
    "wirelen": ("uint32", ()),
    "linktype": ("uint16", ()),  # DLT / LINKTYPE number of the frame
    "iface": ("uint16", ()),  # pcapng interface id (0 for classic pcap)
    "status": ("uint8", ()),  # DecodeStatus
    "src_mac": ("uint64", ()),  # 48-bit MAC in the low bits; 0 when the link has none
    "dst_mac": ("uint64", ()),
    "vlan": ("int32", ()),  # outer 802.1Q/802.1ad VLAN id, NO_VLAN if none
    "inner_vlan": ("int32", ()),  # second VLAN id (QinQ), NO_VLAN if none
    "ip_version": ("uint8", ()),  # 0 (no IP), 4 or 6 -- of the innermost IP header
    "src_ip": ("uint8", (16,)),  # innermost IP; IPv4 stored as ::ffff:a.b.c.d
    "dst_ip": ("uint8", (16,)),
    "ip_proto": ("uint8", ()),  # innermost upper-layer protocol (after v6 ext headers)
    "ip_len": ("uint32", ()),  # innermost IP datagram length from its header (ip bytes)
    "ip_id": ("uint32", ()),  # IPv4 id or IPv6 fragment-header id
    "frag_offset": ("uint16", ()),  # in 8-byte units
    "more_frags": ("bool", ()),
    "sport": ("uint16", ()),  # 0 where the transport has no ports
    "dport": ("uint16", ()),
    "tcp_flags": ("uint16", ()),  # 9 bits: NS CWR ECE URG ACK PSH RST SYN FIN
    "tcp_seq": ("uint32", ()),
    "tcp_ack": ("uint32", ()),
    "tcp_window": ("uint16", ()),  # the advertised window as sent (not scaled)
    "payload_len": ("uint32", ()),  # transport payload bytes (from IP lengths, not caplen)
    "icmp_type": ("uint8", ()),
    "icmp_code": ("uint8", ()),
    "icmp_id": ("uint16", ()),
    "sctp_chunk": ("uint8", ()),  # type of the first SCTP chunk
    "l3_offset": ("uint32", ()),  # where the innermost IP header starts in the frame
    "l4_offset": ("uint32", ()),  # where the innermost transport header starts (0: none)
    "bad_checksum": ("uint8", ()),  # checksums.BAD_* when checked (0: good or unchecked)
    # a fragment of the frame's first IP datagram (outside any tunnel), for reassembly:
    "frag_at": ("uint32", ()),  # 1 + where the fragmented IP header starts (0: none)
    "frag_id": ("uint32", ()),  # its identification
    "frag_pos": ("uint32", ()),  # where this fragment's data goes in the datagram
    "frag_more": ("bool", ()),  # more fragments follow
    "frag_data": ("uint32", ()),  # where its data starts in the frame
    "frag_len": ("uint32", ()),  # how long its data is (from the IP lengths)
    "frag_nh": ("uint8", ()),  # the protocol the datagram carries
    "frag_nh_at": ("uint32", ()),  # IPv6: the byte that names the fragment header
    "tunnel": ("uint8", ()),  # TunnelType of the outermost tunnel, NONE if none
    "outer_src_ip": ("uint8", (16,)),  # the tunnel parent's addresses and ports
    "outer_dst_ip": ("uint8", (16,)),
    "outer_proto": ("uint8", ()),
    "outer_sport": ("uint16", ()),
    "outer_dport": ("uint16", ()),
    "outer_ip_len": ("uint32", ()),  # the outermost IP datagram's length, 0 if no tunnel
    # a tunnel inside a tunnel: the innermost tunnel's type and the datagram carrying it
    # (the packet's direct parent; a third level in between is not kept), else zero
    "inner_tunnel": ("uint8", ()),  # TunnelType of the innermost tunnel, NONE if < 2
    "mid_src_ip": ("uint8", (16,)),
    "mid_dst_ip": ("uint8", (16,)),
    "mid_proto": ("uint8", ()),
    "mid_sport": ("uint16", ()),
    "mid_dport": ("uint16", ()),
    "mid_ip_len": ("uint32", ()),
}


@dataclass(slots=True)
class RawBatch:
    """Frames as a reader delivers them: one buffer, per-record offsets and metadata."""

    buf: np.ndarray  # uint8, the frame bytes of all records back to back (or a file map)
    offset: np.ndarray  # int64, start of each record's bytes in ``buf``
    caplen: np.ndarray  # uint32
    wirelen: np.ndarray  # uint32
    ts_ns: np.ndarray  # int64
    linktype: np.ndarray  # uint16
    iface: np.ndarray  # uint16
    frame: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def take(self, index: np.ndarray) -> RawBatch:
        """Records selected by a boolean mask or an integer index (the buffer is shared)."""
        return RawBatch(
            self.buf, self.offset[index], self.caplen[index], self.wirelen[index],
            self.ts_ns[index], self.linktype[index], self.iface[index], self.frame[index],
        )  # fmt: skip

    def frame_bytes(self, i: int) -> bytes:
        """One record's bytes (for tests and slow paths, not the fast path)."""
        start = int(self.offset[i])
        return bytes(self.buf[start : start + int(self.caplen[i])])


@dataclass(slots=True)
class PacketBatch:
    """Decoded packets, one numpy array per column of ``PACKET_COLUMNS``."""

    frame: np.ndarray
    ts_ns: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray
    linktype: np.ndarray
    iface: np.ndarray
    status: np.ndarray
    src_mac: np.ndarray
    dst_mac: np.ndarray
    vlan: np.ndarray
    inner_vlan: np.ndarray
    ip_version: np.ndarray
    src_ip: np.ndarray
    dst_ip: np.ndarray
    ip_proto: np.ndarray
    ip_len: np.ndarray
    ip_id: np.ndarray
    frag_offset: np.ndarray
    more_frags: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    tcp_flags: np.ndarray
    tcp_seq: np.ndarray
    tcp_ack: np.ndarray
    tcp_window: np.ndarray
    payload_len: np.ndarray
    icmp_type: np.ndarray
    icmp_code: np.ndarray
    icmp_id: np.ndarray
    sctp_chunk: np.ndarray
    l3_offset: np.ndarray
    l4_offset: np.ndarray
    bad_checksum: np.ndarray
    frag_at: np.ndarray
    frag_id: np.ndarray
    frag_pos: np.ndarray
    frag_more: np.ndarray
    frag_data: np.ndarray
    frag_len: np.ndarray
    frag_nh: np.ndarray
    frag_nh_at: np.ndarray
    tunnel: np.ndarray
    outer_src_ip: np.ndarray
    outer_dst_ip: np.ndarray
    outer_proto: np.ndarray
    outer_sport: np.ndarray
    outer_dport: np.ndarray
    outer_ip_len: np.ndarray
    inner_tunnel: np.ndarray
    mid_src_ip: np.ndarray
    mid_dst_ip: np.ndarray
    mid_proto: np.ndarray
    mid_sport: np.ndarray
    mid_dport: np.ndarray
    mid_ip_len: np.ndarray

    @classmethod
    def empty(cls, n: int) -> PacketBatch:
        """A batch of ``n`` rows with every column zeroed (VLANs set to ``NO_VLAN``)."""
        cols = {
            name: np.zeros((n, *shape), dtype=dtype)
            for name, (dtype, shape) in PACKET_COLUMNS.items()
        }
        cols["vlan"].fill(NO_VLAN)
        cols["inner_vlan"].fill(NO_VLAN)
        return cls(**cols)

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def take(self, index: np.ndarray) -> PacketBatch:
        """Rows selected by a boolean mask or an integer index array."""
        return PacketBatch(**{k: v[index] for k, v in self.columns().items()})

    @classmethod
    def concat(cls, batches: list[PacketBatch]) -> PacketBatch:
        if not batches:
            return cls.empty(0)
        names = [f.name for f in fields(cls)]
        return cls(**{k: np.concatenate([getattr(b, k) for b in batches]) for k in names})


def _check_declaration() -> None:
    declared = list(PACKET_COLUMNS)
    attrs = [f.name for f in fields(PacketBatch)]
    if declared != attrs:  # pragma: no cover - a programming error caught at import
        raise AssertionError(f"PacketBatch fields {attrs} differ from PACKET_COLUMNS {declared}")


_check_declaration()
