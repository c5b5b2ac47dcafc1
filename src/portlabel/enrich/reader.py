"""A plain reader for Zeek TSV logs: records as raw field bytes, for checks and tools.

``read_tsv(data)`` follows the header lines as they come (separator changes, several
header blocks, a bare names line from zeek-cut) and yields one ``TsvRecord`` per
well-formed record with its fields as the exact bytes of the file -- nothing is decoded
or unescaped -- so a caller can compare two logs byte for byte. Lines that do not have
the declared number of fields are yielded with ``fields=None``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from portlabel.enrich.zeek_tsv import unescape

_NAME = re.compile(rb"^[A-Za-z_][A-Za-z0-9_.]*$")


@dataclass
class TsvRecord:
    line: int  # 1-based
    names: list[str]
    fields: list[bytes] | None  # None: malformed line
    raw: bytes
    set_separator: bytes = b","
    empty_field: bytes = b"(empty)"
    unset_field: bytes = b"-"

    def as_dict(self) -> dict[str, bytes]:
        return dict(zip(self.names, self.fields or [], strict=False))


def read_tsv(data: bytes) -> Iterator[TsvRecord]:
    """Every record line of a TSV log (header lines are consumed, not yielded)."""
    sep, meta, names = b"\t", {}, None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, raw in enumerate(lines, 1):
        if raw.startswith(b"#"):
            if raw.startswith(b"#separator"):
                sep = unescape(raw[len(b"#separator") :].lstrip(b" \t"))
                continue
            key, _, value = raw.partition(sep) if sep in raw else raw.partition(b" ")
            if key == b"#fields":
                names = value.decode("utf-8", "replace").split(sep.decode("latin-1"))
            elif key in (b"#set_separator", b"#empty_field", b"#unset_field"):
                meta[key[1:].decode()] = unescape(value)
            continue
        if not raw:
            continue
        if names is None:
            parts = raw.split(b"\t")
            if all(_NAME.match(p) for p in parts):
                names = [p.decode() for p in parts]
                continue
        fields = raw.split(sep)
        ok = names is not None and len(fields) == len(names)
        yield TsvRecord(number, names or [], fields if ok else None, raw, **meta)
