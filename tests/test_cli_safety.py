"""The commands never destroy their inputs and fail with one line, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portlabel.cli import main

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
INFECTED = CAPTURES / "zeekreal_infected.pcap"
CONN = CAPTURES / "zeek_logs" / "zeeklog_zat_conn.log"
DNS = CAPTURES / "zeek_logs" / "zeeklog_zat_dns.log"


@pytest.fixture
def capture(tmp_path) -> Path:
    path = tmp_path / "copy.pcap"
    shutil.copy(INFECTED, path)
    return path


@pytest.mark.parametrize("command", [["label", "-F", "jsonl"], ["packets"]])
@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_an_output_that_is_an_input_is_refused_before_reading(
    tmp_path, capture, capsys, command, how
):
    before = capture.read_bytes()
    output = capture
    if how == "symlink":
        output = tmp_path / "link.pcap"
        output.symlink_to(capture)
    elif how == "hard link":
        output = tmp_path / "hard.pcap"
        os.link(capture, output)
    assert main([*command, str(capture), "-o", str(output)]) == 2
    assert "is the input" in capsys.readouterr().err
    assert capture.read_bytes() == before


def test_enrich_into_its_own_input_is_refused(tmp_path, capsys):
    log = tmp_path / "conn.log"
    shutil.copy(CONN, log)
    assert main(["enrich", str(log), "-o", str(log)]) == 2
    assert "--in-place rewrites" in capsys.readouterr().err
    assert log.read_bytes() == CONN.read_bytes()
    assert main(["enrich", str(log), "--in-place", "-q"]) == 0  # the way to rewrite it


def test_several_logs_need_an_output_directory(tmp_path, capsys):
    out = tmp_path / "both.log"
    assert main(["enrich", str(CONN), str(DNS), "-o", str(out)]) == 2
    assert "need -o DIRECTORY" in capsys.readouterr().err and not out.exists()


def test_a_trailing_slash_makes_the_output_directory(tmp_path):
    out = f"{tmp_path / 'enriched'}{os.sep}"
    assert main(["enrich", str(CONN), str(DNS), "-o", out, "-q"]) == 0
    assert sorted(p.name for p in Path(out).iterdir()) == [CONN.name, DNS.name]


@pytest.mark.parametrize("target", ["missing_dir/x.log", "missing_dir/"])
def test_a_missing_output_directory_is_one_line(tmp_path, target):
    proc = subprocess.run(
        [sys.executable, "-m", "portlabel", "enrich", str(CONN), str(DNS), "-o",
         str(tmp_path / "nowhere" / target)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "no directory" in proc.stderr or "DIRECTORY" in proc.stderr
    single = subprocess.run(
        [sys.executable, "-m", "portlabel", "enrich", str(CONN), "-o",
         str(tmp_path / "nowhere" / "x.log")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert single.returncode == 2 and single.stderr.startswith("portlabel: error: cannot write")
