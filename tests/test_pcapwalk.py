"""The compiled pcap record walk reads exactly what the vectorised lockstep walk reads.

Random pcap files (both byte orders, the old versions whose length fields are swapped or
ambiguous, the 24-byte-record variant, a corrupt length, a cut tail) are read twice, with
and without ``_pcapwalk``: the batches (timestamps and lengths, which the compiled walk
reads from the headers as it goes) and the warnings must be identical.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlabel.capture import pcap
from portlabel.capture.reader import open_capture

pytestmark = pytest.mark.skipif(pcap._pcapwalk is None, reason="built without a C compiler")

MAGICS = [(0xA1B2C3D4, 16), (0xA1B23C4D, 16), (0xA1B2CD34, 24)]


def read(path, batch_size: int, compiled: bool):
    saved = pcap._pcapwalk
    pcap._pcapwalk = saved if compiled else None
    try:
        reader = open_capture(path)
        batches = list(reader.batches(batch_size=batch_size))
    finally:
        pcap._pcapwalk = saved
    columns = [
        {k: getattr(b, k).tolist() for k in ("offset", "caplen", "wirelen", "ts_ns", "frame")}
        for b in batches
    ]
    frames = [b.frame_bytes(i) for b in batches for i in range(len(b))]
    return columns, frames, reader.warnings


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.sampled_from("<>"),
    magic=st.sampled_from(MAGICS),
    version=st.sampled_from([(2, 4), (2, 3), (2, 2)]),
    sizes=st.lists(st.integers(0, 3000), min_size=0, max_size=60),
    corrupt_at=st.one_of(st.none(), st.integers(0, 59)),
    cut=st.integers(0, 40),
    batch_size=st.sampled_from([1, 7, 65536]),
)
def test_compiled_walk_reads_what_the_lockstep_walk_reads(
    tmp_path_factory, order, magic, version, sizes, corrupt_at, cut, batch_size
):
    magic_value, header_len = magic
    rng = np.random.default_rng(len(sizes))
    out = [struct.pack(order + "IHHiIII", magic_value, *version, 0, 0, 65535, 1)]
    for i, size in enumerate(sizes):
        caplen = size if corrupt_at != i else pcap.MAX_RECORD + 1
        wire = size + int(rng.integers(0, 100))
        fields = (caplen, wire) if version >= (2, 3) else (wire, caplen)
        head = struct.pack(order + "IIII", 1_700_000_000 + i, i * 7, *fields)
        out.append(head + bytes(header_len - 16) + rng.bytes(size))
    data = b"".join(out)
    data = data[: len(data) - cut] if cut < len(data) - 24 else data
    path = tmp_path_factory.mktemp("walk") / "random.pcap"
    path.write_bytes(data)
    assert read(path, batch_size, compiled=True) == read(path, batch_size, compiled=False)


def test_compiled_walk_lists_the_broken_record_last():
    buf = np.zeros(64, dtype=np.uint8)
    struct.pack_into("<IIII", buf, 0, 0, 0, 8, 8)
    struct.pack_into("<IIII", buf, 24, 0, 0, pcap.MAX_RECORD + 1, 60)
    header = pcap.PcapHeader("<", False, 16, (2, 4), 65535, 1, 1)
    found, nxt, fields = pcap.walk_compiled(buf, 0, 49, header)
    assert found.tolist() == [0, 24] and nxt == pcap.BROKEN
    assert fields[:, 2].tolist() == [8, pcap.MAX_RECORD + 1]  # the headers it read
