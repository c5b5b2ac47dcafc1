"""The scapy backend: scapy's raw pcap/pcapng readers and its dissectors.

Theory of operation: ``RawPcapReader`` (which hands pcapng files to ``RawPcapNgReader``)
yields each record's bytes and metadata; the link type picks the scapy class that dissects
the frame (``conf.l2types``), and ``describe`` walks the dissected layers outermost first,
filling one ``Row`` (see ``rows``). The innermost IP datagram wins; entering a tunnel (GRE,
ERSPAN, VXLAN, Geneve, GTP-U, Teredo, IP in IP) moves the datagram seen so far to the
``outer_*`` columns. The walk stops at ICMP, whose quoted datagram is not the packet's own.

Where scapy gives up it leaves the bytes as ``Raw``: a transport or IP header that did not
dissect is TRUNCATED when too few bytes were captured for it, else MALFORMED. Link types
scapy has no class for are UNSUPPORTED_LINK. scapy's pcapng metadata carries no interface
number, so ``iface`` stays 0. Per-packet Python is inherent here; this backend is for
coverage and cross-checking, not speed (the native backend is).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from portlabel.capture.backends.rows import Row, enter_tunnel, rows_to_batch, widen
from portlabel.capture.batch import DecodeStatus, PacketBatch, TunnelType
from portlabel.errors import CaptureError

# scapy modules whose layers and bindings the walk relies on (contrib ones are not loaded
# by scapy itself).
_SCAPY_MODULES = (
    "scapy.layers.l2", "scapy.layers.inet", "scapy.layers.inet6", "scapy.layers.sctp",
    "scapy.layers.vxlan", "scapy.layers.ppp", "scapy.layers.dot11", "scapy.contrib.gtp",
    "scapy.contrib.geneve", "scapy.contrib.mpls", "scapy.contrib.erspan",
)  # fmt: skip
TEREDO_PORT = 3544
_ERSPAN_GRE_TYPES = (0x88BE, 0x22EB)
# Tunnel headers by scapy class name (GRE is refined by its protocol type in ``_tunnel``).
_TUNNELS = {
    "GRE": TunnelType.GRE,
    "GRE_PPTP": TunnelType.GRE,
    "VXLAN": TunnelType.VXLAN,
    "GENEVE": TunnelType.GENEVE,
    "GTP_U_Header": TunnelType.GTP_U,
}
# Smallest header per IP protocol: a Raw payload shorter than this was cut by the capture.
_MIN_HEADER = {6: 20, 17: 8, 132: 12, 33: 12, 1: 8, 58: 4, 4: 20, 41: 40}
_IP_MIN = {4: 20, 6: 40}


def _load_scapy() -> dict[str, type]:
    import importlib

    for module in _SCAPY_MODULES:
        importlib.import_module(module)
    from scapy.config import conf
    from scapy.layers import inet, inet6, l2
    from scapy.packet import NoPayload, Raw

    classes = {
        "IP": inet.IP,
        "IPv6": inet6.IPv6,
        "TCP": inet.TCP,
        "UDP": inet.UDP,
        "Raw": Raw,
        "NoPayload": NoPayload,
        "Ether": l2.Ether,
        "Dot1Q": l2.Dot1Q,
        "Dot1AD": l2.Dot1AD,
    }
    return {"l2types": conf.l2types, **classes}


_SCAPY: dict[str, object] = {}


def _scapy() -> dict:
    if not _SCAPY:
        _SCAPY.update(_load_scapy())
    return _SCAPY


@contextmanager
def _scapy_warnings(path: str, warnings: list[str]) -> Iterator[None]:
    """Route scapy's logged reader complaints about this file into ``warnings``."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(f"scapy: {record.getMessage()}")

    logger = logging.getLogger("scapy.runtime")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _timestamp_ns(meta, nano: bool) -> int:
    if hasattr(meta, "tsresol"):  # pcapng: a 64-bit count of 1/tsresol seconds
        ticks = ((meta.tshigh or 0) << 32) | (meta.tslow or 0)  # simple packet blocks: none
        return ticks * 1_000_000_000 // meta.tsresol
    return meta.sec * 1_000_000_000 + meta.usec * (1 if nano else 1000)


def _records(path: str) -> Iterator[tuple[bytes, int, int, int, int]]:
    """(frame bytes, ts_ns, caplen, wirelen, linktype) of each record of ``path``."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    try:
        reader = RawPcapReader(path)
    except (Scapy_Exception, OSError, EOFError) as exc:
        raise CaptureError(path, f"scapy cannot read it: {exc}") from exc
    with reader:
        nano = bool(getattr(reader, "nano", False))
        for data, meta in reader:
            linktype = getattr(meta, "linktype", None)
            if linktype is None:
                linktype = reader.linktype
            caplen = getattr(meta, "caplen", len(data))
            yield data, _timestamp_ns(meta, nano), caplen, meta.wirelen, linktype & 0xFFFF


def read_file(
    path: str, batch_size: int, first_frame: int, warnings: list[str]
) -> Iterator[PacketBatch]:
    """Batches of one capture file, dissected by scapy."""
    with _scapy_warnings(path, warnings):
        rows: list[Row] = []
        for data, ts_ns, caplen, wirelen, linktype in _records(path):
            row = describe(data, linktype)
            row.update(
                frame=first_frame + len(rows),
                ts_ns=ts_ns,
                caplen=caplen,
                wirelen=wirelen,
                linktype=linktype,
            )
            rows.append(row)
            if len(rows) == batch_size:
                yield rows_to_batch(rows)
                first_frame += len(rows)
                rows = []
        if rows:
            yield rows_to_batch(rows)


def describe(data: bytes, linktype: int) -> Row:
    """One frame's row, from scapy's dissection of ``data`` as link type ``linktype``."""
    s = _scapy()
    cls = s["l2types"].get(linktype)
    if cls is None:
        return {"status": DecodeStatus.UNSUPPORTED_LINK}
    try:
        packet = cls(data)
    except Exception:  # scapy's dissectors raise anything on hostile input
        return {"status": DecodeStatus.MALFORMED}
    return _Walk(s).run(packet)


class _Walk:
    """State of one walk down a dissected packet's layers."""

    def __init__(self, s: dict) -> None:
        self.s = s
        self.row: Row = {"status": DecodeStatus.NOT_IP}
        self.expect: int | None = None  # IP protocol / version the next layer should be
        self.pending_tunnel: int | None = None

    def run(self, packet) -> Row:
        layer = packet
        while layer is not None and not isinstance(layer, self.s["NoPayload"]):
            if not self.visit(layer):
                break
            layer = layer.payload
        return self.row

    def visit(self, layer) -> bool:
        """Record one layer; False when the walk ends here."""
        s, row, name = self.s, self.row, type(layer).__name__
        if name in ("Ether", "Dot3"):  # 802.11 and cooked headers: no MACs (see module doc)
            self._macs(layer)
        elif isinstance(layer, s["Dot1Q"] | s["Dot1AD"]) and "ip_version" not in row:
            key = "vlan" if "vlan" not in row else "inner_vlan"
            row.setdefault(key, layer.vlan)
        if type(layer) is s["IP"] or type(layer) is s["IPv6"]:
            return self._ip(layer)
        if name.startswith("IPv6ExtHdr"):
            return self._ipv6_extension(layer)
        if name in _TUNNELS:
            self._tunnel(layer, name)
            return True
        if name.startswith("ERSPAN"):
            return True
        if type(layer) is s["TCP"]:
            return self._tcp(layer)
        if type(layer) is s["UDP"]:
            return self._udp(layer)
        if name == "SCTP":
            return self._sctp(layer)
        if name == "ICMP" or name.startswith("ICMPv6"):
            return self._icmp(layer)
        if isinstance(layer, s["Raw"]):
            self._raw(bytes(layer.load))
            return False
        return True

    def _macs(self, layer) -> None:
        if "src_mac" not in self.row:
            # Own fields only: scapy's attribute lookup falls through to the payload's.
            self.row["src_mac"] = int(layer.getfieldval("src").replace(":", ""), 16)
            self.row["dst_mac"] = int(layer.getfieldval("dst").replace(":", ""), 16)

    def _ip(self, ip) -> bool:
        row = self.row
        if not _complete(ip):
            row["status"] = DecodeStatus.TRUNCATED
            return False
        if "ip_version" in row and self.pending_tunnel is None:
            self.pending_tunnel = TunnelType.IP_IN_IP
        if self.pending_tunnel is not None:
            enter_tunnel(row, self.pending_tunnel)
            self.pending_tunnel = None
        row["status"] = DecodeStatus.OK
        v4 = type(ip) is self.s["IP"]  # not ip.version: fuzzed headers lie about it
        row["ip_version"] = 4 if v4 else 6
        row["src_ip"] = widen(_packed(ip.src))
        row["dst_ip"] = widen(_packed(ip.dst))
        if v4:
            row.update(ip_proto=ip.proto, ip_len=ip.len, ip_id=ip.id, frag_offset=ip.frag)
            row["more_frags"] = bool(int(ip.flags) & 1)
            row["ip_rest"] = ip.len - ip.ihl * 4
            self.expect = ip.proto
            if ip.frag:
                row["status"] = DecodeStatus.FRAGMENT
                return False
        else:
            row.update(ip_proto=ip.nh, ip_len=ip.plen + 40)
            row["ip_rest"] = ip.plen
            self.expect = ip.nh
        return True

    def _ipv6_extension(self, ext) -> bool:
        row = self.row
        row["ip_proto"] = self.expect = getattr(ext, "nh", 59)  # 59: no next header
        size = len(ext) - len(ext.payload)
        row["ip_rest"] = int(row.get("ip_rest", 0)) - size
        if type(ext).__name__ == "IPv6ExtHdrFragment":
            row.update(ip_id=ext.id, frag_offset=ext.offset, more_frags=bool(ext.m))
            if ext.offset:
                row["status"] = DecodeStatus.FRAGMENT
                return False
        return True

    def _tunnel(self, layer, name: str) -> None:
        kind = _TUNNELS[name]
        if name == "GRE" and layer.proto in _ERSPAN_GRE_TYPES:
            kind = TunnelType.ERSPAN
        enter_tunnel(self.row, kind)
        self.row["status"] = DecodeStatus.NOT_IP  # until an inner IP header turns up
        self.expect = None

    def _transport_done(self, header_len: int) -> None:
        rest = int(self.row.pop("ip_rest", 0))
        self.row["payload_len"] = max(rest - header_len, 0)
        self.expect = None

    def _tcp(self, tcp) -> bool:
        if not _complete(tcp):
            return self._truncated_transport(tcp)
        self.row.update(sport=tcp.sport, dport=tcp.dport, tcp_seq=tcp.seq, tcp_ack=tcp.ack)
        self.row["tcp_window"] = tcp.window
        self.row["tcp_flags"] = int(tcp.flags) & 0x1FF
        self._transport_done(tcp.dataofs * 4)
        return False

    def _udp(self, udp) -> bool:
        if not _complete(udp):
            return self._truncated_transport(udp)
        self.row.update(sport=udp.sport, dport=udp.dport)
        self._transport_done(8)
        on_port = TEREDO_PORT in (udp.sport, udp.dport)
        if isinstance(udp.payload, self.s["Raw"]) and (on_port or self.row.get("ip_version") == 4):
            inner = _teredo_payload(bytes(udp.payload.load), strict=not on_port)
            if inner is not None:
                self.pending_tunnel = TunnelType.TEREDO
                self.run(self.s["IPv6"](inner))
            return False
        return True  # the payload may be a tunnel scapy dissected (VXLAN, GTP-U, Geneve)

    def _sctp(self, sctp) -> bool:
        if not _complete(sctp):
            return self._truncated_transport(sctp)
        self.row.update(sport=sctp.sport, dport=sctp.dport)
        chunk = sctp.payload
        if chunk is not None and hasattr(chunk, "type"):
            self.row["sctp_chunk"] = chunk.type
        self._transport_done(12)
        return False

    def _truncated_transport(self, layer) -> bool:
        """A transport header scapy dissected only partly: keep its ports if it got them."""
        for name in ("sport", "dport"):
            if name in layer.fields:
                self.row[name] = layer.fields[name]
        self.row["status"] = DecodeStatus.TRUNCATED
        self.row.pop("ip_rest", None)
        return False

    def _icmp(self, icmp) -> bool:
        fields = icmp.fields
        self.row.update(icmp_type=fields.get("type", 0), icmp_code=fields.get("code", 0))
        if fields.get("id") is not None:
            self.row["icmp_id"] = fields["id"]
        self._transport_done(8)
        return False

    def _raw(self, data: bytes) -> None:
        """Bytes scapy did not dissect where a header was expected."""
        row, proto = self.row, self.expect
        if row.get("status") != DecodeStatus.OK or proto is None:
            return
        if proto == 33 and len(data) >= 4:  # DCCP: scapy has no dissector; ports lead it
            row["sport"], row["dport"] = struct.unpack_from("!HH", data)
        if proto in _MIN_HEADER and proto != 33:
            short = len(data) < _MIN_HEADER[proto]
            row["status"] = DecodeStatus.TRUNCATED if short else DecodeStatus.MALFORMED
            if len(data) >= 4 and proto in (6, 17, 132):
                row["sport"], row["dport"] = struct.unpack_from("!HH", data)
        row.pop("ip_rest", None)


def _complete(layer) -> bool:
    """Whether scapy found every byte of the layer's fixed header (it silently leaves the
    fields after the end of the captured bytes unset)."""
    return layer.fields_desc[-1].name in layer.fields


def _packed(address: str) -> bytes:
    import socket

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_pton(family, address)


def _teredo_payload(data: bytes, strict: bool = False) -> bytes | None:
    """The IPv6 packet inside a Teredo UDP payload, after its optional indicators.

    ``strict`` (off port 3544): the IPv6 packet must fill the payload exactly, with a
    plausible next header and a 2001::/32 source or destination."""
    if data[:2] == b"\x00\x01" and len(data) >= 4:  # authentication indicator
        data = data[4 + data[2] + data[3] + 9 :]
    if data[:2] == b"\x00\x00" and len(data) >= 8:  # origin indicator
        data = data[8:]
    if len(data) >= 40 and data[0] >> 4 == 6:
        if strict and not (
            int.from_bytes(data[4:6], "big") + 40 == len(data)
            and data[6] in (0, 6, 17, 43, 44, 50, 51, 58, 59, 60)
            and b"\x20\x01\x00\x00" in (data[8:12], data[24:28])
        ):
            return None
        return data
    return None
