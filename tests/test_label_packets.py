"""Per-packet labels: ``portlabel packets --label`` and the ``-o`` pcapng copy.

Checked against ``portlabel label`` (same uids with the same seed, same iana.service),
the native reader (packet bytes and timestamps of the copy) and tshark (reads the copy
back, comments in ``frame.comment``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.capture.batch import PacketBatch
from portlabel.capture.inputs import packet_batches
from portlabel.capture.reader import open_capture
from portlabel.cli import main
from portlabel.labelling.api import label

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
TSHARK = shutil.which("tshark") or "/usr/bin/tshark"
# Ethernet captures with TCP and UDP; a pcapng with several interfaces; tunnels
NAMES = ["zeek_wikipedia.pcap", "zeek_pcapng-multi-interface.pcapng", "zeek_vxlan.pcap",
         "zeek_q-in-q.pcap"]  # fmt: skip


def _packets_json(capsys, path: Path) -> list[dict]:
    assert main(["packets", "--json", "--label", "--uid-seed", "7", str(path)]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("name", NAMES)
def test_packet_labels_agree_with_the_labelled_flows(capsys, name):
    path = CAPTURES / name
    packets = _packets_json(capsys, path)
    flows = {r["uid"]: r for r in label(path, uid_seed=7).to_pylist()}
    per_uid = Counter(p["uid"] for p in packets if p["uid"] is not None)
    parents = {u for f in flows.values() for u in f["tunnel_parents"]}
    # a tunnelled packet is labelled with its innermost flow: only parents may get none
    assert set(per_uid) <= set(flows) and set(flows) - set(per_uid) <= parents
    batch = PacketBatch.concat(list(packet_batches([path])))
    inner_tunnel = batch.tunnel != 0
    for uid, flow in flows.items():
        if not flow["tunnel_parents"] and not np.any(inner_tunnel):
            assert per_uid[uid] == flow["orig_pkts"] + flow["resp_pkts"], uid
    for p in packets:
        if p["uid"] is None:
            assert p["iana.service"] is None
            continue
        flow = flows[p["uid"]]
        assert p["iana.service"] == flow["iana.service"]
        assert {p["src"], p["dst"]} == {flow["id.orig_h"], flow["id.resp_h"]} or p.get("tunnel")


def test_packets_outside_flows_have_null_labels(capsys):
    packets = _packets_json(capsys, CAPTURES / "zeek_wikipedia.pcap")
    for p in packets:
        assert (p["uid"] is None) == (p["transport"] is None and p["status"] == "ok") or (
            p["status"] != "ok"
        )


def test_text_lines_end_with_uid_and_service(capsys):
    assert main(["packets", "--label", "--uid-seed", "7", str(CAPTURES / NAMES[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    flows = {
        r["uid"]: r["iana.service"] for r in label(CAPTURES / NAMES[0], uid_seed=7).to_pylist()
    }
    for line in lines:
        uid, service = line.split()[-2:]
        if uid != "-":
            assert (flows[uid] or "-") == service


def _read_native(path: Path):
    raws = list(open_capture(path).batches())
    data = [r.frame_bytes(i) for r in raws for i in range(len(r))]
    ts = np.concatenate([r.ts_ns for r in raws])
    wire = np.concatenate([r.wirelen for r in raws])
    link = np.concatenate([r.linktype for r in raws])
    return data, ts, wire, link


@pytest.mark.parametrize("name", NAMES)
def test_pcapng_copy_has_the_same_packets(tmp_path, name):
    src, out = CAPTURES / name, tmp_path / "out.pcapng"
    assert main(["packets", "-o", str(out), "--uid-seed", "7", str(src)]) == 0
    a, b = _read_native(src), _read_native(out)
    assert a[0] == b[0]  # bytes identical, in order
    for x, y in zip(a[1:], b[1:], strict=True):
        assert np.array_equal(x, y)


@pytest.mark.tshark
@pytest.mark.skipif(not Path(TSHARK).exists(), reason="no tshark")
@pytest.mark.parametrize("name", NAMES)
def test_tshark_reads_the_comments(tmp_path, name):
    src, out = CAPTURES / name, tmp_path / "out.pcapng"
    assert main(["packets", "-o", str(out), "--uid-seed", "7", str(src)]) == 0
    proc = subprocess.run(
        [TSHARK, "-r", str(out), "-T", "fields", "-e", "frame.comment", "-e", "frame.len"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    _, _, wire, _ = _read_native(src)
    assert [int(r[-1]) for r in rows] == wire.tolist()
    flows = label(src, uid_seed=7).to_pylist()
    by_uid = {r["uid"]: r for r in flows}
    seen = set()
    for comment, _ in rows:
        if not comment:
            continue
        uid = comment.split()[0].removeprefix("uid=")
        flow = by_uid[uid]
        seen.add(uid)
        label_text = f"iana={flow['iana.service'] or '-'}"
        if flow["iana.port"] is not None:
            label_text += f"/{flow['iana.transport']} {flow['iana.port']}"
        assert comment == f"uid={uid} {label_text} ({flow['iana.status'] or '-'})"
    parents = {u for f in flows for u in f["tunnel_parents"]}
    assert seen <= set(by_uid) and set(by_uid) - seen <= parents


def test_pcapng_output_needs_the_native_backend(tmp_path, capsys):
    out = tmp_path / "x.pcapng"
    code = main(["packets", "--backend", "scapy", "-o", str(out), str(CAPTURES / NAMES[0])])
    assert code == 2 and not out.exists()


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 70), st.integers(0, 37)), min_size=1, max_size=40),
    st.integers(0, 2**32 - 1),
)
def test_enhanced_packet_blocks_hold_exactly_the_bytes_and_comments(packets, seed):
    """Word-wise span copies spill past each span; every block must still parse exactly,
    with zero padding, including spans that end at the very end of the source buffer."""
    import struct

    from portlabel.packet_writers.pcapng_comments import enhanced_packets

    rng = np.random.default_rng(seed)
    caps = np.array([p[0] for p in packets], dtype=np.int64)
    clens = np.array([p[1] for p in packets], dtype=np.int64)
    offsets = np.cumsum(caps + 16) - caps  # records laid out as in a pcap, last at the end
    buf = rng.integers(0, 256, int(offsets[-1] + caps[-1]), dtype=np.uint8)
    comments = rng.integers(32, 127, (len(packets), max(int(clens.max()), 1)), dtype=np.uint8)
    ts = rng.integers(0, 2**62, len(packets))
    out = enhanced_packets(
        np.zeros(len(packets), np.uint32), ts, caps + 5, buf, offsets, caps, comments, clens
    ).tobytes()
    at = 0
    for i, (cap, clen) in enumerate(zip(caps.tolist(), clens.tolist(), strict=True)):
        kind, length, _, hi, lo, got_cap, wire = struct.unpack_from("<7I", out, at)
        assert (kind, got_cap, wire, (hi << 32) | lo) == (6, cap, cap + 5, int(ts[i]))
        data = at + 28
        assert out[data : data + cap] == buf[offsets[i] : offsets[i] + cap].tobytes()
        pad = (cap + 3) & ~3
        assert out[data + cap : data + pad] == bytes(pad - cap)
        opt = data + pad
        if clen:
            code, olen = struct.unpack_from("<2H", out, opt)
            assert (code, olen) == (1, clen)
            assert out[opt + 4 : opt + 4 + clen] == comments[i, :clen].tobytes()
            cpad = (clen + 3) & ~3
            assert out[opt + 4 + clen : opt + 4 + cpad + 4] == bytes(cpad - clen + 4)
        assert struct.unpack_from("<I", out, at + length - 4)[0] == length
        at += length
    assert at == len(out)


def _interfaces_per_packet(path: Path) -> list[tuple[str, str]]:
    """(encapsulation, capture length) of each packet's interface, read by capinfos+tshark."""
    info = subprocess.run(
        [shutil.which("capinfos") or "capinfos", "-I", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    interfaces, current = [], {}
    for line in info.splitlines():
        if line.startswith("Interface #"):
            current = {}
            interfaces.append(current)
        elif "=" in line and interfaces:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    ids = subprocess.run(
        [TSHARK, "-r", str(path), "-T", "fields", "-e", "frame.interface_id"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [
        (interfaces[int(i)]["Encapsulation"], interfaces[int(i)]["Capture length"]) for i in ids
    ]


@pytest.mark.tshark
@pytest.mark.skipif(shutil.which("capinfos") is None, reason="no capinfos")
def test_pcapng_copy_keeps_each_interfaces_snaplen(tmp_path):
    """Interfaces with snaplens 96, 0 and 128 on two link types (a big-endian file with
    simple packet blocks): every packet's interface in the copy has the link type and
    snaplen of its interface in the original."""
    src, out = CAPTURES / "pngtg_be_test101.pcapng", tmp_path / "out.pcapng"
    assert main(["packets", "-o", str(out), str(src)]) == 0
    want = _interfaces_per_packet(src)
    assert {snap for _, snap in want} == {"96", "0", "128"}
    assert _interfaces_per_packet(out) == want


def test_the_copy_is_the_same_with_the_reading_thread_and_without(tmp_path, monkeypatch):
    """``-o`` reads and labels ahead in a worker thread: across files with different
    interfaces and snaplens, and many small batches in flight, the copy is byte for byte
    the one written in one thread, and each packet keeps its own file's interface."""
    import portlabel.labelling.stages as stages

    files = [str(CAPTURES / n) for n in ("pngtg_be_test101.pcapng", *NAMES)]
    outputs = {}
    for cpus in (2, 1):
        monkeypatch.setattr(stages, "usable_cpus", lambda n=cpus: n)
        out = tmp_path / f"cpus{cpus}.pcapng"
        args = ["packets", "-o", str(out), "--uid-seed", "7", "--batch-size", "16", *files]
        assert main(args) == 0
        outputs[cpus] = out.read_bytes()
    assert outputs[1] == outputs[2]
    want = []  # each file copied alone: its packets' interfaces
    for i, f in enumerate(files):
        alone = tmp_path / f"alone{i}.pcapng"
        assert main(["packets", "-o", str(alone), f]) == 0
        want += _interfaces_per_packet(alone)
    assert _interfaces_per_packet(tmp_path / "cpus2.pcapng") == want
    assert len({snap for _, snap in want}) > 2  # the files differ
