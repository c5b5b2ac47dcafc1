"""The terminal table: literal text, fitted to the width, in time order, days shown."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pyarrow as pa
import pytest

from portlabel.labelling import api
from portlabel.terminal import console, endpoint, fit_endpoint
from portlabel.writers.table import TableWriter

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
ROW = re.compile(r"^\d\d:\d\d:\d\d(\.\d{3})? ")


@pytest.fixture(scope="module")
def flows() -> pa.Table:
    """IPv4 over five days (zeek_ssh) and IPv6 (fragmented DNS), in one table."""
    return pa.concat_tables(
        [
            api.label(CAPTURES / "zeek_ssh.pcap", uid_seed=1),
            api.label(CAPTURES / "zeek_ipv6-fragmented-dns.pcap", uid_seed=1),
            api.label(CAPTURES / "ndpi_1kxun.pcap", uid_seed=1),
        ]
    )


def render(table: pa.Table, width: int, parts: int = 4, **options) -> str:
    out = io.BytesIO()
    writer = TableWriter(out, table.schema, width=width, **options)
    step = max(1, table.num_rows // parts)
    for start in range(0, table.num_rows, step):
        writer.write(table.slice(start, step))
    writer.close()
    return out.getvalue().decode()


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if ROW.match(line)]


def with_hosts(table: pa.Table, orig: str, resp: str) -> pa.Table:
    n = table.num_rows
    i = table.schema.get_field_index("id.orig_h")
    table = table.set_column(i, "id.orig_h", pa.array([orig] * n))
    i = table.schema.get_field_index("id.resp_h")
    return table.set_column(i, "id.resp_h", pa.array([resp] * n))


def test_addresses_are_printed_literally_not_as_markup_or_emoji(flows):
    odd = with_hosts(flows.slice(0, 3), "fe80::100:1", "2001:db8:0:100::1")
    text = render(odd, width=120, parts=1)
    assert "[fe80::100:1]:" in text
    assert "[2001:db8:0:100::1]:" in text
    assert "\N{HUNDRED POINTS SYMBOL}" not in text


def test_any_console_prints_brackets_and_colons_as_given():
    out = io.StringIO()
    console(out, width=200).print("[bold]x[/bold] [fe80::1]:53 :100: :smile:")
    assert out.getvalue() == "[bold]x[/bold] [fe80::1]:53 :100: :smile:\n"


@pytest.mark.parametrize("width", [80, 100, 132])
def test_every_row_fits_the_width_with_whole_ports_and_a_duration(flows, width):
    text = render(flows, width=width)
    printed = rows(text)
    assert len(printed) == flows.num_rows
    assert all(len(line) <= width for line in text.splitlines() if ROW.match(line))
    ts = flows.column("ts").cast(pa.int64()).to_pylist()
    order = sorted(range(flows.num_rows), key=lambda i: ts[i])
    by_time = flows.take(order).to_pylist()
    for line, flow in zip(printed, by_time, strict=True):
        if flow["iana.port_of"] is not None:
            assert f":{flow['id.orig_p']} " in line and f":{flow['id.resp_p']} " in line
        secs = line.split()[-1]
        assert secs == "-" if flow["duration"] is None else re.fullmatch(r"[\d.:]+", secs)


def test_rows_are_in_time_order_whatever_order_flows_end_in(flows):
    shuffled = flows.take(list(range(flows.num_rows))[::-1])
    text = render(shuffled, width=132, parts=7)
    days, stamps, day = [], [], None
    for line in text.splitlines():
        if re.fullmatch(r"\d{4}-\d\d-\d\d", line):
            day = line
            days.append(line)
        elif ROW.match(line):
            stamps.append(f"{day} {line.split()[0]}")
    assert stamps == sorted(stamps) and len(stamps) == flows.num_rows
    assert days == sorted(set(days)) and len(days) >= 6  # zeek_ssh spans five days


def test_service_is_named_the_same_in_rows_and_summary(flows):
    text = render(flows, width=132)
    assert re.search(r"\sssh/tcp\s", text.split("top services")[0])
    top = text.split("top services")[1]
    assert re.search(r"^ssh/tcp\s", top, re.M) and "tcp/ssh" not in text


def test_long_addresses_lose_their_middle_never_the_port():
    assert fit_endpoint("192.168.100.200", 65535, 40) == "192.168.100.200:65535"
    short = fit_endpoint("fe80::1c2d:3e4f:5a6b:7c8d", 5353, 20)
    assert len(short) == 20 and short.startswith("[fe80") and short.endswith("]:5353")
    assert fit_endpoint("10.0.0.1", None, 20) == "10.0.0.1"
    assert endpoint("2001:db8::1", 443) == "[2001:db8::1]:443"


def test_a_very_narrow_terminal_crops_the_title_and_header_as_the_rows(flows):
    text = render(flows.slice(0, 5), width=50, parts=1)
    lines = text.split("\n\n")[0].splitlines()  # the rows part, before the summary
    assert all(len(line) <= 50 for line in lines)
    assert lines[2].startswith("time") and "secs" not in lines[3]
