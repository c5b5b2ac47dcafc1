"""One packet's label without a flow: the IANA entry of its service port.

A packet alone has no flow to say which side is the server, so its service port is its
destination port, or its source port when the destination's is unassigned or dynamic
and the source's is assigned (a server's reply): the rule flows use
(``labelling.iana.service_port_side``).
"""

from __future__ import annotations

import numpy as np

from portlabel.capture.decode import decode
from portlabel.capture.frames import Frame, frames_batch
from portlabel.labelling.iana import iana_columns, service_port_side


def label_frame(frame: Frame, registry=None) -> dict:
    """``iana.*`` of ``frame``'s service port (all None for a packet with no port)."""
    from portlabel.registry.loading import resolve_registry

    reg = resolve_registry(registry, ())
    packets = decode(frames_batch([frame]))
    proto, sport, dport = packets.ip_proto[:1], packets.sport[:1], packets.dport[:1]
    port = np.where(service_port_side(reg, proto, sport, dport), sport, dport)
    columns = iana_columns(reg, proto, port)
    return {name: column[0].as_py() for name, column in columns.items()}
