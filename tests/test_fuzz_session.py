"""The fuzzers, run for real on every submission.

1. A bounded coverage-guided session (atheris; ``PORTLABEL_FUZZ_SECONDS``, default 120)
   from seeds made of the bundled captures and logs: no crash, hang, unexpected
   exception or allocation beyond the memory rule. Findings are left in the session's
   directory (crash-*/timeout-*/oom-*) and named in the failure: add each to
   ``tests/data/fuzz_regressions/`` with a note, then fix it.
2. The C kernels built with ASan+UBSan over every bundled input, the regression inputs and
   the corpus the session just grew; a sanitizer report fails the test. A deliberate
   overflow (the canary) must fail the same run, or the check is not checking.

With ``PORTLABEL_REQUIRE_KERNELS=1`` (CI) a missing atheris or sanitizer runtime is a
failure, not a skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUZZ = ROOT / "fuzz"
sys.path.insert(0, str(FUZZ))
REQUIRED = os.environ.get("PORTLABEL_REQUIRE_KERNELS") == "1"
SECONDS = int(os.environ.get("PORTLABEL_FUZZ_SECONDS", "120"))


def _need(what: str, present: bool) -> None:
    if present:
        return
    if REQUIRED:
        pytest.fail(f"{what} is required here (PORTLABEL_REQUIRE_KERNELS=1)")
    pytest.skip(f"{what} is not available")


def _has_sanitizers() -> bool:
    from sanitized_corpus import runtime

    return runtime("libasan.so") is not None and runtime("libubsan.so") is not None


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> tuple[Path, str]:
    try:
        import atheris  # noqa: F401
    except ImportError:
        _need("atheris", False)
    work = tmp_path_factory.mktemp("fuzz")
    seeds, corpus = work / "seeds", work / "corpus"
    corpus.mkdir()
    subprocess.run([sys.executable, str(FUZZ / "seeds.py"), str(seeds)], check=True)
    done = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_inputs.py"), f"-max_total_time={SECONDS}",
         "-timeout=30", "-rss_limit_mb=3072", "-print_final_stats=1",
         f"-artifact_prefix={work}/", str(corpus), str(seeds)],
        capture_output=True, text=True, cwd=work, timeout=SECONDS + 300,
    )  # fmt: skip
    return work, done.returncode, done.stderr


def test_a_bounded_fuzz_session_finds_nothing(session):
    work, status, log = session
    findings = sorted(
        p.name for p in work.glob("*") if re.match(r"(crash|timeout|oom|leak)-", p.name)
    )
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    print(f"fuzzed {runs[-1] if runs else '?'} inputs in {SECONDS} s; findings: {findings}")
    assert status == 0 and not findings, f"findings {findings} in {work}:\n{log[-4000:]}"
    assert runs and int(runs[-1]) > 1000


def test_sanitized_kernels_over_every_input_and_the_fuzz_corpus(session):
    _need("gcc with AddressSanitizer and UBSan", _has_sanitizers())
    work, _, _ = session
    done = subprocess.run(
        [sys.executable, str(FUZZ / "sanitized_corpus.py"), str(work / "corpus")],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    print(done.stdout)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "inputs through ASan+UBSan kernels; exit status 0" in done.stdout


def test_a_sanitizer_report_fails_the_run():
    _need("gcc with AddressSanitizer and UBSan", _has_sanitizers())
    done = subprocess.run(
        [sys.executable, str(FUZZ / "sanitized_corpus.py"), "--canary"],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 1
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in done.stderr
