"""Lazy re-exports for packages whose public names live in heavier modules.

``portlabel`` and ``portlabel.flows`` name their public API in a table (name -> the
module that defines it) and resolve each name on first use, so importing the package
costs nothing (``portlabel --help`` never loads numpy). ``__dir__`` lists the names, so
``dir()`` and ``help()`` show the whole API, resolving it then.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package whose ``globals()`` is ``namespace``."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
