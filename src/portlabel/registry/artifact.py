"""The compiled registry's file container: named numpy sections behind a small JSON header.

Layout (all little-endian)::

    b"PLREG\\0\\0\\0"            8 bytes magic
    uint32 format version       FORMAT_VERSION
    uint32 header length        N
    N bytes of UTF-8 JSON       {"meta": {...}, "sections": {name: [offset, dtype, shape]}}
    sections                    each aligned to 64 bytes, raw array bytes

Loading maps the file and wraps each section with ``np.frombuffer``: nothing is parsed but
the header, so a registry is ready in well under a millisecond. The writer is
deterministic (sorted keys, no timestamps), so compiling the same source twice gives the
same bytes; a test relies on that to prove the shipped artifact matches its source.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

from portlabel.errors import RegistryFormatError

MAGIC = b"PLREG\x00\x00\x00"
FORMAT_VERSION = 1
_ALIGN = 64
_PREAMBLE = struct.Struct("<8sII")


def _pad(n: int) -> int:
    return (-n) % _ALIGN


def dump_sections(meta: dict, sections: dict[str, np.ndarray]) -> bytes:
    """Serialise ``meta`` and the arrays into the artifact's bytes."""
    layout: dict[str, list] = {}
    body = bytearray()
    for name in sorted(sections):
        array = np.ascontiguousarray(sections[name])
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        body += b"\0" * _pad(len(body))
        layout[name] = [len(body), array.dtype.str, list(array.shape)]
        body += array.tobytes()
    header = json.dumps({"meta": meta, "sections": layout}, sort_keys=True).encode()
    header += b" " * _pad(_PREAMBLE.size + len(header))
    return _PREAMBLE.pack(MAGIC, FORMAT_VERSION, len(header)) + header + bytes(body)


def load_sections(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Map an artifact and return (meta, arrays); arrays are read-only views of the map."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise RegistryFormatError(path, f"cannot map compiled registry ({exc})") from None
    return parse_sections(path, buf)


def parse_sections(path: str, buf) -> tuple[dict, dict[str, np.ndarray]]:
    if len(buf) < _PREAMBLE.size:
        raise RegistryFormatError(path, "too short to be a compiled registry", "offset 0")
    magic, version, header_len = _PREAMBLE.unpack_from(buf, 0)
    if magic != MAGIC:
        raise RegistryFormatError(path, "not a compiled registry (bad magic)", "offset 0")
    if version != FORMAT_VERSION:
        raise RegistryFormatError(
            path,
            f"compiled registry format {version}, this portlabel reads {FORMAT_VERSION}; "
            "recompile it with `portlabel registry compile`",
            "offset 8",
        )
    start = _PREAMBLE.size
    try:
        header = json.loads(bytes(buf[start : start + header_len]))
    except ValueError as exc:
        raise RegistryFormatError(path, f"corrupt header ({exc})", f"offset {start}") from None
    base = start + header_len
    arrays: dict[str, np.ndarray] = {}
    for name, (offset, dtype, shape) in header["sections"].items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        end = base + offset + count * dt.itemsize
        if end > len(buf):
            raise RegistryFormatError(
                path,
                f"section {name!r} runs past the end of the file (truncated?)",
                f"offset {base + offset}",
            )
        arrays[name] = np.frombuffer(buf, dtype=dt, count=count, offset=base + offset).reshape(
            shape
        )
    return header["meta"], arrays
