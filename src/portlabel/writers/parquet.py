"""Parquet: the labelled flow table as is (Arrow types kept, lists as lists)."""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 1 << 17  # flows per row group: small tables are gathered up to this


class ParquetWriter:
    """Writes labelled flow tables as one Parquet file."""

    def __init__(self, out: BinaryIO, schema: pa.Schema) -> None:
        self.writer = pq.ParquetWriter(out, schema, compression="snappy")
        self.pending: list[pa.Table] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.rows += table.num_rows
        if self.rows >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.concat_tables(self.pending), row_group_size=ROW_GROUP)
        self.pending, self.rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
