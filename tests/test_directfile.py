"""Outputs written past the page cache: what reaches the file is what was written, at
every flush and at the end, whatever the sizes of the writes; errors are not lost."""

from __future__ import annotations

import errno
import fcntl
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel import directfile
from portlabel.atomicfile import atomic_output
from portlabel.directfile import BLOCK, DirectFile, direct_or_plain


def _direct_fd(path) -> int:
    """A new file's descriptor, with O_DIRECT where the file system takes it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
    except OSError:
        pass
    return fd


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=3 * BLOCK + 7).map(lambda b: ("w", b)),
                          st.integers(1, 5 * BLOCK).map(lambda n: ("w", bytes([n % 251]) * n)),
                          st.just(("flush", b""))), max_size=25))  # fmt: skip
def test_the_file_holds_what_was_written_at_every_flush_and_at_close(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("direct") / "out.bin"
    f = DirectFile(_direct_fd(path), staging=2 * BLOCK)  # small: buffers turn over often
    written = b""
    for op, data in steps:
        if op == "w":
            assert f.write(data) == len(data)
            written += data
            assert f.tell() == len(written)
        else:
            f.flush()
            assert path.read_bytes() == written  # a reader of a flushed stream sees it all
    f.close()
    assert path.read_bytes() == written
    f.close()  # twice is harmless


def test_atomic_outputs_are_direct_where_possible_and_the_same_either_way(tmp_path, monkeypatch):
    data = os.urandom(3 * directfile.STAGING + 12345)
    with atomic_output(str(tmp_path / "a.bin")) as out:
        out.write(data[:100])
        out.write(memoryview(data)[100:])
    monkeypatch.setenv("PORTLABEL_DIRECT_IO", "0")
    with atomic_output(str(tmp_path / "b.bin")) as out:
        assert not isinstance(out, DirectFile)
        out.write(data)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes() == data


def test_a_write_error_in_the_writer_thread_is_raised_to_the_caller(tmp_path):
    path = tmp_path / "ro.bin"
    path.write_bytes(b"")
    f = DirectFile(os.open(path, os.O_RDONLY), staging=BLOCK)  # every write will fail
    with pytest.raises(OSError) as caught:
        for _ in range(4):
            f.write(b"x" * BLOCK)
        f.flush()
    assert caught.value.errno == errno.EBADF
    with pytest.raises(OSError):
        f.close()
    assert f.closed


def test_a_file_system_refusing_direct_writes_falls_back_to_buffered_ones(tmp_path, monkeypatch):
    real, refused = os.pwrite, []

    def pwrite(fd, data, offset):
        if not refused:
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(directfile.os, "pwrite", pwrite)
    path = tmp_path / "f.bin"
    f = DirectFile(_direct_fd(path))
    data = os.urandom(directfile.STAGING + 5000)
    f.write(data)
    f.close()
    assert refused == [0] and path.read_bytes() == data and not f._direct


def test_without_o_direct_an_ordinary_file_is_given(tmp_path, monkeypatch):
    monkeypatch.delattr(directfile.os, "O_DIRECT")
    f = direct_or_plain(os.open(tmp_path / "p.bin", os.O_WRONLY | os.O_CREAT))
    assert not isinstance(f, DirectFile)
    f.write(b"abc")
    f.close()
    assert (tmp_path / "p.bin").read_bytes() == b"abc"
