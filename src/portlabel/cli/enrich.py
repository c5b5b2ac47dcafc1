"""``portlabel enrich``: append the iana.* columns to Zeek logs (TSV or JSON, plain or gzip).

Output: stdout by default; ``-o OUT`` or ``--in-place`` write a temporary file in the
target's directory and rename it into place when complete (a device or FIFO such as
/dev/null is written directly). Several inputs with ``-o``
need a directory (an existing one, or a new one named with a trailing ``/``): each input
is written there under its own name; two different logs are never run together in one
file. An output that is one of the inputs is refused (``--in-place`` is the way to
rewrite one), and so is an output in a directory that does not exist, before anything is
read. Gzip output when OUT ends ``.gz``, or in place when the input was gzip. Exit 0: all
inputs done; 1: some input could not be read as a Zeek log, or written (the others are
still done); 2: usage error.
"""

from __future__ import annotations

import os
import sys

from portlabel.cli.options import registry_from_args
from portlabel.errors import UsageError

_CAP = 20


def add_parser(subparsers, parents) -> None:
    p = subparsers.add_parser(
        "enrich",
        parents=parents,
        help="append iana.* columns to Zeek logs (TSV/JSON, plain or gzip)",
        description="Append the iana.* columns to Zeek logs, keeping every original byte.",
    )
    p.add_argument("logs", nargs="+", metavar="LOG", help="Zeek log file, or - for stdin")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file (or directory for several inputs); default stdout",
    )
    where.add_argument(
        "--in-place",
        action="store_true",
        help="replace each input with its enriched version (atomically)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=4,
        metavar="MB",
        help="read blocks of about this many MiB (default 4)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    import pyarrow as pa

    from portlabel.enrich.api import BLOCK_SIZE

    # The system allocator for pyarrow: the default (mimalloc) keeps freed multi-MiB
    # blocks mapped, which cost ~70 MiB of peak RSS on logs of short JSON lines.
    pa.set_memory_pool(pa.system_memory_pool())

    if args.in_place and "-" in args.logs:
        raise UsageError("--in-place cannot rewrite stdin ('-')")
    if args.block_size < 1:
        raise UsageError("--block-size must be at least 1 MiB")
    block = args.block_size << 20 if args.block_size else BLOCK_SIZE
    jobs = _jobs(args)
    registry = registry_from_args(args)
    failed = 0
    for src, dst in jobs:
        failed += not _one(args, src, dst, registry, block)
    return 1 if failed else 0


def _jobs(args) -> list[tuple[str, str]]:
    """(input, output) pairs, every output checked before anything is read."""
    from portlabel.atomicfile import refuse_to_overwrite

    out = args.output
    if args.in_place:
        return [(log, log) for log in args.logs]
    if out is None:
        return [(log, "-") for log in args.logs]
    into_dir = os.path.isdir(out) or out.endswith(os.sep)
    if len(args.logs) > 1 and not into_dir:
        raise UsageError(
            f"several logs need -o DIRECTORY (each is written there under its own name); "
            f"{out} is not a directory (end it with {os.sep} to create one)"
        )
    if into_dir:
        if "-" in args.logs:
            raise UsageError("stdin ('-') has no name to write into a directory")
        if not os.path.isdir(out):
            _need_directory(os.path.dirname(os.path.abspath(out.rstrip(os.sep))), out)
            os.makedirs(out, exist_ok=True)
        jobs = [(log, os.path.join(out, os.path.basename(log))) for log in args.logs]
    else:
        _need_directory(os.path.dirname(os.path.abspath(out)), out)
        jobs = [(args.logs[0], out)]
    for src, dst in jobs:
        refuse_to_overwrite(dst, [src], "--in-place rewrites a log")
    return jobs


def _need_directory(directory: str, out: str) -> None:
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {out}: no directory {directory}")


def _one(args, src: str, dst, registry, block: int) -> bool:
    from portlabel.enrich.api import enrich_log
    from portlabel.errors import InputError

    try:
        report = enrich_log(src, dst, registry, block_size=block)
    except InputError as exc:
        print(f"portlabel: {exc}", file=sys.stderr)
        return False
    except OSError as exc:  # the output could not be written
        print(f"portlabel: {dst}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return False
    _print_report(args, report)
    return True


def _print_report(args, report) -> None:
    for line in report.problems(cap=_CAP):
        print(f"portlabel: {line}", file=sys.stderr)
    if not args.quiet:
        print(f"portlabel: {report.summary()}", file=sys.stderr)
