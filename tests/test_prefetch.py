"""The background stages: order, errors, early exit, and the same flows as without them."""

from __future__ import annotations

import threading
import time
import weakref
from pathlib import Path

import pytest

from portlabel.capture.inputs import CaptureInputs
from portlabel.flows import FlowConfig
from portlabel.labelling.pipeline import LabelPipeline, label_batches
from portlabel.labelling.stages import prefetched
from portlabel.registry import default_registry

CAPTURES = Path(__file__).resolve().parent.parent / "captures"


def test_items_arrive_in_order_and_all_of_them():
    assert list(prefetched(range(1000), depth=3)) == list(range(1000))
    assert list(prefetched([])) == []


def test_an_item_handed_over_is_held_by_neither_thread():
    """A flood's batches are tens of MB each: once the consumer lets go of one, it must
    go, while the producer works on the next (and not when that one arrives)."""

    class Item:
        pass

    refs, producing, go_on = [], threading.Event(), threading.Event()

    def items():
        for i in range(3):
            item = Item()
            refs.append(weakref.ref(item))
            yield item
            del item
            if i == 0:  # making the second item: wait until the consumer had the first
                producing.set()
                go_on.wait(5)

    stream = prefetched(items(), depth=1)
    try:
        first = next(stream)
        assert producing.wait(5)
        del first
        assert refs[0]() is None
    finally:
        go_on.set()
    assert len(list(stream)) == 2


def test_a_producer_error_is_raised_where_its_item_would_have_arrived():
    def items():
        yield 1
        yield 2
        raise ValueError("damaged at offset 40")

    got = []
    with pytest.raises(ValueError, match="offset 40"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_meanwhile_runs_in_the_consumer_while_the_producer_works():
    first_made = threading.Event()
    seen = {}

    def items():
        first_made.set()
        yield from range(5)

    def meanwhile():
        seen["thread"] = threading.current_thread()
        seen["producer_started"] = first_made.wait(timeout=5)

    assert list(prefetched(items(), meanwhile=meanwhile)) == list(range(5))
    assert seen == {"thread": threading.current_thread(), "producer_started": True}


def test_a_meanwhile_error_stops_the_producer():
    stopped = threading.Event()

    def items():
        try:
            yield from range(10**9)
        finally:
            stopped.set()

    def meanwhile():
        raise RuntimeError("cannot prepare")

    with pytest.raises(RuntimeError, match="cannot prepare"):
        list(prefetched(items(), meanwhile=meanwhile))
    assert stopped.wait(timeout=5)


def test_leaving_early_stops_the_producer_and_runs_its_cleanup():
    produced, closed = [], threading.Event()

    def items():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    for x in prefetched(items(), depth=2):
        if x == 5:
            break
    assert closed.wait(5)
    time.sleep(0.1)
    assert len(produced) <= 5 + 1 + 2 + 1  # at most a queue's worth beyond the last taken
    assert not any(t.name.startswith("portlabel-") for t in threading.enumerate())


@pytest.mark.parametrize("name", ["zeekreal_infected.pcap", "zeek_vxlan.pcap", "ndpi_1kxun.pcap"])
def test_background_stages_give_exactly_the_same_flows(name):
    path = CAPTURES / name
    reg = default_registry()

    def run(background: bool):
        pipe = LabelPipeline(reg, FlowConfig(uid_seed=7))  # same uids both times
        tables = list(
            label_batches(CaptureInputs([path], 64), reg, pipeline=pipe, background=background)
        )
        return tables, pipe.stats

    fg, fg_stats = run(False)
    bg, bg_stats = run(True)
    assert len(fg) == len(bg) and sum(t.num_rows for t in fg) > 0
    for a, b in zip(fg, bg, strict=True):
        assert a.equals(b)
    assert fg_stats == bg_stats
