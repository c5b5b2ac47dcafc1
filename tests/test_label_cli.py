"""``portlabel label`` on real captures: formats, by extension, several files, unreadable
inputs, exit codes, quiet and pipe behaviour."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import portlabel.labelling.api as api
from flow_values import decimal_records
from portlabel.cli import main

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
INFECTED = CAPTURES / "zeekreal_infected.pcap"
SSH = CAPTURES / "zeek_ssh.pcap"


def run(*argv: object) -> int:
    return main(["label", *map(str, argv)])


@pytest.fixture(scope="module")
def expected():
    return api.label(INFECTED, uid_seed=5)


def test_default_on_a_pipe_is_json_lines(capsysbinary, expected):
    assert run(INFECTED, "--uid-seed", 5) == 0
    out, err = capsysbinary.readouterr()
    rows = [json.loads(line, parse_float=Decimal) for line in out.decode().splitlines()]
    assert rows == decimal_records(expected)
    assert err == b""  # no progress bar or summary when stderr is not a terminal


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("out.jsonl", lambda p: len(p.read_text().splitlines())),
        ("out.json", lambda p: len(p.read_text().splitlines())),
        ("out.csv", lambda p: len(list(csv.reader(io.StringIO(p.read_text())))) - 1),
        ("conn.log", lambda p: sum(not x.startswith("#") for x in p.read_text().splitlines())),
        ("out.parquet", lambda p: pq.read_table(p).num_rows),
    ],
)
def test_format_follows_the_extension(tmp_path, expected, name, check):
    path = tmp_path / name
    assert run(INFECTED, "-o", path) == 0
    assert check(path) == expected.num_rows
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_format_option_wins_over_the_extension(tmp_path):
    path = tmp_path / "flows.log"
    assert run(INFECTED, "-o", path, "-F", "zeek-json") == 0
    first = json.loads(path.read_text().splitlines()[0])
    assert "iana.service" in first and "service" not in first


def test_zeek_output_starts_with_zeeks_header(tmp_path):
    path = tmp_path / "conn.log"
    assert run(SSH, "-o", path) == 0
    lines = path.read_text().splitlines()
    assert lines[0] == "#separator \\x09" and lines[4] == "#path\tconn"
    assert lines[-1].startswith("#close\t")


def test_several_files_are_one_capture(tmp_path):
    data = INFECTED.read_bytes()
    # cut after the 100th record, so flows continue across the files
    pos, n = 24, 0
    while n < 100:
        pos += 16 + int.from_bytes(data[pos + 8 : pos + 12], "little")
        n += 1
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.write_bytes(data[:pos])
    b.write_bytes(data[:24] + data[pos:])
    whole, split = tmp_path / "whole.parquet", tmp_path / "split.parquet"
    assert run(INFECTED, "-o", whole, "--uid-seed", 1) == 0
    assert run(a, b, "-o", split, "--uid-seed", 1) == 0
    key = [("ts", "ascending"), ("id.orig_p", "ascending")]
    w = pq.read_table(whole).sort_by(key).drop(["uid"])
    s = pq.read_table(split).sort_by(key).drop(["uid"])
    assert s.equals(w)


def test_unreadable_input_is_named_and_the_good_one_still_labelled(tmp_path, capsys, expected):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"GIF89a not a capture")
    out = tmp_path / "out.jsonl"
    assert run(bad, INFECTED, tmp_path / "missing.pcap", "-o", out) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"portlabel: {bad}: offset 0: not a pcap or pcapng")
    assert "missing.pcap" in err[1]
    assert len(out.read_text().splitlines()) == expected.num_rows


def test_truncated_input_gives_one_warning_line_with_the_offset(tmp_path, capsys):
    cut = tmp_path / "cut.pcap"
    data = INFECTED.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 5])
    out = tmp_path / "out.csv"
    assert run(cut, "-o", out) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "cut.pcap" in err[0] and "offset" in err[0]
    assert len(out.read_text().splitlines()) > 1


def test_no_output_file_when_every_input_failed(tmp_path, capsys):
    out = tmp_path / "out.parquet"
    assert run(tmp_path / "missing.pcap", "-o", out) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["-o", "out.txt"],
        ["--batch-size", "0"],
        ["--tcp-timeout", "off"],
        ["--udp-timeout", "-3"],
        ["-F", "xml"],
    ],
)
def test_usage_errors_exit_2(tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        code = run(INFECTED, *argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    assert list(tmp_path.iterdir()) == []


def test_timeouts_change_the_flows(capsysbinary, expected):
    assert run(INFECTED, "--tcp-timeout", "0.5", "--udp-timeout", "0.5", "--dns-timeout",
               "off") == 0  # fmt: skip
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) > expected.num_rows


def test_quiet_table_has_no_summary(tmp_path):
    path = tmp_path / "flows.txt"
    assert run(INFECTED, "-F", "table", "-o", path) == 0
    assert "top services" in path.read_text()
    assert run(INFECTED, "-F", "table", "-o", path, "-q") == 0
    assert "top services" not in path.read_text()
    assert "http" in path.read_text()


def test_registry_overlay_renames_a_port(tmp_path, capsysbinary):
    overlay = tmp_path / "services"
    overlay.write_text("my-web 80/tcp\n")
    assert run(INFECTED, "--overlay", overlay) == 0
    rows = [json.loads(x) for x in capsysbinary.readouterr().out.splitlines()]
    names = {r["iana.service"] for r in rows if r["id.resp_p"] == 80}
    assert names == {"my-web"}


def test_whole_process_on_a_pipe(tmp_path):
    """The installed entry point, output piped: JSON lines, silent stderr, exit 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "portlabel", "label", str(INFECTED)],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert all(json.loads(x)["iana.source"] for x in proc.stdout.splitlines())


def test_new_output_file_gets_the_usual_mode(tmp_path):
    path = tmp_path / "out.csv"
    assert run(SSH, "-o", path) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_ctrl_c_leaves_no_output_file_and_no_noise(tmp_path, suffix):
    """Interrupted while the reader thread is blocked reading a FIFO whose writer is still
    there but sends nothing more: exit 130, no output file, nothing on stderr."""
    import signal
    import time

    fifo, out = tmp_path / "live.pcap", tmp_path / f"out{suffix}"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "portlabel", "label", str(fifo), "-o", str(out)],
        stderr=subprocess.PIPE,
    )
    with open(fifo, "wb") as feed:
        feed.write(INFECTED.read_bytes()[:20_000])  # header and the first records
        feed.flush()
        time.sleep(1.5)  # the reader has read what there is and waits for more
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == b""
    assert not out.exists()
    assert os.listdir(tmp_path) == ["live.pcap"]  # no temporary file left either


@pytest.mark.parametrize("backend", ["scapy", "tshark"])
def test_other_backends_label_the_same_flows(tmp_path, backend):
    """The scapy and tshark (pyshark) readers run in the pipeline's reader thread too."""
    import shutil

    if backend == "tshark" and shutil.which("tshark") is None:
        pytest.skip("no tshark")
    keys = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "orig_pkts",
            "resp_pkts", "iana.service")  # fmt: skip

    def flows(*extra):
        out = tmp_path / f"out{len(extra)}.jsonl"
        assert run(SSH, "-o", out, *extra) == 0
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        return sorted(tuple(str(r[k]) for k in keys) for r in rows)

    native = flows()
    assert len(native) > 10
    assert flows("--backend", backend) == native


def test_standard_input_and_fifos_are_read_once_like_files(tmp_path):
    """``-`` reads a capture piped in (here gzip-compressed), a FIFO is read like a file;
    both give the flows of the file itself."""
    import gzip
    import threading

    def flows(path_arg, stdin=None):
        out = tmp_path / "out.jsonl"
        proc = subprocess.run(
            [sys.executable, "-m", "portlabel", "label", path_arg, "-o", str(out),
             "--uid-seed", "5"],
            input=stdin, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return out.read_text()

    from_file = flows(str(INFECTED))
    assert from_file.count("\n") == 15
    assert flows("-", stdin=gzip.compress(INFECTED.read_bytes())) == from_file
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(INFECTED.read_bytes()))
    feeder.start()
    assert flows(str(fifo)) == from_file
    feeder.join(10)


def test_a_pipe_gives_its_batches_once(tmp_path):
    import threading

    from portlabel.capture.reader import open_capture
    from portlabel.errors import CaptureError

    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(SSH.read_bytes()))
    feeder.start()
    reader = open_capture(fifo)
    assert reader.format == "pcap"
    packets = sum(len(b) for b in reader.batches())
    assert packets == sum(len(b) for b in open_capture(SSH).batches())
    with pytest.raises(CaptureError, match="a pipe can be read only once"):
        list(reader.batches())
    feeder.join(10)


def test_zeek_logs_key_flows_as_zeek_unless_told_not(tmp_path):
    """ldap.gap's two directions travel on different VLANs: one connection in Zeek."""
    trace = (Path(__file__).parent / "data" / "zeek_parity" / "scripts.base.protocols.ldap.gap"
             / "gap-data-missing.pcapng")  # fmt: skip

    def conn_lines(*options) -> int:
        out = tmp_path / "conn.log"
        assert run(trace, "-o", out, *options) == 0
        return sum(not line.startswith("#") for line in out.read_text().splitlines())

    assert conn_lines() == 1
    assert conn_lines("--no-zeek-keys") == 2
    jsonl = tmp_path / "flows.jsonl"
    assert run(trace, "-o", jsonl) == 0
    assert len(jsonl.read_text().splitlines()) == 2  # portlabel's own keying elsewhere
