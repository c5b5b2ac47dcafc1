"""Time ``portlabel label CAPTURE -o out.parquet`` as a whole process, next to peers.

    python benchmarks/gen_capture.py /tmp/big.pcap          # ~1 M packets, once
    python benchmarks/label.py /tmp/big.pcap [--runs 3] [--no-peers] [--no-formats]
        [--scapy-slice N]

Every tool runs as its own child process, ``--runs`` times; the script prints the median
wall time, the peak RSS of the child (``os.wait4``'s rusage, per process) and the ratio to
portlabel's Parquet run, all from the same run. The other outputs are timed too (JSON
lines, CSV, a Zeek conn.log, and ``portlabel packets -o`` writing a commented pcapng),
each with its cost over Parquet. Peers: NFStream (flows, no dissection, no statistics;
skipped if it is not installed), ``tshark -q -z conv,tcp -z conv,udp`` (conversations),
and a scapy ``PcapReader`` loop grouping packets by 5-tuple, run on the first N packets
and scaled to the whole file (marked "scaled"). Then portlabel's CPU time by stage, the
stages run one after another in this process: start-up imports (child process), read,
decode, flows, render (finished flows to a table), label, write. ``portlabel label``
overlaps these stages in three threads, so its wall time is below their sum. portlabel's
bytecode is compiled first, as a wheel install does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import compile_bytecode, portlabel_script, warm  # noqa: E402

NFSTREAM = """
import sys
from nfstream import NFStreamer
n = sum(1 for _ in NFStreamer(source=sys.argv[1], statistical_analysis=False,
                                n_dissections=0))
print(n, file=sys.stderr)
"""
SCAPY = """
import sys
from scapy.all import IP, IPv6, TCP, UDP, PcapReader
limit = int(sys.argv[2])
flows = {}
with PcapReader(sys.argv[1]) as reader:
    for i, pkt in enumerate(reader):
        if i >= limit:
            break
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        if ip is None:
            continue
        l4 = pkt.getlayer(TCP) or pkt.getlayer(UDP)
        ports = (l4.sport, l4.dport) if l4 is not None else (0, 0)
        a, b = (ip.src, ports[0]), (ip.dst, ports[1])
        key = (min(a, b), max(a, b), ip.proto if ip.version == 4 else ip.nh)
        flows[key] = flows.get(key, 0) + 1
print(len(flows), file=sys.stderr)
"""
IMPORTS = """
import time
t = time.perf_counter()
import portlabel.cli.label_run, portlabel.writers.parquet
print(time.perf_counter() - t)
"""


def child(argv: list[str], inputs=(), outputs=()) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, exit status, CPU seconds) of one child process, its
    ``inputs`` read into the page cache first (``runner``) and its ``outputs`` removed
    (replacing the last run's 700 MB pcapng costs the file system 0.1 s of freeing it,
    a cost of overwriting, not of writing)."""
    warm(inputs)
    for path in outputs:
        if os.path.exists(path):
            os.unlink(path)
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.returncode:
        print(f"  ! {argv[0]} exited {proc.returncode}: {err[-300:]}")
    return wall, usage.ru_maxrss / 1024, proc.returncode, usage.ru_utime + usage.ru_stime


def measure(argv: list[str], runs: int, inputs=(), outputs=()) -> tuple[float, float, float] | None:
    """(median wall s, peak RSS MiB, median CPU s); CPU time is steadier on a busy host."""
    results = [child(argv, inputs, outputs) for _ in range(runs)]
    if any(r[2] for r in results):
        return None
    return (
        statistics.median(r[0] for r in results),
        max(r[1] for r in results),
        statistics.median(r[3] for r in results),
    )


COUNT = """
import sys
from portlabel.capture.reader import open_capture
print(sum(len(batch) for batch in open_capture(sys.argv[1]).batches()))
"""


def count_packets(path: str) -> int:
    """In a child: a forked child starts with its parent's peak RSS, so this process
    must not map the capture before the measured children run."""
    done = subprocess.run(
        [sys.executable, "-c", COUNT, path], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def stages(path: str, out: str) -> dict[str, float]:
    """CPU seconds per stage, the stages run one after another in this process (imports
    measured in a child). ``portlabel label`` overlaps them in three threads (read and
    decode / flows / render, label and write), so its wall time is below their sum."""
    import pyarrow  # noqa: F401  (imported by every stage; not part of any)

    from portlabel.capture.decode import decode
    from portlabel.capture.reader import open_capture
    from portlabel.flows import FlowConfig, FlowTable
    from portlabel.labelling.flows import label_flows, labelled_schema
    from portlabel.registry import default_registry
    from portlabel.writers.parquet import ParquetWriter

    def timed(name, fn, *args):
        t = time.process_time()
        result = fn(*args)
        spent[name] += time.process_time() - t
        return result

    spent = dict.fromkeys(("read", "decode", "flows", "render", "label", "write"), 0.0)
    registry = default_registry()
    table = FlowTable(FlowConfig())
    with open(out, "wb") as fh:
        writer = ParquetWriter(fh, labelled_schema())
        batches = iter(open_capture(path).batches())
        while True:
            raw = timed("read", next, batches, None)
            if raw is None:
                done = timed("flows", table.drain)
            else:
                done = timed("flows", table.fold, timed("decode", decode, raw))
            if done is not None:
                flows = timed("render", done.table)
                timed("write", writer.write, timed("label", label_flows, registry, flows))
            if raw is None:
                break
        timed("write", writer.close)
    imports = subprocess.run(
        [sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True
    )
    return {"imports (child)": float(imports.stdout), **spent}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--scapy-slice", type=int, default=20_000, metavar="N")
    ap.add_argument("--no-formats", action="store_true", help="only Parquet output")
    args = ap.parse_args()
    if not os.path.exists(args.capture):
        sys.exit(f"{args.capture}: missing; run python benchmarks/gen_capture.py {args.capture}")
    packets = count_packets(args.capture)
    size = os.path.getsize(args.capture)
    print(f"{args.capture}: {packets:,} packets, {size / 2**20:,.0f} MiB; {args.runs} runs each")
    compile_bytecode()
    tmp = tempfile.mkdtemp(prefix="portlabel-bench-")
    out = os.path.join(tmp, "out.parquet")
    portlabel = portlabel_script()
    rows: list[tuple[str, float, float, float, str]] = []
    got = measure([portlabel, "label", args.capture, "-o", out, "-q"], args.runs, [args.capture],
                  [out])  # fmt: skip
    if got is None:
        sys.exit("portlabel failed")
    rows.append(("portlabel label -o out.parquet", *got, ""))
    if not args.no_formats:
        formats = [
            (
                f"portlabel label -o out.{ext}",
                ["label", args.capture, "-o", os.path.join(tmp, f"out.{ext}"), "-q"],
            )
            for ext in ("jsonl", "csv", "log")
        ]
        formats.append(("portlabel packets -o out.pcapng", ["packets", args.capture, "-o",
                        os.path.join(tmp, "out.pcapng"), "-q"]))  # fmt: skip
        for name, argv in formats:
            got = measure([portlabel, *argv], args.runs, [args.capture], [argv[-2]])
            if got:
                rows.append((name, *got, f"{got[0] / rows[0][1] - 1:+.1%} over Parquet"))
    if not args.no_peers:
        rows += peers(args, packets)
    base = rows[0][1]
    print(f"\n{'tool':40} {'median s':>9} {'CPU s':>7} {'peak RSS MiB':>13} {'x Parquet':>12}")
    for name, wall, rss, cpu, note in rows:
        print(f"{name:40} {wall:9.2f} {cpu:7.2f} {rss:13.0f} {wall / base:12.2f}  {note}")
    print("\nportlabel's CPU by stage (the stages in sequence in this process, one run):")
    spent = stages(args.capture, out)
    for stage, seconds in spent.items():
        print(f"  {stage:16} {seconds:6.2f} s")
    print(f"  {'sum':16} {sum(spent.values()):6.2f} s")
    shutil.rmtree(tmp, ignore_errors=True)


def peers(args, packets: int) -> list[tuple[str, float, float, float, str]]:
    rows = []
    try:
        import nfstream  # noqa: F401
    except ImportError:
        print("NFStream: not installed here (pip install nfstream); skipped")
    else:
        got = measure([sys.executable, "-c", NFSTREAM, args.capture], args.runs, [args.capture])
        if got:
            rows.append(("NFStream (no dissection, no statistics)", *got, ""))
    tshark = shutil.which("tshark")
    if tshark is None:
        print("tshark: not installed; skipped")
    else:
        argv = [tshark, "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r", args.capture]
        got = measure(argv, args.runs, [args.capture])
        if got:
            rows.append(("tshark -q -z conv,tcp -z conv,udp", *got, ""))
    n = min(args.scapy_slice, packets)
    got = measure([sys.executable, "-c", SCAPY, args.capture, str(n)], args.runs, [args.capture])
    if got:
        wall, rss, cpu = got
        scale = packets / n
        rows.append(("scapy PcapReader 5-tuple loop", wall * scale, rss, cpu * scale,
                     f"scaled from {n:,} packets ({wall:.2f} s)"))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
