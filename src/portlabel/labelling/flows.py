"""Labelling finished flows: the ``iana.*`` columns appended to a flow table.

A flow's service port is its responder's port, unless that port is unassigned or in the
dynamic range while the originator's is assigned (a server that spoke first, a capture
that missed the handshake): then the originator's (``labels.service_port_side``). The
``iana.port_of`` column, appended after the ``iana.*`` columns, says which side the label
came from: ``"resp"`` or ``"orig"``, null for protocols without ports (ICMP, GRE...),
which are named from the protocol-numbers registry instead.

Pure: a pyarrow Table of flows (``flows.columns.FLOW_SCHEMA``) in, the same table with
the label columns appended out.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import column_values, numeric, strings, take
from portlabel.constants import PORTED_PROTOCOLS
from portlabel.labelling.iana import IANA_FIELDS, iana_columns, service_port_side
from portlabel.registry.compiled import Registry

PORT_OF_COLUMN = "iana.port_of"
PORT_SIDES = ("resp", "orig")
# Every column label_flows appends, with its Zeek type name, in output order.
LABEL_FIELDS: tuple[tuple[str, str], ...] = (*IANA_FIELDS, (PORT_OF_COLUMN, "string"))
LABEL_COLUMNS: tuple[str, ...] = tuple(name for name, _ in LABEL_FIELDS)

_PORTED = np.zeros(256, dtype=bool)
_PORTED[list(PORTED_PROTOCOLS)] = True


@lru_cache(maxsize=1)
def _side_names() -> pa.Array:
    return strings(list(PORT_SIDES))


def _numpy(table: pa.Table, name: str) -> np.ndarray:
    # a missing port or protocol is labelled as 0 (never unassigned garbage from a NaN)
    return column_values(table, name, 0)


def service_ports(registry: Registry, flows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(service port, True where it is the originator's) of each flow."""
    protos = _numpy(flows, "ip_proto").astype(np.uint8, copy=False)
    orig = _numpy(flows, "id.orig_p").astype(np.int64)
    resp = _numpy(flows, "id.resp_p").astype(np.int64)
    return choose_service_ports(registry, protos, orig, resp)


def choose_service_ports(
    registry: Registry, protos: np.ndarray, orig: np.ndarray, resp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(service port, True where it is the originator's) from a flow's two ports."""
    orig, resp = orig.astype(np.int64), resp.astype(np.int64)
    from_orig = service_port_side(registry, protos, orig, resp) & _PORTED[protos]
    return np.where(from_orig, orig, resp), from_orig


def packet_labels(registry: Registry, packets) -> dict[str, pa.Array]:
    """``uid`` and the ``iana.*`` columns of each packet: its flow's (null if in no flow).

    ``packets`` is a ``flows.PacketFlows``. The registry is asked once per distinct
    (protocol, service port); the packets then gather from those few rows.
    """
    where, columns = distinct_packet_labels(registry, packets)
    gather = numeric(np.maximum(where, 0), null_mask=where < 0)
    out = {"uid": packets.uids()}
    out.update({name: col.take(gather) for name, col in columns.items()})
    return out


def distinct_packet_labels(registry: Registry, packets) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """The distinct ``iana.*`` labels of a batch's packets, and each packet's row among
    them (-1: the packet is in no flow). Few rows, so callers render each once."""
    protos = packets.ip_proto
    ports, _ = choose_service_ports(registry, protos, packets.orig_p, packets.resp_p)
    pair = protos.astype(np.int64) << 16 | ports
    unique, inverse = np.unique(pair[packets.in_flow], return_inverse=True)
    columns = iana_columns(registry, (unique >> 16).astype(np.uint8), unique & 0xFFFF)
    where = np.full(len(pair), -1, dtype=np.int64)
    where[packets.in_flow] = inverse.ravel()
    return where, columns


def label_flows(registry: Registry, flows: pa.Table) -> pa.Table:
    """``flows`` with the ``LABEL_COLUMNS`` appended (one gather per column)."""
    protos = _numpy(flows, "ip_proto").astype(np.uint8, copy=False)
    ports, from_orig = service_ports(registry, flows)
    columns = iana_columns(registry, protos, ports)
    portless = ~_PORTED[protos]
    columns[PORT_OF_COLUMN] = take(_side_names(), from_orig.astype(np.int64), portless)
    for name in LABEL_COLUMNS:
        flows = flows.append_column(name, columns[name])
    return flows


# The Arrow type of each label column as ``label_flows`` builds it (a test checks).
LABEL_ARROW_TYPES: dict[str, pa.DataType] = {
    **{name: pa.string() for name in LABEL_COLUMNS},
    "iana.port": pa.uint16(),
    "iana.aliases": pa.list_(pa.string()),
}


def labelled_schema() -> pa.Schema:
    """The schema of ``label_flows``' output (flow columns, then the label columns), the
    same for every registry; declared, so asking for it runs no labelling."""
    from portlabel.flows.columns import FLOW_SCHEMA

    labels = [pa.field(name, LABEL_ARROW_TYPES[name]) for name in LABEL_COLUMNS]
    return pa.schema([*FLOW_SCHEMA, *labels])
