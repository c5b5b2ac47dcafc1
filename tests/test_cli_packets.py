"""``portlabel packets``: its lines against the decoder's rows, tshark and the manifest."""

from __future__ import annotations

import csv
import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portlabel.capture.backends import BACKENDS
from portlabel.capture.batch import PacketBatch
from portlabel.capture.inputs import packet_batches
from portlabel.cli import main
from portlabel.cli.options import CAPTURE_BACKENDS as BACKEND_NAMES

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
TSHARK = "/usr/bin/tshark"


def manifest_packets(name: str) -> int:
    with open(CAPTURES / "MANIFEST.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["file"] == name:
                return int(row["packets"].split()[0])
    raise KeyError(name)


def run_json(capsys, *args: str) -> tuple[int, list[dict], str]:
    code = main(["packets", "--json", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize(
    "name", ["zeek_wikipedia.pcap", "zeek_Teredo.pcap", "zeek_q-in-q.pcap", "ndpi_dtls.pcap"]
)
def test_json_lines_match_decoded_rows(capsys, name: str) -> None:
    code, records, _ = run_json(capsys, str(CAPTURES / name))
    assert code == 0
    assert len(records) == manifest_packets(name)
    batch = PacketBatch.concat(list(packet_batches([CAPTURES / name])))
    for i, rec in enumerate(records):
        assert rec["frame"] == i + 1  # numbered from 1, as tshark counts frames
        assert abs(rec["ts"] - int(batch.ts_ns[i]) / 1e9) < 1e-6  # float seconds
        assert rec["len"] == int(batch.wirelen[i])
        if batch.ip_version[i]:
            src = ipaddress.IPv6Address(bytes(batch.src_ip[i]))
            assert rec["src"] == str(src.ipv4_mapped or src)
        else:
            assert rec["src"] is None and rec["transport"] is None
        if rec["transport"] in ("tcp", "udp") and rec["status"] == "ok":
            assert (rec["sport"], rec["dport"]) == (int(batch.sport[i]), int(batch.dport[i]))
        if rec["transport"] in ("icmp", "icmp6", None):
            assert rec["sport"] is None and rec["dport"] is None
        assert ("tunnel" in rec) == bool(batch.tunnel[i])
        assert ("vlan" in rec) == (batch.vlan[i] >= 0)


@pytest.mark.tshark
def test_json_addresses_ports_and_flags_match_tshark(capsys) -> None:
    if not shutil.which(TSHARK):
        pytest.skip("tshark is not installed")
    path = CAPTURES / "zeek_wikipedia.pcap"
    fields = ["ip.src", "ipv6.src", "tcp.srcport", "udp.srcport", "tcp.flags.str"]
    cmd = [TSHARK, "-r", str(path), "-n", "-T", "fields", "-E", "occurrence=l"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(fields, line.split("\t"), strict=True)) for line in out.splitlines()]
    _, records, _ = run_json(capsys, str(path))
    assert len(records) == len(rows)
    for rec, row in zip(records, rows, strict=True):
        src = row["ip.src"] or row["ipv6.src"] or None
        assert rec["src"] == (str(ipaddress.ip_address(src)) if src else None)
        port = row["tcp.srcport"] or row["udp.srcport"]
        assert rec["sport"] == (int(port) if port else None)
        if rec["transport"] == "tcp":  # tshark's flag string: "·······A··S·"
            shown = {c for c in row["tcp.flags.str"] if c.isalpha()}
            assert set(rec["tcp_flags"]) == shown


def test_text_lines_are_aligned_and_one_per_packet(capsys) -> None:
    path = CAPTURES / "zeek_q-in-q.pcap"
    assert main(["packets", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == manifest_packets(path.name)
    assert len({line.index(" > ") for line in lines}) == 1
    assert "172.19.51.37.47808 > 172.19.51.63.47808" in lines[0]
    assert lines[-1].endswith("not_ip")


def test_unreadable_file_is_named_and_others_are_still_shown(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    good = CAPTURES / "zeek_vxlan.pcap"
    code, records, err = run_json(capsys, str(bad), str(good), str(tmp_path / "missing.pcap"))
    assert code == 1
    assert len(records) == manifest_packets(good.name)
    assert [line.count("bad.pcap") for line in err.splitlines()][:1] == [1]
    assert len(err.splitlines()) == 2 and "missing.pcap" in err.splitlines()[1]


def test_scapy_backend_prints_the_same_lines_on_a_plain_capture(capsys) -> None:
    path = str(CAPTURES / "zeek_pcapng-multi-interface.pcapng")
    native = run_json(capsys, path)[1]
    scapy = run_json(capsys, "--backend", "scapy", path)[1]
    assert scapy == native


def test_backend_choices_are_the_registry() -> None:
    assert list(BACKEND_NAMES) == list(BACKENDS)


def test_subprocess_run_and_light_imports() -> None:
    path = CAPTURES / "zeek_tcp-syslog.pcap"
    proc = subprocess.run(
        [sys.executable, "-m", "portlabel", "packets", "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == manifest_packets(path.name)
    assert {r["transport"] for r in records} == {"tcp"}
    probe = "import sys, portlabel.cli.packets; print('numpy' in sys.modules)"
    light = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert light.stdout.strip() == "False"
