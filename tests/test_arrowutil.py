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


def test_scalars_keep_their_types_whatever_was_built_before():
    from portlabel.arrowutil import plain_values, scalar

    # equal Python values of different types must not share a cached scalar
    assert scalar(0.0).type == pa.float64()
    assert scalar(False).type == pa.bool_()
    assert scalar(0, "int32").type == pa.int32()
    assert scalar(0).type == pa.int64()
    assert scalar(None).type == pa.string() and not scalar(None).is_valid
    assert scalar("-").as_py() == "-"
    flags = pa.array([True, None, False])
    assert flags.fill_null(scalar(False)).to_pylist() == [True, False, False]
    assert plain_values(pa.array([1.5, 2.5]).slice(1)).tolist() == [2.5]
    assert plain_values(pa.array([True, False, True]).slice(1)).tolist() == [False, True]


def test_text_formats_do_not_import_pandas(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    capture = Path(__file__).resolve().parents[1] / "captures" / "zeekreal_infected.pcap"
    code = (
        "import sys\n"
        "from portlabel.cli import main\n"
        "for fmt in ('jsonl', 'csv', 'zeek', 'zeek-json', 'parquet'):\n"
        f"    main(['label', {str(capture)!r}, '-o', {str(tmp_path)!r} + '/out.' + fmt,\n"
        "          '-F', fmt, '-q'])\n"
        "print('pandas' in sys.modules, 'pyarrow.compute' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"  # 0.3-0.4 s of start-up when it does
