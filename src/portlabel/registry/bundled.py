"""The registry files that ship inside the package, and the date of each.

``BUNDLED_SERVICES_XML`` is IANA's Service Name and Transport Protocol Port Number
Registry (XML, xz-compressed), ``BUNDLED_PROTOCOLS_XML`` IANA's Protocol Numbers registry,
and ``BUNDLED_ARTIFACT`` the compiled artifact of the two (a test proves it equals what
compiling them gives). Paths only: nothing here reads them.
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")
BUNDLED_ARTIFACT = DATA_DIR / "iana-registry.plreg"
BUNDLED_SERVICES_XML = DATA_DIR / "service-names-port-numbers.xml.xz"
BUNDLED_PROTOCOLS_XML = DATA_DIR / "protocol-numbers.xml.xz"
