"""Totals of the flows written: flows, packets, bytes and the most common services."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

UNLABELLED = "(unassigned)"


class Summary:
    """Accumulates totals over labelled flow tables."""

    def __init__(self) -> None:
        self.flows = 0
        self.packets = 0
        self.ip_bytes = 0
        self.services: Counter[str] = Counter()
        self.service_bytes: Counter[str] = Counter()

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self.flows += table.num_rows
        pkts = pc.add(table.column("orig_pkts"), table.column("resp_pkts"))
        size = pc.add(table.column("orig_ip_bytes"), table.column("resp_ip_bytes"))
        self.packets += pc.sum(pkts).as_py() or 0
        self.ip_bytes += pc.sum(size).as_py() or 0
        names = pc.binary_join_element_wise(
            table.column("transport"),
            table.column("iana.service").fill_null(UNLABELLED),
            "/",
        )
        grouped = (
            pa.Table.from_arrays([names, size], ["s", "b"])
            .group_by("s")
            .aggregate([("s", "count"), ("b", "sum")])
        )
        for name, count, total in zip(
            grouped.column("s").to_pylist(),
            grouped.column("s_count").to_pylist(),
            grouped.column("b_sum").to_pylist(),
            strict=True,
        ):
            self.services[name] += count
            self.service_bytes[name] += total or 0

    def top_services(self, n: int = 10) -> list[tuple[str, int, int]]:
        """(transport/service, flows, IP bytes) of the ``n`` services with most flows."""
        return [(s, c, self.service_bytes[s]) for s, c in self.services.most_common(n)]

    def line(self) -> str:
        top = ", ".join(f"{s} {c:,}" for s, c, _ in self.top_services(3))
        text = f"{self.flows:,} flows, {self.packets:,} packets, {self.ip_bytes:,} IP bytes"
        return f"{text}; top services: {top}" if top else text
