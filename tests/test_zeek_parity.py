"""The flow engine against the conn.log Zeek's own test suite expects, on 93 traces.

Each trace runs with the options its Zeek run had (``zeek_parity.run_pair``: Zeek's
keying, checksums checked unless ``-C``). A Zeek flow is *identical* when proto,
5-tuple, direction, packets and IP bytes each way, conn_state and history are all equal
(on the columns the baseline kept), *matched* when the 5-tuple and direction are. The
floors below fail the test if agreement drops; every flow that is not identical, and
every flow of ours Zeek does not have, is listed with the reason.
"""

from __future__ import annotations

import pytest

import zeek_parity as zp

FLOOR_IDENTICAL = 0.994
FLOOR_MATCHED = 0.995

_CUT = ("?", "?", "?", "?", "?")  # a baseline cut to columns without the 5-tuple
_SCRIPT_X = (
    "x/X is Zeek's 'analysis partial': set by an application analyzer's limit or a "
    "script's weird (here: {}), which flow analysis cannot see"
)

# (trace, orig_h, orig_p, resp_h, resp_p, proto) -> why our flow is not Zeek's
KNOWN_DIFFERENCES: dict[tuple[str, ...], str] = {
    ("zeek_vxlan.pcap", "10.0.0.1", "8", "10.0.0.2", "0", "icmp"):
        _SCRIPT_X.format("the test disables the ICMP analyzer"),
    ("core.reporter-limit-reached-weird", *_CUT):
        _SCRIPT_X.format("Reporter::limit_reached_weird called by the test script"),
    ("core.vntag-in-vlan", "10.10.10.1", "443", "10.10.10.2", "56960", "tcp"): (
        "a SYN-ACK whose TCP header the snap length cut: Zeek counts no packet of it and, "
        "run with -b, knows no likely server ports, so keeps its sender as the originator; "
        "we count it and flip the flow to port 443"
    ),
    **{
        ("scripts.base.frameworks.netcontrol.packetfilter", o, op, r, "25", "tcp"): (
            "the test script installs a NetControl drop filter mid-trace, so Zeek sees only "
            "the first packets of these hosts"
        )
        for o, op, r in (("10.10.1.4", "1470", "74.53.140.153"),
                         ("192.168.133.100", "49648", "192.168.133.102"))
    },
    ("scripts.base.protocols.dns.max-compression-depth", *_CUT): (
        "Zeek's DNS analyzer flips a connection whose first packet is a reply (^) and "
        "marks it partial at its compression-depth limit (X): application analysis"
    ),
    ("scripts.base.protocols.gnutella.max-header-length", *_CUT):
        _SCRIPT_X.format("Gnutella::max_header_length=200"),
    ("scripts.base.protocols.http.deeply-nested-mime", *_CUT):
        _SCRIPT_X.format("the MIME analyzer's depth limit"),
    ("scripts.base.protocols.ntp.misordered-ntp", "192.168.1.95", "123", "17.253.4.253", "123",
     "udp"): (
        "Zeek's NTP analyzer flips the connection when it parses a client request after "
        "a server reply (^), and leaves the packet counters as they were: application "
        "analysis"
    ),
}  # fmt: skip

# (trace, orig_h, orig_p, resp_h, resp_p, proto) of our flows Zeek does not have -> why
KNOWN_EXTRAS: dict[tuple[str, ...], str] = {
    **{
        ("scripts.base.frameworks.netcontrol.packetfilter", *key): (
            "traffic of the hosts the test script's NetControl rule filters out"
        )
        for key in (
            ("192.168.1.1", "3", "10.10.1.4", "4", "icmp"),
            ("192.168.133.100", "49336", "74.125.71.189", "443", "tcp"),
            ("192.168.133.100", "49153", "17.172.238.21", "5223", "tcp"),
            ("192.168.133.100", "49655", "17.167.150.73", "443", "tcp"),
        )
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def results() -> dict[str, zp.Outcome]:
    return zp.results()


def test_there_are_93_pairs():
    assert len(zp.pairs()) == 93


def test_agreement_floors(results, capsys):
    zeek = sum(o.zeek for o in results.values())
    identical = sum(o.identical for o in results.values())
    matched = sum(o.matched for o in results.values())
    with capsys.disabled():
        print(
            f"\n  Zeek parity over {len(results)} traces: identical {identical}/{zeek} = "
            f"{identical / zeek:.4f}, matched {matched}/{zeek} = {matched / zeek:.4f}"
        )
    assert identical / zeek >= FLOOR_IDENTICAL
    assert matched / zeek >= FLOOR_MATCHED


def test_every_difference_is_known(results):
    unexplained = [
        (name, key, zeek, ours)
        for name, o in results.items()
        for key, zeek, ours in o.differences
        if (name, *key) not in KNOWN_DIFFERENCES
    ]
    assert not unexplained, "\n".join(map(str, unexplained))


def test_every_extra_flow_is_known(results):
    unexplained = [
        (name, *key)
        for name, o in results.items()
        for key in o.extras
        if (name, *key) not in KNOWN_EXTRAS
    ]
    assert not unexplained, "\n".join(map(str, unexplained))


def test_known_differences_still_differ(results):
    """Stale entries hide progress: each listed difference must still be one."""
    seen = {(name, *key) for name, o in results.items() for key, _z, _o in o.differences}
    assert not set(KNOWN_DIFFERENCES) - seen
    extras = {(name, *key) for name, o in results.items() for key in o.extras}
    assert not set(KNOWN_EXTRAS) - extras


def test_real_zeek_timestamps_and_durations():
    """zeekreal_infected.pcap has a real Zeek log: ts and duration must agree to the µs."""
    pair = next(p for p in zp.pairs() if p.name == "zeekreal_infected.pcap")
    rows = zp.read_zeek_log(pair.log)
    table = zp.run_pair(pair)
    mine = {
        (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]): {**r, "ts": ns}
        for r, ns in zip(
            table.to_pylist(), table.column("ts").cast("int64").to_pylist(), strict=True
        )
    }
    assert len(rows) == len(mine)
    exact = 0
    for z in rows:
        r = mine[(z["id.orig_h"], int(z["id.orig_p"]), z["id.resp_h"], int(z["id.resp_p"]))]
        ns = r["ts"]
        assert f"{ns // 10**9}.{ns % 10**9 // 1000:06d}" == z["ts"]
        dur = "-" if r["duration"] is None else f"{r['duration']:.6f}"
        exact += dur == z["duration"]
        # Known difference: on 6 TCP flows closed by FINs our duration is longer by
        # 11 us - 1.6 ms and one side's bytes by 1: Zeek stops the connection's clock at
        # the close and does not count the last ACK's sequence advance.
        assert abs(r["duration"] - float(z["duration"])) < 0.002
        for side in ("orig", "resp"):  # TCP bytes from sequence numbers, as Zeek
            assert abs(r[f"{side}_bytes"] - int(z[f"{side}_bytes"])) <= 1
    assert exact >= 9


def test_a_tunnel_inside_a_tunnel_keeps_every_parent():
    """VXLAN inside Geneve: each tunnel is a flow of its own, and each flow names its
    direct parent, as in Zeek's baseline (DNS -> VXLAN flow -> Geneve flow)."""
    import portlabel

    trace = zp.PARITY / "core.tunnels.geneve-vxlan-truncated" / "geneve-vxlan-dns-truncated.pcap"
    for zeek_keys in (False, True):
        flows = {r["id.resp_p"]: r for r in portlabel.label(trace, zeek_keys=zeek_keys).to_pylist()}
        assert set(flows) == {6081, 4789, 53}
        assert flows[6081]["tunnel_parents"] == []
        assert flows[4789]["tunnel_parents"] == [flows[6081]["uid"]]
        assert flows[53]["tunnel_parents"] == [flows[4789]["uid"]]
        assert [flows[p]["orig_ip_bytes"] for p in (6081, 4789, 53)] == [356, 284, 82]


def test_bad_checksums_are_checked_only_when_asked():
    """Zeek without -C: a bad UDP checksum leaves the connection with no packets and Cc."""
    import portlabel

    trace = zp.PARITY / "core.udp-corrupt" / "dns-corrupt.pcap"
    (checked,) = portlabel.label(trace, check_checksums=True).to_pylist()
    assert (checked["history"], checked["orig_pkts"], checked["resp_pkts"]) == ("Cc", 0, 0)
    assert checked["conn_state"] == "OTH" and checked["orig_ip_bytes"] == 0
    (trusted,) = portlabel.label(trace).to_pylist()
    assert (trusted["history"], trusted["orig_pkts"], trusted["resp_pkts"]) == ("Dd", 1, 1)
