"""The ``portlabel`` command: a thin dispatcher over one module per subcommand.

Each module in this package (``registry``, ``packets``, ``label``, ``enrich``, ``live``)
exposes ``add_parser(subparsers, parents)`` and ``run(args) -> int``; ``options`` declares
the options several of them share (registry, capture input, flow options). Modules keep their
top level free of heavy imports (numpy, pyarrow, scapy) so ``portlabel --help`` and
``portlabel registry lookup`` start fast; the work is imported inside ``run``.

Exit codes: 0 success, 1 some input failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from portlabel.cli.process import settle_process
from portlabel.errors import PortlabelError, UsageError

# Subcommand modules in the order they appear in --help (other modules here are helpers).
SUBCOMMANDS = ("label", "packets", "registry", "enrich", "live")


def _subcommand_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__)}
    return [n for n in SUBCOMMANDS if n in found]


# Options every subcommand takes. They are declared with SUPPRESS so that giving one at any
# level (``portlabel registry --registry X lookup`` or ``... lookup --registry X``) is kept
# instead of being reset by the nested parser's default; main() fills the defaults in.
COMMON_DEFAULTS = {"registry": None, "overlay": [], "quiet": False}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--registry",
        metavar="PATH",
        help="registry to label with: any supported source (IANA XML/CSV/text, services "
        "file) or a compiled artifact; default: the user's updated cache, else the bundled one",
    )
    common.add_argument(
        "--overlay",
        metavar="PATH",
        action="append",
        help="extra registry file (services-style or CSV) whose names override or add to "
        "the registry's; may be repeated, later ones win",
    )
    common.add_argument("-q", "--quiet", action="store_true", help="no progress or summary")
    parser = argparse.ArgumentParser(
        prog="portlabel",
        description="Label network flows with the IANA service name and port number registry.",
    )
    from portlabel import __version__

    parser.add_argument("--version", action="version", version=f"portlabel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _subcommand_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        module.add_parser(sub, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    settle_process()  # threads and allocators: the command's own choices (process.py)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # words after options (``packets x.pcap --json udp``) are more positionals, as
        # tcpdump reads its filter expression after its options; anything else is an error
        if not hasattr(args, "captures") or any(w.startswith("-") and w != "-" for w in extra):
            parser.parse_args(argv)  # reports the unrecognised arguments and exits 2
        args.captures = [*args.captures, *extra]
    for name, default in COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, list(default) if isinstance(default, list) else default)
    try:
        return int(args.run(args) or 0)
    except UsageError as exc:
        print(f"portlabel: error: {exc}", file=sys.stderr)
        return 2
    except PortlabelError as exc:
        print(f"portlabel: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (``| head``): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
