"""JSON lines: one object per flow, every column a key, nulls written as ``null``.

Values are rendered with pyarrow kernels (see ``text``): numbers in their shortest
round-trip form, strings JSON-escaped (the rare ones holding a quote, a backslash or a
control character through ``json.dumps``), lists as arrays. Non-finite doubles, which
JSON cannot hold, are written as ``null``. ``JsonWriter(omit_nulls=True, time_digits=6)``
is Zeek's JSON form (see ``zeek_json``).
"""

from __future__ import annotations

import json
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portlabel.arrowutil import plain_values, scalar
from portlabel.textrows import Numbers
from portlabel.writers.text import (
    all_empty_lists,
    epoch_seconds,
    fix_rows,
    join_rows,
    list_join,
    string_bytes,
    to_text,
)

_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'


# the bytes a JSON string cannot hold as they are: controls, the quote, the backslash
_QUOTE, _BACKSLASH = np.uint8(ord('"')), np.uint8(ord("\\"))


def _escaped(values: pa.Array) -> pa.Array:
    """Strings as JSON strings. A column of few distinct values (services, states) is
    rendered once per value and gathered; one without a byte to escape skips the regex."""
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    # few distinct values among the first 256 (a sample, not to encode a uid column)
    if len(values) >= 256 and len(pc.unique(values.slice(0, 256))) <= 32:
        encoded = pc.dictionary_encode(values)
        if 4 * len(encoded.dictionary) <= len(values):
            return _escaped(encoded.dictionary).take(encoded.indices)
    return pc.binary_join_element_wise(scalar('"'), _inner(values), scalar('"'), scalar(""))


def _inner(values: pa.Array) -> pa.Array:
    """Strings as the text between a JSON string's quotes."""
    if _may_need_escapes(values):
        return fix_rows(values, _NEEDS_ESCAPE, lambda s: json.dumps(s, ensure_ascii=False)[1:-1])
    return values


def _may_need_escapes(values: pa.Array) -> bool:
    """Whether any byte of a string array's values needs escaping (read from its data)."""
    if not len(values):
        return False
    bounds, data = string_bytes(values)
    raw = data[bounds[0] : bounds[-1]]
    return bool((raw < 0x20).any() or (raw == _QUOTE).any() or (raw == _BACKSLASH).any())


def json_values(values: pa.Array, time_digits: int | None = None) -> pa.Array:
    """Each value as JSON text; nulls stay null."""
    kind = values.type
    if pa.types.is_timestamp(kind):  # seconds, a JSON number
        return epoch_seconds(values, time_digits)
    if pa.types.is_floating(kind):
        if time_digits is not None:
            values = pc.round(values, time_digits)
        if not values.null_count and np.isfinite(plain_values(values)).all():
            return to_text(values)
        return pc.if_else(pc.is_finite(values), to_text(values), scalar(None))
    if pa.types.is_integer(kind):
        return to_text(values)
    if pa.types.is_boolean(kind):
        return pc.if_else(values, scalar("true"), scalar("false"))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        joined = list_join(values, json_values, ",")
        return pc.binary_join_element_wise(scalar("["), joined, scalar("]"), scalar(""))
    return _escaped(values)


EMPTY_LIST = object()  # a column of empty lists only: "[]" in every row


def _numbers(kind: pa.DataType) -> bool:
    """Integers and nanosecond times: their text is written by the row join."""
    return pa.types.is_integer(kind) or (pa.types.is_timestamp(kind) and kind.unit == "ns")


class JsonWriter:
    """Writes labelled flow tables as JSON lines."""

    def __init__(
        self,
        out: BinaryIO,
        schema: pa.Schema,
        omit_nulls: bool = False,
        time_digits: int | None = None,
        time_columns: tuple[str, ...] = (),
    ) -> None:
        self.out = out
        self.names = list(schema.names)
        self.keys = [json.dumps(n, ensure_ascii=False) + ":" for n in self.names]
        self.omit_nulls = omit_nulls
        self.time_digits = time_digits
        self.time_columns = set(time_columns)

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            if batch.num_rows:
                self.out.write(self._lines(batch))

    def _lines(self, batch: pa.RecordBatch) -> memoryview:
        columns = [batch.column(name) for name in self.names]
        # each column's JSON text, or: None (a string column with no null, quoted by the
        # constant pieces), EMPTY_LIST, or Numbers (written by the row join itself)
        texts: list = []
        for name, column in zip(self.names, columns, strict=True):
            if all_empty_lists(column):
                texts.append(EMPTY_LIST)
                continue
            digits = self.time_digits if name in self.time_columns else None
            if not self.omit_nulls and _numbers(column.type):
                texts.append(Numbers(column, "null", digits))
                continue
            if not self.omit_nulls and pa.types.is_string(column.type) and not column.null_count:
                texts.append(None)
                continue
            texts.append(json_values(column, digits))
        if self.omit_nulls:
            items = [
                scalar(key + "[]") if text is EMPTY_LIST
                else pc.binary_join_element_wise(scalar(key), text, scalar(""))
                for key, text in zip(self.keys, texts, strict=True)
            ]  # fmt: skip
            return join_rows(items, ",", prefix="{", suffix="}\n", skip_nulls=True)
        # one row-joining call: "{" key0 value0 "," key1 value1 ... "}\n", a string
        # column with no null as '"' text '"' with its quotes in the constant pieces
        parts: list = []
        constant = "{"
        for i, (key, column, text) in enumerate(zip(self.keys, columns, texts, strict=True)):
            constant += ("," if i else "") + key
            if text is None:
                parts += [scalar(constant + '"'), _inner(column)]
                constant = '"'
            elif text is EMPTY_LIST:
                constant += "[]"
            elif isinstance(text, Numbers):  # written by the row join itself
                parts += [scalar(constant), text]
                constant = ""
            else:
                if text.null_count:
                    text = text.fill_null(scalar("null"))
                parts += [scalar(constant), text]
                constant = ""
        return join_rows(parts, "", suffix=constant + "}\n")

    def close(self) -> None:
        pass
