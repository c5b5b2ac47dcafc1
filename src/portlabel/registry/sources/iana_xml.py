"""Reader for IANA's XML rendering of the port registry (the richest form, the default).

The XML is parsed with defusedxml: no entity expansion, no external references, so a
hostile or broken download cannot blow up memory or reach the network. Each ``<record>``
becomes a ``Record``; ``<people>`` becomes the person table. References are kept in the
bracketed form IANA's CSV uses (``RFC6335``, a draft name, a URI or free text), so every
source renders them alike.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from portlabel.errors import RegistryFormatError
from portlabel.registry.model import Person, ProtocolRecord, Record, RegistrySource
from portlabel.registry.sources.common import clean_text, parse_port_range

NS = "{http://www.iana.org/assignments}"


def _inline(element: ET.Element) -> str:
    """Element text with inline ``<xref>`` rendered as ``[data]``, as IANA's CSV does."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == f"{NS}xref":
            ref = _reference(child) if child.get("type") != "person" else child.get("data")
            parts.append(f"[{ref}]" if ref else "")
        else:
            parts.append(_inline(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    text = clean_text(_inline(element))
    return text or None


def _reference(xref: ET.Element) -> str | None:
    kind, data = xref.get("type"), xref.get("data")
    own_text = clean_text("".join(xref.itertext())) or None
    if kind == "rfc" and data:
        section = xref.get("section")
        return f"{data.upper()}, Section {section}" if section else data.upper()
    if kind in ("uri", "draft"):
        return own_text or data
    if kind == "text":
        return own_text
    return data or own_text


def _parse_record(path: str, element: ET.Element, number: int) -> Record:
    name = _text(element.find(f"{NS}name"))
    port_text = _text(element.find(f"{NS}number"))
    transport = _text(element.find(f"{NS}protocol"))
    try:
        port_lo, port_hi = parse_port_range(port_text) if port_text else (None, None)
    except ValueError as exc:
        raise RegistryFormatError(path, str(exc), f"record {number}") from None
    if transport is not None:
        transport = transport.lower()
    assignee_el = element.find(f"{NS}assignee")
    assignee = tuple(
        x.get("data", "")
        for x in (assignee_el.iter(f"{NS}xref") if assignee_el is not None else ())
    )
    contact: list[str] = []
    references: list[str] = []
    for xref in element.findall(f"{NS}xref"):
        if xref.get("type") == "person":
            contact.append(xref.get("data", ""))
        else:
            ref = _reference(xref)
            if ref:
                references.append(ref)
    # Records without an explicit assignee name the same person for both roles (the CSV and
    # text renderings print it twice).
    if not assignee:
        assignee = tuple(contact)
    sc = _text(element.find(f"{NS}sc"))
    return Record(
        name=name,
        port_lo=port_lo,
        port_hi=port_hi,
        transport=transport,
        description=_text(element.find(f"{NS}description")) or "",
        assignee=assignee,
        contact=tuple(contact),
        registered=element.get("date"),
        modified=element.get("updated"),
        references=tuple(references),
        service_code=int(sc) if sc and sc.isdigit() else None,
        unauthorized=_text(element.find(f"{NS}unauthorized")),
        notes=_text(element.find(f"{NS}note")),
    )


def _parse_people(root: ET.Element) -> dict[str, Person]:
    people: dict[str, Person] = {}
    for person in root.iter(f"{NS}person"):
        pid = person.get("id", "")
        people[pid] = Person(
            id=pid,
            name=_text(person.find(f"{NS}name")),
            org=_text(person.find(f"{NS}org")),
            uri=_text(person.find(f"{NS}uri")),
            updated=_text(person.find(f"{NS}updated")),
        )
    return people


def _load_root(path: str, data: bytes) -> ET.Element:
    try:
        return SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True)
    except DefusedXmlException as exc:
        raise RegistryFormatError(path, f"refused unsafe XML: {exc}") from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise RegistryFormatError(
            path, f"not well-formed XML ({exc.msg})", f"line {line}, column {col}"
        ) from None


def read_services_xml(path: str, data: bytes, sha256: str) -> RegistrySource:
    """Parse IANA's service-names-port-numbers.xml."""
    root = _load_root(path, data)
    if root.get("id") != "service-names-port-numbers":
        raise RegistryFormatError(
            path, f"XML registry id is {root.get('id')!r}, not 'service-names-port-numbers'"
        )
    source = RegistrySource("iana-xml", path, sha256, updated=_text(root.find(f"{NS}updated")))
    for number, element in enumerate(root.iter(f"{NS}record"), 1):
        source.records.append(_parse_record(path, element, number).with_source(source.label))
    source.people = _parse_people(root)
    return source


def read_protocols_xml(path: str, data: bytes, sha256: str) -> RegistrySource:
    """Parse IANA's protocol-numbers.xml (IP protocol numbers / IPv6 next headers)."""
    root = _load_root(path, data)
    source = RegistrySource(
        "iana-protocols", path, sha256, updated=_text(root.find(f"{NS}updated"))
    )
    for number, element in enumerate(root.iter(f"{NS}record"), 1):
        value = _text(element.find(f"{NS}value")) or ""
        try:
            lo, hi = parse_port_range(value, limit=255)
        except ValueError as exc:
            raise RegistryFormatError(path, str(exc), f"record {number}") from None
        refs = tuple(r for r in (_reference(x) for x in element.findall(f"{NS}xref")) if r)
        for proto in range(lo, hi + 1):
            source.protocols.append(
                ProtocolRecord(
                    number=proto,
                    keyword=_text(element.find(f"{NS}name")),
                    description=_text(element.find(f"{NS}description")) or "",
                    references=refs,
                    ipv6_ext=_text(element.find(f"{NS}ipv6")) == "Y",
                )
            )
    return source
