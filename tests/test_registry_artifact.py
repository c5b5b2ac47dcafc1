"""Compiled artifacts: round trip, corruption, layering, protocol names."""

from __future__ import annotations

import numpy as np
import pytest

from portlabel.errors import RegistryFormatError
from portlabel.labelling.iana import iana_columns, service_port_side
from portlabel.registry import default_registry, load_registry
from portlabel.registry.bundled import (
    BUNDLED_ARTIFACT,
    BUNDLED_PROTOCOLS_XML,
    BUNDLED_SERVICES_XML,
)
from portlabel.registry.compiler import compile_sources
from portlabel.registry.model import Record, RegistrySource
from portlabel.registry.sources import read_source


@pytest.fixture(scope="module")
def base():
    return read_source(BUNDLED_SERVICES_XML)


@pytest.fixture(scope="module")
def protocols():
    return read_source(BUNDLED_PROTOCOLS_XML)


def _overlay(*records: Record) -> RegistrySource:
    src = RegistrySource("services", "local-services", "0" * 64, records=list(records))
    for r in src.records:
        r.source = src.label
    return src


def test_artifact_round_trip_through_a_file(tmp_path, base, protocols):
    path = tmp_path / "r.plreg"
    path.write_bytes(compile_sources(base, (), protocols))
    loaded = load_registry(path)
    bundled = default_registry()
    assert np.array_equal(loaded.index, bundled.index)
    assert loaded.lookup_one("tcp", 443) == bundled.lookup_one("tcp", 443)


@pytest.mark.parametrize("cut", [0, 7, 16, 100, 5000, -10])
def test_truncated_or_garbled_artifact_is_a_clear_error(tmp_path, cut):
    data = BUNDLED_ARTIFACT.read_bytes()
    path = tmp_path / "bad.plreg"
    path.write_bytes(data[:cut] if cut else b"PLREG\x00\x00\x00garbage")
    with pytest.raises(RegistryFormatError) as info:
        load_registry(path)
    assert str(path) in str(info.value)


def test_overlay_overrides_and_adds_names_and_records_its_source(base, protocols):
    overlay = _overlay(
        Record("my-web", 443, 443, "tcp", "", aliases=("web-tls",)),
        Record("lab-daemon", 50123, 50123, "udp", "our lab's collector"),
    )
    reg = load_registry_from(compile_sources(base, [overlay], protocols))
    https = reg.lookup_one("tcp", 443)
    assert https["service"] == "my-web"
    assert "https" in https["aliases"] and "web-tls" in https["aliases"]
    assert https["description"] == "http protocol over TLS/SSL"  # borrowed from IANA
    assert https["source"] == "services:local-services"
    lab = reg.lookup_one("udp", 50123)
    assert (lab["service"], lab["status"]) == ("lab-daemon", "assigned")
    # Untouched ports keep IANA's label and source.
    assert reg.lookup_one("udp", 53)["source"] == "iana-xml:2026-08-17"


def test_later_overlay_wins(base, protocols):
    first = _overlay(Record("first", 9999, 9999, "tcp"))
    second = _overlay(Record("second", 9999, 9999, "tcp"))
    reg = load_registry_from(compile_sources(base, [first, second], protocols))
    answer = reg.lookup_one("tcp", 9999)
    assert answer["service"] == "second" and "first" in answer["aliases"]


def load_registry_from(data: bytes):
    from portlabel.registry.compiled import registry_from_bytes

    return registry_from_bytes("<memory>", data)


def test_iana_columns_name_portless_protocols_from_protocol_numbers():
    reg = default_registry()
    cols = iana_columns(reg, np.array([6, 1, 47, 50, 89, 58]), np.array([22, 0, 0, 0, 0, 0]))
    assert cols["iana.service"].to_pylist() == ["ssh", "icmp", "gre", "esp", "ospfigp", "ipv6-icmp"]
    assert cols["iana.port"].to_pylist() == [22, None, None, None, None, None]
    assert cols["iana.transport"].to_pylist()[:2] == ["tcp", None]
    assert cols["iana.source"].to_pylist()[1] == "iana-protocols:2026-03-09"


def test_service_port_falls_back_to_an_assigned_originator_port():
    reg = default_registry()
    use_orig = service_port_side(
        reg, np.array([6, 6, 17]), np.array([443, 50000, 53]), np.array([51000, 443, 60000])
    )
    assert use_orig.tolist() == [True, False, True]
