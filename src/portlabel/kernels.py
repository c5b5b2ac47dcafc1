"""Which compiled kernels this install has.

The C extensions built by ``pip install`` (``setup.py``) are optional: each has a numpy or
Python twin that gives the same results more slowly. ``missing()`` names the ones that
are not importable, for diagnostics and for the test that CI runs with
``PORTLABEL_REQUIRE_KERNELS=1``.
"""

from __future__ import annotations

import importlib

KERNELS = (
    "portlabel.capture._plaindecode",
    "portlabel.capture._pcapwalk",
    "portlabel.capture._pcapngwalk",
    "portlabel.capture._bpfvm",
    "portlabel.flows._flowkeys",
    "portlabel.flows._tcptrack",
    "portlabel.flows._sha1rows",
    "portlabel.flows._aggregate",
    "portlabel.flows._slotindex",
    "portlabel.flows._flowtext",
    "portlabel.packet_writers._spancopy",
    "portlabel._rowjoin",
    "portlabel.enrich._logscan",
)


def missing() -> list[str]:
    """The kernels of ``KERNELS`` that cannot be imported."""
    absent = []
    for name in KERNELS:
        try:
            importlib.import_module(name)
        except ImportError:
            absent.append(name)
    return absent
