"""Extension points for real: a tiny plugin distribution (a module and its
``*.dist-info/entry_points.txt``) put on the path, then used from the CLI (a subprocess
whose ``sys.path`` has it, as after ``pip install``) and from the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from portlabel import plugins

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
SSH = CAPTURES / "zeek_ssh.pcap"

PLUGIN = '''
"""A portlabel plugin: a brief output format and a "portmap" registry source."""
from portlabel.registry.model import Record, RegistrySource


class BriefWriter:
    """uid and service of each flow, one per line"""

    suffixes = (".brief",)

    def __init__(self, out, schema):
        self.out = out

    def write(self, table):
        uids = table.column("uid").to_pylist()
        services = table.column("iana.service").to_pylist()
        for uid, service in zip(uids, services):
            self.out.write(f"{uid} {service or '-'}\\n".encode())

    def close(self):
        self.out.write(b"# end\\n")


class PortmapSource:
    @staticmethod
    def sniff(data):
        return data.startswith(b"PORTMAP 1\\n")

    @staticmethod
    def read(path, data, sha256):
        records = []
        for number, line in enumerate(data.decode().splitlines()[1:], 2):
            spec, name = line.split("=")
            port, transport = spec.split("/")
            records.append(Record(name=name, port_lo=int(port), port_hi=int(port),
                                  transport=transport, description=name + " (portmap)",
                                  line=number))
        return RegistrySource(kind="portmap", path=path, sha256=sha256,
                              updated="2026-12-01", records=records)
'''


@pytest.fixture
def plugin_path(tmp_path, monkeypatch) -> Path:
    (tmp_path / "portlabel_demo_plugin.py").write_text(PLUGIN)
    info = tmp_path / "portlabel_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: portlabel-demo-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [portlabel.writers]
            brief = portlabel_demo_plugin:BriefWriter

            [portlabel.registry_sources]
            portmap = portlabel_demo_plugin:PortmapSource
            """
        )
    )
    (tmp_path / "ports.portmap").write_text("PORTMAP 1\n22/tcp=secure-shell\n53/udp=names\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.refresh()
    yield tmp_path
    plugins.refresh()


def cli(plugin_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), *sys.path]))
    return subprocess.run(
        [sys.executable, "-m", "portlabel", *args], capture_output=True, text=True, env=env
    )


def test_a_plugin_format_is_offered_and_used_by_the_cli(plugin_path):
    assert "brief" in cli(plugin_path, "label", "--help").stdout
    done = cli(plugin_path, "label", str(SSH), "-F", "brief", "--uid-seed", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "# end" and len(lines) == 26
    assert sum(line.endswith(" ssh") for line in lines) == 20
    out = plugin_path / "flows.brief"  # chosen by its extension
    assert cli(plugin_path, "label", str(SSH), "-o", str(out), "--uid-seed", "1").returncode == 0
    assert out.read_text().splitlines() == lines


def test_a_plugin_registry_source_labels_flows(plugin_path):
    portmap = plugin_path / "ports.portmap"
    done = cli(plugin_path, "label", str(SSH), "--registry", str(portmap), "-F", "jsonl")
    assert done.returncode == 0, done.stderr
    services = {json.loads(line)["iana.service"] for line in done.stdout.splitlines()}
    assert "secure-shell" in services and "ssh" not in services


def test_the_api_uses_both(plugin_path):
    import io

    import portlabel
    from portlabel.writers import get_format, writer_class

    table = portlabel.label(SSH, registry=str(plugin_path / "ports.portmap"))
    assert "secure-shell" in table.column("iana.service").to_pylist()
    assert get_format("brief").suffixes == (".brief",)
    out = io.BytesIO()
    writer = writer_class("brief")(out, table.schema)
    writer.write(table)
    writer.close()
    assert out.getvalue().decode().count("secure-shell") == 20


def test_without_the_plugin_the_names_are_unknown():
    from portlabel.errors import UsageError
    from portlabel.writers import get_format

    plugins.refresh()
    with pytest.raises(UsageError):
        get_format("brief")


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path, monkeypatch):
    (tmp_path / "portlabel_broken_plugin.py").write_text("raise ImportError('needs libfoo')\n")
    info = tmp_path / "portlabel_broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: portlabel-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[portlabel.writers]\nbroken = portlabel_broken_plugin:W\n\n"
        "[portlabel.registry_sources]\nbroken = portlabel_broken_plugin:S\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.refresh()
    try:
        from portlabel.errors import RegistryFormatError, UsageError
        from portlabel.registry.sources import read_source
        from portlabel.writers import format_for_path, get_format

        with pytest.warns(plugins.PluginWarning, match="needs libfoo"):
            assert format_for_path("out.txt") is None
        with pytest.raises(UsageError):
            get_format("broken")
        junk = tmp_path / "junk.txt"
        junk.write_text("not a registry\n")
        with pytest.raises(RegistryFormatError):
            read_source(junk)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
        done = subprocess.run(
            [sys.executable, "-m", "portlabel", "label", str(SSH), "-o", str(tmp_path / "x.csv")],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert done.returncode == 0 and "Traceback" not in done.stderr
    finally:
        plugins.refresh()
