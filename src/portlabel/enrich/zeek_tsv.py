"""Enrich Zeek TSV logs (the ASCII writer's format) block by block, sans-IO.

``TsvEnricher.feed(block)`` takes bytes holding whole lines and returns the buffers to
write. Header lines (``#...``) are handled one at a time in Python -- they are rare --
and update the state (separators, ``#path``, ``#fields``); ``#fields`` and ``#types``
get the ``iana.*`` names and Zeek types appended, every other header line is copied.
The records between two header lines are one run, enriched with numpy: find each line's
fields, pull ``id.resp_p`` and the transport columns, look the pairs up, and splice the
rendered suffix in before each newline (see ``splice``). A record with the wrong number
of fields (or a ``ts`` that is not a time) is malformed: copied unchanged and reported.

State persists across blocks and across ``#close``: several logs concatenated, a
header that changes mid-file, and records after a stray ``#close`` all work. zeek-cut
output whose header is a bare line of field names (``zeek-cut -m`` style, no ``#fields``)
is accepted too, with Zeek's default separators.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from portlabel.enrich import splice as sp
from portlabel.enrich.render import NO_PORT, Style, SuffixTable
from portlabel.enrich.report import Report
from portlabel.enrich.transport import (
    PORT_COLUMN,
    TRANSPORT_COLUMNS,
    UNKNOWN,
    path_transport,
)
from portlabel.errors import LogFormatError
from portlabel.labelling.iana import IANA_COLUMNS, IANA_FIELDS

HASH = 35
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_FIELD_NAME = re.compile(rb"^[A-Za-z_][A-Za-z0-9_.]*$")
_META = {
    b"#set_separator": "set_separator",
    b"#empty_field": "empty_field",
    b"#unset_field": "unset_field",
}


def unescape(value: bytes) -> bytes:
    return _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), value)


class TsvEnricher(sp.BlockFeeder):
    """Streaming TSV enricher: ``feed`` whole-line blocks, read ``report`` at the end."""

    def __init__(self, registry, name: str, path_hint: str | None = None) -> None:
        self.registry = registry
        self.name = name
        self.path_hint = path_hint
        self.report = Report(name)
        self.line = 0  # lines consumed before the current block
        self.meta = {
            "separator": b"\t",
            "set_separator": b",",
            "empty_field": b"(empty)",
            "unset_field": b"-",
        }
        self.path: str | None = None
        self.fields: list[str] | None = None
        self._tables: dict[Style, SuffixTable] = {}

    # -- blocks -----------------------------------------------------------------------
    def feed(self, block) -> Iterable:
        buf = np.frombuffer(block, dtype=np.uint8)
        starts, ends = sp.line_bounds(buf)
        if len(starts) > sp.MAX_LINES:
            return self._feed_groups(sp.line_groups(block, starts, sp.MAX_LINES))
        n = len(starts)
        nonempty = starts < ends
        header = np.flatnonzero(
            nonempty & (buf[np.minimum(starts, max(len(buf) - 1, 0))] == HASH)
        ).tolist() + [n]
        out: list = []
        pos = 0
        for h in header:
            while pos < h:
                if self.fields is None:
                    out.append(self._schemaless(block, starts[pos], ends[pos], pos))
                    pos += 1
                    continue
                out += self._run(block, buf, starts[pos:h], ends[pos:h], pos)
                pos = h
            if h < n:
                out.append(self._header(block, int(starts[h]), int(ends[h]), h))
                pos = h + 1
        self.line += n
        return out

    def _line_end(self, block, end: int) -> int:
        return end + 1 if end < len(block) else end

    # -- header lines -----------------------------------------------------------------
    def _header(self, block, start: int, end: int, index: int) -> bytes:
        raw = bytes(block[start:end])
        newline = bytes(block[end : self._line_end(block, end)])
        where = f"line {self.line + index + 1}"
        if raw.startswith(b"#separator"):
            value = unescape(raw[len(b"#separator") :].lstrip(b" \t"))
            if len(value) != 1:
                raise LogFormatError(
                    self.name,
                    f"separator {value!r} is not one byte "
                    "(only single-byte separators are supported)",
                    where,
                )
            self.meta["separator"] = value
            return raw + newline
        sep = self.meta["separator"]
        key, _, value = raw.partition(sep) if sep in raw else raw.partition(b" ")
        if key == b"#set_separator" and len(unescape(value)) != 1:
            # the iana.aliases set is written with it: there must be one byte to write
            raise LogFormatError(
                self.name, f"set separator {unescape(value)!r} is not one byte", where
            )
        if key in _META:
            self.meta[_META[key]] = unescape(value)
        elif key == b"#path":
            self.path = value.decode("utf-8", "replace")
        elif key == b"#fields":
            names = value.decode("utf-8", "replace").split(sep.decode("latin-1"))
            self._set_fields(names, where)
            return raw + sep + sep.join(n.encode() for n in IANA_COLUMNS) + newline
        elif key == b"#types" and self.fields is not None:
            return raw + sep + sep.join(t.encode() for _, t in IANA_FIELDS) + newline
        return raw + newline

    def _set_fields(self, names: list[str], where: str) -> None:
        already = [n for n in names if n in IANA_COLUMNS]
        if already:
            raise LogFormatError(
                self.name,
                "already enriched (has "
                f"{', '.join(already[:2])}...): refusing to add the "
                "iana.* columns twice; enrich the original log",
                where,
            )
        self.fields = names
        self.report.header_blocks += 1
        if PORT_COLUMN not in names:
            self.report.note(f"{where}: no {PORT_COLUMN} column: iana.* fields left unset")

    def _schemaless(self, block, start: int, end: int, index: int) -> bytes:
        """A record before any ``#fields``: a bare names line (zeek-cut) or not a log."""
        raw = bytes(block[start:end])
        where = f"line {self.line + index + 1}"
        names = raw.split(b"\t")
        if raw and all(_FIELD_NAME.match(n) for n in names):
            self._set_fields([n.decode() for n in names], where)
            tail = bytes(block[end : self._line_end(block, end)])
            return raw + b"\t" + "\t".join(IANA_COLUMNS).encode() + tail
        if not raw:
            return bytes(block[start : self._line_end(block, end)])
        raise LogFormatError(self.name, "not a Zeek log: record before any #fields header", where)

    # -- record runs ------------------------------------------------------------------
    def _run(self, block, buf, starts, ends, first_index: int) -> list:
        fields = self.fields
        sep = self.meta["separator"][0]
        idx = {name: i for i, name in enumerate(fields)}
        wanted = sorted(
            {idx[c] for c, _ in TRANSPORT_COLUMNS if c in idx}
            | {idx[c] for c in (PORT_COLUMN,) if c in idx}
            | ({0} if fields and fields[0] == "ts" else set())
        )
        rows, spans = sp.field_spans(buf, sep, starts, ends, len(fields), wanted)
        if fields and fields[0] == "ts" and len(rows):
            keep = sp.plausible_time(buf, *spans[0])
            rows = rows[keep]
            spans = {k: (s[keep], e[keep]) for k, (s, e) in spans.items()}
        self._count_malformed(starts, ends, rows, first_index, len(fields))
        protos = self._protocols(buf, idx, spans, len(rows))
        if PORT_COLUMN in idx:
            ports, ok = sp.parse_uint(buf, *spans[idx[PORT_COLUMN]], digits=5)
            ports = np.where(ok & (ports <= 65535), ports, NO_PORT)
        else:
            ports = np.full(len(rows), NO_PORT, dtype=np.int64)
        table = self._table()
        ids = table.ids(protos, ports)
        self.report.records += len(rows)
        self.report.unlabelled += int(np.count_nonzero(ids == 0))
        lo = int(starts[0])
        hi = self._line_end(block, int(ends[-1]))
        return sp.splice(block, lo, hi, ends[rows], table.array, ids)

    def _protocols(self, buf, idx: dict, spans: dict, n: int) -> np.ndarray:
        protos = np.full(n, UNKNOWN, dtype=np.int64)
        for column, values in TRANSPORT_COLUMNS:
            if column not in idx:
                continue
            fs, fe = spans[idx[column]]
            if values is None:
                code, ok = sp.parse_uint(buf, fs, fe, digits=3)
                code = np.where(ok & (code < UNKNOWN), code, UNKNOWN)
            else:
                code = sp.match_values(buf, fs, fe, values, UNKNOWN)
            protos = np.where(protos == UNKNOWN, code, protos)
        default = path_transport(self.path or self.path_hint)
        return np.where(protos == UNKNOWN, default, protos)

    def _count_malformed(self, starts, ends, rows, first_index: int, n_fields: int) -> None:
        bad = np.ones(len(starts), dtype=bool)
        bad[rows] = False
        bad &= starts < ends  # blank lines pass through silently
        if bad.any():
            lines = np.flatnonzero(bad) + self.line + first_index + 1
            self.report.malformed_at(lines, f"not a record of {n_fields} fields")

    def _table(self) -> SuffixTable:
        style = Style(
            separator=self.meta["separator"],
            set_separator=self.meta["set_separator"],
            empty_field=self.meta["empty_field"],
            unset_field=self.meta["unset_field"],
        )
        table = self._tables.get(style)
        if table is None:
            table = self._tables[style] = SuffixTable(self.registry, style)
        return table
