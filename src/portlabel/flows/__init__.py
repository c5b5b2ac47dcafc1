"""Bidirectional flows with Zeek's conn.log meaning, built incrementally from packet batches.

``FlowTable(FlowConfig()).update(batch)`` returns finished flows as a pyarrow Table with
the columns of ``FLOW_SCHEMA`` (declared in ``columns``); ``flush()`` returns the rest.
``update(batch, want_rows=True)`` also says which flow each packet went to
(``FlowUpdate``), and ``advance(now_ns)`` moves the flow clock without packets.
"""

from portlabel.flows.columns import FLOW_COLUMNS, FLOW_SCHEMA, ZEEK_CONN_FIELDS, ZEEK_TYPES
from portlabel.flows.community_id import community_ids
from portlabel.flows.direction import LIKELY_SERVER_PORTS, is_likely_server_port
from portlabel.flows.engine import FlowConfig, FlowTable
from portlabel.flows.results import FinishedFlows, FlowUpdate, PacketFlows

__all__ = [
    "FLOW_COLUMNS",
    "FLOW_SCHEMA",
    "LIKELY_SERVER_PORTS",
    "ZEEK_CONN_FIELDS",
    "ZEEK_TYPES",
    "FinishedFlows",
    "FlowConfig",
    "FlowTable",
    "FlowUpdate",
    "PacketFlows",
    "community_ids",
    "is_likely_server_port",
]
