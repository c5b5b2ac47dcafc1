"""The labelling pipeline and Python API on real captures: labels, service-port choice,
several files as one capture, unreadable inputs."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import portlabel.labelling.api as api
from portlabel.capture.inputs import CaptureInputs
from portlabel.capture.reader import open_capture
from portlabel.errors import CaptureError
from portlabel.labelling.flows import LABEL_COLUMNS, PORT_OF_COLUMN, label_flows, labelled_schema
from portlabel.labelling.iana import IANA_COLUMNS
from portlabel.registry import default_registry

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
INFECTED = CAPTURES / "zeekreal_infected.pcap"
PORTED = {"tcp", "udp", "sctp", "dccp"}
KEY = ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "ip_proto")


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture(scope="module")
def sites():
    """A busy real capture with many services."""
    return api.label(CAPTURES / "ndpi_1kxun.pcap", uid_seed=1)


def test_label_columns_follow_flow_columns_in_declared_order(sites):
    from portlabel.flows.columns import FLOW_SCHEMA

    assert sites.schema.names == [*FLOW_SCHEMA.names, *LABEL_COLUMNS]
    assert LABEL_COLUMNS[-1] == PORT_OF_COLUMN
    assert list(LABEL_COLUMNS[:-1]) == list(IANA_COLUMNS)
    assert sites.num_rows > 100


def test_labels_equal_the_registrys_answer_for_the_chosen_port(sites, registry):
    rows = sites.select(["transport", "id.orig_p", "id.resp_p", *LABEL_COLUMNS]).to_pylist()
    checked = 0
    for row in rows:
        if row["transport"] not in PORTED:
            assert row[PORT_OF_COLUMN] is None and row["iana.port"] is None
            continue
        side = row[PORT_OF_COLUMN]
        port = row["id.orig_p"] if side == "orig" else row["id.resp_p"]
        want = registry.lookup_one(row["transport"], port)
        assert row["iana.port"] == port
        assert row["iana.service"] == want["service"]
        assert row["iana.status"] == want["status"]
        assert row["iana.description"] == want["description"]
        assert row["iana.aliases"] == want["aliases"]
        assert row["iana.transport"] == row["transport"]
        checked += 1
    assert checked > 100


def test_originator_port_is_used_only_when_the_responders_is_weak(sites, registry):
    rows = sites.select(["transport", "id.orig_p", "id.resp_p", PORT_OF_COLUMN]).to_pylist()
    seen = set()
    for row in rows:
        if row["transport"] not in PORTED:
            continue
        resp = registry.lookup_one(row["transport"], row["id.resp_p"])["status"]
        orig = registry.lookup_one(row["transport"], row["id.orig_p"])["status"]
        want = "orig" if resp in ("unassigned", "dynamic") and orig == "assigned" else "resp"
        assert row[PORT_OF_COLUMN] == want, row
        seen.add(want)
    assert "resp" in seen


def test_originator_side_chosen_for_a_server_that_spoke_first(registry):
    """A synthetic flow table: DNS answered from 53 to a dynamic port, seen backwards."""
    from portlabel.flows.columns import FLOW_SCHEMA

    row = {name: None for name in FLOW_SCHEMA.names}
    row.update({"id.orig_p": 53, "id.resp_p": 51000, "ip_proto": 17, "tunnel_parents": []})
    flows = pa.Table.from_pylist([row], schema=FLOW_SCHEMA)
    out = label_flows(registry, flows).to_pylist()[0]
    assert out[PORT_OF_COLUMN] == "orig"
    assert out["iana.port"] == 53 and out["iana.service"] == "domain"


def test_portless_protocols_are_named_by_protocol_number(registry):
    table = api.label(CAPTURES / "zeek_gre-sample.pcap", uid_seed=1)
    gre = table.filter(pa.compute.equal(table.column("ip_proto"), 47)).to_pylist()
    icmp = table.filter(pa.compute.equal(table.column("ip_proto"), 1)).to_pylist()
    for row in gre + icmp:
        assert row["iana.port"] is None and row[PORT_OF_COLUMN] is None
    assert all(r["iana.service"] == "gre" for r in gre)
    assert all(r["iana.service"] == "icmp" for r in icmp)
    assert gre or icmp


def test_iter_labelled_streams_the_same_flows_as_label(sites):
    parts = list(api.iter_labelled(CAPTURES / "ndpi_1kxun.pcap", uid_seed=1, batch_size=500))
    assert len(parts) > 1
    streamed = pa.concat_tables(parts).sort_by([(k, "ascending") for k in KEY])
    whole = sites.sort_by([(k, "ascending") for k in KEY])
    assert streamed.drop(["uid"]).equals(whole.drop(["uid"]))


def test_to_pandas_works():
    frame = api.label(INFECTED).to_pandas()
    assert len(frame) > 10
    assert set(frame["iana.service"].dropna()) >= {"http", "domain"}


def test_an_empty_result_has_the_labelled_schema(tmp_path, registry):
    only_header = tmp_path / "empty.pcap"
    only_header.write_bytes(INFECTED.read_bytes()[:24])
    table = api.label(only_header)
    assert table.num_rows == 0
    assert table.schema == labelled_schema()


def test_the_declared_schema_is_what_labelling_builds(registry):
    from portlabel.flows.columns import FLOW_SCHEMA, empty_table

    assert label_flows(registry, empty_table(FLOW_SCHEMA)).schema == labelled_schema()
    labelled = api.label(INFECTED)
    assert labelled.num_rows > 0 and labelled.schema == labelled_schema()


def test_flow_options_reach_the_flow_table():
    short = api.label(INFECTED, tcp_timeout=0.5, udp_timeout=0.5, close_delay=0.1)
    default = api.label(INFECTED)
    assert short.num_rows > default.num_rows
    with pytest.raises(TypeError, match="tcp_timout"):
        api.label(INFECTED, tcp_timout=3)


def test_earlier_option_names_are_aliases():
    """``tcp_inactivity=`` (the API's first vocabulary) is ``tcp_timeout=`` (the CLI's)."""
    by_alias = api.label(INFECTED, tcp_inactivity=0.5, udp_inactivity=0.5, uid_seed=1)
    by_name = api.label(INFECTED, tcp_timeout=0.5, udp_timeout=0.5, uid_seed=1)
    assert by_alias.equals(by_name)
    assert not by_name.equals(api.label(INFECTED, uid_seed=1))
    tunnels = CAPTURES / "zeek_vxlan.pcap"
    zeek = api.label(tunnels, zeek_keys=True, uid_seed=1)
    assert api.label(tunnels, key_by_tunnel_parent=False, uid_seed=1).equals(zeek)


# -- several files as one capture ------------------------------------------------------


def _split_pcap(source: Path, parts: list[Path], cut_fraction: float) -> None:
    """Write ``source``'s records into ``parts`` (classic pcap), cutting at a record edge."""
    data = source.read_bytes()
    header, pos, records = data[:24], 24, []
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    while pos + 16 <= len(data):
        caplen = struct.unpack_from(endian + "I", data, pos + 8)[0]
        records.append(data[pos : pos + 16 + caplen])
        pos += 16 + caplen
    cut = int(len(records) * cut_fraction)
    parts[0].write_bytes(header + b"".join(records[:cut]))
    parts[1].write_bytes(header + b"".join(records[cut:]))


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_split_capture_gives_the_flows_of_the_whole_file(tmp_path, fraction):
    parts = [tmp_path / "a.pcap", tmp_path / "b.pcap"]
    _split_pcap(INFECTED, parts, fraction)
    whole = api.label(INFECTED, uid_seed=3)
    split = api.label(parts, uid_seed=3, batch_size=64)
    order = [(k, "ascending") for k in KEY]
    assert split.num_rows == whole.num_rows
    assert split.sort_by(order).drop(["uid"]).equals(whole.sort_by(order).drop(["uid"]))


def test_split_files_read_with_the_reader_keep_frame_numbers_continuous(tmp_path):
    parts = [tmp_path / "a.pcap", tmp_path / "b.pcap"]
    _split_pcap(INFECTED, parts, 0.5)
    inputs = CaptureInputs(parts, batch_size=50)
    frames = np.concatenate([b.frame for b in inputs])
    n_whole = sum(len(b) for b in open_capture(INFECTED).batches())
    assert np.array_equal(frames, np.arange(n_whole))


# -- unreadable inputs -----------------------------------------------------------------


def test_unreadable_file_raises_by_default(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    with pytest.raises(CaptureError, match="bad.pcap"):
        api.label([bad, INFECTED])


def test_unreadable_file_is_skipped_with_a_warning_when_asked(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = api.label([bad, INFECTED, tmp_path / "missing.pcap"], errors="warn")
    messages = [str(w.message) for w in caught if issubclass(w.category, api.CaptureWarning)]
    assert any("bad.pcap" in m and "offset 0" in m for m in messages)
    assert any("missing.pcap" in m for m in messages)
    assert table.num_rows == api.label(INFECTED).num_rows


@pytest.fixture
def cut(tmp_path):
    """The first half of a real capture, cut 7 bytes into a record."""
    path = tmp_path / "cut.pcap"
    data = INFECTED.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 7])
    return path


def test_truncated_file_keeps_its_flows_and_warns_with_the_offset(cut):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = api.label(cut)
    assert table.num_rows > 0
    assert any("offset" in str(w.message) and "cut.pcap" in str(w.message) for w in caught)


def test_inputs_record_failures_and_carry_on(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 100)
    problems, progress = [], []
    inputs = CaptureInputs([bad, INFECTED], on_problem=problems.append, on_progress=progress.append)
    n = sum(len(b) for b in inputs)
    assert n > 0 and len(problems) == 1 and inputs.failures == problems
    assert "bad.pcap" in str(problems[0])
    assert progress[-1] == inputs.total_bytes
    assert progress == sorted(progress)


@pytest.mark.parametrize("name", ["zeek_wikipedia.pcap", "zeek_ssh.pcap"])
def test_scapy_backend_gives_the_same_flows_as_native(tmp_path, name):
    """``portlabel label --backend scapy`` on Ethernet captures: flows equal native's."""
    from portlabel.cli import main

    outs = {}
    for backend in ("native", "scapy"):
        out = tmp_path / f"{backend}.jsonl"
        argv = ["label", "--backend", backend, "--uid-seed", "3", "-o", str(out)]
        assert main([*argv, str(CAPTURES / name)]) == 0
        outs[backend] = out.read_text().splitlines()
    assert outs["native"] and outs["scapy"] == outs["native"]


def test_reader_warnings_point_at_the_code_iterating_the_flows(cut, tmp_path):
    """The files are read in a worker thread; their warnings are issued in the caller's."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tables = [t for t in api.iter_labelled([cut, tmp_path / "missing.pcap"], errors="warn")]
    ours = [w for w in caught if issubclass(w.category, api.CaptureWarning)]
    assert tables and len(ours) == 2
    assert {w.filename for w in ours} == {__file__}


@pytest.mark.parametrize(
    "name",
    [
        "ndpi_1kxun.pcap",
        "zeek_ssh.pcap",
        "zeek_ipv6-fragmented-dns.pcap",
        "zeek_gre-sample.pcap",
        "zeek_vxlan.pcap",
        "zeekreal_infected.pcap",
    ],  # fmt: skip
)
def test_seeded_uids_do_not_depend_on_how_packets_are_batched(name):
    """With a seed a flow's uid is a function of the seed and its first packet's place
    in the capture: batch sizes (and so live reads, callbacks, later: split files) give
    each flow the same uid, tunnel parents included."""
    import portlabel

    path = Path(__file__).resolve().parent.parent / "captures" / name

    def by_flow(**options):
        rows = portlabel.label(path, uid_seed=11, tcp_timeout=5, **options).to_pylist()
        return {(r["ts"], r["id.orig_h"], r["id.orig_p"], r["id.resp_p"], r["proto"]):
                (r["uid"], tuple(r["tunnel_parents"])) for r in rows}  # fmt: skip

    whole = by_flow()
    for size in (1, 13, 500):
        assert by_flow(batch_size=size) == whole
    assert len({uid for uid, _ in whole.values()}) == len(whole)
