"""Process-wide settings the ``portlabel`` command makes for itself, before any work.

The command owns its process, so it may choose how the process uses threads and memory;
a program that imports portlabel keeps its own choices, and so does a user who set the
same thing in the environment. Each setting is measured in ``benchmarks/scale.py`` (the
flood) and ``benchmarks/label.py``:

- numpy's OpenBLAS would start a busy thread per core at import; portlabel does no
  linear algebra (about 0.1 s of a short run).
- pyarrow's own allocator (mimalloc) keeps the pages of freed buffers for reuse; through
  the system allocator they go back where numpy's do (about 15 MB less on a flood).
- glibc gives each thread that allocates its own arena, which keeps its own freed
  memory; the pipeline's three threads share one instead (about 25 MB less; the large
  arrays are memory maps either way, so the threads do not contend for it).
"""

from __future__ import annotations

import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def settle_process() -> None:
    """Apply the settings above, each unless the environment already chose it."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # read when pyarrow makes its default pool: the command imports pyarrow later
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if "MALLOC_ARENA_MAX" not in os.environ:
        cap_malloc_arenas(1)


def cap_malloc_arenas(n: int) -> bool:
    """Let glibc's malloc use at most ``n`` arenas from now on; False where the C
    library is not glibc (musl, macOS: nothing to do)."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (AttributeError, ValueError, OSError):  # no such name here: not glibc
        return False
    import ctypes  # only here: ``portlabel --help`` need not load it

    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_ARENA_MAX, ctypes.c_int(n)))
    except (OSError, AttributeError):
        return False
