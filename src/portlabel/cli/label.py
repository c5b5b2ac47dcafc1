"""``portlabel label``: capture files in, one labelled flow per line/row out.

Several captures are read as one continuous capture (rotated files): one flow table is
fed by all of them in order. The output format is ``-F``, else the output file's
extension (``.jsonl``/``.json``, ``.csv``, ``.log`` -> zeek, ``.parquet``), else a table
on a terminal and JSON lines on a pipe. Files are written atomically (temporary file,
then rename). A capture that cannot be read is named with the reason and the others are
still labelled; exit 1 then, 2 on usage errors.
"""

from __future__ import annotations

import sys
import time

from portlabel.atomicfile import refuse_to_overwrite
from portlabel.cli.options import (
    add_capture_options,
    add_flow_options,
    capture_inputs_from_args,
    flow_config_from_args,
    registry_from_args,
)
from portlabel.errors import UsageError
from portlabel.writers import EXTENSIONS, format_for_path, format_names, get_format


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "label",
        parents=parents,
        help="label the flows of capture files (pcap/pcapng, compressed or not)",
        description="Group the packets of capture files into flows and label each flow "
        "with the IANA registry entry of its service port.",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default: stdout)")
    p.add_argument(
        "-F",
        "--format",
        choices=format_names(),
        help="output format (default: from -o's extension; a table on a terminal, else jsonl)",
    )
    add_capture_options(p)
    add_flow_options(p)
    p.set_defaults(run=run)


def choose_format(fmt: str | None, output: str | None, stdout_tty: bool) -> str:
    """The output format from ``-F``, the output's extension, or where stdout goes."""
    to_stdout = output in (None, "-")
    if fmt is None and not to_stdout:
        fmt = format_for_path(output)
        if fmt is None:
            known = ", ".join(sorted(EXTENSIONS))
            raise UsageError(f"cannot tell the format of {output!r} ({known}): give -F")
    if fmt is None:
        fmt = "table" if stdout_tty else "jsonl"
    if to_stdout and stdout_tty and get_format(fmt).binary:
        raise UsageError(f"{fmt} is binary: give -o FILE or redirect stdout")
    return fmt


def run(args) -> int:
    started = time.perf_counter()
    paths, bpf, count = capture_inputs_from_args(args)
    refuse_to_overwrite(args.output, paths)
    fmt = choose_format(args.format, args.output, sys.stdout.isatty())
    to_file = args.output not in (None, "-")
    # a Zeek log keys flows as Zeek does, unless --no-zeek-keys
    config = flow_config_from_args(args, zeek_keys=get_format(fmt).zeek_log)
    registry = registry_from_args(args)
    from portlabel.cli.label_run import LabelJob

    job = LabelJob(
        paths, registry, config, args.batch_size, quiet=args.quiet, backend=args.backend,
        packet_filter=bpf, count=count,
    )  # fmt: skip
    table_on_tty = fmt == "table" and not to_file and sys.stdout.isatty()
    job.progress = not args.quiet and sys.stderr.isatty() and not table_on_tty
    job.summarise = not args.quiet and sys.stderr.isatty() and fmt != "table"
    if to_file:
        ok = job.to_file(args.output, fmt, summary=not args.quiet)
    else:
        ok = job.to_stream(sys.stdout.buffer, fmt, summary=not args.quiet)
    if not args.quiet and sys.stderr.isatty() and fmt != "table" and ok:
        where = f" -> {args.output}" if to_file else ""
        took = time.perf_counter() - started
        print(f"portlabel: {job.summary.line()}{where} ({took:.2f} s)", file=sys.stderr)
    # packets read, none of them decodable: nothing useful was written
    useless = job.pipeline.stats.frames and not job.pipeline.stats.flows
    useless = useless and bool(job.pipeline.stats.undecodable())
    return 0 if ok and not job.inputs.failures and not useless else 1
