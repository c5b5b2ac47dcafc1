"""Which registry portlabel labels with: the loading policy around the pure mapped view.

- ``default_registry()``: the user's updated registry (``registry update`` writes it to
  ``user_cache_path()``) when it is there and valid, else the bundled one. Mapped once
  per process; ``forget_default()`` makes the next call look again (after an update).
- ``load_registry(path, overlays)``: a compiled artifact is mapped, any source file
  (IANA XML/CSV/text, services files) is compiled first; overlays are compiled on top.
- ``resolve_registry(registry, overlays)``: what every entry point takes (the API's
  ``registry=``, the CLI's ``--registry``/``--overlay``): a ``Registry`` as it is, a
  path, or ``None`` for the default.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from portlabel.errors import RegistryFormatError
from portlabel.registry.bundled import BUNDLED_ARTIFACT, BUNDLED_SERVICES_XML
from portlabel.registry.compiled import (
    Registry,
    is_artifact,
    open_artifact,
    registry_from_bytes,
)


def user_cache_path() -> Path:
    """Where ``portlabel registry update`` keeps the user's registry (XDG cache dir)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "portlabel" / "iana-registry.plreg"


def load_registry(path: str | Path | None = None, overlays: list[str] | None = None) -> Registry:
    """Load a registry: a compiled artifact is mapped; any source file is compiled first.

    ``path=None`` gives the default: the user's updated cache when valid, else the
    bundled one. ``overlays`` are extra source files layered on top.
    """
    # the compiler is imported only to compile (10 ms): mapping is the usual path
    from portlabel.registry.build import compile_files

    if overlays:
        base = str(path) if path else str(BUNDLED_SERVICES_XML)
        return registry_from_bytes(base, compile_files(base, overlays))
    if path is None:
        return default_registry()
    path = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise RegistryFormatError(path, exc.strerror or str(exc)) from None
    if is_artifact(head):
        return open_artifact(path)
    return registry_from_bytes(path, compile_files(path))


def resolve_registry(registry=None, overlays=()) -> Registry:
    """``registry`` as a ``Registry``: one as it is, a path loaded, ``None`` the default;
    ``overlays`` (paths) layered on top of a path or of the bundled registry."""
    overlays = [os.fspath(p) for p in overlays or ()]
    if isinstance(registry, Registry):
        if overlays:
            raise TypeError("overlays need a registry path, not a loaded Registry")
        return registry
    if registry is None and not overlays:
        return default_registry()
    return load_registry(None if registry is None else os.fspath(registry), overlays=overlays)


_default: Registry | None = None


def default_registry() -> Registry:
    """The user's updated registry if one is cached and valid, else the bundled one."""
    global _default
    if _default is None:
        cached = user_cache_path()
        if cached.exists():
            try:
                _default = open_artifact(cached)
            except RegistryFormatError:
                _default = None  # a broken cache never hides the bundled registry
        if _default is None:
            _default = open_artifact(BUNDLED_ARTIFACT)
    return _default


def forget_default() -> None:
    """Make the next ``default_registry()`` look at the user's cache again."""
    global _default
    _default = None


def lookup(transports, ports, registry: Registry | None = None) -> np.ndarray:
    """Module-level vectorised lookup against the default registry."""
    return (registry or default_registry()).lookup(transports, ports)
