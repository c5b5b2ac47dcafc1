"""The labelling pipeline: raw packet batches in, labelled flow tables out.

Theory of operation: each ``RawBatch`` a reader yields is decoded into a ``PacketBatch``
(``capture.decode``; a ``PacketBatch`` from any capture backend goes in as it is),
folded into one ``FlowTable`` (flows finished by the batch's time come back as a pyarrow
Table), and each finished table gets the ``iana.*`` columns (``label_flows``). At the
end of input the table is flushed. Several files are one capture when their batches go
through the same pipeline, so a flow cut by a file rotation stays one flow.

Pure: no files, no printing. ``LabelPipeline`` is push-style (``feed``/``finish``, for
live sources, with ``advance`` to move the flow clock in quiet periods, and
``feed_packets`` for per-packet labels); ``label_batches`` is the pull-style loop over any
iterable of batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import column_values
from portlabel.capture.batch import DecodeStatus, PacketBatch, RawBatch
from portlabel.capture.checksums import verify_checksums
from portlabel.capture.decode import decode
from portlabel.capture.linktypes import linktype_name
from portlabel.capture.reassembly import Reassembler
from portlabel.flows import FinishedFlows, FlowConfig, FlowTable, PacketFlows
from portlabel.flows.engine import KeyedBatch
from portlabel.flows.pieces import split_keyed
from portlabel.labelling.flows import label_flows, packet_labels
from portlabel.labelling.iana import prepare_labels
from portlabel.labelling.stages import prefetched, usable_cpus
from portlabel.registry.compiled import Registry

# statuses of packets that made it to the flow layer (a fragment joins its flow)
_DECODED = [DecodeStatus.OK, DecodeStatus.FRAGMENT, DecodeStatus.NO_NEXT_HEADER,
            DecodeStatus.BAD_IP_CHECKSUM]  # fmt: skip
_REASONS = {
    "UNSUPPORTED_LINK": "of a link type portlabel does not decode",
    "NOT_IP": "without IP (ARP, LLDP, STP...)",
    "TRUNCATED": "cut short by the capture",
    "MALFORMED": "malformed",
}


@dataclass
class PipelineStats:
    """What went through a pipeline so far."""

    frames: int = 0  # records read
    captured_bytes: int = 0  # sum of their captured lengths
    flows: int = 0  # flows emitted
    flow_packets: int = 0  # packets counted in emitted flows
    flow_ip_bytes: int = 0  # IP-level bytes of emitted flows
    not_in_flows: dict[str, int] = field(default_factory=dict)  # reason -> packets
    reassembled: int = 0  # IP fragments put back together into datagrams
    datagrams: int = 0  # the datagrams they made
    evicted: int = 0  # flows ended early (end_reason evicted) to stay under max_flows
    # link type -> [packets decoded, {DecodeStatus name: packets not decoded}]
    by_linktype: dict[int, list] = field(default_factory=dict)

    def count_decoded(self, batch: PacketBatch) -> None:
        """Tally ``batch``'s packets by link type: decoded, or not and why."""
        if not len(batch):
            return
        status, linktype = batch.status, batch.linktype
        decoded = np.isin(status, _DECODED)
        if (linktype == linktype[0]).all():
            kinds = [int(linktype[0])]
            counts = {kinds[0]: int(decoded.sum())}
        else:
            kinds = np.unique(linktype).tolist()
            counts = {k: int(decoded[linktype == k].sum()) for k in kinds}
        for k in kinds:
            self.by_linktype.setdefault(k, [0, {}])[0] += counts[k]
        if decoded.all():
            return
        code = linktype[~decoded].astype(np.int64) * 256 + status[~decoded]
        values, n = np.unique(code, return_counts=True)
        for v, c in zip(values.tolist(), n.tolist(), strict=True):
            why = self.by_linktype[v >> 8][1]
            name = DecodeStatus(v & 0xFF).name
            why[name] = why.get(name, 0) + c

    def undecodable(self) -> list[str]:
        """One line per link type none of whose packets could be decoded, naming it and
        why (a capture of link type USER0, of only ARP...)."""
        lines = []
        for linktype, (decoded, why) in sorted(self.by_linktype.items()):
            if decoded or not why:
                continue
            total = sum(why.values())
            reasons = ", ".join(f"{n:,} {_REASONS.get(k, k.lower())}" for k, n in why.items())
            lines.append(f"none of the {total:,} packets of link type "
                         f"{linktype_name(linktype)} could be decoded: {reasons}")  # fmt: skip
        return lines

    def metadata(self) -> dict:
        """The counts as plain data (the API's table metadata, the CLI's summary)."""
        return {
            "frames": self.frames,
            "flows": self.flows,
            "flow_packets": self.flow_packets,
            "not_in_flows": dict(self.not_in_flows),
            "reassembled_fragments": self.reassembled,
            "reassembled_datagrams": self.datagrams,
            "evicted_flows": self.evicted,
            "undecodable": self.undecodable(),
        }

    def count_flows(self, table: pa.Table) -> None:
        self.flows += table.num_rows
        for name in ("orig_pkts", "resp_pkts"):
            self.flow_packets += int(column_values(table, name).sum())
        for name in ("orig_ip_bytes", "resp_ip_bytes"):
            self.flow_ip_bytes += int(column_values(table, name).sum())


class LabelPipeline:
    """Push batches in with ``feed``; labelled finished flows come out."""

    def __init__(self, registry: Registry, config: FlowConfig | None = None) -> None:
        self.registry = registry
        self.flows = FlowTable(config or FlowConfig())
        timeout = self.flows.config.fragment_timeout
        self.reassembler = None if timeout is None else Reassembler(timeout)
        self.stats = PipelineStats()

    def decoded(self, batch: RawBatch | PacketBatch, reassemble: bool = True) -> PacketBatch:
        """``batch`` decoded (a ``PacketBatch`` as it is), counted in ``stats``. Raw
        batches get their checksums verified when the flow options ask for it, and their
        IP fragments reassembled (unless ``reassemble`` is False: per-packet labels keep
        one row per packet)."""
        self.stats.frames += len(batch)
        self.stats.captured_bytes += int(batch.caplen.sum(dtype=np.int64))
        if not isinstance(batch, RawBatch):
            self.stats.count_decoded(batch)
            return batch
        packets = decode(batch)
        self.stats.count_decoded(packets)
        if self.flows.config.check_checksums:
            verify_checksums(batch, packets)
        if reassemble and self.reassembler is not None:
            packets = self.reassembler.reassemble(batch, packets, self._decode_whole)
        return packets

    def _decode_whole(self, raw: RawBatch) -> PacketBatch:
        """Reassembled datagrams' frames, decoded (and checked) as other frames are."""
        packets = decode(raw)
        if self.flows.config.check_checksums:
            verify_checksums(raw, packets)
        return packets

    def feed(self, batch: RawBatch | PacketBatch) -> pa.Table | None:
        """Fold one batch (raw batches are decoded first); the flows it finished, labelled."""
        finished = self.flows.update(self.decoded(batch))
        return None if finished is None else self._label(finished)

    def feed_packets(
        self, batch: RawBatch | PacketBatch
    ) -> tuple[pa.Table | None, dict[str, pa.Array]]:
        """``feed``, plus each packet's ``uid`` and ``iana.*`` labels (its flow's)."""
        finished, packets = self.feed_packet_flows(batch)
        return finished, packet_labels(self.registry, packets)

    def feed_packet_flows(
        self, batch: RawBatch | PacketBatch
    ) -> tuple[pa.Table | None, PacketFlows]:
        """``feed``, plus each packet's flow (``PacketFlows``), unlabelled."""
        got = self.flows.update(self.decoded(batch, reassemble=False), want_rows=True)
        finished = None if got.flows is None else self._label(got.flows)
        return finished, got.packets

    def advance(self, now_ns: int) -> pa.Table | None:
        """Move the flow clock with no packet (live capture); the flows that timed out."""
        finished = self.flows.advance(now_ns)
        return None if finished is None else self._label(finished)

    def finish(self) -> pa.Table:
        """Every flow still active, labelled (end of input)."""
        table = self._label(self.flows.flush())
        self.count_left_out()
        return table

    def prepare(self) -> None:
        """Do now the one-time work of the first label: building the registry's label
        arrays. ``label_batches`` calls it while the worker threads read the first
        batches."""
        prepare_labels(self.registry)

    def render(self, done: FinishedFlows) -> pa.Table:
        """Finished flows from ``FlowTable.fold``/``drain``, rendered and labelled."""
        return self._label(done.table())

    def count_left_out(self) -> None:
        """Copy the flow table's count of packets in no flow (and of flows evicted) into
        ``stats``."""
        self.stats.evicted = self.flows.evicted
        left = self.flows.left_out
        counts = {s.name: int(left[s]) for s in DecodeStatus if s < len(left) and left[s]}
        if self.reassembler is not None:
            self.reassembler.finish()
            r = self.reassembler
            if r.incomplete:
                counts["FRAGMENT_INCOMPLETE"] = r.incomplete
            self.stats.reassembled, self.stats.datagrams = r.fragments, r.datagrams
        self.stats.not_in_flows = counts

    def _label(self, flows: pa.Table) -> pa.Table:
        labelled = label_flows(self.registry, flows)
        self.stats.count_flows(labelled)
        return labelled


def label_batches(
    raw_batches: Iterable[RawBatch | PacketBatch],
    registry: Registry,
    config: FlowConfig | None = None,
    pipeline: LabelPipeline | None = None,
    background: bool | None = None,
) -> Iterator[pa.Table]:
    """Labelled flow tables (none empty) for the batches of one capture, in order.

    Pass ``pipeline`` to read its ``stats`` afterwards. With ``background`` the work runs
    as three stages that overlap (``prefetch``): a worker thread reads, decodes and keys
    batches (``FlowTable.key``), a second one folds them into flows, and the caller's
    thread renders and labels the finished flows (and, as the consumer of this iterator,
    writes them). The
    result is the same either way; by default the stages overlap when this process may
    run on more than one CPU.
    """
    pipe = pipeline or LabelPipeline(registry, config)
    if background is None:
        background = usable_cpus() > 1
    # keying and grouping a batch's rows reads no flow: it runs with reading and decoding
    decoded = (pipe.flows.key(pipe.decoded(raw)) for raw in raw_batches)
    if background:
        decoded = prefetched(decoded, name="portlabel-decode")
        folded = prefetched(_folded(pipe, decoded), name="portlabel-flows", meanwhile=pipe.prepare)
        tables = map(pipe.render, folded)
    else:
        tables = map(pipe.render, _folded(pipe, decoded))
    for table in tables:
        if table.num_rows:
            yield table


def _folded(pipe: LabelPipeline, batches: Iterable[KeyedBatch]) -> Iterator[FinishedFlows]:
    """The flows each batch finishes, then the rest at the end of input (unrendered)."""
    for batch in batches:
        pieces = split_keyed(batch)  # a flood's batch: a bounded number of flows at a time
        del batch  # each piece is let go of once folded (split pieces are copies)
        while pieces:
            piece = pieces.pop(0)
            yield from pipe.flows.fold_keyed_pieces(piece, settle=not pieces)
            del piece
    pipe.count_left_out()
    yield from pipe.flows.drain_chunks()  # a piece at a time: a million flows may end here
