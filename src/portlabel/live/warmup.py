"""Paying every first-use cost before capture starts.

The first packet through the decoder, the flow engine and an output writer loads lazily
imported modules, numba's cached kernels and pyarrow's compute functions, and the first
flow of each kind the writer renders differently (TCP, UDP, ICMP, IPv6) costs up to
~0.15 s of CPU. Paid mid-capture, that lets packets pile up in the kernel ring; paid
before, while still root, it also loads what an unprivileged ``--user`` might not be
allowed to read (site-packages or numba's cache under a root-only home).
"""

from __future__ import annotations

import io

# one made-up frame per kind the writer renders differently (Ethernet, no MACs):
# TCP SYN over IPv4, UDP (DNS), ICMP echo, TCP over IPv6
WARM_FRAMES = (
    "000000000000000000000000 0800 4500002800000000400600000a0000010a000002"
    " d43101bb00000001000000005002000000000000",
    "000000000000000000000000 0800 4500001c00000000401100000a0000010a000002 d431003500080000",
    "000000000000000000000000 0800 4500001c00000000400100000a0000010a000002 0800f7fe00010000",
    "000000000000000000000000 86dd 6000000000140640"
    + " fd00" + "00" * 13 + "01"
    + " fd00" + "00" * 13 + "02"
    + " d43101bb00000001000000005002000000000000",
)  # fmt: skip


def warm_up(registry, fmt: str) -> None:
    """Run ``WARM_FRAMES`` through decode, flows, labels and a ``fmt`` writer, and the
    ring-draining kernel over an empty ring."""
    import numpy as np
    import pyarrow.compute  # noqa: F401 - imported lazily by pyarrow itself

    from portlabel.capture.batch import RawBatch
    from portlabel.labelling.flows import labelled_schema
    from portlabel.labelling.pipeline import LabelPipeline
    from portlabel.live.afpacket import drain_blocks
    from portlabel.writers import writer_class

    frames = [bytes.fromhex(f.replace(" ", "").ljust(2 * 60, "0")) for f in WARM_FRAMES]
    lengths = np.array([len(f) for f in frames], np.uint32)
    offsets = np.concatenate([[0], np.cumsum(lengths[:-1])]).astype(np.int64)
    n = len(frames)
    raw = RawBatch(
        np.frombuffer(b"".join(frames), np.uint8), offsets, lengths, lengths.copy(),
        np.arange(n, dtype=np.int64), np.ones(n, np.uint16), np.zeros(n, np.uint16),
        np.arange(n, dtype=np.int64),
    )  # fmt: skip
    pipe = LabelPipeline(registry)
    pipe.feed(raw)
    writer = writer_class(fmt)(io.BytesIO(), labelled_schema())
    writer.write(pipe.finish())
    writer.close()
    ring = np.zeros(64, dtype=np.uint8)
    cols = [np.zeros(1, t) for t in (np.int64, np.uint32, np.uint32, np.int64)]
    drain_blocks(ring, 64, 1, 0, np.zeros(64, np.uint8), 0, *cols, 0)
