"""``portlabel label``: capture files in, one labelled flow per line/row out.

Several captures are read as one continuous capture (rotated files): one flow table is
fed by all of them in order, or, with ``--jobs``, worker processes label one file each
and the parts are joined (``parallel``) into the same flows. The output format is
``-F``, else the output file's
extension (``.jsonl``/``.json``, ``.csv``, ``.log`` -> zeek, ``.parquet``), else a table
on a terminal and JSON lines on a pipe. Files are written atomically (temporary file,
then rename; a device or FIFO such as /dev/null directly). A capture that cannot be read
is named with the reason and the others are still labelled; exit 1 then, 2 on usage
errors.
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
    jobs_count,
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
    p.add_argument(
        "-j",
        "--jobs",
        type=jobs_count,
        metavar="N",
        help="worker processes, one file (or 256 MB range of a plain pcap file) at a time "
        "each; flows that cross files are joined as one run would have them (default: "
        "the CPUs this process may use, when there are 3 or more and 64 MB of input or "
        "more; else 1: in this process)",
    )
    p.add_argument(
        "--dask",
        metavar="SCHEDULER",
        help="label on a Dask cluster (the scheduler's address, tcp://host:8786); its "
        "workers must see the files at the same paths; -o DIR receives a Parquet "
        "dataset partitioned by the hour flows started (hive: hour=YYYY-MM-DDTHH)",
    )
    p.add_argument(
        "--independent",
        action="store_true",
        help="the files are separate captures, not one rotated capture: no flow crosses "
        "from one to the next",
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
    fmt = "parquet" if args.dask else choose_format(args.format, args.output, sys.stdout.isatty())
    to_file = args.output not in (None, "-")
    # a Zeek log keys flows as Zeek does, unless --no-zeek-keys
    config = flow_config_from_args(args, zeek_keys=get_format(fmt).zeek_log)
    registry = registry_from_args(args)
    if args.dask:
        return _on_dask(args, paths, bpf, count, config, started)
    from portlabel.cli.label_run import LabelJob

    job = LabelJob(
        paths, registry, config, args.batch_size, quiet=args.quiet, backend=args.backend,
        packet_filter=bpf, count=count, jobs=args.jobs, independent=args.independent,
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
    useless = job.stats.frames and not job.stats.flows
    useless = useless and bool(job.stats.undecodable())
    return 0 if ok and not job.failures and not useless else 1


def _on_dask(args, paths, bpf, count, config, started) -> int:
    """``--dask``: the files labelled as tasks of a Dask cluster, a dataset written."""
    if args.output in (None, "-"):
        raise UsageError("--dask writes a Parquet dataset: give -o DIR")
    if count is not None or "-" in paths or args.backend != "native":
        raise UsageError("--dask reads capture files with the native backend, without -c")
    try:
        from distributed import Client

        import portlabel.dask as on_dask
    except ImportError:
        raise UsageError(
            "--dask needs dask and distributed: pip install 'portlabel[dask]'"
        ) from None
    problems: list[str] = []

    def say(line: str) -> None:
        print(f"portlabel: {line}", file=sys.stderr, flush=True)

    def problem(line: str) -> None:
        problems.append(line)
        say(line)

    with Client(args.dask, timeout="20s") as client:
        tables = on_dask.labelled_tables(
            paths, client, registry=args.registry, overlays=args.overlay or (),
            independent=args.independent, batch_size=args.batch_size, packet_filter=bpf,
            config=config, on_warning=say, on_problem=problem,
        )  # fmt: skip
        kept = [t for t in tables if t.num_rows]
    if not kept and problems:
        return 1
    if not kept:
        from portlabel.labelling.flows import labelled_schema

        kept = [labelled_schema().empty_table()]
    on_dask.write_hive_dataset(kept, args.output)
    if not args.quiet and sys.stderr.isatty():
        flows = sum(t.num_rows for t in kept)
        took = time.perf_counter() - started
        print(f"portlabel: {flows:,} flows -> {args.output} ({took:.2f} s)", file=sys.stderr)
    return 1 if problems else 0
