"""The compact store of active flows, and folding a flood's batch in pieces.

The store keeps records in fewer bytes than the engine works on (side tables for TCP
state, 16-bit letter offsets, 32-bit counters, 16-bit VLAN ids, numbered tunnel
parents); what it gives back must be exactly what it was given, for any values (VLAN
ids: any of their 12 bits, or -1 for none; another is refused). Folding a batch in
pieces must give the flows of the unsplit batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import portlabel
from portlabel.capture.inputs import CaptureInputs
from portlabel.flows.engine import FlowTable
from portlabel.flows.keys import KEY_WIDTH, SHORT_WIDTH
from portlabel.flows.pieces import split_keyed
from portlabel.flows.records import NO_POS, RECORD_DTYPE, RECORD_FIELDS, empty_records
from portlabel.flows.store import SIDE_FIELDS, STORED_DTYPE, FlowStore
from portlabel.labelling.pipeline import LabelPipeline
from portlabel.registry import default_registry

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
BIG = 1 << 40


def records_from(draw, n: int, ids: list[int]):
    """``n`` records with unique keys from ``ids`` and values drawn over the fields' whole
    ranges: most flows with TCP state at its initial values, some not; letter positions
    unseen, near the first packet, past 32 bits from it, or before it."""
    rec = empty_records(n)
    rec["key"][:, :8] = np.array(ids, dtype="<u8").view(np.uint8).reshape(-1, 8)
    for i, parent in enumerate(draw(st.lists(st.sampled_from([0, 0, 1, 2, 255]), min_size=n,
                                             max_size=n))):  # fmt: skip
        if parent:  # keyed by a tunnel parent: a few shared, set at either end of the field
            rec["key"][i, SHORT_WIDTH + parent % 40] = parent
            rec["key"][i, KEY_WIDTH - 1] = parent
    rec["pos0"] = draw(st.lists(st.integers(0, BIG), min_size=n, max_size=n))
    for name in ("pkts", "ip_bytes", "payload", "first_ts", "last_ts", "mac", "uid", "vlans"):
        info = np.iinfo(rec[name].dtype)
        low, high = (-1, 4095) if name == "vlans" else (max(info.min, -BIG), min(info.max, BIG))
        flat = rec[name].reshape(n, -1)
        for i in range(n):
            flat[i] = draw(st.lists(st.integers(low, high),
                                    min_size=flat.shape[1], max_size=flat.shape[1]))  # fmt: skip
    for i in range(n):
        if draw(st.booleans()):  # some TCP-like state
            name = draw(st.sampled_from(SIDE_FIELDS))
            info = np.iinfo(rec[name].dtype) if rec[name].dtype != bool else None
            flat = rec[name].reshape(n, -1)
            j = draw(st.integers(0, flat.shape[1] - 1))
            flat[i, j] = True if info is None else draw(st.integers(max(info.min, -BIG), info.max))
        for j in draw(st.lists(st.integers(0, 15), max_size=4)):
            delta = draw(st.sampled_from([0, 1, 7, (1 << 32) - 2, (1 << 32) - 1, 1 << 33, -1]))
            rec["first_pos"][i, j] = rec["pos0"][i] + delta
    return rec


@pytest.mark.parametrize("vlan", [-2, 4096, 1 << 20])
def test_a_vlan_id_past_12_bits_is_refused_not_cut(vlan):
    rec = empty_records(2)
    rec["key"][:, 0] = [1, 2]
    rec["vlans"][1] = [vlan, -1]
    with pytest.raises(ValueError, match="VLAN id"):
        FlowStore().put(np.full(2, -1, dtype=np.int64), rec)


def same_records(a, b) -> bool:
    return all(np.array_equal(a[name], b[name]) for name in RECORD_DTYPE.names)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_the_store_gives_back_exactly_what_it_was_given(data):
    n = data.draw(st.integers(1, 40))
    ids = data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    store = FlowStore(capacity=4)  # small: it grows while the test runs
    first = records_from(data.draw, n, ids)
    slots = store.put(np.full(n, -1, dtype=np.int64), first)
    assert same_records(store.get(slots), first)
    again = records_from(data.draw, n, ids)  # the same flows, new state (side rows change)
    again["key"] = first["key"]
    assert np.array_equal(store.put(slots, again), slots)
    assert same_records(store.get(store.lookup(again["key"])), again)
    half = slots[: n // 2]
    assert same_records(store.release(half), again[: n // 2])
    assert (store.lookup(again["key"][: n // 2]) == -1).all()
    rest = store.release(slots[n // 2 :])
    assert same_records(rest, again[n // 2 :]) and len(store) == 0
    assert len(store._side) == len(store._wide) == 0  # every side row handed back
    assert len(store._parents) == 0  # and every parent's number


def test_flows_without_tcp_state_take_no_side_rows_and_freed_slots_are_reused_last_first():
    store = FlowStore(capacity=2)
    rec = empty_records(5)
    rec["key"][:, 0] = np.arange(1, 6)
    rec["pos0"] = 10
    rec["first_pos"][:, 1] = 12  # a UDP flow's letter D
    slots = store.put(np.full(5, -1, dtype=np.int64), rec)
    assert sorted(slots.tolist()) == [0, 1, 2, 3, 4] and len(store._side) == 0
    assert STORED_DTYPE.itemsize * 2 < RECORD_DTYPE.itemsize  # what the store is for
    store.release(np.array([3, 1]))
    got = store.put(np.full(2, -1, dtype=np.int64), rec[[1, 3]])
    assert got.tolist() == [1, 3]  # the last freed first, as taken off a stack
    assert same_records(store.get(got), rec[[1, 3]])


def test_growing_with_a_view_held_copies_instead_of_moving_the_memory():
    store = FlowStore(capacity=2)
    rec = empty_records(2)
    rec["key"][:, 0] = [1, 2]
    rec["pkts"] = [[5, 6], [7, 8]]
    store.put(np.full(2, -1, dtype=np.int64), rec)
    held = store.cols["pkts"]  # a view of the slot array: it must stay readable
    more = empty_records(30)
    more["key"][:, 0] = np.arange(3, 33)
    store.put(np.full(30, -1, dtype=np.int64), more)
    assert held[:2].tolist() == [[5, 6], [7, 8]]
    assert same_records(store.get(np.array([0, 1])), rec)
    assert len(store.cols) >= 32 and set(RECORD_FIELDS) >= set(SIDE_FIELDS)


def _fold_all(path: Path, limit: int | None, **options) -> list:
    """Every flow of ``path``'s capture, rendered, folding each batch whole or in pieces
    of at most about ``limit`` flows."""
    table = FlowTable(portlabel.flow_config(uid_seed=7, **options))
    pipe = LabelPipeline(default_registry())
    out = []
    for raw in CaptureInputs([str(path)], batch_size=4096):
        keyed = table.key(pipe.decoded(raw))
        pieces = [keyed] if limit is None else split_keyed(keyed, limit)
        if limit is not None and len(keyed.gstarts) > limit:
            assert len(pieces) > 1
        for i, piece in enumerate(pieces, 1):
            if limit is None:
                done = table.fold_keyed(piece)
                out.extend([] if done is None else [done.table()])
            else:  # evicted flows taken out of the store a piece at a time
                out.extend(p.table() for p in table.fold_keyed_pieces(piece, i == len(pieces)))
    done = table.drain()
    if done is not None:
        out.append(done.table())
    return out


def _rows(tables: list) -> list[dict]:
    """The flows, by uid: a batch's finished flows come out in start order, a piece's
    among themselves."""
    return sorted((row for t in tables for row in t.to_pylist()), key=lambda r: r["uid"])


def test_a_batch_folded_in_pieces_gives_the_flows_of_the_whole_batch():
    for name in ("ndpi_1kxun.pcap", "ndpi_4in4tunnel.pcap", "zeekreal_infected.pcap"):
        path = CAPTURES / name
        whole = _rows(_fold_all(path, None))
        assert len(whole) >= 5
        for limit in (1, 9):
            assert _rows(_fold_all(path, limit)) == whole, (name, limit)


def test_pieces_evict_as_the_whole_batch_does():
    path = CAPTURES / "ndpi_1kxun.pcap"
    whole = _rows(_fold_all(path, None, max_flows=50))
    assert sum(r["end_reason"] == "evicted" for r in whole) > 10
    assert _rows(_fold_all(path, 5, max_flows=50)) == whole


def test_letter_positions_far_from_the_first_packet_round_trip_through_the_store():
    store = FlowStore()
    rec = empty_records(1)
    rec["key"][0, 0] = 9
    rec["pos0"] = 100
    rec["first_pos"][0] = NO_POS
    rec["first_pos"][0, 3] = 100 + (1 << 35)  # a flow alive for 34 G packets
    slot = store.put(np.array([-1]), rec)
    assert len(store._wide) == 1
    assert store.get(slot)["first_pos"][0, 3] == 100 + (1 << 35)
    rec["first_pos"][0, 3] = 101
    store.put(slot, rec)
    assert len(store._wide) == 0 and store.release(slot)["first_pos"][0, 3] == 101


@pytest.mark.parametrize(("offset", "wide"), [(0, 0), (65534, 0), (65535, 1), (70_000, 1)])
def test_letter_offsets_past_16_bits_go_to_the_wide_table_and_round_trip(offset, wide):
    store = FlowStore()
    rec = empty_records(2)
    rec["key"][:, 0] = (9, 10)
    rec["pos0"] = 100
    rec["first_pos"] = NO_POS
    rec["first_pos"][0, 5] = 100 + offset  # the first flow's letter ``offset`` packets on
    rec["first_pos"][1, 0] = 100  # the second's at its first packet
    slots = store.put(np.array([-1, -1]), rec)
    assert len(store._wide) == wide
    back = store.release(slots)
    assert back["first_pos"].tolist() == rec["first_pos"].tolist()
    assert len(store._wide) == 0


def test_the_pipeline_hands_a_flood_on_in_pieces_with_the_flows_of_the_whole_batch():
    from portlabel.capture.frames import frame_batches
    from portlabel.flows.pieces import PIECE_FLOWS
    from portlabel.labelling.pipeline import label_batches
    from test_max_flows import udp_frame

    n = PIECE_FLOWS * 2 + 500  # one batch, every packet a new flow
    config = portlabel.flow_config(uid_seed=3, max_flows=PIECE_FLOWS)

    def batches():
        return frame_batches(map(udp_frame, range(n)), batch_size=n)

    piecewise = list(label_batches(batches(), default_registry(), config, background=False))
    pipe = LabelPipeline(default_registry(), config)
    whole = [pipe.feed(b) for b in batches()] + [pipe.finish()]
    assert max(t.num_rows for t in piecewise) <= PIECE_FLOWS < n
    assert _rows(piecewise) == _rows([t for t in whole if t is not None])
    assert sum(t.num_rows for t in piecewise) == n


def test_keys_with_a_tunnel_parent_are_found_only_with_that_parent():
    store = FlowStore(capacity=2)
    rec = empty_records(3)
    rec["key"][:, 0] = [1, 1, 2]  # flows 0 and 1: one 5-tuple inside two tunnels
    rec["key"][0, SHORT_WIDTH:] = 7
    rec["key"][1, SHORT_WIDTH:] = 8
    rec["key"][2, SHORT_WIDTH:] = 7  # another 5-tuple in the first tunnel
    slots = store.put(np.full(3, -1, dtype=np.int64), rec)
    assert store.lookup(rec["key"]).tolist() == slots.tolist() and len(store._parents) == 2
    other = rec["key"][:1].copy()
    other[0, SHORT_WIDTH:] = 9  # a tunnel no stored flow is in
    bare = rec["key"][:1].copy()
    bare[0, SHORT_WIDTH:] = 0
    assert store.lookup(other).tolist() == store.lookup(bare).tolist() == [-1]
    assert store.slot(rec["key"][1].tobytes()) == slots[1]
    assert same_records(store.release(slots[[0]]), rec[[0]]) and len(store._parents) == 2
    assert same_records(store.release(slots[[2]]), rec[[2]]) and len(store._parents) == 1
