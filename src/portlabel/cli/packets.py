"""``portlabel packets``: one line per packet, as text (like ``tcpdump -n``) or JSON.

The files are read as one capture by ``capture.inputs.CaptureInputs`` (any backend) and
each batch is written by ``packet_writers.lines.PacketFormatter`` as a block of lines.
A file that cannot be read is reported on one line and the others are still shown; the
exit status is then 1. Reader warnings are printed after the packets.

Labels: with ``--label`` each line also gets the packet's flow ``uid`` and its flow's
``iana.service`` (``packet_writers.labels.PacketLabeller``, fed the same batches);
``-o FILE`` writes a pcapng copy whose packet comments are those labels instead
(``packet_writers.pcapng_comments``), the copy and the write in this thread while a
worker thread reads, builds flows and renders the comments of the next batches. Both
build flows, so both take the flow options.
"""

from __future__ import annotations

import sys

from portlabel.cli.options import (
    add_capture_options,
    add_flow_options,
    capture_inputs_from_args,
    flow_config_from_args,
    registry_from_args,
)
from portlabel.errors import InputError, UsageError


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "packets",
        parents=parents,
        help="print one line per packet (text or JSON)",
        description="Decode capture files and print one line per packet: frame, time, "
        "innermost addresses and ports, transport, wire length, TCP flags, tunnel, VLAN "
        "and decode status.",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per packet")
    p.add_argument(
        "--label",
        action="store_true",
        help="add each packet's flow uid and iana.service (the label of its flow)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="PCAPNG",
        help="write the capture as pcapng with each packet's label as its comment "
        "(implies --label; nothing is printed)",
    )
    add_capture_options(p)
    add_flow_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from portlabel.atomicfile import refuse_to_overwrite
    from portlabel.capture.inputs import CaptureInputs

    paths, bpf, count = capture_inputs_from_args(args)
    refuse_to_overwrite(args.output, paths)

    def report(exc) -> None:
        print(f"portlabel: {exc}", file=sys.stderr)

    inputs = CaptureInputs(
        paths, args.batch_size, backend=args.backend, on_problem=report,
        packet_filter=bpf, count=count,
    )  # fmt: skip
    if args.output:
        _write_labelled(args, inputs)
    else:
        _print_lines(args, inputs)
    if not args.quiet:
        for note in inputs.warnings:
            print(f"portlabel: warning: {note}", file=sys.stderr)
    return 1 if inputs.failures else 0


def _labeller(args):
    from portlabel.packet_writers.labels import PacketLabeller

    return PacketLabeller(registry_from_args(args), flow_config_from_args(args))


def _print_lines(args, inputs) -> None:
    from portlabel.packet_writers.lines import PacketFormatter

    labeller = _labeller(args) if args.label else None
    formatter = PacketFormatter()
    out = sys.stdout
    for batch in inputs.packet_batches():
        if not len(batch):
            continue
        if labeller is None:
            extra = None
        else:
            extra = labeller.json_fields(batch) if args.json else labeller.text_fields(batch)
        block = (
            formatter.json_lines(batch, extra) if args.json else formatter.text_lines(batch, extra)
        )
        out.write(block)
    out.flush()


def _write_labelled(args, inputs) -> int:
    """Write ``args.output`` (pcapng, labels as comments); the number of packets written.
    The copy needs each packet's original bytes, so it reads with the native reader."""
    from portlabel.atomicfile import atomic_output
    from portlabel.labelling.stages import prefetched, usable_cpus
    from portlabel.packet_writers.pcapng_comments import PcapngCommentWriter

    if args.backend != "native":
        raise UsageError("-o copies the original packet bytes: it needs --backend native")
    labeller = _labeller(args)

    def labelled():  # each batch with its comments and its own file's snaplens
        for raw in inputs.raw_batches():
            comments, lengths = labeller.comments(raw)
            yield raw, dict(inputs.reader.snaplens), comments, lengths

    batches = labelled()
    if usable_cpus() > 1:  # reading, flows and comments ahead of the copy and the write
        depth = 2  # batches queued; one more is being copied, one being labelled
        inputs.held_batches = depth + 2
        batches = prefetched(batches, depth=depth, name="portlabel-packets")
    try:
        with atomic_output(args.output) as out:
            writer = PcapngCommentWriter(out)
            for raw, snaplens, comments, lengths in batches:
                writer.write(raw, snaplens, comments, lengths)
    except OSError as exc:
        raise InputError(args.output, f"cannot write: {exc.strerror or exc}") from None
    return writer.packets
