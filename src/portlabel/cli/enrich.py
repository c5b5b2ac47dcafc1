"""``portlabel enrich``: append the iana.* columns to Zeek logs (TSV or JSON, plain or gzip).

Output: stdout by default; ``-o OUT`` or ``--in-place`` write a temporary file in the
target's directory and rename it into place when complete. Several inputs with ``-o``:
if OUT is a directory each input is written there under its own name, otherwise the
results are concatenated into OUT (each TSV input keeps its header block, which is valid
Zeek; an input that fails is left out whole). Gzip output when OUT ends ``.gz``, or in
place when the input was gzip. Exit 0: all inputs done; 1: some input could not be read
as a Zeek log (the others are still done); 2: usage error.
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
    registry = registry_from_args(args)
    out = args.output
    if args.in_place:
        jobs = [(log, log) for log in args.logs]
    elif out and os.path.isdir(out):
        jobs = [(log, os.path.join(out, os.path.basename(log))) for log in args.logs]
        if "-" in args.logs:
            raise UsageError("stdin ('-') has no name to write into a directory")
    elif out and len(args.logs) > 1:
        return _concatenate(args, registry, block)
    else:
        jobs = [(log, out or "-") for log in args.logs]
    failed = 0
    for src, dst in jobs:
        failed += not _one(args, src, dst, registry, block)
    return 1 if failed else 0


def _one(args, src: str, dst, registry, block: int) -> bool:
    from portlabel.enrich.api import enrich_log
    from portlabel.errors import InputError

    try:
        report = enrich_log(src, dst, registry, block_size=block)
    except InputError as exc:
        print(f"portlabel: {exc}", file=sys.stderr)
        return False
    _print_report(args, report)
    return True


def _concatenate(args, registry, block: int) -> int:
    """Several inputs into one file: each into a temporary part, good parts appended."""
    import shutil
    import tempfile

    from portlabel.atomicfile import atomic_output

    failed = 0
    directory = os.path.dirname(os.path.abspath(args.output))
    with atomic_output(args.output, compress=args.output.endswith(".gz")) as final:
        for src in args.logs:
            with tempfile.TemporaryFile(dir=directory) as part:
                if _one(args, src, part, registry, block):
                    part.seek(0)
                    shutil.copyfileobj(part, final, 1 << 20)
                else:
                    failed += 1
    return 1 if failed else 0


def _print_report(args, report) -> None:
    for line in report.problems(cap=_CAP):
        print(f"portlabel: {line}", file=sys.stderr)
    if not args.quiet:
        print(f"portlabel: {report.summary()}", file=sys.stderr)
