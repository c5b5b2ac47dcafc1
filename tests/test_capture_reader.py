"""Native capture readers (pcap, pcapng, compressed) checked against the corpus and tshark."""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlabel.capture import compression
from portlabel.capture.inputs import CaptureInputs
from portlabel.capture.reader import open_capture
from portlabel.errors import CaptureError

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
TSHARK = "/usr/bin/tshark"
needs_tshark = pytest.mark.skipif(not os.path.exists(TSHARK), reason="tshark not installed")
MANIFEST = {
    row["file"]: row
    for row in csv.DictReader(open(CAPTURES / "MANIFEST.tsv"), delimiter="\t")
    if row["kind"] == "capture"
}
REJECTED = {  # files both libpcap and Wireshark refuse from their first bytes
    "libpcap_pcap-invalid-version-1.pcap": "unsupported pcap version 1.4",
    "libpcap_shb-option-too-long.pcapng": "offset 0",
}
COMPRESSORS = {
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "xz": lzma.compress,
    "bz2": bz2.compress,
}


def read_all(path, batch_size: int = 65536):
    reader = open_capture(path)
    batches = list(reader.batches(batch_size=batch_size))
    cols = {
        k: np.concatenate([getattr(b, k) for b in batches]) if batches else np.zeros(0)
        for k in ("ts_ns", "caplen", "wirelen", "linktype", "iface", "frame")
    }
    cols["bytes"] = [b.frame_bytes(i) for b in batches for i in range(len(b))]
    return reader, cols


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    args = [TSHARK, "-r", str(path), "-T", "fields", "-E", "occurrence=a"]
    for f in ("frame.interface_id", *fields):
        args += ["-e", f]
    # tshark exits 2 after printing the packets of a cut-short file; the rows still count
    out = subprocess.run(args, capture_output=True, text=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    if "pcapng" in open_capture(path).format:
        rows = [r for r in rows if r[0] != ""]  # tshark 4.0 also lists custom blocks
    return rows


def epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 10**9 + int(frac.ljust(9, "0"))


def test_manifest_lists_every_capture_in_the_corpus():
    names = {
        p.name
        for p in CAPTURES.iterdir()
        if p.is_file() and p.suffix in {".pcap", ".pcapng", ".cap", ".gz"}
    }
    assert names == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_capture_opens_with_manifest_count(name):
    row = MANIFEST[name]
    if name in REJECTED:
        with pytest.raises(CaptureError) as err:
            open_capture(CAPTURES / name)
        assert REJECTED[name] in str(err.value) and name in str(err.value)
        return
    reader, cols = read_all(CAPTURES / name, batch_size=7)
    expected = int(row["packets"].split()[0]) if row["packets"] else 0
    assert len(cols["frame"]) == expected == reader.frames_read
    assert (cols["frame"] == np.arange(expected)).all()
    assert (cols["caplen"] == [len(b) for b in cols["bytes"]]).all()
    assert reader.format.split("+")[0] in ("pcap", "pcapng")
    assert ("pcapng" in reader.format) == ("pcapng" in row["format"].split()[0])
    if row["truncated_or_damaged"] or "reserved" in row["quirks"]:
        assert reader.warnings, "a damaged file must say so"
    else:
        assert reader.warnings == []


def test_damaged_files_say_where():
    reader, cols = read_all(CAPTURES / "ndpi_fuzz-2021-10-13.pcap")
    assert len(cols["frame"]) == 1
    assert reader.warnings == [
        "truncated record at offset 237: 2 bytes left of an incomplete record"
    ]
    reader, _ = read_all(CAPTURES / "libpcap_linktype-reserved-field-not-zero.pcap")
    assert "reserved bits" in reader.warnings[0]


TSHARK_SAMPLE = [
    "zeek_wikipedia.pcap",  # little-endian microsecond
    "ndpi_sctp.cap",  # big-endian
    "ndpi_nfsv3.pcap",  # version 2.1
    "ndpi_fuzz-2021-10-13.pcap",  # 2.0: caplen/len swapped, nanosecond, linktype upper bits
    "tcpd_tcp-handshake-nano.pcap",
    "tcpd_tcp_header_heapoverflow.pcap",
    "ndpi_fuzz-2006-06-26-2594.pcap",
    "nfs_alexa-app.pcapng",  # classic pcap content, big-endian
    "zeek_modify-request.pcapng",  # 126 interfaces, two link types
    "ndpi_sites.pcapng",
    "scapy_pfcp.pcap",  # big-endian pcapng
    "pngtg_be_test101.pcapng",  # SPB, ISBs
    "tcpd_vsock-1.pcapng",
    "scapy_dcerpc_privacy_ntlm.pcapng.gz",
    "scapy_candump_gmlan_scanner.pcap.gz",
    "zeek_tls-fragmented-handshake.pcap.gz",
]


@needs_tshark
@pytest.mark.tshark
@pytest.mark.parametrize("name", TSHARK_SAMPLE)
def test_times_and_lengths_match_tshark(name):
    path = CAPTURES / name
    rows = tshark_fields(path, "frame.time_epoch", "frame.len", "frame.cap_len")
    reader, cols = read_all(path, batch_size=5)
    assert len(rows) == len(cols["frame"])
    timed = [i for i, r in enumerate(rows) if r[1]]  # SPBs have no time in tshark
    assert [epoch_ns(rows[i][1]) for i in timed] == cols["ts_ns"][timed].tolist()
    assert [int(r[2]) for r in rows] == cols["wirelen"].tolist()
    assert [int(r[3]) for r in rows] == cols["caplen"].tolist()
    if "pcapng" in reader.format:  # single-section files: ids are the same
        assert [int(r[0]) for r in rows] == cols["iface"].tolist()


@needs_tshark
@pytest.mark.tshark
def test_frame_bytes_match_tshark():
    path = CAPTURES / "pngtg_le_test202.pcapng"
    rows = tshark_fields(path, "frame.cap_len")
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-x", "-Y", "frame.interface_id"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    _, cols = read_all(path)
    assert len(rows) == len(cols["bytes"]) == 8
    first_line = out.splitlines()[0]
    assert first_line.startswith("0000  " + " ".join(f"{b:02x}" for b in cols["bytes"][0][:16]))


def test_multi_section_pcapng_mixed_byte_orders():
    # 3 sections (LE, BE, LE): 2 + 1 + 2 interfaces, 6 EPBs and 2 SPBs (description.txt)
    desc = (CAPTURES / "pngtg_le_test202.pcapng.description.txt").read_text()
    assert "EPB: 6" in desc and "SPB: 2" in desc and "SHB: 3" in desc
    reader, cols = read_all(CAPTURES / "pngtg_le_test202.pcapng", batch_size=3)
    assert reader.warnings == []
    assert cols["iface"].tolist() == [0, 0, 1, 2, 2, 2, 2, 4]  # numbered across sections
    assert cols["caplen"].tolist() == [96, 96, 168, 128, 128, 128, 128, 168]
    assert cols["wirelen"].tolist() == [314, 342, 168, 314, 342, 314, 342, 168]
    assert set(cols["linktype"].tolist()) == {0, 1}
    t = cols["ts_ns"]
    assert t[3] == t[2] and t[5] == t[4]  # SPBs carry the previous packet's time
    assert t[0] == 1340954905298858000


# --- hand-built files -------------------------------------------------------------------


def pcap_file(records, order="<", magic=0xA1B2C3D4, version=(2, 4), linktype=1) -> bytes:
    out = [struct.pack(order + "IHHiIII", magic, *version, 0, 0, 65535, linktype)]
    for sec, frac, data, wirelen in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


def block(btype: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order="<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(linktype=1, snaplen=0, options=b"", order="<") -> bytes:
    if options:
        options += option(0, b"", order)
    return block(1, struct.pack(order + "HHI", linktype, 0, snaplen) + options, order)


def epb(iface, units, data, wirelen=None, options=b"", order="<") -> bytes:
    fixed = struct.pack(
        order + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(data), wirelen or len(data)
    )
    body = fixed + data + b"\0" * (-len(data) % 4)
    if options:
        options += option(0, b"", order)
    return block(6, body + options, order)


FRAMES = [bytes(range(i, i + 20 + 7 * i)) for i in range(6)]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_byte_orders_and_resolutions(tmp_path, order, nano):
    records = [(1_700_000_000 + i, 999_999 - i, f, len(f) + 4) for i, f in enumerate(FRAMES)]
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_file(records, order, 0xA1B23C4D if nano else 0xA1B2C3D4))
    reader, cols = read_all(path, batch_size=4)
    scale = 1 if nano else 1000
    assert cols["ts_ns"].tolist() == [s * 10**9 + f * scale for s, f, _, _ in records]
    assert cols["bytes"] == FRAMES
    assert cols["wirelen"].tolist() == [w for *_, w in records]
    assert reader.format == "pcap"


@pytest.mark.parametrize(
    "version, fields, expected",
    [
        ((2, 4), (50, 60), (50, 60)),
        ((2, 2), (60, 50), (50, 60)),  # before 2.3 the fields were the other way round
        ((2, 3), (60, 50), (50, 60)),  # 2.3: ambiguous, the smaller is captured
        ((2, 3), (50, 60), (50, 60)),
    ],
)
def test_old_pcap_versions_length_fields(tmp_path, version, fields, expected):
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, *version, 0, 0, 65535, 0x30000001)
    rec = struct.pack("<IIII", 1, 2, *fields) + b"\xab" * expected[0]
    path = tmp_path / "old.pcap"
    path.write_bytes(head + rec + rec)
    reader, cols = read_all(path)
    pairs = zip(cols["caplen"].tolist(), cols["wirelen"].tolist(), strict=True)
    assert list(pairs) == [expected] * 2
    assert cols["linktype"].tolist() == [1, 1]  # FCS bits of the link-type field masked off
    assert reader.warnings == []


def test_pcapng_timestamp_resolutions_and_offset(tmp_path):
    resol_us, resol_2_20, resol_ns = b"\x06", b"\x94", b"\x09"
    data = b"".join(
        [
            shb(),
            idb(1, options=option(9, resol_2_20) + option(14, struct.pack("<q", 100))),
            idb(0, options=option(9, resol_ns)),
            idb(1, options=option(9, resol_us)),
            epb(0, (5 << 20) | (1 << 19), FRAMES[0]),  # 5.5 s + 100 s offset
            epb(1, 1_234_567_891, FRAMES[1]),
            epb(2, 3_000_001, FRAMES[2]),
        ]
    )
    path = tmp_path / "res.pcapng"
    path.write_bytes(data)
    reader, cols = read_all(path)
    assert cols["ts_ns"].tolist() == [105_500_000_000, 1_234_567_891, 3_000_001_000]
    assert cols["linktype"].tolist() == [1, 0, 1]
    if os.path.exists(TSHARK):
        rows = tshark_fields(path, "frame.time_epoch")
        assert [epoch_ns(r[1]) for r in rows] == cols["ts_ns"].tolist()


def test_pcapng_big_endian_section_after_little(tmp_path):
    data = shb("<") + idb(1) + epb(0, 7, FRAMES[0])
    data += shb(">") + idb(113, order=">") + epb(0, 9, FRAMES[1], order=">")
    data += block(0x0BAD, b"custom block payload", ">") + epb(0, 10, FRAMES[2], order=">")
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(data)
    reader, cols = read_all(path)
    assert cols["bytes"] == FRAMES[:3]
    assert cols["iface"].tolist() == [0, 1, 1]
    assert cols["linktype"].tolist() == [1, 113, 113]
    assert cols["ts_ns"].tolist() == [7000, 9000, 10000]
    assert reader.warnings == []


def test_pcapng_comments_kept_by_frame(tmp_path):
    data = shb() + idb(1)
    data += epb(0, 1, FRAMES[0], options=option(1, "first ✓".encode()))
    data += epb(0, 2, FRAMES[1], options=option(2, b"\0\0\0\1"))  # epb_flags only
    data += epb(0, 3, FRAMES[2], options=option(1, b"a") + option(1, b"b"))
    path = tmp_path / "comments.pcapng"
    path.write_bytes(data)
    reader, cols = read_all(path)
    assert reader.comments == {0: "first ✓", 2: "a\nb"}
    assert cols["bytes"] == FRAMES[:3]


@needs_tshark
@pytest.mark.tshark
def test_pcapng_comments_match_tshark(tmp_path):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter

    path = tmp_path / "scapy.pcapng"
    writer = PcapNgWriter(str(path))
    for i in range(5):
        pkt = Ether() / IP(dst=f"192.0.2.{i}") / UDP(dport=53)
        if i % 2:
            pkt.comment = f"packet {i} says hi".encode()
        writer.write(pkt)
    writer.close()
    reader, _ = read_all(path)
    rows = tshark_fields(path, "frame.comment")
    from_tshark = {i: r[1] for i, r in enumerate(rows) if r[1]}
    assert reader.comments == from_tshark == {1: "packet 1 says hi", 3: "packet 3 says hi"}


@pytest.mark.parametrize(
    "bad, complaint",
    [
        (struct.pack("<II", 6, 30), "not a multiple of 4"),
        (struct.pack("<II", 6, 32) + b"\0" * 20 + struct.pack("<I", 28), "trailing"),
        (block(6, struct.pack("<IIIII", 7, 0, 0, 4, 4) + b"abcd"), "interface"),
        (block(6, struct.pack("<IIIII", 0, 0, 0, 400, 400) + b"abcd"), "too short"),
    ],
)
def test_pcapng_corruption_mid_file_keeps_earlier_packets(tmp_path, bad, complaint):
    good = shb() + idb(1) + epb(0, 1, FRAMES[0]) + epb(0, 2, FRAMES[1])
    path = tmp_path / "bad.pcapng"
    path.write_bytes(good + bad + epb(0, 3, FRAMES[2]))
    reader, cols = read_all(path)
    assert cols["bytes"] == FRAMES[:2]
    assert len(reader.warnings) == 1
    assert (
        reader.warnings[0].startswith(f"offset {len(good)}: ") and complaint in reader.warnings[0]
    )


def test_pcap_absurd_record_length_is_corruption(tmp_path):
    good = pcap_file([(1, 0, FRAMES[0], 20)])
    path = tmp_path / "bad.pcap"
    path.write_bytes(good + struct.pack("<IIII", 2, 0, 0xFFFFFFF0, 60) + b"x" * 100)
    reader, cols = read_all(path)
    assert cols["bytes"] == FRAMES[:1]
    assert reader.warnings[0].startswith(f"corrupt record header at offset {len(good)}")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"hello world, not a capture", "not a pcap or pcapng file"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "cut short"),
        (gzip.compress(b"GET / HTTP/1.1\r\n"), "not a pcap or pcapng file"),
        (b"\x1f\x8b\x08\x00garbage-garbage", "cannot decompress"),
        (b"\n\r\r\n\x08\x00\x00\x00", "section header"),
    ],
)
def test_unreadable_files_raise_capture_error(tmp_path, content, message):
    path = tmp_path / "x.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_missing_file_raises_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot open"):
        open_capture(tmp_path / "nope.pcap")


# --- compression ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("name", ["zeek_ssh.pcap", "ndpi_sites.pcapng", "pngtg_le_test202.pcapng"])
def test_compressed_copies_read_identically(tmp_path, monkeypatch, kind, name):
    plain_reader, plain = read_all(CAPTURES / name, batch_size=100)
    path = tmp_path / "copy.bin"  # the name says nothing: magic bytes decide
    path.write_bytes(COMPRESSORS[kind]((CAPTURES / name).read_bytes()))
    monkeypatch.setattr(compression, "CHUNK_BYTES", 4099)  # many refills mid-record
    reader, cols = read_all(path, batch_size=100)
    assert reader.format == plain_reader.format + "+" + kind
    for key in ("ts_ns", "caplen", "wirelen", "linktype", "iface", "frame"):
        assert (cols[key] == plain[key]).all(), key
    assert cols["bytes"] == plain["bytes"]
    assert reader.warnings == []


# --- truncation at any byte -------------------------------------------------------------


def record_ends(data: bytes, fmt: str) -> tuple[int, list[int]]:
    """(length of the leading header, end offset of every packet record); test's own walk."""
    if fmt == "pcap":
        ends, p = [], 24
        while p < len(data):
            p += 16 + struct.unpack_from("<I", data, p + 8)[0]
            ends.append(p)
        return 24, ends
    ends, p, order, first = [], 0, "<", None
    while p < len(data):
        btype = struct.unpack_from("<I", data, p)[0]
        if btype == 0x0A0D0D0A:
            order = "<" if data[p + 8 : p + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(order + "II", data, p)
        first = first or blen
        p += blen
        if btype in (2, 3, 6):
            ends.append(p)
    return first, ends


TRUNCATION_FILES = ["zeek_q-in-q.pcap", "pngtg_le_test202.pcapng", "ndpi_dns.pcap"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(TRUNCATION_FILES), frac=st.floats(0, 1), data=st.data())
def test_truncation_at_any_byte(tmp_path_factory, name, frac, data):
    whole = (CAPTURES / name).read_bytes()
    fmt = open_capture(CAPTURES / name).format
    header_len, ends = record_ends(whole, fmt)
    cut = data.draw(st.integers(0, len(whole))) if frac < 0.5 else int(frac * len(whole))
    path = tmp_path_factory.mktemp("cut") / "cut.bin"
    path.write_bytes(whole[:cut])
    if cut < header_len:
        with pytest.raises(CaptureError):
            open_capture(path)
        return
    _, full = read_all(CAPTURES / name)
    reader, cols = read_all(path, batch_size=3)
    kept = sum(1 for e in ends if e <= cut)
    assert cols["bytes"] == full["bytes"][:kept]
    assert (cols["ts_ns"] == full["ts_ns"][:kept]).all()
    boundaries = {header_len, *ends} if fmt == "pcap" else None
    if fmt == "pcap":
        clean = cut in boundaries
    else:
        clean = not reader.warnings  # blocks other than packets may end at the cut too
        assert clean or reader.warnings[0].startswith("truncated block at offset")
    if fmt == "pcap" and not clean:
        start = max(b for b in boundaries if b <= cut)
        assert reader.warnings == [
            f"truncated record at offset {start}: {cut - start} bytes left of an incomplete record"
        ]
    assert len(reader.warnings) == (0 if clean else 1)


# --- several files, zero copy -----------------------------------------------------------


def test_inputs_continue_frame_numbers_across_files(tmp_path):
    files = [CAPTURES / "zeek_q-in-q.pcap", CAPTURES / "ndpi_dns.pcap"]
    shutil.copy(CAPTURES / "ndpi_fuzz-2021-10-13.pcap", tmp_path / "third")
    files.append(tmp_path / "third")
    inputs = CaptureInputs(files, batch_size=2)
    frames, per_file = [], []
    for batch in inputs.raw_batches():
        frames.extend(batch.frame.tolist())
        if not per_file or per_file[-1][0] is not inputs.reader:
            per_file.append([inputs.reader, 0])
        per_file[-1][1] += len(batch)
    assert frames == list(range(5 + 5 + 1))
    assert [n for _, n in per_file] == [5, 5, 1]
    assert [r.frames_read for r, _ in per_file] == [5, 5, 1]
    damage = [w for w in inputs.warnings if " starts at " not in w]  # ndpi_dns is older
    assert damage and all(w.startswith(str(tmp_path / "third")) for w in damage)


def test_plain_files_are_not_copied():
    reader = open_capture(CAPTURES / "zeek_ssh.pcap")
    batch = next(reader.batches(batch_size=100))
    assert not batch.buf.flags.owndata and not batch.buf.flags.writeable
    assert len(batch) == 100
    assert batch.offset[0] == 16  # the first record's data follows its 16-byte header


@pytest.mark.parametrize("name", ["zeekreal_infected.pcap", "ndpi_sites.pcapng"])
def test_a_batchs_pages_are_released_once_the_next_is_asked_for(name, monkeypatch):
    """Memory stays bounded by a batch, not the file: when the consumer asks for batch
    i+1, the pages of batches up to i are released before anything further is mapped
    (for pcap: before the record walk goes on)."""
    from portlabel.capture import pcap

    page = os.sysconf("SC_PAGE_SIZE")
    released, consumed = [0], [0]  # file offsets: released so far, end of batches handed out
    real_release, real_walk = compression.MappedWindow.release, pcap.walk

    def release(self, upto):
        released[0] = max(released[0], upto + self.base)
        return real_release(self, upto)

    def walk(*args):
        assert released[0] >= (consumed[0] // page) * page - page
        return real_walk(*args)

    monkeypatch.setattr(compression, "RELEASE_BYTES", 1)  # release at any size
    monkeypatch.setattr(compression.MappedWindow, "release", release)
    monkeypatch.setattr(pcap, "walk", walk)
    monkeypatch.setattr(pcap, "FIRST_SPAN_BYTES", 4096)  # many short walks, one per batch
    monkeypatch.setattr(pcap, "MIN_SPAN_BYTES", 1)
    count = 0
    for batch in open_capture(CAPTURES / name).batches(16):
        assert released[0] >= (consumed[0] // page) * page - page  # all before this batch
        consumed[0] += len(batch.buf)
        count += 1
    assert count > 10


def test_a_map_keeps_the_pages_of_the_batches_a_consumer_still_holds(tmp_path):
    """With ``held=2`` the pages behind a batch start are released two batch starts
    later than asked (repeated requests for one start count once), so a consumer two
    batches behind the reader never reads released pages back."""
    step = compression.RELEASE_BYTES + 3 * 4096
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(4 * step))
    held = compression.MappedWindow(path, held=2)
    at = [step, 2 * step, 3 * step]
    for upto in (at[0], at[0], at[1], at[1]):
        held.release(upto)
    assert held._released == 0
    held.release(at[2])
    assert held._released == at[0] - at[0] % compression.mmap.PAGESIZE
    now = compression.MappedWindow(path)
    now.release(at[0])
    assert now._released == held._released  # without ``held``: at once
    held.close()
    now.close()
