"""The registry model: every record of every source, with all its fields, in one shape.

Sources (IANA XML, CSV, plain text, services files, protocol numbers) each parse into a
``RegistrySource``; the compiler (``compiled.py``) turns one or more of them into the
precompiled array lookup. This module owns the record shape and the semantics that do
not depend on the storage: statuses, port classes, what counts as an alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import IntEnum

SYSTEM_PORTS = range(0, 1024)
USER_PORTS = range(1024, 49152)
DYNAMIC_PORTS = range(49152, 65536)


class Status(IntEnum):
    """What the registry says about a (transport, port)."""

    UNASSIGNED = 0
    ASSIGNED = 1
    RESERVED = 2
    DYNAMIC = 3  # 49152-65535 with no assignment: the Dynamic and/or Private Ports
    RETIRED = 4  # no longer assigned: De-registered, Deprecated, De-Commissioned, Removed


class PortClass(IntEnum):
    SYSTEM = 0
    USER = 1
    DYNAMIC = 2


STATUS_NAMES = tuple(s.name.lower() for s in Status)
PORT_CLASS_NAMES = tuple(c.name.lower() for c in PortClass)


def port_class(port: int) -> PortClass:
    if port < 1024:
        return PortClass.SYSTEM
    if port < 49152:
        return PortClass.USER
    return PortClass.DYNAMIC


@dataclass(frozen=True, slots=True)
class Person:
    """An entry of the registry's people (contact) table."""

    id: str
    name: str | None = None
    org: str | None = None
    uri: str | None = None
    updated: str | None = None

    def display(self) -> str:
        """``Name (Org) <uri>`` with what is known; the id when nothing else is."""
        if self.name:
            text = f"{self.name} ({self.org})" if self.org else self.name
        else:
            text = self.org or self.id
        return f"{text} <{self.uri}>" if self.uri else text


@dataclass(slots=True)
class Record:
    """One row of a registry: a name, a port or range, or both, with everything said of it."""

    name: str | None
    port_lo: int | None
    port_hi: int | None
    transport: str | None  # one of TRANSPORTS, or None: applies to every transport
    description: str = ""
    assignee: tuple[str, ...] = ()  # person ids (or free text when the source has no id)
    contact: tuple[str, ...] = ()
    registered: str | None = None  # ISO dates
    modified: str | None = None
    references: tuple[str, ...] = ()  # "RFC6335", "draft-...", URIs, free text
    service_code: int | None = None  # DCCP service code
    unauthorized: str | None = None  # unauthorized-use report
    notes: str | None = None
    source: str = ""  # which source this record came from (its label)
    frequency: float | None = None  # nmap-services open frequency
    aliases: tuple[str, ...] = ()  # further names the source gives on the same line (services)
    line: int | None = None  # where in its source file (for messages)

    @property
    def status(self) -> Status:
        return record_status(self)

    def covers(self, port: int) -> bool:
        return self.port_lo is not None and self.port_lo <= port <= (self.port_hi or self.port_lo)

    def with_source(self, source: str) -> Record:
        return replace(self, source=source)


_RESERVED = re.compile(r"^\s*reserved\b", re.IGNORECASE)
_UNASSIGNED = re.compile(r"^\W*unassigned\b", re.IGNORECASE)
_RETIRED = re.compile(
    r"^\s*(de-?registered|deprecated|de-?comm?issioned|decomm?issioned|removed)\b",
    re.IGNORECASE,
)


def record_status(record: Record) -> Status:
    """A named record is an assignment; an unnamed one says Reserved or Unassigned, or
    that an assignment was withdrawn (De-registered, Deprecated...: ``RETIRED``)."""
    if record.name:
        return Status.ASSIGNED
    if _RESERVED.match(record.description or ""):
        return Status.RESERVED
    if _UNASSIGNED.match(record.description or ""):
        return Status.UNASSIGNED
    if _RETIRED.match(record.description or ""):
        return Status.RETIRED
    # An unnamed record with any other text (rare) still records an assignment of the port.
    return Status.ASSIGNED if record.description else Status.UNASSIGNED


def is_historic_alias(record: Record) -> bool:
    """Underscore names were made historic by RFC 6335; they are never a port's primary name."""
    return bool(record.name and "_" in record.name)


@dataclass(slots=True)
class ProtocolRecord:
    """One row of the IANA protocol-numbers registry (IP protocol / IPv6 next header)."""

    number: int
    keyword: str | None
    description: str = ""
    references: tuple[str, ...] = ()
    ipv6_ext: bool = False


@dataclass(slots=True)
class RegistrySource:
    """What one source file gave: its records, people, and where it came from."""

    kind: str  # "iana-xml", "iana-csv", "iana-text", "services", "nmap-services", ...
    path: str
    sha256: str
    updated: str | None = None  # the source's own "last updated" date, ISO
    records: list[Record] = field(default_factory=list)
    people: dict[str, Person] = field(default_factory=dict)
    protocols: list[ProtocolRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """A short name for this source, recorded on each label it gives."""
        return f"{self.kind}:{self.updated}" if self.updated else f"{self.kind}:{self.path}"
