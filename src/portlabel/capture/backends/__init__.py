"""Capture backends: the interchangeable ways of turning capture files into ``PacketBatch``es.

* ``native``: portlabel's own readers and vectorised decoder (fast, the default).
* ``scapy``: scapy's raw pcap/pcapng readers and dissectors, one packet at a time (slow,
  coverage-oriented; an independent second opinion on what a packet contains).
* ``tshark``: Wireshark's dissectors through pyshark (slowest; the reference dissector).

Each backend module has ``read_file(path, batch_size, first_frame, notes)``: the decoded
batches of one file, frames numbered from ``first_frame``, with what went wrong after its
first packets appended to ``notes`` (an ``InputError`` when it cannot be read at all).
Chaining files into one capture, and reporting, is ``capture.inputs``' job. Backend
modules are imported only when used, so choosing ``native`` never imports scapy or
pyshark.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from portlabel.capture.batch import PacketBatch
from portlabel.errors import UsageError

# (path, batch_size, first_frame, notes) -> batches of that one file
ReadFile = Callable[[str, int, int, list[str]], Iterator[PacketBatch]]


@dataclass(frozen=True)
class Backend:
    """One backend: where its ``read_file`` lives and what it needs."""

    name: str
    module: str  # imported on first use
    summary: str

    @property
    def read_file(self) -> ReadFile:
        return importlib.import_module(self.module).read_file


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("native", f"{__name__}.native", "portlabel's vectorised readers and decoder"),
        Backend("scapy", f"{__name__}.scapy_backend", "scapy's readers and dissectors"),
        Backend("tshark", f"{__name__}.tshark_backend", "tshark's dissectors via pyshark"),
    )
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(BACKENDS)
        raise UsageError(f"unknown capture backend {name!r} (choose from {known})") from None
