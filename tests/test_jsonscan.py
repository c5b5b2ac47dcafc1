"""The JSON-lines scan kernel (``enrich/_logscan.c``) against json.loads.

Its promise: a line it passes is one json.loads reads as an object, with the same values
for the keys asked for; whatever json.loads refuses, it refuses too. Checked on
free-form JSON (hypothesis), on the same lines with bytes changed, and through the
enricher: the kernel's fast path writes what the pyarrow one and the line-by-line one do.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.enrich import zeek_json

kernel = zeek_json._logscan
pytestmark = pytest.mark.skipif(
    kernel is None and not os.environ.get("PORTLABEL_REQUIRE_KERNELS"),
    reason="the _logscan kernel is not built",
)
NAMES = (b"id.resp_p", b"proto", b"a", b"\xc3\xa9")
OK, MALFORMED, ODD = 0, 1, 2
ABSENT, NULL, INT, STRING, ESCAPED, OTHER = range(6)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.one_of(st.sampled_from(["id.resp_p", "proto", "a", "é", "b"]), st.text(max_size=6))
objects = st.dictionaries(keys, values, max_size=8)


def scan(lines: list[bytes]):
    block = b"\n".join(lines)
    starts, at = [], 0
    for line in lines:
        starts.append(at)
        at += len(line) + 1
    starts = np.array(starts, dtype=np.int64)
    ends = starts + np.array([len(x) for x in lines], dtype=np.int64)
    n, k = len(lines), len(NAMES)
    status, closes = np.empty(n, np.uint8), np.empty(n, np.int64)
    kinds, ints = np.empty((n, k), np.int8), np.empty((n, k), np.int64)
    spans = np.empty((n, k, 2), np.int64)
    kernel.scan_fields(block, starts, ends, NAMES, status, closes, kinds, ints, spans)
    return block, starts, status, closes, kinds, ints, spans


def expected_kind(value) -> int:
    if value is None:
        return NULL
    if isinstance(value, bool) or isinstance(value, float | list | dict):
        return OTHER
    if isinstance(value, int):
        return INT if abs(value) < 10**18 else OTHER
    return STRING


def check_line(raw: bytes) -> None:
    block, starts, status, closes, kinds, ints, spans = scan([raw])
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if status[0] == MALFORMED:
        return  # stricter than json.loads is allowed (surrogates, NaN); never laxer
    assert isinstance(record, dict), raw
    if status[0] == ODD:
        return
    assert raw[closes[0] : closes[0] + 1] == b"}" and not raw[closes[0] + 1 :].strip()
    for j, name in enumerate(NAMES):
        key = name.decode()
        if key not in record:
            assert kinds[0, j] == ABSENT, (raw, key)
            continue
        value, kind = record[key], int(kinds[0, j])
        if kind == ESCAPED:
            assert isinstance(value, str)
            continue
        assert kind == expected_kind(value), (raw, key, kind)
        if kind == INT:
            assert ints[0, j] == value
        if kind == STRING:
            start, length = spans[0, j]
            assert block[start : start + length].decode() == value


@settings(max_examples=400, deadline=None)
@given(objects, st.booleans(), st.sampled_from([None, 2]), st.sampled_from(["", " ", "\t\r"]))
def test_valid_lines_read_as_json_loads_reads_them(record, ascii_only, indent, pad):
    raw = json.dumps(record, ensure_ascii=ascii_only, separators=(", ", ": ") if indent else None)
    check_line((pad + raw + pad).encode())


@settings(max_examples=600, deadline=None)
@given(objects, st.data())
def test_damaged_lines_are_never_passed_when_json_loads_refuses_them(record, data):
    raw = bytearray(json.dumps(record, ensure_ascii=data.draw(st.booleans())).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        byte = data.draw(st.sampled_from(b'{}[]",:\\ 0-.eE\x00\x1f\x7f\x80\xc3\xed\xf4\xffatnu'))
        if op == "set":
            raw[at] = byte
        elif op == "insert":
            raw.insert(at, byte)
        elif len(raw) > 1:
            del raw[at]
    check_line(bytes(raw))


@pytest.mark.parametrize(
    "raw",
    [b'{"a":01}', b'{"a":1.}', b'{"a":-}', b'{"a":1e}', b'{"a":tru}', b'{"a":"\x01"}',
     b'{"a":"\\x"}', b'{"a":"\\u12g4"}', b'{"a":1,}', b'{,"a":1}', b'{"a" 1}', b'{"a":1}}',
     b'{"a":[1,]}', b'{"a":{"b"}}', b'[1]', b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}',
     b'{"a":NaN}', b'{"a":1} x', b'{"a":' + b"[" * 600 + b"]" * 600 + b"}", b"", b"{"],
)  # fmt: skip
def test_what_the_scan_refuses(raw):
    status = scan([raw])[2]
    assert status[0] == MALFORMED, raw


def test_what_it_reads():
    lines = [
        b'{"id.resp_p": 443, "proto":"tcp", "x": {"proto": "udp"}, "a": [1, {"b": 2}]}',
        b'{"proto":"udp","proto":"tcp\\u0021"}',  # the last of a repeated key counts
        b'{"\\u0061": 1}',  # a key written with an escape: for json.loads
        b"{}",
        b' {"id.resp_p":-0,"a":123456789012345678901} \r',
    ]
    block, starts, status, closes, kinds, ints, spans = scan(lines)
    assert status.tolist() == [OK, OK, ODD, ODD, OK]
    assert kinds[0].tolist() == [INT, STRING, OTHER, ABSENT] and ints[0, 0] == 443
    start, length = spans[0, 1]
    assert block[start : start + length] == b"tcp"
    assert kinds[1, 1] == ESCAPED
    assert kinds[4, :3].tolist() == [INT, ABSENT, OTHER] and ints[4, 0] == 0
    assert block[closes[4]] == ord("}")


def enriched(block: bytes) -> bytes:
    from portlabel.registry import default_registry

    enricher = zeek_json.JsonEnricher(default_registry(), "log")
    return b"".join(bytes(piece) for piece in enricher.feed(block))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"ts": st.floats(0, 2e9), "proto": st.sampled_from(["tcp", "udp", "icmp", "x"]),
             "id.resp_p": st.integers(-5, 70000)},
            optional={"ip_proto": st.integers(0, 300), "_path": st.sampled_from(["conn", "dns"]),
                      "tunnel_type": st.sampled_from(["Tunnel::GRE", "Tunnel::VXLAN"])},
        ),
        min_size=1, max_size=30,
    ),
    st.sampled_from(["", " ", "\r"]),
)  # fmt: skip
def test_the_enricher_writes_the_same_with_and_without_the_kernel(records, pad):
    block = b"".join(json.dumps(r).encode() + pad.encode() + b"\n" for r in records)
    with_kernel = enriched(block)
    zeek_json._logscan = None  # the pyarrow fast path, or json.loads line by line
    try:
        without = enriched(block)
    finally:
        zeek_json._logscan = kernel
    assert with_kernel == without
    for record, line in zip(records, with_kernel.splitlines(), strict=True):
        assert json.loads(line).items() >= record.items()  # the original keys, untouched


def test_refuses_an_enriched_log():
    from portlabel.errors import LogFormatError

    line = b'{"proto":"tcp","id.resp_p":80,"iana.service":null}\n'
    with pytest.raises(LogFormatError, match="already enriched"):
        enriched(b'{"proto":"tcp","id.resp_p":80}\n' + line)


@pytest.mark.parametrize(
    "block", [b"", b"\n", b"a", b"a\n", b"a\nbc", b"\n\nx\n", b"ab\r\ncd\n" * 3, bytes(range(256))]
)
def test_line_bounds_as_numpy_finds_them(block):
    from portlabel.enrich import splice

    buf = np.frombuffer(block, dtype=np.uint8)
    got = splice.line_bounds(buf)
    want = splice.numpy_line_bounds(buf)
    assert [a.tolist() for a in got] == [a.tolist() for a in want]


def test_a_string_value_is_found_among_the_known_ones():
    block = b'{"proto":"udp"}\n{"proto":"sctp"}\n{"proto":"ud\\u0070"}\n{"proto":7}'
    lines = block.split(b"\n")
    starts = np.cumsum([0] + [len(x) + 1 for x in lines[:-1]]).astype(np.int64)
    ends = starts + np.array([len(x) for x in lines], dtype=np.int64)
    n = len(lines)
    status, closes = np.empty(n, np.uint8), np.empty(n, np.int64)
    kinds, ints = np.empty((n, 1), np.int8), np.empty((n, 1), np.int64)
    spans = np.empty((n, 1, 2), np.int64)
    names = ((b"proto", (b"tcp", b"udp")),)
    kernel.scan_fields(block, starts, ends, names, status, closes, kinds, ints, spans)
    assert kinds[:, 0].tolist() == [STRING, STRING, ESCAPED, INT]
    assert ints[:3, 0].tolist()[:2] == [1, -1] and ints[3, 0] == 7
