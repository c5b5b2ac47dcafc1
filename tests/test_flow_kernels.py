"""The flow engine gives the same flows with its compiled kernels as without them.

``_flowkeys`` (key packing and grouping), ``_tcptrack`` (TCP sequence tracking and the
state machine), ``_aggregate`` (per-segment sums) and ``_slotindex`` (the store's key
index) replace numpy code paths and a dict; each test
runs the same packets through a FlowTable twice, kernels on and off, and compares every
column of every flow: on every bundled capture, and on random TCP conversations (random
flags, sequence and ack numbers, directions, timing) cut into batches at random places.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portlabel.capture.decode import decode
from portlabel.capture.reader import open_capture
from portlabel.errors import CaptureError
from portlabel.flows import FlowConfig, FlowTable, records, segments, tcp_track
from portlabel.flows import keys as flow_keys
from portlabel.flows import store as flow_store
from test_flows import SV, C, make

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
CAPTURE_FILES = sorted(
    p for p in CAPTURES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))
)
pytestmark = pytest.mark.skipif(
    flow_keys._flowkeys is None or tcp_track._tcptrack is None or segments._aggregate is None,
    reason="built without a C compiler",
)


def flows(batches, compiled: bool, **config) -> pa.Table:
    saved = flow_keys._flowkeys, tcp_track._tcptrack, segments._aggregate, flow_store._slotindex
    if not compiled:
        flow_keys._flowkeys = tcp_track._tcptrack = segments._aggregate = None
        flow_store._slotindex = None
    try:
        table = FlowTable(FlowConfig(uid_seed=7, **config))
        parts = [t for b in batches if (t := table.update(b)) is not None]
        parts.append(table.flush())
    finally:
        flow_keys._flowkeys, tcp_track._tcptrack, segments._aggregate, flow_store._slotindex = saved
    return pa.concat_tables(parts)


def _canonical(table: pa.Table) -> list[dict]:
    """The flows sorted by every column but their uids (flows may share a start time and
    a 5-tuple: a connection cut in two at one instant)."""
    rows = table.to_pylist()
    return sorted(rows, key=lambda r: [repr(v) for k, v in r.items() if k not in _UIDS])


_UIDS = ("uid", "tunnel_parents")


def assert_same(batches, **config) -> None:
    fast = _canonical(flows(batches, True, **config))
    plain = _canonical(flows(batches, False, **config))
    assert len(fast) == len(plain)
    # the compiled grouping lists a batch's new flows in another order, and uids are drawn
    # in that order: flows are compared, and uids (tunnel parents too) through the pairing
    same_uid = {f["uid"]: p["uid"] for f, p in zip(fast, plain, strict=True)}
    assert len(set(same_uid.values())) == len(same_uid)
    for f in fast:
        f["uid"] = same_uid[f["uid"]]
        f["tunnel_parents"] = [same_uid.get(u, u) for u in f["tunnel_parents"]]
    assert fast == plain


@pytest.mark.parametrize("path", CAPTURE_FILES, ids=lambda p: p.name)
def test_bundled_captures_make_the_same_flows(path):
    try:
        raws = list(open_capture(path).batches(batch_size=97))  # many batch boundaries
    except CaptureError as exc:
        pytest.skip(f"not readable: {exc}")
    assert_same([decode(raw) for raw in raws])


S, A, F, R, P = 2, 16, 1, 4, 8


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # connection
            st.booleans(),  # from the server
            st.sampled_from([S, S | A, A, A | P, A | F, R, A | R, F, F | A | P, F | R, 0]),
            st.integers(0, 2**32 - 1),  # seq
            st.integers(0, 2**32 - 1),  # ack
            st.sampled_from([0, 0, 1, 1400]),  # payload
            st.sampled_from([0, 65535]),  # window (zero windows mark the flow)
            st.floats(0, 30),
        ),
        min_size=1,
        max_size=80,
    ),
    st.lists(st.integers(1, 79), max_size=4),
)
def test_random_tcp_makes_the_same_flows(spec, cuts):
    pkts = []
    base = {}
    for conn, rev, flags, seq, ack, length, win, t in sorted(spec, key=lambda x: x[-1]):
        # half the time numbers near the connection's own, so ranges and acks overlap
        near = base.setdefault((conn, rev), seq)
        seq = seq if seq % 2 else (near + seq % 5000) % 2**32
        c = dict(src=C, dst=SV, sport=40000 + conn, dport=80)
        s = dict(src=SV, dst=C, sport=80, dport=40000 + conn)
        pkts.append({**(s if rev else c), "t": t, "flags": flags, "seq": seq, "ack": ack,
                     "len": length, "win": win})  # fmt: skip
    edges = [0, *sorted({min(c, len(pkts)) for c in cuts}), len(pkts)]
    batches = [make(pkts[a:b]) for a, b in zip(edges, edges[1:], strict=False) if b > a]
    assert_same(batches, close_delay=1.0, tcp_timeout=10.0)


def test_the_random_conversations_reach_the_compiled_paths():
    # guards the comparisons above against comparing two untouched numpy runs
    calls = []
    real = tcp_track._tcptrack.track_tcp

    def spy(*args):
        calls.append(len(args[0]))
        return real(*args)

    tcp_track._tcptrack.track_tcp = spy
    try:
        flows([make([dict(src=C, dst=SV, sport=1, dport=80, t=0, flags=S, seq=1)])], True)
    finally:
        tcp_track._tcptrack.track_tcp = real
    assert calls == [1]
    assert np.array_equal(
        flow_keys.pack_keys(*[np.zeros((1, 16), np.uint8)] * 2, *[np.zeros(1, np.uint16)] * 2,
                            np.zeros(1, np.uint8), *[np.zeros(1, np.int32)] * 2, full=False)[0],
        np.zeros((1, 48), np.uint8),
    )  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=130), min_size=1, max_size=20))
def test_batch_sha1_is_hashlibs(messages):
    import hashlib

    from portlabel.flows import community_id

    width = max(max(len(m) for m in messages), 1)
    rows = np.zeros((len(messages), width), dtype=np.uint8)
    for i, m in enumerate(messages):
        rows[i, : len(m)] = np.frombuffer(m, dtype=np.uint8)
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    digests = np.empty((len(messages), 20), dtype=np.uint8)
    community_id._sha1rows.sha1_rows(rows, width, lengths, digests)
    assert [bytes(d) for d in digests] == [hashlib.sha1(m).digest() for m in messages]


@settings(max_examples=100, deadline=None)
@given(st.data(), st.integers(1, 30))
def test_community_ids_are_the_same_with_the_batch_sha1(data, n):
    from portlabel.flows.community_id import community_id_chars

    def column(values, dtype):
        return np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype)

    v4 = column(st.booleans(), bool)
    src = column(st.binary(min_size=16, max_size=16).map(list), np.uint8)
    dst = column(st.binary(min_size=16, max_size=16).map(list), np.uint8)
    args = (
        src,
        dst,
        np.where(v4, 4, 6),
        column(st.sampled_from([6, 17, 1, 58, 132, 50, 47]), np.uint8),
        column(st.integers(0, 65535), np.uint16),
        column(st.integers(0, 65535), np.uint16),
        column(st.integers(0, 255), np.uint8),
        column(st.integers(0, 255), np.uint8),
    )
    seed = data.draw(st.integers(0, 65535))
    fast = community_id_chars(*args, seed=seed)
    assert np.array_equal(fast, community_id_chars(*args, seed=seed, compiled=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 3000), max_size=200)),
                max_size=12))  # fmt: skip
def test_the_compiled_store_index_agrees_with_a_dict(steps):
    """Random puts and releases (enough flows to regrow the table and reuse removed
    cells), then every key looked up in both stores."""
    stores = [flow_store.FlowStore(capacity=8, compiled=c) for c in (True, False)]
    index = stores[0].index
    assert isinstance(index, flow_store.CompiledIndex)
    # small tables, so probe chains are long and removals sit inside them
    index.MIN_CELLS, index.cells = 16, np.full(16, -1, dtype=np.int32)
    index.REBUILD_SLOTS = 7  # rebuilt from a few slot numbers at a time
    active: set[int] = set()
    for adding, ids in steps:
        ids = sorted(set(ids) - active) if adding else sorted(set(ids) & active)
        if not ids:
            continue
        if adding:
            rec = records.empty_records(len(ids))
            rec["key"][:, :8] = np.array(ids, dtype="<u8").view(np.uint8).reshape(-1, 8)
            rec["key"][:, 40] = 1  # and a byte further in, as real keys have
            got = [s.put(np.full(len(ids), -1, dtype=np.int64), rec) for s in stores]
            active |= set(ids)
        else:
            keys = np.zeros((len(ids), flow_keys.KEY_WIDTH), dtype=np.uint8)
            keys[:, :8] = np.array(ids, dtype="<u8").view(np.uint8).reshape(-1, 8)
            keys[:, 40] = 1
            got = [s.release(s.lookup(keys)) for s in stores]
            active -= set(ids)
        assert np.array_equal(got[0], got[1])
    probe = np.zeros((3001, flow_keys.KEY_WIDTH), dtype=np.uint8)
    probe[:, :8] = np.arange(3001, dtype="<u8").view(np.uint8).reshape(-1, 8)
    probe[:, 40] = 1
    found = [s.lookup(probe) for s in stores]
    assert np.array_equal(found[0] >= 0, found[1] >= 0)
    assert set(np.flatnonzero(found[0] >= 0).tolist()) == active
    assert len(stores[0]) == len(stores[1]) == len(active)


def _numbered_keys(ids: np.ndarray) -> np.ndarray:
    """Flow keys that are the numbers ``ids`` in their first 8 bytes."""
    out = np.zeros((len(ids), flow_keys.KEY_WIDTH), dtype=np.uint8)
    out[:, :8] = ids.astype("<u8").view(np.uint8).reshape(-1, 8)
    return out


def test_the_store_index_rebuilt_under_churn_keeps_its_table_and_every_key():
    """A flood's pattern: as many flows leave as arrive, so removed cells fill the table
    and it is rebuilt at the same size: in place (no second table held), and every key
    still found, the departed ones not."""

    store = flow_store.FlowStore(capacity=8)
    index = store.index
    index.REBUILD_SLOTS = 100  # several ranges of slot numbers per rebuild
    live = np.arange(1000)
    rec = records.empty_records(len(live))
    rec["key"] = _numbered_keys(live)
    store.put(np.full(len(live), -1, dtype=np.int64), rec)
    table, rebuilt = index.cells, 0
    for step in range(1, 40):
        gone, live = live[:250], np.r_[live[250:], np.arange(250) + 1000 * step]
        store.release(store.lookup(_numbered_keys(gone)))
        before = index.filled
        rec = records.empty_records(250)
        rec["key"] = _numbered_keys(live[-250:])
        store.put(np.full(250, -1, dtype=np.int64), rec)
        if index.filled < before:  # the removed cells were dropped: a rebuild
            rebuilt += 1
            assert index.cells is table  # the same array, cleared and filled again
        assert np.all(store.lookup(_numbered_keys(live)) >= 0)
        assert np.all(store.lookup(_numbered_keys(gone)) < 0)
        assert len(store) == len(live) == index.live
    assert rebuilt >= 3


def test_the_store_index_keeps_chains_through_removed_cells():
    """Many keys, every other one removed, then all looked up again and re-added: the
    probe chains pass through removed cells, which must not end them."""

    store = flow_store.FlowStore(capacity=8)
    everyone = np.arange(5000)
    rec = records.empty_records(len(everyone))
    rec["key"] = _numbered_keys(everyone)
    store.put(np.full(len(everyone), -1, dtype=np.int64), rec)
    store.release(store.lookup(_numbered_keys(everyone[::2])))
    found = store.lookup(_numbered_keys(everyone))
    assert (found[1::2] >= 0).all() and (found[::2] == -1).all()
    store.put(np.full(2500, -1, dtype=np.int64), rec[::2])  # reuses removed cells
    assert (store.lookup(_numbered_keys(everyone)) >= 0).all() and len(store) == 5000


# ---- text columns ----------------------------------------------------------------------

# IPv6 groups drawn mostly from 0 and 0xffff, so zero runs of every length and place, and
# the mapped / compatible dotted-quad forms, are common
GROUP = st.sampled_from([0, 0, 0, 0xFFFF, 1, 0x2001, 0xDB8, 0xABCD])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(GROUP, min_size=8, max_size=8), st.booleans()), max_size=30))
def test_address_text_is_the_numpy_renderers(rows):
    from portlabel.flows.render import addresses

    ips = np.array([g for g, _ in rows], dtype=">u2").reshape(-1, 8).view(np.uint8)
    ips = ips.reshape(len(rows), 16)
    v4 = np.array([v for _, v in rows], dtype=bool)
    fast = addresses(ips, v4).to_pylist()
    assert fast == addresses(ips, v4, compiled=False).to_pylist()
    assert all(":" in a for a, is4 in zip(fast, v4, strict=True) if not is4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**96 - 1) | st.sampled_from([0, 1, 61, 62, 2**96 - 1]),
                max_size=30), st.data())  # fmt: skip
def test_uid_text_is_the_numpy_encoding(values, data):
    from portlabel.flows.render import fixed_width, uid_strings
    from portlabel.flows.uid import UidSource, uid_to_int

    limbs = np.array([[(v >> s) & 0xFFFFFFFF for s in (64, 32, 0)] for v in values], np.uint32)
    limbs = limbs.reshape(-1, 3)
    nulls = np.array(data.draw(st.lists(st.booleans(), min_size=len(values),
                                        max_size=len(values))), dtype=bool)  # fmt: skip
    fast = uid_strings(limbs, nulls)
    assert fast.equals(fixed_width(UidSource.chars(limbs), null_mask=nulls))
    assert [uid_to_int(u) for u in fast.to_pylist() if u is not None] == [
        v for v, null in zip(values, nulls, strict=True) if not null
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from([-1, 0, 3, 3, 7, 2**63 - 1, 2**63 - 1]),
                         min_size=17, max_size=17), max_size=20))  # fmt: skip
def test_history_letters_are_the_numpy_order(rows):
    from portlabel.flows.render import letters_by_position

    pos = np.array(rows, dtype=np.int64).reshape(-1, 17)
    letters = np.frombuffer(b"SHADFRQIshadfrqi^", dtype=np.uint8)
    fast = letters_by_position(pos, letters, 2**63 - 1)
    assert np.array_equal(fast, letters_by_position(pos, letters, 2**63 - 1, compiled=False))
