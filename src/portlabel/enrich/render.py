"""The text appended to each record: ``iana.*`` values rendered once per (protocol, port).

A log has millions of records but few distinct (IP protocol, responder port) pairs, so
the appended text is rendered once per pair and reused: ``SuffixTable.ids`` maps each
record's pair to a suffix id (a gather into a per-protocol array of 65537 slots, the
last slot for "no port"), rendering only the pairs it has not seen -- or, once a log
shows many new ports, every port of that protocol at once -- and
``SuffixTable.array`` holds the suffixes as one pyarrow binary array, picked by id.

Rendering is columnar: each ``iana.*`` column of the pairs is dictionary-encoded, each
distinct value is written once in Python by the ``Style`` (and remembered for the
file), and the rows' texts are gathered and joined in pyarrow. The port is the only
column with a value per pair; it is formatted by pyarrow's integer-to-text cast.

A ``Style`` says how to write the values: a TSV style (separator, set separator, empty
and unset markers, Zeek's ``\\xHH`` escaping) or the JSON style (``,"key":value``,
unset fields omitted as Zeek's JSON writer does).
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import from_blob, indices, numeric
from portlabel.constants import PORTED_PROTOCOLS
from portlabel.enrich.transport import UNKNOWN
from portlabel.labelling.iana import IANA_FIELDS, iana_columns

NO_PORT = 65536
# Render every port of a protocol at once when a call meets more new ports than this:
# a log with that many distinct ports likely uses most of them.
RENDER_ALL_AT = 256
RENDER_SLICE = 8192  # ports rendered per pass: bounds the pass's temporary arrays
_NUMERIC = ("count", "int", "port")
_PORTED = np.zeros(UNKNOWN + 1, dtype=bool)
_PORTED[list(PORTED_PROTOCOLS)] = True


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
        return [self._memo_item(name, kind, value, memo) for value in values]

    def _memo_item(self, name: str, kind: str, value, memo: dict) -> bytes:
        """``_item`` for one value, rendered once per distinct value across calls."""
        key = tuple(value) if isinstance(value, list) else value
        text = memo.get(key)
        if text is None:
            text = memo[key] = self._item(name, kind, value)
        return text

    def render(self, columns: dict[str, pa.Array], memo: dict[str, dict]) -> pa.Array:
        """The appended text of each row, as a binary array; ``memo`` keeps each
        column's rendered values between calls."""
        parts = [
            self.render_column(name, kind, columns[name], memo.setdefault(name, {}))
            for name, kind in IANA_FIELDS
        ]
        return pc().binary_join_element_wise(*parts, _binary_scalar(b""))

    def render_column(self, name: str, kind: str, array: pa.Array, memo: dict) -> pa.Array:
        """One column's rendered values, a binary array: each distinct value is rendered
        once (``_item``), then gathered for every row."""
        compute = pc()
        if kind in _NUMERIC and pa.types.is_integer(array.type):
            prefix = (b',"' + name.encode() + b'":') if self.json else self.separator
            text = compute.binary_join_element_wise(
                _binary_scalar(prefix),
                array.cast(pa.string()).cast(pa.binary()),
                _binary_scalar(b""),
            )
            return compute.coalesce(text, _binary_scalar(self._item(name, kind, None)))
        key = _distinct_key(array)
        if key is None:  # a value the key cannot tell apart: render row by row
            return _binaries(self.column(name, kind, array.to_pylist()))
        encoded = compute.dictionary_encode(key, null_encoding="encode")
        codes = _int_values(encoded.indices)
        _, first = np.unique(codes, return_index=True)
        values = array.take(indices(first)).to_pylist()
        texts = [self._memo_item(name, kind, value, memo) for value in values]
        rendered = np.empty(len(encoded.dictionary), dtype=np.int64)
        rendered[codes[first]] = np.arange(len(first))
        return _binaries(texts).take(indices(rendered[codes]))

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
        self._memo: dict[str, dict] = {}  # column -> value -> rendered text
        self._chunks: list[pa.Array] = [_binaries([self._unset])]  # id 0: every field unset
        self._starts = [0]  # first suffix id of each chunk
        self._count = 1
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
                new = np.unique(ports[rows][missing])
                if len(new) > RENDER_ALL_AT:
                    new = np.flatnonzero(slots < 0)
                for lo in range(0, len(new), RENDER_SLICE):
                    self._render(proto, new[lo : lo + RENDER_SLICE], slots)
                ids = slots[ports[rows]]
            out[rows] = ids
        return out

    def _render(self, proto: int, ports: np.ndarray, slots: np.ndarray) -> None:
        cols = label_columns(self.registry, np.full(len(ports), proto), ports)
        rendered = self.style.render(cols, self._memo)
        unset = pc().equal(rendered, _binary_scalar(self._unset))
        keep = ~_bool_values(unset)
        ids = np.zeros(len(ports), dtype=np.int32)  # all-unset rows share id 0
        ids[keep] = self._count + np.arange(np.count_nonzero(keep), dtype=np.int32)
        if keep.any():
            self._chunks.append(rendered.filter(numeric(keep)))
            self._starts.append(self._count)
            self._count += int(np.count_nonzero(keep))
            self._array = None
        slots[ports] = ids

    @property
    def array(self) -> pa.Array:
        """Every suffix rendered so far, as a binary array indexed by suffix id."""
        if self._array is None:
            self._array = (
                pa.concat_arrays(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
            )
            self._chunks, self._starts = [self._array], [0]
        return self._array

    def suffix(self, suffix_id: int) -> bytes:
        """One suffix, without assembling ``array`` (for line-by-line callers)."""
        chunk = bisect_right(self._starts, suffix_id) - 1
        return self._chunks[chunk][suffix_id - self._starts[chunk]].as_py()


def pc():
    """``pyarrow.compute``, imported on first use (it is slow to import)."""
    import pyarrow.compute

    return pyarrow.compute


def _binaries(items: list[bytes]) -> pa.Array:
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in items], out=offsets[1:])
    return from_blob(b"".join(items), offsets).cast(pa.binary())


def _binary_scalar(value: bytes) -> pa.Scalar:
    """A binary scalar built from buffers (``pa.scalar`` would import pandas)."""
    return _binaries([value])[0]


def _int_values(array: pa.Array) -> np.ndarray:
    """A null-free integer array's values (``to_numpy`` would import pandas)."""
    if not len(array):
        return np.zeros(0, dtype=np.int64)
    data = np.frombuffer(array.buffers()[1], dtype=np.dtype(f"int{array.type.bit_width}"))
    return data[array.offset : array.offset + len(array)].astype(np.int64)


def _bool_values(array: pa.Array) -> np.ndarray:
    if not len(array):
        return np.zeros(0, dtype=bool)
    bits = np.unpackbits(np.frombuffer(array.buffers()[1], dtype=np.uint8), bitorder="little")
    values = bits[array.offset : array.offset + len(array)].astype(bool)
    if array.null_count:
        valid = np.unpackbits(np.frombuffer(array.buffers()[0], dtype=np.uint8), bitorder="little")
        values &= valid[array.offset : array.offset + len(array)].astype(bool)
    return values


def _distinct_key(array: pa.Array) -> pa.Array | None:
    """A string array equal between two rows exactly when their values are equal.

    A string column is its own key. A list column's key is its items joined with a
    newline, then the item count (so ``[]`` and ``[""]`` differ); None when an item
    holds a newline itself and two lists could share a key.
    """
    compute = pc()
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        return array
    if compute.any(compute.match_substring(array.flatten(), "\n")).as_py():
        return None
    newline = _binaries([b"\n"]).cast(pa.string())[0]
    count = compute.list_value_length(array).cast(pa.string())
    return compute.binary_join_element_wise(compute.binary_join(array, newline), count, newline)
