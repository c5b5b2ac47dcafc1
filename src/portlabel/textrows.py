"""Rows of text joined from columns of text: one buffer for many rows.

``join_columns(columns, separator, prefix, suffix)`` lays out, for every row,
``prefix + separator.join(the row's values) + suffix``, all rows one after another. A
column is an Arrow string or binary array, a scalar (the same text in every row), a
``Gathered`` (a small array's entries picked per row: a table of rendered suffixes) or
``Numbers`` (integers or times, written as text by the join itself). The text writers
end every batch with one such call, and the log enricher splices its suffixes in with
one.

In C (``_rowjoin``) when built: each value copied once, straight into the result. The
twin, used without the kernel, is pyarrow's ``binary_join_element_wise`` (and ``take``),
which gives the same bytes, two to three times slower.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

try:
    from portlabel import _rowjoin
except ImportError:  # not built: pyarrow's kernels do it
    _rowjoin = None


@dataclass(frozen=True)
class Gathered:
    """Row r's value is ``entries[ids[r]]``."""

    entries: pa.Array
    ids: np.ndarray


@dataclass(frozen=True)
class Numbers:
    """An integer or timestamp column whose text the join writes itself, with no string
    column made first: integers as pyarrow casts them to strings, nanosecond timestamps
    as ``writers.text.epoch_seconds(values, decimals)`` writes them; a null is
    ``when_null`` (None: the value is null)."""

    values: pa.Array
    when_null: str | bytes | None = None
    decimals: int | None = None  # timestamps: None for six or nine (exact), else rounded


Column = pa.Array | pa.Scalar | Gathered | Numbers


def join_columns(
    columns: list[Column],
    separator: str | bytes = "",
    prefix: str | bytes = "",
    suffix: str | bytes = "",
    skip_nulls: bool = False,
) -> memoryview:
    """The rows' text in one buffer. A null value drops its row unless ``skip_nulls``
    (then it is left out, with its separator). At least one column must not be a scalar."""
    rows = next(_rows(c) for c in columns if not isinstance(c, pa.Scalar))
    sep, head, tail = (_bytes(x) for x in (separator, prefix, suffix))
    if _rowjoin is not None and all(_fits(c) for c in columns):
        pieces = [_piece(c) for c in columns]
        return memoryview(_rowjoin.row_join(pieces, rows, sep, head, tail, skip_nulls))
    return _joined_by_pyarrow(columns, sep, head, tail, skip_nulls)


def _rows(column: Column) -> int:
    if isinstance(column, Gathered):
        return len(column.ids)
    return len(column.values if isinstance(column, Numbers) else column)


def _bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def _fits(column: Column) -> bool:
    """Whether the kernel takes it: 32-bit offsets (a large_binary column does not);
    integers, and timestamps in nanoseconds."""
    if isinstance(column, Numbers):
        kind = column.values.type
        return pa.types.is_integer(kind) or (pa.types.is_timestamp(kind) and kind.unit == "ns")
    values = column.entries if isinstance(column, Gathered) else column
    if isinstance(values, pa.Scalar):
        return True
    return not (pa.types.is_large_binary(values.type) or pa.types.is_large_string(values.type))


def _piece(column: Column):
    """A column as ``_rowjoin`` takes it: bytes or None (a constant), (validity, offsets,
    data, offset) of an array, plus (size, int64 ids) for a ``Gathered``."""
    if isinstance(column, pa.Scalar):
        if not column.is_valid:
            return None
        value = column.as_py()
        return value.encode() if isinstance(value, str) else value
    if isinstance(column, Numbers):
        return _number_piece(column)
    values = column.entries if isinstance(column, Gathered) else column
    if not (pa.types.is_string(values.type) or pa.types.is_binary(values.type)):
        values = values.cast(pa.string())
    validity, offsets, data = values.buffers()
    spec = (None if not values.null_count else validity, offsets,
            b"" if data is None else data, values.offset)  # fmt: skip
    if isinstance(column, Gathered):
        ids = np.ascontiguousarray(column.ids, dtype=np.int64)
        spec += (len(values), ids)
    return spec


def _number_piece(column: Numbers) -> tuple:
    values, kind = column.values, column.values.type
    validity, data = values.buffers()[:2]
    if pa.types.is_timestamp(kind):
        name, width = ("epoch" if column.decimals is None else "epoch_rounded"), 8
    else:
        name = "signed" if pa.types.is_signed_integer(kind) else "unsigned"
        width = kind.bit_width // 8
    when_null = None if column.when_null is None else _bytes(column.when_null)
    return (name, width, validity if values.null_count else None, data, values.offset,
            column.decimals or 0, when_null)  # fmt: skip


def number_text(column: Numbers) -> pa.Array:
    """A ``Numbers`` column as a string array, by pyarrow (the kernel's twin)."""
    from portlabel.arrowutil import scalar
    from portlabel.writers.text import epoch_seconds, to_text

    values = column.values
    if pa.types.is_timestamp(values.type):
        text = epoch_seconds(values, column.decimals)
    else:
        text = to_text(values)
    if column.when_null is not None and text.null_count:
        text = text.fill_null(scalar(_bytes(column.when_null).decode()))
    return text


def _joined_by_pyarrow(columns, sep: bytes, head: bytes, tail: bytes, skip_nulls: bool):
    import pyarrow.compute as pc

    from portlabel.arrowutil import indices

    columns = [number_text(c) if isinstance(c, Numbers) else c for c in columns]
    binary = any(
        pa.types.is_binary((c.entries if isinstance(c, Gathered) else c).type) for c in columns
    )
    kind = pa.binary() if binary else pa.string()

    def scalar(value: bytes) -> pa.Scalar:
        offsets = pa.py_buffer(np.array([0, len(value)], dtype=np.int32))
        return pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(value)])[0]

    arrays = []
    for c in columns:
        if isinstance(c, Gathered):
            c = c.entries.take(indices(c.ids))
        if c.type != kind:
            c = c.cast(kind)
        arrays.append(c)
    handling = "skip" if skip_nulls else "emit_null"
    joined = pc.binary_join_element_wise(*arrays, scalar(sep), null_handling=handling)
    if head or tail:
        joined = pc.binary_join_element_wise(scalar(head), joined, scalar(tail), scalar(b""))
    if joined.null_count:  # dropped rows: no text
        joined = joined.filter(joined.is_valid())
    if not len(joined):
        return memoryview(b"")
    _, offsets_buf, data = joined.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[joined.offset :]
    start, end = int(offsets[0]), int(offsets[len(joined)])
    return memoryview(data)[start:end] if data is not None else memoryview(b"")
