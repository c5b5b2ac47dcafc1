"""Live capture speed: the highest replay rate each backend takes with nothing lost.

A veth pair joins two network namespaces made for the run (deleted at the end); ``portlabel
live`` captures on one end while tcpreplay replays the benchmark capture onto the other at
rising rates (``--pps`` steps, then ``--topspeed``). A rate passes when the kernel dropped
nothing, every replayed packet was read, and the flows written hold every packet the flow
engine took (packets in flows + packets not in flows = packets replayed). Slow backends get
a slice of the capture (``--limit``) so the run stays within minutes. Needs root.

    python benchmarks/gen_capture.py /tmp/portlabel-bench-1m.pcap
    python benchmarks/live.py [/tmp/portlabel-bench-1m.pcap] [--backends native,scapy,pyshark]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

# backend -> (packets replayed per step, pps steps; 0 = --topspeed)
PLAN = {
    "native": (None, [100_000, 200_000, 300_000, 400_000, 0]),
    "scapy": (20_000, [5_000, 10_000, 20_000, 40_000, 0]),
    "pyshark": (3_000, [500, 1_000, 2_000, 4_000]),
}
TOTALS = re.compile(
    r"kernel received (?P<recv>[\d,?]+) dropped (?P<drop>[\d,?]+); read (?P<read>[\d,]+) "
    r"packets .*?, (?P<in_flows>[\d,]+) in flows, (?P<left>[\d,]+) not in flows"
)


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def make_pair(tag: str) -> tuple[str, str, str, str]:
    cap_ns, rep_ns, cap_if, rep_if = f"plbc{tag}", f"plbr{tag}", f"plbc{tag}", f"plbr{tag}"
    for ns in (cap_ns, rep_ns):
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    sh("ip", "link", "add", cap_if, "netns", cap_ns, "type", "veth", "peer", "name", rep_if,
       "netns", rep_ns)  # fmt: skip
    for ns, iface in ((cap_ns, cap_if), (rep_ns, rep_if)):
        sh("ip", "-n", ns, "link", "set", iface, "mtu", "65535", "up")
    return cap_ns, cap_if, rep_ns, rep_if


def _int(text: str) -> int | None:
    return None if "?" in text else int(text.replace(",", ""))


def one_run(pair, capture: str, backend: str, limit: int | None, pps: int) -> dict:
    cap_ns, cap_if, rep_ns, rep_if = pair
    out_path = f"/tmp/portlabel-live-bench-{os.getpid()}.jsonl"
    live = subprocess.Popen(
        ["ip", "netns", "exec", cap_ns, sys.executable, "-m", "portlabel", "live", "-i", cap_if,
         "--backend", backend, "-o", out_path, "--stats-interval", "0", "--ring-mb", "1024"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while "capturing on" not in (live.stderr.readline() or "capturing on"):
        pass
    rate = ["--topspeed"] if pps == 0 else ["--pps", str(pps)]
    lim = ["--limit", str(limit)] if limit else []
    started = time.monotonic()
    rep = sh("ip", "netns", "exec", rep_ns, "tcpreplay", "-q", "-K", "-i", rep_if, *rate, *lim,
             capture)  # fmt: skip
    replay_s = time.monotonic() - started
    sent = int(re.search(r"Successful packets:\s+(\d+)", rep.stdout).group(1))
    actual = re.search(r"Rated: .*?([\d.]+) pps", rep.stdout)
    time.sleep(1.0)
    live.send_signal(signal.SIGINT)
    err = live.communicate(timeout=600)[1]
    m = TOTALS.search(err)
    flows_pkts = 0
    with open(out_path) as f:
        for line in f:
            row = json.loads(line)
            flows_pkts += row["orig_pkts"] + row["resp_pkts"]
    os.unlink(out_path)
    read, in_flows = _int(m["read"]), _int(m["in_flows"])
    dropped = _int(m["drop"])
    ok = dropped in (0, None) and read == sent and flows_pkts == in_flows
    ok = ok and in_flows + _int(m["left"]) == sent
    return {
        "backend": backend, "pps_asked": pps or "topspeed", "pps_sent": float(actual.group(1)),
        "sent": sent, "kernel_dropped": dropped, "read": read, "in_flows": in_flows,
        "flow_packets": flows_pkts, "replay_s": round(replay_s, 2), "lossless": ok,
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", default="/tmp/portlabel-bench-1m.pcap")
    ap.add_argument("--backends", default="native,scapy,pyshark")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if not os.path.exists(args.capture):
        here = os.path.dirname(os.path.abspath(__file__))
        sh(sys.executable, os.path.join(here, "gen_capture.py"), args.capture)
    pair = make_pair(str(os.getpid() % 100000))
    best: dict[str, float] = {}
    try:
        for backend in args.backends.split(","):
            limit, steps = PLAN[backend]
            for pps in steps:
                r = one_run(pair, args.capture, backend, limit, pps)
                print(json.dumps(r), flush=True)
                if not r["lossless"]:
                    break
                best[backend] = max(best.get(backend, 0.0), r["pps_sent"])
    finally:
        for ns in (pair[0], pair[2]):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for backend in args.backends.split(","):
        print(f"{backend:8s} highest lossless rate: {best.get(backend, 0):,.0f} packets/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
