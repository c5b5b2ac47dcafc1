"""BPF filters on capture files: the packets tcpdump keeps, read as tcpdump users ask.

The oracle is tcpdump itself: ``tcpdump -r IN -w OUT EXPRESSION`` writes the packets
libpcap's filter keeps, and portlabel's reader with the same expression must keep the
same records (timestamps and bytes). The compiled VM and its Python twin are compared
on every bundled capture and on random programs (hypothesis).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.capture import bpf
from portlabel.capture.inputs import CaptureInputs
from portlabel.cli import main

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
TCPDUMP = shutil.which("tcpdump")
needs_tcpdump = pytest.mark.skipif(TCPDUMP is None, reason="needs tcpdump as the BPF oracle")
EXPRESSIONS = [
    "tcp port 22",
    "udp",
    "ip6",
    "tcp[tcpflags] & tcp-syn != 0",
    "vlan and udp",
    "net 192.168.0.0/16 and not port 53",
    "ip[2:2] > 576",
    "greater 1000",
    "icmp or icmp6",
    "ip proto 47",
]
PCAPS = ["ndpi_1kxun.pcap", "zeek_ssh.pcap", "zeek_q-in-q.pcap", "zeek_gre-sample.pcap"]


def records(inputs: CaptureInputs) -> list[tuple[int, bytes]]:
    return [
        (int(b.ts_ns[i]) // 1000, b.frame_bytes(i))
        for b in inputs.raw_batches()
        for i in range(len(b))
    ]


@needs_tcpdump
@pytest.mark.parametrize("name", PCAPS)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_filter_keeps_what_tcpdump_keeps(tmp_path, name, expression):
    kept = tmp_path / "kept.pcap"
    done = subprocess.run(
        [TCPDUMP, "-r", str(CAPTURES / name), "-w", str(kept), expression],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"tcpdump refuses {expression!r} here: {done.stderr.decode().strip()}")
    expected = records(CaptureInputs([kept]))
    got = records(CaptureInputs([CAPTURES / name], packet_filter=expression))
    assert got == expected


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_compiled_vm_and_python_twin_agree_on_every_capture(expression):
    fast, slow = bpf.PacketFilter(expression), bpf.PacketFilter(expression)
    slow._kernel = None
    if fast._kernel is None:
        pytest.skip("the _bpfvm kernel is not built")
    for path in sorted(CAPTURES.glob("*.pcap*"))[:60]:
        try:
            inputs = CaptureInputs([path], batch_size=4096, on_problem=lambda exc: None)
            for batch in inputs.raw_batches():
                try:
                    want = slow.keep(batch)
                except Exception as exc:  # a filter that does not apply to this link type
                    with pytest.raises(type(exc)):
                        fast.keep(batch)
                    continue
                assert (fast.keep(batch) == want).all(), path.name
        except ValueError:
            raise


INSN = st.tuples(
    st.sampled_from(
        [
            0x00,
            0x01,
            0x02,
            0x03,
            0x04,
            0x05,
            0x06,
            0x07,
            0x20,
            0x28,
            0x30,
            0x40,
            0x48,
            0x50,
            0x60,
            0x61,
            0x80,
            0x81,
            0xB1,
            0x14,
            0x1C,
            0x24,
            0x34,
            0x3C,
            0x44,
            0x54,
            0x64,
            0x74,
            0x84,
            0x94,
            0x9C,
            0xA4,
            0x15,
            0x1D,
            0x25,
            0x35,
            0x45,
            0x16,
            0x0E,
            0x87,
            0xFF,
        ]
    ),  # fmt: skip
    st.integers(0, 5),
    st.integers(0, 5),
    st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1)),
)


@settings(max_examples=400, deadline=None)
@given(program=st.lists(INSN, min_size=1, max_size=12), packet=st.binary(max_size=64))
def test_random_programs_run_the_same_in_c_and_python(program, packet):
    kernel = bpf.PacketFilter("ip")._kernel
    if kernel is None:
        pytest.skip("the _bpfvm kernel is not built")
    packed = b"".join(bpf.BPF_INSN.pack(*insn) for insn in program)
    buf = np.frombuffer(packet + b"\0", dtype=np.uint8)[: len(packet)].copy()
    args = (
        np.zeros(1, np.int64),
        np.array([len(packet)], np.uint32),
        np.array([len(packet) + 7], np.uint32),
    )
    out = np.zeros(1, np.uint8)
    if not bpf.check_program(program):
        with pytest.raises(ValueError):
            kernel.filter_records(packed, buf, *args, out)
        return
    kernel.filter_records(packed, buf, *args, out)
    assert bool(out[0]) == bpf.run_program(program, packet, len(packet) + 7)


def test_bad_offsets_are_refused_not_read():
    kernel = bpf.PacketFilter("ip")._kernel
    if kernel is None:
        pytest.skip("the _bpfvm kernel is not built")
    packed = struct.pack("=HBBI", 0x06, 0, 0, 1)
    buf = np.zeros(10, np.uint8)
    with pytest.raises(ValueError):
        kernel.filter_records(
            packed, buf, np.array([8], np.int64), np.array([5], np.uint32),
            np.array([5], np.uint32), np.zeros(1, np.uint8),
        )  # fmt: skip


# --- the command line -----------------------------------------------------------------


def flows(capfd, *argv) -> list[dict]:
    assert main(["label", *argv, "-F", "jsonl", "--uid-seed", "3"]) == 0
    rows = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    for row in rows:
        del row["uid"]  # uids number the flows made, which a filter changes
    return rows


def test_r_file_and_trailing_expression_as_tcpdump(capfd):
    ssh = str(CAPTURES / "zeek_ssh.pcap")
    everything = flows(capfd, ssh)
    only_22 = [f for f in everything if 22 in (f["id.orig_p"], f["id.resp_p"])]
    assert flows(capfd, "-r", ssh, "tcp", "port", "22") == only_22
    assert flows(capfd, ssh, "tcp port 22") == only_22
    assert flows(capfd, ssh, "-f", "tcp port 22") == only_22
    assert 0 < len(only_22) < len(everything)


def test_count_stops_after_n_packets(capfd):
    ssh = str(CAPTURES / "zeek_ssh.pcap")
    few = flows(capfd, ssh, "-c", "50")
    assert sum(f["orig_pkts"] + f["resp_pkts"] for f in few) == 50
    assert flows(capfd, ssh, "-c", "0") == []
    assert main(["packets", ssh, "-c", "3", "--json"]) == 0
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == [1, 2, 3]  # numbered from 1, as tshark


def test_count_after_the_filter_keeps_frame_numbers_of_the_file(capfd):
    ssh = str(CAPTURES / "ndpi_1kxun.pcap")
    assert main(["packets", ssh, "--json", "-c", "4", "udp"]) == 0
    frames = [json.loads(line)["frame"] for line in capfd.readouterr().out.splitlines()]
    out = subprocess.run(
        ["tshark", "-r", ssh, "-Y", "udp", "-T", "fields", "-e", "frame.number", "-c", "100000"],
        capture_output=True, text=True, check=False,
    ).stdout.split() if shutil.which("tshark") else None  # fmt: skip
    assert len(frames) == 4
    if out is not None:
        assert frames == [int(n) for n in out[:4]]


def test_two_filters_or_no_capture_are_usage_errors(capfd):
    ssh = str(CAPTURES / "zeek_ssh.pcap")
    assert main(["label", ssh, "udp", "-f", "tcp"]) == 2
    assert "two filters" in capfd.readouterr().err
    assert main(["label", "-c", "3"]) == 2
    assert "no capture file given" in capfd.readouterr().err


def test_a_filter_that_cannot_apply_names_the_file_and_link_type(capfd):
    raw_ip = str(CAPTURES / "tcpd_LINKTYPE_IPV6.pcap")
    assert main(["label", raw_ip, "ether", "host", "1:2:3:4:5:6"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith(f"portlabel: error: {raw_ip}: bad BPF filter") and "IPV6" in err


def test_the_api_takes_the_same_filter_and_count(capfd):
    import portlabel

    ssh = CAPTURES / "zeek_ssh.pcap"
    table = portlabel.label(ssh, packet_filter="tcp port 22", count=100, uid_seed=3)
    cli = flows(capfd, str(ssh), "tcp port 22", "-c", "100")
    assert sum(table.column("orig_pkts").to_pylist() + table.column("resp_pkts").to_pylist()) == 100
    assert len(cli) == table.num_rows
