"""Compile registry sources into the precompiled array lookup.

Theory of operation. The entry table has one row per record of every source (name-only
records included, so reverse lookup and search see them), plus row 0, "no record". For
each transport (tcp, udp, sctp, dccp) an array of 65,536 entry indices says which record
is the *primary* label of each port. A fifth row, all zeros, serves IP protocols that
have no ports, so a lookup never needs a branch.

Who is primary for a (transport, port), highest priority first:

1. overlay records (services files layered on top; later overlays win);
2. named records of that transport, registry order, historic underscore names last;
3. unnamed records of that transport (Reserved / Unassigned);
4. records with no transport, which apply to every transport that has none of its own.

The other names on the same (transport, port) become the primary's aliases. Strings are
deduplicated into one UTF-8 blob with an offsets array; every text column of the entry
table is an index into it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from portlabel.constants import TRANSPORTS
from portlabel.registry.artifact import dump_sections
from portlabel.registry.model import (
    Person,
    Record,
    RegistrySource,
    Status,
    is_historic_alias,
)

N_PORTS = 65536
NO_PORT_ROW = len(TRANSPORTS)  # the all-zero row for protocols without ports

# Entry-table text columns, in artifact order. Each becomes section "entry.<name>".
TEXT_COLUMNS = (
    "name",
    "description",
    "aliases",
    "assignee",
    "contact",
    "assignee_id",
    "contact_id",
    "registered",
    "modified",
    "references",
    "notes",
    "unauthorized",
    "source",
)
PROTOCOL_TEXT_COLUMNS = ("keyword", "description", "references")


class _Strings:
    """Deduplicating string table; id 0 is the empty string."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {"": 0}
        self._items: list[str] = [""]

    def add(self, text: str | None) -> int:
        text = text or ""
        sid = self._ids.get(text)
        if sid is None:
            sid = self._ids[text] = len(self._items)
            self._items.append(text)
        return sid

    def sections(self) -> dict[str, np.ndarray]:
        encoded = [s.encode("utf-8") for s in self._items]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return {"strings.blob": blob, "strings.offsets": offsets}


def _people_text(ids: Sequence[str], people: dict[str, Person]) -> str:
    return "; ".join(people[i].display() if i in people else i for i in ids)


def _rank(record: Record) -> int:
    """Lower is better: named well-formed, named historic, unnamed."""
    if record.name and not is_historic_alias(record):
        return 0
    return 1 if record.name else 2


def _rows(record: Record) -> Sequence[int]:
    if record.transport in TRANSPORTS:
        return (TRANSPORTS.index(record.transport),)
    return range(len(TRANSPORTS))


def _span(record: Record) -> slice:
    hi = record.port_hi if record.port_hi is not None else record.port_lo
    return slice(record.port_lo, hi + 1)


def _fill_index(records: list[Record], overlay_from: int) -> np.ndarray:
    """The (5, 65536) primary-entry array (entry = record index + 1), painted in layers."""
    index = np.zeros((NO_PORT_ROW + 1, N_PORTS), dtype=np.int32)
    ported = [i for i, r in enumerate(records) if r.port_lo is not None]
    base = [i for i in ported if i < overlay_from]
    # 1. Base records of a transport: worst rank first, and within a rank later records
    #    first, so the best and earliest record is painted last and wins.
    for i in sorted(
        (i for i in base if records[i].transport is not None),
        key=lambda i: (-_rank(records[i]), -i),
    ):
        index[_rows(records[i])[0], _span(records[i])] = i + 1
    # 2. Transport-less records fill only what no record of the transport claimed.
    for i in sorted(
        (i for i in base if records[i].transport is None), key=lambda i: (_rank(records[i]), i)
    ):
        for row in _rows(records[i]):
            span = index[row, _span(records[i])]
            span[span == 0] = i + 1
    # 3. Overlays on top, in order: a later overlay wins.
    for i in (i for i in ported if i >= overlay_from):
        for row in _rows(records[i]):
            index[row, _span(records[i])] = i + 1
    return index


def _aliases(records: list[Record], index: np.ndarray) -> dict[int, list[str]]:
    """Primary record -> the other names standing on its (transport, port)."""
    names_at: dict[tuple[int, int], list[str]] = defaultdict(list)
    for rec in records:
        if rec.port_lo is None or not rec.name:
            continue
        for row in _rows(rec):
            for port in range(_span(rec).start, _span(rec).stop):
                for name in (rec.name, *rec.aliases):
                    if name not in names_at[(row, port)]:
                        names_at[(row, port)].append(name)
    aliases: dict[int, list[str]] = {}
    for (row, port), names in names_at.items():
        primary = int(index[row, port]) - 1
        if primary >= 0 and primary not in aliases:
            own = records[primary].name
            aliases[primary] = [n for n in names if n != own]
    return aliases


def compile_sources(
    base: RegistrySource,
    overlays: Iterable[RegistrySource] = (),
    protocols: RegistrySource | None = None,
) -> bytes:
    """Compile ``base`` (plus overlays and the protocol-numbers registry) to artifact bytes."""
    overlays = list(overlays)
    records = list(base.records)
    overlay_from = len(records)
    people = dict(base.people)
    for extra in overlays:
        records.extend(extra.records)
        people.update(extra.people)

    index = _fill_index(records, overlay_from)
    aliases = _aliases(records, index)
    # An overlay name without a description borrows the IANA description of the port it covers.
    base_index = _fill_index(records[:overlay_from], overlay_from) if overlays else index
    under_overlay: dict[int, int] = {}
    for i in range(overlay_from, len(records)):
        rec = records[i]
        if rec.port_lo is not None and not rec.description:
            covered = [int(base_index[r, rec.port_lo]) - 1 for r in _rows(rec)]
            covered = [j for j in covered if j >= 0]
            if covered:
                under_overlay[i] = covered[0]

    strings = _Strings()
    n = len(records) + 1
    text = {c: np.zeros(n, dtype=np.int32) for c in TEXT_COLUMNS}
    port_lo = np.full(n, -1, dtype=np.int32)
    port_hi = np.full(n, -1, dtype=np.int32)
    transport = np.full(n, -1, dtype=np.int8)
    status = np.zeros(n, dtype=np.uint8)
    service_code = np.full(n, -1, dtype=np.int64)
    frequency = np.full(n, np.nan, dtype=np.float64)
    for i, rec in enumerate(records):
        e = i + 1
        under = under_overlay.get(i)
        description = records[under].description if under is not None else rec.description
        values = {
            "name": rec.name,
            "description": description,
            "aliases": "\n".join(aliases.get(i, rec.aliases)),
            "assignee": _people_text(rec.assignee, people),
            "contact": _people_text(rec.contact, people),
            "assignee_id": "\n".join(rec.assignee),
            "contact_id": "\n".join(rec.contact),
            "registered": rec.registered,
            "modified": rec.modified,
            "references": "\n".join(rec.references),
            "notes": rec.notes,
            "unauthorized": rec.unauthorized,
            "source": rec.source,
        }
        for column, value in values.items():
            text[column][e] = strings.add(value)
        port_lo[e] = -1 if rec.port_lo is None else rec.port_lo
        port_hi[e] = -1 if rec.port_lo is None else (rec.port_hi or rec.port_lo)
        transport[e] = TRANSPORTS.index(rec.transport) if rec.transport in TRANSPORTS else -1
        status[e] = rec.status
        service_code[e] = -1 if rec.service_code is None else rec.service_code
        frequency[e] = np.nan if rec.frequency is None else rec.frequency
    status[0] = Status.UNASSIGNED

    sections: dict[str, np.ndarray] = {
        "index": index.astype(np.uint16) if n <= 65535 else index,
        "entry.port_lo": port_lo,
        "entry.port_hi": port_hi,
        "entry.transport": transport,
        "entry.status": status,
        "entry.service_code": service_code,
        "entry.frequency": frequency,
    }
    sections.update({f"entry.{c}": a for c, a in text.items()})
    if protocols is not None:
        sections.update(_protocol_sections(protocols, strings))
    sections.update(strings.sections())
    meta = {
        "sources": [_describe(s) for s in (base, *overlays)],
        "protocols": _describe(protocols) if protocols is not None else None,
        "entries": n,
    }
    return dump_sections(meta, sections)


def _protocol_sections(protocols: RegistrySource, strings: _Strings) -> dict[str, np.ndarray]:
    cols = {c: np.zeros(256, dtype=np.int32) for c in PROTOCOL_TEXT_COLUMNS}
    for proto in protocols.protocols:
        cols["keyword"][proto.number] = strings.add(proto.keyword)
        cols["description"][proto.number] = strings.add(proto.description)
        cols["references"][proto.number] = strings.add("\n".join(proto.references))
    return {f"protocol.{c}": a for c, a in cols.items()}


def _describe(source: RegistrySource) -> dict:
    from os.path import basename

    return {
        "kind": source.kind,
        "file": basename(source.path),
        "sha256": source.sha256,
        "updated": source.updated,
        "label": source.label,
        "records": len(source.records),
    }
