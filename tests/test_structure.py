"""One home per concept: the shared declarations are what every caller really uses."""

from __future__ import annotations

import argparse
import pydoc
import subprocess
import sys

import pytest

import portlabel
from portlabel.cli import build_parser
from portlabel.flows.config import ALIASES, FIELDS, FlowConfig, flow_config
from portlabel.writers import FORMATS, format_names, get_format

FLOW_SUBCOMMANDS = ("label", "packets", "live")


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    return {a.dest: set(a.option_strings) for a in parser._actions if a.option_strings}


@pytest.mark.parametrize("command", FLOW_SUBCOMMANDS)
def test_every_flow_building_subcommand_offers_every_flow_option(command):
    options = _options(_subparser(command))
    for name, field in FIELDS.items():
        flags = {"--" + name.replace("_", "-")}
        if field.metadata.get("alias"):
            flags.add("--" + field.metadata["alias"].replace("_", "-"))
        assert flags <= options[name], (command, name)


def test_cli_flow_options_build_the_api_config():
    args = build_parser().parse_args(
        ["live", "-i", "lo", "--tcp-inactivity", "7", "--dns-timeout", "off", "--zeek-keys"]
    )
    from portlabel.cli.options import flow_config_from_args

    config = flow_config_from_args(args)
    assert config == flow_config(tcp_inactivity=7, dns_timeout=None, zeek_keys=True)
    assert config == FlowConfig(tcp_timeout=7, dns_timeout=None, zeek_keys=True)
    assert set(ALIASES.values()) <= set(FIELDS)


def test_output_format_choices_come_from_the_format_table():
    label = {a.dest: a for a in _subparser("label")._actions}
    live = {a.dest: a for a in _subparser("live")._actions}
    assert tuple(label["format"].choices) == format_names() == tuple(FORMATS)
    assert tuple(live["format"].choices) == format_names(streamable=True)
    assert "table" not in live["format"].choices
    for fmt in FORMATS.values():
        assert get_format(fmt.name).writer_class().__name__ == fmt.writer


def test_dir_and_help_list_the_public_api():
    names = set(dir(portlabel))
    assert set(portlabel.__all__) <= names
    text = pydoc.render_doc(portlabel)
    missing = [n for n in portlabel.__all__ if not n.startswith("_") and n not in text]
    assert not missing


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_mapped_registry_view_does_not_load_the_loading_policy_or_the_compiler():
    loaded = _modules_after("import portlabel.registry.compiled")
    assert "portlabel.registry.build" not in loaded
    assert "portlabel.registry.compiler" not in loaded
    # importing the package pulls the policy in, but mapping the default compiles nothing
    loaded = _modules_after("from portlabel.registry import default_registry; default_registry()")
    assert "portlabel.registry.compiler" not in loaded


def test_parsing_the_command_line_loads_no_numpy():
    loaded = _modules_after("from portlabel.cli import build_parser; build_parser()")
    assert "numpy" not in loaded and "pyarrow" not in loaded
