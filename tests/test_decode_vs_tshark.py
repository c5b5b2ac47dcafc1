"""The decoder against tshark, packet by packet, on every capture of the repository: those
of captures/MANIFEST.tsv and the Zeek test traces in tests/data/zeek_parity.

tshark runs once per file (two at a time) with reassembly off and prints every occurrence
of each field; the test picks tshark's innermost IP layer itself from ``frame.protocols``
(stopping at ICMP, whose quoted datagram is not the packet's own) and compares addresses,
protocol, ports, TCP flags/seq/ack and ICMP type with the decoded row, and a tunnelled row's
``outer_ip_len`` with tshark's outermost IP length.

Every disagreement must fall in a category of ``KNOWN_DIFFERENCES`` (each with its reason),
and each file must reach the agreement recorded in ``MIN_AGREEMENT``.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from decode_helpers import read_capture
from portlabel.capture.batch import DecodeStatus
from portlabel.capture.decode import decode
from portlabel.errors import CaptureError

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
PARITY = Path(__file__).resolve().parent / "data" / "zeek_parity"
FLOOR_OVERALL = 0.995  # packets agreeing over every capture
TSHARK = "/usr/bin/tshark"
FIELDS = (
    "frame.number frame.protocols ip.src ip.dst ip.proto ip.len ipv6.src ipv6.dst ipv6.nxt "
    "ipv6.plen "
    "tcp.srcport tcp.dstport udp.srcport udp.dstport sctp.srcport sctp.dstport "
    "dccp.srcport dccp.dstport tcp.flags tcp.seq_raw tcp.ack_raw icmp.type icmpv6.type"
).split()
TRANSPORTS = {"tcp", "udp", "sctp", "dccp", "icmp", "icmpv6"}

# category -> why portlabel and tshark legitimately disagree there.
KNOWN_DIFFERENCES = {
    "truncated": "the packet is cut inside a header: portlabel keeps what it could read "
    "and marks the row TRUNCATED, tshark fills fields from partial headers differently",
    "malformed": "a header field is impossible; portlabel stops with MALFORMED where tshark "
    "shows the fields of a broken header",
    "tshark-missing-fields": "tshark shows the layer but not its fields because its dissector "
    "threw: e.g. after Cisco FabricPath it takes the inner frame's last 4 bytes for an FCS, "
    "cuts the datagram short and drops the ports; or an IPv6 payload length of 0 (TSO)",
    "tshark-cannot-read": "tshark 4.0 cannot open the file (e.g. DLT 281 Broadcom tag)",
    "tshark-non-packet-block": "tshark lists pcapng blocks that are not packets (custom "
    "blocks) as frames with protocol 'data'; they are not packets and are not compared",
}

# file -> minimum share of packets agreeing (what the decoder reaches today).
MIN_AGREEMENT: dict[str, float] = {
    "zeek_cisco-fabric-path.pcap": 0.815,  # 24 of 130: tshark-missing-fields
    "ndpi_fuzz-2006-06-26-2594.pcap": 0.997,  # 1 truncated, 1 malformed (fuzzed)
    "tcpd_tcp_header_heapoverflow.pcap": 0.0,  # its only packet is cut inside TCP
    "tcpd_brcm-tag.pcap": 0.0,  # tshark-cannot-read
    "pngtg_le_test202.pcapng": 0.727,  # 3 of 11 rows are custom blocks
    "pngtg_le_test017.pcapng": 0.0,  # only custom blocks
}
DEFAULT_MIN_AGREEMENT = 1.0


def capture_paths() -> dict[str, Path]:
    """name -> path of every capture: captures/ by file name, Zeek traces by folder."""
    with open(CAPTURES / "MANIFEST.tsv", newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t")
        out = {r["file"]: CAPTURES / r["file"] for r in rows if r["kind"] == "capture"}
    for folder in sorted(p for p in PARITY.iterdir() if p.is_dir()):
        (trace,) = [p for p in folder.iterdir() if p.name not in ("conn.log", "test.zeek")]
        out[folder.name] = trace
    return out


def capture_files() -> list[str]:
    return list(capture_paths())


def run_tshark(path: Path, *options: str) -> list[dict[str, str]]:
    cmd = [TSHARK, "-r", str(path), "-n", *options, "-T", "fields", "-E", "separator=/t"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=,"]
    cmd += ["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"]
    cmd += ["-o", "teredo.heuristic_teredo:TRUE"]  # Teredo off port 3544, found by content
    for field in FIELDS:
        cmd += ["-e", field]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return [dict(zip(FIELDS, line.split("\t"), strict=False)) for line in proc.stdout.splitlines()]


def _pick(row: dict[str, str], field: str, k: int) -> str:
    values = row.get(field, "").split(",")
    return values[k] if 0 <= k < len(values) else ""


def tshark_view(row: dict[str, str]) -> dict[str, object]:
    """tshark's innermost IP datagram and its transport, as portlabel would report it."""
    protocols = row["frame.protocols"].split(":")
    for cut, name in enumerate(protocols):
        if name in ("icmp", "icmpv6"):
            protocols = protocols[: cut + 1]
            break
    ip_at = [i for i, p in enumerate(protocols) if p in ("ip", "ipv6")]
    if not ip_at:
        return {"ip": None}
    outermost = protocols[ip_at[0]]
    outer_len = _pick(row, "ip.len" if outermost == "ip" else "ipv6.plen", 0)
    last = ip_at[-1]
    family = protocols[last]
    k = protocols[: last + 1].count(family) - 1
    prefix = "ip" if family == "ip" else "ipv6"
    try:
        addresses = tuple(
            ipaddress.ip_address(_pick(row, f"{prefix}.{f}", k)) for f in "src dst".split()
        )
    except ValueError:  # tshark saw the IP layer but not its addresses (cut short)
        return {"ip": "partial"}
    view: dict[str, object] = {
        "ip": addresses,
        "proto": _pick(row, "ip.proto" if family == "ip" else "ipv6.nxt", k),
        "ext": any(p.startswith("ipv6.") for p in protocols[last:]),
        "outer_len": int(outer_len) + (40 if outermost == "ipv6" else 0) if outer_len else None,
    }
    after = [p for p in protocols[last + 1 :] if p in TRANSPORTS][:1]
    if after:
        name = after[0]
        j = protocols[: protocols.index(name, last) + 1].count(name) - 1
        view["transport"] = name
        if name in ("icmp", "icmpv6"):
            view["icmp_type"] = _pick(row, f"{name}.type", j)
        else:
            view["ports"] = (_pick(row, f"{name}.srcport", j), _pick(row, f"{name}.dstport", j))
        if name == "tcp":
            view["tcp"] = tuple(
                _pick(row, f, j) for f in ("tcp.flags", "tcp.seq_raw", "tcp.ack_raw")
            )
    return view


def _address(column_row) -> ipaddress._BaseAddress:
    addr = ipaddress.IPv6Address(bytes(column_row))
    return addr.ipv4_mapped or addr


def compare(view: dict[str, object], batch, i: int) -> str | None:
    """None when the row agrees with tshark, else the name of the disagreement."""
    why = compare_innermost(view, batch, i)
    if why is None and isinstance(view["ip"], tuple):
        return compare_outer_length(view, batch, i)
    return why


def compare_innermost(view: dict[str, object], batch, i: int) -> str | None:
    status = int(batch.status[i])
    ours_ip = int(batch.ip_version[i]) != 0
    if view["ip"] is None:
        return None if not ours_ip else "tshark-no-ip-we-ip"
    if view["ip"] == "partial":
        if status in (DecodeStatus.TRUNCATED, DecodeStatus.MALFORMED):
            return None
        return "tshark-missing-fields"
    if not ours_ip:
        if batch.tunnel[i]:  # inner frame is not IP: tshark's innermost IP is the outer one
            ours = (_address(batch.outer_src_ip[i]), _address(batch.outer_dst_ip[i]))
            return None if ours == view["ip"] else "outer-address"
        return {DecodeStatus.TRUNCATED: "truncated", DecodeStatus.MALFORMED: "malformed"}.get(
            status, "we-no-ip"
        )
    if (_address(batch.src_ip[i]), _address(batch.dst_ip[i])) != view["ip"]:
        return "address"
    # With IPv6 extension headers tshark's ipv6.nxt names the first extension header while
    # ip_proto is the protocol after the chain; the ports below check that chain walk.
    if not view["ext"] and view["proto"] != str(int(batch.ip_proto[i])):
        return "proto"
    if status == DecodeStatus.FRAGMENT:
        return None if "transport" not in view else "fragment-transport"
    if "ports" in view:
        if view["ports"] != (str(int(batch.sport[i])), str(int(batch.dport[i]))):
            if status == DecodeStatus.TRUNCATED:
                return "truncated"
            return "tshark-missing-fields" if view["ports"] == ("", "") else "ports"
    if "tcp" in view:
        flags, seq, ack = view["tcp"]
        ours = (int(batch.tcp_flags[i]), str(int(batch.tcp_seq[i])), str(int(batch.tcp_ack[i])))
        # tshark's tcp.flags includes the 3 reserved bits; portlabel keeps the 9 flag bits.
        if not flags or ours != (int(flags, 16) & 0x1FF, seq, ack):
            return "truncated" if status == DecodeStatus.TRUNCATED else "tcp-fields"
    if "icmp_type" in view and view["icmp_type"] != str(int(batch.icmp_type[i])):
        return "icmp-type"
    return None


def compare_outer_length(view: dict[str, object], batch, i: int) -> str | None:
    """A tunnelled row's outer_ip_len is tshark's outermost IP length; others have 0."""
    ours = int(batch.outer_ip_len[i])
    if not batch.tunnel[i]:
        return None if ours == 0 else "outer-ip-len"
    return None if ours == view["outer_len"] else "outer-ip-len"


def disagreements(name: str, rows: list[dict[str, str]]) -> tuple[int, dict[str, list[int]]]:
    try:
        raw = read_capture(capture_paths()[name])
    except CaptureError:  # the reader's refusal is a category of its own
        return len(rows), {"unreadable": list(range(len(rows)))} if rows else {}
    batch = decode(raw)
    found: dict[str, list[int]] = {}
    if len(batch) and not rows:
        return len(batch), {"tshark-cannot-read": list(range(1, len(batch) + 1))}
    if len(batch) != len(rows):
        blocks = [i for i, r in enumerate(rows) if r["frame.protocols"] in ("data", "")]
        if len(rows) - len(blocks) == len(batch):
            found["tshark-non-packet-block"] = [i + 1 for i in blocks]
            rows = [r for i, r in enumerate(rows) if i not in set(blocks)]
        else:
            found["count"] = [len(batch), len(rows)]
    for i, row in enumerate(rows[: len(batch)]):
        why = compare(tshark_view(row), batch, i)
        if why:
            found.setdefault(why, []).append(i + 1)
    return max(len(rows), len(batch)) + len(found.get("tshark-non-packet-block", [])), found


@pytest.fixture(scope="session")
def tshark_rows() -> dict[str, list[dict[str, str]]]:
    if not shutil.which(TSHARK):
        pytest.skip("tshark is not installed")
    paths = capture_paths()
    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = pool.map(run_tshark, paths.values())
        return dict(zip(paths, rows, strict=True))


@pytest.mark.tshark
@pytest.mark.parametrize("name", capture_files())
def test_decode_agrees_with_tshark(name: str, tshark_rows) -> None:
    total, found = disagreements(name, tshark_rows[name])
    unknown = {k: v[:10] for k, v in found.items() if k not in KNOWN_DIFFERENCES}
    assert not unknown, f"{name}: unexplained disagreements (frame numbers): {unknown}"
    bad = sum(len(v) for v in found.values())
    agreement = 1.0 if total == 0 else (total - bad) / total
    assert agreement >= MIN_AGREEMENT.get(name, DEFAULT_MIN_AGREEMENT), (name, found)


@pytest.mark.tshark
def test_overall_agreement_with_tshark(tshark_rows, capsys) -> None:
    total = bad = 0
    for name in capture_files():
        n, found = disagreements(name, tshark_rows[name])
        total += n
        bad += sum(len(v) for v in found.values())
    with capsys.disabled():
        print(f"\n  decode vs tshark: {total - bad}/{total} packets agree = {1 - bad / total:.4f}")
    assert 1 - bad / total >= FLOOR_OVERALL


if __name__ == "__main__":  # exploration: print every file's disagreements
    for capture, path in capture_paths().items():
        n, diffs = disagreements(capture, run_tshark(path))
        if diffs:
            print(capture, n, {k: (len(v), v[:8]) for k, v in diffs.items()})


_TCPDUMP_IPV4 = re.compile(
    r" IP (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))? > (\d+\.\d+\.\d+\.\d+)(?:\.(\d+))?: (ICMP)?"
)


def test_broadcom_tag_agrees_with_tcpdump() -> None:
    """tshark 4.0 cannot open DLT 281, so tcpdump's expected output is the oracle here."""
    name = "tcpd_brcm-tag.pcap"
    lines = (CAPTURES / f"{name}.tcpdump_brcmtag.out").read_text().splitlines()
    batch = decode(read_capture(CAPTURES / name))
    assert len(batch) == len(lines)
    for i, line in enumerate(lines):
        match = _TCPDUMP_IPV4.search(line)
        if match is None:
            assert "ARP" in line and batch.status[i] == DecodeStatus.NOT_IP, line
            continue
        src, sport, dst, dport, icmp = match.groups()
        assert batch.status[i] == DecodeStatus.OK, line
        ours = (str(_address(batch.src_ip[i])), str(_address(batch.dst_ip[i])))
        assert ours == (src, dst), line
        if icmp:
            assert batch.ip_proto[i] == 1, line
        else:
            assert (int(batch.sport[i]), int(batch.dport[i])) == (int(sport), int(dport)), line
