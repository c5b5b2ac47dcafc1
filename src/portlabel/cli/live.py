"""``portlabel live``: capture from interfaces and write each flow, labelled, when it ends."""

from __future__ import annotations

import argparse
import sys

from portlabel.cli.options import add_flow_options, flow_config_from_args, registry_from_args
from portlabel.writers import format_names, get_format


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "live",
        parents=parents,
        help="capture from network interfaces and label flows as they end",
        description="Capture live traffic, build flows with the same engine as `portlabel "
        "label` and write each flow with its IANA labels when it ends (close, reset, idle or "
        "active timeout, or at exit). SIGINT/SIGTERM stop the capture and flush every flow.",
    )
    p.add_argument(
        "-i",
        "--interface",
        dest="interfaces",
        action="append",
        required=True,
        metavar="IFACE",
        help="interface to capture on; may be repeated",
    )
    p.add_argument("-f", "--filter", metavar="BPF", help="capture filter (tcpdump syntax)")
    p.add_argument("-o", "--output", metavar="PATH", help="output file (default: stdout)")
    p.add_argument(
        "-F",
        "--format",
        default="jsonl",
        choices=format_names(streamable=True),
        help="output format (default jsonl); zeek writes a Zeek TSV conn.log",
    )
    p.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument(
        "--rotate",
        type=float,
        metavar="SECONDS",
        help="close and rename the output every SECONDS, Zeek-style: NAME.<open>-<close>.EXT",
    )
    p.add_argument(
        "--backend",
        default="native",
        choices=["native", "scapy", "pyshark"],
        help="native: AF_PACKET TPACKET_V3 ring (default); scapy; pyshark",
    )
    p.add_argument(
        "--stats-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="print capture counters on stderr every SECONDS (0: only at exit)",
    )
    p.add_argument(
        "--view",
        action="store_true",
        help="on a terminal: a live table of active flows, refreshed every second",
    )
    p.add_argument("--user", metavar="NAME", help="drop root to NAME once the capture is open")
    p.add_argument(
        "--ring-mb",
        type=int,
        default=256,
        metavar="MB",
        help="kernel ring size per interface, native backend (default 256)",
    )
    p.add_argument(
        "--no-promisc",
        dest="promisc",
        action="store_false",
        help="do not put the interfaces in promiscuous mode",
    )
    add_flow_options(p)
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    from portlabel.errors import UsageError

    for name in ("count", "duration", "rotate", "ring_mb"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.view and not sys.stdout.isatty() and args.output is None:
        raise UsageError("--view needs a terminal on stdout, or -o PATH for the flows")


def run(args: argparse.Namespace) -> int:
    _check(args)
    from portlabel.labelling.flows import labelled_schema
    from portlabel.labelling.pipeline import LabelPipeline
    from portlabel.live.backends import open_source
    from portlabel.live.output import FlowSink
    from portlabel.live.session import Limits, LiveSession

    config = flow_config_from_args(args, zeek_keys=get_format(args.format).zeek_log)
    registry = registry_from_args(args)
    source = open_source(args.backend, args.interfaces, args.filter, args.ring_mb, args.promisc)
    try:
        from portlabel.live.warmup import warm_up

        # first use of the decoder, flow engine and writer costs ~0.2 s: pay it before
        # packets queue up in the ring, not while they do
        warm_up(registry, args.format)
        if args.user:
            from portlabel.live.privileges import drop_privileges

            if args.view:
                import rich.live  # noqa: F401 - may be unreadable once unprivileged

                import portlabel.live.view  # noqa: F401
            drop_privileges(args.user)
        pipe = LabelPipeline(registry, config)
        sink = FlowSink(args.output, args.format, labelled_schema(), args.rotate)
        limits = Limits(args.count, args.duration, args.stats_interval or None)
        session = LiveSession(source, pipe, sink, limits, quiet=args.quiet)
        session.install_signal_handlers()
        if not args.quiet:
            names = ", ".join(args.interfaces)
            print(f"portlabel live: capturing on {names} [{source.name}]", file=sys.stderr)
            sys.stderr.flush()
        if args.view:
            from portlabel.live.view import run_with_view

            run_with_view(session, registry)
        else:
            session.run()
    finally:
        source.close()
    return 0
