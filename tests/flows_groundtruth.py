"""Shared helpers for the flow tests: run the real capture path and read peers' outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
COMPARED = ("proto", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "conn_state",
            "history")  # fmt: skip
KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")


def run_engine(paths: list[Path], **config) -> pa.Table:
    """reader -> decoder -> FlowTable over ``paths`` as one capture; all flows."""
    from portlabel.capture.decode import decode
    from portlabel.capture.inputs import CaptureInputs
    from portlabel.flows import FlowConfig, FlowTable

    table = FlowTable(FlowConfig(uid_seed=7, **config))
    parts = []
    for raw in CaptureInputs(paths).raw_batches():
        out = table.update(decode(raw))
        if out is not None:
            parts.append(out)
    parts.append(table.flush())
    return pa.concat_tables(parts)


def read_zeek_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log, also when it was cut with zeek-cut (bare header line)."""
    fields: list[str] | None = None
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if fields is None:
            fields = parts
            continue
        rows.append(dict(zip(fields, parts, strict=True)))
    return rows


def _value(name: str, v) -> str:
    if v is None:
        return "-"
    return str(v)


def engine_rows(table: pa.Table) -> list[dict[str, str]]:
    out = []
    for r in table.to_pylist():
        row = {k: _value(k, v) for k, v in r.items()}
        if row["proto"] == "unknown_transport":  # Zeek has no ports for these
            row["id.orig_p"] = row["id.resp_p"] = "0"
        out.append(row)
    return out


def compare(zeek: list[dict[str, str]], ours: list[dict[str, str]]):
    """Match flows by the 5-tuple as directed by each side; count identical compared fields.

    Returns (n_zeek, n_identical, differences) where differences lists
    (key, zeek_values, our_values_or_None).
    """
    key_fields = [k for k in KEY if zeek and k in zeek[0]]
    fields = [f for f in COMPARED if zeek and f in zeek[0]]
    by_key: dict[tuple, list[tuple]] = {}
    for r in ours:
        by_key.setdefault(tuple(r[k] for k in key_fields), []).append(tuple(r[f] for f in fields))
    identical = 0
    diffs = []
    zeek_by_key: dict[tuple, list[tuple]] = {}
    for r in zeek:
        zeek_by_key.setdefault(tuple(r[k] for k in key_fields), []).append(
            tuple(r[f] for f in fields)
        )
    for key, zvals in zeek_by_key.items():
        ovals = by_key.get(key, [])
        common = Counter(zvals) & Counter(ovals)
        identical += sum(common.values())
        left_z = list((Counter(zvals) - common).elements())
        left_o = list((Counter(ovals) - common).elements())
        for i, zv in enumerate(left_z):
            ov = left_o[i] if i < len(left_o) else None
            diffs.append((key, dict(zip(fields, zv, strict=True)),
                          None if ov is None else dict(zip(fields, ov, strict=True))))  # fmt: skip
    return len(zeek), identical, diffs
