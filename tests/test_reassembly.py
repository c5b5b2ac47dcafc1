"""IP fragment reassembly before flows: a datagram is one packet, as in Zeek."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from portlabel.capture.inputs import CaptureInputs
from portlabel.flows import FlowConfig
from portlabel.labelling.pipeline import LabelPipeline, label_batches
from portlabel.registry import default_registry

ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
PAYLOAD = bytes(range(256)) * 12  # 3072 bytes: three fragments of 1024


def run(tmp_path, packets, batch_size=65536, **options):
    path = tmp_path / "f.pcap"
    for i, p in enumerate(packets):
        p.time = 1000 + i * 0.001
    wrpcap(str(path), packets)
    pipe = LabelPipeline(default_registry(), FlowConfig(uid_seed=1, **options))
    tables = list(label_batches(CaptureInputs([path], batch_size), pipe.registry,
                                pipeline=pipe, background=False))  # fmt: skip
    rows = [r for t in tables for r in t.to_pylist()]
    return rows, pipe.stats


def v4_fragments():
    datagram = IP(src="10.0.0.1", dst="10.0.0.2", id=77) / UDP(sport=5000, dport=53) / PAYLOAD
    return [ETH / f for f in fragment(datagram, fragsize=1024)], len(datagram)


@pytest.mark.parametrize("order", ["in order", "reversed"])
@pytest.mark.parametrize("batch_size", [65536, 1])
def test_ipv4_fragments_make_one_packet_with_its_ports(tmp_path, order, batch_size):
    frags, size = v4_fragments()
    assert len(frags) == 4
    frags = frags if order == "in order" else frags[::-1]
    rows, stats = run(tmp_path, frags, batch_size)
    (flow,) = rows
    assert (flow["id.orig_p"], flow["id.resp_p"], flow["proto"]) == (5000, 53, "udp")
    assert (flow["orig_pkts"], flow["orig_ip_bytes"]) == (1, size)
    assert flow["iana.service"] == "domain"
    assert (stats.reassembled, stats.datagrams) == (4, 1)


def test_ipv6_fragments_make_one_packet(tmp_path):
    datagram = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=9)
        / UDP(sport=5000, dport=53)
        / PAYLOAD
    )
    frags = [ETH / f for f in fragment6(datagram, 1200)]
    assert len(frags) == 3
    rows, stats = run(tmp_path, frags)
    (flow,) = rows
    assert (flow["id.orig_p"], flow["id.resp_p"], flow["orig_pkts"]) == (5000, 53, 1)
    assert flow["orig_ip_bytes"] == 40 + 8 + len(PAYLOAD)  # no fragment header
    assert stats.datagrams == 1


def test_an_incomplete_datagram_is_counted_not_lost(tmp_path):
    frags, _ = v4_fragments()
    rows, stats = run(tmp_path, [frags[0], frags[2], frags[3]])
    assert rows == []
    assert stats.not_in_flows == {"FRAGMENT_INCOMPLETE": 3}


def test_without_reassembly_each_fragment_is_a_packet(tmp_path):
    frags, _ = v4_fragments()
    rows, stats = run(tmp_path, frags, fragment_timeout=None)
    (flow,) = rows
    assert flow["orig_pkts"] == 4 and stats.datagrams == 0


def test_overlapping_fragments_are_reassembled_and_counted(tmp_path):
    from portlabel.capture.decode import decode
    from portlabel.capture.reassembly import Reassembler

    frags, size = v4_fragments()
    path = tmp_path / "o.pcap"
    wrpcap(str(path), [frags[0], frags[1], frags[1], frags[2], frags[3]])  # a duplicate
    raw = next(CaptureInputs([path]).raw_batches())
    r = Reassembler()
    out = r.reassemble(raw, decode(raw), decode)
    assert len(out) == 1 and (r.datagrams, r.overlaps, r.fragments) == (1, 1, 5)
    assert out.ip_len[0] == size and out.sport[0] == 5000
