"""The compiled pcapng block walk reads exactly what ``pcapng.walk_blocks`` reads.

Random pcapng files -- sections in either byte order, several interfaces, Enhanced,
Simple and obsolete Packet blocks with comments and other options, blocks portlabel
skips, a damaged block (bad length, trailer, body or interface), a cut tail -- are read
with and without ``_pcapngwalk``: batches, comments and warnings must be identical. The
bundled pcapng captures are compared the same way.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlabel.capture import pcapng
from portlabel.capture.reader import open_capture
from portlabel.errors import CaptureError
from test_capture_reader import block, epb, idb, option, shb

pytestmark = pytest.mark.skipif(pcapng._pcapngwalk is None, reason="built without a C compiler")
CAPTURES = Path(__file__).resolve().parents[1] / "captures"


def read(path, batch_size: int, compiled: bool):
    saved = pcapng._pcapngwalk
    pcapng._pcapngwalk = saved if compiled else None
    try:
        try:
            reader = open_capture(path)
            batches = list(reader.batches(batch_size=batch_size))
        except CaptureError as exc:
            return str(exc)
    finally:
        pcapng._pcapngwalk = saved
    columns = [
        {k: getattr(b, k).tolist() for k in ("caplen", "wirelen", "ts_ns", "iface", "linktype")}
        for b in batches
    ]
    frames = [b.frame_bytes(i) for b in batches for i in range(len(b))]
    return columns, frames, reader.warnings, getattr(reader, "comments", None)


def spb(wirelen: int, data: bytes, order: str) -> bytes:
    return block(3, struct.pack(order + "I", wirelen) + data, order)


def opb(iface: int, units: int, data: bytes, order: str) -> bytes:
    fixed = struct.pack(order + "HHIIII", iface, 0, units >> 32, units & 0xFFFFFFFF,
                        len(data), len(data))  # fmt: skip
    return block(2, fixed + data + b"\0" * (-len(data) % 4), order)


@st.composite
def pcapng_files(draw):
    out = []
    for _ in range(draw(st.integers(1, 3))):  # sections
        order = draw(st.sampled_from("<>"))
        out.append(shb(order))
        n_ifaces = draw(st.integers(0, 3))
        for _ in range(n_ifaces):
            snaplen = draw(st.sampled_from([0, 0, 16, 65535]))
            tsresol = draw(st.sampled_from([b"", option(9, b"\x09", order)]))
            out.append(idb(draw(st.sampled_from([1, 101, 113])), snaplen, tsresol, order))
        for _ in range(draw(st.integers(0, 25))):
            data = draw(st.binary(max_size=60))
            kind = draw(st.sampled_from(["epb", "epb", "epb", "spb", "opb", "other"]))
            iface = draw(st.integers(0, max(n_ifaces, 1)))  # sometimes one too many
            units = draw(st.integers(0, 2**40))
            if kind == "epb":
                comments = draw(st.lists(st.text(max_size=8), max_size=2))
                opts = b"".join(option(1, c.encode(), order) for c in comments)
                opts += draw(st.sampled_from([b"", option(2, b"\x00\x00\x00\x01", order)]))
                out.append(epb(iface, units, data, len(data) + 4, opts, order))
            elif kind == "spb":
                out.append(spb(len(data) + draw(st.integers(0, 9)), data, order))
            elif kind == "opb":
                out.append(opb(iface, units, data, order))
            else:
                out.append(block(draw(st.sampled_from([4, 5, 0xBAD])), data, order))
    data = bytearray(b"".join(out))
    if draw(st.booleans()) and len(data) > 40:  # damage one 4-byte field
        at = draw(st.integers(28, len(data) - 4)) & ~3
        data[at : at + 4] = draw(st.binary(min_size=4, max_size=4))
    cut = draw(st.integers(0, 30))
    return bytes(data[: max(len(data) - cut, 28)])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pcapng_files(), st.sampled_from([1, 5, 65536]))
def test_compiled_walk_reads_what_walk_blocks_reads(tmp_path_factory, data, batch_size):
    path = tmp_path_factory.mktemp("walk") / "random.pcapng"
    path.write_bytes(data)
    assert read(path, batch_size, True) == read(path, batch_size, False)


@pytest.mark.parametrize(
    "path", sorted(CAPTURES.glob("*.pcapng*")), ids=lambda p: p.name
)  # fmt: skip
def test_bundled_pcapng_captures_read_the_same(path):
    assert read(path, 7, True) == read(path, 7, False)


def test_the_compiled_walk_is_used_for_small_files_too(tmp_path):
    path = tmp_path / "one.pcapng"
    path.write_bytes(shb() + idb() + epb(0, 5, b"x" * 20))
    calls = []
    real = pcapng._pcapngwalk.walk_pcapng

    class Spy:
        @staticmethod
        def walk_pcapng(*args):
            calls.append(args[1])
            return real(*args)

    saved, pcapng._pcapngwalk = pcapng._pcapngwalk, Spy
    try:
        (batch,) = list(open_capture(path).batches())
    finally:
        pcapng._pcapngwalk = saved
    assert calls and len(batch) == 1 and np.array_equal(batch.caplen, [20])


@pytest.mark.parametrize("size", [15, 16, 17, 18, 40])
def test_simple_packet_blocks_are_cut_to_the_snaplen_the_same_way(tmp_path, size):
    path = tmp_path / "spb.pcapng"
    path.write_bytes(shb() + idb(snaplen=16) + spb(size + 3, bytes(range(size)), "<"))
    fast = read(path, 5, True)
    assert fast == read(path, 5, False)
    # an SPB's captured length is its data area (padding included), at most its wire
    # length and the interface's snaplen
    assert fast[0][0]["caplen"] == [min(-(-size // 4) * 4, size + 3, 16)]
