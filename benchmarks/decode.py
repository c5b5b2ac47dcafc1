"""Time reading + decoding a capture: portlabel next to dpkt and scapy, in the same run.

    python benchmarks/decode.py [CAPTURE] [--runs N] [--scapy-packets N] [--no-peers]

Without CAPTURE, ``benchmarks/gen_capture.py`` writes a 1 M packet capture to
/tmp/portlabel-bench-1m.pcap first. Each measurement runs in a fresh child process so its
peak memory is its own. For every tool it prints the median of N runs: wall seconds,
packets per second and the ratio to portlabel; for portlabel also the share spent in
``decode``, the Python/numpy heap peak (tracemalloc, in a second pass: it would roughly
double the timed pass's CPU time) and the anonymous RSS peak (sampled after every batch).
The peak RSS column also counts the capture's pages mapped by the reader (file-backed,
not allocated). dpkt parses Ethernet/IP/TCP-or-UDP per packet over
the whole file; scapy dissects the first --scapy-packets packets and is scaled to the
file's packet count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

DEFAULT_CAPTURE = "/tmp/portlabel-bench-1m.pcap"


def rss_anon() -> int:
    """Anonymous (allocated, not file-mapped) resident bytes of this process, or 0."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_portlabel(path: str) -> dict:
    from portlabel.capture.decode import decode
    from portlabel.capture.reader import open_capture

    for raw in open_capture(path).batches():  # warm up (imports, first allocations)
        decode(raw)
        break
    # Timed pass: no tracemalloc, which roughly doubles the CPU time of numpy allocations.
    n = anon = 0
    decode_s = decode_cpu = 0.0
    t0, cpu0 = time.perf_counter(), time.process_time()
    for raw in open_capture(path).batches():
        t1, c1 = time.perf_counter(), time.process_time()
        batch = decode(raw)
        decode_s += time.perf_counter() - t1
        decode_cpu += time.process_time() - c1
        n += len(batch)
        anon = max(anon, rss_anon())
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # Memory pass: the same work under tracemalloc, for the heap peak only.
    tracemalloc.start()
    for raw in open_capture(path).batches():
        decode(raw)
    heap = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "packets": n,
        "seconds": seconds,
        "cpu": cpu,
        "decode_s": decode_s,
        "decode_cpu": decode_cpu,
        "heap": heap,
        "anon": anon,
    }


def run_dpkt(path: str) -> dict:
    import dpkt

    n = 0
    ports = 0
    t0 = time.perf_counter()
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                l4 = ip.data
                if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
                    ports += l4.sport + l4.dport
            n += 1
    return {"packets": n, "seconds": time.perf_counter() - t0}


def run_scapy(path: str, limit: int) -> dict:
    from scapy.layers.inet import TCP, UDP
    from scapy.utils import PcapReader

    n = 0
    ports = 0
    t0 = time.perf_counter()
    with PcapReader(path) as reader:
        for pkt in reader:
            layer = pkt.getlayer(TCP) or pkt.getlayer(UDP)
            if layer is not None:
                ports += layer.sport + layer.dport
            n += 1
            if n >= limit:
                break
    return {"packets": n, "seconds": time.perf_counter() - t0}


def child(tool: str, path: str, limit: int) -> dict:
    result = {
        "portlabel": lambda: run_portlabel(path),
        "dpkt": lambda: run_dpkt(path),
        "scapy": lambda: run_scapy(path, limit),
    }[tool]()
    result["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def measure(tool: str, path: str, runs: int, limit: int) -> list[dict]:
    out = []
    for _ in range(runs):
        cmd = [sys.executable, __file__, path, "--child", tool, "--scapy-packets", str(limit)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", default=DEFAULT_CAPTURE)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scapy-packets", type=int, default=20000)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.capture, args.scapy_packets)))
        return 0
    if not os.path.exists(args.capture):
        gen = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen_capture.py")
        subprocess.run([sys.executable, gen, args.capture], check=True)
    measure("portlabel", args.capture, 1, 0)  # warm the page cache and numba's kernels
    tools = ["portlabel"] + ([] if args.no_peers else ["dpkt", "scapy"])
    rows = {}
    for tool in tools:
        runs = measure(tool, args.capture, args.runs, args.scapy_packets)
        rate = statistics.median(r["packets"] / r["seconds"] for r in runs)
        rows[tool] = (rate, runs)
    total = rows["portlabel"][1][0]["packets"]
    base = rows["portlabel"][0]
    print(f"capture: {args.capture} ({total} packets), median of {args.runs} runs")
    print(f"{'tool':<12}{'Mpkt/s':>9}{'s per file':>12}{'x slower':>10}{'peak RSS MiB':>14}")
    for tool, (rate, runs) in rows.items():
        rss = statistics.median(r["rss"] for r in runs) / 2**20
        print(f"{tool:<12}{rate / 1e6:>9.3f}{total / rate:>12.2f}{base / rate:>10.1f}{rss:>14.0f}")
    pl = rows["portlabel"][1]
    decode_share = statistics.median(r["decode_s"] / r["seconds"] for r in pl)
    decode_rate = statistics.median(r["packets"] / r["decode_s"] for r in pl)
    heap = statistics.median(r["heap"] for r in pl) / 2**20
    cpu_rate = statistics.median(r["packets"] / r["cpu"] for r in pl)
    decode_cpu = statistics.median(r["decode_cpu"] for r in pl) / total * 1e6
    read_cpu = statistics.median((r["cpu"] - r["decode_cpu"]) for r in pl) / total * 1e6
    print(f"portlabel: read+decode {cpu_rate / 1e6:.3f} Mpkt per CPU-second (less load-sensitive)")
    print(f"portlabel: CPU per 1 M packets: read {read_cpu:.3f} s, decode {decode_cpu:.3f} s")
    print(
        f"portlabel: decode alone {decode_rate / 1e6:.3f} Mpkt/s ({decode_share:.0%} of the time)"
    )
    anon = statistics.median(r["anon"] for r in pl) / 2**20
    print(
        f"portlabel: peak numpy/Python heap {heap:.0f} MiB (tracemalloc), peak anonymous RSS"
        f" {anon:.0f} MiB (the rest of the RSS is the capture file mapped by the reader)"
    )
    print("scapy is timed on the first packets only and scaled to the file's packet count")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
