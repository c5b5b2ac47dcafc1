"""Options several subcommands share, declared once: the registry, capture input, flows.

- ``registry_from_args(args)``: the ``Registry`` that ``--registry``/``--overlay`` (on
  every subcommand, see ``cli/__init__``) ask for.
- ``add_capture_options(parser)``: the capture files (positional, or ``-r FILE`` as
  tcpdump takes them), ``-c COUNT``, a BPF filter (``-f EXPR`` or words after the files,
  as ``tcpdump -r FILE EXPR``), ``--backend`` and ``--batch-size``; and
  ``capture_inputs_from_args(args)`` -> (paths, filter, count) for ``CaptureInputs``.
- ``add_flow_options(parser)`` / ``flow_config_from_args(args)``: one option per
  ``FlowConfig`` field, named after it (``tcp_timeout`` is ``--tcp-timeout``; the
  field's alias is an alias here too), on every subcommand that builds flows; options
  left out keep ``FlowConfig``'s defaults.

Nothing here imports numpy or pyarrow: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from portlabel.constants import BATCH_SIZE
from portlabel.errors import UsageError

CAPTURE_BACKENDS = ("native", "scapy", "tshark")  # capture.backends.BACKENDS' names


def registry_from_args(args: argparse.Namespace):
    """The registry ``--registry`` and ``--overlay`` name (default: the default one)."""
    from portlabel.registry.loading import resolve_registry

    return resolve_registry(args.registry, args.overlay)


# names that say "a capture file" even when it does not exist (it is then reported as
# missing, rather than read as part of a filter expression)
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".ntar", ".dmp", ".gz", ".zst", ".xz", ".bz2")


def add_capture_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "captures",
        nargs="*",
        metavar="CAPTURE",
        help="pcap/pcapng file(s), in order, any compression; - for stdin; words after "
        "the files are a BPF filter (as tcpdump -r FILE EXPRESSION)",
    )
    parser.add_argument(
        "-r",
        "--read",
        action="append",
        default=[],
        metavar="FILE",
        help="a capture file, as tcpdump/tshark take it (repeatable; then every "
        "positional word is the filter)",
    )
    parser.add_argument(
        "-c",
        "--count",
        type=_count,
        metavar="N",
        help="stop after N packets (after the filter), as tcpdump -c",
    )
    parser.add_argument(
        "-f",
        "--filter",
        metavar="EXPR",
        help="BPF filter, as tcpdump/libpcap write it (e.g. 'tcp port 443'); only the "
        "packets it accepts are read",
    )
    parser.add_argument(
        "--backend",
        choices=CAPTURE_BACKENDS,
        default="native",
        help="how to read and dissect: native (fast, default), scapy or tshark",
    )
    parser.add_argument(
        "--batch-size",
        type=_batch_size,
        default=BATCH_SIZE,
        metavar="N",
        help=f"packets read and decoded at a time (default {BATCH_SIZE})",
    )


def capture_inputs_from_args(args: argparse.Namespace) -> tuple[list[str], str | None, int | None]:
    """(capture paths, BPF filter or None, packet count or None) from the options.

    With ``-r``, every positional word is the filter. Without, the leading words that
    name files (existing ones, ``-``, or names ending like a capture) are the captures
    and the first word that does not starts the filter expression.
    """
    words = list(args.captures)
    if args.read:
        paths, expression = list(args.read), words
    else:
        split = 0
        while split < len(words) and (split == 0 or _names_a_capture(words[split])):
            split += 1
        paths, expression = words[:split], words[split:]
    if not paths:
        raise UsageError("no capture file given (CAPTURE or -r FILE)")
    if expression and args.filter:
        raise UsageError(
            f"two filters: -f {args.filter!r} and {' '.join(expression)!r} (is "
            f"{expression[0]!r} a capture file that does not exist?)"
        )
    bpf = args.filter or (" ".join(expression) if expression else None)
    return paths, bpf, args.count


def _names_a_capture(word: str) -> bool:
    import os

    return word == "-" or os.path.exists(word) or word.lower().endswith(CAPTURE_SUFFIXES)


def _whole_number(least: int):
    """An argparse type: a whole number of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}")
        return value

    return parse


_count = _whole_number(0)
jobs_count = _whole_number(1)
_batch_size = _whole_number(1)


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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flow_options(parser: argparse.ArgumentParser) -> None:
    """One option per ``FlowConfig`` field; a field left out is not set on ``args``."""
    from portlabel.flows.config import FIELDS

    group = parser.add_argument_group("flow options (seconds for timeouts)")
    for name, field in FIELDS.items():
        flags = [_flag(name)]
        if field.metadata.get("alias"):
            flags.append(_flag(field.metadata["alias"]))
        common = {"dest": name, "default": argparse.SUPPRESS, "help": field.metadata["help"]}
        if field.type == "bool":
            group.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
        elif field.type.startswith("float"):
            group.add_argument(*flags, type=_seconds, metavar="S", **common)
        else:
            group.add_argument(*flags, type=int, metavar="N", **common)


def flow_config_from_args(args: argparse.Namespace, **defaults):
    """The ``FlowConfig`` of the flow options given (``defaults`` for those left out)."""
    from portlabel.flows.config import FIELDS, flow_config

    chosen = dict(defaults)
    for name, field in FIELDS.items():
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if value is None and field.type.startswith("float") and not field.metadata["off"]:
            raise UsageError(f"{_flag(name)} needs a number of seconds")
        chosen[name] = value
    try:
        return flow_config(**chosen)
    except ValueError as exc:
        raise UsageError(str(exc).replace("_", "-")) from None
