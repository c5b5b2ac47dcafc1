"""portlabel on a Dask cluster: ``label_files(files, client=...)``.

Each file is one Dask task (``parallel.part.label_part``) run on the cluster's workers,
which read the files themselves (the paths must name the same files there: a shared
file system or object store mount). The results come back to this process in file
order and are joined by the merge step (``parallel.stitch``): flows that cross files
are one flow, as in a sequential run, and a seeded run gives the sequential run's uids.
What travels: a small job description out, and back per file its finished flows (Arrow),
the flows still open at its end and the packet rows of each key's first flow (heads).

``output=DIR`` writes a hive-partitioned Parquet dataset (``hour=YYYY-MM-DDTHH/``, by
the hour the flow started, UTC); without it a dask DataFrame is returned.

    >>> from distributed import Client                               # doctest: +SKIP
    >>> import portlabel.dask
    >>> client = Client("tcp://scheduler:8786")                      # doctest: +SKIP
    >>> flows = portlabel.dask.label_files(paths, client=client)     # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from portlabel.capture.inputs import Paths, as_paths

HOUR_COLUMN = "hour"


def _submitter(client):
    """``submit(fn, job)`` on ``client``, each job its own task (``pure=False``)."""

    def submit(fn, job):
        return client.submit(
            fn, job, pure=False, key=f"portlabel-part-{job.index}-{os.getpid()}-{id(job)}"
        )

    return submit


def labelled_tables(
    files: Paths,
    client,
    *,
    registry=None,
    overlays=(),
    independent: bool = False,
    batch_size: int = 65536,
    packet_filter: str | None = None,
    config=None,
    on_warning=None,
    on_problem=None,
    **flow_options: Any,
) -> Iterator[pa.Table]:
    """The labelled flow tables of ``files``, labelled on ``client``'s cluster."""
    from portlabel.flows.config import flow_config
    from portlabel.parallel.jobs import ParallelLabelling
    from portlabel.registry.loading import resolve_registry

    cfg = flow_config(config, **flow_options)
    local = resolve_registry(registry, overlays)
    run = ParallelLabelling(
        as_paths(files), local, cfg, jobs=len(as_paths(files)) or 1, batch_size=batch_size,
        packet_filter=packet_filter, independent=independent, on_warning=on_warning,
        on_problem=on_problem, submit=_submitter(client),
        worker_registry=(None if registry is None else os.fspath(registry), tuple(overlays)),
    )  # fmt: skip
    yield from run


def label_files(
    files: Paths,
    client=None,
    *,
    output: str | os.PathLike | None = None,
    **options: Any,
):
    """Label ``files`` (one capture, or ``independent=True`` ones) on a Dask cluster.

    ``client`` is a ``distributed.Client`` (default: the current one). Options are
    ``label``'s: ``registry``, ``overlays``, flow options (``uid_seed=1``...). With
    ``output`` the flows go to a hive-partitioned Parquet dataset there (partitioned by
    the hour of flow start) and the path is returned; else a dask DataFrame, one
    partition per file's worth of flows.
    """
    import dask.dataframe as dd

    if client is None:
        from distributed import get_client

        client = get_client()
    tables = [t for t in labelled_tables(files, client, **options) if t.num_rows]
    if not tables:
        from portlabel.labelling.flows import labelled_schema

        tables = [labelled_schema().empty_table()]
    if output is not None:
        write_hive_dataset(tables, os.fspath(output))
        return os.fspath(output)
    frames = [t.to_pandas() for t in tables]
    return dd.concat([dd.from_pandas(f, npartitions=1) for f in frames])


def flow_hours(table: pa.Table) -> pa.Array:
    """The UTC hour each flow started in, as ``YYYY-MM-DDTHH`` strings."""
    from portlabel.arrowutil import column_values, strings

    ts = table.column("ts")
    if pa.types.is_timestamp(ts.type):
        ns = column_values(table.set_column(0, "ts", ts.cast(pa.int64())), "ts")
        unit = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[ts.type.unit]
        seconds = ns * unit // 10**9
    else:
        seconds = np.floor(column_values(table, "ts")).astype(np.int64)
    hours = (seconds // 3600) * 3600
    labels = np.datetime_as_string(hours.astype("datetime64[s]"), unit="h")
    return strings(labels.tolist())


def write_hive_dataset(tables: list[pa.Table], output: str) -> None:
    """Write ``tables`` under ``output`` as Parquet, partitioned ``hour=...`` (hive)."""
    import pyarrow.dataset as ds

    whole = pa.concat_tables(tables)
    whole = whole.append_column(HOUR_COLUMN, flow_hours(whole))
    partitioning = ds.partitioning(pa.schema([(HOUR_COLUMN, pa.string())]), flavor="hive")
    ds.write_dataset(whole, output, format="parquet", partitioning=partitioning,
                     existing_data_behavior="error")  # fmt: skip
