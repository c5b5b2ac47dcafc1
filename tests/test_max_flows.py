"""--max-flows: a flood of new connections cannot grow the flow table without bound."""

from __future__ import annotations

import struct

import numpy as np

import portlabel
from portlabel.capture.frames import Frame, frame_batches
from portlabel.cli import main
from portlabel.flows.engine import FlowTable, default_max_flows
from portlabel.labelling.pipeline import LabelPipeline
from portlabel.registry import default_registry


def udp_frame(i: int) -> Frame:
    """An Ethernet/IPv4/UDP packet whose 5-tuple is new for each ``i``."""
    src = struct.pack(">I", 0x0A000000 + (i >> 16))
    sport = i & 0xFFFF
    udp = struct.pack(">HHHH", sport, 53, 8 + 4, 0) + b"ping"
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src,
                     bytes([192, 0, 2, 1])) + udp  # fmt: skip
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    return Frame(eth + ip, 1_700_000_000_000_000_000 + i * 1000, len(eth + ip), 1)


def test_a_flood_keeps_the_table_under_the_bound_and_loses_no_packet():
    n, bound = 30_000, 1_000
    pipe = LabelPipeline(default_registry(), portlabel.flow_config(max_flows=bound))
    tables, peak = [], 0
    for raw in frame_batches(map(udp_frame, range(n)), batch_size=2_000):
        out = pipe.feed(raw)
        peak = max(peak, len(pipe.flows))
        if out is not None:
            tables.append(out)
    tables.append(pipe.finish())
    flows = [t for t in tables if t.num_rows]
    reasons = np.concatenate([np.asarray(t.column("end_reason").to_pylist()) for t in flows])
    packets = sum(sum(t.column("orig_pkts").to_pylist()) for t in flows)
    assert peak <= bound and packets == n and len(reasons) == n
    assert (reasons == "evicted").sum() == pipe.flows.evicted == n - bound
    assert pipe.stats.evicted == n - bound


def test_evicted_first_are_the_longest_idle():
    table = FlowTable(portlabel.flow_config(max_flows=2))
    pipe = LabelPipeline(default_registry())
    pipe.flows = table
    batches = list(frame_batches(map(udp_frame, [5, 6, 7]), batch_size=3))
    out = pipe.feed(batches[0])
    assert out.column("id.orig_p").to_pylist() == [5]  # the oldest, idle longest
    assert out.column("end_reason").to_pylist() == ["evicted"]


def test_the_default_bound_is_generous_and_the_cli_reports_evictions(tmp_path, capfd):
    assert default_max_flows() >= 1_000_000
    captures = tmp_path / "flood.pcap"

    frames = [udp_frame(i) for i in range(500)]
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    body = b"".join(
        struct.pack("<IIII", f.ts_ns // 10**9, f.ts_ns % 10**9 // 1000, len(f.data), len(f.data))
        + f.data
        for f in frames
    )
    captures.write_bytes(header + body)
    assert main(["label", str(captures), "--max-flows", "100", "-F", "jsonl"]) == 0
    out, err = capfd.readouterr()
    assert out.count('"end_reason":"evicted"') == 400
    assert "400 flows ended early (end_reason evicted) to keep at most 100 active" in err
    assert main(["label", str(captures), "--max-flows", "0"]) == 2
