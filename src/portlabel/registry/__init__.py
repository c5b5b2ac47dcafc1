"""The IANA port registry: sources -> model -> compiled array lookup.

``sources`` read every form the registry comes in into ``model`` records; ``compiler``
turns them into an artifact (``artifact`` is its container); ``compiled`` maps an
artifact and answers vectorised lookups; ``build`` glues files to the compiler.
"""

from portlabel.registry.compiled import Registry, default_registry, load_registry, lookup

__all__ = ["Registry", "default_registry", "load_registry", "lookup"]
