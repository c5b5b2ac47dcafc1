"""A readable table for terminals, with a summary at the end.

Each flow is one line: start time, originator and responder (``[v6]:port`` for IPv6),
service and transport (``ssh/tcp``; ``*`` when the label came from the originator's
port), Zeek's state, packets, IP bytes and duration. Rows are in time order (the writer
keeps the few columns it prints until the run ends, then sorts them by start time), and
a heading line starts each UTC day, so a capture spanning days says which day each row is
on. The layout is fitted to the terminal's width: on a narrow one (80 columns) times are
to the second and bytes in units (``7.4K``), and an address too long for its column
loses characters from its middle, never its port. Text is printed literally (see
``portlabel.terminal``). The closing summary gives totals and the top services.
"""

from __future__ import annotations

import io
import time
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from portlabel.terminal import ELLIPSIS, console, endpoint, fit_endpoint
from portlabel.writers.summary import Summary

WIDE = 100  # columns from which times keep milliseconds and bytes are exact
GAP = 2  # spaces between columns (1 on a narrow terminal)
LEAST_ENDPOINT = 12
LEAST_SERVICE = 14
_NEEDED = (
    "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "transport", "iana.service",
    "iana.port_of", "conn_state", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes",
    "duration",
)  # fmt: skip
HEADERS = ("time", "originator", "responder", "service", "state", "pkts", "bytes", "secs")
RIGHT = {"pkts", "bytes", "secs"}


def _clock(ns: int, millis: bool) -> str:
    text = time.strftime("%H:%M:%S", time.gmtime(ns // 10**9))
    return f"{text}.{ns % 10**9 // 10**6:03d}" if millis else text


def _day(ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ns // 10**9))


def _units(n: int) -> str:
    """``7.4K``, ``12M``: three significant figures at most, powers of 1024 as ``ls -h``."""
    if n < 1024:
        return str(n)
    value = float(n)
    for unit in "KMGTP":
        value /= 1024
        if value < 1024 or unit == "P":
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)  # pragma: no cover - the loop always returns


def _seconds(d: float | None) -> str:
    if d is None:
        return "-"
    if d < 10:
        return f"{d:.3f}"
    if d < 1000:
        return f"{d:.1f}"
    minutes, seconds = divmod(int(d), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class TableWriter:
    """Prints labelled flows as a terminal table, then a summary (unless ``summary=False``).

    ``width`` overrides the terminal's width (rich's: the terminal, ``COLUMNS``, or 80).
    """

    def __init__(
        self, out: BinaryIO, schema: pa.Schema, summary: bool = True, width: int | None = None
    ) -> None:
        self.text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
        self.console = console(self.text, width=width)
        self.summary = Summary()
        self.show_summary = summary
        self.parts: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.summary.add(table)
        self.parts.append(table.select(list(_NEEDED)))

    def close(self) -> None:
        if self.parts:
            self._print_rows(pa.concat_tables(self.parts))
            self.parts = []
        if self.show_summary:
            self._print_summary()
        self.text.flush()
        self.text.detach()

    # -- the rows --------------------------------------------------------------------
    def _print_rows(self, table: pa.Table) -> None:
        from rich.text import Text

        ts = table.column("ts").cast(pa.int64()).to_numpy()
        order = np.argsort(ts, kind="stable")
        table = table.take(order)
        ts = ts[order]
        c = {name: table.column(name).to_pylist() for name in _NEEDED if name != "ts"}
        width = self.console.width
        wide = width >= WIDE
        gap = GAP if wide else 1
        fixed = [self._cells(c, ts, i, wide) for i in range(table.num_rows)]
        natural = [
            max(len(h), *(len(endpoint(*row[k]) if k in (1, 2) else row[k]) for row in fixed))
            for k, h in enumerate(HEADERS)
        ]
        widths = [0 if k in (1, 2, 3) else n for k, n in enumerate(natural)]
        room = width - sum(widths) - gap * (len(HEADERS) - 1)
        # the service column gives way first (to LEAST_SERVICE), then the endpoints share
        service, orig, resp = natural[3], natural[1], natural[2]
        widths[3] = max(min(service, room - orig - resp), min(service, LEAST_SERVICE))
        widths[1], widths[2] = _split(room - widths[3], orig, resp)
        self.console.print(
            Text("flows, times in UTC; * = labelled by the originator's port", style="dim"),
            no_wrap=True,
            overflow="crop",
        )
        header = _line(HEADERS, widths, gap)
        day = None
        lines: list[str] = []
        for i, row in enumerate(fixed):
            today = _day(int(ts[i]))
            if today != day:
                self._emit(lines)
                lines = []
                self.console.print(Text(today, style="bold"))
                if day is None:
                    self.console.print(Text(header, style="bold"), no_wrap=True, overflow="crop")
                day = today
            cells = list(row)
            cells[1] = fit_endpoint(*row[1], widths[1])
            cells[2] = fit_endpoint(*row[2], widths[2])
            cells[3] = _fit_service(row[3], widths[3])
            lines.append(_line(cells, widths, gap))
        self._emit(lines)

    def _emit(self, lines: list[str]) -> None:
        if lines:
            from rich.text import Text

            self.console.print(Text("\n".join(lines)), no_wrap=True, overflow="crop")

    @staticmethod
    def _cells(c: dict, ts: np.ndarray, i: int, wide: bool) -> tuple:
        side = c["iana.port_of"][i]
        ported = side is not None
        service = c["iana.service"][i] or "?"
        mark = "*" if side == "orig" else ""
        size = c["orig_ip_bytes"][i] + c["resp_ip_bytes"][i]
        return (
            _clock(int(ts[i]), wide),
            (c["id.orig_h"][i], c["id.orig_p"][i] if ported else None),
            (c["id.resp_h"][i], c["id.resp_p"][i] if ported else None),
            f"{service}{mark}/{c['transport'][i]}",
            c["conn_state"][i] or "",
            f"{c['orig_pkts'][i] + c['resp_pkts'][i]:,}",
            f"{size:,}" if wide else _units(size),
            _seconds(c["duration"][i]),
        )

    # -- the summary -----------------------------------------------------------------
    def _print_summary(self) -> None:
        from rich.table import Table
        from rich.text import Text

        s = self.summary
        totals = Text("\n")
        for number, label in ((s.flows, " flows, "), (s.packets, " packets, "),
                              (s.ip_bytes, " IP bytes")):  # fmt: skip
            totals.append(f"{number:,}", style="bold")
            totals.append(label)
        self.console.print(totals)
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


def _split(room: int, first: int, second: int) -> tuple[int, int]:
    """Widths for the two endpoint columns: natural when they fit, else shared fairly."""
    if first + second <= room:
        return first, second
    half = max(room // 2, LEAST_ENDPOINT)
    if first <= half:
        return first, max(room - first, LEAST_ENDPOINT)
    if second <= half:
        return max(room - second, LEAST_ENDPOINT), second
    return half, max(room - half, LEAST_ENDPOINT)


def _fit_service(label: str, width: int) -> str:
    """``label`` (``name*/transport``) in ``width``: the name is shortened, never the
    transport or the originator mark."""
    if len(label) <= width:
        return label
    name, _, transport = label.rpartition("/")
    mark = "*" if name.endswith("*") else ""
    name = name.removesuffix("*")
    room = max(width - len(transport) - len(mark) - 2, 1)
    return f"{name[:room]}{ELLIPSIS}{mark}/{transport}"


def _line(cells, widths: list[int], gap: int) -> str:
    parts = [
        cell.rjust(w) if HEADERS[k] in RIGHT else cell.ljust(w)
        for k, (cell, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return (" " * gap).join(parts).rstrip()
