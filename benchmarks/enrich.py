"""Benchmark ``portlabel enrich`` against a plain ``csv``-module round trip.

Builds a conn.log of N lines (default 5 M) as Zeek TSV and as JSON lines (generated
column-wise with numpy and pyarrow's compute kernels, ~10 s for 5 M lines, and kept in
``--dir`` for later runs), then for each: enriches it in a subprocess (three times; the
median lines/s of CPU time and of wall time, and the peak RSS from the child's VmHWM),
then the same with ``-o /dev/null`` (the enricher's own rate, no disk write),
and measures the baseline -- ``csv.reader`` with a tab delimiter, append the iana.*
values from a per-(proto, port) dict of ``lookup_one`` results, ``csv.writer`` -- in the
same run. The machine is shared: the load average is printed with each result. Rates are
records per second of the whole child process, imports included; ``--via cli`` (the
default) runs ``portlabel enrich`` itself, ``--via api`` calls ``enrich_log``.

    python benchmarks/enrich.py [--lines 5000000] [--dir /tmp/portlabel-bench]
        [--block-size MiB] [--formats tsv,json] [--no-baseline] [--via cli|api]
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import warm  # noqa: E402

FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration "
    "orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history "
    "orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents"
).split()
TYPES = (
    "time string addr port addr port enum string interval count count string bool "
    "bool count string count count count count set[string]"
).split()


GENERATOR_VERSION = 2  # bump when the generated data changes, to invalidate the cache
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _text(values: np.ndarray):
    """Decimal text of integers, formatted in C++ by pyarrow."""
    import pyarrow as pa

    return pa.array(values).cast(pa.string())


def _fixed(matrix: np.ndarray):
    """A string array whose rows are the rows of a uint8 matrix (ASCII, fixed width)."""
    import pyarrow as pa

    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(matrix.tobytes())]
    )


def _prefixed(prefix: str, values: np.ndarray):
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(prefix, _text(values), "")


def _decimal6(values: np.ndarray):
    """``%.6f`` of non-negative floats, from integer micro-units."""
    import pyarrow.compute as pc

    micros = np.round(values * 1e6).astype(np.int64)
    frac = pc.utf8_lpad(_text(micros % 1_000_000), 6, "0")
    return pc.binary_join_element_wise(_text(micros // 1_000_000), frac, ".")


def _const(n: int, text: str):
    import pyarrow as pa

    return pa.repeat(pa.scalar(text), n)


def _choose(mask: np.ndarray, yes: str, no) -> object:
    import pyarrow as pa
    import pyarrow.compute as pc

    other = no if not isinstance(no, str) else pa.scalar(no)
    return pc.if_else(pa.array(mask), pa.scalar(yes), other)


def generate(n: int, rng: np.random.Generator) -> dict:
    """Columns (pyarrow string arrays) of a plausible conn.log."""
    ts = 1.6e9 + np.sort(rng.random(n)) * 86400
    common = np.array([80, 443, 53, 22, 25, 123, 3389, 8080, 5353, 137])
    resp_p = np.where(rng.random(n) < 0.8, rng.choice(common, n), rng.integers(0, 65536, n))
    is_tcp, is_udp = rng.random(n) < 0.7, rng.random(n) < 0.9
    uid = np.full((n, 18), ord("C"), dtype=np.uint8)
    uid[:, 1:] = _HEX[rng.integers(0, 16, (n, 17), dtype=np.uint8)]
    return {
        "ts": _decimal6(ts),
        "uid": _fixed(uid),
        "id.orig_h": _prefixed("10.0.", rng.integers(0, 255, n)),
        "id.orig_p": _text(rng.integers(1024, 65536, n)),
        "id.resp_h": _prefixed("192.168.1.", rng.integers(0, 255, n)),
        "id.resp_p": _text(resp_p),
        "proto": _choose(is_tcp, "tcp", _choose(is_udp, "udp", "icmp")),
        "service": _choose(resp_p == 80, "http", "-"),
        "duration": _decimal6(rng.random(n)),
        "orig_bytes": _text(rng.integers(0, 10**6, n)),
        "resp_bytes": _text(rng.integers(0, 10**6, n)),
        "conn_state": _const(n, "SF"),
        "local_orig": _const(n, "T"),
        "local_resp": _const(n, "F"),
        "missed_bytes": _const(n, "0"),
        "history": _const(n, "ShADadFf"),
        "orig_pkts": _text(rng.integers(1, 100, n)),
        "orig_ip_bytes": _text(rng.integers(40, 10**6, n)),
        "resp_pkts": _text(rng.integers(1, 100, n)),
        "resp_ip_bytes": _text(rng.integers(40, 10**6, n)),
        "tunnel_parents": _const(n, "(empty)"),
    }


def _write_lines(fh, parts: list, sep: str) -> None:
    """Write ``sep.join(parts) + "\\n"`` for every row, from one pyarrow buffer."""
    import pyarrow.compute as pc

    lines = pc.binary_join_element_wise(pc.binary_join_element_wise(*parts, sep), "", "\n")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    fh.write(memoryview(lines.buffers()[2])[first:last])


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
            _write_lines(fh, [cols[f][a : a + chunk] for f in FIELDS], "\t")
        fh.write(b"#close\t2024-01-02-00-00-00\n")


def write_json(path: str, cols: dict, chunk: int = 500_000) -> None:
    import pyarrow.compute as pc

    n = len(cols["ts"])
    quoted = {"uid", "id.orig_h", "id.resp_h", "proto", "service", "conn_state", "history"}
    with open(path, "wb") as fh:
        for a in range(0, n, chunk):
            parts = []
            for i, f in enumerate(FIELDS):
                if f in ("local_orig", "local_resp", "tunnel_parents"):
                    continue
                key = ("{" if i == 0 else ",") + json.dumps(f) + ":"
                q = '"' if f in quoted else ""
                parts.append(pc.binary_join_element_wise(key + q, cols[f][a : a + chunk], q, ""))
            parts.append(_const(len(parts[0]), "}"))
            _write_lines(fh, parts, "")


def cached_logs(n: int, directory: str) -> tuple[str, str]:
    """The TSV and JSON logs of ``n`` lines, generated once and kept in ``directory``."""
    stem = os.path.join(directory, f"conn-{n}-v{GENERATOR_VERSION}")
    tsv, js = stem + ".log", stem + ".json.log"
    if os.path.exists(tsv) and os.path.exists(js):
        print(f"reusing {tsv} and {js}")
        return tsv, js
    t = time.perf_counter()
    cols = generate(n, np.random.default_rng(7))
    write_tsv(tsv + ".tmp", cols)
    write_json(js + ".tmp", cols)
    os.replace(tsv + ".tmp", tsv)
    os.replace(js + ".tmp", js)
    print(
        f"generated {n:,} lines in {time.perf_counter() - t:.1f} s "
        f"(TSV {os.path.getsize(tsv) / 2**20:.0f} MiB, JSON {os.path.getsize(js) / 2**20:.0f} MiB)"
    )
    return tsv, js


_CHILD = r"""
import sys, time
t, c = time.perf_counter(), time.process_time()
src, dst, block, via = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if via == "cli":  # the command as users run it: imports, pyarrow pool choice, report
    from portlabel.cli import main
    assert main(["enrich", "-q", src, "-o", dst, "--block-size", str(block >> 20)]) == 0
else:
    from portlabel.enrich import enrich_log
    enrich_log(src, dst, block_size=block)
dt, dc = time.perf_counter() - t, time.process_time() - c
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent process.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(dt, dc, hwm)
"""


def run_enrich(
    src: str, dst: str, lines: int, block_size: int, via: str
) -> tuple[float, float, float]:
    """(lines/s of wall time, lines/s of CPU time, peak RSS MiB) of one enrich, run in a
    fresh interpreter (its VmHWM), imports included; ``src`` read into the page cache first."""
    warm([src])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, src, dst, str(block_size), via],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    wall, cpu, rss_kib = float(out[0]), float(out[1]), int(out[2])
    return lines / wall, lines / cpu, rss_kib / 1024


def csv_baseline(src: str, dst: str) -> float:
    """lines/s of a csv-module read / append / write of the same TSV log."""
    import csv

    from portlabel.labelling.iana import IANA_COLUMNS
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
    ap.add_argument("--block-size", type=int, default=0, help="MiB (default: enrich's own)")
    ap.add_argument("--formats", default="tsv,json", help="which logs: tsv,json")
    ap.add_argument("--no-baseline", action="store_true", help="skip the csv-module baseline")
    ap.add_argument(
        "--via",
        choices=("cli", "api"),
        default="cli",
        help="run `portlabel enrich` (default) or call enrich_log",
    )
    args = ap.parse_args()
    from portlabel.enrich.api import BLOCK_SIZE

    block = args.block_size << 20 if args.block_size else BLOCK_SIZE
    os.makedirs(args.dir, exist_ok=True)
    tsv, js = cached_logs(args.lines, args.dir)
    print(
        f"{'portlabel enrich' if args.via == 'cli' else 'enrich_log'}, block size "
        f"{block >> 20} MiB; 2-core machine, load average {_load()} before"
    )
    for label, src in (("TSV", tsv), ("JSON", js)):
        if label.lower() not in args.formats.split(","):
            continue
        runs = [
            run_enrich(src, src + ".enriched", args.lines, block, args.via)
            for _ in range(args.repeat)
        ]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        print(
            f"enrich {label}: {cpu:,.0f} lines/s of CPU time, {wall:,.0f} lines/s wall "
            f"(medians of {args.repeat}), peak RSS {rss:.0f} MiB; load {_load()}"
        )
        # the same with nothing to write to disk: what the enricher does, apart from
        # the output device (a disk slower than the enricher bounds the line above)
        nulls = [run_enrich(src, os.devnull, args.lines, block, args.via)
                 for _ in range(args.repeat)]  # fmt: skip
        print(
            f"enrich {label} to {os.devnull}: {statistics.median(r[1] for r in nulls):,.0f} "
            f"lines/s of CPU time, {statistics.median(r[0] for r in nulls):,.0f} lines/s wall"
        )
        if label == "TSV" and not args.no_baseline:
            base = csv_baseline(src, src + ".csv")
            os.unlink(src + ".csv")
            print(f"csv-module baseline TSV: {base:,.0f} lines/s wall; ratio {wall / base:.1f}x")
        os.unlink(src + ".enriched")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"benchmark process (generator, csv baseline) peak RSS {peak:.0f} MiB")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
