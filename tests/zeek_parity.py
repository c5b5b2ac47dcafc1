"""Zeek parity: the flow engine against the conn.log Zeek's own test suite expects.

93 pairs: the 24 captures in ``captures/`` with a ``*.zeek_conn.log`` (their Zeek command
line is in ``captures/MANIFEST.tsv``) and the 69 Zeek test folders in
``tests/data/zeek_parity/`` (trace, expected ``conn.log``, the ``test.zeek`` that made it).

Each trace runs with the options Zeek ran with: Zeek's keying, and checksums validated
unless the command line has ``-C``; a log written before Zeek (then Bro) 2.6, which added
the t/T, w/W and g/G history letters, is compared with those letters taken out of ours.
Zeek's rows are matched one to one with ours, by
proto and 5-tuple as directed (a baseline cut down with zeek-cut is compared on the
columns it kept); a Zeek row whose flow we have with the sides swapped is *reversed*,
one we do not have at all is *missing*. ``python tests/zeek_parity.py [-v] [FILTER]``
prints the figures.
"""

from __future__ import annotations

import csv
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
CAPTURES = HERE.parent / "captures"
PARITY = HERE / "data" / "zeek_parity"
KEY = ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
COMPARED = ("proto", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
            "conn_state", "history")  # fmt: skip
_SIDES = (("id.orig_h", "id.resp_h"), ("id.orig_p", "id.resp_p"), ("orig_pkts", "resp_pkts"),
          ("orig_ip_bytes", "resp_ip_bytes"))  # fmt: skip


@dataclass(frozen=True)
class Pair:
    name: str  # the trace's name in KNOWN_* tables
    capture: Path
    log: Path
    command: str  # Zeek's command line

    @property
    def before_scaled_letters(self) -> bool:
        """The log was written by a Zeek older than 2.6 (released 2018-08-28), which had
        no t/T, w/W or g/G history letters; btest baselines' dates are masked (current)."""
        for line in self.log.read_text().splitlines()[:10]:
            if line.startswith("#open\t"):
                return line.split("\t")[1] < "2018-08-28"
        return False

    @property
    def ignores_checksums(self) -> bool:
        return re.search(r"(^|\s)-[a-zA-Z]*C", self.command.split(";")[0]) is not None


def _manifest_commands() -> dict[str, str]:
    out = {}
    with open(CAPTURES / "MANIFEST.tsv", newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if len(row) > 13 and row[1] == "capture" and " :: " in row[13]:
                out[row[0]] = row[13].split(" :: ", 1)[1].split(" (baseline")[0]
    return out


def _test_command(test_zeek: Path) -> str:
    for line in test_zeek.read_text().splitlines():
        if "@TEST-EXEC:" in line:
            cmd = line.split("@TEST-EXEC:", 1)[1].strip()
            if re.match(r"zeek\s", cmd):
                return cmd
    return ""


def pairs() -> list[Pair]:
    out = []
    commands = _manifest_commands()
    for log in sorted(CAPTURES.glob("*.zeek_conn.log")):
        capture = CAPTURES / log.name.removesuffix(".zeek_conn.log")
        # zeekreal_infected's log is a real Zeek run with its default options
        out.append(Pair(capture.name, capture, log, commands.get(capture.name, "zeek -r")))
    for folder in sorted(p for p in PARITY.iterdir() if p.is_dir()):
        traces = [p for p in folder.iterdir() if p.name not in ("conn.log", "test.zeek")]
        assert len(traces) == 1, folder
        out.append(Pair(folder.name, traces[0], folder / "conn.log",
                        _test_command(folder / "test.zeek")))  # fmt: skip
    return out


def read_zeek_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log, also when it was cut with zeek-cut (bare header line)."""
    fields: list[str] | None = None
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
            continue
        if line.startswith("#") or not line.strip():
            continue
        parts = line.split("\t")
        if fields is None:
            fields = parts
            continue
        rows.append(dict(zip(fields, parts, strict=True)))
    return rows


def run_pair(pair: Pair) -> pa.Table:
    """Our flows of ``pair``'s trace, with the options Zeek ran with, through the same
    pipeline ``portlabel label`` runs (decode, checksums, reassembly, flows)."""
    from portlabel.capture.inputs import CaptureInputs
    from portlabel.flows import FlowConfig
    from portlabel.labelling.pipeline import LabelPipeline, label_batches
    from portlabel.registry import default_registry

    config = FlowConfig(uid_seed=7, zeek_keys=True, check_checksums=not pair.ignores_checksums)
    pipe = LabelPipeline(default_registry(), config)
    tables = list(label_batches(CaptureInputs([pair.capture]), pipe.registry, pipeline=pipe,
                                background=False))  # fmt: skip
    return pa.concat_tables(tables) if tables else pipe.finish()


_LETTERS_SINCE_2_6 = str.maketrans("", "", "tTwWgG")


def our_rows(table: pa.Table, before_scaled_letters: bool = False) -> list[dict[str, str]]:
    out = []
    for r in table.to_pylist():
        row = {k: "-" if v is None else str(v) for k, v in r.items()}
        if before_scaled_letters and row["history"] != "-":
            row["history"] = row["history"].translate(_LETTERS_SINCE_2_6) or "-"
        if row["proto"] == "unknown_transport":  # Zeek has no ports for these
            row["id.orig_p"] = row["id.resp_p"] = "0"
        out.append(row)
    return out


def _swapped(row: dict[str, str]) -> dict[str, str]:
    r = dict(row)
    for a, b in _SIDES:
        r[a], r[b] = row.get(b), row.get(a)
    if "history" in row:
        r["history"] = row["history"].swapcase()
    return r


@dataclass
class Outcome:
    """How one trace's Zeek rows matched ours."""

    zeek: int = 0
    identical: int = 0
    matched: int = 0  # same 5-tuple and direction (identical or not)
    differences: list[tuple[tuple, dict, dict | None]] = field(default_factory=list)
    extras: list[tuple] = field(default_factory=list)  # our flows Zeek does not have


def compare(zeek: list[dict[str, str]], ours: list[dict[str, str]]) -> Outcome:
    out = Outcome(zeek=len(zeek))
    if not zeek:
        out.extras = [tuple(r[k] for k in KEY) for r in ours]
        return out
    keys = [k for k in KEY if k in zeek[0]]
    cols = [c for c in COMPARED if c in zeek[0]]
    used = [False] * len(ours)

    def take(pred) -> int | None:
        for i, r in enumerate(ours):
            if not used[i] and pred(r):
                used[i] = True
                return i
        return None

    def same_key(z, r):
        return all(z[k] == r[k] for k in keys)

    left = []
    for z in zeek:  # identical first, so a near miss never takes an identical row's place
        if take(lambda r, z=z: same_key(z, r) and all(z[c] == r[c] for c in cols)) is None:
            left.append(z)
        else:
            out.identical += 1
            out.matched += 1
    for z in left:
        key = tuple(z.get(k, "?") for k in KEY)
        i = take(lambda r, z=z: same_key(z, r)) if keys else None
        if i is not None:
            out.matched += 1
            out.differences.append((key, {c: z[c] for c in cols}, {c: ours[i][c] for c in cols}))
            continue
        i = take(lambda r, z=z: same_key(z, _swapped(r))) if keys else None
        if i is not None:
            r = _swapped(ours[i])
            out.differences.append((key, {c: z[c] for c in cols},
                                    {"reversed": True, **{c: r[c] for c in cols}}))  # fmt: skip
            continue
        if not keys:  # a baseline without key columns: pair with a row left over
            i = take(lambda r: True)
            if i is not None:
                out.matched += 1
                out.differences.append((key, {c: z[c] for c in cols},
                                        {c: ours[i][c] for c in cols}))  # fmt: skip
                continue
        out.differences.append((key, {c: z[c] for c in cols}, None))
    if keys == list(KEY):
        out.extras = [tuple(r[k] for k in KEY) for i, r in enumerate(ours) if not used[i]]
    return out


def results(selected: str = "") -> dict[str, Outcome]:
    return {
        p.name: compare(read_zeek_log(p.log), our_rows(run_pair(p), p.before_scaled_letters))
        for p in pairs()
        if selected in p.name
    }


def main(argv: list[str]) -> None:
    verbose = "-v" in argv
    selected = next((a for a in argv if not a.startswith("-")), "")
    got = results(selected)
    total = Counter()
    for name, o in got.items():
        total.update(zeek=o.zeek, identical=o.identical, matched=o.matched, extras=len(o.extras))
        mark = "" if o.identical == o.zeek and not o.extras else "  <--"
        print(f"{name:70s} {o.identical:5d}/{o.zeek:<5d} matched {o.matched:5d} "
              f"extra {len(o.extras)}{mark}")  # fmt: skip
        if verbose:
            for key, z, r in o.differences:
                print(f"    {key}\n      zeek {z}\n      ours {r}")
            for key in o.extras:
                print(f"    extra {key}")
    n = total["zeek"]
    print(
        f"identical {total['identical']}/{n} = {total['identical'] / n:.4f}; matched "
        f"{total['matched']}/{n} = {total['matched'] / n:.4f}; extras {total['extras']}"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "src"))
    main(sys.argv[1:])
