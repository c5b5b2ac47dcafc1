"""The lockstep record walk finds exactly the chain a one-by-one walk finds, whatever the
payloads look like (payloads stuffed with fake headers make many chunk guesses wrong)."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.capture import pcap, recordwalk
from portlabel.capture.recordwalk import BROKEN, u32_view, walk

HEADER = pcap.PcapHeader("<", False, 16, (2, 4), 65535, 1, 1)


def _records(spec: list[tuple[int, int, bool]]) -> bytes:
    out = [b"\0" * 24]
    for i, (size, junk, fake) in enumerate(spec):
        payload = bytearray(np.random.default_rng(junk).integers(0, 256, size, dtype=np.uint8))
        if fake and size >= 16:  # a header-like run inside the payload
            payload[:16] = struct.pack("<IIII", 1_700_000_000 + i, 5, size, size)
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 7, size, size + 4) + payload)
    return b"".join(out)


def _one_by_one(data: bytes, start: int) -> list[int]:
    offsets, p = [], start
    while p + 16 <= len(data):
        cap = struct.unpack_from("<I", data, p + 8)[0]
        offsets.append(p)
        p += 16 + cap
    return offsets


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.integers(0, 2**16), st.booleans()),
        min_size=1,
        max_size=400,
    ),
    st.sampled_from([64, 200, 512]),
)
def test_lockstep_walk_equals_one_by_one_walk(spec, chunk) -> None:
    data = _records(spec)
    buf = np.frombuffer(data, dtype=np.uint8)
    u = u32_view(buf, "<")
    shape = pcap.record_shape(HEADER, u, int(u[24]))
    old = recordwalk.CHUNK_BYTES, recordwalk.SCAN_BYTES
    recordwalk.CHUNK_BYTES, recordwalk.SCAN_BYTES = chunk, chunk // 2
    try:
        found, landing = walk(buf, u, 24, len(buf) - 15, shape)
    finally:
        recordwalk.CHUNK_BYTES, recordwalk.SCAN_BYTES = old
    assert found.tolist() == _one_by_one(data, 24)
    assert landing == len(data)


def test_an_impossible_length_breaks_the_chain() -> None:
    data = bytearray(_records([(40, 1, False), (40, 2, False), (40, 3, False)]))
    data[24 + 56 + 8 : 24 + 56 + 12] = struct.pack("<I", pcap.MAX_RECORD + 1)
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    u = u32_view(buf, "<")
    found, landing = walk(buf, u, 24, len(buf) - 15, pcap.record_shape(HEADER, u, int(u[24])))
    assert found.tolist() == [24, 80] and landing == BROKEN
