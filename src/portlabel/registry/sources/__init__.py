"""Registry sources: detect a file's format from its content and read it into the model.

``read_source(path)`` is the one entry point. Formats are recognised by what the bytes
say, never by the file name: IANA XML (service names or protocol numbers), IANA CSV,
IANA's plain-text rendering, and ``services(5)``-style files (``/etc/services``,
Wireshark's ``services``, nmap's ``nmap-services``); then the formats of
``portlabel.registry_sources`` plugins (``portlabel.plugins``). gzip, xz, bz2 and zstd wrappers
are opened transparently.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
from pathlib import Path

from portlabel.errors import RegistryFormatError
from portlabel.registry.model import RegistrySource

_MAX_SIZE = 256 * 1024 * 1024  # no registry is near this; a bigger file is not one


def _decompress(path: str, data: bytes) -> bytes:
    try:
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data)
        if data[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(data)
        if data[:3] == b"BZh":
            return bz2.decompress(data)
        if data[:4] == b"\x28\xb5\x2f\xfd":
            import zstandard

            return zstandard.ZstdDecompressor().decompress(data, max_output_size=_MAX_SIZE)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise RegistryFormatError(path, f"corrupt compressed data ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError has no stable base to name here
        raise RegistryFormatError(path, f"corrupt compressed data ({exc})") from None
    return data


def sniff_format(data: bytes) -> str:
    """Name the registry format of (decompressed) ``data``; ``"unknown"`` if none fits."""
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"PLREG"):
        return "artifact"
    if head.startswith(b"<?xml") or head.startswith(b"<registry"):
        if b'id="protocol-numbers"' in data[:2048]:
            return "iana-protocols-xml"
        return "iana-xml"
    first_line = head.split(b"\n", 1)[0].strip()
    if first_line.lower().startswith(b"service name,port number,transport protocol"):
        return "iana-csv"
    if b"Service Name and Transport Protocol Port Number Registry" in head and (
        b"Service Name Port Number Transport Protocol" in data
    ):
        return "iana-text"
    from portlabel.registry.sources.services import looks_like_services

    if looks_like_services(data):
        return "services"
    return "unknown"


def read_bytes(path: str | Path) -> tuple[str, bytes, str]:  # noqa: D401
    """Read a registry file whole (they are small), returning (path, raw bytes, sha256).

    The sha256 is of the content after decompression, so it matches the hash of the file
    as IANA publishes it whether or not it was stored compressed.
    """
    path = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_SIZE + 1)
    except OSError as exc:
        raise RegistryFormatError(path, exc.strerror or str(exc)) from None
    if len(raw) > _MAX_SIZE:
        raise RegistryFormatError(path, "file is larger than any registry (256 MiB)")
    return path, raw, ""


def read_source(path: str | Path) -> RegistrySource:
    """Read any supported registry source file into a ``RegistrySource``."""
    path, raw, _ = read_bytes(path)
    data = _decompress(path, raw)
    sha256 = hashlib.sha256(data).hexdigest()
    kind = sniff_format(data)
    if kind == "iana-xml":
        from portlabel.registry.sources.iana_xml import read_services_xml

        return read_services_xml(path, data, sha256)
    if kind == "iana-protocols-xml":
        from portlabel.registry.sources.iana_xml import read_protocols_xml

        return read_protocols_xml(path, data, sha256)
    if kind == "iana-csv":
        from portlabel.registry.sources.iana_csv import read_services_csv

        return read_services_csv(path, data, sha256)
    if kind == "iana-text":
        from portlabel.registry.sources.iana_text import read_services_text

        return read_services_text(path, data, sha256)
    if kind == "services":
        from portlabel.registry.sources.services import read_services_file

        return read_services_file(path, data, sha256)
    if kind == "unknown":
        plugin = _plugin_source(data)
        if plugin is not None:
            return plugin.read(path, data, sha256)
    if kind == "artifact":
        raise RegistryFormatError(
            path,
            "this is a compiled registry artifact, not a source; "
            "load it with portlabel.load_registry",
        )
    raise RegistryFormatError(
        path,
        "not a registry format portlabel knows (IANA XML/CSV/text, services(5), "
        "nmap-services, compiled artifact, or a portlabel.registry_sources plugin's)",
        "offset 0",
    )


def _plugin_source(data: bytes):
    """The first ``portlabel.registry_sources`` plugin that recognises ``data``."""
    from portlabel import plugins

    for name in plugins.found(plugins.REGISTRY_SOURCES):
        source = plugins.load(plugins.REGISTRY_SOURCES, name)
        if source is not None and source.sniff(data):
            return source
    return None
