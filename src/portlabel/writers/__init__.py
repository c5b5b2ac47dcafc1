"""Output formats for labelled flows, by name and by file extension.

Every writer is a class ``Writer(out: BinaryIO, schema: pyarrow.Schema)`` with
``write(table)`` (called once per labelled flow table, in order) and ``close()`` (writes
any trailer; does not close ``out``). Modules are imported only when their format is
used, so choosing ``jsonl`` never imports Parquet or rich.
"""

from __future__ import annotations

import importlib
import os

# format name -> (module, writer class)
FORMATS: dict[str, tuple[str, str]] = {
    "jsonl": ("portlabel.writers.jsonl", "JsonWriter"),
    "csv": ("portlabel.writers.csv", "CsvWriter"),
    "zeek": ("portlabel.writers.zeek_tsv", "ZeekTsvWriter"),
    "zeek-json": ("portlabel.writers.zeek_json", "ZeekJsonWriter"),
    "parquet": ("portlabel.writers.parquet", "ParquetWriter"),
    "table": ("portlabel.writers.table", "TableWriter"),
}
EXTENSIONS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".log": "zeek",
    ".parquet": "parquet",
    ".pq": "parquet",
}
BINARY_FORMATS = frozenset({"parquet"})


def format_for_path(path: str) -> str | None:
    """The format a file name asks for by its extension, or None."""
    ext = os.path.splitext(path)[1].lower()
    return EXTENSIONS.get(ext)


def writer_class(name: str) -> type:
    """The writer class of format ``name`` (KeyError for an unknown one)."""
    module, cls = FORMATS[name]
    return getattr(importlib.import_module(module), cls)
