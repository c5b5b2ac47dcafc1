"""CSV: a header line of column names, one row per flow (RFC 4180 quoting).

Written by pyarrow's CSV writer. Nulls are empty fields; list columns (``tunnel_parents``,
``iana.aliases``) are their elements joined by ``,`` inside one quoted field.
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from portlabel.writers.text import list_join

LIST_SEPARATOR = ","


def _flat_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_list(f.type) else f for f in schema]
    )


class CsvWriter:
    """Writes labelled flow tables as CSV."""

    def __init__(self, out: BinaryIO, schema: pa.Schema) -> None:
        self.schema = _flat_schema(schema)
        self.writer = pacsv.CSVWriter(out, self.schema)

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            columns = [
                list_join(col, lambda v: v, LIST_SEPARATOR) if pa.types.is_list(col.type) else col
                for col in batch.columns
            ]
            self.writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()
