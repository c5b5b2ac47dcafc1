"""``portlabel registry update``: fetch a new IANA XML, prove it compiles, swap it in.

The download goes to a temporary file, is size-capped, must be the service-names
registry, and must compile; only then is the compiled artifact renamed over the user's
cached registry (XDG cache dir). Any failure leaves the previous registry in place and
raises an error that names the source. The bundled registry is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from portlabel.errors import PortlabelError, RegistryFormatError

MAX_DOWNLOAD = 64 * 1024 * 1024


class UpdateError(PortlabelError):
    pass


def _fetch(source: str, dest: Path, timeout: float) -> None:
    if "://" not in source:
        try:
            shutil.copyfile(source, dest)
        except OSError as exc:
            raise UpdateError(f"{source}: {exc.strerror or exc}") from None
        return
    request = urllib.request.Request(source, headers={"User-Agent": "portlabel registry update"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            expected = response.headers.get("Content-Length")
            total = 0
            while chunk := response.read(1 << 16):
                total += len(chunk)
                if total > MAX_DOWNLOAD:
                    raise UpdateError(f"{source}: download larger than {MAX_DOWNLOAD} bytes")
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UpdateError(f"{source}: download failed ({exc})") from None
    if expected is not None and expected.isdigit() and int(expected) != total:
        raise UpdateError(f"{source}: download truncated ({total} of {expected} bytes)")


def update_registry(source: str, timeout: float = 60.0, cache: Path | None = None) -> dict:
    """Fetch ``source`` (URL or file), validate by compiling, replace the cached artifact."""
    from portlabel.registry.build import compile_files, write_artifact
    from portlabel.registry.compiled import registry_from_bytes
    from portlabel.registry.loading import forget_default, user_cache_path
    from portlabel.registry.sources import read_source

    cache = cache or user_cache_path()
    with tempfile.TemporaryDirectory(prefix="portlabel-update-") as tmp:
        downloaded = Path(tmp) / "service-names-port-numbers.xml"
        _fetch(source, downloaded, timeout)
        try:
            kind = read_source(downloaded).kind
            if kind != "iana-xml":
                raise UpdateError(f"{source}: expected IANA's service-names XML, got {kind}")
            data = compile_files(downloaded)
        except RegistryFormatError as exc:
            raise UpdateError(
                f"{source}: rejected, previous registry kept: "
                f"{exc.where + ': ' if exc.where else ''}{exc.message}"
            ) from None
        registry = registry_from_bytes(str(cache), data)
        if registry.n_entries < 1000:
            raise UpdateError(
                f"{source}: rejected, only {registry.n_entries - 1} records "
                "(a truncated registry?); previous registry kept"
            )
        write_artifact(data, cache)
    forget_default()  # the next default_registry() sees the new cache
    return {"path": str(cache), "updated": registry.updated, "records": registry.n_entries - 1}
