"""Build a compiled registry from source files: the glue between sources and compiler.

``compile_files(base, overlays)`` reads the base source (and, when the base is IANA's
service registry, the bundled protocol-numbers registry beside it), reads each overlay,
and returns the artifact's bytes. ``write_artifact`` writes those bytes atomically.
"""

from __future__ import annotations

from pathlib import Path

from portlabel.errors import RegistryFormatError
from portlabel.registry.bundled import BUNDLED_PROTOCOLS_XML
from portlabel.registry.compiled import Registry, open_artifact, registry_from_bytes
from portlabel.registry.compiler import compile_sources
from portlabel.registry.sources import read_source


def compile_files(
    base: str | Path,
    overlays: list[str] | tuple[str, ...] = (),
    protocols: str | Path | None = None,
) -> bytes:
    """Compile ``base`` with ``overlays`` on top; protocols default to the bundled XML."""
    source = read_source(base)
    if source.kind in ("iana-protocols",):
        raise RegistryFormatError(
            str(base),
            "this is the protocol-numbers registry; give the "
            "service names and port numbers registry as the base",
        )
    layers = [read_source(p) for p in overlays]
    protocol_source = read_source(protocols or BUNDLED_PROTOCOLS_XML)
    if protocol_source.kind != "iana-protocols":
        raise RegistryFormatError(str(protocols), "not IANA's protocol-numbers registry")
    return compile_sources(source, layers, protocol_source)


def write_artifact(data: bytes, out: str | Path) -> None:
    """Write ``data`` to ``out`` via a temporary file and a rename: never half-written."""
    from portlabel.atomicfile import atomic_output

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(str(out)) as fh:
        fh.write(data)


def compile_registry(
    source: str | Path, overlays: list[str] | tuple[str, ...] = (), output: str | Path | None = None
) -> Registry:
    """Compile ``source`` (+ overlays) and return the ``Registry``; write it to ``output`` too."""
    data = compile_files(source, overlays)
    if output is None:
        return registry_from_bytes(str(source), data)
    write_artifact(data, output)
    return open_artifact(output)
