"""portlabel inside NFStream: an ``NFPlugin`` that adds the IANA labels to every flow.

    from nfstream import NFStreamer
    from portlabel.nfstream import IanaLabels
    df = NFStreamer("capture.pcap", udps=IanaLabels()).to_pandas()
    df[["protocol", "dst_port", "udps.iana_service", "udps.iana_status"]]

Each flow gets ``udps.iana_service``, ``udps.iana_port``, ``udps.iana_transport``,
``udps.iana_status``, ``udps.iana_description`` and ``udps.iana_port_of`` (``resp``,
``orig`` or empty) when it expires: the registry entry of its service port, chosen as
portlabel chooses it for its own flows (the responder's port, NFStream's ``dst_port``,
unless that is unassigned or dynamic and the originator's is assigned). NFStream runs its
meters in forked processes: each opens the memory-mapped registry on first use, so the
plugin itself pickles as a name. Installed by ``pip install portlabel[nfstream]``.
"""

from __future__ import annotations

from nfstream import NFPlugin

FIELDS = ("service", "port", "transport", "status", "description", "port_of")
_TRANSPORTS = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp"}


class IanaLabels(NFPlugin):
    """The IANA labels of each NFStream flow (``registry``: a path, else the default)."""

    def __init__(self, registry: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.registry_path = registry
        self._registry = None

    def __getstate__(self):  # forked or pickled meters open their own map
        state = dict(self.__dict__)
        state["_registry"] = None
        return state

    def _reg(self):
        if self._registry is None:
            from portlabel.registry.loading import resolve_registry

            self._registry = resolve_registry(self.registry_path, ())
        return self._registry

    def on_init(self, packet, flow) -> None:
        for name in FIELDS:
            setattr(flow.udps, f"iana_{name}", None)

    def on_expire(self, flow) -> None:
        labels = label_of(self._reg(), flow.protocol, flow.src_port, flow.dst_port)
        for name in FIELDS:
            setattr(flow.udps, f"iana_{name}", labels[name])


def label_of(registry, protocol: int, src_port: int, dst_port: int) -> dict:
    """The labels of one (protocol, originator port, responder port) flow."""
    import numpy as np

    from portlabel.labelling.iana import iana_columns, service_port_side

    proto = np.array([protocol], np.uint8)
    sport, dport = np.array([src_port], np.uint16), np.array([dst_port], np.uint16)
    from_orig = bool(service_port_side(registry, proto, sport, dport)[0])
    columns = iana_columns(registry, proto, sport if from_orig else dport)
    ported = protocol in _TRANSPORTS
    return {
        "service": columns["iana.service"][0].as_py(),
        "port": columns["iana.port"][0].as_py(),
        "transport": columns["iana.transport"][0].as_py(),
        "status": columns["iana.status"][0].as_py(),
        "description": columns["iana.description"][0].as_py(),
        "port_of": ("orig" if from_orig else "resp") if ported else "",
    }
