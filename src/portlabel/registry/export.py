"""Export the compiled registry for other tools.

* ``services``: ``/etc/services`` form (``name port/proto aliases # description``).
* ``wireshark``: Wireshark's ``services`` file form (one line per name and port, transports
  joined with commas, as Wireshark's own file lists them).
* ``wireshark-lua``: a Lua post-dissector for Wireshark/tshark (``-X lua_script:FILE``)
  adding ``iana.service``, ``iana.status``, ``iana.description`` and ``iana.port`` to every
  TCP, UDP, SCTP and DCCP packet; the registry rows are one string inside the script.
* ``zeek``: a Zeek package (a directory: ``zkg.meta``, ``__load__.zeek``, the table of
  each port's primary name and status, and a ``Conn::Info`` extension logging
  ``iana_service`` and ``iana_status`` in conn.log).
* ``csv``: IANA's CSV columns, one row per record, name-only records included.
* ``json``: one JSON object per record (JSON lines), every field.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from portlabel.constants import TRANSPORTS
from portlabel.registry.compiled import Registry
from portlabel.registry.model import Status
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


def _labelled_ports(registry: Registry):
    """(transport, port, name, status, description) of every port the registry says
    something about (a name, or a status other than unassigned)."""
    names, descs = registry.text("name"), registry.text("description")
    for row, transport in enumerate(TRANSPORTS):
        entries = registry.index[row]
        status = registry.status(entries, np.arange(65536))
        said = (names[entries] != "") | ((status != Status.UNASSIGNED) & (status != Status.DYNAMIC))
        for port in np.flatnonzero(said).tolist():
            e = int(entries[port])
            status_name = Status(int(status[port])).name.lower()
            yield transport, port, names[e], status_name, _one_line(descs[e])


def _template(name: str) -> str:
    """A file of ``registry/templates`` (the Lua post-dissector, the Zeek package's)."""
    return (Path(__file__).parent / "templates" / name).read_text(encoding="utf-8")


def export_wireshark_lua(registry: Registry) -> str:
    rows = []
    for transport, port, name, status, desc in _labelled_ports(registry):
        text = desc.replace("\t", " ").replace("]==]", "] ==]")  # keep the Lua long string
        rows.append(f"{transport}\t{port}\t{name}\t{status}\t{text}\n")
    return (
        _template("iana_postdissector.lua")
        .replace("@UPDATED@", str(registry.updated))
        .replace("@ROWS@", "".join(rows))
    )


def export_zeek_package(registry: Registry) -> dict[str, str]:
    """The files of a Zeek package (zkg layout), by path inside its directory."""
    updated = str(registry.updated)
    names, statuses = [], []
    for transport, port, name, status, _ in _labelled_ports(registry):
        if transport not in ("tcp", "udp"):
            continue  # Zeek's port type has tcp, udp and icmp only
        if name:
            names.append(f'\t\t[{port}/{transport}] = "{_zeek_string(name)}",')
        statuses.append(f'\t\t[{port}/{transport}] = "{status}",')
    for rows in (names, statuses):
        if rows:
            rows[-1] = rows[-1].rstrip(",")
    table = [
        f"# IANA service names and port statuses, updated {updated}, exported by portlabel",
        "module Portlabel;",
        "",
        "export {",
        "\t## Primary IANA service name of each port/transport.",
        "\tconst iana_services: table[port] of string = {",
        *names,
        "\t} &redef;",
        "\t## IANA status of each port/transport the registry lists (others: unassigned,",
        "\t## or dynamic from 49152).",
        "\tconst iana_status: table[port] of string = {",
        *statuses,
        "\t} &redef;",
        "}",
        "",
    ]
    return {
        "zkg.meta": _template("zeek_zkg.meta").replace("@UPDATED@", updated),
        "scripts/__load__.zeek": _template("zeek__load__.zeek").replace("@UPDATED@", updated),
        "scripts/iana-table.zeek": "\n".join(table),
        "scripts/main.zeek": _template("zeek_main.zeek"),
    }


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
    "wireshark-lua": export_wireshark_lua,
    "zeek": export_zeek_package,
    "zeek-table": export_zeek,
    "csv": export_csv,
    "json": export_json,
}
DIRECTORY_FORMATS = {"zeek"}  # exported as several files: -o names a directory


def export(registry: Registry, fmt: str) -> str | dict[str, str]:
    """The export's text, or for a directory format its files by relative path."""
    return EXPORTERS[fmt](registry)
