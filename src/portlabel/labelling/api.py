"""Labelling capture files from Python: ``label`` and ``iter_labelled``.

The files are read by ``capture.inputs.CaptureInputs`` (several files are one capture),
labelled by ``pipeline.label_batches`` and handed back as pyarrow tables. Reader
warnings and, with ``errors="warn"``, unreadable files become ``CaptureWarning``s issued
in the caller's thread (the files are read in a worker thread).

    >>> import portlabel
    >>> flows = portlabel.label("captures/zeekreal_infected.pcap")  # doctest: +SKIP
    >>> flows.to_pandas()[["id.resp_p", "iana.service"]]            # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from portlabel.capture.inputs import CaptureInputs, Paths
from portlabel.constants import BATCH_SIZE
from portlabel.errors import InputError


class CaptureWarning(UserWarning):
    """A capture was read only in part (truncated or damaged after its start)."""


def iter_labelled(
    paths: Paths,
    *,
    registry=None,
    overlays: Iterable[str] = (),
    batch_size: int = BATCH_SIZE,
    errors: str = "raise",
    config=None,
    packet_filter: str | None = None,
    count: int | None = None,
    **flow_options: Any,
) -> Iterator[pa.Table]:
    """Labelled flow tables (pyarrow) of the capture file(s) ``paths``, as flows finish.

    Several paths are one capture (rotated files). ``registry`` is a ``Registry`` or a
    registry file; ``overlays`` are extra name files. Flow options are ``FlowConfig``
    fields (``tcp_timeout=60``, ``uid_seed=1``...) or a whole ``config``.
    ``errors="raise"`` raises ``CaptureError`` at a file that cannot be read;
    ``errors="warn"`` warns (``CaptureWarning``) and goes on with the next file.
    Reader warnings (a truncated file) are always issued as ``CaptureWarning``.
    ``packet_filter`` is a BPF expression (``"tcp port 443"``, as tcpdump takes it):
    only the packets it accepts are read; ``count`` stops after that many packets.
    """
    if errors not in ("raise", "warn"):
        raise ValueError("errors must be 'raise' or 'warn'")
    read = {"packet_filter": packet_filter, "count": count}
    return _labelled_tables(
        paths, registry, overlays, batch_size, errors, config, flow_options, read=read
    )


def _labelled_tables(
    paths,
    registry,
    overlays,
    batch_size,
    errors,
    config,
    flow_options,
    stats=None,
    depth=3,
    read=None,
):
    """``iter_labelled``'s generator (warnings point at the frame that iterates it)."""
    from portlabel.flows.config import flow_config
    from portlabel.labelling.pipeline import LabelPipeline, label_batches
    from portlabel.registry.loading import resolve_registry

    reg = resolve_registry(registry, overlays)
    cfg = flow_config(config, **flow_options)

    # the files are read in a worker thread: its warnings are issued from this generator,
    # in the caller's thread, so that they point at the caller's code
    pending: list[str] = []

    def problem(exc: InputError) -> None:
        if errors == "raise":
            raise exc
        pending.append(str(exc))

    def issue_pending() -> None:
        while pending:
            warnings.warn(pending.pop(0), CaptureWarning, stacklevel=depth)

    packets, paths = in_memory_batches(paths, batch_size)
    if packets is not None:
        if read and (read.get("packet_filter") or read.get("count") is not None):
            raise ValueError("packet_filter and count are for capture files; filter packets first")
        inputs = packets
    else:
        inputs = CaptureInputs(
            paths, batch_size, on_problem=problem, on_warning=pending.append, **(read or {})
        )
    pipe = LabelPipeline(reg, cfg)
    for table in label_batches(inputs, reg, pipeline=pipe):
        issue_pending()
        yield table
    pending.extend(pipe.stats.undecodable())
    issue_pending()
    if stats is not None:
        stats.update(pipe.stats.metadata())


def in_memory_batches(source, batch_size: int = BATCH_SIZE):
    """Raw batches of ``source`` when it holds packets, not file names: scapy packets (a
    ``PacketList``, a list, any iterable), pyshark packets (read with ``use_json=True,
    include_raw=True``) or ``capture.frames.Frame`` tuples. Returns (batches, None), or
    (None, the paths) when ``source`` names files."""
    import itertools

    if isinstance(source, str | os.PathLike | bytes):
        return None, source
    items = iter(source)
    nothing = object()
    first = next(items, nothing)
    if first is nothing:
        return None, []
    chain = itertools.chain([first], items)
    if isinstance(first, str | os.PathLike):
        return None, list(chain)
    from portlabel.capture.frames import Frame, frame_batches

    if isinstance(first, Frame):
        return frame_batches(chain, batch_size), None
    kind = _packet_kind(first)
    if kind == "scapy":
        from portlabel.scapy import raw_batches

        return raw_batches(chain, batch_size), None
    if kind == "pyshark":
        from portlabel.pyshark import frames

        return frame_batches(frames(chain), batch_size), None
    raise TypeError(
        f"cannot label {type(first).__name__} objects: give capture file names, scapy "
        "or pyshark packets, or portlabel.capture.frames.Frame tuples"
    )


def _packet_kind(item) -> str | None:
    """``"scapy"`` or ``"pyshark"`` for those libraries' packets (subclasses included: a
    user's own scapy layer), by class when the library is loaded."""
    import sys

    for kind, module, name in (("scapy", "scapy.packet", "Packet"),
                               ("pyshark", "pyshark.packet.packet", "Packet")):  # fmt: skip
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(item, getattr(loaded, name)):
            return kind
    return None


def label(paths: Paths, **options: Any) -> pa.Table:
    """All labelled flows of the capture file(s) as one pyarrow Table (see ``iter_labelled``).

    ``paths`` may also be packets held in memory: scapy packets (``rdpcap(f)``, a list,
    a generator), pyshark packets, or ``Frame`` tuples; the flows are those of the same
    packets written to a pcap.

    ``label(...).to_pandas()`` gives a DataFrame. What went into the flows, and what did
    not, is the table's metadata (``run_metadata(table)``: frames read, flows, packets in
    no flow by reason, fragments reassembled, link types that could not be decoded).
    """
    from portlabel.flows.columns import empty_table
    from portlabel.labelling.flows import labelled_schema

    stats: dict = {}
    known = ("registry", "overlays", "batch_size", "errors", "config", "packet_filter", "count")
    named = {k: options.pop(k) for k in known if k in options}
    if named.get("errors", "raise") not in ("raise", "warn"):
        raise ValueError("errors must be 'raise' or 'warn'")
    tables = list(
        _labelled_tables(
            paths,
            named.get("registry"),
            named.get("overlays", ()),
            named.get("batch_size", BATCH_SIZE),
            named.get("errors", "raise"),
            named.get("config"),
            options,
            stats,
            4,  # the warnings point past this function, at its caller
            read={"packet_filter": named.get("packet_filter"), "count": named.get("count")},
        )
    )
    table = pa.concat_tables(tables) if tables else empty_table(labelled_schema())
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(stats)})


METADATA_KEY = b"portlabel"


def run_metadata(table: pa.Table) -> dict:
    """The counts ``label`` attached to ``table`` (empty if it has none)."""
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}
