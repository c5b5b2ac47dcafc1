"""Enrich Zeek JSON-lines logs block by block, sans-IO, keeping every original byte.

Each record gets the ``iana.*`` keys inserted just before its final ``}``, so the
original text of the line is untouched; unset fields are omitted, as Zeek's JSON writer
does. Fast path: when every non-blank line of a block looks like one object, pyarrow's
JSON reader pulls only the few columns needed (``proto``, ``id.resp_p``, ...) in C++, and
the suffixes are spliced in with numpy. A block the fast path cannot take (a malformed
line, a port written as a string) is done line by line with ``json.loads``, which also
says which lines are malformed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import strings
from portlabel.enrich import splice as sp
from portlabel.enrich.render import NO_PORT, Style, SuffixTable
from portlabel.enrich.report import Report
from portlabel.enrich.transport import (
    PATH_TRANSPORT,
    PORT_COLUMN,
    PROTO_NUMBERS,
    TUNNEL_TRANSPORT,
    UNKNOWN,
    path_transport,
)
from portlabel.errors import LogFormatError
from portlabel.labelling.iana import IANA_COLUMNS

_SCHEMA = pa.schema(
    [
        ("proto", pa.string()),
        (PORT_COLUMN, pa.int64()),
        ("ip_proto", pa.int64()),
        ("tunnel_type", pa.string()),
        ("_path", pa.string()),
        (IANA_COLUMNS[0], pa.string()),
    ]
)
OPEN, CLOSE, CR = 123, 125, 13

try:
    from portlabel.enrich import _logscan
except ImportError:  # not built: pyarrow's JSON reader does the fast path
    _logscan = None

# the keys the C scan reads, and their places; for the ones naming a transport in words,
# their known words: the scan reports a word's place among them
_TEXT_TABLES = {"proto": PROTO_NUMBERS, "tunnel_type": TUNNEL_TRANSPORT, "_path": PATH_TRANSPORT}
_SCANNED = tuple(
    (name.encode(), tuple(word.encode() for word in _TEXT_TABLES[name]))
    if name in _TEXT_TABLES
    else name.encode()
    for name in (PORT_COLUMN, "ip_proto", "proto", "tunnel_type", "_path", IANA_COLUMNS[0])
)
_PORT, _IP_PROTO, _PROTO, _TUNNEL, _PATH, _IANA = range(6)
_TEXTS = [_PROTO, _TUNNEL, _PATH]
# in the order the transport is taken from them (``transport``'s docstring): each word's
# protocol by its place, then UNKNOWN (a place of -1: no known word)
_TEXT_CODES = tuple(
    (column, np.array([*_TEXT_TABLES[name].values(), UNKNOWN], dtype=np.int64))
    for column, name in ((_PROTO, "proto"), (_TUNNEL, "tunnel_type"), (_PATH, "_path"))
)
# the kinds of value it reports (_logscan.c)
_ABSENT, _NULL, _INT, _STRING, _ESCAPED, _OTHER = range(6)


class JsonEnricher(sp.BlockFeeder):
    """Streaming JSON-lines enricher: ``feed`` whole-line blocks."""

    def __init__(self, registry, name: str, path_hint: str | None = None) -> None:
        self.name = name
        self.path_hint = path_hint
        self.report = Report(name, format="zeek-json")
        self.table = SuffixTable(registry, Style(json=True))
        self.line = 0

    def feed(self, block) -> Iterable:
        buf = np.frombuffer(block, dtype=np.uint8)
        starts, ends = sp.line_bounds(buf)
        if len(starts) > sp.MAX_LINES:
            return self._feed_groups(sp.line_groups(block, starts, sp.MAX_LINES))
        ends = ends - ((ends > starts) & (buf[np.maximum(ends - 1, 0)] == CR))
        rows = np.flatnonzero(ends > starts)
        out = self._fast(block, buf, starts, ends, rows)
        if out is None:
            out = self._slow(block, starts, ends, rows)
        self.line += len(starts)
        return out

    # -- fast path --------------------------------------------------------------------
    def _fast(self, block, buf, starts, ends, rows) -> list | None:
        if not len(rows):
            return [memoryview(block)]
        if _logscan is not None:
            return self._scanned(block, buf, starts[rows], ends[rows], rows)
        return self._arrow(block, buf, starts[rows], ends[rows], rows)

    def _scanned(self, block, buf, s, e, rows) -> list | None:
        """The fast path in C (``_logscan``): each line checked as JSON and the chosen
        keys' values found in one pass. None (the block goes to json.loads) if a line is
        malformed or unusual: a key or value written with escapes, a port or
        ``ip_proto`` that is not an integer, an empty object."""
        n, k = len(rows), len(_SCANNED)
        status, closes = np.empty(n, np.uint8), np.empty(n, np.int64)
        kinds, ints = np.empty((n, k), np.int8), np.empty((n, k), np.int64)
        spans = np.empty((n, k, 2), np.int64)
        _logscan.scan_fields(block, s, e, _SCANNED, status, closes, kinds, ints, spans)
        if status.any():
            return None
        present = kinds[:, _IANA] != _ABSENT
        if present.any():
            self._refuse(int(rows[np.flatnonzero(present)[0]]))
        numbers = kinds[:, [_PORT, _IP_PROTO]]
        if not np.isin(numbers, (_ABSENT, _NULL, _INT)).all():
            return None  # a port or protocol as a string, a float, a bool: json.loads
        if (kinds[:, _TEXTS] == _ESCAPED).any():
            return None
        protos = np.full(n, UNKNOWN, dtype=np.int64)
        ip = ints[:, _IP_PROTO]
        known = (kinds[:, _IP_PROTO] == _INT) & (ip >= 0) & (ip < UNKNOWN)
        protos[known] = ip[known]
        for column, codes in _TEXT_CODES:
            rows_here = np.flatnonzero((protos == UNKNOWN) & (kinds[:, column] == _STRING))
            protos[rows_here] = codes[ints[rows_here, column]]
        protos = np.where(protos == UNKNOWN, path_transport(self.path_hint), protos)
        port = ints[:, _PORT]
        ports = np.where((kinds[:, _PORT] == _INT) & (port >= 0) & (port <= 65535), port, NO_PORT)
        ids = self.table.ids(protos, ports)
        self._count(ids)
        return sp.splice(block, 0, len(block), closes, self.table.array, ids)

    def _arrow(self, block, buf, s, e, rows) -> list | None:
        """The fast path without the C kernel: pyarrow's JSON reader."""
        closing = e - 1
        shaped = (buf[s] == OPEN) & (buf[closing] == CLOSE) & (buf[closing - 1] != OPEN)
        if not shaped.all():
            return None
        import pyarrow.json as pj

        try:
            table = pj.read_json(
                pa.BufferReader(pa.py_buffer(block)),
                read_options=pj.ReadOptions(block_size=max(len(block), 1 << 20) + 1),
                parse_options=pj.ParseOptions(
                    explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if table.num_rows != len(rows):
            return None
        if table.column(IANA_COLUMNS[0]).null_count != table.num_rows:
            valid = table.column(IANA_COLUMNS[0]).is_valid().to_numpy(zero_copy_only=False)
            self._refuse(int(rows[np.flatnonzero(valid)[0]]))
        protos = self._protocols(table)
        port = table.column(PORT_COLUMN)
        ports = _ints(port, -1)
        ports = np.where((ports >= 0) & (ports <= 65535), ports, NO_PORT)
        ids = self.table.ids(protos, ports)
        self._count(ids)
        return sp.splice(block, 0, len(block), closing, self.table.array, ids)

    def _protocols(self, table: pa.Table) -> np.ndarray:
        import pyarrow.compute as pc

        ip_proto = _ints(table.column("ip_proto"), UNKNOWN)
        protos = np.where((ip_proto >= 0) & (ip_proto < UNKNOWN), ip_proto, UNKNOWN)
        for column, (value_set, codes) in _value_sets().items():
            array = table.column(column)
            unknown = protos == UNKNOWN
            if array.null_count == len(array) or not unknown.any():
                continue  # nothing to learn from this column
            pos = pc.index_in(array, value_set=value_set)
            protos = np.where(unknown, codes[_ints(pos, len(codes) - 1)], protos)
        return np.where(protos == UNKNOWN, path_transport(self.path_hint), protos)

    # -- slow path --------------------------------------------------------------------
    def _slow(self, block, starts, ends, rows) -> list:
        view = memoryview(block)
        out, last = [], 0
        bad = []
        for r in rows.tolist():
            s, e = int(starts[r]), int(ends[r])
            raw = bytes(view[s:e])
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if not isinstance(record, dict) or not raw.rstrip().endswith(b"}"):
                bad.append(r)
                continue
            if IANA_COLUMNS[0] in record:
                self._refuse(r)
            proto, port = self._record_key(record)
            ids = self.table.ids(np.array([proto]), np.array([port]))
            self._count(ids)
            suffix = self.table.suffix(int(ids[0]))
            if not record:
                suffix = suffix[1:]
            cut = s + raw.rstrip().rfind(b"}")
            out += [view[last:cut], suffix]
            last = cut
        out.append(view[last:])
        if bad:
            self.report.malformed_at(np.array(bad) + self.line + 1, "not a JSON object")
        return out

    def _record_key(self, record: dict) -> tuple[int, int]:
        proto = UNKNOWN
        ip = record.get("ip_proto")
        if isinstance(ip, int) and 0 <= ip < UNKNOWN:
            proto = ip
        for column, values in (
            ("proto", PROTO_NUMBERS),
            ("tunnel_type", TUNNEL_TRANSPORT),
            ("_path", PATH_TRANSPORT),
        ):
            if proto == UNKNOWN and isinstance(record.get(column), str):
                proto = values.get(record[column], UNKNOWN)
        if proto == UNKNOWN:
            proto = path_transport(self.path_hint)
        return proto, _port(record.get(PORT_COLUMN))

    def _count(self, ids: np.ndarray) -> None:
        self.report.records += len(ids)
        self.report.unlabelled += int(np.count_nonzero(ids == 0))

    def _refuse(self, index: int) -> None:
        raise LogFormatError(
            self.name,
            f"already enriched (has {IANA_COLUMNS[0]}): refusing "
            "to add the iana.* keys twice; enrich the original log",
            f"line {self.line + index + 1}",
        )


@lru_cache(maxsize=1)
def _value_sets() -> dict[str, tuple[pa.Array, np.ndarray]]:
    """Per column read for the transport: its known values, and their codes then UNKNOWN."""
    return {
        column: (strings(list(values)), np.array([*values.values(), UNKNOWN], dtype=np.int64))
        for column, values in (
            ("proto", PROTO_NUMBERS),
            ("tunnel_type", TUNNEL_TRANSPORT),
            ("_path", PATH_TRANSPORT),
        )
    }


def _ints(array, default: int) -> np.ndarray:
    """An integer column as int64, nulls as ``default``, read from its buffers
    (``to_numpy`` and ``fill_null`` on nullable columns import pandas)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n, off = len(array), array.offset
    validity, data = array.buffers()[:2]
    dtype = np.dtype(f"int{array.type.bit_width}") if n else np.int64
    values = (
        np.frombuffer(data, dtype=dtype)[off : off + n].astype(np.int64)
        if n
        else (np.zeros(0, dtype=np.int64))
    )
    if validity is not None and array.null_count:
        valid = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        values = np.where(valid[off : off + n].astype(bool), values, default)
    return values


def _port(value) -> int:
    if isinstance(value, bool) or value is None:
        return NO_PORT
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            return NO_PORT
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= 65535:
        return value
    return NO_PORT
