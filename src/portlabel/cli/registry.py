"""``portlabel registry``: inspect, query, compile, export and update the port registry."""

from __future__ import annotations

import json
import os
import sys

from portlabel.cli.options import registry_from_args
from portlabel.constants import TRANSPORTS
from portlabel.errors import UsageError

EXPORT_FORMATS = ("services", "wireshark", "wireshark-lua", "zeek", "zeek-table", "csv", "json")
IANA_XML_URL = (
    "https://www.iana.org/assignments/service-names-port-numbers/service-names-port-numbers.xml"
)


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "registry",
        parents=parents,
        help="inspect, query, compile, export or update the registry",
        description="Inspect, query, compile, export or update the IANA port registry.",
    )
    sub = p.add_subparsers(dest="registry_command", metavar="ACTION")
    sub.required = True

    info = sub.add_parser("info", parents=parents, help="source, date, counts by transport/status")
    info.add_argument("--json", action="store_true", help="one JSON object")
    info.set_defaults(run=run_info)

    look = sub.add_parser(
        "lookup",
        parents=parents,
        help="look up ports and names: 443/tcp 53/udp https 6000",
        description="Look up PORT/TRANSPORT pairs (443/tcp), bare ports (all four transports) and "
        "service names (reverse lookup, name-only records included).",
    )
    look.add_argument("queries", nargs="+", metavar="QUERY")
    look.add_argument("--json", action="store_true", help="one JSON object per line per answer")
    look.set_defaults(run=run_lookup)

    search = sub.add_parser("search", parents=parents, help="search names and descriptions")
    search.add_argument("text")
    search.add_argument("--json", action="store_true", help="one JSON object per line")
    search.add_argument("--limit", type=int, default=0, help="at most this many answers")
    search.set_defaults(run=run_search)

    comp = sub.add_parser(
        "compile",
        parents=parents,
        help="compile a registry source (plus --overlay files) to an artifact",
    )
    comp.add_argument("source", help="IANA XML/CSV/text or services-style file (any compression)")
    comp.add_argument("-o", "--output", required=True, metavar="ARTIFACT")
    comp.add_argument(
        "--protocols", metavar="XML", help="IANA protocol-numbers XML (default: the bundled one)"
    )
    comp.set_defaults(run=run_compile)

    exp = sub.add_parser("export", parents=parents, help="export the registry for other tools")
    exp.add_argument("--format", "-F", choices=EXPORT_FORMATS, required=True)
    exp.add_argument(
        "-o", "--output", metavar="PATH", help="default: standard output (zeek: a directory)"
    )
    exp.set_defaults(run=run_export)

    upd = sub.add_parser(
        "update",
        parents=parents,
        help="fetch IANA's XML, validate it, replace the cached registry",
        description="Fetch the IANA registry XML (or read a local file), compile it to check it, "
        "and atomically replace the user's cached registry. The bundled registry stays the "
        "fallback; a failed update leaves the previous registry in place.",
    )
    upd.add_argument(
        "--from",
        dest="source",
        default=IANA_XML_URL,
        metavar="URL_OR_FILE",
        help=f"default: {IANA_XML_URL}",
    )
    upd.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    upd.set_defaults(run=run_update)


def run_info(args) -> int:
    from portlabel.registry.summary import summarise

    summary = summarise(registry_from_args(args))
    if args.json:
        print(json.dumps(summary))
    else:
        from portlabel.cli.tables import print_info

        print_info(summary)
    return 0


def parse_query(text: str) -> tuple[str, int | None, str | None]:
    """``443/tcp`` -> ("port", 443, "tcp"); ``443`` -> ("port", 443, None); else a name."""
    port_text, _, transport = text.partition("/")
    if port_text.isdigit():
        port = int(port_text)
        if port > 65535:
            raise UsageError(f"port {port} outside 0-65535 in {text!r}")
        if transport and transport.lower() not in TRANSPORTS:
            raise UsageError(
                f"unknown transport {transport!r} in {text!r} (tcp, udp, sctp or dccp)"
            )
        return "port", port, transport.lower() or None
    return "name", None, None


def _answers(registry, queries: list[str]) -> list[dict]:
    answers = []
    for q in queries:
        kind, port, transport = parse_query(q)
        if kind == "port":
            for t in [transport] if transport else TRANSPORTS:
                answers.append({"query": q, **registry.lookup_one(t, port)})
        else:
            hits = registry.find_name(q)
            if not hits:
                answers.append({"query": q, "service": None, "status": "not found"})
            answers.extend({"query": q, **registry.entry(e)} for e in hits)
    return answers


def _emit(answers: list[dict], as_json: bool, title: str) -> None:
    if as_json or not sys.stdout.isatty():
        out = sys.stdout
        for a in answers:
            out.write(json.dumps(a, ensure_ascii=False) + "\n")
    else:
        from portlabel.cli.tables import print_answers

        print_answers(answers, title)


def run_lookup(args) -> int:
    answers = _answers(registry_from_args(args), args.queries)
    _emit(answers, args.json, "portlabel registry lookup")
    return 0 if all(a.get("status") != "not found" for a in answers) else 1


def run_search(args) -> int:
    registry = registry_from_args(args)
    hits = registry.search(args.text)
    if args.limit:
        hits = hits[: args.limit]
    _emit([registry.entry(e) for e in hits], args.json, f"search: {args.text}")
    return 0 if hits else 1


def run_compile(args) -> int:
    from portlabel.registry.build import compile_files, write_artifact

    data = compile_files(args.source, args.overlay, protocols=args.protocols)
    write_artifact(data, args.output)
    if not args.quiet:
        print(
            f"portlabel: compiled {args.source} -> {args.output} ({len(data):,} bytes)",
            file=sys.stderr,
        )
    return 0


def run_export(args) -> int:
    from portlabel.registry.export import export

    text = export(registry_from_args(args), args.format)
    if isinstance(text, dict):  # a directory of files (the Zeek package)
        if not args.output:
            raise UsageError(f"--format {args.format} writes a directory: give -o DIRECTORY")
        if os.path.exists(args.output) and not os.path.isdir(args.output):
            raise UsageError(
                f"--format {args.format} writes a package directory and {args.output} is a "
                "file (-F zeek-table writes the single table script)"
            )
        from portlabel.registry.build import write_artifact

        for name, body in text.items():
            target = os.path.join(args.output, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_artifact(body.encode("utf-8"), target)
        return 0
    if args.output:
        from portlabel.registry.build import write_artifact

        write_artifact(text.encode("utf-8"), args.output)
    else:
        sys.stdout.write(text)
    return 0


def run_update(args) -> int:
    from portlabel.registry.update import update_registry

    result = update_registry(args.source, timeout=args.timeout)
    if not args.quiet:
        print(
            f"portlabel: registry updated from {args.source}: {result['updated']} "
            f"({result['records']:,} records) -> {result['path']}",
            file=sys.stderr,
        )
    return 0
