"""The compiled lookup against the IANA XML itself, parsed independently here."""

from __future__ import annotations

import lzma
import xml.etree.ElementTree as ET
from collections import defaultdict

import numpy as np
import pytest

from portlabel.constants import TRANSPORTS
from portlabel.registry import default_registry
from portlabel.registry.bundled import BUNDLED_ARTIFACT, BUNDLED_SERVICES_XML

NS = "{http://www.iana.org/assignments}"


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture(scope="module")
def xml_records():
    """(name, lo, hi, transport, description) of every XML record, read with the stdlib."""
    root = ET.fromstring(lzma.decompress(BUNDLED_SERVICES_XML.read_bytes()))
    out = []
    for rec in root.iter(f"{NS}record"):

        def get(tag, rec=rec):
            el = rec.find(f"{NS}{tag}")
            return None if el is None else "".join(el.itertext()).strip()

        number = get("number")
        lo = hi = None
        if number:
            a, _, b = number.partition("-")
            lo, hi = int(a), int(b or a)
        out.append((get("name"), lo, hi, get("protocol"), get("description")))
    return out


def test_every_named_port_of_the_xml_answers_with_its_name(registry, xml_records):
    names_at = defaultdict(list)
    for name, lo, hi, transport, _ in xml_records:
        if name and lo is not None:
            for t in [transport] if transport else TRANSPORTS:
                for port in range(lo, hi + 1):
                    names_at[(t, port)].append(name)
    assert len(names_at) > 12000
    keys = list(names_at)
    protos = np.array([t for t, _ in keys])
    ports = np.array([p for _, p in keys])
    entries = registry.lookup(protos, ports)
    primary = registry.text("name")[entries]
    aliases = registry.text("aliases")[entries]
    for i, key in enumerate(keys):
        expected = names_at[key]
        answered = [primary[i], *filter(None, aliases[i].split("\n"))]
        assert set(expected) <= set(answered), (key, expected, answered)
        assert primary[i] in expected


def test_well_known_ports(registry):
    assert registry.lookup_one("tcp", 443)["service"] == "https"
    assert registry.lookup_one("udp", 53)["service"] == "domain"
    assert registry.lookup_one("sctp", 80)["service"] == "http"
    assert registry.lookup_one("dccp", 9)["service"] == "discard"
    assert registry.lookup_one("dccp", 9)["service_code"] == 1145656131


def test_port_with_several_names_has_primary_and_aliases(registry):
    http = registry.lookup_one("tcp", 80)
    assert http["service"] == "http"
    assert http["aliases"] == ["www", "www-http"]


def test_historic_underscore_alias_is_never_primary(registry, xml_records):
    for t in ("tcp", "udp"):
        answer = registry.lookup_one(t, 247)
        assert answer["service"] == "subntbcst-tftp"
        assert answer["aliases"] == ["subntbcst_tftp"]
    # Nowhere in the registry does an underscore name win over a well-formed one.
    named = {(t, lo) for name, lo, hi, t, _ in xml_records if name and "_" not in name and lo}
    for t, port in named:
        if t in TRANSPORTS:
            assert "_" not in registry.lookup_one(t, port)["service"]


def test_range_covers_every_port_in_it(registry):
    for port in range(6000, 6064):
        assert registry.lookup_one("tcp", port)["service"] == "x11"
    for port in range(249, 256):
        answer = registry.lookup_one("tcp", port)
        assert answer["status"] == "reserved"
        assert answer["port_range"] == [249, 255]
        assert answer["references"] == ["RFC1060"]


def test_record_without_transport_applies_to_transports_without_their_own(registry, xml_records):
    transportless = [(lo, hi, d) for name, lo, hi, t, d in xml_records if t is None and lo]
    assert transportless, "the XML has port records without a transport"
    lo, hi, description = transportless[0]
    for t in TRANSPORTS:
        answer = registry.lookup_one(t, lo)
        own = [r for r in xml_records if r[3] == t and r[1] is not None and r[1] <= lo <= r[2]]
        if not own:
            assert answer["description"] == description


def test_statuses_and_port_classes(registry):
    assert registry.lookup_one("udp", 324)["status"] == "reserved"
    assert registry.lookup_one("tcp", 334)["status"] == "unassigned"
    dyn = registry.lookup_one("tcp", 50000)
    assert (dyn["status"], dyn["port_class"], dyn["service"]) == ("dynamic", "dynamic", None)
    assert registry.lookup_one("tcp", 22)["port_class"] == "system"
    assert registry.lookup_one("tcp", 8080)["port_class"] == "user"
    ports = np.array([0, 1023, 1024, 49151, 49152, 65535])
    assert registry.port_class(ports).tolist() == [0, 0, 1, 1, 2, 2]


def test_name_only_records_are_found_by_name_and_search(registry, xml_records):
    name_only = [name for name, lo, *_ in xml_records if name and lo is None]
    assert len(name_only) > 500
    for name in name_only[:50]:
        hits = registry.find_name(name)
        assert hits and all(registry.entry(h)["port"] is None for h in hits)
    assert set(registry.find_name(name_only[0])) <= set(registry.search(name_only[0]))


def test_vectorised_lookup_equals_scalar_lookup(registry):
    rng = np.random.default_rng(7)
    protos = rng.choice(np.array([6, 17, 132, 33], dtype=np.uint8), 2000)
    ports = rng.integers(0, 65536, 2000)
    entries = registry.lookup(protos, ports)
    names = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp"}
    for proto, port, entry in zip(protos.tolist(), ports.tolist(), entries.tolist(), strict=True):
        scalar = registry.lookup_one(names[proto], port)
        assert scalar["service"] == (registry.text("name")[entry] or None)
    # Names work as transports too; protocols without ports get entry 0.
    assert (
        registry.lookup(["tcp", "UDP"], [443, 53]).tolist()
        == registry.lookup([6, 17], [443, 53]).tolist()
    )
    assert registry.lookup([1, 47], [443, 53]).tolist() == [0, 0]


def test_shipped_artifact_equals_compiling_the_shipped_source():
    from portlabel.registry.build import compile_files

    assert compile_files(BUNDLED_SERVICES_XML) == BUNDLED_ARTIFACT.read_bytes()


def test_artifact_records_source_date_and_hash(registry):
    import hashlib

    source = registry.source
    assert source["updated"] == "2026-08-17"
    xml = lzma.decompress(BUNDLED_SERVICES_XML.read_bytes())
    assert source["sha256"] == hashlib.sha256(xml).hexdigest()
    assert registry.meta["protocols"]["updated"] == "2026-03-09"


def test_gathered_strings_equal_the_decoded_ones():
    import numpy as np

    from portlabel.arrowutil import gather_strings, strings
    from portlabel.registry import default_registry

    reg = default_registry()
    blob, offsets = reg.string_table()
    for column in ("name", "description", "source", "aliases"):
        ids = reg.text_ids(column)
        got = gather_strings(blob, offsets, ids, null_empty=True)
        assert got.equals(strings(reg.text(column).tolist(), null_empty=True)), column
    picked = np.array([0, len(offsets) - 2, 0, 5], dtype=np.int64)
    assert gather_strings(blob, offsets, picked).to_pylist() == [reg.string(int(i)) for i in picked]
    assert gather_strings(blob, offsets, np.zeros(0, dtype=np.int64)).to_pylist() == []
