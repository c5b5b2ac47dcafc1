"""Scale-out figures: ``label --jobs``, a Dask LocalCluster, and memory under a flood.

    python benchmarks/scale.py [--workdir /tmp/scale] [--runs 3] [--flood 2000000]

Prepares (once, under ``--workdir``): a 2 M packet capture from ``gen_capture.py`` cut
into 8 rotated files of 250 k packets by Wireshark's editcap, and flood captures in
which every packet opens a new flow (``--flood`` packets, and twice that). Then, each
as its own child process, ``--runs`` times, median wall time and the child's peak RSS
(``os.wait4``):

- ``portlabel label FILES -o out.parquet`` with ``-j 1`` (in this process: three
  threads), ``-j 1`` pinned to one CPU (``taskset -c 0``: one core's worth), ``-j 2``;
- the same files through ``portlabel.dask.label_files`` on a ``LocalCluster`` of two
  single-threaded worker processes (cluster start-up not counted; run in this process);
- the flood captures with ``--max-flows 1000000``.

Every parallel result is compared with the ``-j 1`` output, flow for flow (uids with
``--uid-seed``). Ratios are to ``-j 1``, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from runner import compile_bytecode, portlabel_script, warm  # noqa: E402


def child(cmd: list[str], inputs) -> tuple[float, int]:
    """Run ``cmd`` on warm ``inputs`` (``runner``); (wall seconds, peak RSS bytes)."""
    warm(inputs)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return took, usage.ru_maxrss * 1024


def prepare(workdir: Path, flood: int) -> tuple[list[str], list[Path]]:
    workdir.mkdir(parents=True, exist_ok=True)
    whole = workdir / "two_million.pcap"
    if not whole.exists():
        subprocess.run([sys.executable, HERE / "gen_capture.py", whole, "--packets", "2000000"],
                       check=True)  # fmt: skip
    parts = sorted(str(p) for p in workdir.glob("part_*.pcap"))
    if len(parts) != 8:
        for p in parts:
            os.unlink(p)
        subprocess.run(["editcap", "-F", "pcap", "-c", "250000", whole, workdir / "part.pcap"],
                       check=True)  # fmt: skip
        parts = sorted(str(p) for p in workdir.glob("part_*.pcap"))
    floods = []
    for n in (flood, 2 * flood):
        path = workdir / f"flood_{n}.pcap"
        if not path.exists():  # in a child: this process stays small, and so does the
            # peak RSS its children inherit until they exec (os.wait4 counts it)
            code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import scale; "
            code += f"scale.write_flood(scale.Path({str(path)!r}), {n})"
            subprocess.run([sys.executable, "-c", code], check=True)
        floods.append(path)
    return parts, floods


def write_flood(path: Path, n: int) -> None:
    """``n`` UDP packets, each from its own address and port: each a new flow (a
    spoofed-source flood), one microsecond apart."""
    import numpy as np

    frame = 14 + 20 + 8 + 18  # Ethernet, IPv4, UDP, 18 bytes of payload: 60 bytes
    rec = np.zeros((n, 16 + frame), dtype=np.uint8)
    ts = 1_700_000_000_000_000 + np.arange(n, dtype=np.int64)  # microseconds
    head = np.zeros((n, 4), dtype="<u4")
    head[:, 0], head[:, 1] = ts // 10**6, ts % 10**6
    head[:, 2] = head[:, 3] = frame
    rec[:, :16] = head.view(np.uint8).reshape(n, 16)
    f = rec[:, 16:]
    f[:, 12:14] = (8, 0)  # IPv4
    ip = f[:, 14:34]
    ip[:, 0], ip[:, 3], ip[:, 8], ip[:, 9] = 0x45, 20 + 8 + 18, 64, 17
    i = np.arange(n, dtype=np.uint32)
    ip[:, 12] = 10
    ip[:, 13], ip[:, 14], ip[:, 15] = (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF
    ip[:, 16:20] = (192, 0, 2, 1)
    words = ip.reshape(n, 10, 2).astype(np.uint32)
    total = (words[:, :, 0] << 8 | words[:, :, 1]).sum(axis=1)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    check = ~total & 0xFFFF
    ip[:, 10], ip[:, 11] = check >> 8, check & 0xFF
    udp = f[:, 34:42]
    sport = 1024 + (i >> 24) + (i % 60000)
    udp[:, 0], udp[:, 1] = sport >> 8 & 0xFF, sport & 0xFF
    udp[:, 2], udp[:, 3] = 0x1F, 0x90  # port 8080
    udp[:, 5] = 8 + 18
    with open(path, "wb") as out:
        out.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 262144, 1], dtype="<u4")
                  .view(np.uint8)[:24].tobytes())  # fmt: skip
        out.write(rec.tobytes())


def same_flows(a: str, b: str) -> bool:
    import pyarrow.parquet as pq

    x, y = pq.read_table(a), pq.read_table(b)
    return x.sort_by("uid").equals(y.select(x.column_names).sort_by("uid"))


def on_dask(parts: list[str], runs: int, expect: str) -> tuple[float, bool]:
    from distributed import Client, LocalCluster

    import portlabel.dask

    times = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:  # fmt: skip
        client.run(lambda: __import__("portlabel.parallel.part"))  # warm the workers
        for i in range(runs):
            out = Path(expect).with_name(f"dask_{i}")
            shutil.rmtree(out, ignore_errors=True)
            warm(parts)
            started = time.perf_counter()
            portlabel.dask.label_files(parts, client=client, uid_seed=1, output=out)
            times.append(time.perf_counter() - started)
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    got = ds.dataset(out, format="parquet", partitioning="hive").to_table().drop(["hour"])
    want = pq.read_table(expect)
    same = got.select(want.column_names).sort_by("uid").equals(want.sort_by("uid"))
    return statistics.median(times), same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/portlabel-scale"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flood", type=int, default=2_000_000)
    ap.add_argument("--no-dask", action="store_true")
    args = ap.parse_args()
    parts, floods = prepare(args.workdir, args.flood)
    out = args.workdir / "out"
    out.mkdir(exist_ok=True)
    compile_bytecode()
    portlabel = portlabel_script()
    label = [portlabel, "label", "-q", "--uid-seed", "1", *parts]
    runs = {
        "-j 1 (in process, 3 threads)": [*label, "-j", "1", "-o", str(out / "j1.parquet")],
        "-j 1, one CPU (taskset -c 0)": [
            "taskset",
            "-c",
            "0",
            *label,
            "-j",
            "1",
            "-o",
            str(out / "one.parquet"),
        ],  # fmt: skip
        "-j 2 (2 worker processes)": [*label, "-j", "2", "-o", str(out / "j2.parquet")],
    }
    if shutil.which("taskset") is None:
        del runs["-j 1, one CPU (taskset -c 0)"]
    results = {}
    for name, cmd in runs.items():
        got = [child(cmd, parts) for _ in range(args.runs)]
        results[name] = (statistics.median(t for t, _ in got), max(r for _, r in got))
    base = results["-j 1 (in process, 3 threads)"][0]
    print(f"8 rotated files x 250k packets (2 M packets), {os.cpu_count()} CPUs, "
          f"median of {args.runs}")  # fmt: skip
    print(f"{'run':34} {'wall s':>8} {'peak RSS MiB':>12} {'vs -j 1':>8}")
    for name, (t, rss) in results.items():
        print(f"{name:34} {t:8.2f} {rss / 2**20:12.0f} {base / t:7.2f}x")
    print("-j 2 flows identical to -j 1:", same_flows(out / "j1.parquet", out / "j2.parquet"))
    one = results.get("-j 1, one CPU (taskset -c 0)")
    if one:
        print(f"-j 2 vs one CPU: {one[0] / results['-j 2 (2 worker processes)'][0]:.2f}x")

    # one big file: cut into byte ranges by -j 2
    whole = str(args.workdir / "two_million.pcap")
    single = {
        "one 1.5 GB file, -j 1": [portlabel, "label", "-q", "--uid-seed", "1", whole, "-j",
                                  "1", "-o", str(out / "w1.parquet")],
        "one 1.5 GB file, -j 2 (ranges)": [portlabel, "label", "-q", "--uid-seed", "1", whole,
                                           "-j", "2", "-o", str(out / "w2.parquet")],
    }  # fmt: skip
    for name, cmd in single.items():
        got = [child(cmd, [whole]) for _ in range(args.runs)]
        results[name] = (statistics.median(t for t, _ in got), max(r for _, r in got))
        t, rss = results[name]
        ratio = results["one 1.5 GB file, -j 1"][0] / t
        print(f"{name:34} {t:8.2f} {rss / 2**20:12.0f} {ratio:7.2f}x")
    print("ranges flows identical to -j 1:", same_flows(out / "w1.parquet", out / "w2.parquet"))

    # per-worker peak memory, from the workers themselves (in a child: a worker forked
    # from this process would start with this process's memory)
    code = (
        "import sys\n"
        "from portlabel.flows.config import FlowConfig\n"
        "from portlabel.parallel.jobs import ParallelLabelling\n"
        "from portlabel.registry.loading import resolve_registry\n"
        "run = ParallelLabelling(sys.argv[1:], resolve_registry(), FlowConfig(uid_seed=1), 2)\n"
        "for _ in run: pass\n"
        "print(max(p['peak_rss'] for p in run.parts), len(run.stitcher.reread))\n"
    )
    warm(parts)
    got = subprocess.run([sys.executable, "-c", code, *parts], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    print(
        f"peak RSS per worker: {int(got[0]) / 2**20:.0f} MiB; "
        f"merge step re-read {got[1]} of {len(parts)} parts"
    )

    if not args.no_dask:
        t, same = on_dask(parts, args.runs, str(out / "j1.parquet"))
        print(f"{'Dask LocalCluster, 2 workers':34} {t:8.2f} {'':>12} {base / t:7.2f}x "
              f"(identical flows: {same})")  # fmt: skip

    print(f"flood (every packet a new flow), --max-flows 1000000, median of {args.runs}")
    for path in floods:
        cmd = [portlabel, "label", "-q", "--max-flows", "1000000", str(path), "-o",
               str(out / "flood.parquet")]  # fmt: skip
        got = [child(cmd, [path]) for _ in range(args.runs)]
        t = statistics.median(x for x, _ in got)
        rss = max(r for _, r in got)
        print(f"  {path.name:30} {t:8.2f} s {rss / 2**20:8.0f} MiB ({rss / 1e6:.0f} MB) peak RSS")


if __name__ == "__main__":
    main()
