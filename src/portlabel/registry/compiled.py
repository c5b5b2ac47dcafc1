"""The compiled registry: load an artifact by mapping it, answer lookups with numpy.

A ``Registry`` is a read-only view over an artifact (see ``artifact.py``): an entry-index
array of shape (5, 65536) -- tcp, udp, sctp, dccp and an all-zero row for protocols
without ports -- the entry table, and the string table. ``lookup(transports, ports)`` is
one fancy-indexing expression; text columns are decoded from the string table on first
use and cached, so the first answer costs nothing but the map.

Transports may be given as IP protocol numbers (6, 17, 132, 33: what packets carry) or
as names ("tcp", "udp", "sctp", "dccp").

Pure: this module maps the artifact it is given and knows nothing of where registries
live. Which registry is the default (the user's cache, else the bundled one) and how a
source file becomes an artifact are ``loading``'s and ``build``'s business.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from portlabel.constants import IP_PROTO_OF_TRANSPORT, TRANSPORTS
from portlabel.registry.artifact import MAGIC, load_sections, parse_sections
from portlabel.registry.model import PORT_CLASS_NAMES, STATUS_NAMES, Status

# IP protocol number -> row of the index array (row 4: no ports), and that row's start in
# the flattened array, so a lookup is one gather, one add and one gather.
ROW_OF_PROTO = np.full(256, len(TRANSPORTS), dtype=np.intp)
for _name, _proto in IP_PROTO_OF_TRANSPORT.items():
    ROW_OF_PROTO[_proto] = TRANSPORTS.index(_name)
ROW_START_OF_PROTO = ROW_OF_PROTO << 16


class Registry:
    """A compiled, memory-mapped registry answering vectorised port lookups."""

    def __init__(self, path: str, meta: dict, sections: dict[str, np.ndarray]) -> None:
        self.path = path
        self.meta = meta
        self._s = sections
        self.index = sections["index"]
        # Flat view for one-step gathers: row * 65536 + port.
        self._flat = self.index.reshape(-1)

    # -- metadata ---------------------------------------------------------------------
    @property
    def source(self) -> dict:
        """The base source: kind, file, sha256, updated date, record count."""
        return self.meta["sources"][0]

    @property
    def updated(self) -> str | None:
        return self.source.get("updated")

    @property
    def n_entries(self) -> int:
        return int(self.meta["entries"])

    # -- lookups ----------------------------------------------------------------------
    def rows(self, transports) -> np.ndarray:
        """Index-array rows for transports given as protocol numbers or names."""
        t = np.asarray(transports)
        if t.dtype.kind in "USO":
            names, inverse = np.unique(t.astype(str), return_inverse=True)
            codes = {name: i for i, name in enumerate(TRANSPORTS)}
            row_of_name = np.array(
                [codes.get(n.lower(), len(TRANSPORTS)) for n in names], dtype=np.intp
            )
            return row_of_name[inverse].reshape(t.shape)
        return ROW_OF_PROTO[t.astype(np.uint8, copy=False)]

    def lookup(self, transports, ports) -> np.ndarray:
        """Entry index of the primary label of each (transport, port); 0 means no record."""
        t = np.asarray(transports)
        if t.dtype.kind in "USO":
            flat_index = self.rows(t) << 16
        else:
            flat_index = ROW_START_OF_PROTO[t.astype(np.uint8, copy=False)]
        flat_index += np.asarray(ports).astype(np.uint16, copy=False)
        return self._flat.take(flat_index)

    def status(self, entries: np.ndarray, ports, transports=None) -> np.ndarray:
        """Status code per lookup: the entry's, with unassigned 49152-65535 as dynamic."""
        status = self.entry_status[entries]
        p = np.asarray(ports)
        status = np.where((status == Status.UNASSIGNED) & (p >= 49152), Status.DYNAMIC, status)
        if transports is not None:
            status = np.where(self.rows(transports) == len(TRANSPORTS), 255, status)
        return status.astype(np.uint8)

    @staticmethod
    def port_class(ports) -> np.ndarray:
        p = np.asarray(ports).astype(np.int64, copy=False)
        return (p >= 1024).astype(np.uint8) + (p >= 49152).astype(np.uint8)

    # -- entry table ------------------------------------------------------------------
    @cached_property
    def _strings(self) -> np.ndarray:
        """Every string of the table, decoded once (object array indexed by string id)."""
        blob = self._s["strings.blob"].tobytes()
        offsets = self._s["strings.offsets"].tolist()
        items = [blob[a:b].decode("utf-8") for a, b in zip(offsets, offsets[1:], strict=False)]
        return np.array(items, dtype=object)

    def string(self, sid: int) -> str:
        """One string by id, without decoding the table (scalar lookups stay instant)."""
        offsets = self._s["strings.offsets"]
        a, b = int(offsets[sid]), int(offsets[sid + 1])
        return self._s["strings.blob"][a:b].tobytes().decode("utf-8")

    def string_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Every string of the table as UTF-8 bytes and offsets (string i is
        ``blob[offsets[i]:offsets[i + 1]]``): for building columns without decoding."""
        return self._s["strings.blob"], self._s["strings.offsets"]

    def text_ids(self, column: str) -> np.ndarray:
        """The string id of an entry-table text column, per entry (see ``string_table``)."""
        return self._s[f"entry.{column}"]

    def text(self, column: str) -> np.ndarray:
        """An entry-table text column as an object array of ``str`` (cached)."""
        cache = self.__dict__.setdefault("_text_cache", {})
        if column not in cache:
            cache[column] = self._strings[self._s[f"entry.{column}"]]
        return cache[column]

    def entry_text(self, column: str, entry: int) -> str:
        return self.string(int(self._s[f"entry.{column}"][entry]))

    def column(self, name: str) -> np.ndarray:
        """A numeric entry-table column (port_lo, port_hi, transport, status, ...)."""
        return self._s[f"entry.{name}"]

    @property
    def entry_status(self) -> np.ndarray:
        return self._s["entry.status"]

    def protocol_text(self, column: str) -> np.ndarray:
        """keyword / description / references of IP protocols 0-255 (object array)."""
        key = f"protocol.{column}"
        if key not in self._s:
            return np.full(256, "", dtype=object)
        if "_strings" in self.__dict__:  # the whole table is decoded already
            return self._strings[self._s[key]]
        return np.array([self.string(int(sid)) for sid in self._s[key]], dtype=object)

    # -- scalar convenience -----------------------------------------------------------
    def entry(self, entry: int, port: int | None = None, transport: str | None = None) -> dict:
        """Everything the registry says about one entry, as plain Python values."""
        tcode = int(self.column("transport")[entry])
        lo, hi = int(self.column("port_lo")[entry]), int(self.column("port_hi")[entry])
        status = Status(int(self.entry_status[entry]))
        if port is None and lo >= 0:
            port = lo
        if port is not None and status == Status.UNASSIGNED and port >= 49152:
            status = Status.DYNAMIC
        code = int(self.column("service_code")[entry])
        freq = float(self.column("frequency")[entry])

        def text(col: str) -> str | None:
            return self.entry_text(col, entry) or None

        def lines(col: str) -> list[str]:
            value = self.entry_text(col, entry)
            return value.split("\n") if value else []

        return {
            "transport": transport or (TRANSPORTS[tcode] if tcode >= 0 else None),
            "port": port,
            "port_range": None if lo < 0 or lo == hi else [lo, hi],
            "service": text("name"),
            "aliases": lines("aliases"),
            "description": text("description"),
            "status": STATUS_NAMES[status],
            "port_class": PORT_CLASS_NAMES[int(self.port_class(port))]
            if port is not None
            else None,
            "assignee": text("assignee"),
            "contact": text("contact"),
            "assignee_ids": lines("assignee_id"),
            "contact_ids": lines("contact_id"),
            "references": lines("references"),
            "registered": text("registered"),
            "modified": text("modified"),
            "notes": text("notes"),
            "unauthorized": text("unauthorized"),
            "service_code": code if code >= 0 else None,
            "frequency": None if np.isnan(freq) else freq,
            "source": text("source"),
        }

    def lookup_one(self, transport: str, port: int) -> dict:
        """Scalar lookup: ``registry.lookup_one("tcp", 443)["service"] == "https"``."""
        transport = transport.lower()
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})")
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} outside 0-65535")
        entry = int(self.lookup([transport], [port])[0])
        return self.entry(entry, port=port, transport=transport)

    def find_name(self, name: str) -> list[int]:
        """Entries whose service name (or alias) is ``name``: reverse lookup, name-only too."""
        name = name.lower()
        names = self.text("name")
        hits = [i for i in range(1, len(names)) if names[i].lower() == name]
        return hits

    def search(self, text: str) -> list[int]:
        """Entries whose name or description contains ``text`` (case-insensitive)."""
        needle = text.lower()
        names, descs = self.text("name"), self.text("description")
        return [
            i
            for i in range(1, len(names))
            if needle in names[i].lower() or needle in descs[i].lower()
        ]


def is_artifact(head: bytes) -> bool:
    """Whether a file starting with ``head`` is a compiled artifact (else a source)."""
    return head[: len(MAGIC)] == MAGIC


def open_artifact(path: str | Path) -> Registry:
    """Map the compiled artifact at ``path`` (``RegistryFormatError`` if it is not one)."""
    return Registry(str(path), *load_sections(path))


def registry_from_bytes(path: str, data: bytes) -> Registry:
    """A registry over an artifact held in memory (``path`` names it in messages)."""
    return Registry(path, *parse_sections(path, memoryview(data)))
