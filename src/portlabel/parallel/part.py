"""One part of a capture labelled on its own: ``label_part(PartJob) -> PartResult``.

The work a worker process (or a Dask task) does: read one file with no flow active,
fold its batches into a flow table, label the flows that finish, and keep what the
merge step (``stitch``) needs to join this part to the parts before it: the flows still
open at the end, the heads (``heads``), each finished flow's key and first position,
and the part's counts. Nothing is printed: problems and reader warnings travel back as
text, to be reported by the merge step in file order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from portlabel.errors import InputError
from portlabel.flows.config import FlowConfig
from portlabel.flows.pieces import split_keyed
from portlabel.flows.records import Records
from portlabel.parallel.heads import HeadCollector, Heads, SpilledHeads, spill


@dataclass(frozen=True)
class PartJob:
    """What a worker needs to label one file (picklable: it crosses processes)."""

    index: int  # the file's place in the capture
    path: str
    config: FlowConfig
    # a Registry, a registry file's path, None (the default one), or INHERITED: the one
    # ``inherit`` set in the parent before it forked this worker
    registry: object = None
    overlays: tuple[str, ...] = ()
    batch_size: int = 65536
    packet_filter: str | None = None
    alone: bool = False  # an independent capture: finish its flows here, keep no heads
    spill_dir: str | None = None  # write the heads into a file here (same machine only)
    byte_range: tuple[int, int] | None = None  # a plain pcap's records in (start, end) only


@dataclass
class PartResult:
    """What a worker hands to the merge step for one file."""

    index: int
    path: str
    tables: list[pa.Table] = field(default_factory=list)  # labelled finished flows
    pos0: list[np.ndarray] = field(default_factory=list)  # per table: first positions
    keys: list[np.ndarray] = field(default_factory=list)  # per table: packed flow keys
    open_records: Records | None = None  # flows still open at the end of the file
    open_notes: list | None = None
    heads: Heads | SpilledHeads | None = None
    frames: int = 0  # packets read (positions in this part are 0..frames-1)
    first_ts: int | None = None  # the time of the part's first flow packet
    last_ts: int | None = None  # its latest packet's time
    first_packet_ts: int | None = None  # its first and last packets' times (warnings)
    last_packet_ts: int | None = None
    stats: object = None  # the worker pipeline's PipelineStats
    # IP datagrams whose fragments the file ends in the middle of (Reassembler state):
    # the merge step reads the next part itself, after them
    pending_fragments: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # the file could not be read (on)
    warnings: list[str] = field(default_factory=list)
    failed: bool = False  # nothing could be read
    byte_range: tuple[int, int] | None = None  # the part's bytes, when a range of its file
    range_end: int | None = None  # where its record chain crossed the range's end
    seconds: float = 0.0  # the worker's own time on this part
    peak_rss: int = 0  # the worker process's peak resident memory so far (bytes)

    def __getstate__(self) -> dict:
        # tables cross processes as one Arrow IPC stream (pickling a pyarrow Table
        # imports pandas on both sides, half a second each)
        state = dict(self.__dict__)
        tables = state.pop("tables")
        state["table_rows"] = [t.num_rows for t in tables]
        state["table_stream"] = _ipc(tables)
        return state

    def __setstate__(self, state: dict) -> None:
        rows = state.pop("table_rows")
        stream = state.pop("table_stream")
        state["tables"] = _from_ipc(stream, rows)
        self.__dict__.update(state)


def _ipc(tables: list[pa.Table]) -> bytes | None:
    if not tables:
        return None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, tables[0].schema) as writer:
        for table in tables:
            writer.write_table(table)
    return sink.getvalue()


def _from_ipc(stream, rows: list[int]) -> list[pa.Table]:
    if stream is None:
        return []
    whole = pa.ipc.open_stream(stream).read_all()
    out, start = [], 0
    for n in rows:
        out.append(whole.slice(start, n))
        start += n
    return out


_registries: dict = {}
INHERITED = "<inherited registry>"


def inherit(registry) -> None:
    """Set the registry that forked workers use for ``PartJob(registry=INHERITED)``."""
    _registries[(INHERITED, ())] = registry


def _registry(job: PartJob):
    from portlabel.registry.compiled import Registry
    from portlabel.registry.loading import resolve_registry

    if isinstance(job.registry, Registry):
        return job.registry
    spec = (job.registry, job.overlays)
    if spec not in _registries:  # once per worker process
        _registries[spec] = resolve_registry(job.registry, job.overlays)
    return _registries[spec]


def label_part(job: PartJob) -> PartResult:
    """Label ``job.path`` from an empty flow table (see the module docstring)."""
    import resource
    import time

    from portlabel.capture.inputs import CaptureInputs
    from portlabel.labelling.pipeline import LabelPipeline

    started = time.perf_counter()
    out = PartResult(job.index, job.path, byte_range=job.byte_range)
    pipe = LabelPipeline(_registry(job), job.config)
    flows = pipe.flows
    collector = HeadCollector(math.ceil(job.config.longest_wait * 1e9))

    def problem(exc: InputError) -> None:
        out.problems.append(str(exc))

    inputs = CaptureInputs(
        [job.path], job.batch_size, on_problem=problem, on_warning=out.warnings.append,
        packet_filter=job.packet_filter, byte_range=job.byte_range,
    )  # fmt: skip
    for raw in inputs:
        keyed = flows.key(pipe.decoded(raw))
        if len(raw):
            if out.first_packet_ts is None:
                out.first_packet_ts = int(raw.ts_ns[0])
            out.last_packet_ts = int(raw.ts_ns[-1])
        if keyed.last_ts is not None:
            out.last_ts = keyed.last_ts if out.last_ts is None else max(out.last_ts, keyed.last_ts)
        pieces = split_keyed(keyed)
        for i, piece in enumerate(pieces, 1):
            if not job.alone:
                collector.before_fold(piece)
            finished = list(flows.fold_keyed_pieces(piece, settle=i == len(pieces)))
            if not job.alone:
                collector.after_fold(flows.new_flow_groups, len(piece.gstarts))
            for done in finished:
                out.tables.append(pipe.render(done))
                out.pos0.append(done.records["pos0"].copy())
                out.keys.append(done.records["key"].copy())
    if job.alone:
        for done in flows.drain_chunks():
            out.tables.append(pipe.render(done))
            out.pos0.append(done.records["pos0"].copy())
            out.keys.append(done.records["key"].copy())
    if pipe.reassembler is not None:
        out.pending_fragments = pipe.reassembler.hand_over()
    pipe.count_left_out()
    out.open_records, out.open_notes = flows.take_active()
    out.heads = None if job.alone else collector.heads()
    if out.heads is not None and job.spill_dir is not None:
        out.heads = spill(out.heads, job.spill_dir)
    out.first_ts = collector.start_ts if not job.alone else out.first_packet_ts
    out.frames = flows.position
    out.stats = pipe.stats
    out.failed = inputs.all_failed
    if job.byte_range is not None and inputs.reader is not None:
        out.range_end = inputs.reader.range_end
    out.seconds = time.perf_counter() - started
    out.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out
