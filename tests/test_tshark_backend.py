"""The tshark backend's defects, each reproduced: exit status races, the root notice,
frames without a timestamp, records that are not packets, standard input, loop cleanup."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from portlabel.capture.backends import tshark_backend
from portlabel.capture.batch import PacketBatch
from portlabel.capture.inputs import packet_batches

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def read(path: Path, backend: str = "tshark") -> tuple[PacketBatch, list[str]]:
    notes: list[str] = []
    batches = list(packet_batches([path], backend, on_warning=notes.append))
    return PacketBatch.concat(batches), notes


def test_a_tshark_that_exits_by_itself_is_never_reported_as_crashed():
    """pyshark used to kill a tshark that was just exiting; Popen.kill then reaped it
    before asyncio's watcher ("Unknown child process pid N"), and the lost exit status
    was reported as a crash with tshark's root notice as its message (1 run in ~8)."""
    problems: list[str] = []

    def run() -> None:
        for _ in range(12):
            _, notes = read(CAPTURES / "ndpi_quic-v2.pcapng")
            problems.extend(notes)

    worker = threading.Thread(target=run)  # as the label pipeline reads: off the main thread
    worker.start()
    worker.join()
    assert problems == []


def test_the_exit_status_is_collected_by_the_watcher_not_by_a_kill(monkeypatch):
    killed: list[int] = []
    real_kill = subprocess.Popen.kill
    monkeypatch.setattr(subprocess.Popen, "kill", lambda self: killed.append(self.pid) or
                        real_kill(self))  # fmt: skip
    batch, notes = read(CAPTURES / "zeek_ssh.pcap")
    assert len(batch) == 1797 and notes == [] and killed == []


def test_the_root_notice_is_not_the_error_message():
    batch, notes = read(CAPTURES / "ndpi_fuzz-2021-10-13.pcap")
    assert len(notes) == 1 and "cut short in the middle of a packet" in notes[0]
    assert "Running as user" not in notes[0]
    assert (
        tshark_backend._tshark_message(
            RuntimeError(
                "TShark (pid 1) seems to have crashed (retcode: 255).\nLast error line: None\n"
                "Try rerunning in debug mode"
            )  # fmt: skip
        )
        == "tshark exited with status 255 and said nothing more"
    )


@pytest.mark.parametrize("name", ["pngtg_be_test101.pcapng", "pngtg_le_test202.pcapng"])
def test_a_packet_without_a_timestamp_takes_the_one_before_as_natively(name):
    native, _ = read(CAPTURES / name, "native")
    tshark, notes = read(CAPTURES / name)
    assert notes == [] and len(tshark) == len(native)
    assert (tshark.ts_ns == native.ts_ns).all()
    assert (tshark.frame == native.frame).all()


def test_records_that_are_not_packets_are_skipped_not_fatal():
    batch, notes = read(CAPTURES / "pngtg_le_test017.pcapng")  # custom blocks only
    assert len(batch) == 0 and notes == []


def test_standard_input_is_read_through_a_temporary_copy():
    ssh = CAPTURES / "zeek_ssh.pcap"
    args = [sys.executable, "-m", "portlabel", "label", "-", "-F", "jsonl", "--uid-seed", "1"]
    with open(ssh, "rb") as fh:
        piped = subprocess.run([*args, "--backend", "tshark"], stdin=fh, capture_output=True)
    native = subprocess.run([*args[:4], str(ssh), *args[5:]], capture_output=True)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == native.stdout and piped.stdout.count(b"\n") == 25
    assert piped.stderr == b""  # no "Exception ignored" from a loop left open, no notices


def test_event_loops_are_closed_after_each_file():
    import asyncio

    loops: list = []
    real = asyncio.new_event_loop

    def spy():
        loop = real()
        loops.append(loop)
        return loop

    asyncio.new_event_loop = spy
    try:
        done = threading.Thread(target=lambda: read(CAPTURES / "zeek_ssh.pcap"))
        done.start()
        done.join()
    finally:
        asyncio.new_event_loop = real
    assert loops and all(loop.is_closed() for loop in loops)


def test_a_pyshark_capture_opened_on_the_main_thread_does_not_break_a_worker_read():
    import pyshark

    capture = pyshark.FileCapture(str(CAPTURES / "zeek_ssh.pcap"), use_json=True)
    try:
        capture[0]  # pyshark sets a SafeChildWatcher tied to this thread's loop
    finally:
        capture.close()
    got: list = []
    worker = threading.Thread(target=lambda: got.append(read(CAPTURES / "zeek_ssh.pcap")))
    worker.start()
    worker.join()
    batch, notes = got[0]
    assert len(batch) == 1797 and notes == []
