"""portlabel inside scapy: label scapy's packets, in scapy's loop, with scapy's names.

- ``frames(packets)``: scapy packets as ``capture.frames.Frame`` tuples (their bytes as
  captured when no layer was changed since, else as scapy builds them; the link type
  from scapy's own table of layer classes), for ``portlabel.label(packets)``: a
  ``PacketList``, a list or any iterable of packets gives the flows the same packets
  written to a pcap give. (A frame of a link type scapy does not know reaches scapy as
  ``Raw`` with no link type: such packets are counted as undecodable.)
- ``FlowLabeller``: for ``sniff(prn=labeller)`` or ``sniff(session=labeller)``. Packets are
  labelled in batches; flows are handed to ``on_flows`` (a pyarrow Table) as they end.
  As a session it ends every flow when the capture ends (an offline file's end); with
  ``prn``, or a live sniff stopped by ``count``/``timeout``, call ``flush()`` or use it
  as a context manager. ``flows`` / ``to_pandas()``: the finished flows.
- ``label_packet(pkt)``: the IANA entry of one packet's service port (with a
  ``FlowLabeller``, its flow's: the responder's port, as the flow is labelled).
- ``install()`` / ``uninstall()``: scapy shows the IANA registry's names for TCP, UDP and
  SCTP ports (``pkt.show()``, ``sprintf("%TCP.dport%")``, ``TCP_SERVICES``), in layer
  classes already built too (each port field holds its own copy of the service table,
  made when its class was built); ``uninstall()`` puts scapy's own tables back.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

import scapy.layers.inet6  # noqa: F401  (register Ethernet, IP and IPv6 link types with
import scapy.layers.l2  # noqa: F401  scapy, so its readers dissect what portlabel decodes)
from scapy.config import conf
from scapy.packet import NoPayload, Packet
from scapy.sessions import DefaultSession
from scapy.utils import EDecimal

from portlabel.capture.frames import Frame
from portlabel.labelling.stream import PacketLabeller

UNKNOWN_LINKTYPE = 0xFFFF
_LINKTYPES: dict[type, int] = {}
# layers scapy maps to a DLT that is not the capture-file LINKTYPE portlabel reads
_RAW_IP = {"IP": 228, "IPv6": 229}


def _linktype(cls: type) -> int:
    found = _LINKTYPES.get(cls)
    if found is None:
        found = UNKNOWN_LINKTYPE
        for base in cls.__mro__:  # a user's subclass of Ether is Ethernet
            known = _RAW_IP.get(base.__name__, conf.l2types.layer2num.get(base))
            if known is not None:
                found = known
                break
        _LINKTYPES[cls] = found
    return found


def _unchanged(pkt: Packet, _end=NoPayload) -> bool:
    """No layer of ``pkt`` was changed since it was dissected (its bytes are current):
    a change clears the changed layer's ``raw_packet_cache``."""
    layer = pkt
    while layer.raw_packet_cache is not None:
        layer = layer.payload
        if layer.__class__ is _end:
            return True
    return False


def _ns(when) -> int:
    """A scapy timestamp (an exact decimal when read from a file, else a float) in ns."""
    if when is None:
        return 0
    if isinstance(when, Decimal):
        return int(when.scaleb(9))
    # a float (a packet built or sniffed live): to the microsecond, as wrpcap writes it
    return int(round(float(when) * 1e6)) * 1000


def frame(pkt: Packet) -> Frame:
    """One scapy packet as a ``Frame``."""
    data = pkt.original if pkt.original and _unchanged(pkt) else bytes(pkt)
    ts_ns = _ns(pkt.time)
    wirelen = pkt.wirelen or len(data)
    return Frame(data, ts_ns, wirelen, _linktype(type(pkt)))


def frames(packets: Iterable[Packet]) -> Iterator[Frame]:
    """``frame`` of each packet."""
    return map(frame, packets)


_ORIGINAL = operator.attrgetter("original")
_TIME = operator.attrgetter("time")
_WIRELEN = operator.attrgetter("wirelen")


def raw_batches(packets: Iterable[Packet], batch_size: int, first_frame: int = 0):
    """Raw batches of scapy packets, ``batch_size`` at a time: ``frames`` done a chunk at
    a time with C-level attribute getters (what ``portlabel.label(packets)`` uses)."""
    import itertools

    import numpy as np

    from portlabel.capture.batch import RawBatch

    items = iter(packets)
    unchanged = _unchanged
    while chunk := list(itertools.islice(items, batch_size)):
        data = [
            raw if raw and unchanged(pkt) else bytes(pkt)
            for pkt, raw in zip(chunk, map(_ORIGINAL, chunk), strict=True)
        ]
        n = len(chunk)
        caplen = np.fromiter(map(len, data), np.uint32, n)
        offset = np.zeros(n, np.int64)
        np.cumsum(caplen[:-1], out=offset[1:])
        wirelen = np.array(list(map(_WIRELEN, chunk)), dtype=object)
        wirelen = np.where(wirelen == None, 0, wirelen).astype(np.uint32)  # noqa: E711
        times = list(map(_TIME, chunk))
        if all(t.__class__ is EDecimal for t in times):  # read from a file: exact
            ts = np.array([int(t.scaleb(9)) for t in times], np.int64)
        else:
            ts = np.fromiter(map(_ns, times), np.int64, n)
        linktype = np.fromiter(map(_linktype, map(type, chunk)), np.uint16, n)
        yield RawBatch(
            np.frombuffer(b"".join(data), np.uint8), offset, caplen,
            np.maximum(wirelen, caplen), ts, linktype, np.zeros(n, np.uint16),
            np.arange(first_frame, first_frame + n, dtype=np.int64),
        )  # fmt: skip
        first_frame += n


class FlowLabeller(PacketLabeller, DefaultSession):
    """Labelled flows of the packets scapy sniffs: ``sniff(prn=labeller)`` or
    ``sniff(session=labeller)`` (see ``labelling.stream.PacketLabeller``)."""

    def __init__(self, on_flows: Callable | None = None, **options) -> None:
        PacketLabeller.__init__(self, on_flows, **options)
        DefaultSession.__init__(self)

    frame = staticmethod(frame)

    # -- session= ---------------------------------------------------------------------
    def process(self, pkt: Packet) -> Packet:
        self.stream.add(frame(pkt))
        return pkt

    def recv(self, sock) -> Iterator[Packet]:
        try:
            yield from super().recv(sock)
        except EOFError:  # an offline capture's end: its flows end with it
            self.flush()
            raise


def label_packet(pkt: Packet, labeller: FlowLabeller | None = None, registry=None) -> dict:
    """The IANA labels of ``pkt``'s service port.

    Alone, a packet's service port is its destination port, or its source port when the
    destination's is unassigned or dynamic and the source's is assigned (a reply from a
    server). With ``labeller`` the packet joins its flow and gets the flow's labels.
    """
    if labeller is not None:
        return labeller.label_packet(pkt)
    from portlabel.labelling.packet import label_frame

    return label_frame(frame(pkt), registry)


# -- scapy's own service names ----------------------------------------------------------

_SAVED: dict = {}


def _service_tables():
    from scapy import data

    return {"tcp": data.TCP_SERVICES, "udp": data.UDP_SERVICES, "sctp": data.SCTP_SERVICES}


def _iana_names(registry, transport: str) -> dict[int, str]:
    import numpy as np

    ports = np.arange(65536)
    entries = registry.lookup(np.full(65536, {"tcp": 6, "udp": 17, "sctp": 132}[transport]), ports)
    names = registry.text("name")
    out = {}
    for port, entry in zip(ports.tolist(), entries.tolist(), strict=True):
        name = names[entry] if entry > 0 else ""
        if name:
            out[port] = name
    return out


def _port_fields(tables: dict) -> Iterator[tuple[object, str]]:
    """Every enum field of every layer class built so far whose names are a copy of one
    of scapy's service tables, with the transport of that table."""
    copies = {t: dict(table.d) for t, table in tables.items()}
    sizes = {len(c): t for t, c in copies.items()}
    seen: set[int] = set()
    stack = [Packet]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        for field in getattr(cls, "fields_desc", None) or ():
            i2s = getattr(field, "i2s", None)
            if not isinstance(i2s, dict) or id(field) in seen:
                continue
            transport = sizes.get(len(i2s))
            if transport is not None and i2s == copies[transport]:
                seen.add(id(field))
                yield field, transport


def install(registry=None) -> int:
    """Make scapy name TCP, UDP and SCTP ports from the IANA registry; the number of
    port fields changed (classes already built included). ``uninstall()`` undoes it."""
    from portlabel.registry.loading import resolve_registry

    if _SAVED:
        uninstall()
    reg = resolve_registry(registry, ())
    tables = _service_tables()
    fields = list(_port_fields(tables))
    names = {t: _iana_names(reg, t) for t in tables}
    _SAVED["tables"] = {t: dict(table.d) for t, table in tables.items()}
    _SAVED["fields"] = [(field, field.i2s, field.s2i) for field, _ in fields]
    for transport, table in tables.items():
        table.d.clear()
        table.d.update(names[transport])
    for field, transport in fields:
        field.i2s = dict(names[transport])
        field.s2i = {name: port for port, name in names[transport].items()}
    return len(fields)


def uninstall() -> None:
    """Put scapy's own service tables back (in the tables and in every port field)."""
    if not _SAVED:
        return
    for transport, table in _service_tables().items():
        table.d.clear()
        table.d.update(_SAVED["tables"][transport])
    for field, i2s, s2i in _SAVED["fields"]:
        field.i2s, field.s2i = i2s, s2i
    _SAVED.clear()
