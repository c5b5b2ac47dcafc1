"""Rows of text joined from columns of text: one buffer for many rows.

``join_columns(columns, separator, prefix, suffix)`` lays out, for every row,
``prefix + separator.join(the row's values) + suffix``, all rows one after another. A
column is an Arrow string or binary array, a scalar (the same text in every row) or a
``Gathered`` (a small array's entries picked per row: a table of rendered suffixes). The
text writers end every batch with one such call, and the log enricher splices its
suffixes in with one.

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


Column = pa.Array | pa.Scalar | Gathered


def join_columns(
    columns: list[Column],
    separator: str | bytes = "",
    prefix: str | bytes = "",
    suffix: str | bytes = "",
    skip_nulls: bool = False,
) -> memoryview:
    """The rows' text in one buffer. A null value drops its row unless ``skip_nulls``
    (then it is left out, with its separator). At least one column must not be a scalar."""
    rows = next(
        (len(c.ids) if isinstance(c, Gathered) else len(c))
        for c in columns
        if not isinstance(c, pa.Scalar)
    )
    sep, head, tail = (_bytes(x) for x in (separator, prefix, suffix))
    if _rowjoin is not None and all(_fits(c) for c in columns):
        pieces = [_piece(c) for c in columns]
        return memoryview(_rowjoin.row_join(pieces, rows, sep, head, tail, skip_nulls))
    return _joined_by_pyarrow(columns, sep, head, tail, skip_nulls)


def _bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


def _fits(column: Column) -> bool:
    """Whether the kernel takes it: 32-bit offsets (a large_binary column does not)."""
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


def _joined_by_pyarrow(columns, sep: bytes, head: bytes, tail: bytes, skip_nulls: bool):
    import pyarrow.compute as pc

    from portlabel.arrowutil import indices

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
