"""The C kernels built with AddressSanitizer and UBSan, run over every input we have.

    python3 fuzz/sanitized_corpus.py [--canary] [EXTRA_DIR...]

Builds a copy of the package whose kernels are compiled with ``-fsanitize=address,
undefined`` (UBSan made fatal), then, in a child Python with the sanitizer runtimes
preloaded, reads every bundled capture, log, fuzz regression input and file of the
extra directories (a fuzz corpus) through ``fuzz/targets.py``: the pcap/pcapng walks,
the decoder, the flow kernels, the BPF VM, the flow text writer. Any sanitizer report
ends the child with an error; the exit status is then non-zero. Prints what it ran.
``--canary`` first makes a deliberate heap overflow (libc ``memmove`` past a buffer,
through ctypes) to show that a report does fail the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = (
    "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
)
SKIP_SUFFIXES = (".txt", ".out", ".csv", ".json", ".tsv", ".md")


def runtime(name: str) -> str | None:
    """The path of gcc's sanitizer runtime ``name`` (libasan.so...), None without it."""
    if shutil.which("gcc") is None:
        return None
    found = subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True)
    path = found.stdout.strip()
    return path if found.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


def build(where: Path) -> Path:
    """A copy of the source tree with sanitized kernels; its ``src`` directory."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, where / name)
    shutil.copytree(
        ROOT / "src", where / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    env = dict(os.environ, CFLAGS=FLAGS, LDFLAGS="-fsanitize=address,undefined")
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=where, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"sanitized build failed:\n{done.stderr[-3000:]}")
    return where / "src"


def inputs(extra: list[str]) -> list[str]:
    files = [p for p in sorted((ROOT / "captures").rglob("*")) if p.is_file()]
    files += sorted((ROOT / "tests" / "data" / "fuzz_regressions").glob("*"))
    for directory in extra:
        files += sorted(p for p in Path(directory).glob("*") if p.is_file())
    return [str(p) for p in files if not p.name.endswith(SKIP_SUFFIXES)]


CHILD = """
import sys
sys.path[:0] = [{src!r}, {fuzz!r}]
import portlabel, portlabel.kernels
from portlabel.capture import _pcapwalk
assert _pcapwalk.__file__.startswith({src!r}), _pcapwalk.__file__
assert not portlabel.kernels.missing(), portlabel.kernels.missing()
from targets import run_capture, run_log
if {canary!r}:
    import ctypes
    small = ctypes.create_string_buffer(16)
    ctypes.memmove(small, b"x" * 64, 64)
flows = records = 0
for path in sys.stdin.read().splitlines():
    flows += run_capture(path)
    records += run_log(path)
print(f"sanitized kernels: {{flows}} flows, {{records}} log records", flush=True)
"""


def main(args: list[str]) -> int:
    canary = "--canary" in args
    extra = [a for a in args if a != "--canary"]
    asan, ubsan = runtime("libasan.so"), runtime("libubsan.so")
    if asan is None or ubsan is None:
        print("no AddressSanitizer/UBSan runtime (gcc's libasan, libubsan)", file=sys.stderr)
        return 2
    files = inputs(extra)
    with tempfile.TemporaryDirectory(prefix="portlabel-asan-") as tmp:
        src = build(Path(tmp))
        env = dict(
            os.environ,
            LD_PRELOAD=f"{asan}:{ubsan}",
            ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:verify_asan_link_order=0",
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
            PORTLABEL_REQUIRE_KERNELS="1",
            PYTHONMALLOC="malloc",  # every allocation through the sanitized allocator
        )  # fmt: skip
        child = CHILD.format(src=str(src), fuzz=str(ROOT / "fuzz"), canary=canary)
        done = subprocess.run(
            [sys.executable, "-c", child], input="\n".join(files), text=True, env=env,
            capture_output=True,
        )  # fmt: skip
    report = done.stderr
    print(done.stdout, end="")
    print(f"{len(files)} inputs through ASan+UBSan kernels; exit status {done.returncode}")
    findings = [line for line in report.splitlines()
                if "ERROR: AddressSanitizer" in line or "runtime error:" in line]  # fmt: skip
    if done.returncode != 0 or findings:
        print(report[-6000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
