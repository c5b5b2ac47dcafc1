"""A compressed capture or log that ends early, or turns corrupt, keeps what came before.

The oracle is independent of the reader: the bytes a streaming decompressor from the
standard library (or zstandard) gives for the same damaged file, which is what
``zcat file | portlabel label -`` sees. Every record (every whole log line) in those bytes
must be kept, one warning must say where the data ends, and the exit status is 0.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from pathlib import Path

import pytest
import zstandard

from portlabel.capture.compression import DecompressedStream, TruncatedStream
from portlabel.capture.reader import open_capture
from portlabel.cli import main

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SITES = CAPTURES / "ndpi_1kxun.pcap"  # 2.5 MB, hundreds of flows
PCAPNG = CAPTURES / "ndpi_sites.pcapng"
CONN = CAPTURES / "zeek_logs" / "zeeklog_zat_conn.log"

COMPRESS = {
    "gzip": lambda d: gzip.compress(d, 6),
    "xz": lzma.compress,
    "bz2": lambda d: bz2.compress(d, 1),  # 100 kB blocks: a cut keeps whole blocks
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


def prefix_decoded(kind: str, data: bytes) -> bytes:
    """What a streaming decompressor gets out of ``data`` before it runs out."""
    if kind == "gzip":
        return zlib.decompressobj(wbits=31).decompress(data)
    if kind == "xz":
        return lzma.LZMADecompressor().decompress(data)
    if kind == "bz2":
        return bz2.BZ2Decompressor().decompress(data)
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def frames(path: Path) -> list[bytes]:
    reader = open_capture(path)
    out = [b.frame_bytes(i) for b in reader.batches(batch_size=1000) for i in range(len(b))]
    return out, reader.warnings


@pytest.mark.parametrize("kind", sorted(COMPRESS))
@pytest.mark.parametrize("source", [SITES, PCAPNG], ids=lambda p: p.name)
@pytest.mark.parametrize("fraction", [0.3, 0.77])
def test_a_cut_compressed_capture_keeps_every_record_before_the_cut(
    tmp_path, kind, source, fraction
):
    packed = COMPRESS[kind](source.read_bytes())
    cut = packed[: int(len(packed) * fraction)]
    damaged = tmp_path / "cut.bin"
    damaged.write_bytes(cut)
    visible = tmp_path / "visible.raw"  # what zcat/xzcat/bzcat/zstdcat would print
    visible.write_bytes(prefix_decoded(kind, cut))
    if visible.stat().st_size < 4096:
        pytest.skip("this cut leaves less than a header's worth of decoded bytes")
    expected, _ = frames(visible)
    got, warnings = frames(damaged)
    assert len(expected) > 0
    assert got == expected
    assert len(warnings) == 1, warnings
    assert f"{kind} stream ends early, after {len(cut)} compressed bytes" in warnings[0]
    assert "before this offset kept" in warnings[0]


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_label_of_a_cut_capture_equals_the_decompressed_pipe(tmp_path, capfd, kind):
    packed = COMPRESS[kind](SITES.read_bytes())
    cut = packed[: len(packed) * 2 // 5]
    damaged = tmp_path / "cut.pcap.x"
    damaged.write_bytes(cut)
    visible = tmp_path / "visible.pcap"
    visible.write_bytes(prefix_decoded(kind, cut))
    assert main(["label", str(visible), "-F", "jsonl", "--uid-seed", "1"]) == 0
    piped = capfd.readouterr().out.splitlines()
    assert main(["label", str(damaged), "-F", "jsonl", "--uid-seed", "1"]) == 0
    captured = capfd.readouterr()
    assert len(piped) >= 3
    assert captured.out.splitlines() == piped
    warned = [line for line in captured.err.splitlines() if "ends early" in line]
    assert len(warned) == 1 and warned[0].startswith(f"portlabel: {damaged}: offset ")


def test_the_first_3000_bytes_of_a_gzipped_pcap_give_their_flows(tmp_path, capfd):
    damaged = tmp_path / "head.pcap.gz"
    damaged.write_bytes(gzip.compress(SITES.read_bytes())[:3000])
    assert main(["label", str(damaged), "-F", "jsonl"]) == 0
    assert len(capfd.readouterr().out.splitlines()) >= 3


def test_a_corrupt_checksum_at_the_end_loses_only_the_damaged_spot(tmp_path):
    data = bytearray(gzip.compress(SITES.read_bytes()))
    data[-6] ^= 0xFF  # the CRC-32 in the trailer: all the deflate data is sound
    damaged = tmp_path / "crc.pcap.gz"
    damaged.write_bytes(bytes(data))
    got, warnings = frames(damaged)
    plain, _ = frames(SITES)
    assert got == plain[: len(got)] and len(got) >= len(plain) - 2
    assert len(warnings) == 1 and "gzip data corrupt near compressed offset" in warnings[0]


def test_nothing_decoded_is_an_error_naming_the_cause(tmp_path, capfd):
    damaged = tmp_path / "head.pcap.bz2"
    damaged.write_bytes(bz2.compress(SITES.read_bytes())[:3000])  # inside the first block
    assert main(["label", str(damaged), "-F", "jsonl"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err == [
        f"portlabel: {damaged}: offset 0: cannot decompress (bz2): "
        "bz2 stream ends early, after 3000 compressed bytes"
    ]


def test_members_frames_and_zero_padding_are_read_through():
    chunks = [b"a" * 70000, b"b" * 5, b"c" * 123456]
    for kind, pack in COMPRESS.items():
        raw = b"".join(pack(c) for c in chunks) + b"\0" * 512
        import io

        stream = DecompressedStream(io.BytesIO(raw), kind)
        assert stream.read() == b"".join(chunks), kind
        assert stream.read() == b""


def test_the_stream_hands_out_the_data_then_keeps_raising():
    import io

    packed = gzip.compress(bytes(range(256)) * 4000)
    stream = DecompressedStream(io.BytesIO(packed[:-100]), "gzip")
    data = stream.read(1 << 30)
    assert len(data) > 900000 and (bytes(range(256)) * 4000).startswith(data)
    for _ in range(2):  # the damage stays reported to whoever reads next
        with pytest.raises(TruncatedStream, match="gzip stream ends early"):
            stream.read(10)


# --- logs ------------------------------------------------------------------------------


def _big_log() -> bytes:
    lines = CONN.read_bytes().splitlines(keepends=True)
    head = [line for line in lines if line.startswith(b"#") and not line.startswith(b"#close")]
    body = [line for line in lines if not line.startswith(b"#")]
    return b"".join(head + body * 40)


def test_enrich_of_a_cut_gzip_log_keeps_every_whole_line(tmp_path, capfd):
    packed = gzip.compress(_big_log())
    cut = packed[: len(packed) // 2]
    damaged = tmp_path / "conn.log.gz"
    damaged.write_bytes(cut)
    visible = prefix_decoded("gzip", cut)
    whole = visible[: visible.rfind(b"\n") + 1]
    plain = tmp_path / "visible.log"
    plain.write_bytes(whole)
    assert main(["enrich", str(plain), "-o", str(tmp_path / "expected.log")]) == 0
    assert main(["enrich", str(damaged), "-o", str(tmp_path / "got.log")]) == 0
    err = capfd.readouterr().err
    assert (tmp_path / "got.log").read_bytes() == (tmp_path / "expected.log").read_bytes()
    assert whole.count(b"\n") > 100
    warned = [line for line in err.splitlines() if "ends early" in line]
    assert len(warned) == 1
    assert f"every line before byte {len(whole)} kept" in warned[0]


def test_a_cut_gzip_log_is_not_rewritten_in_place(tmp_path, capfd):
    packed = gzip.compress(_big_log())
    damaged = tmp_path / "conn.log.gz"
    damaged.write_bytes(packed[: len(packed) // 2])
    before = damaged.read_bytes()
    assert main(["enrich", "--in-place", str(damaged)]) == 1
    assert "not rewritten in place" in capfd.readouterr().err
    assert damaged.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["conn.log.gz"]  # no temporary left


def test_a_copy_of_a_gzip_log_in_place_still_works(tmp_path):
    log = tmp_path / "conn.log.gz"
    log.write_bytes(gzip.compress(CONN.read_bytes()))
    assert main(["enrich", "--in-place", "-q", str(log)]) == 0
    assert b"iana.service" in gzip.decompress(log.read_bytes())


def test_an_xz_header_asking_for_a_huge_dictionary_is_refused_in_one_line(capfd):
    import tracemalloc

    huge = Path(__file__).parent / "data" / "fuzz_regressions" / "xz-huge-dictionary.pcapng.xz"
    tracemalloc.start()
    try:
        assert main(["label", str(huge), "-F", "jsonl"]) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "xz stream needs more than 128 MiB to decompress" in err[0]
    assert peak < 64 << 20


def test_a_closed_stream_lets_its_decoder_go():
    import io

    stream = DecompressedStream(io.BytesIO(lzma.compress(b"x" * 1000)), "xz")
    assert stream.read(10) == b"x" * 10
    stream.close()
    assert stream._d is None


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_long_zero_padding_is_ignored_and_garbage_after_it_is_reported(tmp_path, kind):
    plain, _ = frames(CAPTURES / "zeek_ssh.pcap")
    packed = COMPRESS[kind]((CAPTURES / "zeek_ssh.pcap").read_bytes())
    padded = tmp_path / "padded.bin"
    padded.write_bytes(packed + b"\0" * 40000)  # more than one 16 KiB piece of zeros
    got, warnings = frames(padded)
    assert got == plain and warnings == []
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(packed + b"\0" * 40000 + b"garbage!")
    got, warnings = frames(garbage)
    assert got == plain and len(warnings) == 1
    assert (
        f"not zero padding after the end of the stream, at compressed offset {len(packed) + 40000}"
        in warnings[0]
    )


def test_a_cut_compressed_capture_on_a_pipe_keeps_its_flows(tmp_path):
    import subprocess
    import sys

    cut = gzip.compress(SITES.read_bytes())[:3000]  # damage inside the first bytes read
    done = subprocess.run(
        [sys.executable, "-m", "portlabel", "label", "-", "-F", "jsonl"],
        input=cut, capture_output=True,
    )  # fmt: skip
    visible = tmp_path / "visible.pcap"
    visible.write_bytes(prefix_decoded("gzip", cut))
    plain = subprocess.run(
        [sys.executable, "-m", "portlabel", "label", str(visible), "-F", "jsonl"],
        capture_output=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(b"\n") == plain.stdout.count(b"\n") >= 3
    assert b"gzip stream ends early" in done.stderr
