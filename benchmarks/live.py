"""Live capture speed: the highest rate each backend *sustains* with nothing lost.

A veth pair joins two network namespaces made for the run (deleted at the end); ``portlabel
live`` captures on one end while a sender replays the benchmark capture onto the other at
rising rates, then flat out. A rate passes when the kernel dropped nothing, every packet
sent was read, and the flows written hold every packet the flow engine took (packets in
flows + packets not in flows = packets sent). Each rate is run ``--repeat`` times; the
table shows medians, and a rate counts as sustained when the majority of its runs passed.
Slow backends (scapy, pyshark) replay rate x 8 s of the capture at each step.

Proof of a *sustained* rate: the ring is small (``--ring-mb``, default 64) and the replay
long (the capture is looped ``--loops`` times), so that what the ring can hide is a small
part of the run. With ``C`` the ring's capacity in packets and ``T`` the send time, a
lossless run shows the receiver kept up with at least ``(sent - C) / T`` packets/s; that
floor is printed as ``floor_pps``.

The sender (default ``mmsg``) is part of this script: the capture's frames are read once
with portlabel's reader, one ``mmsghdr``/``iovec`` per frame points into those buffers, and
``sendmmsg(2)`` sends them in batches through an AF_PACKET socket with
``PACKET_QDISC_BYPASS``, paced per batch against the wall clock (256 frames per call).
``--sender tcpreplay`` keeps the old sender (topped out near 270 k packets/s here);
netsniff-ng replays a pcap only flat out (no rate control), so it cannot step rates. Run
``python benchmarks/live.py send IFACE CAPTURE --pps 0`` to measure the sender alone. On
veth the receive side's kernel work (the copy into the capture ring) runs in the sender's
softirq, on the sender's CPU.

The receiver's CPU seconds (user + system, from ``os.wait4``) show how much headroom
``portlabel live`` has; ``cpu_us_per_pkt`` is that over the packets it read (start-up
included). The sender is pinned to CPU 0 (where the veth softirq then runs too) and
``portlabel live`` to CPU 1 (``--no-pin`` to let the scheduler place them); each run waits
for a quiet machine first, and ``machine_busy_s`` is all CPU time spent machine-wide while
sending, so a busy neighbour shows. Needs root.
Debian packages: iproute2, util-linux (taskset); tcpreplay for ``--sender tcpreplay``.

    python benchmarks/gen_capture.py /tmp/portlabel-bench-1m.pcap
    python benchmarks/live.py [CAPTURE] [--backends native,scapy] [--repeat 3] [--ring-mb 64]
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time

# backend -> (seconds per step: None = whole capture x --loops; pps steps, 0 = flat out).
# Slow backends replay rate x seconds packets: long against their socket buffer (scapy's
# 64 MiB SO_RCVBUF, capped by net.core.rmem_max: ~6 k packets here).
PLAN = {
    "native": (None, [200_000, 250_000, 300_000, 350_000, 400_000, 450_000, 500_000, 0]),
    "scapy": (8.0, [5_000, 10_000, 15_000, 20_000, 30_000, 40_000]),
    "pyshark": (8.0, [500, 1_000, 2_000, 4_000]),
}
TOTALS = re.compile(
    r"kernel received (?P<recv>[\d,?]+) dropped (?P<drop>[\d,?]+); read (?P<read>[\d,]+) "
    r"packets .*?, (?P<in_flows>[\d,]+) in flows, (?P<left>[\d,]+) not in flows"
)
SOL_PACKET, PACKET_QDISC_BYPASS = 263, 20
HZ = os.sysconf("SC_CLK_TCK")
# flows go to tmpfs: a disk's dirty-page throttling would stall the writer, not the capture
OUT_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
RING_OVERHEAD = 96  # bytes per packet in a TPACKET_V3 block besides the frame (header, align)


def sh(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


# --- the sender ---------------------------------------------------------------------------


def load_frames(path: str, limit: int | None):
    """(kept buffers, mmsghdr array, frame count, bytes) for ``path``'s first ``limit`` frames."""
    import numpy as np

    from portlabel.capture.reader import open_capture

    keep, iovs, nbytes = [], [], 0
    for raw in open_capture(path).batches():
        buf = np.array(raw.buf, copy=True)  # the reader may unmap its window later
        n = len(raw) if limit is None else min(len(raw), limit - sum(len(v) for v in iovs))
        iov = np.empty((n, 2), np.uint64)  # struct iovec {void *base; size_t len}
        iov[:, 0] = buf.ctypes.data + raw.offset[:n].astype(np.uint64)
        iov[:, 1] = raw.caplen[:n]
        keep.append(buf)
        iovs.append(iov)
        nbytes += int(raw.caplen[:n].sum())
        if limit is not None and sum(len(v) for v in iovs) >= limit:
            break
    iov = np.concatenate(iovs)
    msgs = np.zeros((len(iov), 8), np.uint64)  # struct mmsghdr: msghdr (56 bytes) + msg_len
    msgs[:, 2] = iov.ctypes.data + np.arange(len(iov), dtype=np.uint64) * 16  # msg_iov
    msgs[:, 3] = 1  # msg_iovlen
    keep.append(iov)
    return keep, msgs, len(iov), nbytes


def send_main(argv: list[str]) -> int:
    """``send IFACE CAPTURE``: replay through sendmmsg; one JSON line of what was sent."""
    ap = argparse.ArgumentParser(prog="live.py send")
    ap.add_argument("iface")
    ap.add_argument("capture")
    ap.add_argument("--pps", type=float, default=0, help="0: as fast as possible")
    ap.add_argument("--loops", type=int, default=1)
    ap.add_argument("--limit", type=int, help="only the first N frames of the capture")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args(argv)
    keep, msgs, n, nbytes = load_frames(args.capture, args.limit)
    libc = ctypes.CDLL(None, use_errno=True)
    sendmmsg = libc.sendmmsg
    sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
    sock.bind((args.iface, 0))
    fd, base, total = sock.fileno(), msgs.ctypes.data, n * args.loops
    sent = retries = 0
    cpu0 = time.process_time()
    t0 = time.monotonic()
    while sent < total:
        if args.pps:
            ahead = t0 + sent / args.pps - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        i = sent % n
        k = min(args.batch, n - i, total - sent)
        got = sendmmsg(fd, base + i * 64, k, 0)
        if got < 0:
            if ctypes.get_errno() not in (errno.ENOBUFS, errno.EAGAIN, errno.EINTR):
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            retries += 1
            time.sleep(0.0001)
            continue
        sent += got
    seconds = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    del keep
    out = {"sent": sent, "seconds": round(seconds, 3), "pps": round(sent / seconds),
           "bytes": nbytes * args.loops, "cpu_s": round(cpu, 2), "retries": retries}  # fmt: skip
    print(json.dumps(out), flush=True)
    return 0


# --- the runs -----------------------------------------------------------------------------


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


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def wait_quiet(limit_s: float, idle_needed: float = 0.9) -> float:
    """Wait (up to ``limit_s``) until the machine is ``idle_needed`` idle over 1 s; the idle
    share last seen (other sessions share this machine)."""
    deadline = time.monotonic() + limit_s
    while True:
        b0, t0 = cpu_jiffies()
        time.sleep(1.0)
        b1, t1 = cpu_jiffies()
        idle = 1 - (b1 - b0) / max(t1 - t0, 1)
        if idle >= idle_needed or time.monotonic() >= deadline:
            return idle


def _int(text: str) -> int | None:
    return None if "?" in text else int(text.replace(",", ""))


def replay(args, pair, limit: int | None, loops: int, pps: int) -> dict:
    """Send with the chosen sender; {sent, seconds, pps, cpu_s}."""
    _, _, rep_ns, rep_if = pair
    if args.sender == "tcpreplay":
        rate = ["--topspeed"] if pps == 0 else ["--pps", str(pps)]
        lim = ["--limit", str(limit)] if limit else []
        started = time.monotonic()
        rep = sh("ip", "netns", "exec", rep_ns, "tcpreplay", "-q", "-K", "-i", rep_if, *rate,
                 *lim, f"--loop={loops}", args.capture)  # fmt: skip
        seconds = time.monotonic() - started
        sent = int(re.search(r"Successful packets:\s+(\d+)", rep.stdout).group(1))
        rated = float(re.search(r"Rated: .*?([\d.]+) pps", rep.stdout).group(1))
        return {"sent": sent, "seconds": round(seconds, 3), "pps": round(rated), "cpu_s": None}
    lim = ["--limit", str(limit)] if limit else []
    pin = ["taskset", "-c", "0"] if args.pin else []
    rep = sh("ip", "netns", "exec", rep_ns, *pin, sys.executable, os.path.abspath(__file__),
             "send", rep_if, args.capture, "--pps", str(pps), "--loops", str(loops),
             *lim)  # fmt: skip
    return json.loads(rep.stdout.strip().splitlines()[-1])


def one_run(args, pair, backend: str, limit: int | None, pps: int) -> dict:
    cap_ns, cap_if, _, _ = pair
    loops = args.loops if limit is None else 1
    out_path = f"{OUT_DIR}/portlabel-live-bench-{os.getpid()}.jsonl"
    idle = wait_quiet(args.wait_quiet)
    pin = ["taskset", "-c", "1"] if args.pin else []
    live = subprocess.Popen(
        ["ip", "netns", "exec", cap_ns, *pin, sys.executable, "-m", "portlabel", "live",
         "-i", cap_if, "--backend", backend, "-o", out_path, "--stats-interval", "0",
         "--ring-mb", str(args.ring_mb)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while "capturing on" not in (live.stderr.readline() or "capturing on"):
        pass
    busy0, _ = cpu_jiffies()
    sent = replay(args, pair, limit, loops, pps)
    busy1, _ = cpu_jiffies()
    time.sleep(1.0)
    live.send_signal(signal.SIGINT)
    err = live.stderr.read()
    _, status, usage = os.wait4(live.pid, 0)  # `ip netns exec` execs: this is portlabel itself
    live.returncode = os.waitstatus_to_exitcode(status)
    m = TOTALS.search(err)
    if m is None:
        raise RuntimeError(f"portlabel live failed (exit {live.returncode}):\n{err}")
    flows_pkts = 0
    with open(out_path) as f:
        for line in f:
            row = json.loads(line)
            flows_pkts += row["orig_pkts"] + row["resp_pkts"]
    os.unlink(out_path)
    read, in_flows, dropped = _int(m["read"]), _int(m["in_flows"]), _int(m["drop"])
    ok = dropped in (0, None) and read == sent["sent"] and flows_pkts == in_flows
    ok = ok and in_flows + _int(m["left"]) == sent["sent"]
    cpu = usage.ru_utime + usage.ru_stime
    capacity = args.ring_mb * 2**20 // (sent["bytes"] / sent["sent"] + RING_OVERHEAD)
    floor = max(0, sent["sent"] - capacity) / sent["seconds"] if backend == "native" else None
    return {
        "backend": backend, "pps_asked": pps or "max", "pps_sent": sent["pps"],
        "sent": sent["sent"], "send_s": sent["seconds"], "kernel_received": _int(m["recv"]),
        "kernel_dropped": dropped, "read": read, "in_flows": in_flows, "flow_packets": flows_pkts,
        "lossless": ok, "floor_pps": None if floor is None else round(floor),
        "recv_cpu_s": round(cpu, 2), "cpu_us_per_pkt": round(cpu * 1e6 / max(read, 1), 2),
        "sender_cpu_s": sent.get("cpu_s"), "machine_busy_s": round((busy1 - busy0) / HZ, 2),
        "idle_before": round(idle, 2),
    }  # fmt: skip


def median_row(runs: list[dict]) -> dict:
    row = dict(runs[0])
    for key in ("pps_sent", "sent", "send_s", "kernel_received", "kernel_dropped", "read",
                "in_flows", "flow_packets", "floor_pps", "recv_cpu_s", "cpu_us_per_pkt",
                "sender_cpu_s", "machine_busy_s", "idle_before"):  # fmt: skip
        values = [r[key] for r in runs if r[key] is not None]
        row[key] = statistics.median(values) if values else None
    passed = sum(r["lossless"] for r in runs)
    row["lossless"] = f"{passed}/{len(runs)}"
    row["sustained"] = passed * 2 > len(runs)
    return row


def main() -> int:
    if sys.argv[1:2] == ["send"]:
        return send_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", default="/tmp/portlabel-bench-1m.pcap")
    ap.add_argument("--backends", default="native,scapy")
    ap.add_argument("--sender", choices=["mmsg", "tcpreplay"], default="mmsg")
    ap.add_argument("--ring-mb", type=int, default=64, help="capture ring (default 64 MiB)")
    ap.add_argument("--loops", type=int, default=3, help="native: replay the capture N times")
    ap.add_argument("--repeat", type=int, default=3, help="runs per rate (median shown)")
    ap.add_argument("--pps", help="comma-separated rates for every backend (0 = flat out)")
    ap.add_argument("--keep-going", action="store_true", help="run every rate even after a loss")
    ap.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the sender to CPU 0 and portlabel to CPU 1",
    )
    ap.add_argument("--wait-quiet", type=float, default=60, metavar="S",
                    help="before each run wait up to S s for a 90%% idle machine")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    if not os.path.exists(args.capture):
        here = os.path.dirname(os.path.abspath(__file__))
        sh(sys.executable, os.path.join(here, "gen_capture.py"), args.capture)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# load {load}; ring {args.ring_mb} MiB; native replays the capture x{args.loops}; "
          f"sender {args.sender}; {args.repeat} runs per rate; pinned {args.pin}",
          flush=True)  # fmt: skip
    pair = make_pair(str(os.getpid() % 100000))
    best: dict[str, float] = {}
    try:
        for backend in args.backends.split(","):
            seconds, steps = PLAN[backend]
            if args.pps:
                steps = [int(float(x)) for x in args.pps.split(",")]
            for pps in steps:
                limit = int(pps * seconds) if seconds and pps else None
                runs = []
                for _ in range(args.repeat):
                    runs.append(one_run(args, pair, backend, limit, pps))
                    print("  " + json.dumps(runs[-1]), flush=True)
                row = median_row(runs)
                print(json.dumps(row), flush=True)
                if row["sustained"]:
                    best[backend] = max(best.get(backend, 0.0), row["pps_sent"])
                elif not args.keep_going:
                    break
    finally:
        for ns in (pair[0], pair[2]):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    print("# load at end " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    for backend in args.backends.split(","):
        print(f"{backend:8s} highest sustained lossless rate: {best.get(backend, 0):,.0f} pkt/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
