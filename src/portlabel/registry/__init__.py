"""The IANA port registry: sources -> model -> compiled array lookup.

``sources`` read every form the registry comes in into ``model`` records; ``compiler``
turns them into an artifact (``artifact`` is its container); ``compiled`` maps an
artifact and answers vectorised lookups (pure: it knows no file locations); ``build``
glues source files to the compiler; ``bundled`` names the files shipped in the package;
``loading`` is the policy of which registry is used (the user's cache, else the bundled
one) and ``update`` refreshes the user's cache. ``export`` and ``summary`` read a
compiled registry for other tools and for ``registry info``.

Imports go one way: model -> sources, compiler -> compiled -> build -> loading -> update.
"""

from portlabel.registry.compiled import Registry
from portlabel.registry.loading import (
    default_registry,
    load_registry,
    lookup,
    resolve_registry,
    user_cache_path,
)

__all__ = [
    "Registry",
    "default_registry",
    "load_registry",
    "lookup",
    "resolve_registry",
    "user_cache_path",
]
