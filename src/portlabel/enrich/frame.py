"""Add the ``iana.*`` columns to an in-memory table: a pandas DataFrame or pyarrow Table.

The frame needs ``id.resp_p`` and a transport: ``proto`` (Zeek's enum), ``ip_proto`` or
``tunnel_type``, or a ``path`` argument naming the log (see ``transport``). Ports may be
integers, floats (pandas turns a port column with gaps into float) or strings; values
that are not a port 0-65535 (``-``, NaN, ``None``) leave the row's ``iana.*`` unset.
Existing ``iana.*`` columns are replaced, so re-labelling a frame is idempotent.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import numeric, strings
from portlabel.enrich.render import NO_PORT, label_columns
from portlabel.enrich.transport import (
    PORT_COLUMN,
    PROTO_NUMBERS,
    TUNNEL_TRANSPORT,
    UNKNOWN,
    path_transport,
)
from portlabel.labelling.iana import IANA_COLUMNS


def add_iana_columns(frame, registry=None, path: str | None = None):
    """A copy of ``frame`` with the ``iana.*`` columns appended (IANA_FIELDS order)."""
    if registry is None:
        from portlabel.registry import default_registry

        registry = default_registry()
    is_arrow = isinstance(frame, pa.Table)
    columns = frame.column_names if is_arrow else list(frame.columns)
    if PORT_COLUMN not in columns:
        raise ValueError(f"frame has no {PORT_COLUMN!r} column")

    def values(name: str) -> pa.Array | None:
        if name not in columns:
            return None
        if is_arrow:
            return frame.column(name).combine_chunks()
        import pandas as pd

        if name in (PORT_COLUMN, "ip_proto"):  # object columns may mix int, float, str
            numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(float, na_value=np.nan)
            return numeric(numbers)
        return pa.Array.from_pandas(frame[name].astype("string"))

    protos = _protocols(values, path)
    ports = _ports(values(PORT_COLUMN))
    labels = label_columns(registry, protos, ports)
    if is_arrow:
        table = frame.drop_columns([c for c in IANA_COLUMNS if c in columns])
        for name in IANA_COLUMNS:
            table = table.append_column(name, labels[name])
        return table
    import pandas as pd

    out = frame.drop(columns=[c for c in IANA_COLUMNS if c in columns])
    for name in IANA_COLUMNS:
        out[name] = pd.Series(labels[name].to_pandas(types_mapper=pd.ArrowDtype), index=out.index)
    return out


def _protocols(values, path: str | None) -> np.ndarray:
    import pyarrow.compute as pc

    n = len(values(PORT_COLUMN))
    protos = np.full(n, UNKNOWN, dtype=np.int64)
    ip_proto = values("ip_proto")
    if ip_proto is not None:
        numbers = _numbers(ip_proto)
        protos = np.where((numbers >= 0) & (numbers < UNKNOWN), numbers, UNKNOWN).astype(np.int64)
    for column, table in (("proto", PROTO_NUMBERS), ("tunnel_type", TUNNEL_TRANSPORT)):
        array = values(column)
        if array is None:
            continue
        array = pc.utf8_lower(array.cast(pa.string())) if column == "proto" else array
        keys = [k.lower() if column == "proto" else k for k in table]
        codes = np.array([*table.values(), UNKNOWN], dtype=np.int64)
        pos = pc.index_in(array.cast(pa.string()), value_set=strings(keys))
        protos = np.where(protos == UNKNOWN, codes[pos.fill_null(len(keys)).to_numpy()], protos)
    return np.where(protos == UNKNOWN, path_transport(path), protos)


def _numbers(array: pa.Array) -> np.ndarray:
    """Float values of a numeric or string column; NaN where it holds no number."""
    import pyarrow.compute as pc

    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        text = pc.utf8_trim_whitespace(array)
        ok = pc.fill_null(pc.utf8_is_decimal(text), False)
        array = pc.if_else(ok, text, None).cast(pa.float64())
    elif pa.types.is_dictionary(array.type):
        return _numbers(array.dictionary_decode())
    elif not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        array = array.cast(pa.float64())
    return array.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)


def _ports(array: pa.Array) -> np.ndarray:
    numbers = _numbers(array)
    ok = np.isfinite(numbers) & (numbers >= 0) & (numbers <= 65535)
    ok &= numbers == np.floor(np.where(ok, numbers, 0))
    return np.where(ok, np.nan_to_num(numbers), NO_PORT).astype(np.int64)
