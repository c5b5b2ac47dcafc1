"""Benchmark ``portlabel enrich`` against a plain ``csv``-module round trip.

Builds a conn.log of N lines (default 5 M) as Zeek TSV and as JSON lines (generated with
numpy, not line by line), then for each: enriches it in a subprocess (three times; the
median lines/s and the peak RSS from the child's ``ru_maxrss``), and measures the
baseline -- ``csv.reader`` with a tab delimiter, append the iana.* values from a
per-(proto, port) dict of ``lookup_one`` results, ``csv.writer`` -- in the same run.

    python benchmarks/enrich.py [--lines 5000000] [--dir /tmp/portlabel-bench]
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

import numpy as np

FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration "
    "orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history "
    "orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents"
).split()
TYPES = (
    "time string addr port addr port enum string interval count count string bool "
    "bool count string count count count count set[string]"
).split()


def _column(values: np.ndarray) -> np.ndarray:
    return np.char.encode(values.astype(str), "ascii") if values.dtype.kind != "S" else values


def generate(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Column arrays (bytes) of a plausible conn.log."""
    ts = 1.6e9 + np.sort(rng.random(n)) * 86400
    common = np.array([80, 443, 53, 22, 25, 123, 3389, 8080, 5353, 137])
    resp_p = np.where(rng.random(n) < 0.8, rng.choice(common, n), rng.integers(0, 65536, n))
    proto = np.where(rng.random(n) < 0.7, b"tcp", np.where(rng.random(n) < 0.9, b"udp", b"icmp"))
    return {
        "ts": np.char.mod("%.6f", ts).astype("S"),
        "uid": np.char.add(b"C", np.char.mod("%017x", rng.integers(0, 2**62, n)).astype("S")),
        "id.orig_h": np.char.mod("10.0.%d", rng.integers(0, 255, n)).astype("S"),
        "id.orig_p": _column(rng.integers(1024, 65536, n)),
        "id.resp_h": np.char.mod("192.168.1.%d", rng.integers(0, 255, n)).astype("S"),
        "id.resp_p": _column(resp_p),
        "proto": proto,
        "service": np.where(resp_p == 80, b"http", b"-"),
        "duration": np.char.mod("%.6f", rng.random(n)).astype("S"),
        "orig_bytes": _column(rng.integers(0, 10**6, n)),
        "resp_bytes": _column(rng.integers(0, 10**6, n)),
        "conn_state": np.full(n, b"SF"),
        "local_orig": np.full(n, b"T"),
        "local_resp": np.full(n, b"F"),
        "missed_bytes": np.full(n, b"0"),
        "history": np.full(n, b"ShADadFf"),
        "orig_pkts": _column(rng.integers(1, 100, n)),
        "orig_ip_bytes": _column(rng.integers(40, 10**6, n)),
        "resp_pkts": _column(rng.integers(1, 100, n)),
        "resp_ip_bytes": _column(rng.integers(40, 10**6, n)),
        "tunnel_parents": np.full(n, b"(empty)"),
    }


def _join(cols: list[np.ndarray], sep: bytes) -> np.ndarray:
    out = cols[0]
    for col in cols[1:]:
        out = np.char.add(np.char.add(out, sep), col)
    return out


def write_tsv(path: str, cols: dict, chunk: int = 500_000) -> None:
    n = len(cols["ts"])
    header = (
        b"#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        b"#path\tconn\n#open\t2024-01-01-00-00-00\n#fields\t"
        + "\t".join(FIELDS).encode()
        + b"\n#types\t"
        + "\t".join(TYPES).encode()
        + b"\n"
    )
    with open(path, "wb") as fh:
        fh.write(header)
        for a in range(0, n, chunk):
            lines = _join([cols[f][a : a + chunk] for f in FIELDS], b"\t")
            fh.write(b"\n".join(lines.tolist()) + b"\n")
        fh.write(b"#close\t2024-01-02-00-00-00\n")


def write_json(path: str, cols: dict, chunk: int = 500_000) -> None:
    n = len(cols["ts"])
    quoted = {"uid", "id.orig_h", "id.resp_h", "proto", "service", "conn_state", "history"}
    with open(path, "wb") as fh:
        for a in range(0, n, chunk):
            parts = []
            for i, f in enumerate(FIELDS):
                if f in ("local_orig", "local_resp", "tunnel_parents"):
                    continue
                v = cols[f][a : a + chunk]
                if f in quoted:
                    v = np.char.add(np.char.add(b'"', v), b'"')
                key = (b"{" if i == 0 else b",") + json.dumps(f).encode() + b":"
                parts.append(np.char.add(key, v))
            lines = np.char.add(_join(parts, b""), b"}")
            fh.write(b"\n".join(lines.tolist()) + b"\n")


_CHILD = r"""
import sys, time
from portlabel.enrich import enrich_log
t = time.perf_counter()
stats = enrich_log(sys.argv[1], sys.argv[2])
dt = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent process.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(stats.lines, dt, hwm)
"""


def run_enrich(src: str, dst: str) -> tuple[float, float]:
    """(lines/s, peak RSS MiB) of one enrich in a fresh interpreter (its VmHWM)."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, src, dst], check=True, capture_output=True, text=True
    ).stdout.split()
    lines, seconds, rss_kib = int(out[0]), float(out[1]), int(out[2])
    return lines / seconds, rss_kib / 1024


def csv_baseline(src: str, dst: str) -> float:
    """lines/s of a csv-module read / append / write of the same TSV log."""
    import csv

    from portlabel.labels import IANA_COLUMNS
    from portlabel.registry import default_registry

    reg = default_registry()
    cache: dict = {}
    port_i, proto_i = FIELDS.index("id.resp_p"), FIELDS.index("proto")
    t = time.perf_counter()
    n = 0
    with open(src, newline="") as fi, open(dst, "w", newline="") as fo:
        reader = csv.reader(fi, delimiter="\t", quoting=csv.QUOTE_NONE)
        writer = csv.writer(
            fo, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n"
        )
        for row in reader:
            n += 1
            if row and row[0].startswith("#"):
                writer.writerow(row + list(IANA_COLUMNS) if row[0] == "#fields" else row)
                continue
            key = (row[proto_i], row[port_i])
            extra = cache.get(key)
            if extra is None:
                try:
                    d = reg.lookup_one(key[0], int(key[1]))
                    extra = [
                        d["service"] or "-",
                        str(d["port"]),
                        d["transport"],
                        d["description"] or "-",
                        d["status"],
                        d["port_class"] or "-",
                        ",".join(d["aliases"]) or "(empty)",
                        d["source"] or "-",
                    ]
                except ValueError:
                    extra = ["-"] * len(IANA_COLUMNS)
                cache[key] = extra
            writer.writerow(row + extra)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=5_000_000)
    ap.add_argument("--dir", default="/tmp/portlabel-bench")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    tsv, js = os.path.join(args.dir, "conn.log"), os.path.join(args.dir, "conn.json.log")
    t = time.perf_counter()
    cols = generate(args.lines, np.random.default_rng(7))
    write_tsv(tsv, cols)
    write_json(js, cols)
    del cols
    print(
        f"generated {args.lines:,} lines in {time.perf_counter() - t:.1f} s "
        f"(TSV {os.path.getsize(tsv) / 2**20:.0f} MiB, JSON {os.path.getsize(js) / 2**20:.0f} MiB)"
    )
    for label, src in (("TSV", tsv), ("JSON", js)):
        runs = [run_enrich(src, src + ".enriched") for _ in range(args.repeat)]
        rate = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        print(
            f"enrich {label}: {rate:,.0f} lines/s (median of {args.repeat}), peak RSS {rss:.0f} MiB"
        )
        if label == "TSV":
            base = csv_baseline(src, src + ".csv")
            print(f"csv-module baseline TSV: {base:,.0f} lines/s; ratio {rate / base:.1f}x")
        os.unlink(src + ".enriched")
    os.unlink(tsv + ".csv")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"benchmark process (generator, csv baseline) peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
