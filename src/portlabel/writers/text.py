"""Vectorised text rendering of Arrow columns, shared by the text writers.

Every value of a batch is rendered with pyarrow compute kernels, column by column; rows
are then joined into one buffer (``textrows.join_columns``), which is written as is.
Python only touches the rare values that need escaping a kernel cannot express (control
characters): those rows are found with one regex kernel and rendered one by one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from portlabel.arrowutil import numeric, plain_values, scalar, strings
from portlabel.textrows import Column, join_columns

Renderer = Callable[[str], str]


def fix_rows(values: pa.Array, pattern: str, render: Renderer) -> pa.Array:
    """``values`` with each string matching the regex ``pattern`` replaced by ``render(s)``."""
    hits = pc.match_substring_regex(values, pattern)
    if not pc.any(hits).as_py():
        return values
    mask = hits.fill_null(scalar(False))
    rows = np.flatnonzero(plain_values(mask))
    fixed = strings([render(s) for s in values.take(numeric(rows)).to_pylist()])
    return pc.replace_with_mask(values, mask, fixed.cast(values.type))


def epoch_seconds(values: pa.Array, digits: int | None = None) -> pa.Array:
    """Timestamps (ns) as seconds since the epoch in text, with ``digits`` (1-9) decimals
    (rounded), or, with None, exactly: six decimals for a time on a whole microsecond (a
    microsecond capture's), nine otherwise. Nulls stay null."""
    ns = plain_values(values.cast(pa.int64()).fill_null(scalar(0, "int64")))
    negative = ns < 0
    ns = np.abs(ns)
    if digits is not None:
        step = 10 ** (9 - digits)
        units, rest = np.divmod(ns, step)  # rounded half up, without overflowing near 2**63
        whole, frac = np.divmod(units + (rest >= step - step // 2), 10**digits)
        width = np.full(len(ns), digits)
    else:
        whole, frac = np.divmod(ns, 10**9)
        micro = frac % 1000 == 0
        frac = np.where(micro, frac // 1000, frac)
        width = np.where(micro, 6, 9)
    text = pc.binary_join_element_wise(
        pc.cast(numeric(whole), pa.string()), _padded(frac, width), scalar(".")
    )
    if negative.any():
        minus = pc.binary_join_element_wise(scalar("-"), text, scalar(""))
        text = pc.if_else(numeric(negative), minus, text)
    return _restore_nulls(text, values)


def _padded(values: np.ndarray, width: np.ndarray) -> pa.Array:
    """Non-negative integers as text left-padded with zeros to each row's ``width``."""
    text = pc.cast(numeric(values), pa.string())
    widths = np.unique(width).tolist()
    out = pc.utf8_lpad(text, widths[0], "0") if widths else text
    for w in widths[1:]:
        out = pc.if_else(numeric(width == w), pc.utf8_lpad(text, w, "0"), out)
    return out


def fixed_decimals(values: pa.Array, digits: int = 6) -> pa.Array:
    """Doubles (or timestamps: seconds) as text with exactly ``digits`` decimals
    (``%.6f``); nulls stay null."""
    if pa.types.is_timestamp(values.type):
        return epoch_seconds(values, digits)
    scale = 10**digits
    raw = plain_values(values.fill_null(scalar(0.0)))
    scaled = np.round(raw * scale).astype(np.int64)
    negative = scaled < 0
    whole, frac = np.divmod(np.abs(scaled), scale)
    text = pc.binary_join_element_wise(
        pc.cast(numeric(whole), pa.string()),
        pc.utf8_lpad(pc.cast(numeric(frac), pa.string()), digits, "0"),
        scalar("."),
    )
    if negative.any():
        minus = pc.binary_join_element_wise(scalar("-"), text, scalar(""))
        text = pc.if_else(numeric(negative), minus, text)
    return _restore_nulls(text, values)


def _restore_nulls(text: pa.Array, values: pa.Array) -> pa.Array:
    if not values.null_count:
        return text
    return pc.if_else(pc.is_null(values), scalar(None), text)


def list_join(values: pa.Array, render: Callable[[pa.Array], pa.Array], sep: str) -> pa.Array:
    """Each list rendered element-wise by ``render`` and joined with ``sep`` (nulls stay)."""
    lengths = plain_values(pc.list_value_length(values).fill_null(scalar(0, "int32")))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    items = render(pc.list_flatten(values))
    rebuilt = pa.ListArray.from_arrays(numeric(offsets), items)
    joined = pc.binary_join(rebuilt, scalar(sep))
    return _restore_nulls(joined, values)


def all_empty_lists(values: pa.Array) -> bool:
    """A list column whose every row is an empty list, none null (the common
    ``tunnel_parents`` and ``iana.aliases``): the writers write it as a constant."""
    if not pa.types.is_list(values.type) or values.null_count or not len(values):
        return False
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    return bool(offsets[values.offset] == offsets[values.offset + len(values)])


def string_bytes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's value bounds (``n + 1`` offsets into ``data``) and its data bytes
    (empty when it has none), read from its buffers: for byte-level checks."""
    _, offsets, data = values.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[values.offset : values.offset + len(values) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return bounds, raw


def to_text(values: pa.Array) -> pa.Array:
    """Numbers and booleans cast to text (Arrow's shortest round-trip form for doubles)."""
    return pc.cast(values, pa.string())


def join_rows(
    columns: list[Column],
    separator: str,
    prefix: str = "",
    suffix: str = "\n",
    skip_nulls: bool = False,
) -> memoryview:
    """One buffer holding ``prefix + separator.join(row) + suffix`` for every row.

    A null value drops its row unless ``skip_nulls`` (then it is left out).
    """
    return join_columns(columns, separator, prefix, suffix, skip_nulls)
