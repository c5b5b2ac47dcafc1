"""Edge cases of ``portlabel enrich``: odd headers, damage, atomic output, CLI, frames.

Inputs are built from a real log (captures/zeek_logs/zeeklog_zat_conn.log) cut and
recombined the way real files get damaged.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portlabel.cli import main
from portlabel.enrich import add_iana_columns, enrich_log
from portlabel.enrich.reader import read_tsv
from portlabel.errors import LogFormatError
from portlabel.labelling.iana import IANA_COLUMNS
from portlabel.registry import default_registry

LOGS = Path(__file__).resolve().parents[1] / "captures" / "zeek_logs"
CONN = (LOGS / "zeeklog_zat_conn.log").read_bytes()
HEADER = b"".join(
    line + b"\n"
    for line in CONN.split(b"\n")
    if line.startswith(b"#fields")
    or line.startswith((b"#sep", b"#set", b"#emp", b"#uns", b"#path", b"#open", b"#types"))
)
BODY = [line for line in CONN.split(b"\n") if line and not line.startswith(b"#")]


def enrich_bytes(data: bytes, name: str = "conn.log") -> tuple[bytes, object]:
    out = io.BytesIO()
    src = io.BytesIO(data)
    src.name = name
    stats = enrich_log(src, out)
    return out.getvalue(), stats


def originals(data: bytes) -> list[list[bytes] | None]:
    return [r.fields for r in read_tsv(data)]


def test_concatenated_logs_and_changing_header() -> None:
    http = (LOGS / "zeeklog_zat_http.log").read_bytes()
    data = CONN + http + CONN
    out, stats = enrich_bytes(data)
    assert stats.header_blocks == 3 and stats.malformed == 0
    assert out.count(b"\t" + b"\t".join(c.encode() for c in IANA_COLUMNS) + b"\n") == 3
    for before, after in zip(read_tsv(data), read_tsv(out), strict=True):
        assert after.fields[: len(before.fields)] == before.fields
        assert after.names == before.names + list(IANA_COLUMNS)


def test_separator_variants_and_blocks(tmp_path: Path) -> None:
    # "#separator<TAB>\x09" (zat's conn_date_issue.log) and a comma separator.
    comma = HEADER.replace(b"#separator \\x09", b"#separator \\x2c").replace(b"\t", b",")
    comma = comma.replace(b"#set_separator,,", b"#set_separator,;")
    rows = [line.replace(b"\t", b",") for line in BODY[:5]]
    data = comma + b"\n".join(rows) + b"\n"
    out, stats = enrich_bytes(data)
    assert stats.records == 5 and stats.malformed == 0
    for line in out.split(b"\n")[len(comma.split(b"\n")) - 1 : -1]:
        assert line.count(b",") == data.split(b"\n")[-2].count(b",") + len(IANA_COLUMNS)
    # Tiny blocks: many block boundaries give the same bytes as one block.
    src = LOGS / "zeeklog_trickbot_dns.log"
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    enrich_log(src, a)
    enrich_log(src, b, block_size=4096)
    assert a.read_bytes() == b.read_bytes()


def test_unset_and_dash_port_and_missing_newline() -> None:
    fields = BODY[0].split(b"\t")
    fields[5] = b"-"
    data = HEADER + b"\t".join(fields)  # no trailing newline
    out, stats = enrich_bytes(data)
    assert not out.endswith(b"\n")
    assert out.endswith(b"\t-" * len(IANA_COLUMNS))
    assert stats.records == 1 and stats.unlabelled == 1


def test_already_enriched_is_refused(tmp_path: Path) -> None:
    once = tmp_path / "once.log"
    enrich_log(LOGS / "zeeklog_zat_conn.log", once)
    with pytest.raises(LogFormatError, match="already enriched"):
        enrich_log(once, tmp_path / "twice.log")
    assert not (tmp_path / "twice.log").exists()
    jonce = tmp_path / "once.json"
    enrich_log(LOGS / "zeeklog_zat_json_conn.log", jonce)
    with pytest.raises(LogFormatError, match="line 1: already enriched"):
        enrich_log(jonce, tmp_path / "twice.json")


def test_not_a_log(tmp_path: Path) -> None:
    binary = tmp_path / "x.log"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(LogFormatError, match=r"x\.log: line 1: not a Zeek log"):
        enrich_log(binary, tmp_path / "out.log")
    text = tmp_path / "readme.log"
    text.write_bytes(b"hello world, this is not a log\n")
    with pytest.raises(LogFormatError, match="line 1"):
        enrich_log(text, tmp_path / "out.log")
    with pytest.raises(LogFormatError, match="No such file"):
        enrich_log(tmp_path / "missing.log", tmp_path / "out.log")


def test_json_malformed_lines_reported() -> None:
    lines = (LOGS / "zeeklog_zat_json_conn.log").read_bytes().split(b"\n")[:4]
    data = b"\n".join([lines[0], lines[1][:40], b"{}", lines[2], b"not json", lines[3]]) + b"\n"
    out, stats = enrich_bytes(data, "conn.json")
    assert stats.malformed == 2
    assert [n for n, _ in stats.malformed_lines] == [2, 5]
    got = out.split(b"\n")
    assert got[1] == lines[1][:40] and got[4] == b"not json"
    assert json.loads(got[2]) == {}  # nothing to label: no keys added
    for i in (0, 3, 5):
        rec = json.loads(got[i])
        assert rec["iana.service"] and rec["id.resp_p"] == rec["iana.port"]


@pytest.mark.parametrize("gz", [False, True])
def test_in_place_failure_keeps_original(tmp_path: Path, monkeypatch, gz: bool) -> None:
    from portlabel.enrich import zeek_tsv

    log = tmp_path / ("conn.log.gz" if gz else "conn.log")
    log.write_bytes(gzip.compress(CONN) if gz else CONN)
    original = log.read_bytes()
    calls = {"n": 0}
    real = zeek_tsv.TsvEnricher.feed

    def failing(self, block):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return real(self, block)

    monkeypatch.setattr(zeek_tsv.TsvEnricher, "feed", failing)
    with pytest.raises(OSError, match="simulated"):
        enrich_log(log, log, block_size=4096)
    assert log.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == [log.name]
    monkeypatch.undo()
    enrich_log(log, log)
    data = gzip.decompress(log.read_bytes()) if gz else log.read_bytes()
    assert b"iana.service" in data and sorted(os.listdir(tmp_path)) == [log.name]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=80), st.sampled_from(BODY[:20]), st.text(max_size=60).map(str.encode)
        ),
        max_size=30,
    )
)
def test_arbitrary_body_lines_preserved(lines: list[bytes]) -> None:
    # "#separator" and "#set_separator" may be invalid (an error, tested below) and
    # "#fields" changes the schema the checks below assume (a second header block:
    # test_cli_outputs).
    lines = [line for line in lines
             if not line.startswith((b"#separator", b"#set_separator", b"#fields"))]  # fmt: skip
    body = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    data = HEADER + body
    out, stats = enrich_bytes(data)
    n_fields = len(BODY[0].split(b"\t"))
    got = out.split(b"\n")
    want = data.split(b"\n")
    assert len(got) == len(want)
    for a, b in zip(want, got, strict=True):
        if a.startswith(b"#"):
            assert b.startswith(a)
        elif b != a:  # enriched: the original line is an exact prefix
            assert b.startswith(a + b"\t") and a.count(b"\t") == n_fields - 1
            assert b.count(b"\t") == n_fields - 1 + len(IANA_COLUMNS)
    assert stats.records + stats.malformed == sum(1 for a in want if a and a[:1] != b"#")


@pytest.mark.parametrize("value", [b"", b"\t", b"\t,,", b"\t\\x2c\\x2c"])
def test_bad_set_separator_is_an_error_naming_the_line(value: bytes) -> None:
    data = HEADER + BODY[0] + b"\n#set_separator" + value + b"\n" + BODY[0] + b"\n"
    line = data.count(b"\n") - 1
    with pytest.raises(LogFormatError, match=f"line {line}: set separator"):
        enrich_bytes(data)


@pytest.mark.parametrize("value", [b"", b" \\x09\\x09", b" ab"])
def test_bad_separator_is_an_error_naming_the_line(value: bytes) -> None:
    data = HEADER + BODY[0] + b"\n#separator" + value + b"\n" + BODY[0] + b"\n"
    line = data.count(b"\n") - 1
    with pytest.raises(LogFormatError, match=f"line {line}: separator"):
        enrich_bytes(data)


def test_frame_api_pandas_and_arrow() -> None:
    import pandas as pd
    import pyarrow as pa

    reg = default_registry()
    df = pd.DataFrame(
        {"proto": ["tcp", "udp", "icmp", "tcp", None], "id.resp_p": [443.0, "53", 8, "-", 80]}
    )
    out = add_iana_columns(df, reg)
    assert list(out.columns) == ["proto", "id.resp_p", *IANA_COLUMNS]
    assert out["iana.service"].tolist()[:3] == [
        reg.lookup_one("tcp", 443)["service"],
        reg.lookup_one("udp", 53)["service"],
        "icmp",
    ]
    assert out["iana.service"].isna().tolist()[3:] == [True, True]
    table = pa.table({"proto": ["tcp"], "id.resp_p": pa.array([22], pa.int32())})
    t2 = add_iana_columns(table, reg)
    assert t2.column_names[-len(IANA_COLUMNS) :] == list(IANA_COLUMNS)
    assert t2.column("iana.service").to_pylist() == [reg.lookup_one("tcp", 22)["service"]]
    assert add_iana_columns(t2, reg).equals(t2)  # relabelling replaces, never duplicates


def test_cli_outputs(tmp_path: Path, capsys) -> None:
    logs = [str(LOGS / "zeeklog_zat_conn.log"), str(LOGS / "zeeklog_zat_http.log.gz")]
    cat = tmp_path / "all.log"
    assert main(["enrich", *logs, "-o", str(cat)]) == 2  # two logs are never run together
    assert not cat.exists()
    outdir = tmp_path / "out"
    outdir.mkdir()
    assert main(["enrich", *logs, "-o", str(outdir)]) == 0
    assert sorted(os.listdir(outdir)) == ["zeeklog_zat_conn.log", "zeeklog_zat_http.log.gz"]
    assert gzip.decompress((outdir / "zeeklog_zat_http.log.gz").read_bytes()).startswith(b"#")
    bad = tmp_path / "bad.log"
    bad.write_bytes(b"\x00\x01binary")
    assert main(["enrich", str(bad), logs[0], "-o", f"{tmp_path / 'x'}{os.sep}"]) == 1
    assert b"iana.service" in (tmp_path / "x" / "zeeklog_zat_conn.log").read_bytes()
    err = capsys.readouterr().err
    assert "bad.log: line 1: not a Zeek log" in err
    assert main(["enrich", "--in-place", "-"]) == 2
    corrupt = str(LOGS / "zeeklog_faucetbro_conn.log")
    assert main(["enrich", corrupt, "-o", str(tmp_path / "c.log")]) == 0
    err = capsys.readouterr().err
    assert "line 9: not a record of 21 fields" in err and "7 malformed line(s) in total" in err


def test_cli_subprocess_stdin_gzip() -> None:
    data = gzip.compress((LOGS / "zeeklog_zat_json_dns.log").read_bytes())
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from portlabel.cli import main; sys.exit(main())",
            "enrich",
            "-q",
            "-",
        ],
        input=data,
        capture_output=True,
        check=True,
    )
    lines = run.stdout.splitlines()
    assert len(lines) == 50
    reg = default_registry()
    for line in lines:
        rec = json.loads(line)
        assert rec["iana.service"] == reg.lookup_one(rec["proto"], rec["id.resp_p"])["service"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([6, 17, 132, 33, 1, 58, 47, 255, 256]), st.integers(0, 65536)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([b"\t", b",", b" ", b"|"]),
    st.sampled_from([b",", b";", b"\t"]),
    st.booleans(),
)
def test_columnar_render_matches_row_by_row(pairs, sep, set_sep, as_json) -> None:
    """The vectorised renderer writes exactly what the per-row reference writes."""
    from portlabel.enrich.render import Style, SuffixTable, label_columns

    reg = default_registry()
    style = Style(json=True) if as_json else Style(separator=sep, set_separator=set_sep)
    protos, ports = (np.array(x) for x in zip(*pairs, strict=True))
    cols = label_columns(reg, protos, ports)
    want = style.suffixes({name: a.to_pylist() for name, a in cols.items()})
    assert style.render(cols, {}).to_pylist() == want
    table = SuffixTable(reg, style)
    ids = table.ids(protos, ports)
    got = [table.suffix(int(i)) for i in ids]
    assert got == [table.array[int(i)].as_py() for i in ids]  # the array splice picks from
    portless = ~np.isin(protos, [6, 17, 132, 33])
    for g, w, p in zip(got, want, portless, strict=True):
        if not p:  # portless protocols label alike whatever the port
            assert g == w


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=12).map(lambda b: b.replace(b"\t", b"")),
            st.text("0123456789:/ -\x00\xff", max_size=7).map(lambda t: t.encode("latin-1")),
            st.sampled_from([b"tcp", b"udp", b"tcpx", b"ud", b"icmp6", b"Tunnel::GENEVE"]),
        ),
        max_size=20,
    )
)
def test_field_parsers_match_python(fields: list[bytes]) -> None:
    from portlabel.enrich import splice as sp

    data = b"\t".join(fields)
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.cumsum([len(f) + 1 for f in fields]) - 1 if fields else np.zeros(0, int)
    starts = ends - np.array([len(f) for f in fields], dtype=int)
    values, ok = sp.parse_uint(buf, starts, ends, digits=5)
    for f, v, good in zip(fields, values.tolist(), ok.tolist(), strict=True):
        assert good == (1 <= len(f) <= 5 and all(48 <= c <= 57 for c in f))
        if good:
            assert v == int(f)
    table = {"tcp": 6, "udp": 17, "icmp6": 58, "Tunnel::GENEVE": 17, "x" * 16: 1}
    codes = sp.match_values(buf, starts, ends, table, -1)
    for f, code in zip(fields, codes.tolist(), strict=True):
        assert code == table.get(f.decode("latin-1"), -1)


@pytest.mark.parametrize(
    "name",
    [
        "zeeklog_trickbot_conn.log",
        "zeeklog_zat_conn_date_issue.log",
        "zeeklog_zat_json_dns.log",
        "zeeklog_zedsample_json_dns.json.gz",
    ],
)
def test_blocks_of_many_lines_are_cut_without_changing_anything(name: str, monkeypatch) -> None:
    """A block of more than MAX_LINES lines is done in groups: same output, same report."""
    from portlabel.enrich import splice

    log = LOGS / name
    reg = default_registry()

    def run() -> tuple[bytes, object]:
        out = io.BytesIO()
        stats = enrich_log(str(log), out, reg)
        return out.getvalue(), stats

    whole, whole_stats = run()
    monkeypatch.setattr(splice, "MAX_LINES", 7)
    cut, cut_stats = run()
    assert cut == whole
    assert cut_stats == whole_stats


def test_a_line_longer_than_any_log_line_is_refused_by_offset(tmp_path, capsys):
    from portlabel.cli import main
    from portlabel.enrich.api import MAX_LINE

    log = tmp_path / "one.log"
    log.write_bytes(b"#separator \\x09\n" + b"x" * (MAX_LINE + 5))
    assert main(["enrich", str(log), "-o", str(tmp_path / "out.log")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"portlabel: {log}: a line of more than {MAX_LINE} bytes from byte 16: not a Zeek log"
    )
    assert not (tmp_path / "out.log").exists()
