"""Flow writers: the output formats for labelled flows, declared in one table.

``FORMATS`` is the only list of formats: ``portlabel label -F``, ``portlabel live -F``,
the choice by file extension and rotation's file names all read it. Adding a format is
one module here with its writer class and one ``Format`` row; other distributions add
formats through the ``portlabel.writers`` entry points (``portlabel.plugins``).

Every writer is a class ``Writer(out: BinaryIO, schema: pyarrow.Schema)`` with
``write(table)`` (called once per labelled flow table, in order) and ``close()`` (writes
any trailer; does not close ``out``); it may have ``abandon()`` for a run that is given
up. A *streamable* format can be written as flows end (``live``, a pipe): each
``write`` leaves complete records behind. A *binary* format is not written to a
terminal. Modules are imported only when their format is used, so choosing ``jsonl``
never imports Parquet or rich.

Per-packet output (text lines, JSON lines, pcapng with comments) is
``portlabel.packet_writers``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from portlabel.errors import UsageError


@dataclass(frozen=True)
class Format:
    """One output format for labelled flows."""

    name: str
    module: str  # imported on first use
    writer: str  # the writer class in ``module``
    extension: str  # what a file in this format is named ``*.EXT`` (rotation, live)
    suffixes: tuple[str, ...]  # file extensions that choose this format
    binary: bool
    streamable: bool
    summary: str  # one line for --help and the README
    zeek_log: bool = False  # a Zeek log: flows are keyed as Zeek keys them unless told not

    def writer_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.writer)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("jsonl", f"{__name__}.jsonl", "JsonWriter", "jsonl",
               (".jsonl", ".ndjson", ".json"), False, True,
               "one JSON object per flow, every column (default on a pipe)"),
        Format("csv", f"{__name__}.csv", "CsvWriter", "csv", (".csv",), False, True,
               "a header line and one row per flow"),
        Format("zeek", f"{__name__}.zeek_tsv", "ZeekTsvWriter", "log", (".log",), False, True,
               "a conn.log in Zeek's TSV form (zeek-cut, zat)", zeek_log=True),
        Format("zeek-json", f"{__name__}.zeek_json", "ZeekJsonWriter", "log", (), False, True,
               "Zeek's JSON log form", zeek_log=True),
        Format("parquet", f"{__name__}.parquet", "ParquetWriter", "parquet",
               (".parquet", ".pq"), True, True, "the Arrow table as Parquet"),
        Format("table", f"{__name__}.table", "TableWriter", "txt", (), False, False,
               "a readable table with a summary (default on a terminal)"),
    )
}  # fmt: skip
EXTENSIONS: dict[str, str] = {s: f.name for f in FORMATS.values() for s in f.suffixes}


def plugin_format(name: str) -> Format | None:
    """The format a ``portlabel.writers`` entry point named ``name`` adds, if any."""
    from portlabel import plugins

    if name not in plugins.found(plugins.WRITERS):
        return None
    cls = plugins.load(plugins.WRITERS, name)
    if cls is None:
        return None
    summary = getattr(cls, "summary", None) or (cls.__doc__ or name).strip().split("\n")[0]
    return Format(
        name,
        cls.__module__,
        cls.__name__,
        getattr(cls, "extension", name),
        tuple(getattr(cls, "suffixes", ())),
        bool(getattr(cls, "binary", False)),
        bool(getattr(cls, "streamable", True)),
        summary,
        bool(getattr(cls, "zeek_log", False)),
    )


def get_format(name: str, streamable: bool = False) -> Format:
    """Format ``name``; ``UsageError`` if there is none (or, with ``streamable``, if it
    cannot be written as flows end). Plugins' formats come after the built-in ones."""
    fmt = FORMATS.get(name) or plugin_format(name)
    if fmt is None or (streamable and not fmt.streamable):
        known = ", ".join(format_names(streamable))
        raise UsageError(f"unknown output format {name!r} (choose from {known})")
    return fmt


def format_names(streamable: bool = False) -> tuple[str, ...]:
    """The formats' names (only those that can be written as flows end, if asked),
    plugins' included (their modules are not imported for this)."""
    from portlabel import plugins

    names = [f.name for f in FORMATS.values() if f.streamable or not streamable]
    names += [n for n in plugins.found(plugins.WRITERS) if n not in FORMATS]
    return tuple(names)


def format_for_path(path: str) -> str | None:
    """The format a file name asks for by its extension, or None."""
    ext = os.path.splitext(path)[1].lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    from portlabel import plugins

    for name in plugins.found(plugins.WRITERS):
        fmt = plugin_format(name)
        if fmt is not None and ext in fmt.suffixes:
            return name
    return None


def writer_class(name: str) -> type:
    """The writer class of format ``name``."""
    return get_format(name).writer_class()
