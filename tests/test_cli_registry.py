"""``portlabel registry`` as users call it."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portlabel.cli import main
from portlabel.registry.bundled import BUNDLED_SERVICES_XML

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_lookup_json_has_the_documented_fields(capsys):
    assert main(["registry", "lookup", "443/tcp", "53/udp", "https", "6000/tcp", "--json"]) == 0
    answers = _json_lines(capsys.readouterr().out)
    required = {
        "transport",
        "port",
        "service",
        "aliases",
        "description",
        "status",
        "port_class",
        "assignee",
        "contact",
        "references",
        "registered",
        "modified",
        "notes",
    }
    assert all(required <= set(a) for a in answers)
    got = [(a["query"], a["port"], a["transport"], a["service"]) for a in answers]
    assert got[:2] == [("443/tcp", 443, "tcp", "https"), ("53/udp", 53, "udp", "domain")]
    assert got[-1] == ("6000/tcp", 6000, "tcp", "x11")
    # A name answers with every record of that name, name-only records included.
    by_name = {(port, t) for q, port, t, _ in got if q == "https"}
    assert {(443, "tcp"), (443, "udp"), (443, "sctp")} <= by_name


def test_lookup_unknown_name_exits_1_and_bad_port_exits_2(capsys):
    assert main(["registry", "lookup", "no-such-service-xyz", "--json"]) == 1
    assert main(["registry", "lookup", "70000/tcp"]) == 2
    assert "70000" in capsys.readouterr().err


def test_search_finds_names_and_descriptions(capsys):
    assert main(["registry", "search", "Trivial File", "--json"]) == 0
    names = {a["service"] for a in _json_lines(capsys.readouterr().out)}
    assert "tftp" in names


def test_info_json_counts(capsys):
    assert main(["registry", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sources"][0]["updated"] == "2026-08-17"
    tcp = info["ports"]["tcp"]
    statuses = ("assigned", "reserved", "unassigned", "dynamic", "retired")
    assert sum(tcp[s] for s in statuses) == 65536
    assert tcp["retired"] == 9  # 585 De-registered, 1028 Deprecated...
    assert tcp["dynamic"] == 16384


def test_compile_then_use_the_artifact_with_registry_option(tmp_path, capsys):
    out = tmp_path / "r.plreg"
    assert main(["registry", "compile", str(BUNDLED_SERVICES_XML), "-o", str(out), "-q"]) == 0
    assert main(["registry", "--registry", str(out), "lookup", "22/tcp", "--json"]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["service"] == "ssh"


def test_registry_option_takes_a_source_file_directly(capsys):
    assert (
        main(["registry", "--registry", str(BUNDLED_SERVICES_XML), "lookup", "25/tcp", "--json"])
        == 0
    )
    assert _json_lines(capsys.readouterr().out)[0]["service"] == "smtp"


def test_wrong_registry_file_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert main(["registry", "--registry", str(bad), "lookup", "22/tcp"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1


def test_export_csv_round_trips_the_lookups(capsys):
    assert main(["registry", "export", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:3] == ["Service Name", "Port Number", "Transport Protocol"]
    assert ["http", "80", "tcp"] == rows[[r[:3] for r in rows].index(["http", "80", "tcp"])][:3]
    assert len(rows) == 14534


def test_export_services_and_zeek_and_json(capsys):
    assert main(["registry", "export", "--format", "services"]) == 0
    services = capsys.readouterr().out
    assert any(line.split()[:3] == ["http", "80/tcp", "www"] for line in services.splitlines())
    assert main(["registry", "export", "--format", "zeek-table"]) == 0
    zeek = capsys.readouterr().out
    assert '[443/tcp] = "https",' in zeek and zeek.count("{") == zeek.count("}")
    assert main(["registry", "export", "--format", "json"]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert len(records) == 14533
    assert main(["registry", "export", "--format", "wireshark"]) == 0
    assert "domain\t53/tcp/udp" in capsys.readouterr().out  # Wireshark's form


def test_console_script_runs_as_a_process():
    proc = subprocess.run(
        [sys.executable, "-m", "portlabel", "registry", "lookup", "443/tcp", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(proc.stdout)["service"] == "https"


def test_records_that_withdrew_an_assignment_are_retired_not_assigned():
    from portlabel.registry import default_registry

    registry = default_registry()
    for transport, port, text in (("tcp", 585, "De-registered"), ("tcp", 1028, "Deprecated")):
        entry = registry.lookup_one(transport, port)
        assert (entry["status"], entry["service"], entry["description"]) == ("retired", None, text)
    assert registry.lookup_one("tcp", 443)["status"] == "assigned"


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_the_wireshark_export_is_read_by_tshark(tmp_path, capsys):
    """tshark resolves ports with the exported services file (personal config dir)."""
    assert main(["registry", "export", "--format", "wireshark"]) == 0
    config = tmp_path / "wireshark"
    config.mkdir()
    services = capsys.readouterr().out
    # mark one udp name only the export can know, to see tshark use the file
    (config / "services").write_text(services.replace("domain\t53/tcp/udp", "iana-dns\t53/tcp/udp"))
    column = ["-o", 'gui.column.format:"port","%rD"', "-T", "fields", "-e", "_ws.col.port"]
    out = subprocess.run(
        ["tshark", "-N", "t", *column, "-r", str(CAPTURES / "zeekreal_infected.pcap"), "-c", "3"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(config)},
    )  # fmt: skip
    assert out.stdout.split() == ["iana-dns", "iana-dns", "iana-dns"]
