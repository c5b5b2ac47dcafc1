"""Time reading a capture: portlabel's reader next to dpkt and scapy, in the same run.

    python benchmarks/read.py CAPTURE [--runs N] [--no-peers]

Prints, for each reader, the median wall time of N runs, packets per second and the
ratio to portlabel; then the peak RSS of this process (resource.getrusage). Generate a
capture first with ``python benchmarks/gen_capture.py /tmp/bench.pcap``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

from portlabel.capture.reader import open_capture


def read_portlabel(path: str) -> int:
    """Every record's metadata and bytes are available (arrays + buffer view)."""
    return sum(len(batch) for batch in open_capture(path).batches())


def touch_portlabel(path: str) -> int:
    """As above, plus one numpy pass over each batch's first frame bytes (an ethertype
    gather), to show the cost of actually paging the data in."""
    n = ipv4 = 0
    for batch in open_capture(path).batches():
        ipv4 += int((batch.buf[batch.offset + 12] == 8).sum())
        n += len(batch)
    return n if ipv4 >= 0 else -1


def read_dpkt(path: str) -> int:
    import dpkt

    with open(path, "rb") as f:
        return sum(1 for _ts, _buf in dpkt.pcap.Reader(f))


def read_scapy(path: str) -> int:
    from scapy.utils import RawPcapReader

    with RawPcapReader(path) as r:
        return sum(1 for _ in r)


def measure(fn: Callable[[str], int], path: str, runs: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-peers", action="store_true", help="only time portlabel")
    args = ap.parse_args(argv)
    read_portlabel(args.capture)  # warm the page cache (and numba for a big pcapng)
    readers = {"portlabel": read_portlabel, "portlabel+touch": touch_portlabel}
    if not args.no_peers:
        readers |= {"dpkt pcap.Reader": read_dpkt, "scapy RawPcapReader": read_scapy}
    results = {}
    for name, fn in readers.items():
        runs = args.runs if name.startswith("portlabel") else max(1, min(args.runs, 3))
        results[name] = measure(fn, args.capture, runs)
    base = results["portlabel"][0]
    print(f"{'reader':<22}{'median s':>10}{'packets':>10}{'Mpkt/s':>9}{'x slower':>10}")
    for name, (secs, n) in results.items():
        print(f"{name:<22}{secs:>10.3f}{n:>10}{n / secs / 1e6:>9.2f}{secs / base:>10.1f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
