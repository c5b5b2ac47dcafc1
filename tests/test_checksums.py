"""Checksum verification against scapy's own checksums (the reference)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from decode_helpers import raw_batch
from portlabel.capture.batch import DecodeStatus
from portlabel.capture.checksums import BAD_TRANSPORT, verify_checksums
from portlabel.capture.decode import decode

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # no route lookups


def checked(*frames: bytes):
    raw = raw_batch([bytes(f) for f in frames], 1)
    batch = decode(raw)
    verify_checksums(raw, batch)
    return batch


def corrupt(frame: bytes, at: int) -> bytes:
    data = bytearray(frame)
    data[at] ^= 0x5A
    return bytes(data)


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=300),
    st.sampled_from(["tcp", "udp"]),
    st.booleans(),
    st.integers(0, 3),  # bytes before the frame in the buffer: odd and even alignments
)
def test_good_packets_pass_and_one_flipped_byte_fails(payload, kind, v6, shift):
    l4 = TCP(sport=1234, dport=80, flags="PA") if kind == "tcp" else UDP(sport=1234, dport=53)
    ip = IPv6(src="2001:db8::1", dst="2001:db8::2") if v6 else IP(src="10.0.0.1", dst="10.0.0.2")
    good = bytes(ETH / ip / l4 / payload)
    ip_len = 40 if v6 else 20
    bad_payload = corrupt(good, len(good) - 1) if payload else corrupt(good, 14 + ip_len + 1)
    batch = checked(b"\0" * shift, good, bad_payload)  # a padding frame shifts the others
    assert batch.bad_checksum.tolist()[1:] == [0, BAD_TRANSPORT]
    assert batch.status.tolist()[1:] == [DecodeStatus.OK, DecodeStatus.OK]


def test_a_bad_ipv4_header_checksum_drops_the_packet():
    frame = bytes(ETH / IP(src="10.0.0.1", dst="10.0.0.2", chksum=0x1234) / UDP() / b"x")
    assert checked(frame).status[0] == DecodeStatus.BAD_IP_CHECKSUM


def test_udp_over_ipv4_without_a_checksum_passes():
    frame = bytes(ETH / IP() / UDP(chksum=0) / b"hello")
    assert checked(frame).bad_checksum[0] == 0


def test_a_packet_not_captured_whole_is_not_judged():
    frame = bytes(ETH / IP() / TCP() / (b"y" * 100))
    raw = raw_batch([frame[:60]], 1)
    raw.wirelen[:] = len(frame)
    batch = decode(raw)
    verify_checksums(raw, batch)
    assert batch.bad_checksum[0] == 0 and batch.status[0] == DecodeStatus.OK
