"""``--view``: a rich table of the active connections, their labels and rates, every second.

The view keeps its own small tally, apart from the flow engine: each batch is decoded
(the view is a human mode; the second decode is its price) and its packets are grouped
per directed 5-tuple with numpy; the tally holds per connection the packets and bytes,
the previous second's counts (for rates) and the last time seen. Connections quiet for
longer than ``QUIET`` leave the table. Totals by service are summed from the labelled
flows the session writes plus the active connections.
"""

from __future__ import annotations

import ipaddress
import time
from collections import Counter

import numpy as np

from portlabel.capture.batch import DecodeStatus
from portlabel.capture.decode import decode
from portlabel.labelling.iana import iana_columns, service_port_side
from portlabel.terminal import console, endpoint

QUIET = 30.0  # seconds without a packet before a connection leaves the table
ROWS = 20
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6", 132: "sctp"}


def _addr(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    return str(ip.ipv4_mapped or ip)


class LiveView:
    def __init__(self, registry) -> None:
        self.registry = registry
        self.conns: dict[tuple, list] = {}  # key -> [pkts, bytes, pkts_then, bytes_then, seen]
        self.rates: dict[tuple, tuple[float, float]] = {}
        self.services_done: Counter = Counter()
        self.last = time.monotonic()

    def on_batch(self, raw, finished) -> None:
        pb = decode(raw)
        ok = pb.status == DecodeStatus.OK
        if ok.any():
            key = np.concatenate(
                [pb.src_ip[ok], pb.dst_ip[ok], pb.ip_proto[ok, None],
                 pb.sport[ok, None].view(np.uint8).reshape(-1, 2),
                 pb.dport[ok, None].view(np.uint8).reshape(-1, 2)], axis=1,
            )  # fmt: skip
            uniq, inv = np.unique(key, axis=0, return_inverse=True)
            pkts = np.bincount(inv.ravel(), minlength=len(uniq))
            nbytes = np.bincount(inv.ravel(), weights=pb.wirelen[ok], minlength=len(uniq))
            now = time.monotonic()
            for row, n, b in zip(uniq, pkts, nbytes, strict=True):
                k = row.tobytes()
                entry = self.conns.setdefault(k, [0, 0, 0, 0, now])
                entry[0] += int(n)
                entry[1] += int(b)
                entry[4] = now
        if finished is not None and finished.num_rows:
            self._count_finished(finished)

    def _count_finished(self, table) -> None:
        services = table.column("iana.service").to_pylist()
        pkts = table.column("orig_pkts").to_numpy() + table.column("resp_pkts").to_numpy()
        for s, n in zip(services, pkts.tolist(), strict=True):
            self.services_done[s or "-"] += n

    def tick(self) -> None:
        now = time.monotonic()
        dt = max(now - self.last, 1e-3)
        for k, e in list(self.conns.items()):
            if now - e[4] > QUIET:
                del self.conns[k]
                continue
            self.rates[k] = ((e[0] - e[2]) / dt, (e[1] - e[3]) * 8 / dt)
            e[2], e[3] = e[0], e[1]
        self.rates = {k: v for k, v in self.rates.items() if k in self.conns}
        self.last = now

    def _labels(self, keys: list[bytes]) -> list[str]:
        if not keys:
            return []
        arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 37)
        proto = arr[:, 32]
        sport = arr[:, 33:35].copy().view(np.uint16).ravel()
        dport = arr[:, 35:37].copy().view(np.uint16).ravel()
        from_src = service_port_side(self.registry, proto, sport, dport)
        ports = np.where(from_src, sport, dport)
        return [s or "-" for s in iana_columns(self.registry, proto, ports)["iana.service"]
                .to_pylist()]  # fmt: skip

    def render(self, totals):
        from rich.console import Group
        from rich.table import Table

        top = sorted(self.conns, key=lambda k: -self.rates.get(k, (0, 0))[1])[:ROWS]
        labels = self._labels(top)
        flows = Table(title=f"active connections ({len(self.conns):,})", expand=True)
        for col in ("proto", "source", "destination", "service", "pkts", "bytes", "pkt/s",
                    "bit/s"):  # fmt: skip
            flows.add_column(col, justify="right" if col in ("pkts", "bytes") else "left")
        for k, label in zip(top, labels, strict=True):
            e, (pps, bps) = self.conns[k], self.rates.get(k, (0.0, 0.0))
            sport, dport = int.from_bytes(k[33:35], "little"), int.from_bytes(k[35:37], "little")
            flows.add_row(
                PROTO_NAMES.get(k[32], str(k[32])), endpoint(_addr(k[:16]), sport),
                endpoint(_addr(k[16:32]), dport), label, f"{e[0]:,}", f"{e[1]:,}",
                f"{pps:,.0f}", f"{bps:,.0f}",
            )  # fmt: skip
        services = Counter(self.services_done)
        for k, label in zip(self.conns, self._labels(list(self.conns)), strict=True):
            services[label] += self.conns[k][0]
        by_service = Table(title="packets by service")
        by_service.add_column("service")
        by_service.add_column("packets", justify="right")
        for name, n in services.most_common(10):
            by_service.add_row(name, f"{n:,}")
        line = (
            f"{totals.packets:,} packets, {totals.flows:,} flows written, "
            f"{totals.packets / totals.elapsed():,.0f} pkt/s"
        )
        return Group(flows, by_service, line)


def run_with_view(session, registry) -> None:
    """Run ``session`` with the table on screen, refreshed about once a second."""
    from rich.live import Live

    view = LiveView(registry)
    next_draw = [time.monotonic() + 1.0]
    with Live(
        view.render(session.totals), console=console(), auto_refresh=False, transient=False
    ) as screen:

        def on_tick() -> None:
            if time.monotonic() >= next_draw[0]:
                view.tick()
                screen.update(view.render(session.totals), refresh=True)
                next_draw[0] = time.monotonic() + 1.0

        session.on_batch = view.on_batch
        session.on_tick = on_tick
        session.run()
