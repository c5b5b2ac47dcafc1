"""portlabel inside scapy and pyshark: the cost of labelling the user's own packets.

    python benchmarks/gen_capture.py /tmp/plug.pcap --packets 100000 --flows 5000
    python benchmarks/plugins.py /tmp/plug.pcap [--runs 5] [--pyshark-packets 5000]

All in one process, the same packets for every contender, medians of ``--runs``:

1. Labelling scapy packets held in memory (``rdpcap`` done beforehand, not timed):
   ``portlabel.label(packets)`` (flows and their IANA labels) against a plain scapy loop
   that looks each packet's TCP/UDP destination port up in a dict (the IANA names, built
   beforehand): the ratio is the figure (issue: at least 10x).
2. Callback overhead in scapy's own loop: ``sniff(offline=FILE, prn=FlowLabeller())``
   against ``sniff(offline=FILE, prn=noop)`` (scapy reading and dissecting each packet):
   what portlabel adds, as a share of what scapy spends delivering the packets.
3. The same for pyshark: ``FileCapture.apply_on_packets(FlowLabeller())`` against
   ``apply_on_packets(noop)`` on the first ``--pyshark-packets`` packets.
"""

from __future__ import annotations

import argparse
import statistics
import time


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pyshark-packets", type=int, default=5000)
    args = ap.parse_args()

    import numpy as np
    from scapy.all import TCP, UDP, rdpcap, sniff

    import portlabel
    from portlabel.registry import default_registry
    from portlabel.scapy import FlowLabeller

    packets = rdpcap(args.capture)
    n = len(packets)
    reg = default_registry()
    names = reg.text("name")
    ports = np.arange(65536)
    dicts = {
        t: {
            p: names[e]
            for p, e in zip(
                ports.tolist(), reg.lookup(np.full(65536, code), ports).tolist(), strict=True
            )
            if e
        }
        for t, code in (("tcp", 6), ("udp", 17))
    }
    tcp_names, udp_names = dicts["tcp"], dicts["udp"]

    def scapy_loop() -> int:
        found = 0
        for pkt in packets:
            if TCP in pkt:
                found += tcp_names.get(pkt[TCP].dport) is not None
            elif UDP in pkt:
                found += udp_names.get(pkt[UDP].dport) is not None
        return found

    def in_memory() -> int:
        return portlabel.label(packets).num_rows

    in_memory()  # the registry's label arrays, built once
    loop_s = median_time(scapy_loop, args.runs)
    ours_s = median_time(in_memory, args.runs)
    print(f"scapy packets in memory: {n:,} packets, median of {args.runs}")
    print(f"  portlabel.label(packets)      {ours_s:8.3f} s  {n / ours_s:12,.0f} packets/s")
    print(f"  scapy loop + dict lookup      {loop_s:8.3f} s  {n / loop_s:12,.0f} packets/s")
    print(f"  ratio: portlabel {loop_s / ours_s:.1f}x faster (and it builds flows)")

    def sniff_noop() -> None:
        sniff(offline=args.capture, prn=lambda p: None, store=False)

    def sniff_labelled() -> None:
        labeller = FlowLabeller()
        sniff(offline=args.capture, prn=labeller, store=False)
        labeller.flush()

    runs = max(1, args.runs // 2)
    base_s = median_time(sniff_noop, runs)
    with_s = median_time(sniff_labelled, runs)
    print(f"scapy sniff(offline, prn=...): {n:,} packets, median of {runs}")
    print(f"  prn=noop                      {base_s:8.3f} s")
    print(f"  prn=FlowLabeller()            {with_s:8.3f} s")
    print(f"  portlabel adds {100 * (with_s - base_s) / base_s:.1f} % to scapy's delivery")

    import shutil

    if shutil.which("tshark") is None:
        print("pyshark: tshark not installed, skipped")
        return
    import pyshark

    from portlabel.pyshark import FlowLabeller as PysharkLabeller

    count = args.pyshark_packets

    def pyshark_run(callback) -> None:
        capture = pyshark.FileCapture(args.capture, use_json=True, include_raw=True)
        try:
            capture.apply_on_packets(callback, packet_count=count)
        finally:
            capture.close()

    def pyshark_labelled() -> None:
        labeller = PysharkLabeller()
        pyshark_run(labeller)
        labeller.flush()

    base_s = median_time(lambda: pyshark_run(lambda p: None), runs)
    with_s = median_time(pyshark_labelled, runs)
    print(f"pyshark apply_on_packets: {count:,} packets, median of {runs}")
    print(f"  callback=noop                 {base_s:8.3f} s")
    print(f"  callback=FlowLabeller()       {with_s:8.3f} s")
    print(f"  portlabel adds {100 * (with_s - base_s) / base_s:.1f} % to pyshark's delivery")


if __name__ == "__main__":
    main()
