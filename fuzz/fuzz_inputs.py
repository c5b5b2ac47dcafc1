"""Coverage-guided fuzzing (atheris, libFuzzer) of every reader of untrusted bytes.

Each input is written to a file and read as a capture (pcap, pcapng, any compression;
decoder, flow kernels, BPF VM) and as a Zeek log (``fuzz/targets.py``). Python code is
instrumented for coverage; a crash, a hang, an exception other than portlabel's
one-line ``InputError``, or an allocation beyond the memory rule is a finding, which
libFuzzer writes as ``crash-*``/``timeout-*`` for ``tests/data/fuzz_regressions/``.

    python3 fuzz/fuzz_inputs.py -max_total_time=120 -timeout=20 CORPUS_DIR SEED_DIR...

(``fuzz/seeds.py`` fills a seed directory from the bundled captures and logs.)
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

# every module on the path from bytes to flows and enriched logs, imported (and so
# instrumented for coverage) here, before the lazy imports inside the code would
COVERED = ("capture", "flows", "labelling", "enrich", "registry", "writers")
SKIPPED = ("portlabel.capture.backends.", "portlabel.registry.update")

with atheris.instrument_imports(include=["portlabel"]):
    import importlib
    import pkgutil

    import portlabel

    for module in pkgutil.walk_packages(portlabel.__path__, "portlabel."):
        name = module.name
        if name.split(".")[1] in COVERED and not name.startswith(SKIPPED) and ".__" not in name:
            if not name.rsplit(".", 1)[-1].startswith("_") or module.ispkg:
                importlib.import_module(name)

sys.path.insert(0, os.path.dirname(__file__))
from targets import check_memory, input_size, run_capture, run_log  # noqa: E402

_DIR = tempfile.mkdtemp(
    prefix="portlabel-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
)
_PATH = os.path.join(_DIR, "input")


def test_one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    size = input_size(_PATH)
    check_memory(run_capture, _PATH, size)
    check_memory(run_log, _PATH, size)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
