"""Dropping root after the capture is open: supplementary groups, then group, then user.

Capture sockets are opened as root; everything after (decoding, writing output files) can
run as an unprivileged ``--user``. The order matters: groups and gid must change while we
still have the right to change them, the uid last. A failure is an error, never a silent
continue as root.
"""

from __future__ import annotations

import os
import pwd

from portlabel.errors import UsageError


def drop_privileges(user: str) -> tuple[int, int]:
    """Become ``user`` (name or uid) for good; returns (uid, gid)."""
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--user {user}: no such user") from None
    if os.geteuid() != 0:
        if os.geteuid() == entry.pw_uid:
            return entry.pw_uid, entry.pw_gid
        raise UsageError(f"--user {user}: only root can change user")
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    if os.getuid() != entry.pw_uid or os.geteuid() != entry.pw_uid:
        raise UsageError(f"--user {user}: could not drop privileges")
    return entry.pw_uid, entry.pw_gid


def warm_up(registry, fmt: str) -> None:
    """Load every module and compiled kernel the capture loop will need, while still root.

    The unprivileged user may not be allowed to read the interpreter's site-packages or
    numba's cache (a root-only home), and both are loaded lazily on first use: one made-up
    TCP packet through decode, the flow table, the labeller and the writer loads them all.
    """
    import io

    import numpy as np
    import pyarrow.compute  # noqa: F401 - imported lazily by pyarrow itself

    from portlabel.capture.batch import RawBatch
    from portlabel.label_flows import labelled_schema
    from portlabel.live.afpacket import drain_blocks
    from portlabel.live.output import writer_class
    from portlabel.pipeline import LabelPipeline

    frame = (
        bytes(12)
        + b"\x08\x00"
        + bytes.fromhex(
            "4500002800000000400600000a0000010a000002"  # IPv4, TCP, 10.0.0.1 -> 10.0.0.2
            "d43101bb0000000100000000500200000000000000"[:40]  # ports 54321 -> 443, SYN
        )
    )
    one = np.zeros(1, dtype=np.int64)
    raw = RawBatch(
        np.frombuffer(frame, dtype=np.uint8), one, np.array([len(frame)], np.uint32),
        np.array([len(frame)], np.uint32), one, np.ones(1, np.uint16),
        np.zeros(1, np.uint16), one,
    )  # fmt: skip
    pipe = LabelPipeline(registry)
    pipe.feed(raw)
    flows = pipe.finish()
    schema = labelled_schema(registry)
    writer = writer_class(fmt)(io.BytesIO(), schema)
    writer.write(flows)
    writer.close()
    ring = np.zeros(64, dtype=np.uint8)
    cols = [np.zeros(1, t) for t in (np.int64, np.uint32, np.uint32, np.int64)]
    drain_blocks(ring, 64, 1, 0, np.zeros(64, np.uint8), 0, *cols, 0)
