"""Labelling in worker processes gives the flows of one sequential run.

Real captures are cut into rotated parts with Wireshark's editcap (a few packets per
part, so that many flows cross the cuts), labelled by ``parallel.ParallelLabelling``
(with and without the heads going through a file, and with the merge step reading a
part again) and compared flow for flow, uids included, with ``portlabel.label`` over the
same parts.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from concurrent.futures import Future
from pathlib import Path

import pyarrow as pa
import pytest

import portlabel
from portlabel.flows.config import FlowConfig
from portlabel.labelling.api import run_metadata
from portlabel.parallel.jobs import ParallelLabelling
from portlabel.registry.loading import resolve_registry

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
EDITCAP = shutil.which("editcap")
needs_editcap = pytest.mark.skipif(EDITCAP is None, reason="editcap (Wireshark) not installed")

# TCP, UDP, tunnels (Teredo, GTP, VXLAN in the parity set), fragments, VLANs
SPLIT = [
    "zeekreal_infected.pcap",
    "zeek_ssh.pcap",
    "zeek_Teredo.pcap",
    "zeek_gtp1_gn_normal_incl_fragmentation.pcap",
    "ndpi_1kxun.pcap",
    "nfs_instagram.pcap",
    "zeek_pppoe-over-qinq.pcap",
    "ndpi_dns_fragmented.pcap",
    "zeek_wikipedia.pcap",
]
# parts the merge step joins without reading any again (in the others, a datagram's
# fragments or a connection's close fall on both sides of a cut, and the part after the
# cut is read again by the merge step: the flows must be the same either way)
JOINED = {"zeekreal_infected.pcap", "zeek_ssh.pcap", "ndpi_1kxun.pcap", "nfs_instagram.pcap",
          "zeek_wikipedia.pcap", "zeek_Teredo.pcap"}  # fmt: skip


def _split(capture: Path, tmp: Path, parts: int) -> list[str]:
    packets = int(
        subprocess.run(["capinfos", "-M", "-c", "-r", "-T", str(capture)], capture_output=True,
                       text=True, check=True).stdout.split()[-1]
    )  # fmt: skip
    if packets < parts:
        return []
    each = max(1, -(-packets // parts))
    out = tmp / (capture.name + ".part.pcap")
    subprocess.run([EDITCAP, "-F", "pcap", "-c", str(each), str(capture), str(out)], check=True)
    return sorted(str(p) for p in tmp.glob(capture.name + ".part_*"))


def _rows(table: pa.Table, columns: list[str]) -> list[dict]:
    return table.select(columns).sort_by([("uid", "ascending")]).to_pylist()


class _InProcess:
    """An executor that runs each job at once, here (heads travel in the result)."""

    def submit(self, fn, *args):
        future: Future = Future()
        future.set_result(fn(*args))
        return future


@pytest.fixture(scope="module")
def registry():
    return resolve_registry(None, ())


@needs_editcap
@pytest.mark.parametrize("name", SPLIT)
def test_rotated_parts_give_the_sequential_flows(name, tmp_path, registry):
    parts = _split(CAPTURES / name, tmp_path, 5)
    assert len(parts) >= 2
    config = FlowConfig(uid_seed=11)
    sequential = portlabel.label(parts, uid_seed=11)
    run = ParallelLabelling(parts, registry, config, jobs=2)
    together = pa.concat_tables(list(run))
    assert _rows(together, sequential.column_names) == _rows(sequential, sequential.column_names)
    if name in JOINED:  # the replay of heads met the worker's flows at every cut
        assert run.stitcher.reread == []
    assert run.stats.flows == sequential.num_rows
    assert run.stats.metadata() | {"undecodable": []} == (
        run_metadata(sequential) | {"undecodable": []}
    )


@needs_editcap
def test_heads_in_the_results_and_the_fallback_agree(tmp_path, registry):
    parts = _split(CAPTURES / "zeekreal_infected.pcap", tmp_path, 4)
    config = FlowConfig(uid_seed=3)
    sequential = portlabel.label(parts, uid_seed=3)
    cols = sequential.column_names
    inline = ParallelLabelling(parts, registry, config, jobs=1, submit=_InProcess().submit)
    assert _rows(pa.concat_tables(list(inline)), cols) == _rows(sequential, cols)
    # a part older than the one before it is read again by the merge step, in order
    backwards = [parts[0], parts[2], parts[1], parts[3]]
    expect = portlabel.label(backwards, uid_seed=3)
    warned: list[str] = []
    run = ParallelLabelling(backwards, registry, config, jobs=2, on_warning=warned.append)
    got = pa.concat_tables(list(run))
    assert run.stitcher.reread == [parts[1]]
    assert any("before the last packet of" in w for w in warned)
    assert _rows(got, cols) == _rows(expect, cols)


@needs_editcap
def test_independent_files_are_labelled_alone(tmp_path, registry):
    a = _split(CAPTURES / "zeek_ssh.pcap", tmp_path, 2)[0]
    b = str(CAPTURES / "zeek_wikipedia.pcap")
    run = ParallelLabelling([a, b], registry, FlowConfig(uid_seed=5), jobs=2, independent=True)
    got = pa.concat_tables(list(run))
    expect = pa.concat_tables([portlabel.label(a, uid_seed=5), portlabel.label(b, uid_seed=5)])
    assert _rows(got, expect.column_names) == _rows(expect, expect.column_names)


def test_unreadable_part_is_reported_and_the_rest_labelled(tmp_path, registry):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all, not even close")
    good = str(CAPTURES / "zeek_ssh.pcap")
    problems: list[str] = []
    run = ParallelLabelling([good, str(bad), good.replace("ssh", "wikipedia")], registry,
                            FlowConfig(), jobs=2, on_problem=problems.append)  # fmt: skip
    got = pa.concat_tables(list(run))
    assert len(problems) == 1 and str(bad) in problems[0]
    expect = portlabel.label([good, good.replace("ssh", "wikipedia")])
    assert got.num_rows == expect.num_rows
    assert not run.all_failed


@needs_editcap
def test_cli_jobs_gives_the_one_process_output(tmp_path):
    import pyarrow.parquet as pq

    parts = _split(CAPTURES / "nfs_instagram.pcap", tmp_path, 4)
    out1, out2 = tmp_path / "one.parquet", tmp_path / "two.parquet"
    for out, jobs in ((out1, "1"), (out2, "2")):
        subprocess.run(["portlabel", "label", "-q", "-j", jobs, "--uid-seed", "9", *parts,
                        "-o", str(out)], check=True)  # fmt: skip
    one, two = pq.read_table(out1), pq.read_table(out2)
    assert _rows(one, one.column_names) == _rows(two, one.column_names)


# ---- one file cut into byte ranges ---------------------------------------------------


def _record_starts(path: Path) -> list[int]:
    import struct

    data = path.read_bytes()
    starts, pos = [], 24
    while pos + 16 <= len(data):
        starts.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return starts


@pytest.mark.parametrize("name", ["zeekreal_infected.pcap", "nfs_instagram.pcap",
                                  "ndpi_1kxun.pcap", "zeek_Teredo.pcap"])  # fmt: skip
def test_cut_points_are_record_starts(name):
    from portlabel.parallel.split import record_ranges

    path = CAPTURES / name
    ranges = record_ranges(str(path), 7)
    assert ranges is not None and len(ranges) >= 2
    assert ranges[0][0] == 24 and ranges[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    starts = set(_record_starts(path))
    assert all(a in starts for a, _ in ranges)


def test_files_that_are_not_cut(tmp_path):
    from portlabel.parallel.split import record_ranges

    assert record_ranges(str(CAPTURES / "ndpi_sites.pcapng"), 4) is None  # pcapng
    assert record_ranges(str(CAPTURES / "scapy_http_chunk.pcap.gz"), 4) is None  # gzip
    tiny = tmp_path / "tiny.pcap"
    tiny.write_bytes((CAPTURES / "zeek_ssh.pcap").read_bytes()[:30])
    assert record_ranges(str(tiny), 4) is None


@pytest.mark.parametrize(
    "name",
    [
        "zeekreal_infected.pcap",
        "nfs_instagram.pcap",
        "ndpi_1kxun.pcap",
        "zeek_Teredo.pcap",
        "zeek_ssh.pcap",
        "nfs_alexa-app.pcapng",
    ],
)  # fmt: skip  (the last: big-endian pcap)
def test_one_file_in_ranges_gives_the_sequential_flows(name, registry):
    path = str(CAPTURES / name)
    size = Path(path).stat().st_size
    run = ParallelLabelling([path], registry, FlowConfig(uid_seed=8), jobs=2,
                            split_bytes=max(size // 6, 1))  # fmt: skip
    got = pa.concat_tables(list(run))
    assert len(run.parts) >= 3 and all(p["range"] is not None for p in run.parts)
    expect = portlabel.label(path, uid_seed=8)
    assert _rows(got, expect.column_names) == _rows(expect, expect.column_names)
    assert run.stats.frames == run_metadata(expect)["frames"]


def test_a_wrong_cut_is_found_and_the_range_read_from_the_true_start(monkeypatch, registry):
    from portlabel.parallel import jobs

    path = CAPTURES / "zeekreal_infected.pcap"
    starts = _record_starts(path)
    size = path.stat().st_size
    good = starts[len(starts) // 3]
    wrong = starts[2 * len(starts) // 3] + 7  # inside a record: what a fake header gives
    monkeypatch.setattr(jobs, "record_ranges",
                        lambda p, n: [(24, good), (good, wrong), (wrong, size)])  # fmt: skip
    run = ParallelLabelling([str(path)], registry, FlowConfig(uid_seed=8), jobs=2,
                            split_bytes=size // 3)  # fmt: skip
    got = pa.concat_tables(list(run))
    expect = portlabel.label(str(path), uid_seed=8)
    assert run.stitcher.reread == [str(path)]
    assert _rows(got, expect.column_names) == _rows(expect, expect.column_names)


def test_cli_one_big_file_with_jobs(tmp_path):
    import pyarrow.parquet as pq

    capture = tmp_path / "big.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(capture),
                    "--packets", "30000", "--flows", "1500"], check=True,
                   capture_output=True)  # fmt: skip
    assert capture.stat().st_size >= 16 << 20  # big enough to be cut
    outs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"j{jobs}.parquet"
        subprocess.run(["portlabel", "label", "-q", "-j", jobs, "--uid-seed", "2",
                        str(capture), "-o", str(out)], check=True)  # fmt: skip
        outs.append(pq.read_table(out))
    assert outs[0].num_rows > 1000
    assert _rows(outs[0], outs[0].column_names) == _rows(outs[1], outs[0].column_names)


# ---- every bundled capture --------------------------------------------------------

PARITY = ROOT / "tests" / "data" / "zeek_parity"
EVERY = sorted(
    [p for p in CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng")]
    + list(PARITY.glob("*/*.pcap*"))
)


@needs_editcap
@pytest.mark.parametrize("capture", EVERY, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_bundled_capture_cut_in_four_gives_the_sequential_flows(capture, tmp_path,
                                                                      registry):  # fmt: skip
    try:
        parts = _split(capture, tmp_path, 4)
    except (subprocess.CalledProcessError, ValueError, IndexError):
        pytest.skip("capinfos/editcap cannot read it")
    if len(parts) < 2:
        pytest.skip("fewer than two parts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged captures warn the same either way
        expect = portlabel.label(parts, uid_seed=1, errors="warn")
    run = ParallelLabelling(parts, registry, FlowConfig(uid_seed=1), jobs=2)
    tables = list(run)
    got = pa.concat_tables(tables) if tables else expect.schema.empty_table()
    assert _rows(got, expect.column_names) == _rows(expect, expect.column_names)


@needs_editcap
def test_a_part_that_cannot_be_read_again_here_is_joined_with_a_warning(tmp_path, registry):
    from portlabel.parallel.part import PartJob, label_part
    from portlabel.parallel.stitch import Stitcher

    parts = _split(CAPTURES / "zeekreal_infected.pcap", tmp_path, 4)
    backwards = [parts[0], parts[2], parts[1], parts[3]]
    config = FlowConfig(uid_seed=3)
    warned: list[str] = []
    stitcher = Stitcher(registry, config, reprocess=lambda *args: None,
                        on_warning=warned.append)  # fmt: skip
    tables = []
    for i, path in enumerate(backwards):
        tables += stitcher.add(label_part(PartJob(i, path, config, registry)))
    tables += stitcher.finish()
    got = pa.concat_tables(tables)
    assert stitcher.unjoined == [parts[1]]
    assert any("could not be joined exactly" in w for w in warned)
    expect = portlabel.label(backwards, uid_seed=3)
    packets = ["orig_pkts", "resp_pkts"]
    total = sum(sum(got.column(c).to_pylist()) for c in packets)
    assert total == sum(sum(expect.column(c).to_pylist()) for c in packets)  # none lost


def _dies(job):
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would


def test_a_worker_that_dies_is_one_line_naming_its_file(monkeypatch, registry):
    from portlabel.errors import PortlabelError
    from portlabel.parallel import jobs

    monkeypatch.setattr(jobs, "label_part", _dies)
    path = str(CAPTURES / "zeek_ssh.pcap")
    run = ParallelLabelling([path, path.replace("ssh", "wikipedia")], registry, FlowConfig(),
                            jobs=2)  # fmt: skip
    with pytest.raises(PortlabelError, match="worker process labelling it died"):
        list(run)
