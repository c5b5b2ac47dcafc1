"""What a terminal is shown: one way to make a rich console and to write an endpoint.

Every rich ``Console`` in portlabel comes from ``console()``, which prints text
literally: no markup (``[fe80::1]`` is an address, not a style tag), no emoji codes
(``:100:`` is part of an IPv6 address) and no highlighting guesses. Styles are given as
``rich.text.Text`` styles, never as markup inside data. ``endpoint`` writes an address
and port the way tcpdump and Zeek users read them (``[2001:db8::1]:443`` for IPv6), and
``fit_endpoint`` shortens one to a width by eliding the middle of the address, never the
port.
"""

from __future__ import annotations

from typing import TextIO

ELLIPSIS = "…"


def console(file: TextIO | None = None, *, stderr: bool = False, width: int | None = None):
    """A rich Console that prints strings exactly as given."""
    from rich.console import Console

    return Console(
        file=file, stderr=stderr, width=width, markup=False, emoji=False, highlight=False
    )


def endpoint(host: str, port: int | None) -> str:
    """``host:port``, ``[v6]:port``; just the host when there is no port."""
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def fit_endpoint(host: str, port: int | None, width: int) -> str:
    """``endpoint(host, port)`` in at most ``width`` characters: the address loses
    characters from its middle (``2001:db8…:1]:443``), the port is always whole."""
    text = endpoint(host, port)
    if len(text) <= width:
        return text
    tail = "" if port is None else f":{port}"
    if ":" in host and port is not None:
        host, tail = f"[{host}]", f":{port}"
    room = width - len(tail) - len(ELLIPSIS)
    if room < 2:  # not even two characters of address: the port matters more
        return (ELLIPSIS + tail)[-max(width, len(tail)) :] if tail else host[:width]
    keep_end = room // 2
    keep_start = room - keep_end
    return host[:keep_start] + ELLIPSIS + host[len(host) - keep_end :] + tail
