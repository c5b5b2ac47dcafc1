"""JSON lines, CSV, Parquet and the terminal table: each read back and checked against the
labelled table; the format registry by name and by extension."""

from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import portlabel.labelling.api as api
from flow_values import decimal_records
from portlabel.writers import EXTENSIONS, FORMATS, format_for_path, writer_class
from portlabel.writers.jsonl import json_values

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


@pytest.fixture(scope="module")
def table():
    """Two real captures: plain TCP/UDP, and tunnels with VLANs and portless protocols."""
    return pa.concat_tables(
        [
            api.label(CAPTURES / "ndpi_1kxun.pcap", uid_seed=1),
            api.label(CAPTURES / "zeek_gre-sample.pcap", uid_seed=1),
            api.label(CAPTURES / "zeek_q-in-q.pcap", uid_seed=1),
            api.label(CAPTURES / "zeek_vxlan.pcap", uid_seed=1),
        ]
    )


def written(fmt: str, table: pa.Table, parts: int = 3, **options) -> bytes:
    out = io.BytesIO()
    writer = writer_class(fmt)(out, table.schema, **options)
    step = max(1, table.num_rows // parts)
    for start in range(0, table.num_rows, step):
        writer.write(table.slice(start, step))
    writer.close()
    return out.getvalue()


def test_fixture_has_the_interesting_cases(table):
    assert table.column("vlan").null_count < table.num_rows
    assert table.column("iana.port").null_count > 0
    assert any(table.column("tunnel_parents").to_pylist())


def test_jsonl_lines_parse_to_the_table_rows(table):
    lines = written("jsonl", table).decode().splitlines()
    assert len(lines) == table.num_rows
    for line, record in zip(lines, decimal_records(table), strict=True):
        obj = json.loads(line, parse_float=Decimal)
        assert list(obj) == table.schema.names
        assert obj == record


def test_csv_reads_back_with_the_csv_module(table):
    text = written("csv", table).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == table.schema.names
    assert len(rows) - 1 == table.num_rows
    for row, record in zip(rows[1:], decimal_records(table), strict=True):
        for name, value in zip(rows[0], row, strict=True):
            want = record[name]
            if isinstance(want, Decimal):
                assert Decimal(value) == want, name
            elif want is None:
                assert value == ""
            elif isinstance(want, list):
                assert value == ",".join(want)
            elif isinstance(want, float):
                assert float(value) == want
            else:
                assert value == str(want), name


def test_parquet_reads_back_equal(table):
    back = pq.read_table(io.BytesIO(written("parquet", table, parts=7)))
    assert back.equals(table)


def test_parquet_row_groups_are_whole_but_the_last(table, monkeypatch):
    from portlabel.writers import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP", 100)
    big = pa.concat_tables([table] * (1 + 350 // table.num_rows))  # several groups' worth
    data = written("parquet", big, parts=9)  # uneven pieces, none a multiple of 100
    meta = pq.ParquetFile(io.BytesIO(data)).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes[:-1] == [100] * (len(sizes) - 1) and 0 < sizes[-1] <= 100
    assert pq.read_table(io.BytesIO(data)).equals(big)


def test_table_prints_rows_and_a_summary(table):
    text = written("table", table).decode()
    assert f"{table.num_rows:,} flows" in text
    assert "top services" in text
    packets = sum(table.column("orig_pkts").to_pylist()) + sum(
        table.column("resp_pkts").to_pylist()
    )
    assert f"{packets:,} packets" in text
    top_service = table.column("iana.service").drop_null().value_counts()
    best = max(top_service.to_pylist(), key=lambda d: d["counts"])["values"]
    assert best in text
    quiet = written("table", table, summary=False).decode()
    assert "top services" not in quiet


def test_empty_outputs_are_valid(table):
    empty = table.schema.empty_table()
    assert written("jsonl", empty) == b""
    assert list(csv.reader(io.StringIO(written("csv", empty).decode()))) == [empty.schema.names]
    assert pq.read_table(io.BytesIO(written("parquet", empty))).num_rows == 0


@given(st.lists(st.one_of(st.none(), st.text(max_size=10)), max_size=20))
def test_json_strings_round_trip(values):
    rendered = json_values(pa.array(values, type=pa.string())).to_pylist()
    assert [None if r is None else json.loads(r) for r in rendered] == values


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=1, max_size=8),
    st.lists(st.integers(0, 7), min_size=256, max_size=600),
)
def test_json_strings_of_few_distinct_values_round_trip(pool, picks):
    # long columns of few values are rendered once per value and gathered
    values = [pool[i % len(pool)] for i in picks]
    rendered = json_values(pa.array(values, type=pa.string())).to_pylist()
    assert [None if r is None else json.loads(r) for r in rendered] == values


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20))
def test_json_doubles_round_trip_exactly(values):
    rendered = json_values(pa.array(values, type=pa.float64())).to_pylist()
    assert [json.loads(r) for r in rendered] == values


def test_formats_by_name_and_extension():
    assert set(FORMATS) == {"jsonl", "csv", "zeek", "zeek-json", "parquet", "table"}
    assert set(EXTENSIONS.values()) <= set(FORMATS)
    assert format_for_path("out.jsonl") == "jsonl"
    assert format_for_path("out.json") == "jsonl"
    assert format_for_path("dir.v2/conn.log") == "zeek"
    assert format_for_path("OUT.PARQUET") == "parquet"
    assert format_for_path("out.csv") == "csv"
    assert format_for_path("out.txt") is None
    for name in FORMATS:
        assert callable(writer_class(name))


def test_parquet_dictionary_encodes_repeating_columns_only(table):
    meta = pq.ParquetFile(io.BytesIO(written("parquet", table))).metadata.row_group(0)
    encodings = {
        meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)
    }
    for name in ("uid", "community_id", "ts"):
        assert "RLE_DICTIONARY" not in encodings[name]
    for name in ("id.resp_h", "proto", "conn_state", "iana.service", "iana.status"):
        assert "RLE_DICTIONARY" in encodings[name]


@settings(max_examples=120, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.lists(st.text(max_size=8), min_size=n, max_size=n),
            st.lists(st.one_of(st.none(), st.text(max_size=8)), min_size=n, max_size=n),
            st.lists(st.lists(st.text(max_size=4), max_size=2 if n % 2 else 0), min_size=n,
                     max_size=n),
            st.lists(st.floats(), min_size=n, max_size=n),
            st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), min_size=n, max_size=n),
        )
    ),
    st.booleans(),
)  # fmt: skip
def test_json_lines_of_free_form_columns_read_back(columns, omit_nulls):
    from portlabel.writers.jsonl import JsonWriter

    plain, nullable, lists, doubles, ints = columns
    table = pa.table({
        "plain": pa.array(plain, pa.string()), "nullable": pa.array(nullable, pa.string()),
        "lists": pa.array(lists, pa.list_(pa.string())), "doubles": pa.array(doubles),
        "ints": pa.array(ints, pa.int64()),
    })  # fmt: skip
    out = io.BytesIO()
    writer = JsonWriter(out, table.schema, omit_nulls=omit_nulls)
    writer.write(table)
    # bytes split at "\n" only: str.splitlines would also cut at U+0085 inside a value
    rows = [json.loads(line) for line in out.getvalue().split(b"\n")[:-1]]
    finite = [d if math.isfinite(d) else None for d in doubles]
    for i, row in enumerate(rows):
        want = {"plain": plain[i], "nullable": nullable[i], "lists": lists[i],
                "doubles": finite[i], "ints": ints[i]}  # fmt: skip
        if omit_nulls:
            want = {k: v for k, v in want.items() if v is not None}
        assert row == want
    assert len(rows) == len(plain)
