"""Extension points: other distributions add output formats and registry sources.

Two entry-point groups (declared in a plugin's ``pyproject.toml``)::

    [project.entry-points."portlabel.writers"]
    brief = "my_plugin:BriefWriter"          # the name is the format's name (-F brief)

    [project.entry-points."portlabel.registry_sources"]
    portmap = "my_plugin:PortmapSource"

A **writer** is a class like portlabel's own (``writers/__init__``): ``Writer(out,
schema)`` with ``write(table)`` and ``close()``; optional class attributes say how it is
listed: ``extension`` (file name extension, default the format name), ``suffixes``
(extensions that choose it, default none), ``binary`` (default False), ``streamable``
(default True: usable by ``live``), ``summary`` (default: the docstring's first line).
A built-in format of the same name wins.

A **registry source** is an object (a class or module) with ``sniff(data: bytes) ->
bool`` (is the decompressed file in this format?) and ``read(path, data, sha256) ->
RegistrySource``; it is tried after the built-in formats, so ``--registry FILE`` and
``portlabel.registry.compile_registry`` read such a file.

Entry points are listed without importing anything (``--help`` stays fast); a plugin is
imported when it is used (an unknown ``-o`` extension asks every writer plugin for its
suffixes; an unrecognised registry file asks every source plugin). A plugin that fails
to import is skipped with a ``PluginWarning``. ``refresh()`` forgets what was found (a
test that installs a plugin at run time).
"""

from __future__ import annotations

import warnings
from functools import cache
from importlib.metadata import EntryPoint, entry_points

WRITERS = "portlabel.writers"
REGISTRY_SOURCES = "portlabel.registry_sources"


@cache
def found(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name (the first of a name wins)."""
    out: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        out.setdefault(ep.name, ep)
    return out


@cache
def load(group: str, name: str):
    """The object entry point ``name`` of ``group`` names (imported now), or None when
    the plugin cannot be imported: a broken plugin is warned about once and skipped,
    never a reason for portlabel's own commands to fail."""
    ep = found(group)[name]
    try:
        return ep.load()
    except Exception as exc:  # noqa: BLE001 - whatever a third party's import raises
        warnings.warn(
            f"portlabel plugin {name!r} ({group}: {ep.value}) cannot be loaded: {exc}",
            PluginWarning,
            stacklevel=2,
        )
        return None


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded (it is skipped)."""


def refresh() -> None:
    found.cache_clear()
    load.cache_clear()
