"""Fill a seed directory for the fuzzers: small bundled captures (as they are and
compressed four ways), Zeek logs cut to their first lines, the regression inputs, and
the corpus earlier sessions grew (``tests/data/fuzz_corpus``: inputs that reached new
coverage, so a short CI session starts where the long ones ended).

    python3 fuzz/seeds.py SEED_DIR
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
MAX_SEED = 16 << 10  # libFuzzer works best on small inputs


def seeds() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    captures = sorted(ROOT.glob("captures/*.pcap")) + sorted(ROOT.glob("captures/*.pcapng"))
    for path in captures:
        data = path.read_bytes()
        if len(data) <= MAX_SEED:
            out[path.name] = data
    for name in ("zeek_ssh.pcap", "ndpi_gre.pcapng"):
        data = (ROOT / "captures" / name).read_bytes()[:MAX_SEED]
        out[name + ".gz"] = gzip.compress(data)
        out[name + ".xz"] = lzma.compress(data)
        out[name + ".bz2"] = bz2.compress(data)
        out[name + ".zst"] = zstandard.ZstdCompressor().compress(data)
    logs = sorted((ROOT / "captures" / "zeek_logs").glob("*.log"))
    # TSV logs, and JSON ones (the JSON-lines scan kernel reads those)
    json_logs = [p for p in logs if p.read_bytes()[:1] == b"{"][:4]
    for path in logs[:8] + [p for p in json_logs if p not in logs[:8]]:
        lines = path.read_bytes().splitlines(keepends=True)[:40]
        out[path.name] = b"".join(lines)
        out[path.name + ".gz"] = gzip.compress(b"".join(lines))
    regressions = ROOT / "tests" / "data" / "fuzz_regressions"
    for path in sorted(regressions.glob("*")) if regressions.is_dir() else []:
        if path.is_file() and not path.name.endswith(".txt"):
            out["regression-" + path.name] = path.read_bytes()
    corpus = ROOT / "tests" / "data" / "fuzz_corpus"
    for path in sorted(corpus.glob("*")) if corpus.is_dir() else []:
        out["corpus-" + path.name] = path.read_bytes()
    return out


def main(target: str) -> int:
    where = Path(target)
    where.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (where / name).write_bytes(data)
    print(f"{len(seeds())} seeds in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
