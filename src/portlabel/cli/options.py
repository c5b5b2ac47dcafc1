"""Options several subcommands share, declared once: the registry, capture input, flows.

- ``registry_from_args(args)``: the ``Registry`` that ``--registry``/``--overlay`` (on
  every subcommand, see ``cli/__init__``) ask for.
- ``add_capture_options(parser)``: ``--backend`` and ``--batch-size``, for the
  subcommands that read capture files.
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


def add_capture_options(parser: argparse.ArgumentParser) -> None:
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


def _batch_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


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
    return flow_config(**chosen)
