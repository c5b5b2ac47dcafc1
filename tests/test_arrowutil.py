"""arrowutil.take gives what pyarrow's own take gives, for the arrays labelling uses."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.arrowutil import take

TEXT = st.one_of(st.none(), st.text(max_size=6))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(TEXT, min_size=1, max_size=12),
    st.data(),
    st.booleans(),
)
def test_take_strings_is_pyarrows(values, data, sliced):
    dictionary = pa.array(values, type=pa.string())
    if sliced and len(values) > 2:
        dictionary = dictionary.slice(1, len(values) - 2)
    n = len(dictionary)
    ids = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=20)), dtype=np.int64)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids))))
    expected = dictionary.take(pa.array(ids, type=pa.int64())).to_pylist()
    assert take(dictionary, ids).to_pylist() == expected
    masked = [None if m else v for v, m in zip(expected, mask, strict=True)]
    assert take(dictionary, ids, mask.astype(bool)).to_pylist() == masked


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(TEXT, max_size=3)), min_size=1, max_size=8),
       st.data())  # fmt: skip
def test_take_string_lists_is_pyarrows(values, data):
    dictionary = pa.array(values, type=pa.list_(pa.string()))
    ids = np.array(data.draw(st.lists(st.integers(0, len(values) - 1), max_size=12)), np.int64)
    got = take(dictionary, ids)
    assert got.type == dictionary.type
    assert got.to_pylist() == dictionary.take(pa.array(ids, type=pa.int64())).to_pylist()
