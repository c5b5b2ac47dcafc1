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

from portlabel.arrowutil import scalar
from portlabel.writers.text import epoch_seconds, fix_rows, join_rows, list_join, to_text

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
            return _quoted(encoded.dictionary).take(encoded.indices)
    return _quoted(values)


def _quoted(values: pa.Array) -> pa.Array:
    inner = values
    if _may_need_escapes(values):
        inner = fix_rows(values, _NEEDS_ESCAPE, lambda s: json.dumps(s, ensure_ascii=False)[1:-1])
    return pc.binary_join_element_wise(scalar('"'), inner, scalar('"'), scalar(""))


def _may_need_escapes(values: pa.Array) -> bool:
    """Whether any byte of a string array's values needs escaping (read from its data)."""
    _, offsets, data = values.buffers()
    if data is None or not len(values):
        return False
    bounds = np.frombuffer(offsets, dtype=np.int32)[[values.offset, values.offset + len(values)]]
    raw = np.frombuffer(data, dtype=np.uint8)[bounds[0] : bounds[1]]
    return bool((raw < 0x20).any() or (raw == _QUOTE).any() or (raw == _BACKSLASH).any())


def json_values(values: pa.Array, time_digits: int | None = None) -> pa.Array:
    """Each value as JSON text; nulls stay null."""
    kind = values.type
    if pa.types.is_timestamp(kind):  # seconds, a JSON number
        return epoch_seconds(values, time_digits)
    if pa.types.is_floating(kind):
        if time_digits is not None:
            values = pc.round(values, time_digits)
        finite = pc.is_finite(values)
        return pc.if_else(finite, to_text(values), scalar(None))
    if pa.types.is_integer(kind):
        return to_text(values)
    if pa.types.is_boolean(kind):
        return pc.if_else(values, scalar("true"), scalar("false"))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        joined = list_join(values, json_values, ",")
        return pc.binary_join_element_wise(scalar("["), joined, scalar("]"), scalar(""))
    return _escaped(values)


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
        texts = []
        for name in self.names:
            digits = self.time_digits if name in self.time_columns else None
            texts.append(json_values(batch.column(name), digits))
        if self.omit_nulls:
            pairs = zip(self.keys, texts, strict=True)
            items = [pc.binary_join_element_wise(scalar(k), t, scalar("")) for k, t in pairs]
            return join_rows(items, ",", prefix="{", suffix="}\n", skip_nulls=True)
        # one kernel call: "{" key0 value0 "," key1 value1 ... "}\n"
        parts: list = []
        for i, (key, text) in enumerate(zip(self.keys, texts, strict=True)):
            parts += [scalar(("{" if i == 0 else ",") + key), text.fill_null(scalar("null"))]
        return join_rows(parts, "", suffix="}\n")

    def close(self) -> None:
        pass
