"""Choosing and opening a live capture backend.

Every backend is a *source* with the same small interface: ``read(timeout) -> RawBatch |
None`` (what is ready, waiting up to ``timeout`` seconds), ``counters() -> list of
KernelCounters`` (one per interface), ``close()``, and the attributes ``name`` and
``ifaces``. ``native`` is the TPACKET_V3 ring (afpacket), ``scapy`` scapy's sniffer and
``pyshark`` pyshark's LiveCapture (tshark).
"""

from __future__ import annotations

from portlabel.capture.bpf import compile_filter
from portlabel.errors import UsageError
from portlabel.live.afpacket import check_interface

BACKENDS = ("native", "scapy", "pyshark")


def open_source(
    backend: str,
    ifaces: list[str],
    bpf: str | None = None,
    ring_mb: int = 256,
    promisc: bool = True,
):
    """An open capture source on ``ifaces``; CaptureError for a missing interface or
    missing permission, UsageError for a bad filter."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if len(set(ifaces)) != len(ifaces):
        raise UsageError("an interface is given twice")
    for iface in ifaces:
        check_interface(iface)

    def program_for(dlt: int):
        return compile_filter(bpf, dlt) if bpf else None

    if bpf:
        program_for(1)  # a bad filter is a usage error before anything opens
    if backend == "native":
        from portlabel.live.afpacket import NativeSource

        return NativeSource(ifaces, program_for, ring_mb=ring_mb, promisc=promisc)
    if backend == "scapy":
        from portlabel.live.scapy_sniff import ScapySource

        return ScapySource(ifaces, program_for, promisc=promisc)
    from portlabel.live.pyshark_live import PysharkSource

    return PysharkSource(ifaces, bpf)
