"""Test helpers: flow table rows as the text formats write them, for exact comparisons."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa


def ts_seconds(table: pa.Table) -> list[Decimal]:
    """Each flow's ``ts`` as exact seconds (the column holds nanoseconds)."""
    return [Decimal(ns) / 10**9 for ns in table.column("ts").cast(pa.int64()).to_pylist()]


def decimal_records(table: pa.Table) -> list[dict]:
    """``to_pylist`` with ``ts`` as exact seconds and every float as the Decimal of its
    shortest repr: what ``json.loads(line, parse_float=Decimal)`` gives back."""
    out = []
    for record, ts in zip(table.to_pylist(), ts_seconds(table), strict=True):
        row = {k: Decimal(repr(v)) if isinstance(v, float) else v for k, v in record.items()}
        row["ts"] = ts
        out.append(row)
    return out
