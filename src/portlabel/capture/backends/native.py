"""The native backend: portlabel's own capture readers feeding the vectorised decoder."""

from __future__ import annotations

from collections.abc import Iterator

from portlabel.capture.batch import PacketBatch
from portlabel.capture.decode import decode
from portlabel.capture.reader import open_capture


def read_file(
    path: str, batch_size: int, first_frame: int, warnings: list[str]
) -> Iterator[PacketBatch]:
    """Decoded batches of one capture file; damage after its start goes to ``warnings``."""
    reader = open_capture(path)
    try:
        for raw in reader.batches(batch_size, first_frame):
            yield decode(raw)
    finally:
        warnings.extend(reader.warnings)
