"""Unit tests of the packet decoder, one layer at a time, on frames built by scapy.

Expected values come from the scapy packet that produced the bytes (its own field values),
never from the decoder. Property tests feed garbage and truncations of valid frames and
check that every row gets a status and nothing raises.
"""

from __future__ import annotations

import ipaddress
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import ARP, LLC, SNAP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Dot3, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.sctp import SCTP, SCTPChunkInit
from scapy.layers.vxlan import VXLAN

from decode_helpers import raw_batch
from portlabel.capture.batch import NO_VLAN, DecodeStatus, TunnelType
from portlabel.capture.decode import decode
from portlabel.capture.transport import UDP_PORT_TO_TUNNEL

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
V4_A, V4_B, V4_C, V4_D = "192.0.2.1", "198.51.100.2", "203.0.113.3", "203.0.113.4"
V6_A, V6_B = "2001:db8::1", "2001:db8::2"


def one(frame: bytes, linktype: int = 1):
    batch = decode(raw_batch([bytes(frame)], linktype))
    return {name: col[0] for name, col in batch.columns().items()}


def addr(row_bytes) -> str:
    a = ipaddress.IPv6Address(bytes(row_bytes))
    return str(a.ipv4_mapped or a)


def mac(value: int) -> str:
    return ":".join(f"{b:02x}" for b in int(value).to_bytes(6, "big"))


def tcp_packet(**ip):
    return (
        IP(src=V4_A, dst=V4_B, id=777, **ip)
        / TCP(sport=40000, dport=443, seq=123456789, ack=987654321, flags="PA")
        / (b"x" * 11)
    )


def assert_tcp(row, payload=11):
    assert row["status"] == DecodeStatus.OK
    assert (addr(row["src_ip"]), addr(row["dst_ip"])) == (V4_A, V4_B)
    assert (row["ip_version"], row["ip_proto"]) == (4, 6)
    assert (row["sport"], row["dport"]) == (40000, 443)
    assert (row["tcp_seq"], row["tcp_ack"]) == (123456789, 987654321)
    assert row["tcp_flags"] == 0x18
    assert row["payload_len"] == payload


# --- link layers ---------------------------------------------------------------------
def test_ethernet_ipv4_tcp():
    pkt = Ether(src=MAC_A, dst=MAC_B) / tcp_packet()
    row = one(bytes(pkt))
    assert_tcp(row)
    assert (mac(row["src_mac"]), mac(row["dst_mac"])) == (MAC_A, MAC_B)
    assert row["ip_len"] == Ether(bytes(pkt))[IP].len and row["ip_id"] == 777
    assert row["vlan"] == NO_VLAN and row["tunnel"] == TunnelType.NONE


def test_ipv4_is_stored_ipv4_mapped():
    row = one(bytes(Ether() / tcp_packet()))
    assert bytes(row["src_ip"]) == b"\0" * 10 + b"\xff\xff" + bytes([192, 0, 2, 1])


def test_vlan_and_qinq():
    row = one(bytes(Ether() / Dot1Q(vlan=42) / tcp_packet()))
    assert_tcp(row)
    assert (row["vlan"], row["inner_vlan"]) == (42, NO_VLAN)
    row = one(bytes(Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=200) / tcp_packet()))
    assert_tcp(row)
    assert (row["vlan"], row["inner_vlan"]) == (100, 200)


def test_mpls_stack():
    pkt = Ether() / MPLS(label=16, s=0) / MPLS(label=17, s=1) / tcp_packet()
    assert_tcp(one(bytes(pkt)))


def test_pppoe_session():
    pkt = Ether() / PPPoE(sessionid=5) / PPP(proto=0x0021) / tcp_packet()
    assert_tcp(one(bytes(pkt)))


def test_llc_snap():
    assert_tcp(one(bytes(Dot3() / LLC() / SNAP(code=0x0800) / tcp_packet())))


def test_not_ip_and_unsupported_link():
    assert one(bytes(Ether() / ARP()))["status"] == DecodeStatus.NOT_IP
    assert one(b"\x00" * 40, linktype=231)["status"] == DecodeStatus.UNSUPPORTED_LINK


@pytest.mark.parametrize(
    "frame, linktype",
    [
        (bytes(CookedLinux(proto=0x0800)) + bytes(tcp_packet()), 113),
        (bytes(CookedLinuxV2(proto=0x0800)) + bytes(tcp_packet()), 276),
        (bytes(tcp_packet()), 101),
        (bytes(tcp_packet()), 228),
        (bytes(tcp_packet()), 12),
        (struct.pack("<I", 2) + bytes(tcp_packet()), 0),  # little-endian host
        (struct.pack(">I", 2) + bytes(tcp_packet()), 0),  # big-endian host
        (struct.pack(">I", 2) + bytes(tcp_packet()), 108),
        (b"\xff\x03\x00\x21" + bytes(tcp_packet()), 9),
        (b"\x21" + bytes(tcp_packet()), 9),  # protocol-field compression
        (b"\x0f\x00\x08\x00" + bytes(tcp_packet()), 104),
        (b"\x0f\x00\x08\x00" + bytes(tcp_packet()), 9),  # Cisco HDLC on a PPP link
        (struct.pack("<BBHI", 0, 0, 8, 1) + bytes(Ether() / tcp_packet()), 192),
        (bytes(40) + b"\x08\x00\x00\x00" + bytes(tcp_packet()), 242),
        (b"\x01\x02" + bytes(22) + bytes(tcp_packet()), 226),
        (
            bytes(Ether() / tcp_packet())[:12] + b"\x2c\x00\x00\x80\x08\x00" + bytes(tcp_packet()),
            281,
        ),
    ],
)
def test_link_types(frame, linktype):
    assert_tcp(one(frame, linktype))


def test_ipv6_raw_link():
    row = one(bytes(IPv6(src=V6_A, dst=V6_B) / UDP(sport=5, dport=53)), 229)
    assert (addr(row["src_ip"]), row["ip_version"], row["dport"]) == (V6_A, 6, 53)


def test_nflog():
    inner = bytes(tcp_packet())
    tlvs = struct.pack("<HH", 8, 1) + b"\0" * 4
    tlvs += struct.pack("<HH", 4 + len(inner), 9) + inner
    assert_tcp(one(b"\x02\x00\x00\x2a" + tlvs, 239))


def test_pktap():
    header = struct.pack("<II", 108, 1) + bytes(100)
    assert_tcp(one(header + bytes(Ether() / tcp_packet()), 258))


@pytest.mark.parametrize("qos", [False, True])
def test_radiotap_80211_data(qos):
    dot11 = Dot11(type=2, subtype=8 if qos else 0, FCfield=0x01, addr1=MAC_B, addr2=MAC_A)
    dot11.addr3 = "02:00:00:00:00:0c"  # to-DS: addr3 is the destination
    head = RadioTap() / dot11 / Dot11QoS() if qos else RadioTap() / dot11
    row = one(bytes(head / LLC() / SNAP(code=0x0800) / tcp_packet()), 127)
    assert_tcp(row)
    assert mac(row["src_mac"]) == MAC_A and mac(row["dst_mac"]) == "02:00:00:00:00:0c"


# --- network layer -------------------------------------------------------------------
def test_ipv4_options():
    pkt = Ether() / tcp_packet(options=[b"\x07\x07\x04" + bytes(4), b"\x00"])
    assert pkt[IP].ihl is None or True
    row = one(bytes(pkt))
    assert_tcp(row)
    assert row["ip_len"] == len(bytes(pkt)) - 14


def test_ipv6_extension_chain():
    pkt = Ether() / IPv6(src=V6_A, dst=V6_B) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting()
    pkt = pkt / IPv6ExtHdrDestOpt() / TCP(sport=1, dport=2, flags="S") / b"abc"
    row = one(bytes(pkt))
    assert row["status"] == DecodeStatus.OK
    assert (row["ip_proto"], row["sport"], row["dport"], row["payload_len"]) == (6, 1, 2, 3)
    assert row["ip_len"] == len(bytes(pkt)) - 14


def test_ipv4_fragments():
    pkt = IP(src=V4_A, dst=V4_B, id=4242) / UDP(sport=1000, dport=53) / (b"q" * 3000)
    frags = [bytes(Ether() / f) for f in fragment(pkt, fragsize=1000)]
    batch = decode(raw_batch(frags, 1))
    assert batch.status[0] == DecodeStatus.OK and batch.dport[0] == 53
    later = batch.take(np.arange(1, len(frags)))
    assert (later.status == DecodeStatus.FRAGMENT).all()
    assert (later.ip_id == 4242).all() and (later.frag_offset > 0).all()
    assert list(batch.more_frags) == [True] * (len(frags) - 1) + [False]
    assert (later.sport == 0).all() and (later.ip_proto == 17).all()


def test_ipv6_fragments():
    pkt = IPv6(src=V6_A, dst=V6_B) / IPv6ExtHdrFragment(id=99) / UDP(sport=7, dport=53)
    frags = [bytes(Ether() / f) for f in fragment6(pkt / (b"z" * 3000), 1280)]
    batch = decode(raw_batch(frags, 1))
    assert batch.status[0] == DecodeStatus.OK and batch.sport[0] == 7
    assert (batch.status[1:] == DecodeStatus.FRAGMENT).all()
    assert (batch.ip_id == 99).all() and (batch.ip_proto == 17).all()


def test_malformed_ihl():
    frame = bytearray(bytes(Ether() / tcp_packet()))
    frame[14] = 0x43  # IHL 3
    assert one(bytes(frame))["status"] == DecodeStatus.MALFORMED


# --- transport layer -----------------------------------------------------------------
def test_sctp_first_chunk():
    row = one(bytes(Ether() / IP() / SCTP(sport=2905, dport=2906) / SCTPChunkInit()))
    assert (row["sport"], row["dport"], row["sctp_chunk"]) == (2905, 2906, 1)


def test_dccp_ports():
    dccp = struct.pack(">HHBBH", 5001, 5002, 4, 0, 0) + bytes(8) + b"data"
    row = one(bytes(Ether() / IP(proto=33) / dccp))
    assert (row["ip_proto"], row["sport"], row["dport"], row["payload_len"]) == (33, 5001, 5002, 4)


def test_icmp_echo_and_icmpv6_echo():
    row = one(bytes(Ether() / IP() / ICMP(type=8, id=0x1234)))
    assert (row["icmp_type"], row["icmp_code"], row["icmp_id"]) == (8, 0, 0x1234)
    row = one(bytes(Ether() / IPv6() / ICMPv6EchoRequest(id=77)))
    assert (row["ip_proto"], row["icmp_type"], row["icmp_id"]) == (58, 128, 77)


def test_tcp_ns_flag():
    assert one(bytes(Ether() / IP() / TCP(flags=0x1C2)))["tcp_flags"] == 0x1C2


# --- tunnels -------------------------------------------------------------------------
def outer_ip(proto_layer):
    return Ether() / IP(src=V4_C, dst=V4_D) / proto_layer


@pytest.mark.parametrize(
    "frame, tunnel",
    [
        (outer_ip(GRE() / tcp_packet()), TunnelType.GRE),
        (
            outer_ip(GRE(key_present=1, seqnum_present=1, key=5, sequence_number=9) / tcp_packet()),
            TunnelType.GRE,
        ),
        (outer_ip(GRE(proto=0x6558) / Ether() / tcp_packet()), TunnelType.GRE),
        (
            outer_ip(UDP(sport=1, dport=4789) / VXLAN(vni=7) / Ether() / tcp_packet()),
            TunnelType.VXLAN,
        ),
        (
            outer_ip(UDP(sport=1, dport=6081) / GENEVE(proto=0x6558) / Ether() / tcp_packet()),
            TunnelType.GENEVE,
        ),
        (
            outer_ip(UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1) / tcp_packet()),
            TunnelType.GTP_U,
        ),
        (
            outer_ip(
                UDP(sport=2152, dport=2152)
                / GTP_U_Header(teid=1, gtp_type=255, E=1, next_ex=0x85)
                / b"\x01\x00\x01\x00"
                / tcp_packet()
            ),
            TunnelType.GTP_U,
        ),
        (outer_ip(tcp_packet()), TunnelType.IP_IN_IP),
        (
            outer_ip(
                GRE(proto=0x88BE, seqnum_present=1) / (b"\x10" + bytes(7)) / Ether() / tcp_packet()
            ),
            TunnelType.ERSPAN,
        ),
        (
            outer_ip(GRE(proto=0x22EB) / (b"\x20" + bytes(11)) / Ether() / tcp_packet()),
            TunnelType.ERSPAN,
        ),
    ],
)
def test_tunnels_to_ipv4(frame, tunnel):
    row = one(bytes(frame))
    assert_tcp(row)
    assert row["tunnel"] == tunnel
    assert (addr(row["outer_src_ip"]), addr(row["outer_dst_ip"])) == (V4_C, V4_D)
    assert row["outer_proto"] == bytes(frame)[14 + 9]
    assert row["outer_ip_len"] == len(bytes(frame[IP]))  # the whole outer datagram
    assert row["src_mac"] != 0


def inner_v6():
    return IPv6(src=V6_A, dst=V6_B) / UDP(sport=5353, dport=53) / b"abcd"


@pytest.mark.parametrize(
    "frame, tunnel",
    [
        (outer_ip(inner_v6()), TunnelType.IP_IN_IP),  # 6in4
        (Ether() / IPv6() / inner_v6(), TunnelType.IP_IN_IP),  # 6in6
        (outer_ip(UDP(sport=3544, dport=40000) / inner_v6()), TunnelType.TEREDO),
        (
            outer_ip(UDP(sport=3544, dport=40000) / (b"\x00\x00" + bytes(6)) / inner_v6()),
            TunnelType.TEREDO,
        ),  # origin indicator
        (
            outer_ip(UDP(sport=3544, dport=4) / (b"\x00\x01\x00\x00" + bytes(9)) / inner_v6()),
            TunnelType.TEREDO,
        ),  # authentication indicator (no id, no auth value)
        (
            outer_ip(
                UDP(sport=9, dport=5072) / bytes([0x00, 0x00, 0x01, 41]) / bytes(5) / inner_v6()
            ),
            TunnelType.AYIYA,
        ),
    ],
)
def test_tunnels_to_ipv6(frame, tunnel):
    row = one(bytes(frame))
    assert row["status"] == DecodeStatus.OK
    assert (addr(row["src_ip"]), addr(row["dst_ip"])) == (V6_A, V6_B)
    assert (row["ip_version"], row["sport"], row["dport"], row["payload_len"]) == (6, 5353, 53, 4)
    assert row["tunnel"] == tunnel
    assert row["outer_ip_len"] == len(bytes(frame.payload))


def test_4in6_and_outer_ports():
    row = one(bytes(Ether() / IPv6(src=V6_A, dst=V6_B) / tcp_packet()))
    assert_tcp(row)
    assert addr(row["outer_src_ip"]) == V6_A and row["outer_proto"] == 4
    assert row["outer_ip_len"] == 40 + len(bytes(tcp_packet()))
    row = one(bytes(outer_ip(UDP(sport=11, dport=4789) / VXLAN() / Ether() / tcp_packet())))
    assert (row["outer_sport"], row["outer_dport"], row["outer_proto"]) == (11, 4789, 17)


def test_outer_ip_len_is_the_outermost_datagram_and_zero_without_tunnel():
    inner = outer_ip(UDP(dport=4789) / VXLAN() / Ether() / tcp_packet())
    frame = Ether() / IP(src=V4_A, dst=V4_B) / GRE(proto=0x6558) / inner
    row = one(bytes(frame))
    assert_tcp(row)
    assert row["tunnel"] == TunnelType.GRE and addr(row["outer_src_ip"]) == V4_A
    assert row["outer_ip_len"] == Ether(bytes(frame))[IP].len == len(bytes(frame)) - 14
    assert one(bytes(Ether() / tcp_packet()))["outer_ip_len"] == 0


def test_udp_on_tunnel_port_that_is_not_a_tunnel_stays_udp():
    row = one(bytes(outer_ip(UDP(sport=3544, dport=1) / b"hello, not teredo at all")))
    assert row["status"] == DecodeStatus.OK and row["tunnel"] == TunnelType.NONE
    assert (row["sport"], row["dport"], addr(row["src_ip"])) == (3544, 1, V4_C)


TEREDO_CLIENT = "2001:0:4137:9e50:8000:f12a:b9c8:2815"  # 2001::/32, as RFC 4380 assigns
TEREDO_ORIGIN = b"\x00\x00" + bytes(6)
TEREDO_AUTH = b"\x00\x01\x00\x00" + bytes(9)
# the UDP ports the decoder reads a tunnel on, from its own table (so that a port added
# there, such as GRE in UDP's 4754, is left out here too)
NOT_TUNNEL_PORTS = st.integers(1, 65535).filter(lambda p: not UDP_PORT_TO_TUNNEL[p])


@pytest.mark.parametrize("indicators", [b"", TEREDO_ORIGIN, TEREDO_AUTH + TEREDO_ORIGIN])
def test_teredo_found_by_content_off_port_3544(indicators):
    inner = IPv6(src=TEREDO_CLIENT, dst=V6_B) / UDP(sport=5353, dport=53) / b"abcd"
    frame = outer_ip(UDP(sport=3797, dport=32900) / indicators / inner)
    row = one(bytes(frame))
    assert row["status"] == DecodeStatus.OK and row["tunnel"] == TunnelType.TEREDO
    assert (addr(row["src_ip"]), addr(row["dst_ip"])) == (TEREDO_CLIENT, V6_B)
    assert (row["ip_version"], row["sport"], row["dport"], row["payload_len"]) == (6, 5353, 53, 4)
    assert (row["outer_sport"], row["outer_dport"], row["outer_proto"]) == (3797, 32900, 17)
    assert row["outer_ip_len"] == len(bytes(frame.payload))


def test_a_tunnel_inside_a_tunnel_records_both_levels():
    """Teredo inside GTP-U: ``tunnel``/``outer_*`` are the outermost tunnel, and
    ``inner_tunnel``/``mid_*`` the datagram that carries the innermost one."""
    teredo = IP(src=V4_A, dst=V4_B) / UDP(sport=52298, dport=3544)
    inner = IPv6(src=TEREDO_CLIENT, dst=V6_B) / UDP(sport=5353, dport=53) / b"abcd"
    gtp = UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1) / teredo / inner
    frame = outer_ip(gtp)
    row = one(bytes(frame))
    assert (row["status"], row["tunnel"], row["inner_tunnel"]) == (
        DecodeStatus.OK,
        TunnelType.GTP_U,
        TunnelType.TEREDO,
    )
    assert (addr(row["outer_src_ip"]), row["outer_sport"], row["outer_proto"]) == (V4_C, 2152, 17)
    assert (addr(row["mid_src_ip"]), addr(row["mid_dst_ip"])) == (V4_A, V4_B)
    assert (row["mid_sport"], row["mid_dport"], row["mid_proto"]) == (52298, 3544, 17)
    assert row["mid_ip_len"] == len(bytes(teredo / inner))
    assert (addr(row["src_ip"]), row["sport"], row["dport"]) == (TEREDO_CLIENT, 5353, 53)
    plain = one(bytes(outer_ip(UDP(sport=2152, dport=2152) / GTP_U_Header(teid=1) / teredo)))
    assert plain["inner_tunnel"] == TunnelType.NONE and plain["mid_proto"] == 0


def test_teredo_bubble_found_by_content():
    frame = outer_ip(UDP(sport=32900, dport=3797) / IPv6(src=TEREDO_CLIENT, dst="fe80::1", nh=59))
    row = one(bytes(frame))
    # found and decoded, but a bubble carries nothing: no flow of its own, as in Zeek
    assert row["status"] == DecodeStatus.NO_NEXT_HEADER and row["tunnel"] == TunnelType.TEREDO
    assert (row["ip_proto"], row["ip_len"], row["payload_len"]) == (59, 40, 0)


@pytest.mark.parametrize(
    "payload",
    [
        IPv6(src=V6_A, dst=V6_B) / UDP() / b"abcd",  # no Teredo address on either side
        IPv6(src=TEREDO_CLIENT, dst=V6_B, plen=12) / UDP() / b"abcd" / b"\x00",  # 1 byte left
        IPv6(src=V6_A, dst=TEREDO_CLIENT, nh=1) / (b"\x08" * 8),  # ICMPv4 in IPv6
        IPv6(src=TEREDO_CLIENT, dst=V6_B, nh=17, plen=100) / UDP() / b"abcd",  # beyond the end
        b"\x60" + bytes(60),  # a zero source and destination
    ],
)
def test_udp_off_port_3544_that_is_not_teredo_stays_udp(payload):
    row = one(bytes(outer_ip(UDP(sport=3797, dport=32900) / payload)))
    assert row["status"] == DecodeStatus.OK and row["tunnel"] == TunnelType.NONE
    assert (row["sport"], row["dport"], addr(row["src_ip"]), row["ip_proto"]) == (
        3797,
        32900,
        V4_C,
        17,
    )


def test_teredo_by_content_rules_are_stricter_than_on_port_3544():
    loose = IPv6(src=V6_A, dst=V6_B) / UDP(sport=5353, dport=53) / b"abcd" / b"pad"
    assert one(bytes(outer_ip(UDP(sport=3544, dport=1) / loose)))["tunnel"] == TunnelType.TEREDO
    assert one(bytes(outer_ip(UDP(sport=1, dport=2) / loose)))["tunnel"] == TunnelType.NONE


def test_teredo_by_content_needs_ipv4_and_the_whole_ipv6_header():
    teredo = UDP(sport=3797, dport=32900) / IPv6(src=TEREDO_CLIENT, dst=V6_B) / UDP() / b"ab"
    row = one(bytes(Ether() / IPv6(src=V6_A, dst=V6_B) / teredo))
    assert row["tunnel"] == TunnelType.NONE and row["sport"] == 3797
    cut = bytes(outer_ip(teredo))[: 14 + 20 + 8 + 39]
    row = one(cut)
    assert row["tunnel"] == TunnelType.NONE and row["status"] == DecodeStatus.OK
    assert (row["sport"], row["dport"]) == (3797, 32900)


_TEREDO_NEXT_HEADERS = {0, 6, 17, 43, 44, 50, 51, 58, 59, 60}


@settings(max_examples=300, deadline=None)
@given(
    sport=NOT_TUNNEL_PORTS,
    dport=NOT_TUNNEL_PORTS,
    length_error=st.sampled_from([0, 0, 0, -1, 1, 8]),
    next_header=st.one_of(st.sampled_from(sorted(_TEREDO_NEXT_HEADERS)), st.integers(0, 255)),
    teredo_src=st.booleans(),
    teredo_dst=st.booleans(),
    addresses=st.binary(min_size=32, max_size=32),
    rest=st.binary(max_size=64),
)
def test_teredo_is_found_by_content_exactly_when_the_ipv6_header_fits_the_rules(
    sport, dport, length_error, next_header, teredo_src, teredo_dst, addresses, rest
):
    src, dst = bytearray(addresses[:16]), bytearray(addresses[16:])
    if teredo_src:
        src[:4] = b"\x20\x01\x00\x00"
    if teredo_dst:
        dst[:4] = b"\x20\x01\x00\x00"
    plen = max(0, len(rest) + length_error)
    header = struct.pack("!IHBB", 0x6000_0000, plen, next_header, 64) + bytes(src + dst)
    frame = outer_ip(UDP(sport=sport, dport=dport) / (header + rest))
    row = one(bytes(frame))
    is_teredo = lambda a: a[:4] == b"\x20\x01\x00\x00"  # noqa: E731
    expected = (
        plen == len(rest)
        and next_header in _TEREDO_NEXT_HEADERS
        and (is_teredo(src) or is_teredo(dst))
    )
    assert (row["tunnel"] == TunnelType.TEREDO) == expected
    if not expected:
        assert row["status"] == DecodeStatus.OK and (row["sport"], row["dport"]) == (sport, dport)


def test_tunnel_to_non_ip_keeps_outer():
    row = one(bytes(outer_ip(UDP(dport=4789) / VXLAN() / Ether() / ARP())))
    assert row["status"] == DecodeStatus.NOT_IP and row["tunnel"] == TunnelType.VXLAN
    assert addr(row["outer_src_ip"]) == V4_C


# --- robustness ----------------------------------------------------------------------
TEMPLATES = [
    (bytes(Ether() / Dot1Q() / tcp_packet()), 1),
    (bytes(Ether() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / UDP()), 1),
    (
        bytes(
            outer_ip(
                UDP(dport=2152)
                / GTP_U_Header(gtp_type=255, E=1, next_ex=0x85)
                / b"\x01\x00\x01\x00"
                / tcp_packet()
            )
        ),
        1,
    ),
    (bytes(outer_ip(UDP(dport=3544) / (b"\x00\x01\x00\x00" + bytes(9)) / inner_v6())), 1),
    (bytes(outer_ip(GRE(proto=0x22EB) / (b"\x20" + bytes(11)) / Ether() / tcp_packet())), 1),
    (bytes(RadioTap() / Dot11(type=2) / LLC() / SNAP(code=0x0800) / tcp_packet()), 127),
    (bytes(Ether() / MPLS(s=0) / MPLS(s=1) / tcp_packet()), 1),
]
LINKTYPES = [
    0,
    1,
    9,
    10,
    12,
    101,
    104,
    105,
    108,
    113,
    127,
    192,
    204,
    226,
    228,
    229,
    239,
    242,
    258,
    274,
    276,
    281,
    231,
]


def check_rows(frames: list[bytes], linktypes: list[int]) -> None:
    batch = decode(raw_batch(frames, linktypes))
    assert len(batch) == len(frames)
    assert set(batch.status.tolist()) <= {int(s) for s in DecodeStatus}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=120), st.sampled_from(LINKTYPES)), max_size=20))
def test_garbage_never_raises(frames):
    check_rows([f for f, _ in frames], [lt for _, lt in frames])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_truncations_and_byte_flips_never_raise(template, data):
    frame, linktype = template
    cut = data.draw(st.integers(0, len(frame)))
    flips = data.draw(
        st.lists(st.tuples(st.integers(0, len(frame) - 1), st.integers(0, 255)), max_size=4)
    )
    mutated = bytearray(frame)
    for at, value in flips:
        mutated[at] = value
    check_rows([bytes(mutated[:cut]), bytes(mutated)], [linktype, linktype])


def test_every_truncation_of_tcp_frame_is_truncated():
    frame = bytes(Ether() / tcp_packet())
    frames = [frame[:cut] for cut in range(len(frame) - 11)]  # cut before the payload
    batch = decode(raw_batch(frames, 1))
    assert (batch.status == DecodeStatus.TRUNCATED).all()
    has_ports = np.array([len(f) >= 14 + 20 + 4 for f in frames])
    assert (batch.dport[has_ports] == 443).all() and (batch.dport[~has_ports] == 0).all()


def test_chunked_decoding_matches_whole_batch():
    frames = [f for f, _ in TEMPLATES] * 3 + [b"", b"\x00"]
    linktypes = [lt for _, lt in TEMPLATES] * 3 + [1, 1]
    whole = decode(raw_batch(frames, linktypes))
    chunked = decode(raw_batch(frames, linktypes), chunk=4)
    for name, column in whole.columns().items():
        assert np.array_equal(column, getattr(chunked, name)), name


@pytest.mark.parametrize("src", ["88:e0:f3:c8:bf:f0", "ff:ff:ff:ff:ff:fe", "00:00:00:00:00:01"])
def test_mac_addresses_with_a_high_first_octet_are_not_sign_extended(src):
    row = one(bytes(Ether(src=src, dst="fe:dc:ba:98:76:54") / IP() / TCP()))
    assert mac(int(row["src_mac"])) == src
    assert mac(int(row["dst_mac"])) == "fe:dc:ba:98:76:54"
    assert int(row["src_mac"]) < 2**48
