"""Export the compiled registry for other tools.

* ``services``: ``/etc/services`` form (``name port/proto aliases # description``).
* ``wireshark``: Wireshark's ``services`` file form (one line per name and port, transports
  joined with commas, as Wireshark's own file lists them).
* ``zeek``: a Zeek script defining ``table[port] of string`` with each port's primary name,
  loadable with ``@load`` (``Portlabel::iana_services``).
* ``csv``: IANA's CSV columns, one row per record, name-only records included.
* ``json``: one JSON object per record (JSON lines), every field.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from portlabel.constants import TRANSPORTS
from portlabel.registry.compiled import Registry
from portlabel.registry.sources.iana_csv import COLUMNS as CSV_HEADER


def _primary_ports(registry: Registry):
    """(transport, port, entry) for every port whose primary record has a name, in order."""
    names = registry.text("name")
    for row, transport in enumerate(TRANSPORTS):
        entries = registry.index[row]
        for port in np.flatnonzero(names[entries] != "").tolist():
            yield transport, port, int(entries[port])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def export_services(registry: Registry) -> str:
    names, descs, aliases = (
        registry.text("name"),
        registry.text("description"),
        registry.text("aliases"),
    )
    lines = [
        f"# IANA service names and port numbers, updated {registry.updated}, exported by portlabel"
    ]
    for transport, port, e in _primary_ports(registry):
        alias = " ".join(a for a in aliases[e].split("\n") if a)
        entry = f"{names[e]:<15} {port}/{transport}" + (f" {alias}" if alias else "")
        lines.append(f"{entry:<39} # {_one_line(descs[e])}" if descs[e] else entry)
    return "\n".join(lines) + "\n"


def export_wireshark(registry: Registry) -> str:
    names, descs = registry.text("name"), registry.text("description")
    by_name_port: dict[tuple[str, int], list[str]] = {}
    description: dict[tuple[str, int], str] = {}
    for transport, port, e in _primary_ports(registry):
        key = (names[e], port)
        by_name_port.setdefault(key, []).append(transport)
        description.setdefault(key, _one_line(descs[e]))
    lines = [
        f"# IANA service names and port numbers, updated {registry.updated}, exported by portlabel"
    ]
    for (name, port), transports in sorted(by_name_port.items(), key=lambda kv: kv[0][1]):
        entry = f"{name}\t{port}/{'/'.join(transports)}"  # Wireshark's 64/tcp/udp
        lines.append(
            f"{entry}\t# {description[(name, port)]}" if description[(name, port)] else entry
        )
    return "\n".join(lines) + "\n"


def _zeek_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def export_zeek(registry: Registry) -> str:
    names = registry.text("name")
    lines = [
        f"# IANA service names and port numbers, updated {registry.updated}, exported by portlabel",
        "module Portlabel;",
        "",
        "export {",
        "\t## Primary IANA service name of each port/transport.",
        "\tconst iana_services: table[port] of string = {",
    ]
    rows = [
        f'\t\t[{port}/{transport}] = "{_zeek_string(names[e])}",'
        for transport, port, e in _primary_ports(registry)
        if transport in ("tcp", "udp")
    ]
    if rows:
        rows[-1] = rows[-1].rstrip(",")
    lines += rows + ["\t} &redef;", "}", ""]
    return "\n".join(lines)


def _records(registry: Registry):
    for e in range(1, registry.n_entries):
        yield registry.entry(e)


def export_csv(registry: Registry) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for r in _records(registry):
        port = (
            ""
            if r["port"] is None
            else (
                f"{r['port_range'][0]}-{r['port_range'][1]}" if r["port_range"] else str(r["port"])
            )
        )
        writer.writerow(
            [
                r["service"] or "",
                port,
                r["transport"] or "",
                r["description"] or "",
                "".join(f"[{x}]" for x in r["assignee_ids"]),
                "".join(f"[{x}]" for x in r["contact_ids"]),
                r["registered"] or "",
                r["modified"] or "",
                "".join(f"[{x}]" for x in r["references"]),
                "" if r["service_code"] is None else r["service_code"],
                r["unauthorized"] or "",
                r["notes"] or "",
            ]
        )
    return out.getvalue()


def export_json(registry: Registry) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _records(registry))


EXPORTERS = {
    "services": export_services,
    "wireshark": export_wireshark,
    "zeek": export_zeek,
    "csv": export_csv,
    "json": export_json,
}


def export(registry: Registry, fmt: str) -> str:
    return EXPORTERS[fmt](registry)
