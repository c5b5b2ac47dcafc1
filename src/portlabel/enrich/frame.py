"""Add the ``iana.*`` columns to an in-memory table: a pandas DataFrame or pyarrow Table.

The frame needs a service port and a transport. The port column is ``port=`` if given,
else the first present of Zeek's ``id.resp_p`` and NFStream's/CICFlowMeter's
``dst_port`` (also ``resp_p``, ``dport``, ``destination_port``). The transport is
``protocol=`` if given, else the first present of ``proto`` (Zeek), ``protocol``
(NFStream), ``ip_proto``, ``tunnel_type``, or a ``path`` argument naming the log (see
``transport``); a protocol column may hold names (``tcp``, ``UDP``) or IP protocol
numbers (``6``, ``17``), even mixed. Ports may be integers, floats (pandas turns a port
column with gaps into float) or strings; values that are not a port 0-65535 (``-``,
NaN, ``None``) leave the row's ``iana.*`` unset. Existing ``iana.*`` columns are
replaced, so re-labelling a frame is idempotent.
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

PORT_COLUMNS = (PORT_COLUMN, "dst_port", "resp_p", "dport", "destination_port")
PROTOCOL_COLUMNS = ("proto", "protocol", "ip_proto", "tunnel_type")


def add_iana_columns(
    frame,
    registry=None,
    path: str | None = None,
    *,
    port: str | None = None,
    protocol: str | None = None,
):
    """A copy of ``frame`` with the ``iana.*`` columns appended (IANA_FIELDS order)."""
    if registry is None:
        from portlabel.registry import default_registry

        registry = default_registry()
    is_arrow = isinstance(frame, pa.Table)
    columns = frame.column_names if is_arrow else list(frame.columns)
    port_column = port or next((c for c in PORT_COLUMNS if c in columns), None)
    if port_column is None or port_column not in columns:
        wanted = repr(port) if port else " or ".join(repr(c) for c in PORT_COLUMNS[:2])
        raise ValueError(f"frame has no {wanted} column (name it with port=...)")
    if protocol is not None and protocol not in columns:
        raise ValueError(f"frame has no {protocol!r} column")

    def values(name: str) -> pa.Array | None:
        if name not in columns:
            return None
        if is_arrow:
            return frame.column(name).combine_chunks()
        import pandas as pd

        series = frame[name]
        if name == port_column or pd.api.types.is_numeric_dtype(series):
            # object columns may mix int, float, str: numbers where there are numbers
            numbers = pd.to_numeric(series, errors="coerce").to_numpy(float, na_value=np.nan)
            return numeric(numbers)
        return pa.Array.from_pandas(series.astype("string"))

    chosen = (protocol,) if protocol else tuple(c for c in PROTOCOL_COLUMNS if c in columns)
    protos = _protocols(values, chosen, len(values(port_column)), path)
    ports = _ports(values(port_column))
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


def _protocols(values, chosen: tuple[str, ...], n: int, path: str | None) -> np.ndarray:
    """IP protocol numbers from the ``chosen`` columns, the first that says, per row."""
    protos = np.full(n, UNKNOWN, dtype=np.int64)
    for column in chosen:
        array = values(column)
        if array is None:
            continue
        found = _tunnel_codes(array) if column == "tunnel_type" else _protocol_codes(array)
        protos = np.where(protos == UNKNOWN, found, protos)
    return np.where(protos == UNKNOWN, path_transport(path), protos)


def _protocol_codes(array: pa.Array) -> np.ndarray:
    """A protocol column's numbers: IP protocol numbers as they are, names (any case)
    through Zeek's transport names."""
    import pyarrow.compute as pc

    numbers = _numbers(array)
    codes = np.where(
        np.isfinite(numbers) & (numbers >= 0) & (numbers < 256), np.nan_to_num(numbers), UNKNOWN
    ).astype(np.int64)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        keys = [k.lower() for k in PROTO_NUMBERS]
        table = np.array([*PROTO_NUMBERS.values(), UNKNOWN], dtype=np.int64)
        pos = pc.index_in(pc.utf8_lower(pc.utf8_trim_whitespace(array)), value_set=strings(keys))
        named = table[pos.fill_null(len(keys)).to_numpy(zero_copy_only=False)]
        codes = np.where(codes == UNKNOWN, named, codes)
    return codes


def _tunnel_codes(array: pa.Array) -> np.ndarray:
    import pyarrow.compute as pc

    keys = list(TUNNEL_TRANSPORT)
    table = np.array([*TUNNEL_TRANSPORT.values(), UNKNOWN], dtype=np.int64)
    pos = pc.index_in(array.cast(pa.string()), value_set=strings(keys))
    return table[pos.fill_null(len(keys)).to_numpy(zero_copy_only=False)]


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
