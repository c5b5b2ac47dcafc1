"""The text appended to each record: ``iana.*`` values rendered once per (protocol, port).

A log has millions of records but few distinct (IP protocol, responder port) pairs, so
the appended text is rendered once per pair and reused: ``SuffixTable.ids`` maps each
record's pair to a suffix id (a gather into a per-protocol array of 65537 slots, the
last slot for "no port"), rendering only the pairs it has not seen, and
``SuffixTable.array`` holds the suffixes as one pyarrow binary array for ``take``.

A ``Style`` says how to write the values: a TSV style (separator, set separator, empty
and unset markers, Zeek's ``\\xHH`` escaping) or the JSON style (``,"key":value``,
unset fields omitted as Zeek's JSON writer does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import from_blob, indices, numeric
from portlabel.enrich.transport import UNKNOWN
from portlabel.labels import IANA_FIELDS, iana_columns

NO_PORT = 65536
PORTED = (6, 17, 132, 33)
_PORTED = np.zeros(UNKNOWN + 1, dtype=bool)
_PORTED[list(PORTED)] = True


def label_columns(registry, protos: np.ndarray, ports: np.ndarray) -> dict[str, pa.Array]:
    """``iana_columns`` for rows with ``UNKNOWN`` protocols and ``NO_PORT`` ports too.

    Rows whose protocol is unknown, or that need a port and have none, get every
    field null; the others get exactly what ``iana_columns`` says.
    """
    protos = np.asarray(protos, dtype=np.int64)
    ports = np.asarray(ports, dtype=np.int64)
    known = (protos < UNKNOWN) & ~(_PORTED[np.minimum(protos, UNKNOWN)] & (ports >= NO_PORT))
    rows = np.flatnonzero(known)
    cols = iana_columns(registry, protos[rows], np.where(ports[rows] >= NO_PORT, 0, ports[rows]))
    if len(rows) == len(protos):
        return cols
    where = np.zeros(len(protos), dtype=np.int64)
    where[rows] = np.arange(len(rows))
    gather = numeric(where, null_mask=~known)
    return {name: array.take(gather) for name, array in cols.items()}


@dataclass(frozen=True)
class Style:
    """How one log writes values: TSV separators, or JSON when ``json`` is set."""

    separator: bytes = b"\t"
    set_separator: bytes = b","
    empty_field: bytes = b"(empty)"
    unset_field: bytes = b"-"
    json: bool = False

    def suffixes(self, columns: dict[str, list]) -> list[bytes]:
        """The appended text of each row, given each column's Python values."""
        parts = [self.column(name, kind, columns[name]) for name, kind in IANA_FIELDS]
        return [b"".join(row) for row in zip(*parts, strict=True)]

    def column(self, name: str, kind: str, values: list) -> list[bytes]:
        """One column's rendered values (each distinct value rendered once)."""
        memo: dict = {}
        out = []
        for value in values:
            key = tuple(value) if isinstance(value, list) else value
            text = memo.get(key)
            if text is None:
                text = memo[key] = self._item(name, kind, value)
            out.append(text)
        return out

    def unset_suffix(self) -> bytes:
        return b"" if self.json else (self.separator + self.unset_field) * len(IANA_FIELDS)

    def _item(self, name: str, kind: str, value) -> bytes:
        if self.json:
            if value is None:
                return b""
            return b',"' + name.encode() + b'":' + json.dumps(value, ensure_ascii=False).encode()
        return self.separator + self._tsv_value(value, kind)

    def _tsv_value(self, value, kind: str) -> bytes:
        if value is None:
            return self.unset_field
        if kind in ("count", "int", "port"):
            return b"%d" % value
        if kind.startswith(("set[", "vector[")):
            if not value:
                return self.empty_field
            return self.set_separator.join(self._escape(v, in_set=True) for v in value)
        return self._escape(str(value))

    def _escape(self, text: str, in_set: bool = False) -> bytes:
        """Zeek's ASCII-writer escaping: separators, backslash, control bytes as ``\\xHH``."""
        raw = text.encode("utf-8")
        if not raw:
            return self.empty_field
        special = {self.separator[0], 0x5C} | ({self.set_separator[0]} if in_set else set())
        if raw.isascii() and raw.isalnum():
            return raw
        out = (
            b"".join(
                b"\\x%02x" % c if (c in special or c < 0x20 or c == 0x7F) else bytes((c,))
                for c in raw
            )
            if any(c in special or c < 0x20 or c == 0x7F for c in raw)
            else raw
        )
        if raw in (self.unset_field, self.empty_field):
            out = b"\\x%02x" % raw[0] + out[1:]
        return out


class SuffixTable:
    """Rendered suffixes per (IP protocol, port), grown on demand and kept for the file."""

    def __init__(self, registry, style: Style) -> None:
        self.registry = registry
        self.style = style
        self._slots: dict[int, np.ndarray] = {}
        self._unset = style.unset_suffix()
        self._blob = bytearray(self._unset)  # every suffix, back to back
        self._ends = [len(self._unset)]  # end offset of each suffix in _blob
        self._array: pa.Array | None = None

    def ids(self, protos: np.ndarray, ports: np.ndarray) -> np.ndarray:
        """The suffix id of each row (id 0: every field unset)."""
        protos = np.asarray(protos, dtype=np.int64)
        # Portless protocols label the same whatever the port field says.
        ports = np.where(_PORTED[np.minimum(protos, UNKNOWN)], ports, 0)
        out = np.zeros(len(protos), dtype=np.int32)
        for proto in np.flatnonzero(np.bincount(protos, minlength=UNKNOWN + 1)).tolist():
            if proto >= UNKNOWN:
                continue
            rows = np.flatnonzero(protos == proto) if len(protos) else protos
            slots = self._slots.get(proto)
            if slots is None:
                slots = self._slots[proto] = np.full(NO_PORT + 1, -1, dtype=np.int32)
            ids = slots[ports[rows]]
            missing = ids < 0
            if missing.any():
                self._render(proto, np.unique(ports[rows][missing]), slots)
                ids = slots[ports[rows]]
            out[rows] = ids
        return out

    def _render(self, proto: int, ports: np.ndarray, slots: np.ndarray) -> None:
        cols = label_columns(self.registry, np.full(len(ports), proto), ports)
        rendered = self.style.suffixes({name: a.to_pylist() for name, a in cols.items()})
        ids = np.zeros(len(rendered), dtype=np.int32)  # all-unset rows share id 0
        for i, text in enumerate(rendered):
            if text != self._unset:
                ids[i] = len(self._ends)
                self._blob += text
                self._ends.append(len(self._blob))
        slots[ports] = ids
        self._array = None

    @property
    def array(self) -> pa.Array:
        """Every suffix rendered so far, as a binary array indexed by suffix id."""
        if self._array is None:
            offsets = np.array([0, *self._ends], dtype=np.int64)
            self._array = from_blob(bytes(self._blob), offsets).cast(pa.binary())
        return self._array

    def take(self, ids: np.ndarray) -> pa.Array:
        return self.array.take(indices(ids))
