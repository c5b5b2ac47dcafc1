"""Exceptions portlabel raises for bad input, each naming the file and where in it.

Every error a user can cause with a file carries the path and a position (line for text
formats, byte offset for binary ones), so the CLI can print one line that says exactly
where to look: ``portlabel: capture.pcap: offset 1048576: record length 4294967295 ...``.
"""

from __future__ import annotations


class PortlabelError(Exception):
    """Base class: something about the input or the options prevents the job."""


class InputError(PortlabelError):
    """A file that cannot be read as what it claims to be.

    ``where`` is a human string such as ``"line 12"`` or ``"offset 4096"``; it is optional
    for errors that concern the whole file (missing, unreadable, unknown format).
    """

    def __init__(self, path: object, message: str, where: str | None = None) -> None:
        self.path = str(path)
        self.message = message
        self.where = where
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.where:
            return f"{self.path}: {self.where}: {self.message}"
        return f"{self.path}: {self.message}"


class RegistryFormatError(InputError):
    """A registry source (XML, CSV, text, services file, artifact) is malformed."""


class CaptureError(InputError):
    """A capture file is unreadable, of an unknown format or corrupt before any packet."""


class LogFormatError(InputError):
    """A Zeek-style log cannot be read at all (bad header, unknown format)."""


class UsageError(PortlabelError):
    """Options that contradict each other or name something that does not exist."""
