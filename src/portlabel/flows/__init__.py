"""Bidirectional flows with Zeek's conn.log meaning, built incrementally from packet batches.

``FlowTable(FlowConfig()).update(batch)`` returns finished flows as a pyarrow Table with
the columns of ``FLOW_SCHEMA`` (declared in ``columns``); ``flush()`` returns the rest.
``update(batch, want_rows=True)`` also says which flow each packet went to
(``FlowUpdate``), and ``advance(now_ns)`` moves the flow clock without packets.
``config`` declares the options (``FlowConfig``) the engine and the command line share.

The names below are resolved on first use: ``portlabel.flows.config`` is read by the
command line's option parser, which must not load numpy.
"""

from portlabel.lazy import lazy_exports

_EXPORTS = {
    "FLOW_COLUMNS": "portlabel.flows.columns",
    "FLOW_SCHEMA": "portlabel.flows.columns",
    "ZEEK_CONN_FIELDS": "portlabel.flows.columns",
    "ZEEK_TYPES": "portlabel.flows.columns",
    "community_ids": "portlabel.flows.community_id",
    "LIKELY_SERVER_PORTS": "portlabel.flows.direction",
    "is_likely_server_port": "portlabel.flows.direction",
    "FlowConfig": "portlabel.flows.config",
    "flow_config": "portlabel.flows.config",
    "FlowTable": "portlabel.flows.engine",
    "FinishedFlows": "portlabel.flows.results",
    "FlowUpdate": "portlabel.flows.results",
    "PacketFlows": "portlabel.flows.results",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
