"""portlabel: label network flows with the IANA service name and port number registry.

Data flows one way: source -> packet batches (columnar) -> flows -> labels -> writers.
The public API below is resolved lazily so that ``import portlabel`` stays cheap; each
name lives in the module that owns it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # registry
    "Registry": "portlabel.registry.compiled",
    "load_registry": "portlabel.registry.compiled",
    "default_registry": "portlabel.registry.compiled",
    "compile_registry": "portlabel.registry.build",
    "read_source": "portlabel.registry.sources",
    "lookup": "portlabel.registry.compiled",
    "iana_columns": "portlabel.labels",
    # the main job: captures -> labelled flows
    "label": "portlabel.label_api",
    "iter_labelled": "portlabel.label_api",
    "LabelPipeline": "portlabel.pipeline",
    "FlowTable": "portlabel.flows",
    "FlowConfig": "portlabel.flows",
    # Zeek log enrichment
    "enrich_log": "portlabel.enrich",
    "add_iana_columns": "portlabel.enrich",
    # errors
    "PortlabelError": "portlabel.errors",
    "InputError": "portlabel.errors",
    # capture
    "PacketBatch": "portlabel.capture.batch",
    "RawBatch": "portlabel.capture.batch",
    "open_capture": "portlabel.capture.reader",
    "packet_batches": "portlabel.capture.backends",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'portlabel' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
