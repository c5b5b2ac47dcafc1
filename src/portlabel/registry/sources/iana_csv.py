"""Reader for IANA's CSV rendering of the port registry.

The CSV has the same twelve columns as the plain-text rendering and no people table.
Person and reference cells hold bracketed tokens (``[IESG]``, ``[RFC4727][RFC6335]``);
they become bare ids and references, as the XML reader gives them, so records from
either source compare equal field by field.
"""

from __future__ import annotations

import csv
import io

from portlabel.constants import TRANSPORTS
from portlabel.errors import RegistryFormatError
from portlabel.registry.model import Record, RegistrySource
from portlabel.registry.sources.common import clean_text, decode_utf8, parse_port_range

COLUMNS = (
    "Service Name",
    "Port Number",
    "Transport Protocol",
    "Description",
    "Assignee",
    "Contact",
    "Registration Date",
    "Modification Date",
    "Reference",
    "Service Code",
    "Unauthorized Use Reported",
    "Assignment Notes",
)


def split_brackets(cell: str) -> tuple[str, ...]:
    """``"[A][B c]"`` -> ``("A", "B c")``; text outside brackets is kept as one token."""
    tokens: list[str] = []
    depth, start, outside = 0, 0, []
    for i, ch in enumerate(cell):
        if ch == "[":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0:
                tokens.append(cell[start:i])
        elif depth == 0:
            outside.append(ch)
    if depth:  # an unclosed bracket: keep its text rather than lose it
        tokens.append(cell[start:])
    rest = clean_text("".join(outside))
    if rest:
        tokens.append(rest)
    return tuple(t for t in (clean_text(t) for t in tokens) if t)


def _record(path: str, row: list[str], line: int) -> Record:
    name, port, transport, desc, assignee, contact, reg, mod, ref, sc, unauth, notes = (
        cell.strip() for cell in row
    )
    where = f"line {line}"
    try:
        port_lo, port_hi = parse_port_range(port) if port else (None, None)
    except ValueError as exc:
        raise RegistryFormatError(path, str(exc), where) from None
    transport = transport.lower() or None
    if transport is not None and transport not in TRANSPORTS:
        raise RegistryFormatError(path, f"unknown transport protocol {transport!r}", where)
    if sc and not sc.isdigit():
        raise RegistryFormatError(path, f"service code {sc!r} is not a number", where)
    return Record(
        name=name or None,
        port_lo=port_lo,
        port_hi=port_hi,
        transport=transport,
        description=clean_text(desc),
        assignee=split_brackets(assignee),
        contact=split_brackets(contact),
        registered=reg or None,
        modified=mod or None,
        references=split_brackets(ref),
        service_code=int(sc) if sc else None,
        unauthorized=clean_text(unauth) or None,
        notes=clean_text(notes) or None,
        line=line,
    )


def read_services_csv(path: str, data: bytes, sha256: str) -> RegistrySource:
    """Parse IANA's service-names-port-numbers.csv; the first malformed row is an error."""
    text = decode_utf8(path, data)
    source = RegistrySource("iana-csv", path, sha256)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise RegistryFormatError(
                path, "header is not the IANA port registry's 12 columns", "line 1"
            )
        for row in reader:
            line = reader.line_num - _newlines_in(row)  # where the row starts
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(COLUMNS):
                raise RegistryFormatError(
                    path, f"{len(row)} fields, expected {len(COLUMNS)}", f"line {line}"
                )
            source.records.append(_record(path, row, line))
    except csv.Error as exc:
        raise RegistryFormatError(path, f"bad CSV ({exc})", f"line {reader.line_num}") from None
    label = source.label
    source.records = [r.with_source(label) for r in source.records]
    return source


def _newlines_in(row: list[str]) -> int:
    return sum(cell.count("\n") for cell in row)
