"""Packets per second of the flow engine alone, on a generated decoded capture.

Usage: python benchmarks/flows.py [packets] [flows] [batch] [--rows] [--repeat N]
Builds ``packets`` TCP/UDP packets spread over ``flows`` connections (SYN, data, FIN) as
PacketBatches of ``batch`` rows, then times FlowTable.update over all batches + flush.
``--rows`` also asks for each packet's flow (``update(batch, want_rows=True)``). Prints
wall and CPU seconds, the best of ``--repeat`` runs (CPU time is steadier on a busy host).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from portlabel.capture.batch import PacketBatch
from portlabel.flows import FlowConfig, FlowTable


def synthetic(n: int, n_flows: int, seed: int = 0) -> PacketBatch:
    rng = np.random.default_rng(seed)
    b = PacketBatch.empty(n)
    flow = np.sort(rng.integers(0, n_flows, n))
    rng.shuffle(flow)  # interleave connections
    b.frame[:] = np.arange(n)
    b.ts_ns[:] = 1_700_000_000_000_000_000 + np.arange(n) * 1000
    b.ip_version[:] = 4
    b.src_ip[:, 10:12] = 0xFF
    b.dst_ip[:, 10:12] = 0xFF
    client = flow.astype(np.uint32) + (10 << 24)
    server = (flow % 50).astype(np.uint32) + (192 << 24)
    rev = rng.random(n) < 0.4
    src = np.where(rev, server, client)
    dst = np.where(rev, client, server)
    b.src_ip[:, 12:] = src.astype(">u4").view(np.uint8).reshape(-1, 4)
    b.dst_ip[:, 12:] = dst.astype(">u4").view(np.uint8).reshape(-1, 4)
    udp = flow % 5 == 0
    b.ip_proto[:] = np.where(udp, 17, 6)
    cport = (32768 + flow % 28000).astype(np.uint16)
    sport = np.where(udp, 53, 443).astype(np.uint16)
    b.sport[:] = np.where(rev, sport, cport)
    b.dport[:] = np.where(rev, cport, sport)
    first = np.r_[True, np.zeros(n - 1, dtype=bool)]
    order = np.argsort(flow, kind="stable")
    first = np.zeros(n, dtype=bool)
    fs = order[np.r_[True, flow[order][1:] != flow[order][:-1]]]
    first[fs] = True
    b.tcp_flags[:] = np.where(udp, 0, np.where(first, 0x02, 0x18))
    b.tcp_seq[:] = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    b.payload_len[:] = rng.integers(0, 1400, n)
    b.ip_len[:] = b.payload_len + 40
    return b


def one_run(batches: list[PacketBatch], want_rows: bool) -> tuple[int, float, float]:
    table = FlowTable(FlowConfig(uid_seed=1))
    options = {"want_rows": True} if want_rows else {}
    t0, c0 = time.perf_counter(), time.process_time()
    flows = 0
    for b in batches:
        out = table.update(b, **options)
        if want_rows:
            out = out.flows
        flows += 0 if out is None else out.num_rows
    flows += table.flush().num_rows
    return flows, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    want_rows = "--rows" in sys.argv
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 3
    if "--repeat" in sys.argv:
        args.remove(str(repeat))
    n = int(args[0]) if len(args) > 0 else 1_000_000
    n_flows = int(args[1]) if len(args) > 1 else 20_000
    size = int(args[2]) if len(args) > 2 else 65_536
    packets = synthetic(n, n_flows)
    batches = [packets.take(np.arange(i, min(i + size, n))) for i in range(0, n, size)]
    runs = [one_run(batches, want_rows) for _ in range(repeat)]
    flows = runs[0][0]
    wall, cpu = min(r[1] for r in runs), min(r[2] for r in runs)
    rows = " (with per-packet flows)" if want_rows else ""
    print(
        f"{n} packets, {flows} flows, batch {size}{rows}: best of {repeat}: "
        f"{wall:.3f} s wall, {cpu:.3f} s CPU, {n / cpu / 1e6:.2f} M packets/CPU-s"
    )


if __name__ == "__main__":
    main()
