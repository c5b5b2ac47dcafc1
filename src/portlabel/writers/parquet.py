"""Parquet: the labelled flow table as is (Arrow types kept, lists as lists)."""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

# flows per row group: small tables are gathered up to this, and every full group is
# written as soon as it is complete (while the flow engine goes on), so closing the file
# writes at most one partial group
ROW_GROUP = 1 << 15
# columns whose values are (nearly) unique per flow: dictionary encoding only costs time
# there (Parquet falls back to plain pages after trying); every other column is dictionary
# encoded (hosts, ports, states, labels repeat)
PER_FLOW_COLUMNS = frozenset(
    {"ts", "uid", "duration", "community_id", "id.orig_p", "missed_bytes", "orig_bytes",
     "resp_bytes", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"}
)  # fmt: skip


class ParquetWriter:
    """Writes labelled flow tables as one Parquet file."""

    def __init__(self, out: BinaryIO, schema: pa.Schema) -> None:
        dictionary = [name for name in schema.names if name not in PER_FLOW_COLUMNS]
        self.writer = pq.ParquetWriter(out, schema, compression="snappy", use_dictionary=dictionary)
        self.pending: list[pa.Table] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table)
            self.rows += table.num_rows
        if self.rows >= ROW_GROUP:
            self._flush(whole_groups_only=True)

    def _flush(self, whole_groups_only: bool = False) -> None:
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        upto = table.num_rows - table.num_rows % ROW_GROUP if whole_groups_only else table.num_rows
        if upto:
            self.writer.write_table(table.slice(0, upto), row_group_size=ROW_GROUP)
        rest = table.slice(upto)
        self.pending, self.rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> None:
        self._flush()
        self.writer.close()

    def abandon(self) -> None:
        """Give up on the output (an error or Ctrl-C upstream; the file is discarded):
        close the Parquet writer now, without the pending rows, so that it does not try
        to write a footer into a closed file when it is garbage-collected."""
        self.pending, self.rows = [], 0
        self.writer.close()
