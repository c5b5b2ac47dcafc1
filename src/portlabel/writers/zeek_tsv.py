"""Zeek's TSV log form (the ASCII writer's default): a ``conn.log`` Zeek's tools can read.

Layout: the header block (``#separator \\x09``, ``#set_separator``, ``#empty_field``,
``#unset_field``, ``#path``, ``#open``, ``#fields``, ``#types``), one line per flow, and
``#close``. Fields and types come from ``zeek_fields.conn_log_fields``.

Values follow Zeek's ASCII writer: times and intervals with six decimals, booleans
``T``/``F``, unset (null) fields ``-``, empty strings and empty sets ``(empty)``, set
elements joined by the set separator. Escaping: a backslash, a control byte (including
the separator) or DEL inside a string is written ``\\xNN``, as is the set separator inside
a set element; a value that is literally ``-`` or ``(empty)`` has its first byte escaped
so that it is not read back as unset or empty. Valid UTF-8 is kept as is (Arrow strings
are always valid UTF-8).
"""

from __future__ import annotations

import time
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portlabel.arrowutil import scalar
from portlabel.textrows import Numbers
from portlabel.writers.text import (
    all_empty_lists,
    fix_rows,
    fixed_decimals,
    join_rows,
    list_join,
    string_bytes,
    to_text,
)
from portlabel.writers.zeek_fields import ALWAYS_UNSET, conn_log_fields

SEPARATOR = "\t"
SET_SEPARATOR = ","
EMPTY = "(empty)"
UNSET = "-"
DATE_FORMAT = "%Y-%m-%d-%H-%M-%S"
_SPECIAL = r"[\x00-\x1f\x7f\\]|^-$|^\(empty\)$|^$"
_SPECIAL_IN_SET = r"[\x00-\x1f\x7f\\,]|^-$|^\(empty\)$|^$"


def escape(text: str, in_set: bool = False) -> str:
    """One string value as Zeek's ASCII writer writes it."""
    if text == "":
        return EMPTY
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or ch == "\\" or (in_set and ch == SET_SEPARATOR):
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    if text in (UNSET, EMPTY):
        out[0] = f"\\x{ord(text[0]):02x}"
    return "".join(out)


def _strings(values: pa.Array, in_set: bool = False) -> pa.Array:
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    if not _may_need_escapes(values, in_set):
        return values
    pattern = _SPECIAL_IN_SET if in_set else _SPECIAL
    return fix_rows(values, pattern, lambda s: escape(s, in_set))


def _may_need_escapes(values: pa.Array, in_set: bool) -> bool:
    """Whether a string array may hold a value ``escape`` changes: one with a byte it
    escapes, or one that may be ``-``, ``(empty)`` or empty (read from the array's
    buffers, a few comparisons per byte; the regex kernel is the exact test)."""
    n = len(values)
    if not n:
        return False
    bounds, raw = string_bytes(values)
    lengths = np.diff(bounds)
    if not len(raw):
        raw = np.zeros(1, np.uint8)  # every value empty: a byte for ``first`` to read
    first = raw[np.minimum(bounds[:-1], len(raw) - 1)]
    whole = (lengths == 1) & (first == _DASH) | (lengths == len(EMPTY)) & (first == _PAREN)
    if values.null_count:  # a null's slot is empty too: only a set value counts
        validity = values.buffers()[0]
        valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        whole |= (lengths == 0) & valid[values.offset : values.offset + n].astype(bool)
    else:
        whole |= lengths == 0
    if whole.any():
        return True
    body = raw[bounds[0] : bounds[-1]]
    special = (body < 0x20).any() or (body == 0x7F).any() or (body == _BACKSLASH).any()
    return bool(special or (in_set and (body == _COMMA).any()))


_DASH, _PAREN, _BACKSLASH, _COMMA = (np.uint8(ord(c)) for c in ("-", "(", "\\", SET_SEPARATOR))


def _set(values: pa.Array) -> pa.Array:
    if all_empty_lists(values):
        return pa.repeat(scalar(EMPTY), len(values))
    joined = list_join(values, lambda items: _strings(items, in_set=True), SET_SEPARATOR)
    empty = pc.equal(pc.list_value_length(values), scalar(0, "int32"))
    return pc.if_else(empty, scalar(EMPTY), joined)


def render_column(values: pa.Array, zeek_type: str) -> pa.Array:
    """Text of each value of ``values`` (Zeek type ``zeek_type``), unset ones as ``-``."""
    if zeek_type in ("time", "interval", "double"):
        text = fixed_decimals(values, 6)
    elif zeek_type in ("count", "int", "port"):
        text = to_text(values)
    elif zeek_type == "bool":
        text = pc.if_else(values, scalar("T"), scalar("F"))
    elif zeek_type.startswith(("set[", "vector[")):
        text = _set(values)
    else:
        text = _strings(values)
    return text.fill_null(scalar(UNSET)) if text.null_count else text


def _column(values: pa.Array, zeek_type: str):
    """``render_column``'s text, or, for integers and times, a ``Numbers`` column whose
    text the row join writes itself (the same bytes)."""
    kind = values.type
    if zeek_type in ("count", "int", "port") and pa.types.is_integer(kind):
        return Numbers(values, UNSET)
    if zeek_type == "time" and pa.types.is_timestamp(kind) and kind.unit == "ns":
        return Numbers(values, UNSET, 6)
    return render_column(values, zeek_type)


def header_lines(fields: list[tuple[str, str]], path: str, opened: float) -> str:
    names = SEPARATOR.join(n for n, _ in fields)
    types = SEPARATOR.join(t for _, t in fields)
    lines = [
        "#separator \\x09",
        f"#set_separator{SEPARATOR}{SET_SEPARATOR}",
        f"#empty_field{SEPARATOR}{EMPTY}",
        f"#unset_field{SEPARATOR}{UNSET}",
        f"#path{SEPARATOR}{path}",
        f"#open{SEPARATOR}{time.strftime(DATE_FORMAT, time.localtime(opened))}",
        f"#fields{SEPARATOR}{names}",
        f"#types{SEPARATOR}{types}",
    ]
    return "\n".join(lines) + "\n"


class ZeekTsvWriter:
    """Writes labelled flow tables of one schema as a Zeek TSV conn log."""

    def __init__(self, out: BinaryIO, schema: pa.Schema, path: str = "conn") -> None:
        self.out = out
        self.fields = conn_log_fields(schema)
        self.out.write(header_lines(self.fields, path, time.time()).encode())

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            if batch.num_rows:
                self.out.write(self._lines(batch))

    def _lines(self, batch: pa.RecordBatch) -> memoryview:
        columns = []
        for name, zeek_type in self.fields:
            if name in ALWAYS_UNSET and name not in batch.schema.names:
                columns.append(scalar(UNSET))
            else:
                columns.append(_column(batch.column(name), zeek_type))
        return join_rows(columns, SEPARATOR)

    def close(self) -> None:
        closed = time.strftime(DATE_FORMAT, time.localtime())
        self.out.write(f"#close{SEPARATOR}{closed}\n".encode())
