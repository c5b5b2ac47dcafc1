"""``textrows.join_columns``: the C row join against its pyarrow twin, on free-form columns."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel import textrows
from portlabel.arrowutil import scalar
from portlabel.textrows import Gathered, Numbers, join_columns

needs_kernel = pytest.mark.skipif(
    textrows._rowjoin is None and not os.environ.get("PORTLABEL_REQUIRE_KERNELS"),
    reason="the _rowjoin kernel is not built",
)
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24)


def twin(columns, *args, **kwargs) -> bytes:
    saved, textrows._rowjoin = textrows._rowjoin, None
    try:
        return bytes(join_columns(columns, *args, **kwargs))
    finally:
        textrows._rowjoin = saved


INTEGERS = [pa.int8(), pa.int16(), pa.int32(), pa.int64(),
            pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]  # fmt: skip


@st.composite
def numbers(draw, rows: int) -> Numbers:
    """An integer or nanosecond-time column (with nulls or not, sliced or not)."""
    kind = draw(st.sampled_from([*INTEGERS, pa.timestamp("ns")]))
    if pa.types.is_timestamp(kind):
        lo, hi = -(2**63) + 1, 2**63 - 1  # np.abs in the twin cannot take the lowest
    else:
        bits = kind.bit_width
        lo, hi = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            if pa.types.is_signed_integer(kind)
            else (0, 2**bits - 1)
        )
    skip = draw(st.integers(0, 2))
    value = st.integers(lo, hi)
    items = draw(st.lists(st.one_of(st.none(), value) if draw(st.booleans()) else value,
                          min_size=rows + skip, max_size=rows + skip))  # fmt: skip
    decimals = draw(st.sampled_from([None, 1, 3, 6, 9])) if pa.types.is_timestamp(kind) else None
    when_null = draw(st.sampled_from([None, "null", "-", ""]))
    return Numbers(pa.array(items, kind).slice(skip, rows), when_null, decimals)


@st.composite
def tables(draw):
    rows = draw(st.integers(1, 40))
    columns = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(["array", "sliced", "scalar", "null scalar", "gathered", "numbers"])
        )
        if kind == "numbers":
            columns.append(draw(numbers(rows)))
            continue
        if kind in ("scalar", "null scalar"):
            columns.append(scalar(None if kind == "null scalar" else draw(text)))
            continue
        values = st.one_of(st.none(), text) if draw(st.booleans()) else text
        if kind == "gathered":
            entries = pa.array(draw(st.lists(values, min_size=1, max_size=8)), pa.string())
            ids = draw(st.lists(st.integers(0, len(entries) - 1), min_size=rows, max_size=rows))
            columns.append(Gathered(entries, np.array(ids)))
            continue
        skip = draw(st.integers(0, 3)) if kind == "sliced" else 0
        items = draw(st.lists(values, min_size=rows + skip, max_size=rows + skip))
        columns.append(pa.array(items, pa.string()).slice(skip, rows))
    if all(isinstance(c, pa.Scalar) for c in columns):
        columns.append(pa.array(draw(st.lists(text, min_size=rows, max_size=rows)), pa.string()))
    return columns


@needs_kernel
@settings(max_examples=300, deadline=None)
@given(tables(), text, text, text, st.booleans())
def test_the_kernel_writes_what_pyarrow_does(columns, sep, prefix, suffix, skip_nulls):
    got = bytes(join_columns(columns, sep, prefix, suffix, skip_nulls))
    assert got == twin(columns, sep, prefix, suffix, skip_nulls)


@pytest.mark.parametrize("kernel", [True, False])
def test_rows_as_one_buffer(kernel, monkeypatch):
    if not kernel:
        monkeypatch.setattr(textrows, "_rowjoin", None)
    elif textrows._rowjoin is None:
        pytest.skip("the _rowjoin kernel is not built")
    a = pa.array(["x", None, "zz"])
    b = Gathered(pa.array(["-", "é"]), np.array([1, 0, 1]))
    assert bytes(join_columns([a, b], ",", "<", ">\n")) == b"<x,\xc3\xa9>\n<zz,\xc3\xa9>\n"
    assert bytes(join_columns([a, b], ",", "<", ">\n", True)) == ("<x,é>\n<->\n<zz,é>\n".encode())
    binary = pa.array([b"\xff\x00", b""], pa.binary())
    assert bytes(join_columns([binary, scalar("|")])) == b"\xff\x00||"


@needs_kernel
def test_the_kernel_refuses_buffers_that_do_not_hold_their_rows():
    kernel = textrows._rowjoin
    offsets = np.array([0, 2, 9], dtype=np.int32).tobytes()  # 9: past the data's end
    with pytest.raises(ValueError, match="outside its data"):
        kernel.row_join([(None, offsets, b"abcd", 0)], 2, b"", b"", b"", False)
    with pytest.raises(ValueError, match="shorter than their rows"):
        kernel.row_join([(None, offsets, b"abcdefghij", 0)], 3, b"", b"", b"", False)
    good = np.array([0, 1, 2], dtype=np.int32).tobytes()
    with pytest.raises(ValueError, match="outside its entries"):
        ids = np.array([0, 2], dtype=np.int64)
        kernel.row_join([(None, good, b"ab", 0, 2, ids)], 2, b"", b"", b"", False)
