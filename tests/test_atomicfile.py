"""Atomic output: complete or absent, with the mode users expect."""

from __future__ import annotations

import os
import stat

import pytest

from portlabel.atomicfile import atomic_output


def test_new_file_gets_the_umask_mode_not_the_temporary_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "out.log"
        with atomic_output(str(path)) as fh:
            fh.write(b"data\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_bytes() == b"data\n"


def test_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    with atomic_output(str(path)) as fh:
        fh.write(b"new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes() == b"new\n"


def test_failure_leaves_the_original_and_no_temporary(tmp_path):
    path = tmp_path / "conn.log"
    path.write_bytes(b"original\n")
    with pytest.raises(RuntimeError), atomic_output(str(path)) as fh:
        fh.write(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"original\n"
    assert [p.name for p in tmp_path.iterdir()] == ["conn.log"]
