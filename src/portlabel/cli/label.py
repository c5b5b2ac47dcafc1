"""``portlabel label``: capture files in, one labelled flow per line/row out.

Several captures are read as one continuous capture (rotated files): one flow table is
fed by all of them in order. The output format is ``-F``, else the output file's
extension (``.jsonl``/``.json``, ``.csv``, ``.log`` -> zeek, ``.parquet``), else a table
on a terminal and JSON lines on a pipe. Files are written atomically (temporary file,
then rename). A capture that cannot be read is named with the reason and the others are
still labelled; exit 1 then, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
import time

from portlabel.errors import UsageError

_NOT_GIVEN = object()  # an option left out keeps FlowConfig's default
_MAY_BE_OFF = ("dns_inactivity", "active_timeout")
FORMAT_NAMES = ("jsonl", "csv", "zeek", "zeek-json", "parquet", "table")

# option -> (FlowConfig field, help)
TIMEOUT_OPTIONS = (
    ("--tcp-timeout", "tcp_inactivity", "TCP inactivity timeout (default 300, Zeek's)"),
    ("--udp-timeout", "udp_inactivity", "UDP inactivity timeout (default 60)"),
    ("--icmp-timeout", "icmp_inactivity", "ICMP inactivity timeout (default 60)"),
    ("--other-timeout", "other_inactivity", "timeout of other IP protocols (default 60)"),
    ("--dns-timeout", "dns_inactivity", "UDP DNS timeout (default 10; 'off': the UDP one)"),
    ("--close-delay", "close_delay", "seconds a closed/reset TCP flow waits (default 5)"),
    ("--active-timeout", "active_timeout", "cut flows longer than this (default: never)"),
)


def _seconds(text: str) -> float | None:
    if text.lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text!r}")
    return value


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "label",
        parents=parents,
        help="label the flows of capture files (pcap/pcapng, compressed or not)",
        description="Group the packets of capture files into flows and label each flow "
        "with the IANA registry entry of its service port.",
    )
    p.add_argument(
        "captures", nargs="+", metavar="CAPTURE", help="pcap/pcapng file(s), in order; - for stdin"
    )
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default: stdout)")
    p.add_argument(
        "-F",
        "--format",
        choices=FORMAT_NAMES,
        help="output format (default: from -o's extension; a table on a terminal, else jsonl)",
    )
    p.add_argument(
        "--backend",
        choices=("native", "scapy", "tshark"),
        default="native",
        help="how to read and dissect: native (fast, default), scapy or tshark",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=65536,
        metavar="N",
        help="packets read and decoded at a time (default 65536)",
    )
    flows = p.add_argument_group("flow options (seconds)")
    for option, dest, text in TIMEOUT_OPTIONS:
        flows.add_argument(
            option, dest=dest, type=_seconds, default=_NOT_GIVEN, metavar="S", help=text
        )
    flows.add_argument(
        "--zeek-keys",
        action="store_true",
        help="key tunnelled flows by inner 5-tuple and VLANs only, as Zeek does",
    )
    flows.add_argument("--uid-seed", type=int, metavar="N", help="reproducible flow uids")
    p.set_defaults(run=run)


def choose_format(fmt: str | None, output: str | None, stdout_tty: bool) -> str:
    """The output format from ``-F``, the output's extension, or where stdout goes."""
    from portlabel.writers import EXTENSIONS, format_for_path

    to_stdout = output in (None, "-")
    if fmt is None and not to_stdout:
        fmt = format_for_path(output)
        if fmt is None:
            known = ", ".join(sorted(EXTENSIONS))
            raise UsageError(f"cannot tell the format of {output!r} ({known}): give -F")
    if fmt is None:
        fmt = "table" if stdout_tty else "jsonl"
    if fmt == "parquet" and to_stdout and stdout_tty:
        raise UsageError("parquet is binary: give -o FILE or redirect stdout")
    return fmt


def _flow_config(args):
    from portlabel.label_api import flow_config

    chosen = {}
    for option, dest, _ in TIMEOUT_OPTIONS:
        value = getattr(args, dest)
        if value is _NOT_GIVEN:
            continue
        if value is None and dest not in _MAY_BE_OFF:
            raise UsageError(f"{option} needs a number of seconds")
        chosen[dest] = value
    if args.zeek_keys:
        chosen["key_by_tunnel_parent"] = False
    if args.uid_seed is not None:
        chosen["uid_seed"] = args.uid_seed
    return flow_config(**chosen)


def _registry(args):
    from portlabel.registry import default_registry, load_registry

    if args.registry or args.overlay:
        return load_registry(args.registry, overlays=args.overlay)
    return default_registry()


def run(args) -> int:
    started = time.perf_counter()
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    fmt = choose_format(args.format, args.output, sys.stdout.isatty())
    to_file = args.output not in (None, "-")
    config = _flow_config(args)
    registry = _registry(args)
    from portlabel.cli.label_run import LabelJob

    job = LabelJob(
        args.captures, registry, config, args.batch_size, quiet=args.quiet, backend=args.backend
    )
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
    return 0 if ok and not job.inputs.failures else 1
