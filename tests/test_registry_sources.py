"""Registry source readers: CSV, plain text and services files, checked against the IANA XML.

The bundled XML (the newest registry) is the reference: the CSV snapshot and the dated
plain-text excerpt must say what it says, except where the XML shows a later change.
"""

from __future__ import annotations

import lzma
import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import portlabel
from portlabel.errors import RegistryFormatError
from portlabel.registry.model import Record, RegistrySource
from portlabel.registry.sources import read_source

DATA = Path(__file__).parent / "data" / "registry"
SEED = DATA / "iana-seed-2025-04-07.txt"
SEED_DATE = "2025-04-07"
CSV_SNAPSHOT = DATA / "service-names-port-numbers-csv-snapshot.csv.xz"
BUNDLED_XML = Path(portlabel.__file__).parent / "registry" / "data"
BUNDLED_XML = BUNDLED_XML / "service-names-port-numbers.xml.xz"
FIELDS = (
    "description",
    "assignee",
    "contact",
    "registered",
    "modified",
    "references",
    "service_code",
    "unauthorized",
    "notes",
)


@pytest.fixture(scope="module")
def xml() -> RegistrySource:
    return read_source(BUNDLED_XML)


def _key(r: Record) -> tuple:
    return (r.name, r.port_lo, r.port_hi, r.transport)


def _index(source: RegistrySource) -> dict[tuple, list[Record]]:
    index: dict[tuple, list[Record]] = defaultdict(list)
    for r in source.records:
        index[_key(r)].append(r)
    return index


def _flat(value):
    """Renderings differ in line breaks only: compare text with whitespace collapsed."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, tuple):
        return tuple(_flat(v) for v in value)
    return value


def _diff(a: Record, b: Record, flat: bool) -> list[str]:
    norm = _flat if flat else (lambda v: v)
    return [f for f in FIELDS if norm(getattr(a, f)) != norm(getattr(b, f))]


def _copy(src: Path, directory: Path, name: str) -> Path:
    dest = directory / name
    shutil.copyfile(src, dest)
    return dest


# --- format detection -------------------------------------------------------------------


def test_formats_are_detected_from_content_not_name(tmp_path):
    csv_plain = tmp_path / "plain.csv"
    csv_plain.write_bytes(lzma.decompress(CSV_SNAPSHOT.read_bytes())[:20000].rsplit(b"\n", 1)[0])
    cases = {
        _copy(SEED, tmp_path, "registry.csv"): "iana-text",
        _copy(csv_plain, tmp_path, "registry.xml"): "iana-csv",
        _copy(CSV_SNAPSHOT, tmp_path, "snapshot.txt"): "iana-csv",
        _copy(DATA / "etc-services-sample", tmp_path, "services.xml"): "services",
        _copy(DATA / "wireshark-services-sample", tmp_path, "x.csv"): "services",
        _copy(DATA / "nmap-services-sample", tmp_path, "nmap.txt"): "nmap-services",
    }
    for path, kind in cases.items():
        assert read_source(path).kind == kind, path.name


def test_prose_is_not_mistaken_for_a_services_file(tmp_path):
    path = tmp_path / "services"
    path.write_text("These services are offered 24/7 by our staff.\nCall 555 12/34.\n")
    with pytest.raises(RegistryFormatError, match="not a registry format"):
        read_source(path)


# --- IANA CSV ----------------------------------------------------------------------------


def test_csv_snapshot_agrees_with_the_xml(xml):
    """Every CSV row has its XML record, unless the XML shows it changed after the snapshot."""
    csv = read_source(CSV_SNAPSHOT)
    assert csv.kind == "iana-csv" and csv.people == {}
    newest = max(d for r in csv.records for d in (r.registered, r.modified) if d)
    index = _index(xml)
    # Changes the XML made without a later date on the record, each checked by hand:
    known = {
        ("udpstp", 24601, 24601, "udp"): "draft reference became RFC 9946, title recased",
        ("netconf-tls", 6513, 6513, "tcp"): "draft reference became RFC 9918",
        ("dns-push-tls", None, None, "tcp"): "XML reader drops the xref section ('Section 6.1')",
    }
    counts = defaultdict(int)
    unexplained = []
    for r in csv.records:
        assert r.source == csv.label and r.line
        candidates = index.get(_key(r), [])
        if any(not _diff(r, x, flat=False) for x in candidates):
            counts["equal"] += 1
        elif any(not _diff(r, x, flat=True) for x in candidates):
            counts["equal but line breaks"] += 1
        elif any(_strip_inline_refs(r, x) for x in candidates):
            counts["equal but inline [refs] in notes"] += 1
        elif candidates and any((x.modified or "") >= newest for x in candidates):
            counts["changed later"] += 1
        elif not candidates and _replaced_later(r, xml, newest):
            counts["range split or replaced later"] += 1
        elif _key(r) in known:
            counts["known"] += 1
        else:
            unexplained.append((r, candidates))
    print(dict(counts), "of", len(csv.records), "CSV rows; newest CSV date", newest)
    assert not unexplained, unexplained[:3]
    assert counts["equal"] > 0.98 * len(csv.records)


def _strip_inline_refs(csv_record: Record, xml_record: Record) -> bool:
    """The XML reader loses ``<xref>`` elements inside a note; the CSV prints them."""

    def text(v):  # what is left once the references and all spacing are taken out
        return re.sub(r"\s+", "", re.sub(r"\[[^\]]*\]", "", v)) if isinstance(v, str) else v

    return all(text(getattr(csv_record, f)) == text(getattr(xml_record, f)) for f in FIELDS)


def _replaced_later(r: Record, xml: RegistrySource, newest: str) -> bool:
    """An unnamed row gone from the XML: a record over its ports was made after the CSV."""
    if r.name is not None or r.port_lo is None:
        return False
    return any(
        x.port_lo is not None
        and x.port_lo <= r.port_hi
        and r.port_lo <= (x.port_hi or x.port_lo)
        and max(x.registered or "", x.modified or "") >= newest
        for x in xml.records
    )


def test_csv_parses_brackets_and_multiline_fields(tmp_path):
    path = tmp_path / "ports.csv"
    path.write_text(
        "Service Name,Port Number,Transport Protocol,Description,Assignee,Contact,"
        "Registration Date,Modification Date,Reference,Service Code,"
        "Unauthorized Use Reported,Assignment Notes\n"
        'exp1,1021,dccp,"RFC3692-style\nExperiment 1",[IESG],[IETF_Chair],2008-01-02,,'
        "[1][RFC4727][RFC6335],1145656131,,\n"
        ',1022-1023,,Reserved,,,,2024-12-20,,,,"De-assigned, was [Bob_X]"\n'
    )
    source = read_source(path)
    first, second = source.records
    assert (first.name, first.port_lo, first.transport) == ("exp1", 1021, "dccp")
    assert first.description == "RFC3692-style\nExperiment 1"
    assert first.assignee == ("IESG",) and first.contact == ("IETF_Chair",)
    assert first.references == ("1", "RFC4727", "RFC6335")
    assert first.service_code == 1145656131 and first.registered == "2008-01-02"
    assert (second.name, second.port_lo, second.port_hi, second.transport) == (
        None,
        1022,
        1023,
        None,
    )
    assert second.modified == "2024-12-20" and second.notes == "De-assigned, was [Bob_X]"
    assert second.line == 4  # the first row spans lines 2-3


@pytest.mark.parametrize(
    "row, line",
    [
        ("a,1,tcp,Too few fields\n", 3),
        ("a,70000,tcp,Bad port,,,,,,,,\n", 3),
        ("a,1,xtp,Bad transport,,,,,,,,\n", 3),
    ],
)
def test_malformed_csv_names_the_line(tmp_path, row, line):
    path = tmp_path / "bad.csv"
    header = (
        "Service Name,Port Number,Transport Protocol,Description,Assignee,Contact,"
        "Registration Date,Modification Date,Reference,Service Code,"
        "Unauthorized Use Reported,Assignment Notes\n"
    )
    path.write_text(header + "ok,1,tcp,Fine,,,,,,,,\n" + row)
    with pytest.raises(RegistryFormatError, match=f"{path}: line {line}:"):
        read_source(path)


# --- IANA plain text ---------------------------------------------------------------------


def test_seed_excerpt_matches_the_xml(xml):
    """Every record of the dated excerpt is as the XML has it (text loses line breaks)."""
    seed = read_source(SEED)
    assert seed.kind == "iana-text" and seed.updated == SEED_DATE
    assert len(seed.records) == 101  # record rows in the excerpt, continuation lines aside
    index = _index(xml)
    changed_since = []
    for r in seed.records:
        candidates = index[_key(r)]
        assert candidates, f"line {r.line}: {_key(r)} not in the XML"
        if any(not _diff(r, x, flat=True) for x in candidates):
            continue
        # Allowed only when the XML records a change after the excerpt's date.
        later = [x for x in candidates if (x.modified or "") > SEED_DATE]
        assert later, (r, [_diff(r, x, flat=True) for x in candidates])
        changed_since.append(_key(r))
    assert changed_since == []  # none in this excerpt was changed after 2025-04-07


def test_seed_ambiguous_columns_resolved_as_the_xml_says():
    by_key = {_key(r): r for r in read_source(SEED).records}
    osb = by_key[("osb-sd", 400, 400, "tcp")]
    assert (osb.registered, osb.modified, osb.notes) == (
        "2008-06-06",
        "2023-12-27",
        "Formerly was Workstation Solutions",
    )
    ups = by_key[("ups", 401, 401, "udp")]
    assert (ups.registered, ups.modified) == ("2008-08-29", None)
    reserved = by_key[(None, 249, 255, None)]
    assert (reserved.description, reserved.registered, reserved.modified, reserved.references) == (
        "Reserved",
        None,
        "2024-12-20",
        ("RFC1060",),
    )
    assert by_key[(None, 324, 324, "udp")].description == "Reserved"
    tftp = by_key[("subntbcst-tftp", 247, 247, "tcp")]
    assert tftp.description == (
        "SUBNTBCST_TFTP\nIANA assigned this well-formed service name "
        'as a replacement for "subntbcst_tftp".'
    )
    assert tftp.assignee == tftp.contact == ("John_Fake",)
    alias = by_key[("subntbcst_tftp", 247, 247, "tcp")]
    assert alias.notes.startswith('This entry is an alias to "subntbcst-tftp".')
    rpki = by_key[("rpki-rtr-tls", 324, 324, "tcp")]
    assert (rpki.assignee, rpki.contact, rpki.references) == (
        ("IESG",),
        ("IETF_Chair",),
        ("RFC6810",),
    )


def test_seed_people_match_the_xml(xml):
    seed = read_source(SEED)
    assert len(seed.people) == 36
    # The rendering prints "Hewlett Packard" for an organisation-only entry exactly as it
    # would print a person's name: nothing in the text tells them apart.
    ambiguous = {"Hewlett_Packard"}
    for pid, person in seed.people.items():
        if pid in ambiguous:
            continue
        assert person == xml.people[pid], pid
    assert seed.people["IETF_Chair"].org == "IETF"
    assert seed.people["Laurent_Domenech"].org == "Opalis"


def test_contact_lines_split_like_the_xml_for_most_people(xml):
    """Render every XML person as the text table does and read it back."""
    from portlabel.registry.sources.iana_text import parse_person

    same = sum(
        parse_person(p.id, " ".join(w for w in (p.name, p.org, p.uri, p.updated) if w).split()) == p
        for p in xml.people.values()
    )
    print(f"{same}/{len(xml.people)} contact lines split as the XML has them")
    assert same / len(xml.people) > 0.94


def _seed_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SEED.read_text()
    assert old in text
    path = tmp_path / "seed.txt"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    "old, new, needle",
    [
        ("bgmp 264 tcp", "bgmp 99999 tcp", "99999"),
        ("[Weldon_J_Showalter] Weldon", "Weldon_J_Showalter Weldon", "Weldon_J_Showalter Weldon"),
        ("direct 242 udp", "   stray text\ndirect 242 udp", "stray text"),
    ],
)
def test_malformed_text_names_the_line(tmp_path, old, new, needle):
    path = _seed_with(tmp_path, old, new)
    with pytest.raises(RegistryFormatError, match=f"line {_line_of(path, needle)}:"):
        read_source(path)


# --- services(5), Wireshark, nmap ---------------------------------------------------------


def test_etc_services_sample():
    source = read_source(DATA / "etc-services-sample")
    by_name = {(r.name, r.transport): r for r in source.records}
    assert source.kind == "services"
    http = by_name[("http", "tcp")]
    assert (http.port_lo, http.aliases, http.description) == (80, ("www",), "WorldWideWeb HTTP")
    assert by_name[("kerberos", "tcp")].aliases == ("kerberos5", "krb5", "kerberos-sec")
    assert by_name[("discard", "tcp")].aliases == ("sink", "null")
    assert by_name[("echo", "udp")].line == 7
    assert (by_name[("x11", "tcp")].port_lo, by_name[("x11", "tcp")].port_hi) == (6000, 6063)
    assert all(r.source == source.label for r in source.records)
    # AppleTalk's ddp is no IP transport: skipped, and said so.
    assert "rtmp" not in {r.name for r in source.records}
    assert len(source.warnings) == 1 and "line 14" in source.warnings[0]


def test_wireshark_services_sample():
    source = read_source(DATA / "wireshark-services-sample")
    discard = [r for r in source.records if r.name == "discard"]
    assert [r.transport for r in discard] == ["tcp", "udp", "sctp", "dccp"]
    assert {r.description for r in discard} == {"Discard"}
    ftp = next(r for r in source.records if r.name == "ftp")
    assert ftp.description == "File Transfer Protocol [Control]"
    x11 = [r for r in source.records if r.name == "x11"]
    assert [(r.port_lo, r.port_hi, r.transport) for r in x11] == [
        (6000, 6063, "tcp"),
        (6000, 6063, "udp"),
    ]
    assert next(r for r in source.records if r.name == "ident").description == ""


def test_nmap_services_sample():
    source = read_source(DATA / "nmap-services-sample")
    assert source.kind == "nmap-services"
    http = next(r for r in source.records if r.name == "http")
    assert (http.port_lo, http.transport, http.frequency) == (80, "tcp", 0.484143)
    assert http.aliases == () and http.description == "World Wide Web HTTP"
    assert next(r for r in source.records if r.port_lo == 4).frequency == 0.000477
    assert [r.transport for r in source.records].count("sctp") == 1


@pytest.mark.parametrize(
    "path", ["/etc/services", "/usr/share/wireshark/services", "/usr/share/nmap/nmap-services"]
)
def test_real_services_files_of_this_machine_read(path):
    if not Path(path).exists():
        pytest.skip(f"{path} not installed")
    source = read_source(path)
    assert source.records and all(r.port_lo is not None for r in source.records)


@pytest.mark.parametrize(
    "sample, bad, message",
    [
        ("etc-services-sample", "http eighty/tcp\n", "expected 'name port/protocol"),
        ("etc-services-sample", "big 65536/tcp\n", "outside 0-65535"),
        ("nmap-services-sample", "ftp\t21/tcp\n", "frequency"),
        ("nmap-services-sample", "ftp\t21/tcp\t7.5\n", "frequency"),
    ],
)
def test_malformed_services_names_the_line(tmp_path, sample, bad, message):
    text = (DATA / sample).read_text()
    path = tmp_path / "services"
    path.write_text(text + bad + "late\t99/tcp\t0.1\n")
    line = len(text.splitlines()) + 1
    with pytest.raises(RegistryFormatError, match=f"line {line}: .*{re.escape(message)}"):
        read_source(path)


# --- arbitrary input ----------------------------------------------------------------------

_PREFIXES = [
    b"",
    b"tcpmux\t1/tcp\n",
    b"tcpmux\t1/tcp\t0.5\n",
    SEED.read_bytes()[: SEED.read_bytes().index(b"direct 242")],
    b"Service Name,Port Number,Transport Protocol,Description,Assignee,Contact,"
    b"Registration Date,Modification Date,Reference,Service Code,"
    b"Unauthorized Use Reported,Assignment Notes\n",
]
_TEXTY = st.text(
    alphabet=st.sampled_from(list('ab_-/,#[]"\t\n 0123456789.:tcpudTCP')), max_size=300
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(_PREFIXES), body=st.one_of(_TEXTY, st.binary(max_size=200)))
def test_arbitrary_input_parses_or_raises_registry_format_error(prefix, body):
    data = prefix + (body.encode() if isinstance(body, str) else body)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "input"
        path.write_bytes(data)
        try:
            source = read_source(path)
        except RegistryFormatError as exc:
            assert str(exc).startswith(str(path))
            return
    for r in source.records:
        assert r.port_lo is None or 0 <= r.port_lo <= (r.port_hi or r.port_lo) <= 65535
