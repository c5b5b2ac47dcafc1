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


def test_a_fifo_is_written_in_place_not_renamed_over(tmp_path):
    # as /dev/null is: renaming a temporary file over a device replaced the device
    # itself with a regular file (found when `enrich -o /dev/null` did so, as root)
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with atomic_output(str(fifo)) as fh:
        fh.write(b"through the pipe\n")
    reader.join(10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_a_symbolic_link_stays_a_link_and_its_target_gets_the_data(tmp_path):
    target, link = tmp_path / "real.log", tmp_path / "link.log"
    target.write_bytes(b"old\n")
    link.symlink_to(target)
    with atomic_output(str(link), compress=True) as fh:
        fh.write(b"new\n")
    import gzip

    assert link.is_symlink() and gzip.decompress(target.read_bytes()) == b"new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.log", "real.log"]


def test_the_null_device_stays_a_device():
    with atomic_output(os.devnull) as fh:
        fh.write(b"gone\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
