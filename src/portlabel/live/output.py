"""Streaming output for live capture: the shared writers, flushed per batch, with rotation.

``FlowSink`` wraps one of ``portlabel.writers``' streamable formats (chosen by name) around a
stream: each labelled flow table is written and the stream flushed at once, so a reader
of stdout or of the log sees every flow as soon as it ends. With ``rotate`` seconds, the
file is closed every period and renamed Zeek's way, ``conn.<open>-<close>.log`` (times
``%Y-%m-%d-%H-%M-%S``, local time), and a new one is opened; the last one is renamed the
same way when the sink closes.
"""

from __future__ import annotations

import os
import sys
import time
from typing import BinaryIO

import pyarrow as pa

from portlabel.errors import UsageError
from portlabel.writers import get_format

ROTATED_TIME = "%Y-%m-%d-%H-%M-%S"


def rotated_name(path: str, opened: float, closed: float, extension: str = "log") -> str:
    """``dir/conn.log`` opened and closed at those times -> ``dir/conn.<open>-<close>.log``
    (a name without an extension gets ``extension``, the format's)."""
    head, tail = os.path.split(path)
    stem, dot, ext = tail.rpartition(".")
    if not dot:
        stem, ext = tail, extension
    a = time.strftime(ROTATED_TIME, time.localtime(opened))
    b = time.strftime(ROTATED_TIME, time.localtime(closed))
    return os.path.join(head, f"{stem}.{a}-{b}.{ext}")


class FlowSink:
    """Labelled flow tables to a file or stdout, flushed per write, optionally rotated."""

    def __init__(
        self,
        path: str | None,
        fmt: str,
        schema: pa.Schema,
        rotate: float | None = None,
    ) -> None:
        if rotate and not path:
            raise UsageError("--rotate needs -o PATH (rotation renames files)")
        self.format = get_format(fmt, streamable=True)
        if self.format.binary and not path:
            raise UsageError(f"{fmt} output needs -o PATH")
        self.path = path
        self.schema = schema
        self.cls = self.format.writer_class()
        self.rotate = rotate
        self.rotated: list[str] = []
        self.rows = 0
        self._open()

    def _open(self) -> None:
        self.opened = time.time()
        if self.path is None:
            self.stream: BinaryIO = sys.stdout.buffer
        else:
            try:
                self.stream = open(self.path, "wb")  # noqa: SIM115 - closed in _close
            except OSError as exc:
                raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        self.writer = self.cls(self.stream, self.schema)
        self.stream.flush()

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.writer.write(table)
            self.stream.flush()
            self.rows += table.num_rows

    def due(self, now: float) -> bool:
        return bool(self.rotate) and now - self.opened >= self.rotate

    def rotate_now(self) -> str | None:
        """Close the current file, give it its rotated name and start a new one."""
        name = self._close()
        self._open()
        return name

    def _close(self) -> str | None:
        self.writer.close()
        self.stream.flush()
        if self.path is None:
            return None
        self.stream.close()
        if not self.rotate:
            return self.path
        name = rotated_name(self.path, self.opened, time.time(), self.format.extension)
        os.replace(self.path, name)
        self.rotated.append(name)
        return name

    def close(self) -> None:
        self._close()
