"""Read a benchmark's input files into the page cache just before a timed run.

Some hosts (this project's CI VMs among them) run a memory reclaimer (DAMON pageout)
that evicts file pages idle for about a minute, so the second configuration of a
benchmark would otherwise time the disk, not the program. ``warm`` reads every file
once, in 8 MiB blocks, and is not timed.
"""

from __future__ import annotations

import os


def warm(paths) -> None:
    block = bytearray(8 << 20)
    view = memoryview(block)
    for path in paths:
        path = os.fspath(path)
        if not os.path.isfile(path):
            continue
        with open(path, "rb", buffering=0) as f:
            while f.readinto(view):
                pass
