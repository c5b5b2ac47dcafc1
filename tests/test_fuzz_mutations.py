"""Real captures mutated (hypothesis): bit flips, truncations, huge length fields in pcap
record headers and pcapng blocks and options. Every reader must end with portlabel's
one-line errors at worst, never another exception, and allocate within the memory rule
(``fuzz/targets.py``). The inputs atheris found are replayed from
``tests/data/fuzz_regressions/``."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
from targets import check_memory, input_size, run_capture, run_log  # noqa: E402

CAPTURES = ROOT / "captures"
PCAPS = ["zeek_ssh.pcap", "ndpi_dns.pcap", "zeek_q-in-q.pcap", "tcpd_esp_truncated.pcap"]
PCAPNGS = ["ndpi_gre.pcapng", "pngtg_be_test101.pcapng", "pngtg_le_test202.pcapng"]
REGRESSIONS = ROOT / "tests" / "data" / "fuzz_regressions"
HUGE = [0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 0x10000000, 0x0FFFFFFF, 262145, 65536 * 1024]


def _head(name: str, limit: int = 6000) -> bytes:
    return (CAPTURES / name).read_bytes()[:limit]


def record_starts(data: bytes) -> list[int]:
    """Record header offsets of a little/big-endian classic pcap."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    starts, pos = [], 24
    while pos + 16 <= len(data):
        starts.append(pos)
        pos += 16 + struct.unpack_from(order + "I", data, pos + 8)[0]
    return starts


def block_starts(data: bytes) -> list[int]:
    starts, pos = [], 0
    order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    while pos + 12 <= len(data):
        starts.append(pos)
        length = struct.unpack_from(order + "I", data, pos + 4)[0]
        if length < 12 or length % 4:
            break
        pos += length
    return starts


def exercise(tmp_path, data: bytes) -> None:
    path = tmp_path / "mutant"
    path.write_bytes(data)
    size = input_size(str(path))
    check_memory(run_capture, str(path), size)
    check_memory(run_log, str(path), size)


SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(name=st.sampled_from(PCAPS + PCAPNGS), data=st.data())
def test_bit_flips_and_truncations(tmp_path, name, data):
    raw = bytearray(_head(name))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(raw)))
    exercise(tmp_path, bytes(raw[:cut]))


@SETTINGS
@given(name=st.sampled_from(PCAPS), data=st.data())
def test_huge_pcap_record_lengths(tmp_path, name, data):
    raw = bytearray(_head(name))
    starts = record_starts(bytes(raw))
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    at = data.draw(st.sampled_from(starts))
    field = data.draw(st.sampled_from([8, 12]))  # captured or wire length
    struct.pack_into(order + "I", raw, at + field, data.draw(st.sampled_from(HUGE)))
    if data.draw(st.booleans()):
        struct.pack_into(order + "I", raw, 16, data.draw(st.sampled_from(HUGE)))  # snaplen
    compress = data.draw(st.booleans())
    exercise(tmp_path, gzip.compress(bytes(raw)) if compress else bytes(raw))


@SETTINGS
@given(name=st.sampled_from(PCAPNGS), data=st.data())
def test_huge_pcapng_block_and_option_lengths(tmp_path, name, data):
    raw = bytearray(_head(name))
    order = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    starts = block_starts(bytes(raw))
    at = data.draw(st.sampled_from(starts))
    where = data.draw(st.sampled_from(["leading", "trailing", "option", "inner"]))
    value = data.draw(st.sampled_from(HUGE + [0, 4, 13]))
    length = struct.unpack_from(order + "I", raw, at + 4)[0]
    if where == "leading":
        struct.pack_into(order + "I", raw, at + 4, value)
    elif where == "trailing" and at + length <= len(raw) and length >= 12:
        struct.pack_into(order + "I", raw, at + length - 4, value)
    elif where == "option" and length > 32 and at + length <= len(raw):
        off = at + data.draw(st.integers(8, length - 8)) // 4 * 4
        struct.pack_into(order + "H", raw, off + 2, value & 0xFFFF)  # an option's length
    elif at + 28 <= len(raw):
        struct.pack_into(order + "I", raw, at + 20, value)  # EPB captured length
    exercise(tmp_path, bytes(raw))


@pytest.mark.parametrize(
    "path",
    sorted(p for p in REGRESSIONS.glob("*") if p.is_file() and p.suffix != ".txt")
    if REGRESSIONS.is_dir()
    else [],
    ids=lambda p: p.name,
)
def test_inputs_the_fuzzer_found(tmp_path, path):
    exercise(tmp_path, path.read_bytes())
