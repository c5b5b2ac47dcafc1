"""CSV: a header line of column names, one row per flow (RFC 4180 quoting).

Written by pyarrow's CSV writer. Nulls are empty fields; list columns (``tunnel_parents``,
``iana.aliases``) are their elements joined by ``,`` inside one quoted field; times
(``ts``) are seconds since the epoch with the capture's digits, as in JSON lines.
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from portlabel.writers.text import epoch_seconds, list_join

LIST_SEPARATOR = ","


def _text_type(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_timestamp(kind)


def _flat_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) if _text_type(f.type) else f for f in schema])


def _flat(col: pa.Array) -> pa.Array:
    if pa.types.is_list(col.type):
        return list_join(col, lambda v: v, LIST_SEPARATOR)
    if pa.types.is_timestamp(col.type):
        return epoch_seconds(col)
    return col


class CsvWriter:
    """Writes labelled flow tables as CSV."""

    def __init__(self, out: BinaryIO, schema: pa.Schema) -> None:
        self.schema = _flat_schema(schema)
        self.writer = pacsv.CSVWriter(out, self.schema)

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            columns = [_flat(col) for col in batch.columns]
            self.writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()
