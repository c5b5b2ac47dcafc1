"""``portlabel live`` errors and the pure helpers of the live package (no root needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from portlabel.live.output import rotated_name
from portlabel.live.queued import frames_to_batch


def _live(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "portlabel", "live", *args], capture_output=True, text=True
    )


def test_missing_interface_is_one_line_exit_1():
    done = _live("-i", "nosuchif0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["portlabel: nosuchif0: no such network interface"]


@pytest.mark.skipif(not shutil.which("tcpdump"), reason="needs tcpdump as the BPF oracle")
@pytest.mark.parametrize("expr", ["tcp", "udp port 53", "vlan and ip6", "host 10.1.2.3"])
def test_bpf_program_equals_tcpdumps(expr):
    from portlabel.capture.bpf import compile_filter, parse_dd

    done = subprocess.run(
        ["tcpdump", "-dd", "-y", "EN10MB", expr], capture_output=True, text=True, check=True
    )
    assert compile_filter(expr, 1) == parse_dd(done.stdout)


def test_bad_bpf_filter_is_usage_error():
    from portlabel.capture.bpf import compile_filter
    from portlabel.errors import UsageError

    with pytest.raises(UsageError, match="bad BPF filter"):
        compile_filter("tcp port", 1)


def test_rotated_name_is_zeek_style():
    name = rotated_name("/x/conn.log", 0.0, 3600.0)
    assert name.startswith("/x/conn.") and name.endswith(".log")
    opened, closed = name[len("/x/conn.") : -len(".log")].split("-", 6)[:6], None
    assert len(name.split("/")[-1].split(".")) == 3
    assert closed is None and len(opened) == 6


@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=40))
def test_frames_to_batch_keeps_every_frame(frames):
    meta = [(i * 1000, len(f) + 3, i % 2) for i, f in enumerate(frames)]
    batch = frames_to_batch(frames, meta, [1, 101])
    assert [batch.frame_bytes(i) for i in range(len(batch))] == frames
    assert batch.linktype.tolist() == [[1, 101][i % 2] for i in range(len(frames))]
    assert np.array_equal(batch.wirelen, [len(f) + 3 for f in frames])


@pytest.mark.parametrize("fmt", ["jsonl", "zeek"])
def test_warm_up_frames_are_one_flow_of_each_kind_the_writer_renders(fmt, monkeypatch):
    """The warm-up must really exercise TCP, UDP and ICMP over IPv4 and TCP over IPv6
    (a frame that stopped decoding would warm up nothing)."""
    from portlabel.labelling.pipeline import LabelPipeline
    from portlabel.live import warmup
    from portlabel.registry import default_registry

    seen = []
    real_finish = LabelPipeline.finish

    def finish(self):
        table = real_finish(self)
        rows = table.select(["proto", "id.resp_h"]).to_pylist()
        seen.extend((r["proto"], r["id.resp_h"]) for r in rows)
        return table

    monkeypatch.setattr(LabelPipeline, "finish", finish)
    warmup.warm_up(default_registry(), fmt)
    kinds = {(proto, ":" in host) for proto, host in seen}
    assert kinds == {("tcp", False), ("udp", False), ("icmp", False), ("tcp", True)}
