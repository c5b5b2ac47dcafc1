"""A readable table for terminals (rich), with a summary at the end.

Each flow is one line: start time (UTC), originator and responder, service label and
transport (``*`` when the label came from the originator's port), Zeek's state, packets,
IP bytes and duration. Lines are printed batch by batch as flows finish, so a long capture scrolls
instead of waiting for the end; the closing summary gives totals and the top services.
"""

from __future__ import annotations

import io
import time
from typing import BinaryIO

import pyarrow as pa

from portlabel.writers.summary import Summary

COLUMNS = (
    # title, justify, least width (rich shrinks the others on a narrow terminal)
    ("time (UTC)", "left", 12),
    ("originator", "left", 12),
    ("responder", "left", 12),
    ("service", "left", 10),
    ("state", "left", 5),
    ("pkts", "right", 4),
    ("bytes", "right", 5),
    ("duration", "right", 8),
)
_NEEDED = (
    "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "transport", "iana.service",
    "iana.port_of", "conn_state", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
    "duration",
)  # fmt: skip


def _endpoint(host: str, port, ported: bool) -> str:
    if not ported:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _clock(ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9 // 10**6:03d}"


def _row(c: dict, i: int) -> tuple[str, ...]:
    side = c["iana.port_of"][i]
    service = c["iana.service"][i] or "?"
    mark = "*" if side == "orig" else ""
    duration = c["duration"][i]
    return (
        _clock(c["ts"][i]),
        _endpoint(c["id.orig_h"][i], c["id.orig_p"][i], side is not None),
        _endpoint(c["id.resp_h"][i], c["id.resp_p"][i], side is not None),
        f"{service}{mark}/{c['transport'][i]}",
        c["conn_state"][i] or "",
        f"{c['orig_pkts'][i] + c['resp_pkts'][i]:,}",
        f"{c['orig_ip_bytes'][i] + c['resp_ip_bytes'][i]:,}",
        "-" if duration is None else f"{duration:.3f}",
    )


def _rows(table: pa.Table) -> list[tuple[str, ...]]:
    columns = {name: table.column(name).to_pylist() for name in _NEEDED if name != "ts"}
    columns["ts"] = table.column("ts").cast(pa.int64()).to_pylist()  # no pandas Timestamps
    return [_row(columns, i) for i in range(table.num_rows)]


class TableWriter:
    """Prints labelled flows as a terminal table, then a summary (unless ``summary=False``)."""

    def __init__(self, out: BinaryIO, schema: pa.Schema, summary: bool = True) -> None:
        from rich.console import Console

        self.text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
        self.console = Console(file=self.text, highlight=False)
        self.summary = Summary()
        self.show_summary = summary
        self.first = True

    def _table(self, title: str | None = None):
        from rich.table import Table

        return Table(
            title=title,
            show_header=self.first,
            box=None,
            pad_edge=False,
            padding=(0, 1, 0, 0),
            title_justify="left",
        )

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.summary.add(table)
        title = None
        if self.first:
            first = table.column("ts").cast(pa.int64())[0].as_py()
            day = time.strftime("%Y-%m-%d", time.gmtime(first // 10**9))
            title = f"flows from {day} (UTC); * = labelled by the originator's port"
        grid = self._table(title)
        for name, justify, least in COLUMNS:
            grid.add_column(
                name, justify=justify, min_width=least, no_wrap=True, overflow="ellipsis"
            )
        for row in _rows(table):
            grid.add_row(*row)
        self.console.print(grid)
        self.first = False

    def close(self) -> None:
        if self.show_summary:
            self._print_summary()
        self.text.flush()
        self.text.detach()

    def _print_summary(self) -> None:
        from rich.table import Table

        s = self.summary
        self.console.print(
            f"\n[bold]{s.flows:,}[/bold] flows, [bold]{s.packets:,}[/bold] packets, "
            f"[bold]{s.ip_bytes:,}[/bold] IP bytes"
        )
        if s.left_out():
            self.console.print(s.left_out())
        if not s.flows:
            return
        top = Table(title="top services", title_justify="left", box=None, pad_edge=False)
        for title in ("service", "flows", "share", "IP bytes"):
            top.add_column(title, justify="left" if title == "service" else "right")
        for name, count, size in s.top_services(10):
            top.add_row(name, f"{count:,}", f"{100 * count / s.flows:.1f}%", f"{size:,}")
        self.console.print(top)
