"""Zeek TSV and JSON writers: read back with zat and with a minimal reader, checked field by
field against the table, escaping cases, and the header compared with a real Zeek log."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import portlabel.labelling.api as api
from flow_values import ts_seconds
from portlabel.labelling.flows import LABEL_COLUMNS
from portlabel.writers.zeek_fields import ALWAYS_UNSET, CONN_FIELDS, conn_log_fields
from portlabel.writers.zeek_json import ZeekJsonWriter
from portlabel.writers.zeek_tsv import ZeekTsvWriter, escape, render_column

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
INFECTED = CAPTURES / "zeekreal_infected.pcap"
_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape(text: str) -> str:
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), text)


def read_tsv(text: str) -> tuple[dict[str, str], list[str], list[str], list[list[str]]]:
    """A minimal Zeek TSV reader: (meta, fields, types, raw rows)."""
    meta, fields, types, rows = {}, [], [], []
    for line in text.splitlines():
        if line.startswith("#separator"):
            meta["separator"] = unescape(line.split(" ", 1)[1])
        elif line.startswith("#"):
            key, _, value = line[1:].partition("\t")
            if key == "fields":
                fields = value.split("\t")
            elif key == "types":
                types = value.split("\t")
            else:
                meta[key] = value
        else:
            rows.append(line.split("\t"))
    return meta, fields, types, rows


def parse_value(text: str, zeek_type: str):
    if text == "-":
        return None
    if zeek_type.startswith(("set[", "vector[")):
        return [] if text == "(empty)" else [unescape(v) for v in text.split(",")]
    if text == "(empty)":
        return ""
    if zeek_type in ("time", "interval", "double"):
        return float(text)
    if zeek_type in ("count", "int", "port"):
        return int(text)
    if zeek_type == "bool":
        return text == "T"
    return unescape(text)


def tsv_of(table: pa.Table) -> str:
    out = io.BytesIO()
    writer = ZeekTsvWriter(out, table.schema)
    writer.write(table)
    writer.close()
    return out.getvalue().decode()


@pytest.fixture(scope="module")
def infected():
    return api.label(INFECTED, uid_seed=1)


@pytest.fixture(scope="module")
def busy():
    return api.label(CAPTURES / "ndpi_1kxun.pcap", uid_seed=1)


def assert_rows_match(table: pa.Table, text: str) -> None:
    meta, fields, types, rows = read_tsv(text)
    assert meta["separator"] == "\t" and meta["path"] == "conn"
    assert len(rows) == table.num_rows
    records = table.to_pylist()
    for raw, record, ts in zip(rows, records, ts_seconds(table), strict=True):
        record["ts"] = float(ts)
        assert len(raw) == len(fields)
        for name, zeek_type, value in zip(fields, types, raw, strict=True):
            got = parse_value(value, zeek_type)
            if name in ALWAYS_UNSET:
                assert got is None
            elif zeek_type in ("time", "interval") and got is not None:
                assert got == pytest.approx(record[name], abs=5e-7)
            else:
                assert got == record[name], (name, value, record[name])


def test_tsv_fields_read_back_equal_the_table(infected, busy):
    tunnels = api.label(CAPTURES / "zeek_vxlan.pcap", uid_seed=1)
    assert any(tunnels.column("tunnel_parents").to_pylist())
    for table in (infected, busy, tunnels):
        assert_rows_match(table, tsv_of(table))


def test_tsv_header_block_is_zeeks(infected):
    text = tsv_of(infected)
    lines = text.splitlines()
    assert lines[0] == "#separator \\x09"
    assert lines[1:5] == [
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
    ]
    assert re.fullmatch(r"#open\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[5])
    assert lines[6].startswith("#fields\tts\tuid\t") and lines[7].startswith("#types\ttime\t")
    assert re.fullmatch(r"#close\t\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d", lines[-1])


def test_tsv_matches_a_real_zeek_conn_log_structurally(infected):
    real = (CAPTURES / "zeekreal_infected.pcap.zeek_conn.log").read_text()
    _, real_fields, real_types, real_rows = read_tsv(real)
    _, fields, types, rows = read_tsv(tsv_of(infected))
    assert fields[: len(real_fields)] == real_fields
    assert types[: len(real_types)] == real_types
    # the iana.* columns come after every Zeek field, then portlabel's own
    assert fields.index("iana.service") > fields.index("resp_l2_addr")
    assert fields[-3:] == ["transport", "responder_by", "end_reason"]
    key = [fields.index(k) for k in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")]
    real_key = [real_fields.index(k) for k in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")]
    assert sorted(tuple(r[i] for i in key) for r in rows) == sorted(
        tuple(r[i] for i in real_key) for r in real_rows
    )


def test_every_real_zeek_conn_field_prefix_is_ours(infected):
    ours = [n for n, _ in conn_log_fields(infected.schema)]
    for log in CAPTURES.glob("*.zeek_conn.log"):
        _, fields, types, _ = read_tsv(log.read_text())
        if "local_resp" not in fields:  # cut with zeek-cut: not Zeek's full layout
            continue
        zeek_part = [f for f in fields if f in dict(CONN_FIELDS)]
        assert ours[: len(zeek_part)] == zeek_part, log.name


def test_zat_reads_the_tsv(tmp_path, infected):
    from zat.log_to_dataframe import LogToDataFrame

    path = tmp_path / "conn.log"
    path.write_text(tsv_of(infected))
    frame = LogToDataFrame().create_dataframe(str(path), ts_index=False)
    assert len(frame) == infected.num_rows
    assert list(frame.columns) == [n for n, _ in conn_log_fields(infected.schema)]
    assert list(frame["id.resp_p"]) == infected.column("id.resp_p").to_pylist()
    assert list(frame["iana.port"]) == infected.column("iana.port").to_pylist()
    assert [str(s) for s in frame["iana.service"]] == infected.column("iana.service").to_pylist()
    assert frame["service"].isna().all()


# -- escaping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "in_set", "written"),
    [
        ("plain", False, "plain"),
        ("a\tb", False, "a\\x09b"),
        ("line\nbreak", False, "line\\x0abreak"),
        ("back\\slash", False, "back\\x5cslash"),
        ("del\x7f", False, "del\\x7f"),
        ("-", False, "\\x2d"),
        ("(empty)", False, "\\x28empty)"),
        ("", False, "(empty)"),
        ("a,b", False, "a,b"),
        ("a,b", True, "a\\x2cb"),
        ("café ☕", False, "café ☕"),
    ],
)
def test_zeek_escaping_cases(value, in_set, written):
    assert escape(value, in_set) == written


def test_vectorised_rendering_escapes_strings_and_sets():
    strings = pa.array(["ok", "t\tab", None, "", "-", "x\\y"])
    assert render_column(strings, "string").to_pylist() == [
        "ok",
        "t\\x09ab",
        "-",
        "(empty)",
        "\\x2d",
        "x\\x5cy",
    ]
    sets = pa.array([["a", "b,c"], [], None, ["\t"]], type=pa.list_(pa.string()))
    assert render_column(sets, "set[string]").to_pylist() == [
        "a,b\\x2cc",
        "(empty)",
        "-",
        "\\x09",
    ]
    times = pa.array([1268758214.788023, None, 0.0000004])
    assert render_column(times, "time").to_pylist() == ["1268758214.788023", "-", "0.000000"]
    assert render_column(pa.array([True, False, None]), "bool").to_pylist() == ["T", "F", "-"]


@given(st.lists(st.text(max_size=12), max_size=20))
def test_escaped_values_never_hold_separators_and_read_back(values):
    rendered = render_column(pa.array(values, type=pa.string()), "string").to_pylist()
    assert rendered == [escape(v) for v in values]
    for original, text in zip(values, rendered, strict=True):
        assert "\t" not in text and "\n" not in text
        assert parse_value(text, "string") == original


@given(st.lists(st.lists(st.text(min_size=1, max_size=6), max_size=4), max_size=10))
def test_sets_read_back(values):
    rendered = render_column(pa.array(values, type=pa.list_(pa.string())), "set[string]")
    for original, text in zip(values, rendered.to_pylist(), strict=True):
        assert parse_value(text, "set[string]") == original


def test_hostile_strings_survive_a_whole_log(infected):
    table = infected.slice(0, 3)
    hostile = pa.array(["tab\there", "-", "nl\nx\\"], type=pa.string())
    index = table.schema.get_field_index("iana.description")
    table = table.set_column(index, "iana.description", hostile)
    assert_rows_match(table, tsv_of(table))


# -- JSON ------------------------------------------------------------------------------


def test_zeek_json_lines_are_json_with_unset_fields_left_out(infected):
    out = io.BytesIO()
    writer = ZeekJsonWriter(out, infected.schema)
    writer.write(infected)
    writer.close()
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == infected.num_rows
    order = [n for n, _ in conn_log_fields(infected.schema) if n not in ALWAYS_UNSET]
    for line, record, ts in zip(lines, infected.to_pylist(), ts_seconds(infected), strict=True):
        obj = json.loads(line)
        assert list(obj) == [n for n in order if record[n] is not None]
        assert isinstance(obj["ts"], float)
        assert obj["ts"] == pytest.approx(float(ts), abs=5e-7)
        for name in obj:
            if name != "ts":
                assert obj[name] == record[name], name
        for name in LABEL_COLUMNS:
            assert obj.get(name) == record[name]
        assert not set(ALWAYS_UNSET) & set(obj)
