"""Zeek's JSON log form: one object per line, Zeek's field names and order.

As Zeek's JSON writer does: unset fields are left out (so ``service``, ``local_orig`` and
``local_resp``, which portlabel never fills, never appear), ``ts`` is a number (seconds,
rounded to microseconds like every Zeek time), sets are arrays, and there is no header.
Fields are ordered as in the TSV form (``zeek_fields``).
"""

from __future__ import annotations

from typing import BinaryIO

import pyarrow as pa

from portlabel.writers.jsonl import JsonWriter
from portlabel.writers.zeek_fields import ALWAYS_UNSET, conn_log_fields


class ZeekJsonWriter(JsonWriter):
    """Writes labelled flow tables as a Zeek JSON conn log."""

    def __init__(self, out: BinaryIO, schema: pa.Schema) -> None:
        fields = [(n, t) for n, t in conn_log_fields(schema) if n in schema.names]
        times = tuple(n for n, t in fields if t == "time")
        self.order = [n for n, _ in fields if n not in ALWAYS_UNSET or n in schema.names]
        super().__init__(out, pa.schema([schema.field(n) for n in self.order]), True, 6, times)

    def write(self, table: pa.Table) -> None:
        super().write(table.select(self.order))
