"""Totals of the flows written: flows, packets, bytes and the most common services."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from portlabel.arrowutil import column_values

UNLABELLED = "(unassigned)"


class Summary:
    """Accumulates totals over labelled flow tables."""

    def __init__(self) -> None:
        self.flows = 0
        self.packets = 0
        self.ip_bytes = 0
        self.services: Counter[str] = Counter()
        self.service_bytes: Counter[str] = Counter()
        self.not_in_flows: dict[str, int] = {}  # reason -> packets (set when the run ends)

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.flows += table.num_rows
        size = column_values(table, "orig_ip_bytes") + column_values(table, "resp_ip_bytes")
        pkts = column_values(table, "orig_pkts") + column_values(table, "resp_pkts")
        self.packets += int(pkts.sum())
        self.ip_bytes += int(size.sum())
        t_codes, transports = _codes(table.column("transport"))
        s_codes, services = _codes(table.column("iana.service"))
        services.append(UNLABELLED)  # code -1 (null) reads as the last entry
        pair = t_codes.astype(np.int64) * len(services) + (s_codes % len(services))
        uniq, first, counts = np.unique(pair, return_index=True, return_counts=True)
        totals = np.bincount(np.searchsorted(uniq, pair), weights=size, minlength=len(uniq))
        for i, count, total in zip(first.tolist(), counts.tolist(), totals.tolist(), strict=True):
            name = f"{services[s_codes[i]]}/{transports[t_codes[i]]}"
            self.services[name] += count
            self.service_bytes[name] += int(total)

    def top_services(self, n: int = 10) -> list[tuple[str, int, int]]:
        """(service/transport, flows, IP bytes) of the ``n`` services with most flows."""
        return [(s, c, self.service_bytes[s]) for s, c in self.services.most_common(n)]

    def line(self) -> str:
        top = ", ".join(f"{s} {c:,}" for s, c, _ in self.top_services(3))
        text = f"{self.flows:,} flows, {self.packets:,} packets, {self.ip_bytes:,} IP bytes"
        text = f"{text}; top services: {top}" if top else text
        left = self.left_out()
        return f"{text}; {left}" if left else text

    def left_out(self) -> str:
        """``"12 packets in no flow: 10 not_ip, 2 truncated"``, or "" when none were."""
        total = sum(self.not_in_flows.values())
        if not total:
            return ""
        why = ", ".join(f"{n:,} {k.lower()}" for k, n in sorted(self.not_in_flows.items()))
        return f"{total:,} packet{'s' if total != 1 else ''} in no flow: {why}"


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes (-1 for null) and the distinct strings of a string column.

    Numpy and ``dictionary_encode`` only: pyarrow.compute calls that take a Python
    scalar (``fill_null``, a join separator) import pandas, ~0.4 s of start-up.
    """
    values: dict[str, int] = {}
    parts = [np.zeros(0, dtype=np.int64)]
    for chunk in column.chunks:
        encoded = chunk.dictionary_encode()
        remap = np.array(
            [values.setdefault(v, len(values)) for v in encoded.dictionary.to_pylist()] + [-1],
            dtype=np.int64,
        )
        one = pa.table({"i": encoded.indices})
        idx = column_values(one, "i", fill=-1).astype(np.int64)
        parts.append(remap[idx])
    return np.concatenate(parts), list(values)
