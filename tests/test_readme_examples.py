"""Every example of the README's "portlabel as a plugin" section, run as written: each
```python block in a fresh interpreter, each ```sh block with bash, from the repository's
root (the examples name bundled captures)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def examples() -> list[tuple[str, str, str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## portlabel as a plugin", 1)[1].split("\n## ", 1)[0]
    found, heading = [], ""
    for part in re.split(r"(^### .*$)", section, flags=re.M):
        if part.startswith("### "):
            heading = part[4:].strip()
            continue
        for lang, code in re.findall(r"```(python|sh)\n(.*?)```", part, flags=re.S):
            found.append((f"{heading} ({lang} {len(found) + 1})", lang, code))
    return found


def test_the_section_has_an_example_per_integration():
    headings = {name.split(" (")[0] for name, _, _ in examples()}
    assert {"scapy", "pyshark", "NFStream", "pandas and Arrow", "Wireshark and tshark",
            "Zeek"} <= headings  # fmt: skip


@pytest.mark.parametrize("name,lang,code", examples(), ids=lambda x: str(x)[:40])
def test_readme_example_runs(name, lang, code):
    if "tshark" in code or "pyshark" in code:
        if shutil.which("tshark") is None:
            pytest.skip("needs tshark")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        code = code.replace("portlabel ", f"{sys.executable} -m portlabel ")
        argv = ["bash", "-euo", "pipefail", "-c", code]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"{name}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{name} printed nothing"
