"""portlabel inside pyshark: label pyshark's packets and emit labelled flows as they end.

pyshark gives a packet's bytes only when the capture is opened with ``use_json=True,
include_raw=True``; portlabel labels those bytes (decoded by its own decoder, so the flows
are those ``portlabel label`` gives for the same capture).

- ``frames(packets)``: pyshark packets as ``capture.frames.Frame`` tuples (bytes, time,
  wire length, link type from tshark's encapsulation), for ``portlabel.label(packets)``.
- ``FlowLabeller``: a callback for ``FileCapture``/``LiveCapture.apply_on_packets``;
  flows go to ``on_flows`` (a pyarrow Table) as they end, ``flush()`` (or leaving a
  ``with`` block) ends the rest; ``flows`` / ``to_pandas()``.
- ``labelled_flows(capture)``: wraps ``capture.sniff_continuously()`` (a ``LiveCapture``;
  a ``FileCapture`` is iterated), yielding labelled flow tables as flows end, and the
  last ones when the capture stops.
- ``label_packet(pkt)``: the IANA entry of one packet's service port.
- ``FileCapture`` / ``LiveCapture``: pyshark's own classes with its exit-status defect
  fixed (``capture.pyshark_processes``): pyshark 0.6 now and then reports tshark's normal
  exit at ``close()`` as a crash (``TSharkCrashException``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from portlabel.capture.backends.tshark_backend import UNKNOWN_LINKTYPE, WTAP_TO_DLT, ts_ns
from portlabel.capture.frames import Frame
from portlabel.labelling.stream import PacketLabeller


def frame(pkt) -> Frame:
    """One pyshark packet as a ``Frame`` (needs ``use_json=True, include_raw=True``)."""
    try:
        data = pkt.get_raw_packet()
    except (AssertionError, AttributeError, KeyError, TypeError):  # pyshark asserts it
        raise ValueError(
            "this pyshark packet has no raw bytes: open the capture with "
            "use_json=True, include_raw=True"
        ) from None
    info = pkt.frame_info
    encap = _int(getattr(info, "encap_type", None))
    linktype = WTAP_TO_DLT.get(encap, UNKNOWN_LINKTYPE) if encap is not None else UNKNOWN_LINKTYPE
    when = ts_ns(str(pkt.sniff_timestamp)) if pkt.sniff_timestamp else 0
    iface = _int(getattr(info, "interface_id", 0)) or 0
    return Frame(data, when, int(pkt.length or len(data)), linktype, iface)


def _int(value) -> int | None:
    if value is None:
        return None
    try:
        return int(str(value), 0)
    except ValueError:
        return None


def frames(packets: Iterable) -> Iterator[Frame]:
    return map(frame, packets)


class FlowLabeller(PacketLabeller):
    """Labelled flows of pyshark packets: ``capture.apply_on_packets(labeller)`` (see
    ``labelling.stream.PacketLabeller``)."""

    frame = staticmethod(frame)


def labelled_flows(capture, packet_count: int | None = None, **options) -> Iterator:
    """Labelled flow tables from ``capture.sniff_continuously(packet_count)`` (a
    ``FileCapture``: its first ``packet_count`` packets) as flows end; when the capture
    ends or the count is reached, the flows still active are ended and yielded too. (A
    caller that stops iterating early gets no more tables: keep a ``FlowLabeller`` and
    call its ``flush()`` to have those flows.)"""
    import itertools

    ready: list = []
    labeller = FlowLabeller(ready.append, **options)
    live = getattr(capture, "sniff_continuously", None)
    if live is not None:
        packets = live(packet_count=packet_count)
    else:
        packets = itertools.islice(capture, packet_count)
    try:
        for pkt in packets:
            labeller(pkt)
            while ready:
                yield ready.pop(0)
    finally:
        labeller.flush()
    while ready:
        yield ready.pop(0)


def label_packet(pkt, labeller: FlowLabeller | None = None, registry=None) -> dict:
    """The IANA labels of ``pkt``'s service port (its flow's, with ``labeller``)."""
    if labeller is not None:
        return labeller.label_packet(pkt)
    from portlabel.labelling.packet import label_frame

    return label_frame(frame(pkt), registry)


def __getattr__(name: str):
    """``FileCapture`` and ``LiveCapture``: pyshark's, with exact exits (made on first use,
    so that importing this module does not import pyshark)."""
    if name in ("FileCapture", "LiveCapture"):
        import pyshark

        from portlabel.capture.pyshark_processes import with_exact_exits

        cls = with_exact_exits(getattr(pyshark, name))
        cls.__name__ = cls.__qualname__ = name
        cls.__module__ = __name__
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
