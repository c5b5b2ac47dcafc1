"""Write a file so that it appears complete or not at all (used by every writer of portlabel).

``atomic_output(path)`` yields a writable binary file that is really a temporary file
in the same directory (so the final rename never crosses a file system); only when the
``with`` block ends without an exception is it flushed, synced and renamed over
``path``. Any failure removes the temporary file and leaves ``path`` as it was. A
device, FIFO or socket is written in place instead (never renamed over); a symbolic
link's target is replaced, the link kept.

``refuse_to_overwrite(output, inputs)`` is the check every command makes before it reads
anything: an output that is one of its inputs (the same file, also through a symbolic
or hard link) would replace the input with the result.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from portlabel.directfile import direct_or_plain


@contextlib.contextmanager
def atomic_output(path: str, compress: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to (gzip-compressed if asked).

    A replaced file keeps its mode; a new one gets the mode any new file would (0666 less
    the umask), not the private 0600 of a temporary file. A device such as /dev/null, a
    FIFO or a socket is written in place, as a shell redirection would: renaming over it
    would replace the device itself with a regular file. Through a symbolic link, the
    file it leads to is the one replaced.
    """
    path, in_place = _destination(path)
    if in_place:
        with open(path, "wb") as raw:
            if not compress:
                yield raw
                return
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as fh:
                yield fh
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    raw = direct_or_plain(fd)  # past the page cache where the file system allows
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


def _destination(path: str) -> tuple[str, bool]:
    """(the path to write, whether to write it in place). A plain file or a new path is
    replaced atomically; so is the plain file a symbolic link leads to (the link stays,
    and ``--in-place`` can still read the old file while the new one is written). A
    device, FIFO or socket, or a link to one, is written in place."""
    try:
        info = os.lstat(path)
    except OSError:
        return path, False
    if stat.S_ISREG(info.st_mode):
        return path, False
    if stat.S_ISLNK(info.st_mode):
        real = os.path.realpath(path)
        try:
            target = os.stat(real)
        except OSError:
            return path, True  # a dangling link: opening it creates its target
        if stat.S_ISREG(target.st_mode) and not real.startswith("/proc/"):
            return real, False
    return path, True


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (through links too); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_to_overwrite(output: str | None, inputs, hint: str = "give another -o") -> None:
    """``UsageError`` if ``output`` is one of ``inputs`` (``-`` and None are never)."""
    from portlabel.errors import UsageError

    if output in (None, "-"):
        return
    for path in inputs:
        name = os.fspath(path)
        if name != "-" and same_file(name, output):
            raise UsageError(
                f"the output {output} is the input {name}: it would be replaced; {hint}"
            )


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask
