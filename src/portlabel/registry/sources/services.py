"""Reader for ``services(5)``-style files: ``/etc/services``, Wireshark's, nmap's.

One entry per line, ``#`` starts a comment::

    http        80/tcp      www www-http    # WorldWideWeb HTTP      (/etc/services)
    discard     9/tcp/udp/sctp/dccp         # Discard                (Wireshark)
    x11         6000-6063/tcp,udp           # X Window System        (comma-joined too)
    http        80/tcp      0.484143        # World Wide Web HTTP    (nmap-services)

A port may name several transports (joined by ``/`` or ``,``): each gives one record.
Words after ``port/proto`` are aliases, except in nmap-services, whose third column is
the open frequency. A file is nmap-services when its first entry has a frequency; then
every entry must. The trailing comment becomes the description. Transports other than
TCP, UDP, SCTP and DCCP (``/etc/services`` lists AppleTalk ``ddp``) are skipped with a
warning on the source.
"""

from __future__ import annotations

import re

from portlabel.constants import TRANSPORTS
from portlabel.errors import RegistryFormatError
from portlabel.registry.model import Record, RegistrySource
from portlabel.registry.sources.common import parse_port_range

_ENTRY = re.compile(
    r"^(?P<name>[^\s#]+)\s+(?P<port>\d+(?:-\d+)?)(?P<protos>(?:[/,][A-Za-z]+)+)"
    r"(?P<rest>(?:\s[^#]*)?)(?:#(?P<comment>.*))?$"
)
_FREQUENCY = re.compile(r"^(?:0?\.\d+|[01](?:\.\d*)?)$")
_SNIFF_LINES = 8


def _entry_lines(text: str):
    """(line number, entry text) for each line that is not blank or a comment."""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def looks_like_services(data: bytes) -> bool:
    """True when the first entry lines all read as ``name port/proto ...``."""
    text = data[:16384].decode("utf-8", errors="replace")
    seen = 0
    for _, line in _entry_lines(text):
        if not _ENTRY.match(line):
            return False
        seen += 1
        if seen == _SNIFF_LINES:
            break
    return seen > 0


def read_services_file(path: str, data: bytes, sha256: str) -> RegistrySource:
    """Parse a services(5)-style file; the first line that does not parse is an error."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # old services files are not always UTF-8
    records: list[Record] = []
    warnings: list[str] = []
    nmap: bool | None = None
    for number, line in _entry_lines(text):
        m = _ENTRY.match(line)
        if m is None:
            raise RegistryFormatError(
                path, "expected 'name port/protocol [aliases] [# comment]'", f"line {number}"
            )
        extra = m.group("rest").split()
        if nmap is None:
            nmap = bool(extra) and bool(_FREQUENCY.match(extra[0]))
        frequency = None
        if nmap:
            if len(extra) != 1 or not _FREQUENCY.match(extra[0]):
                raise RegistryFormatError(
                    path,
                    "nmap-services entry needs one frequency between 0 and 1 after port/protocol",
                    f"line {number}",
                )
            frequency = float(extra[0])
            extra = []
        records.extend(_records(path, m, number, tuple(extra), frequency, warnings))
    source = RegistrySource(
        "nmap-services" if nmap else "services", path, sha256, warnings=warnings
    )
    label = source.label
    source.records = [r.with_source(label) for r in records]
    return source


def _records(
    path: str,
    m: re.Match[str],
    number: int,
    aliases: tuple[str, ...],
    frequency: float | None,
    warnings: list[str],
) -> list[Record]:
    where = f"line {number}"
    try:
        port_lo, port_hi = parse_port_range(m.group("port"))
    except ValueError as exc:
        raise RegistryFormatError(path, str(exc), where) from None
    transports = []
    for transport in (p.lower() for p in re.split(r"[/,]", m.group("protos")) if p):
        if transport in TRANSPORTS:
            transports.append(transport)
        else:  # e.g. AppleTalk's ddp in /etc/services: a real entry, but not one for IP
            warnings.append(
                f"{path}: {where}: {m.group('name')}: transport {transport!r} "
                "is not an IP transport; entry skipped"
            )
    description = " ".join((m.group("comment") or "").split())
    return [
        Record(
            name=m.group("name"),
            port_lo=port_lo,
            port_hi=port_hi,
            transport=transport,
            description=description,
            aliases=aliases,
            frequency=frequency,
            line=number,
        )
        for transport in dict.fromkeys(transports)
    ]
