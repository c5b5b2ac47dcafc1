"""Labelling packets that arrive one at a time (a sniffer's callback), flows out as they end.

``StreamLabeller`` is the push-style core behind the scapy and pyshark integrations:
``add(frame)`` buffers a ``capture.frames.Frame``; every ``batch_packets`` frames, or when
``max_delay`` seconds (wall clock) have passed since the first buffered one, the buffer goes
through one ``LabelPipeline`` as a batch, and the flows it finished are passed to
``on_flows`` (a labelled pyarrow Table) and kept. ``flush()`` processes the buffer and ends
every flow still active (the end of a capture). ``flows`` is everything finished so far as
one Table, ``to_pandas()`` the same as a DataFrame. ``label_packet(frame)`` gives one
packet's labels in the context of the flows seen so far: its flow's uid, and the IANA
entry of the flow's service port (the responder's, as for the flow).

``PacketLabeller`` is what the scapy and pyshark callbacks share: a callable taking the
library's packet object, turned into a ``Frame`` by the subclass's ``frame``.

Pure: frames in, Arrow tables out; no sockets, no printing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pyarrow as pa

from portlabel.capture.frames import Frame, frames_batch
from portlabel.flows.config import FlowConfig
from portlabel.labelling.flows import labelled_schema
from portlabel.labelling.pipeline import LabelPipeline


class StreamLabeller:
    def __init__(
        self,
        registry=None,
        config: FlowConfig | None = None,
        on_flows: Callable[[pa.Table], object] | None = None,
        batch_packets: int = 1024,
        max_delay: float = 1.0,
        keep: bool = True,
    ) -> None:
        from portlabel.registry.loading import resolve_registry

        self.registry = resolve_registry(registry, ())
        self.pipeline = LabelPipeline(self.registry, config)
        self.on_flows = on_flows
        self.batch_packets = batch_packets
        self.max_delay = max_delay
        self.keep = keep
        self.packets = 0  # frames added
        self._buffer: list[Frame] = []
        self._since = 0.0
        self._done: list[pa.Table] = []

    def add(self, frame: Frame) -> None:
        if not self._buffer:
            self._since = time.monotonic()
        self._buffer.append(frame)
        self.packets += 1
        if (
            len(self._buffer) >= self.batch_packets
            or time.monotonic() - self._since >= self.max_delay
        ):
            self._process()

    def _process(self) -> None:
        if not self._buffer:
            return
        batch = frames_batch(self._buffer, self.pipeline.stats.frames)
        self._buffer = []
        self._emit(self.pipeline.feed(batch))

    def _emit(self, table: pa.Table | None) -> None:
        if table is None or not table.num_rows:
            return
        if self.keep:
            self._done.append(table)
        if self.on_flows is not None:
            self.on_flows(table)

    def flush(self) -> pa.Table:
        """End of capture: the buffer is processed and every active flow ended; the flows
        this ended (also passed to ``on_flows``). Packets added afterwards start new
        flows, as after a pause longer than any timeout."""
        self._process()
        last = self.pipeline.finish()
        self._emit(last)
        return last

    def label_packet(self, frame: Frame) -> dict:
        """One packet's flow ``uid`` and ``iana.*`` labels, now (its flow's labels)."""
        self._process()
        batch = frames_batch([frame], self.pipeline.stats.frames)
        finished, labels = self.pipeline.feed_packets(batch)
        self.packets += 1
        self._emit(finished)
        return {name: column[0].as_py() for name, column in labels.items()}

    @property
    def flows(self) -> pa.Table:
        """Every flow finished so far (with ``keep``), labelled."""
        if not self._done:
            return labelled_schema().empty_table()
        return pa.concat_tables(self._done)

    def to_pandas(self):
        return self.flows.to_pandas()

    def __enter__(self) -> StreamLabeller:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


class PacketLabeller:
    """A callback labeller over some library's packet objects (``frame(pkt)``: its Frame).

    ``on_flows(table)`` gets each pyarrow Table of flows as they end; ``registry``,
    ``config`` and the flow options (``tcp_timeout=60``...) are those of
    ``portlabel.label``. Call it with each packet; ``flush()`` (or the end of a ``with``
    block) ends the flows still active; ``flows`` / ``to_pandas()`` hold what ended.
    """

    def __init__(
        self,
        on_flows: Callable | None = None,
        *,
        registry=None,
        config=None,
        batch_packets: int = 1024,
        max_delay: float = 1.0,
        **flow_options,
    ) -> None:
        from portlabel.flows.config import flow_config

        self.stream = StreamLabeller(
            registry, flow_config(config, **flow_options), on_flows, batch_packets, max_delay
        )

    @staticmethod
    def frame(pkt) -> Frame:
        raise NotImplementedError

    def __call__(self, pkt) -> None:
        self.stream.add(self.frame(pkt))  # returns None: a sniffer prints nothing

    def flush(self) -> pa.Table:
        """End every active flow (the capture is over); the flows this ended."""
        return self.stream.flush()

    def label_packet(self, pkt) -> dict:
        """``pkt``'s flow uid and labels, in the context of the packets seen so far."""
        return self.stream.label_packet(self.frame(pkt))

    @property
    def flows(self) -> pa.Table:
        return self.stream.flows

    def to_pandas(self):
        return self.stream.to_pandas()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.flush()
