"""Nothing silently lost: packets in no flow are counted by reason, and a capture none of
whose packets can be decoded says so (naming its link type) and fails."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

import portlabel
from portlabel.cli import main
from portlabel.labelling.api import CaptureWarning, run_metadata
from portlabel.writers.summary import Summary

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
CAN = CAPTURES / "scapy_candump_gmlan_scanner.pcap.gz"  # CAN_SOCKETCAN, link type 227
WIKIPEDIA = CAPTURES / "zeek_wikipedia.pcap"


def test_the_result_says_what_went_into_no_flow():
    meta = run_metadata(portlabel.label(WIKIPEDIA))
    assert meta["frames"] == 136 and meta["flows"] == 34
    assert meta["not_in_flows"] == {"NOT_IP": 10} and meta["undecodable"] == []


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_the_packets_left_out_are_the_ones_tshark_finds_without_ip():
    out = subprocess.run(
        ["tshark", "-n", "-r", str(WIKIPEDIA), "-Y", "not ip and not ipv6"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert (
        len(out.stdout.splitlines())
        == run_metadata(portlabel.label(WIKIPEDIA))["not_in_flows"]["NOT_IP"]
    )


def test_an_undecodable_capture_warns_with_its_link_type_and_fails(tmp_path, capsys):
    assert main(["label", str(CAN), "-o", str(tmp_path / "x.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "227 (CAN_SOCKETCAN)" in err and "could be decoded" in err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = portlabel.label(CAN)
    (warning,) = [w for w in caught if issubclass(w.category, CaptureWarning)]
    assert "CAN_SOCKETCAN" in str(warning.message) and warning.filename == __file__
    assert table.num_rows == 0
    assert run_metadata(table)["not_in_flows"] == {"UNSUPPORTED_LINK": 3819}


def test_a_capture_with_some_undecodable_packets_is_not_a_failure(tmp_path):
    assert main(["label", str(WIKIPEDIA), "-o", str(tmp_path / "x.jsonl")]) == 0


def test_the_summary_line_counts_packets_in_no_flow():
    summary = Summary()
    summary.not_in_flows = {"NOT_IP": 10, "TRUNCATED": 2}
    assert summary.line().endswith("12 packets in no flow: 10 not_ip, 2 truncated")
