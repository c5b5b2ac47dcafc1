"""The flow record schema: one declaration of every column a ``FlowBatch`` carries.

Each column is declared once with its Arrow type, its Zeek type name (``time``, ``string``,
``addr``, ``port``, ``enum``, ``interval``, ``count``, ``set[string]``, ``int``) and its
meaning. Column names follow Zeek's conn.log where Zeek has the field, so a Zeek TSV/JSON
writer can take names and types from ``FLOW_COLUMNS`` directly; columns Zeek lacks
(``transport``, ``responder_by``...) are marked ``zeek=False``.

Conventions shared with Zeek: ``ts`` is the first packet's time, an Arrow timestamp in
nanoseconds (so Parquet and pandas see a time, and text formats write the capture's exact
digits), ``duration`` float seconds; ``duration``,
``orig_bytes`` and ``resp_bytes`` are null when the flow lasted zero time (Zeek prints
``-``); ``vlan``/``inner_vlan``/MACs are null when absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = pa.timestamp("ns", tz="UTC")  # the type of ``ts``


@dataclass(frozen=True, slots=True)
class FlowColumn:
    name: str
    arrow: pa.DataType
    zeek_type: str
    doc: str
    zeek: bool = True  # a field of Zeek's conn.log


FLOW_COLUMNS: tuple[FlowColumn, ...] = (
    FlowColumn(
        "ts", TIMESTAMP, "time", "first packet's time (ns, UTC; Zeek formats write seconds)"
    ),
    FlowColumn("uid", pa.string(), "string", '"C" + base62 of a random 96-bit value'),
    FlowColumn("id.orig_h", pa.string(), "addr", "originator address"),
    FlowColumn("id.orig_p", pa.uint16(), "port", "originator port (ICMP: type)"),
    FlowColumn("id.resp_h", pa.string(), "addr", "responder address"),
    FlowColumn("id.resp_p", pa.uint16(), "port", "responder port (ICMP: counterpart type or code)"),
    FlowColumn("proto", pa.string(), "enum", "tcp, udp, icmp or unknown_transport"),
    FlowColumn("duration", pa.float64(), "interval", "last - first packet; null if 0"),
    FlowColumn("orig_bytes", pa.uint64(), "count", "payload bytes (TCP: sequence space)"),
    FlowColumn("resp_bytes", pa.uint64(), "count", "payload bytes (TCP: sequence space)"),
    FlowColumn("conn_state", pa.string(), "string", "Zeek connection state (S0, SF, ...)"),
    FlowColumn("missed_bytes", pa.uint64(), "count", "sequence space never seen (TCP)"),
    FlowColumn("history", pa.string(), "string", "Zeek history letters, upper = originator"),
    FlowColumn("orig_pkts", pa.uint64(), "count", "packets sent by the originator"),
    FlowColumn("orig_ip_bytes", pa.uint64(), "count", "IP-level bytes sent by the originator"),
    FlowColumn("resp_pkts", pa.uint64(), "count", "packets sent by the responder"),
    FlowColumn("resp_ip_bytes", pa.uint64(), "count", "IP-level bytes sent by the responder"),
    FlowColumn(
        "tunnel_parents",
        pa.list_(pa.string()),
        "set[string]",
        "uids of the encapsulating flows",
    ),
    FlowColumn("vlan", pa.int32(), "int", "outer 802.1Q VLAN id"),
    FlowColumn("inner_vlan", pa.int32(), "int", "inner (QinQ) VLAN id"),
    FlowColumn("community_id", pa.string(), "string", "Community ID v1, seed 0"),
    FlowColumn("orig_l2_addr", pa.string(), "string", "originator MAC"),
    FlowColumn("resp_l2_addr", pa.string(), "string", "responder MAC"),
    FlowColumn("ip_proto", pa.uint8(), "count", "IP protocol number"),
    FlowColumn(
        "transport",
        pa.string(),
        "string",
        "tcp, udp, sctp, dccp, icmp, icmp6 or other: the registry's transport",
        zeek=False,
    ),
    FlowColumn(
        "responder_by",
        pa.string(),
        "string",
        "how the responder was chosen: syn, syn-ack, likely-server-port, lower-port, first-packet",
        zeek=False,
    ),
    FlowColumn("end_reason", pa.string(), "string", "closed, idle, active, flush", zeek=False),
)

FLOW_SCHEMA: pa.Schema = pa.schema([pa.field(c.name, c.arrow) for c in FLOW_COLUMNS])


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table with no rows (``Schema.empty_table`` imports pandas, ~0.4 s of start-up)."""
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)


ZEEK_TYPES: dict[str, str] = {c.name: c.zeek_type for c in FLOW_COLUMNS}
ZEEK_CONN_FIELDS: tuple[str, ...] = tuple(c.name for c in FLOW_COLUMNS if c.zeek)

RESPONDER_BY: tuple[str, ...] = (
    "syn",
    "syn-ack",
    "likely-server-port",
    "lower-port",
    "first-packet",
)
END_REASONS: tuple[str, ...] = ("closed", "idle", "active", "flush", "evicted")
