"""numpy -> pyarrow without detours.

``pa.array()`` probes its input for pandas types, which imports pandas (about 0.4 s) the
first time it runs. A labeller that must finish a whole file in about a second cannot
pay that, so portlabel builds arrays from buffers: numeric columns zero-copy from numpy,
string columns from one UTF-8 blob and its offsets. Use these helpers instead of
``pa.array`` anywhere on the CLI or fast path.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

_ARROW_TYPES = {
    np.dtype("bool"): pa.bool_(),
    np.dtype("int8"): pa.int8(),
    np.dtype("int16"): pa.int16(),
    np.dtype("int32"): pa.int32(),
    np.dtype("int64"): pa.int64(),
    np.dtype("uint8"): pa.uint8(),
    np.dtype("uint16"): pa.uint16(),
    np.dtype("uint32"): pa.uint32(),
    np.dtype("uint64"): pa.uint64(),
    np.dtype("float32"): pa.float32(),
    np.dtype("float64"): pa.float64(),
}


def _validity(null_mask: np.ndarray | None) -> tuple[pa.Buffer | None, int]:
    if null_mask is None or not null_mask.any():
        return None, 0
    valid = np.packbits(~null_mask.astype(bool), bitorder="little")
    return pa.py_buffer(valid), int(null_mask.sum())


def numeric(values: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """A pyarrow array over a 1-D numeric numpy array (zero-copy when contiguous)."""
    values = np.ascontiguousarray(values)
    if values.dtype.byteorder == ">":
        values = values.astype(values.dtype.newbyteorder("="))
    arrow_type = _ARROW_TYPES[np.dtype(values.dtype.name)]
    validity, nulls = _validity(null_mask)
    if values.dtype == np.bool_:
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
    else:
        data = pa.py_buffer(values)
    return pa.Array.from_buffers(arrow_type, len(values), [validity, data], null_count=nulls)


def strings(items, null_empty: bool = False) -> pa.Array:
    """A string array from Python strings (``None`` -> null; ``""`` -> null if asked)."""
    encoded = []
    nulls = np.zeros(len(items), dtype=bool)
    for i, s in enumerate(items):
        if s is None or (null_empty and s == ""):
            nulls[i] = True
            encoded.append(b"")
        else:
            encoded.append(s.encode("utf-8"))
    return from_blob(b"".join(encoded), np.cumsum([0, *map(len, encoded)]), nulls)


def from_blob(blob: bytes, offsets: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """A string array whose i-th value is ``blob[offsets[i]:offsets[i+1]]``."""
    n = len(offsets) - 1
    large = offsets[-1] >= 2**31 if n >= 0 and len(offsets) else False
    off = np.asarray(offsets, dtype=np.int64 if large else np.int32)
    validity, nulls = _validity(null_mask)
    kind = pa.large_string() if large else pa.string()
    return pa.Array.from_buffers(
        kind, n, [validity, pa.py_buffer(off), pa.py_buffer(blob)], null_count=nulls
    )


def gather_strings(
    blob: np.ndarray,
    offsets: np.ndarray,
    ids: np.ndarray,
    null_empty: bool = False,
    null_mask: np.ndarray | None = None,
) -> pa.Array:
    """A string array of the strings ``ids`` of a blob + offsets table (one numpy gather
    of their bytes; no Python string per value). Empty strings are null if asked, and so
    are the rows of ``null_mask``."""
    ids = np.asarray(ids, dtype=np.int64)
    starts, out = _gathered_ranges(np.asarray(offsets, dtype=np.int64), ids)
    lengths = np.diff(out)
    data = np.asarray(blob, dtype=np.uint8)[_positions(starts, out)].tobytes()
    nulls = (lengths == 0) if null_empty else None
    if null_mask is not None:
        nulls = null_mask if nulls is None else nulls | null_mask
    return from_blob(data, out, nulls)


def _gathered_ranges(offsets: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of each range ``ids`` in the old layout, and the new offsets once gathered."""
    starts = offsets[ids]
    out = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(offsets[ids + 1] - starts, out=out[1:])
    return starts, out


def _positions(starts: np.ndarray, out: np.ndarray) -> np.ndarray:
    """For each item of the gathered ranges, its index in the old layout."""
    row = np.repeat(np.arange(len(starts)), np.diff(out))
    return starts[row] + (np.arange(int(out[-1]), dtype=np.int64) - out[row])


def take(dictionary: pa.Array, ids: np.ndarray, null_mask: np.ndarray | None = None) -> pa.Array:
    """``dictionary.take(ids)`` for string and list<string> arrays, in numpy.

    ``Array.take`` imports ``pyarrow.compute``, 40-60 ms at start-up; labelling only ever
    gathers from small dictionaries, which this does from their buffers. Rows of
    ``null_mask`` are null; so are rows whose dictionary entry is.
    """
    ids = np.asarray(ids, dtype=np.int64)
    n, first = len(dictionary), dictionary.offset
    validity = dictionary.buffers()[0]
    if validity is not None:
        bits = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        invalid = ~bits[first : first + n].astype(bool)[ids]
        null_mask = invalid if null_mask is None else null_mask | invalid
    if pa.types.is_string(dictionary.type):
        _, offsets, data = dictionary.buffers()
        offs = np.frombuffer(offsets, np.int32)[first : first + n + 1]
        blob = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        return gather_strings(blob, offs, ids, null_mask=null_mask)
    if pa.types.is_list(dictionary.type) and pa.types.is_string(dictionary.type.value_type):
        offs = np.frombuffer(dictionary.buffers()[1], np.int32)[first : first + n + 1]
        starts, out = _gathered_ranges(offs.astype(np.int64), ids)
        values = take(dictionary.values, _positions(starts, out))
        validity, nulls = _validity(null_mask)
        return pa.ListArray.from_buffers(
            dictionary.type, len(ids), [validity, pa.py_buffer(out.astype(np.int32))],
            null_count=nulls, children=[values],
        )  # fmt: skip
    raise TypeError(f"take: {dictionary.type} arrays are not supported")


def string_lists(lists: list[list[str]]) -> pa.Array:
    """A list<string> array from Python lists of strings."""
    flat = [s for sub in lists for s in sub]
    values = strings(flat)
    offsets = np.cumsum([0, *map(len, lists)]).astype(np.int32)
    return pa.ListArray.from_arrays(numeric(offsets), values)


def indices(values: np.ndarray) -> pa.Array:
    """An int64 index array for ``Array.take``."""
    return numeric(np.asarray(values, dtype=np.int64))


@functools.lru_cache(maxsize=512, typed=True)  # typed: False, 0 and 0.0 are equal keys
def scalar(value: str | bool | int | float | None, dtype: str | None = None) -> pa.Scalar:
    """A pyarrow scalar built from buffers.

    ``pa.scalar`` -- and so any pyarrow.compute call given a Python value, which converts
    it with ``pa.scalar`` -- imports pandas the first time (0.3-0.4 s). Pass these to
    compute functions instead of Python literals. ``None`` is a null string; numbers take
    ``dtype`` (a numpy dtype name) when given.
    """
    if value is None:
        return pa.nulls(1, pa.string())[0]
    if isinstance(value, str):
        return strings([value])[0]
    return numeric(np.array([value], dtype=dtype))[0]


def plain_values(array: pa.Array) -> np.ndarray:
    """A null-free numeric or boolean array's values as numpy, from its buffers
    (``Array.to_numpy(zero_copy_only=False)`` imports pandas)."""
    if array.null_count:
        raise ValueError("plain_values: the array has nulls")
    n, first = len(array), array.offset
    data = array.buffers()[1]
    if pa.types.is_boolean(array.type):
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        return bits[first : first + n].astype(bool)
    return np.frombuffer(data, dtype=array.type.to_pandas_dtype())[first : first + n]


def column_values(table: pa.Table, name: str, fill: int = 0) -> np.ndarray:
    """A fixed-width numeric column as numpy, nulls replaced by ``fill``.

    Read from the Arrow buffers: ``to_numpy``/``fill_null`` on a chunked or nullable
    column import pandas (~0.4 s of start-up).
    """
    col = table.column(name)
    dtype = np.dtype(col.type.to_pandas_dtype())
    parts = [np.zeros(0, dtype=dtype)]
    for chunk in col.chunks:
        n, off = len(chunk), chunk.offset
        validity, data = chunk.buffers()[:2]
        values = np.frombuffer(data, dtype=dtype, count=off + n)[off:] if n else parts[0]
        if chunk.null_count:
            bits = np.frombuffer(validity, dtype=np.uint8)
            valid = np.unpackbits(bits, bitorder="little", count=off + n)[off:].astype(bool)
            values = np.where(valid, values, fill).astype(dtype)
        parts.append(values)
    return np.concatenate(parts) if len(parts) > 2 else parts[-1]
