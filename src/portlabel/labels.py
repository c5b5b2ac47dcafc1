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

from portlabel.arrowutil import indices, numeric, string_lists, strings
from portlabel.registry.compiled import Registry
from portlabel.registry.model import PORT_CLASS_NAMES, STATUS_NAMES, TRANSPORTS, Status

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


@lru_cache(maxsize=8)
def _dictionaries(registry: Registry) -> dict[str, pa.Array]:
    """Per-label pyarrow arrays: registry entries, then the 256 IP protocols."""

    def joined(entries: np.ndarray, protocols: np.ndarray) -> pa.Array:
        return strings(np.concatenate([entries, protocols]).tolist(), null_empty=True)

    keyword = registry.protocol_text("keyword")
    proto_status = np.where(
        keyword != "", STATUS_NAMES[Status.ASSIGNED], STATUS_NAMES[Status.UNASSIGNED]
    )
    aliases = [a.split("\n") if a else [] for a in registry.text("aliases").tolist()]
    transport_names = np.array([*TRANSPORTS, ""], dtype=object)
    protocol_label = (registry.meta.get("protocols") or {}).get("label", "")
    return {
        "service": joined(
            registry.text("name"), np.array([k.lower() for k in keyword.tolist()], dtype=object)
        ),
        "description": joined(registry.text("description"), registry.protocol_text("description")),
        "source": joined(registry.text("source"), np.full(256, protocol_label, dtype=object)),
        "aliases": string_lists(aliases + [[]] * 256),
        "status_proto": strings(proto_status.tolist()),
        "transport": strings(transport_names.tolist(), null_empty=True),
        "status": strings(list(STATUS_NAMES)),
        "port_class": strings(list(PORT_CLASS_NAMES)),
    }


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

    status = registry.status(entries, ports)
    status_col = d["status"].take(indices(status))
    mask = numeric(portless)
    if portless.any():
        import pyarrow.compute as pc

        proto_status = d["status_proto"].take(indices(protos))
        status_col = pc.if_else(mask, proto_status, status_col)
    port_class = d["port_class"].take(indices(registry.port_class(ports)))
    label_idx = indices(label)
    return {
        "iana.service": d["service"].take(label_idx),
        "iana.port": numeric(ports.astype(np.uint16), null_mask=portless),
        "iana.transport": _where_null(d["transport"].take(indices(rows)), portless, mask),
        "iana.description": d["description"].take(label_idx),
        "iana.status": status_col,
        "iana.port_class": _where_null(port_class, portless, mask),
        "iana.aliases": d["aliases"].take(label_idx),
        "iana.source": d["source"].take(label_idx),
    }


def _where_null(array: pa.Array, null_rows: np.ndarray, mask: pa.Array) -> pa.Array:
    if not null_rows.any():
        return array
    import pyarrow.compute as pc

    return pc.if_else(mask, pa.nulls(len(array), type=array.type), array)


def service_port_side(registry: Registry, ip_protos, orig_ports, resp_ports) -> np.ndarray:
    """True where the label should come from the originator's port, not the responder's.

    A flow's service port is the responder's; when that one is unassigned or dynamic and
    the originator's is assigned, the originator's.
    """
    orig_entries = registry.lookup(ip_protos, orig_ports)
    resp_entries = registry.lookup(ip_protos, resp_ports)
    resp_status = registry.status(resp_entries, resp_ports)
    orig_status = registry.status(orig_entries, orig_ports)
    weak = (resp_status == Status.UNASSIGNED) | (resp_status == Status.DYNAMIC)
    return weak & (orig_status == Status.ASSIGNED)
