"""The compiled fast path for plain frames gives exactly what the vectorised decoder gives.

Every column of every row is compared between ``decode(raw)`` (fast path first, passes on
the rest) and ``decode(raw, compiled=False)`` (passes only): on every bundled capture, on
structured random frames (plain ones, then cut and with flipped bytes) and on garbage.
Other tests check that plain frames really take the fast path, so the comparisons are not
vacuous, and that the unusual ones are left to the passes.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from decode_helpers import raw_batch, read_capture
from portlabel.capture import plaindecode
from portlabel.capture.decode import _with_metadata, decode
from portlabel.errors import CaptureError

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
CAPTURE_FILES = sorted(
    p for p in CAPTURES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))
)
needs_kernel = pytest.mark.skipif(
    not plaindecode.available(), reason="built without a C compiler: no compiled fast path"
)


def assert_same_decoding(raw) -> None:
    fast, passes = decode(raw), decode(raw, compiled=False)
    for name, column in passes.columns().items():
        got = getattr(fast, name)
        if not np.array_equal(got, column):
            rows = np.flatnonzero((got != column).reshape(len(column), -1).any(axis=1))
            raise AssertionError(f"column {name} differs in rows {rows[:10].tolist()}")


def deferred(frames: list[bytes], linktype: int = 1) -> list[int]:
    raw = raw_batch(frames, linktype)
    return plaindecode.decode_plain(raw, _with_metadata(raw)).tolist()


def test_the_kernels_are_built_where_they_are_required():
    # CI sets PORTLABEL_REQUIRE_KERNELS: a failed build there must not pass unnoticed.
    from portlabel import kernels

    if not os.environ.get("PORTLABEL_REQUIRE_KERNELS"):
        pytest.skip("PORTLABEL_REQUIRE_KERNELS is not set")
    assert kernels.missing() == []
    assert plaindecode.available()


def test_every_listed_kernel_has_its_source():
    from portlabel import kernels

    src = Path(__file__).resolve().parents[1] / "src"
    for name in kernels.KERNELS:  # setup.py builds exactly these, from these files
        assert (src / (name.replace(".", "/") + ".c")).is_file(), name


@needs_kernel
@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_bundled_captures_decode_the_same(path):
    try:
        raw = read_capture(path)
    except CaptureError as exc:  # the corpus keeps some broken files on purpose
        pytest.skip(f"not readable: {exc}")
    assert_same_decoding(raw)


PLAIN = [
    bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=443) / b"x"),
    bytes(Ether() / Dot1Q(vlan=5) / IP(options=b"\x01" * 4) / TCP(options=[("MSS", 1460)])),
    bytes(Ether() / Dot1AD(vlan=7) / Dot1Q(vlan=8) / IPv6() / UDP(sport=5353, dport=53) / b"q"),
    bytes(Ether() / IP() / ICMP(type=8, id=77) / b"ping"),
    bytes(Ether() / IPv6() / ICMPv6EchoRequest(id=9)),
    bytes(Ether() / IP(proto=50) / b"esp-bytes"),
    bytes(IP() / UDP(sport=1, dport=2) / (b"\x60" + bytes(40))),  # raw IP, not Teredo-like
]
NOT_PLAIN = [
    bytes(Ether() / IP() / TCP())[:40],  # truncated inside TCP
    bytes(Ether() / IP(frag=10) / b"later fragment"),
    bytes(Ether() / IPv6() / IPv6ExtHdrHopByHop() / TCP()),
    bytes(Ether() / IP() / UDP(dport=4789) / bytes(16)),  # VXLAN's port
    bytes(Ether() / IP() / UDP(sport=1, dport=2) / (b"\x60" + bytes(3) + b"\x00\x00" + bytes(34))),
    bytes(Ether(type=0x0806) / bytes(28)),  # ARP
    bytes(Ether() / IP(ihl=4) / TCP()),  # malformed
]


@needs_kernel
def test_plain_frames_take_the_fast_path():
    assert deferred(PLAIN[:-1]) == []
    assert deferred(PLAIN[-1:], linktype=101) == []


@needs_kernel
def test_unusual_frames_are_left_to_the_passes():
    assert deferred(NOT_PLAIN) == list(range(len(NOT_PLAIN)))


@needs_kernel
def test_records_outside_the_buffer_are_deferred_not_read():
    raw = raw_batch(PLAIN[:2], 1)
    raw.offset[1] = len(raw.buf) - 4  # its caplen runs past the end of the buffer
    assert plaindecode.decode_plain(raw, _with_metadata(raw)).tolist() == [1]


def st_any_length(data) -> int:
    return data.draw(st.integers(0, 2000))


def _ip_header(data, version: int, proto: int, payload_len: int) -> bytes:
    if version == 4:
        ihl = data.draw(st.sampled_from([5, 5, 6, 15, 4]))
        total = data.draw(st.sampled_from([ihl * 4 + payload_len, 0, st_any_length(data)]))
        frag = data.draw(st.sampled_from([0, 0, 0x2000, 0x0001, 0x4000]))
        head = struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, 0, total, data.draw(st.integers(0, 0xFFFF)), frag, 64,
            proto, 0, data.draw(st.binary(min_size=4, max_size=4)),
            data.draw(st.binary(min_size=4, max_size=4)),
        )  # fmt: skip
        return head + bytes(max(ihl * 4 - 20, 0))
    plen = data.draw(st.sampled_from([payload_len, 0, st_any_length(data)]))
    return struct.pack("!IHBB", 0x60000000, plen, proto, 64) + data.draw(
        st.binary(min_size=32, max_size=32)
    )


def _transport(data, proto: int) -> bytes:
    if proto == 6:
        offset = data.draw(st.sampled_from([5, 5, 8, 4, 15]))
        head = struct.pack(
            "!HHIIHHHH", data.draw(st.integers(0, 0xFFFF)), data.draw(st.integers(0, 0xFFFF)),
            data.draw(st.integers(0, 2**32 - 1)), data.draw(st.integers(0, 2**32 - 1)),
            (offset << 12) | data.draw(st.integers(0, 0x1FF)), 1024, 0, 0,
        )  # fmt: skip
        return head + bytes(max(offset * 4 - 20, 0))
    if proto == 17:
        ports = data.draw(st.sampled_from([(53, 40000), (3544, 9), (9, 4789), (1, 2)]))
        return struct.pack("!HHHH", *ports, 0, 0)
    if proto in (1, 58):
        return bytes([data.draw(st.integers(0, 255)), 0, 0, 0]) + struct.pack("!HH", 4242, 1)
    return b""


@settings(max_examples=400, deadline=None)
@given(st.data())
@needs_kernel
def test_random_frames_decode_the_same(data):
    frames = []
    for _ in range(data.draw(st.integers(1, 6))):
        version = data.draw(st.sampled_from([4, 6]))
        proto = data.draw(st.sampled_from([6, 17, 1, 58, 50, 47, 44, 0, 4, 132]))
        payload = data.draw(
            st.one_of(
                st.binary(max_size=60),
                st.just(b"\x60\x00\x00\x00\x00\x00" + bytes(34)),  # Teredo-like starts
                st.just(b"\x00\x00" + bytes(6) + b"\x60" + bytes(39)),
                st.just(b"\x00\x01" + bytes(40)),
            )
        )
        l4 = _transport(data, proto) + payload
        ip = _ip_header(data, version, proto, len(l4)) + l4
        tags = b"".join(
            struct.pack("!HH", data.draw(st.integers(0, 0xFFFF)), 0x8100)
            for _ in range(data.draw(st.integers(0, 5)))
        )
        ethertype = struct.pack("!H", 0x0800 if version == 4 else 0x86DD)
        head = data.draw(st.binary(min_size=12, max_size=12))
        frame = head + (b"\x81\x00" + tags[:-2] + ethertype if tags else ethertype) + ip
        cut = data.draw(st.integers(0, len(frame)))
        frame = frame[:cut] if data.draw(st.booleans()) else frame
        for _ in range(data.draw(st.integers(0, 2))):
            if frame:
                at = data.draw(st.integers(0, len(frame) - 1))
                frame = frame[:at] + bytes([data.draw(st.integers(0, 255))]) + frame[at + 1 :]
        frames.append(frame)
    linktype = data.draw(st.sampled_from([1, 1, 1, 101, 228, 229, 113]))
    if linktype != 1:
        frames = [f[14:] for f in frames]
    assert_same_decoding(raw_batch(frames, linktype))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=20), st.sampled_from([1, 12, 101, 228, 229]))
@needs_kernel
def test_garbage_decodes_the_same(frames, linktype):
    assert_same_decoding(raw_batch(frames, linktype))
