"""Labels: turn (transport, port) arrays into the ``iana.*`` columns every output shares.

The columns are a contract (Zeek's habit: declared once, new ones appended after the old):
``portlabel label`` writes them after the flow columns and ``portlabel enrich`` appends
them to existing logs. ``IANA_FIELDS`` declares each with its Zeek type name.

Rows whose IP protocol has no ports (ICMP, GRE, ESP, OSPF...) are named from the
protocol-numbers registry instead: service = the protocol keyword, port null.

Everything here is a gather: one lookup into the compiled registry, then ``take`` on
per-entry pyarrow dictionaries built once per registry.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import gather_strings, numeric, string_lists, strings, take
from portlabel.constants import TRANSPORTS
from portlabel.registry.compiled import Registry
from portlabel.registry.model import PORT_CLASS_NAMES, STATUS_NAMES, Status

# (column, Zeek type) in output order. Append new fields at the end only.
IANA_FIELDS: tuple[tuple[str, str], ...] = (
    ("iana.service", "string"),
    ("iana.port", "count"),
    ("iana.transport", "string"),
    ("iana.description", "string"),
    ("iana.status", "string"),
    ("iana.port_class", "string"),
    ("iana.aliases", "set[string]"),
    ("iana.source", "string"),
)
IANA_COLUMNS = tuple(name for name, _ in IANA_FIELDS)

_NO_PORTS = len(TRANSPORTS)
# statuses that do not name the service: the other side's assigned port is a better label
_WEAK = [Status.UNASSIGNED, Status.DYNAMIC, Status.RETIRED]


@lru_cache(maxsize=8)
def _dictionaries(registry: Registry) -> dict[str, pa.Array]:
    """Per-label pyarrow arrays: registry entries, then the 256 IP protocols."""

    blob, offsets = registry.string_table()

    def joined(column: str, protocols: list[str]) -> pa.Array:
        # the entries' strings straight from the table's bytes, then the 256 protocols'
        extra = [p.encode("utf-8") for p in protocols]
        ends = offsets[-1] + np.cumsum([len(e) for e in extra])
        table_offsets = np.concatenate([offsets, ends])
        table_blob = np.concatenate([blob, np.frombuffer(b"".join(extra), dtype=np.uint8)])
        ids = np.concatenate([registry.text_ids(column), len(offsets) - 1 + np.arange(256)])
        return gather_strings(table_blob, table_offsets, ids, null_empty=True)

    keyword = registry.protocol_text("keyword")
    proto_status = np.where(
        keyword != "", STATUS_NAMES[Status.ASSIGNED], STATUS_NAMES[Status.UNASSIGNED]
    )
    transport_names = np.array([*TRANSPORTS, ""], dtype=object)
    protocol_label = (registry.meta.get("protocols") or {}).get("label", "")
    return {
        "service": joined("name", [k.lower() for k in keyword.tolist()]),
        "description": joined("description", registry.protocol_text("description").tolist()),
        "source": joined("source", [protocol_label] * 256),
        "aliases": string_lists(_aliases(registry) + [[]] * 256),
        "transport": strings(transport_names.tolist(), null_empty=True),
        "status": strings([*STATUS_NAMES, *proto_status.tolist()]),  # entries', protocols'
        "port_class": strings(list(PORT_CLASS_NAMES)),
    }


def _aliases(registry: Registry) -> list[list[str]]:
    """Each entry's aliases (newline-separated in the table); only the few entries that
    have any are decoded."""
    blob, offsets = registry.string_table()
    ids = registry.text_ids("aliases")
    out: list[list[str]] = [[] for _ in range(len(ids))]
    has = np.flatnonzero(offsets[ids + 1] > offsets[ids])
    for entry, sid in zip(has.tolist(), ids[has].tolist(), strict=True):
        out[entry] = blob[offsets[sid] : offsets[sid + 1]].tobytes().decode("utf-8").split("\n")
    return out


def prepare_labels(registry: Registry) -> None:
    """Build ``registry``'s label arrays now rather than at the first lookup."""
    _dictionaries(registry)


def iana_columns(registry: Registry, ip_protos, ports) -> dict[str, pa.Array]:
    """The ``iana.*`` columns for each (IP protocol number, service port) pair.

    ``ip_protos`` are protocol numbers (6, 17, 132, 33 carry ports); ``ports`` the service
    port of each row (ignored where the protocol has none). Returns name -> pyarrow array.
    """
    protos = np.asarray(ip_protos).astype(np.uint8, copy=False)
    ports = np.asarray(ports).astype(np.int64, copy=False)
    rows = registry.rows(protos)
    entries = registry.lookup(protos, ports).astype(np.int64)
    portless = rows == _NO_PORTS
    label = np.where(portless, registry.n_entries + protos.astype(np.int64), entries)
    d = _dictionaries(registry)

    # port-less rows take their status from the protocol-numbers registry, which
    # follows the entries' statuses in the "status" dictionary
    status = registry.status(entries, ports).astype(np.int64)
    status = np.where(portless, len(STATUS_NAMES) + protos.astype(np.int64), status)
    none = portless if portless.any() else None
    return {
        "iana.service": take(d["service"], label),
        "iana.port": numeric(ports.astype(np.uint16), null_mask=portless),
        "iana.transport": take(d["transport"], rows, none),
        "iana.description": take(d["description"], label),
        "iana.status": take(d["status"], status),
        "iana.port_class": take(d["port_class"], registry.port_class(ports), none),
        "iana.aliases": take(d["aliases"], label),
        "iana.source": take(d["source"], label),
    }


def service_port_side(registry: Registry, ip_protos, orig_ports, resp_ports) -> np.ndarray:
    """True where the label should come from the originator's port, not the responder's.

    A flow's service port is the responder's; when that one is unassigned, dynamic or
    retired and the originator's is assigned, the originator's.
    """
    orig_entries = registry.lookup(ip_protos, orig_ports)
    resp_entries = registry.lookup(ip_protos, resp_ports)
    resp_status = registry.status(resp_entries, resp_ports)
    orig_status = registry.status(orig_entries, orig_ports)
    weak = np.isin(resp_status, _WEAK)
    return weak & (orig_status == Status.ASSIGNED)
