"""Write a file so that it appears complete or not at all (used by every writer of portlabel).

``atomic_output(path)`` yields a writable binary file that is really a temporary file
in the same directory (so the final rename never crosses a file system); only when the
``with`` block ends without an exception is it flushed, synced and renamed over
``path``. Any failure removes the temporary file and leaves ``path`` as it was.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def atomic_output(path: str, compress: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to (gzip-compressed if asked).

    A replaced file keeps its mode; a new one gets the mode any new file would (0666 less
    the umask), not the private 0600 of a temporary file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    raw = os.fdopen(fd, "wb")
    fh = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if compress else raw
    try:
        yield fh
        if compress:
            fh.close()
        raw.flush()
        os.fsync(raw.fileno())
        raw.close()
        if os.path.exists(path):
            shutil.copymode(path, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fh.close()
        with contextlib.suppress(Exception):
            raw.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask
