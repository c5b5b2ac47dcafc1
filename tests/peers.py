"""Readers for the peers' ground truth in captures/: nDPI ``.ndpi.out`` and NFStream CSVs."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

CAPTURES = Path(__file__).resolve().parent.parent / "captures"

# "\t1\tTCP 1.2.3.4:80 <-> [::1]:53 [proto: ...]...[6 pkts/578 bytes <-> 4 pkts/2084 bytes]"
_FLOW = re.compile(
    r"^\s+\d+\s+(?P<proto>\S+)\s+(?P<a>\S+)\s+(?P<dir><->|->)\s+(?P<b>\S+)\s.*?"
    r"\[(?P<ap>\d+) pkts/(?P<ab>\d+) bytes (?:<->|->) (?P<bp>\d+) pkts/(?P<bb>\d+) bytes\]"
)


@dataclass(frozen=True)
class PeerFlow:
    proto: str  # nDPI's name: TCP, UDP, ICMP, ICMPV6, SCTP, ESP, ...
    a: tuple[str, int]
    b: tuple[str, int]
    a_pkts: int
    a_bytes: int
    b_pkts: int
    b_bytes: int


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def ndpi_flows(path: Path) -> list[PeerFlow]:
    flows = []
    for line in path.read_text(errors="replace").splitlines():
        m = _FLOW.match(line)
        if m:
            flows.append(
                PeerFlow(
                    m["proto"],
                    _endpoint(m["a"]),
                    _endpoint(m["b"]),
                    int(m["ap"]),
                    int(m["ab"]),
                    int(m["bp"]),
                    int(m["bb"]),
                )
            )
    return flows


def nfstream_flows(path: Path) -> list[tuple[int, int]]:
    """(bidirectional_packets, bidirectional_bytes) per flow."""
    with open(path, newline="") as fh:
        return [
            (int(r["bidirectional_packets"]), int(r["bidirectional_bytes"]))
            for r in csv.DictReader(fh)
        ]


def ground_truth_files(suffix: str) -> list[Path]:
    return sorted(CAPTURES.glob(f"*{suffix}"))
