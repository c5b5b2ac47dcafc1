"""Generate a large, realistic-looking classic pcap for benchmarks (deterministic, numpy).

Flows are drawn first (kind, addresses, ports, VLAN, IP version, packet count, start
time), then every packet of every flow is laid out with vectorised numpy: TCP connections
with a handshake, data in both directions and a FIN or RST ending, DNS and NTP exchanges,
QUIC-like and high-port UDP, ICMP/ICMPv6 echo pairs. About 15 % of flows are IPv6 and 5 %
carry an 802.1Q tag. IPv4, TCP, UDP and ICMP checksums are correct (payloads are zeros).

    python benchmarks/gen_capture.py OUT.pcap [--packets N] [--flows N] [--seed S]
"""

from __future__ import annotations

import argparse
import struct
import time

import numpy as np

# kind -> (share of flows, transport, server port or 0 for "high random", median packets)
KINDS = {
    "https": (0.34, 6, 443, 24),
    "http": (0.08, 6, 80, 14),
    "ssh": (0.02, 6, 22, 60),
    "smtp": (0.02, 6, 25, 16),
    "dns": (0.26, 17, 53, 2),
    "ntp": (0.05, 17, 123, 2),
    "quic": (0.12, 17, 443, 30),
    "udp_high": (0.06, 17, 0, 8),
    "icmp": (0.05, 1, 0, 6),
}
ETH, VLAN_TAG, IPV4, IPV6, TCP, UDP, ICMP = 14, 4, 20, 40, 20, 8, 8
SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)


def draw_flows(rng: np.random.Generator, n: int, packets: int) -> dict[str, np.ndarray]:
    names = list(KINDS)
    kind = rng.choice(len(names), size=n, p=[KINDS[k][0] for k in names])
    proto = np.array([KINDS[k][1] for k in names])[kind]
    port = np.array([KINDS[k][2] for k in names])[kind]
    median = np.array([KINDS[k][3] for k in names], dtype=float)[kind]
    count = np.maximum(1, rng.lognormal(np.log(median), 0.9)).astype(np.int64)
    count[proto == 6] = np.maximum(count[proto == 6], 2)
    count[(kind == names.index("dns")) | (kind == names.index("ntp"))] = 2
    count[proto == 1] += count[proto == 1] % 2  # echo request/reply pairs
    count = _fit_total(count, packets, proto)
    high = port == 0
    port[high] = rng.integers(1024, 65535, int(high.sum()))
    return {
        "kind": kind,
        "proto": proto,
        "sport": rng.integers(32768, 61000, n),
        "dport": port,
        "count": count,
        "v6": rng.random(n) < 0.15,
        "vlan": np.where(rng.random(n) < 0.05, rng.integers(2, 4095, n), -1),
        "start": rng.uniform(1.7e9, 1.7e9 + 600, n),
        "cip": rng.integers(0, 256, (n, 16), dtype=np.uint8),
        "sip": rng.integers(0, 256, (n, 16), dtype=np.uint8),
        "cmac": rng.integers(0, 1 << 48, n) & ~(1 << 40),  # first octet even: unicast
        "smac": rng.integers(0, 1 << 48, n) & ~(1 << 40),
        "isn_c": rng.integers(0, 1 << 32, n),
        "isn_s": rng.integers(0, 1 << 32, n),
    }


def _fit_total(count: np.ndarray, packets: int, proto: np.ndarray) -> np.ndarray:
    """Scale the flow sizes so that they add up to exactly ``packets``."""
    count = np.maximum(1, np.round(count * packets / count.sum())).astype(np.int64)
    count[proto == 6] = np.maximum(count[proto == 6], 2)
    diff = packets - int(count.sum())
    biggest = np.argsort(count)[::-1]
    i = 0
    while diff:
        step = 1 if diff > 0 else -1
        if count[biggest[i % len(count)]] > 6 or step > 0:
            count[biggest[i % len(count)]] += step
            diff -= step
        i += 1
    return count


def lay_out_packets(rng: np.random.Generator, fl: dict[str, np.ndarray]) -> dict:
    """Per-packet flow id, direction, TCP flags, payload length and time."""
    count = fl["count"]
    flow = np.repeat(np.arange(count.shape[0]), count)
    first = np.repeat(np.cumsum(count) - count, count)
    pos = np.arange(flow.shape[0]) - first
    left = np.repeat(count, count) - 1 - pos  # packets after this one in its flow
    proto, kind = fl["proto"][flow], fl["kind"][flow]
    names = list(KINDS)
    to_server = rng.random(flow.shape[0]) < 0.35  # TCP data mostly flows to the client
    alt = proto != 6  # UDP/ICMP: request and response alternate
    to_server[alt] = pos[alt] % 2 == 0
    flags = np.where(rng.random(flow.shape[0]) < 0.3, ACK, ACK | PSH).astype(np.uint16)
    payload = np.where(to_server, rng.integers(80, 700, flow.shape[0]), 1448)
    short = rng.random(flow.shape[0]) < 0.3
    payload[short] = rng.integers(100, 1448, int(short.sum()))
    tcp = proto == 6
    payload[tcp & (flags == ACK)] = 0
    rst_end = rng.random(count.shape[0])[flow] < 0.1
    hs = [(0, True, SYN), (1, False, SYN | ACK), (2, True, ACK)]
    for p, c2s, f in hs:
        m = tcp & (pos == p)
        flags[m], to_server[m], payload[m] = f, c2s, 0
    fin = [(2, True, FIN | ACK), (1, False, FIN | ACK), (0, True, ACK)]
    long_tcp = tcp & (np.repeat(count, count) >= 6)
    for lft, c2s, f in fin:
        m = long_tcp & (left == lft) & ~rst_end
        flags[m], to_server[m], payload[m] = f, c2s, 0
    m = tcp & (left == 0) & (rst_end | ~long_tcp) & (pos > 0)
    flags[m], payload[m] = RST | ACK, 0
    short_fail = tcp & (np.repeat(count, count) == 2) & (pos == 1)
    to_server[short_fail] = False
    sizes = {
        "dns": (30, 60, 60, 300),
        "ntp": (48, 49, 48, 49),
        "quic": (1200, 1350, 40, 1350),
        "udp_high": (60, 1200, 60, 1200),
        "icmp": (56, 57, 56, 57),
    }
    for name, (qlo, qhi, rlo, rhi) in sizes.items():
        m = kind == names.index(name)
        lo, hi = np.where(to_server[m], qlo, rlo), np.where(to_server[m], qhi, rhi)
        payload[m] = lo + (rng.random(int(m.sum())) * (hi - lo)).astype(np.int64)
    gaps = rng.exponential(0.02, flow.shape[0])
    gaps[pos == 0] = 0
    t = fl["start"][flow] + _grouped_cumsum(gaps, first)
    return {
        "flow": flow, "pos": pos, "first": first, "to_server": to_server, "flags": flags,
        "payload": payload.astype(np.int64), "t": t,
    }  # fmt: skip


def _grouped_cumsum(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    c = np.cumsum(x)
    return c - (c[first] - x[first])


def _put(out: np.ndarray, at: np.ndarray, value: np.ndarray, width: int) -> None:
    """Write ``value`` big-endian, ``width`` bytes, at byte positions ``at``."""
    value = value.astype(np.uint64)
    for j in range(width):
        out[at + j] = (value >> np.uint64(8 * (width - 1 - j))) & np.uint64(0xFF)


def _fold(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.uint64)
    for _ in range(3):
        s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    return (~s) & np.uint64(0xFFFF)


def _words(addr: np.ndarray) -> np.ndarray:
    """Sum of the 16-bit big-endian words of each row of a (n, k) byte array."""
    a = addr.astype(np.uint64)
    return (a[:, 0::2] * np.uint64(256) + a[:, 1::2]).sum(axis=1)


def write_frames(fl: dict[str, np.ndarray], pk: dict) -> np.ndarray:
    order = np.argsort(pk["t"], kind="stable")
    pk = {k: v[order] for k, v in pk.items()}
    f = pk["flow"]
    v6, vlan, proto = fl["v6"][f], fl["vlan"][f] >= 0, fl["proto"][f]
    c2s = pk["to_server"]
    l2 = ETH + VLAN_TAG * vlan
    l3 = np.where(v6, IPV6, IPV4)
    l4 = np.select([proto == 6, proto == 17], [TCP, UDP], ICMP)
    frame_len = l2 + l3 + l4 + pk["payload"]
    rec = 24 + np.concatenate([[0], np.cumsum(16 + frame_len)[:-1]])
    out = np.zeros(24 + int((16 + frame_len).sum()), np.uint8)
    out[:24] = np.frombuffer(PCAP_HEADER, np.uint8)
    usec = np.round(pk["t"] * 1e6).astype(np.int64)
    hdr = np.stack([usec // 10**6, usec % 10**6, frame_len, frame_len], 1).astype("<u4")
    out[rec[:, None] + np.arange(16)] = hdr.view(np.uint8).reshape(-1, 16)
    e = rec + 16
    _put(out, e, np.where(c2s, fl["smac"][f], fl["cmac"][f]), 6)
    _put(out, e + 6, np.where(c2s, fl["cmac"][f], fl["smac"][f]), 6)
    _put(out, e + 12, np.where(vlan, 0x8100, np.where(v6, 0x86DD, 0x0800)), 2)
    tv = e[vlan]
    _put(out, tv + 14, fl["vlan"][f][vlan], 2)
    _put(out, tv + 16, np.where(v6[vlan], 0x86DD, 0x0800), 2)
    ip = e + l2
    src = np.where(c2s[:, None], fl["cip"][f], fl["sip"][f])
    dst = np.where(c2s[:, None], fl["sip"][f], fl["cip"][f])
    v4 = ~v6
    src[v4, :2], dst[v4, :2] = [10, 0], [10, 0]  # RFC 1918 clients and servers
    l4_len = l4 + pk["payload"]
    ip_proto = np.where(v6 & (proto == 1), 58, proto)
    _ipv4(out, ip[v4], src[v4, :4], dst[v4, :4], l4_len[v4], ip_proto[v4], np.arange(len(f))[v4])
    _ipv6(out, ip[v6], src[v6], dst[v6], l4_len[v6], ip_proto[v6])
    t = ip + l3
    pseudo = np.where(v6, _words(src) + _words(dst), _words(src[:, :4]) + _words(dst[:, :4]))
    pseudo = pseudo + (l4_len + ip_proto).astype(np.uint64)
    _transport(out, t, fl, pk, proto, ip_proto, l4_len, pseudo)
    return out


def _ipv4(out, at, src, dst, length, proto, ident) -> None:
    total = 20 + length
    ident = ident & 0xFFFF
    _put(out, at, np.full(at.shape, 0x4500), 2)
    _put(out, at + 2, total, 2)
    _put(out, at + 4, ident, 2)
    _put(out, at + 6, np.full(at.shape, 0x4000), 2)
    _put(out, at + 8, 64 * 256 + proto, 2)
    out[at[:, None] + np.arange(12, 16)] = src
    out[at[:, None] + np.arange(16, 20)] = dst
    s = 0x4500 + total + ident + 0x4000 + 64 * 256 + proto + _words(src) + _words(dst)
    _put(out, at + 10, _fold(s), 2)


def _ipv6(out, at, src, dst, length, proto) -> None:
    _put(out, at, np.full(at.shape, 0x60000000), 4)
    _put(out, at + 4, length, 2)
    _put(out, at + 6, proto * 256 + 64, 2)
    out[at[:, None] + np.arange(8, 24)] = src
    out[at[:, None] + np.arange(24, 40)] = dst


def _transport(out, t, fl, pk, proto, ip_proto, l4_len, pseudo) -> None:
    f, c2s = pk["flow"], pk["to_server"]
    sport = np.where(c2s, fl["sport"][f], fl["dport"][f])
    dport = np.where(c2s, fl["dport"][f], fl["sport"][f])
    tcp, udp, icmp = proto == 6, proto == 17, proto == 1
    s = pseudo.astype(np.uint64)
    for m in (tcp, udp):
        _put(out, t[m], sport[m], 2)
        _put(out, t[m] + 2, dport[m], 2)
    _put(out, t[udp] + 4, l4_len[udp], 2)
    s[udp] += (sport + dport + l4_len)[udp].astype(np.uint64)
    seq, ack = _tcp_numbers(fl, pk)
    flags_word = (5 << 12) | pk["flags"].astype(np.int64)
    _put(out, t[tcp] + 4, seq[tcp], 4)
    _put(out, t[tcp] + 8, ack[tcp], 4)
    _put(out, t[tcp] + 12, flags_word[tcp], 2)
    _put(out, t[tcp] + 14, np.full(int(tcp.sum()), 64240), 2)
    words = sport + dport + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
    s[tcp] += (words + flags_word + 64240)[tcp].astype(np.uint64)
    typ = np.where(c2s, np.where(ip_proto == 58, 128, 8), np.where(ip_proto == 58, 129, 0))
    ident, seqno = fl["sport"][f], pk["pos"] // 2
    _put(out, t[icmp], typ[icmp] * 256, 2)
    _put(out, t[icmp] + 4, ident[icmp], 2)
    _put(out, t[icmp] + 6, seqno[icmp], 2)
    s[icmp] = (typ * 256 + ident + seqno)[icmp].astype(np.uint64)
    s[icmp & (ip_proto == 58)] += pseudo[icmp & (ip_proto == 58)]  # ICMPv6 has a pseudo-header
    csum_at = np.where(tcp, 16, np.where(udp, 6, 2))
    _put(out, t + csum_at, _fold(s), 2)


def _tcp_numbers(fl: dict, pk: dict) -> tuple[np.ndarray, np.ndarray]:
    """Sequence/ack numbers: each side's ISN plus the bytes (and SYN/FIN) it sent before."""
    order = np.lexsort((pk["pos"], pk["flow"]))
    f, c2s = pk["flow"][order], pk["to_server"][order]
    flags = pk["flags"][order]
    used = pk["payload"][order] + ((flags & (SYN | FIN)) != 0)
    first = np.flatnonzero(np.r_[True, f[1:] != f[:-1]])
    starts = np.repeat(first, np.diff(np.r_[first, f.shape[0]]))
    sent_c = _grouped_cumsum(np.where(c2s, used, 0), starts) - np.where(c2s, used, 0)
    sent_s = _grouped_cumsum(np.where(c2s, 0, used), starts) - np.where(c2s, 0, used)
    isn_c, isn_s = fl["isn_c"][f], fl["isn_s"][f]
    seq = np.where(c2s, isn_c + sent_c, isn_s + sent_s) & 0xFFFFFFFF
    ack = np.where(c2s, isn_s + sent_s, isn_c + sent_c) & 0xFFFFFFFF
    ack[(flags & ACK) == 0] = 0
    back = np.empty_like(order)
    back[order] = np.arange(order.shape[0])
    return seq[back], ack[back]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--flows", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    flows = draw_flows(rng, min(args.flows, args.packets), args.packets)
    data = write_frames(flows, lay_out_packets(rng, flows))
    with open(args.out, "wb") as fh:
        fh.write(data.tobytes())
    dt = time.perf_counter() - t0
    print(f"{args.out}: {args.packets} packets, {args.flows} flows, {data.size} bytes, {dt:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
