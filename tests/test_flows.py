"""Unit tests of the flow engine on synthetic PacketBatches (no reader/decoder needed)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.capture.batch import DecodeStatus, PacketBatch
from portlabel.flows import FLOW_SCHEMA, FlowConfig, FlowTable, community_ids, tcp_state
from portlabel.flows.tcp_state import TRANSITIONS
from portlabel.flows.tcp_track import IDEMPOTENT
from portlabel.flows.uid import UidSource, uid_to_int

S, A, F, R, P = 0x02, 0x10, 0x01, 0x04, 0x08


def _ip16(text: str) -> np.ndarray:
    ip = ipaddress.ip_address(text)
    raw = ip.packed if ip.version == 6 else b"\0" * 10 + b"\xff\xff" + ip.packed
    return np.frombuffer(raw, dtype=np.uint8)


def make(packets: list[dict]) -> PacketBatch:
    """A decoded batch from dicts with keys src, dst, sport, dport, proto, t, flags, len..."""
    b = PacketBatch.empty(len(packets))
    for i, p in enumerate(packets):
        b.frame[i] = i
        b.ts_ns[i] = int(p["t"] * 1e9)
        b.status[i] = p.get("status", DecodeStatus.OK)
        b.ip_version[i] = 6 if ":" in p["src"] else 4
        b.src_ip[i], b.dst_ip[i] = _ip16(p["src"]), _ip16(p["dst"])
        b.ip_proto[i] = p.get("proto", 6)
        b.sport[i], b.dport[i] = p.get("sport", 0), p.get("dport", 0)
        b.tcp_flags[i] = p.get("flags", 0)
        b.tcp_seq[i], b.tcp_ack[i] = p.get("seq", 0), p.get("ack", 0)
        b.tcp_window[i] = p.get("win", 65535)
        b.payload_len[i] = p.get("len", 0)
        b.ip_len[i] = p.get("len", 0) + (40 if b.ip_proto[i] == 6 else 28)
        b.icmp_type[i], b.icmp_code[i] = p.get("type", 0), p.get("code", 0)
        b.ip_id[i] = p.get("ip_id", 0)
        b.more_frags[i] = p.get("mf", False)
        b.frag_offset[i] = p.get("off", 0)
        b.vlan[i] = p.get("vlan", -1)
    return b


def run(batches: list[PacketBatch], **cfg) -> pa.Table:
    table = FlowTable(FlowConfig(uid_seed=1, **cfg))
    parts = [t for b in batches if (t := table.update(b)) is not None]
    parts.append(table.flush())
    return pa.concat_tables(parts)


C, SV = "10.0.0.1", "10.0.0.2"


def handshake_close(t0=0.0, sport=40000):
    c = dict(src=C, dst=SV, sport=sport, dport=80)
    s = dict(src=SV, dst=C, sport=80, dport=sport)
    return [
        {**c, "t": t0, "flags": S, "seq": 100},
        {**s, "t": t0 + 0.1, "flags": S | A, "seq": 500, "ack": 101},
        {**c, "t": t0 + 0.2, "flags": A, "seq": 101, "ack": 501},
        {**c, "t": t0 + 0.3, "flags": A | P, "seq": 101, "ack": 501, "len": 10},
        {**s, "t": t0 + 0.4, "flags": A | P, "seq": 501, "ack": 111, "len": 20},
        {**c, "t": t0 + 0.5, "flags": A | F, "seq": 111, "ack": 521},
        {**s, "t": t0 + 0.6, "flags": A | F, "seq": 521, "ack": 112},
        {**c, "t": t0 + 0.7, "flags": A, "seq": 112, "ack": 522},
    ]


def test_full_tcp_connection_has_zeek_fields():
    (row,) = run([make(handshake_close())]).to_pylist()
    assert (row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"]) == (
        C, 40000, SV, 80)  # fmt: skip
    assert row["history"] == "ShADdFf"  # the server never sends a bare ACK
    assert row["conn_state"] == "SF"
    assert (row["orig_bytes"], row["resp_bytes"]) == (10, 20)
    assert (row["orig_pkts"], row["resp_pkts"]) == (5, 3)
    assert row["responder_by"] == "syn"
    assert abs(row["duration"] - 0.7) < 1e-9


def test_same_result_whatever_the_batch_split():
    packets = handshake_close() + handshake_close(t0=100.0, sport=40001)
    whole = run([make(packets)]).drop(["uid"]).sort_by("ts")
    for cut in range(1, len(packets)):
        split = run([make(packets[:cut]), make(packets[cut:])]).drop(["uid"]).sort_by("ts")
        assert split.equals(whole), cut


def test_mid_stream_flow_is_flipped_to_the_server_port():
    p = [dict(src=SV, dst=C, sport=443, dport=51000, t=0, flags=A, len=100, seq=9)]
    (row,) = run([make(p)]).to_pylist()
    assert (row["id.orig_p"], row["id.resp_p"]) == (51000, 443)
    assert row["history"] == "^d"
    assert row["responder_by"] == "likely-server-port"


def test_ephemeral_registered_port_is_not_a_server():
    p = [dict(src=C, dst=SV, sport=40000, dport=50000, proto=17, t=0, len=5)]
    (row,) = run([make(p)]).to_pylist()
    assert (row["id.orig_p"], row["responder_by"]) == (40000, "first-packet")


def test_rst_then_quiet_starts_a_new_connection():
    p = [dict(src=C, dst=SV, sport=2035, dport=80, t=60.0 * i, flags=R) for i in range(4)]
    out = run([make(p)])
    assert out.num_rows == 4
    assert set(out["conn_state"].to_pylist()) == {"OTH"}


def _unanswered_then_data(gap: float):
    c = dict(src=C, dst=SV, sport=40000, dport=22)
    return [
        {**c, "t": 0.0, "flags": S, "seq": 100},
        {**c, "t": 1.0, "flags": A | P, "seq": 101, "len": 10},
        {**c, "t": gap, "flags": A | P, "seq": 111, "len": 10},
        {**c, "t": gap + 0.1, "flags": A | F, "seq": 121},
    ]


@pytest.mark.parametrize("split", [None, 1, 2, 3])
def test_an_unanswered_attempt_ends_after_zeeks_attempt_delay(split):
    """Zeek removes a SYN_SENT connection whose responder said nothing 5 s after the SYN:
    the packets after that are a new, partial connection (Zeek's tcp_attempt_delay)."""
    p = _unanswered_then_data(7.0)
    batches = [make(p)] if split is None else [make(p[:split]), make(p[split:])]
    rows = run(batches).to_pylist()
    assert [(r["history"], r["conn_state"], r["orig_pkts"]) for r in rows] == [
        ("SD", "S0", 2),
        ("DF", "SH", 2),
    ]
    assert len(run([make(_unanswered_then_data(4.0))])) == 1  # within the delay: one flow
    assert len(run([make(p)], attempt_timeout=None)) == 1  # the rule can be turned off


def test_an_answered_attempt_is_not_ended():
    p = _unanswered_then_data(7.0)
    p.insert(1, dict(src=SV, dst=C, sport=22, dport=40000, t=0.5, flags=S | A, seq=9, ack=101))
    assert len(run([make(p)])) == 1


def test_an_unanswered_attempt_expires_without_more_packets():
    table = FlowTable(FlowConfig(uid_seed=1))
    assert table.update(make(_unanswered_then_data(7.0)[:1])) is None
    assert table.advance(int(4e9)) is None
    done = table.advance(int(5e9))
    assert done.num_rows == 1 and done["history"].to_pylist() == ["S"]


@pytest.mark.parametrize(
    ("repeats", "letters"), [(1, "T"), (2, "T"), (9, "T"), (10, "TT"), (100, "TTT")]
)
def test_retransmissions_are_scaled_letters(repeats, letters):
    """Zeek writes t/T again when a direction's count reaches 10, 100, 1000..."""
    flow = handshake_close()
    data = flow[3]
    flow[4:4] = [{**data, "t": 0.3 + 0.0001 * (k + 1)} for k in range(repeats)]
    other = handshake_close(sport=40001)  # a second flow: the records are many, not one
    for split in (None, 5):
        parts = [flow] if split is None else [flow[:split], flow[split:]]
        batches = [make(sorted(part + other[i::2], key=lambda p: p["t"]))
                   for i, part in enumerate(parts)]  # fmt: skip
        rows = {r["id.orig_p"]: r for r in run(batches).to_pylist()}
        assert rows[40000]["history"] == f"ShAD{letters}dFf"
        assert rows[40000]["orig_pkts"] == 5 + repeats


def _server_data(seqs_and_acks):
    """A handshake, then server data packets (seq, len) and client ACKs (ack), in order."""
    c = dict(src=C, dst=SV, sport=40000, dport=80)
    s = dict(src=SV, dst=C, sport=80, dport=40000)
    out = [
        {**c, "t": 0.0, "flags": S, "seq": 100},
        {**s, "t": 0.1, "flags": S | A, "seq": 500, "ack": 101},
        {**c, "t": 0.2, "flags": A, "seq": 101, "ack": 501},
    ]
    for k, (kind, value, *more) in enumerate(seqs_and_acks):
        t = 0.3 + k * 0.01
        if kind == "data":
            out.append({**s, "t": t, "flags": A, "seq": value, "ack": 101, "len": more[0]})
        else:
            out.append({**c, "t": t, "flags": A, "seq": 101, "ack": value})
    return out


@pytest.mark.parametrize(
    ("packets", "history"),
    [
        # a segment never seen, acknowledged: a content gap in the server's data
        ([("data", 501, 100), ("data", 701, 100), ("ack", 801)], "ShAdg"),
        # the hole is filled by a retransmission before the ACK passes it: no gap
        ([("data", 501, 100), ("data", 701, 100), ("data", 601, 100), ("ack", 801)], "ShAdt"),
        # data acknowledged past the last byte seen
        ([("data", 501, 100), ("ack", 901)], "ShAdg"),
        # in order and acknowledged: nothing
        ([("data", 501, 100), ("data", 601, 100), ("ack", 701)], "ShAd"),
    ],
)
def test_content_gaps_are_scaled_letters(packets, history):
    flow = _server_data(packets)
    for split in (None, 4):
        batches = [make(flow)] if split is None else [make(flow[:split]), make(flow[split:])]
        assert run(batches).to_pylist()[0]["history"] == history


def test_zero_windows_are_scaled_letters():
    flow = handshake_close()
    flow[4] = {**flow[4], "win": 0}  # the server's data packet advertises a zero window
    (row,) = run([make(flow)]).to_pylist()
    assert row["history"] == "ShADdwFf"
    flow[5] = {**flow[5], "win": 0, "flags": R}  # never on a RST
    assert "W" not in run([make(flow)]).to_pylist()[0]["history"]


def test_idle_timeout_per_transport_and_expiry_in_update():
    udp = [dict(src=C, dst=SV, sport=5000, dport=9999, proto=17, t=t, len=1) for t in (0, 30, 100)]
    table = FlowTable(FlowConfig(uid_seed=1))
    assert table.update(make(udp[:2])) is None
    done = table.update(make(udp[2:]))  # 70 s gap > 60 s: the first flow is finished
    assert done.num_rows == 1 and done["orig_pkts"].to_pylist() == [2]
    assert table.flush()["end_reason"].to_pylist() == ["flush"]


def test_icmp_echo_pairs_join_and_one_way_types_do_not():
    p = [
        dict(src=C, dst=SV, proto=1, type=8, t=0, len=56),
        dict(src=SV, dst=C, proto=1, type=0, t=0.1, len=56),
        dict(src=SV, dst=C, proto=1, type=3, code=3, t=0.2, len=20),
    ]
    rows = sorted(run([make(p)]).to_pylist(), key=lambda r: r["ts"])
    assert [(r["id.orig_p"], r["id.resp_p"], r["orig_pkts"], r["resp_pkts"]) for r in rows] == [
        (8, 0, 1, 1), (3, 3, 1, 0)]  # fmt: skip
    assert rows[0]["proto"] == "icmp" and rows[0]["history"] is None


def test_non_first_fragment_joins_its_flow_across_batches():
    first = dict(src=C, dst=SV, sport=5353, dport=53, proto=17, t=0, len=1472, ip_id=7, mf=True)
    later = dict(src=C, dst=SV, proto=17, t=0.001, len=500, ip_id=7, off=185,
                 status=DecodeStatus.FRAGMENT)  # fmt: skip
    (row,) = run([make([first]), make([later])]).to_pylist()
    assert (row["id.resp_p"], row["orig_pkts"]) == (53, 2)


def test_vlan_is_part_of_the_key():
    p = [dict(src=C, dst=SV, sport=1, dport=2, proto=17, t=0, vlan=v) for v in (10, 20)]
    assert sorted(run([make(p)])["vlan"].to_pylist()) == [10, 20]


def test_zeek_keys_leave_vlans_out_of_the_key():
    """Zeek's default key is the 5-tuple: a reply on another VLAN is the same connection;
    the flow keeps its first packet's VLAN."""
    p = [
        dict(src=C, dst=SV, sport=1, dport=2, proto=17, t=0, vlan=81),
        dict(src=SV, dst=C, sport=2, dport=1, proto=17, t=1, vlan=80),
    ]
    (row,) = run([make(p)], zeek_keys=True).to_pylist()
    assert (row["vlan"], row["orig_pkts"], row["resp_pkts"]) == (81, 1, 1)
    assert len(run([make(p)])) == 2


def test_schema_and_uids():
    out = run([make(handshake_close())])
    assert out.schema.equals(FLOW_SCHEMA)
    uid = out["uid"][0].as_py()
    assert uid.startswith("C") and 0 <= uid_to_int(uid) < 2**96


def test_uid_rendering_round_trips():
    limbs = UidSource(3).draw(200)
    for u, row in zip(UidSource.render(limbs), limbs, strict=True):
        assert uid_to_int(u) == (int(row[0]) << 64) | (int(row[1]) << 32) | int(row[2])


def test_community_id_spec_example():
    # the example in the Community ID specification's README (TCP, seed 0)
    src, dst = _ip16("128.232.110.120")[None], _ip16("66.35.250.204")[None]
    cid = community_ids(src, dst, np.array([4]), np.array([6]), np.array([34855]),
                        np.array([80]))  # fmt: skip
    assert cid == ["1:LQU9qZlK+B5F3KDmev6m5PMibrg="]
    back = community_ids(dst, src, np.array([4]), np.array([6]), np.array([80]),
                         np.array([34855]))  # fmt: skip
    assert back == cid


def test_vectorised_transition_table_equals_the_rules_applied_one_packet_at_a_time():
    assert np.array_equal(TRANSITIONS, tcp_state._compile_by_steps())
    # a few transitions read straight off Zeek's handshake
    e = tcp_state.Endpoint
    syn = tcp_state.EV_SYN
    joint = TRANSITIONS[e.INACTIVE * 7 + e.INACTIVE, syn]
    assert divmod(int(joint), 7) == (e.SYN_SENT, e.INACTIVE)
    syn_ack = tcp_state.EV_SYN | tcp_state.EV_ACK | tcp_state.EV_RESP
    assert divmod(int(TRANSITIONS[joint, syn_ack]), 7) == (e.ESTABLISHED, e.ESTABLISHED)


def test_repeated_events_that_are_dropped_are_idempotent():
    for e in np.flatnonzero(IDEMPOTENT):
        once = TRANSITIONS[:, e]
        assert np.array_equal(TRANSITIONS[once, e], once)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 1),
            st.sampled_from([S, S | A, A, A | P, A | F, R, A | R, F, F | A | P, F | R]),
            st.floats(0, 400),
        ),  # fmt: skip
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(1, 59), max_size=3),
)
def test_packets_are_never_lost_and_splitting_batches_changes_nothing(spec, cuts):
    pkts = []
    for conn, rev, flags, t in sorted(spec, key=lambda x: x[3]):
        a = dict(src=C, dst=SV, sport=40000 + conn, dport=80, seq=7, ack=9)
        b = dict(src=SV, dst=C, sport=80, dport=40000 + conn, seq=7, ack=9)
        pkts.append({**(b if rev else a), "t": t, "flags": flags, "len": 3 * (flags == A | P)})
    whole = run([make(pkts)])
    assert sum(whole["orig_pkts"].to_pylist()) + sum(whole["resp_pkts"].to_pylist()) == len(pkts)
    edges = [0, *sorted({min(c, len(pkts)) for c in cuts}), len(pkts)]
    split = run([make(pkts[a:b]) for a, b in zip(edges, edges[1:], strict=False) if b > a])
    key = ["ts", "id.orig_p", "orig_pkts", "resp_pkts", "conn_state", "history"]
    key += ["orig_bytes", "resp_bytes", "duration", "end_reason"]

    def rows(t):
        return sorted(tuple(map(str, r.values())) for r in t.select(key).to_pylist())

    assert rows(split) == rows(whole)


def _same_split_or_not(pkts: list[dict]) -> list[int]:
    whole = run([make(pkts)])
    for cut in range(1, len(pkts)):
        split = run([make(pkts[:cut]), make(pkts[cut:])])
        assert sorted(split["orig_pkts"].to_pylist()) == sorted(whole["orig_pkts"].to_pylist())
    return whole["orig_pkts"].to_pylist()


def test_a_flow_that_began_with_a_syn_is_not_partial_in_the_next_batch():
    # SYN, FIN-ACK, then a SYN 6 s later: the flow began with a SYN, so one FIN does not
    # close it (it did, when the second batch looked at its own first packet)
    c = dict(src=C, dst=SV, sport=40000, dport=80)
    pkts = [{**c, "t": 0, "flags": S}, {**c, "t": 0, "flags": A | F}, {**c, "t": 6, "flags": S}]
    assert _same_split_or_not(pkts) == [3]


def test_the_last_bursts_fins_and_resets_carry_over_to_the_next_batch():
    c = dict(src=C, dst=SV, sport=40000, dport=80)
    s = dict(src=SV, dst=C, sport=80, dport=40000)
    both_fins = [{**c, "t": 0, "flags": S}, {**c, "t": 1, "flags": A | F},
                 {**s, "t": 1, "flags": A | F}, {**c, "t": 9, "flags": A}]  # fmt: skip
    assert sorted(_same_split_or_not(both_fins)) == [1, 2]
    reset_then_syn = [{**c, "t": 0, "flags": A}, {**c, "t": 0.5, "flags": R},
                      {**c, "t": 1, "flags": S}]  # fmt: skip
    assert sorted(_same_split_or_not(reset_then_syn)) == [1, 2]


def _rows_run(batches: list[PacketBatch]) -> tuple[pa.Table, list]:
    table = FlowTable(FlowConfig(uid_seed=1))
    parts, uids = [], []
    for b in batches:
        got = table.update(b, want_rows=True)
        uids += got.packets.uids().to_pylist()
        if got.flows is not None:
            parts.append(got.flows)
    parts.append(table.flush())
    return pa.concat_tables(parts), uids


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),
            st.integers(0, 1),
            st.sampled_from([S, S | A, A, A | P, A | F, R]),
            st.floats(0, 400),
        ),
        min_size=1,
        max_size=40,
    ),  # fmt: skip
    st.integers(1, 39),
)
def test_each_packet_is_counted_in_the_flow_whose_uid_it_gets(spec, cut):
    pkts = []
    for conn, rev, flags, t in sorted(spec, key=lambda x: x[3]):
        a = dict(src=C, dst=SV, sport=40000 + conn, dport=80)
        b = dict(src=SV, dst=C, sport=80, dport=40000 + conn)
        pkts.append({**(b if rev else a), "t": t, "flags": flags})
    cut = min(cut, len(pkts))
    flows, uids = _rows_run(
        [make(pkts[:cut]), make(pkts[cut:])] if cut < len(pkts) else [make(pkts)]
    )
    starts = flows.column("ts").cast("int64").to_pylist()
    by_uid = {r["uid"]: {**r, "ts": ns} for r, ns in zip(flows.to_pylist(), starts, strict=True)}
    assert set(uids) == set(by_uid)
    for uid, row in by_uid.items():
        mine = [p for p, u in zip(pkts, uids, strict=True) if u == uid]
        assert len(mine) == row["orig_pkts"] + row["resp_pkts"]
        assert {p["sport"] for p in mine} | {p["dport"] for p in mine} == {
            row["id.orig_p"], row["id.resp_p"]}  # fmt: skip
        assert min(int(p["t"] * 1e9) for p in mine) == row["ts"]


def test_packets_in_no_flow_get_no_uid():
    p = [dict(src=C, dst=SV, sport=1, dport=2, proto=17, t=0),
         dict(src=C, dst=SV, sport=1, dport=2, proto=17, t=1,
              status=DecodeStatus.TRUNCATED)]  # fmt: skip
    flows, uids = _rows_run([make(p)])
    assert uids[0] == flows["uid"][0].as_py() and uids[1] is None


def test_advance_expires_idle_flows_without_packets():
    table = FlowTable(FlowConfig(uid_seed=1))
    udp = [dict(src=C, dst=SV, sport=5000, dport=9999, proto=17, t=0, len=1)]
    assert table.update(make(udp)) is None
    assert table.advance(int(30e9)) is None and len(table) == 1
    done = table.advance(int(61e9))
    assert done.num_rows == 1 and done["end_reason"].to_pylist() == ["idle"]
    assert table.advance(int(10e9)) is None  # the clock never goes back
    assert len(table) == 0 and table.flush().num_rows == 0


def _partition(order: np.ndarray, starts: np.ndarray) -> set[tuple[int, ...]]:
    return {tuple(g.tolist()) for g in np.split(order, starts[1:])}


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(0, 40))
def test_compiled_key_packing_matches_numpy(data, n):
    from portlabel.flows import keys as flow_keys

    if flow_keys._flowkeys is None:
        pytest.skip("built without a C compiler")
    # few distinct values, so equal addresses and ports (the tie-breaks) are common
    ips = np.array([[0] * 16, [255] * 16, [0] * 15 + [1], [1] + [0] * 15], dtype=np.uint8)
    pick = st.lists(st.integers(0, 3), min_size=n, max_size=n)
    port = st.lists(st.sampled_from([0, 1, 80, 65535]), min_size=n, max_size=n)
    vlans = st.lists(st.sampled_from([-1, 0, 7, 4095]), min_size=n, max_size=n)
    args = (
        ips[data.draw(pick)],
        ips[data.draw(pick)],
        np.array(data.draw(port), dtype=np.uint16),
        np.array(data.draw(port), dtype=np.uint16),
        np.array(data.draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), np.uint8),
        np.array(data.draw(vlans), dtype=np.int32),
        np.array(data.draw(vlans), dtype=np.int32),
    )
    fast = flow_keys.pack_keys(*args, full=False)
    plain = flow_keys.pack_keys(*args, full=False, compiled=False)
    assert fast[0].shape == (n, flow_keys.SHORT_WIDTH)
    assert np.array_equal(fast[0], plain[0]) and np.array_equal(fast[1], plain[1])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=300),
    st.integers(0, 87),
    st.sampled_from([48, 88]),
)
def test_compiled_grouping_makes_the_numpy_groups(labels, byte, width):
    from portlabel.flows import keys as flow_keys

    if flow_keys._flowkeys is None:
        pytest.skip("built without a C compiler")
    byte %= width
    keys = np.zeros((len(labels), width), dtype=np.uint8)
    keys[:, byte] = labels  # rows differ in one byte, anywhere in the key
    keys[:, (byte + 1) % width] = np.array(labels) // 2
    compiled = flow_keys.group_rows(keys)
    plain = flow_keys.group_rows(keys, compiled=False)
    assert _partition(*compiled[:2]) == _partition(*plain[:2])
    order, starts, group_keys = compiled
    assert (np.diff(starts) > 0).all() and starts[0] == 0
    assert np.array_equal(group_keys[:, :width], keys[order[starts]])
    for g in np.split(order, starts[1:]):
        assert (np.diff(g) > 0).all()  # capture order within a group


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 7), min_size=1, max_size=200), st.booleans())
def test_grouping_is_exact_even_when_every_hash_collides(labels, full):
    from portlabel.flows import keys as flow_keys

    n = len(labels)
    ip = np.zeros((n, 16), dtype=np.uint8)
    ip[:, 15] = labels  # eight distinct endpoints
    other = np.full((n, 16), 9, dtype=np.uint8)
    ports = np.full(n, 80, dtype=np.uint16)
    no_vlan = np.full(n, -1, dtype=np.int32)
    keys, _ = flow_keys.pack_keys(
        ip, other, ports, ports, np.full(n, 6, np.uint8), no_vlan, no_vlan, full=full
    )
    assert keys.shape[1] == (flow_keys.KEY_WIDTH if full else flow_keys.SHORT_WIDTH)
    expected = flow_keys.group_rows(keys)
    real_hash = flow_keys.hash_rows
    try:
        flow_keys.hash_rows = lambda k, n_words=None: np.zeros(len(k), dtype=np.uint64)
        order, starts, group_keys = flow_keys.group_rows(keys, compiled=False)
    finally:
        flow_keys.hash_rows = real_hash
    groups = np.split(order, starts[1:])
    assert sorted(len(g) for g in groups) == sorted(np.bincount(labels)[np.unique(labels)])
    for g, key in zip(groups, group_keys, strict=True):
        assert (np.diff(g) > 0).all()  # capture order within a group
        assert {labels[i] for i in g} == {labels[g[0]]}
        assert key.shape == (keys.shape[1],)  # as wide as the keys grouped
        assert bytes(key) == bytes(keys[g[0]])
    assert len(expected[1]) == len(starts)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # connection
            st.booleans(),  # from the server
            st.sampled_from([S, S | A, A, A | P, A | F, R]),
            st.floats(0, 200),
        ),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(0, 59), max_size=10),  # packets moved back in time
    st.integers(1, 59),
)
def test_packets_out_of_time_order_lose_no_packet(spec, late, cut):
    """A misordered capture (a packet stamped before the ones read before it) loses no
    packet and no flow, whatever the batch split."""
    pkts = []
    for conn, rev, flags, t in sorted(spec, key=lambda x: x[-1]):
        c = dict(src=C, dst=SV, sport=40000 + conn, dport=80)
        s = dict(src=SV, dst=C, sport=80, dport=40000 + conn)
        pkts.append({**(s if rev else c), "t": t, "flags": flags, "len": 1})
    for i in late:
        if 0 < i < len(pkts):
            pkts[i] = {**pkts[i], "t": max(pkts[i]["t"] - 100, 0)}
    for batches in ([make(pkts)], [make(pkts[:cut]), make(pkts[cut:])]):
        flows = run([b for b in batches if len(b)])
        total = sum(flows["orig_pkts"].to_pylist()) + sum(flows["resp_pkts"].to_pylist())
        assert total == len(pkts)
