"""The command's process-wide settings: made only where the environment chose nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from portlabel.cli.process import cap_malloc_arenas

_SHOW = (
    "import os; from portlabel.cli.process import settle_process; settle_process(); "
    "import pyarrow as pa; "
    "print(os.environ['OPENBLAS_NUM_THREADS'], pa.default_memory_pool().backend_name)"
)


def _settled(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OPENBLAS_NUM_THREADS", "ARROW_DEFAULT_MEMORY_POOL")}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", _SHOW], env={**clean, **env},
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.split()


def test_the_command_chooses_the_system_pool_and_one_blas_thread():
    assert _settled({}) == ["1", "system"]


def test_a_choice_in_the_environment_is_kept():
    import pyarrow as pa

    other = next((b for b in pa.supported_memory_backends() if b != "system"), None)
    if other is None:
        pytest.skip("this pyarrow has only the system allocator")
    chosen = {"OPENBLAS_NUM_THREADS": "3", "ARROW_DEFAULT_MEMORY_POOL": other}
    assert _settled(chosen) == ["3", other]


def test_the_arena_cap_is_applied_where_the_c_library_is_glibc():
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        glibc = False
    assert cap_malloc_arenas(8) is glibc  # 8: this test process's own threads keep room
