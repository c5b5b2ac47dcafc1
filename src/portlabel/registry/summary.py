"""Counts that describe a compiled registry: by transport, by status, sources and dates."""

from __future__ import annotations

import numpy as np

from portlabel.constants import TRANSPORTS
from portlabel.registry.compiled import Registry
from portlabel.registry.model import STATUS_NAMES, Status


def summarise(registry: Registry) -> dict:
    """Source, dates and, per transport, how many ports have each status."""
    ports = np.arange(65536)
    by_transport = {}
    for t in TRANSPORTS:
        entries = registry.lookup(np.full(65536, t, dtype="<U4"), ports)
        status = registry.status(entries, ports)
        counts = np.bincount(status, minlength=len(Status))
        by_transport[t] = {STATUS_NAMES[s]: int(counts[s]) for s in Status}
        named = registry.text("name")[entries] != ""
        by_transport[t]["named_ports"] = int(named.sum())
    names = registry.text("name")
    portless = registry.column("port_lo") < 0
    return {
        "path": registry.path,
        "sources": registry.meta["sources"],
        "protocols": registry.meta.get("protocols"),
        "entries": registry.n_entries - 1,
        "service_names": len(set(names.tolist()) - {""}),
        "name_only_records": int((portless & (names != ""))[1:].sum()),
        "ports": by_transport,
    }
