"""Small parsing helpers shared by the registry source readers."""

from __future__ import annotations

import re

from portlabel.errors import RegistryFormatError

_SPACES = re.compile(r"[ \t]+")


def clean_text(text: str) -> str:
    """Trim each line, drop blank lines, keep line breaks (IANA texts are multi-line)."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def parse_port_range(text: str, limit: int = 65535) -> tuple[int, int]:
    """``"80"`` -> (80, 80); ``"6000-6063"`` -> (6000, 6063); anything else is an error."""
    lo_text, sep, hi_text = text.strip().partition("-")
    if not lo_text.strip().isdigit() or (sep and not hi_text.strip().isdigit()):
        raise ValueError(f"bad number or range {text!r}")
    lo = int(lo_text)
    hi = int(hi_text) if sep else lo
    if not 0 <= lo <= hi <= limit:
        raise ValueError(f"number or range {text!r} outside 0-{limit}")
    return lo, hi


def decode_utf8(path: str, data: bytes) -> str:
    """The file's text (a BOM is dropped); a RegistryFormatError at the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RegistryFormatError(
            path, f"not UTF-8 ({exc.reason})", f"offset {exc.start}"
        ) from None
