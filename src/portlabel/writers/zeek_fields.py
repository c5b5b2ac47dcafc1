"""Which columns a Zeek conn log has, in which order, with which Zeek types.

Zeek's own conn.log fields come first, in Zeek's order (``CONN_FIELDS``). Three of them
are Zeek's analysis, not packet counting, and portlabel never fills them: ``service``
(protocol detection), ``local_orig`` and ``local_resp`` (Site::local_nets). They are
written unset (``-`` in TSV, left out in JSON) so the header stays Zeek's and tools that
index fields by name or position keep working. Then the fields Zeek's optional policy
scripts add (VLANs, Community ID, MACs), then the label columns (``iana.*`` and
``iana.port_of``), then portlabel's own flow columns (``transport``, ``responder_by``,
``end_reason``), then anything else the table carries.
"""

from __future__ import annotations

import pyarrow as pa

from portlabel.flows.columns import FLOW_COLUMNS, ZEEK_TYPES
from portlabel.labelling.flows import LABEL_FIELDS

# Zeek's conn.log (base/protocols/conn/main.zeek, Zeek 6+), in order.
CONN_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
    ("ip_proto", "count"),
)
ALWAYS_UNSET = ("service", "local_orig", "local_resp")

_ARROW_TO_ZEEK = {
    pa.bool_(): "bool",
    pa.float64(): "double",
    pa.float32(): "double",
    pa.string(): "string",
    pa.large_string(): "string",
}


def zeek_type_of(arrow_type: pa.DataType) -> str:
    """A Zeek type name for a column this module does not declare."""
    if arrow_type in _ARROW_TO_ZEEK:
        return _ARROW_TO_ZEEK[arrow_type]
    if pa.types.is_unsigned_integer(arrow_type):
        return "count"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"vector[{zeek_type_of(arrow_type.value_type)}]"
    return "string"


def conn_log_fields(schema: pa.Schema) -> list[tuple[str, str]]:
    """(name, Zeek type) of every field of the log written for tables of ``schema``."""
    present = set(schema.names)
    declared = dict(ZEEK_TYPES) | dict(LABEL_FIELDS)
    out = [(n, t) for n, t in CONN_FIELDS if n in present or n in ALWAYS_UNSET]
    seen = {n for n, _ in out}
    policy = [c.name for c in FLOW_COLUMNS if c.zeek and c.name not in seen]
    labels = [n for n, _ in LABEL_FIELDS]
    own = [c.name for c in FLOW_COLUMNS if not c.zeek]
    for name in [*policy, *labels, *own, *schema.names]:
        if name in present and name not in seen:
            seen.add(name)
            out.append((name, declared.get(name) or zeek_type_of(schema.field(name).type)))
    return out
