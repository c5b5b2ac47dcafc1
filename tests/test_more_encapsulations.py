"""Tunnels found by content and the less common encapsulations and link types.

Where tshark dissects the frame (GRE in UDP, CAPWAP, Aruba's GRE, Frame Relay, DSA tags),
the decoded row is compared with tshark's view of it (``test_decode_vs_tshark``);
tunnels that only content gives away (GTP-U or AYIYA off their ports, which tshark does
not look for) are checked against the packets scapy built.
"""

from __future__ import annotations

import ipaddress
import shutil
import struct

import pytest
from scapy.contrib.gtp import GTP_U_Header
from scapy.layers.dot11 import Dot11, Dot11QoS
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, Ether
from scapy.utils import PcapWriter

from decode_helpers import raw_batch
from portlabel.capture.batch import DecodeStatus, TunnelType
from portlabel.capture.decode import decode

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
INNER = IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=40000, dport=443, flags="S")
OUTER = IP(src="192.0.2.1", dst="192.0.2.2")


def one(frame: bytes, linktype: int = 1) -> dict:
    batch = decode(raw_batch([bytes(frame)], linktype))
    return {name: col[0] for name, col in batch.columns().items()}


def address(raw) -> str:
    a = ipaddress.IPv6Address(bytes(raw))
    return str(a.ipv4_mapped or a)


def inner_tcp(row) -> tuple:
    return (row["status"], address(row["src_ip"]), address(row["dst_ip"]), row["sport"],
            row["dport"])  # fmt: skip


WANT = (DecodeStatus.OK, "10.1.1.1", "10.2.2.2", 40000, 443)


# -- found by content -------------------------------------------------------------------


@pytest.mark.parametrize("port", [2152, 3386, 40000])
def test_gtp_u_is_found_by_content_on_any_port(port):
    row = one(ETH / OUTER / UDP(sport=port, dport=port) / GTP_U_Header(teid=7) / INNER)
    assert inner_tcp(row) == WANT and row["tunnel"] == TunnelType.GTP_U
    assert (row["outer_sport"], row["outer_dport"]) == (port, port)


def test_a_gtp_look_alike_off_its_port_stays_udp():
    # starts like a G-PDU, but its length does not fill the datagram
    payload = b"\x30\xff" + struct.pack("!H", 500) + b"\0" * 4 + bytes(INNER)
    row = one(ETH / OUTER / UDP(sport=40000, dport=40001) / payload)
    assert row["tunnel"] == TunnelType.NONE and (row["sport"], row["dport"]) == (40000, 40001)


def ayiya(inner) -> bytes:
    # id length 2^0, no signature, auth method 1 / opcode 1 (forward), next header
    return bytes([0x01, 0x00, 0x11, 41 if inner.version == 6 else 4]) + b"\0" * 4 + b"A"


def test_ayiya_is_found_by_content_off_its_port():
    inner = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / b"q"
    row = one(ETH / OUTER / UDP(sport=33000, dport=34000) / (ayiya(inner) + bytes(inner)))
    assert row["tunnel"] == TunnelType.AYIYA and row["status"] == DecodeStatus.OK
    assert (address(row["src_ip"]), row["dport"]) == ("2001:db8::1", 53)


def test_an_ayiya_look_alike_off_its_port_stays_udp():
    inner = IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5353, dport=53) / b"q"
    row = one(ETH / OUTER / UDP(sport=33000, dport=34000) / (ayiya(inner) + bytes(inner) + b"x"))
    assert row["tunnel"] == TunnelType.NONE


# -- against tshark ---------------------------------------------------------------------


def capwap_data(frame: bytes, wlan: bool) -> bytes:
    """A CAPWAP data header (HLEN 2 words), T set and WBID 1 for 802.11."""
    hlen, rid, wbid, t = 2, 1, 1 if wlan else 0, 1 if wlan else 0
    bits = (hlen << 11) | (rid << 6) | (wbid << 1) | t
    return b"\x00" + struct.pack("!H", bits)[0:2] + b"\x00" + b"\0" * 4 + frame


WLAN_DATA = (
    Dot11(type=2, subtype=8, FCfield="to_DS", addr1="02:00:00:00:00:02",
          addr2="02:00:00:00:00:01", addr3="02:00:00:00:00:03")
    / Dot11QoS() / LLC() / SNAP(code=0x0800) / INNER
)  # fmt: skip

FRAMES = {
    "gre-in-udp": (1, ETH / OUTER / UDP(sport=50000, dport=4754) / GRE(proto=0x0800) / INNER),
    "capwap-80211": (1, ETH / OUTER / UDP(sport=50000, dport=5247)
                     / capwap_data(bytes(WLAN_DATA), True)),
    "capwap-8023": (1, ETH / OUTER / UDP(sport=50000, dport=5247)
                    / capwap_data(bytes(ETH / INNER), False)),
    "aruba-gre": (1, ETH / OUTER / GRE(proto=0x8200) / WLAN_DATA),
    "frame-relay-ip": (107, b"\x18\x41\x03\xcc" + bytes(INNER)),
    "frame-relay-snap": (107, b"\x18\x41\x03\x00\x80\x00\x00\x00\x08\x00" + bytes(INNER)),
    "dsa": (284, bytes(ETH)[:12] + b"\xc0\x00\x00\x00" + b"\x08\x00" + bytes(INNER)),
    "edsa": (285, bytes(ETH)[:12] + b"\xda\xda\x00\x00\xc0\x00\x00\x00" + b"\x08\x00"
             + bytes(INNER)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_encapsulations_decode_to_the_inner_packet(name):
    linktype, frame = FRAMES[name]
    assert inner_tcp(one(bytes(frame), linktype)) == WANT


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_encapsulations_agree_with_tshark(tmp_path, name):
    from test_decode_vs_tshark import compare, run_tshark, tshark_view

    linktype, frame = FRAMES[name]
    path = tmp_path / f"{name}.pcap"
    with PcapWriter(str(path), linktype=linktype) as out:
        out.write(bytes(frame))
    # CAPWAP's 802.11 frames carry their frame control in network order (tshark 4.0
    # assumes some access points' swapped one by default)
    rows = run_tshark(path, "-o", "capwap.swap_fc:FALSE")
    if not rows:
        pytest.skip(f"tshark 4.0 cannot read link type {linktype}")
    (row,) = rows
    view = tshark_view(row)
    if view.get("ip") is None:
        pytest.skip(f"tshark 4.0 does not dissect {name} to IP ({row['frame.protocols']})")
    batch = decode(raw_batch([bytes(frame)], linktype))
    assert compare(view, batch, 0) is None, (row["frame.protocols"], view)


def test_a_capwap_port_datagram_without_a_capwap_header_stays_udp():
    # zeros from port 5247: a header length of 0 is no CAPWAP header (was: malformed,
    # and the packet in no flow at all)
    row = one(ETH / OUTER / UDP(sport=5247, dport=8080) / (b"\0" * 18))
    assert row["status"] == DecodeStatus.OK and row["tunnel"] == TunnelType.NONE
    assert (row["sport"], row["dport"]) == (5247, 8080)


@pytest.mark.parametrize("port", [6081, 4754])  # Geneve, GRE in UDP: entered, no IP inside
def test_a_udp_tunnel_packet_with_no_ip_inside_counts_in_its_tunnel_flow(port, tmp_path):
    import portlabel
    from portlabel.labelling.api import run_metadata

    path = tmp_path / "t.pcap"
    with PcapWriter(str(path)) as out:
        out.write(ETH / OUTER / UDP(sport=port, dport=8080) / (b"\0" * 18))
    flows = portlabel.label(str(path))
    assert flows.num_rows == 1 and flows.column("orig_pkts").to_pylist() == [1]
    assert flows.column("id.orig_p").to_pylist() == [port]
    assert run_metadata(flows)["not_in_flows"] == {}  # in the tunnel's flow, not left out
