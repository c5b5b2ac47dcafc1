"""Several captures as one: a file given twice is read once, time going back is told."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from portlabel.capture.inputs import CaptureInputs
from portlabel.cli import main

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
SSH = CAPTURES / "zeek_ssh.pcap"


def split_pcap(source: Path, first: Path, second: Path) -> int:
    """Write the first half of ``source``'s records to ``first``, the rest to
    ``second`` (each with the global header); the number of records in all."""
    data = source.read_bytes()
    header, pos, records = data[:24], 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        records.append(data[pos : pos + 16 + incl])
        pos += 16 + incl
    half = len(records) // 2
    first.write_bytes(header + b"".join(records[:half]))
    second.write_bytes(header + b"".join(records[half:]))
    return len(records)


def frames_of(inputs: CaptureInputs) -> int:
    return sum(len(batch) for batch in inputs.raw_batches())


@pytest.mark.parametrize("how", ["same name", "symlink", "hard link"])
def test_a_file_given_twice_is_read_once_with_a_warning(tmp_path, how):
    again = SSH
    if how == "symlink":
        again = tmp_path / "link.pcap"
        again.symlink_to(SSH)
    elif how == "hard link":
        copy = tmp_path / "copy.pcap"
        copy.write_bytes(SSH.read_bytes())
        again = tmp_path / "hard.pcap"
        os.link(copy, again)
        once = CaptureInputs([copy])
        inputs = CaptureInputs([copy, again])
        assert frames_of(inputs) == frames_of(once)
        assert inputs.warnings == [f"{again}: the same file as {copy}, given again: read once"]
        return
    once = CaptureInputs([SSH])
    inputs = CaptureInputs([SSH, again])
    assert frames_of(inputs) == frames_of(once)
    assert inputs.warnings == [f"{again}: the same file as {SSH}, given again: read once"]


def test_two_copies_are_two_files(tmp_path):
    copy = tmp_path / "copy.pcap"
    copy.write_bytes(SSH.read_bytes())
    inputs = CaptureInputs([SSH, copy])
    assert frames_of(inputs) == 2 * frames_of(CaptureInputs([SSH]))
    # a copy is a separate file whose time goes back to the start of the first
    assert len(inputs.warnings) == 1 and "before the last packet of" in inputs.warnings[0]


def test_rotated_files_in_order_are_quiet_and_out_of_order_are_told(tmp_path):
    early, late = tmp_path / "part1.pcap", tmp_path / "part2.pcap"
    total = split_pcap(SSH, early, late)
    in_order = CaptureInputs([early, late])
    assert frames_of(in_order) == total and in_order.warnings == []
    reversed_ = CaptureInputs([late, early])
    assert frames_of(reversed_) == total  # nothing is dropped: only told
    (warning,) = reversed_.warnings
    assert warning.startswith(f"{early}: starts at 2011-")
    assert f"before the last packet of {late} (2015-01-12 05:45:28.379372 UTC)" in warning
    assert warning.endswith(
        "read after it, in the order given; if the files are one capture, give them in time order"
    )


def test_the_cli_says_it_once(tmp_path, capfd):
    assert main(["label", str(SSH), str(SSH), "-F", "jsonl", "--uid-seed", "7"]) == 0
    once = capfd.readouterr()
    assert main(["label", str(SSH), "-F", "jsonl", "--uid-seed", "7"]) == 0
    assert capfd.readouterr().out == once.out
    assert once.err.count("given again: read once") == 1
