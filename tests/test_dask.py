"""``portlabel.dask`` on a real ``distributed.LocalCluster`` (scheduler and two worker
processes): the flows of rotated parts, labelled as Dask tasks and joined, are the flows
of a sequential run, uids included; ``output=`` writes a hive-partitioned dataset."""

from __future__ import annotations

import subprocess
import sys

import pyarrow.dataset as ds
import pytest

import portlabel
from test_parallel import CAPTURES, _split, needs_editcap

distributed = pytest.importorskip("distributed")
portlabel_dask = pytest.importorskip("portlabel.dask")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture()
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


@needs_editcap
@pytest.mark.parametrize("name", ["zeekreal_infected.pcap", "zeek_Teredo.pcap"])
def test_dask_gives_the_sequential_flows(name, client, tmp_path):
    parts = _split(CAPTURES / name, tmp_path, 4)
    frame = portlabel_dask.label_files(parts, client=client, uid_seed=21)
    expect = portlabel.label(parts, uid_seed=21).to_pandas()
    got = frame.compute()[list(expect.columns)]
    assert len(got) == len(expect) > 0

    def text(df):  # dask keeps strings as Arrow strings: compare the values as text
        return df.sort_values("uid").astype(str).values.tolist()

    assert text(got) == text(expect)


@needs_editcap
def test_dask_writes_a_hive_dataset_by_hour(client, tmp_path):
    parts = _split(CAPTURES / "zeekreal_infected.pcap", tmp_path, 3)
    out = portlabel_dask.label_files(parts, client=client, uid_seed=2, output=tmp_path / "flows")
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    table = dataset.to_table()
    expect = portlabel.label(parts, uid_seed=2)
    assert table.num_rows == expect.num_rows
    hours = {p.name for p in (tmp_path / "flows").iterdir()}
    want = {f"hour={h}" for h in portlabel_dask.flow_hours(expect).to_pylist()}
    assert hours == want
    assert sorted(table.column("uid").to_pylist()) == sorted(expect.column("uid").to_pylist())


@needs_editcap
def test_cli_dask(cluster, tmp_path):
    parts = _split(CAPTURES / "zeek_ssh.pcap", tmp_path, 3)
    out = tmp_path / "dataset"
    subprocess.run([sys.executable, "-m", "portlabel", "label", "-q", "--dask",
                    cluster.scheduler_address, "--uid-seed", "3", *parts, "-o", str(out)],
                   check=True)  # fmt: skip
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    expect = portlabel.label(parts, uid_seed=3)
    assert sorted(table.column("uid").to_pylist()) == sorted(expect.column("uid").to_pylist())
