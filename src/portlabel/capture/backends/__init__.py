"""Capture backends: the interchangeable ways of turning capture files into ``PacketBatch``es.

* ``native``: portlabel's own readers and vectorised decoder (fast, the default).
* ``scapy``: scapy's raw pcap/pcapng readers and dissectors, one packet at a time (slow,
  coverage-oriented; an independent second opinion on what a packet contains).
* ``tshark``: Wireshark's dissectors through pyshark (slowest; the reference dissector).

Every caller (``portlabel label``, ``portlabel packets``, live capture) goes through
``packet_batches``, which chains files into one capture (frame numbers continue from file to
file), reports files it cannot read through ``on_error`` instead of stopping when asked to,
and collects "damaged after the start" notes in ``warnings``. Backend modules are imported
only when used, so choosing ``native`` never imports scapy or pyshark.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from portlabel.capture.batch import PacketBatch
from portlabel.errors import CaptureError, UsageError

DEFAULT_BATCH = 65536

# (path, batch_size, first_frame, warnings) -> batches of that one file
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


def packet_batches(
    paths: Iterable[str | os.PathLike[str]],
    backend: str = "native",
    batch_size: int = DEFAULT_BATCH,
    on_error: Callable[[CaptureError], None] | None = None,
    warnings: list[str] | None = None,
) -> Iterator[PacketBatch]:
    """Decoded batches of all ``paths`` as one capture, read by ``backend``.

    A file that cannot be read raises ``CaptureError`` unless ``on_error`` is given, in
    which case it is passed the error and the next file is read. Problems found after a
    file's first packets (the packets before them are still yielded) are appended to
    ``warnings`` as ``"path: where: what"`` lines.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    read_file = get_backend(backend).read_file
    notes = warnings if warnings is not None else []
    frame = 0
    for path in paths:
        name = os.fspath(path)
        try:
            for batch in read_file(name, batch_size, frame, notes):
                frame += len(batch)
                yield batch
        except CaptureError as exc:
            if on_error is None:
                raise
            on_error(exc)
