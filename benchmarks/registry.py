"""Registry benchmark: artifact load time, ns per lookup, whole-process CLI time.

Prints medians. Peers measured in the same run: a Python dict keyed by (proto, port)
built from the same registry, and the C library's ``socket.getservbyport`` (on a slice,
scaled per call). Run: ``python benchmarks/registry.py [--lookups 10000000]``.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time

import numpy as np


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from portlabel.registry.bundled import BUNDLED_ARTIFACT
    from portlabel.registry.compiled import open_artifact

    load = median_time(lambda: open_artifact(BUNDLED_ARTIFACT), args.repeat * 5)
    registry = open_artifact(BUNDLED_ARTIFACT)
    first = median_time(
        lambda: open_artifact(BUNDLED_ARTIFACT).lookup_one("tcp", 443),
        args.repeat,
    )

    n = args.lookups
    rng = np.random.default_rng(42)
    protos = rng.choice(np.array([6, 17, 132, 33], dtype=np.uint8), n, p=[0.6, 0.38, 0.01, 0.01])
    ports = rng.integers(0, 65536, n).astype(np.uint16)
    numpy_s = median_time(lambda: registry.lookup(protos, ports), args.repeat)

    names = registry.text("name")
    table = {
        (proto, port): names[registry.lookup([proto], [port])[0]]
        for proto in (6, 17, 132, 33)
        for port in range(65536)
    }
    m = min(n, 1_000_000)
    pairs = list(zip(protos[:m].tolist(), ports[:m].tolist(), strict=True))
    dict_s = median_time(lambda: [table[p] for p in pairs], 3) * (n / m)

    k = 20_000
    proto_names = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp"}
    sample = [(proto_names[int(a)], int(b)) for a, b in zip(protos[:k], ports[:k], strict=True)]

    def getservbyport() -> None:
        for proto, port in sample:
            try:
                socket.getservbyport(port, proto)
            except OSError:
                pass

    serv_s = median_time(getservbyport, 3) * (n / k)

    cli = median_time(
        lambda: subprocess.run(
            [sys.executable, "-m", "portlabel", "registry", "lookup", "443/tcp", "--json"],
            check=True,
            capture_output=True,
        ),
        args.repeat,
    )
    baseline = median_time(
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat
    )

    per = {
        name: s / n * 1e9
        for name, s in (("numpy", numpy_s), ("dict", dict_s), ("getservbyport", serv_s))
    }
    print(f"artifact load (map + header):  {load * 1e3:8.3f} ms median")
    print(f"load + first scalar lookup:    {first * 1e3:8.3f} ms median")
    print(f"{n:,} lookups (median of {args.repeat}):")
    print(f"  portlabel numpy lookup       {per['numpy']:8.2f} ns/lookup")
    print(
        f"  Python dict                  {per['dict']:8.2f} ns/lookup  "
        f"({per['dict'] / per['numpy']:.1f}x slower)"
    )
    print(
        f"  socket.getservbyport         {per['getservbyport']:8.2f} ns/lookup  "
        f"({per['getservbyport'] / per['numpy']:.0f}x slower, {k:,}-call slice scaled)"
    )
    print(
        f"portlabel registry lookup 443/tcp, whole process: {cli * 1e3:.0f} ms median "
        f"(bare python -c pass: {baseline * 1e3:.0f} ms)"
    )


if __name__ == "__main__":
    main()
