"""How flows are cut and keyed: ``FlowConfig``, declared once for the API and every command.

Each field carries its own help text, and the command line derives its options from
these fields (``tcp_timeout`` is ``--tcp-timeout``), so every subcommand that builds
flows offers the same options under the same names as the Python API. Earlier names
stay accepted as aliases: ``tcp_inactivity=`` (``--tcp-inactivity``) and the other
``*_inactivity`` timeouts, and ``key_by_tunnel_parent`` (the opposite of ``zeek_keys``).
``flow_config(config, **options)`` applies options by either name.

Defaults are Zeek's: 300 s TCP inactivity, 60 s UDP/ICMP/other, 10 s for UDP DNS,
5 s close delay, no active timeout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _option(default: Any, help: str, *, alias: str | None = None, off: bool = False) -> Any:
    """A field with its command-line help; ``off``: the value may be None (``off``)."""
    return field(default=default, metadata={"help": help, "alias": alias, "off": off})


@dataclass(frozen=True)
class FlowConfig:
    """Timeouts (seconds) and keying options; defaults are Zeek's."""

    tcp_timeout: float = _option(
        300.0, "TCP inactivity timeout (default 300, Zeek's)", alias="tcp_inactivity"
    )
    udp_timeout: float = _option(
        60.0, "UDP inactivity timeout (default 60)", alias="udp_inactivity"
    )
    icmp_timeout: float = _option(
        60.0, "ICMP inactivity timeout (default 60)", alias="icmp_inactivity"
    )
    other_timeout: float = _option(
        60.0, "inactivity timeout of other IP protocols (default 60)", alias="other_inactivity"
    )
    dns_timeout: float | None = _option(
        10.0,
        "UDP DNS timeout, Zeek's dns_session_timeout (default 10; off: the UDP one)",
        alias="dns_inactivity",
        off=True,
    )
    close_delay: float = _option(5.0, "seconds a closed or reset TCP flow waits (default 5)")
    attempt_timeout: float | None = _option(
        5.0,
        "end an unanswered TCP connection attempt this long after its SYN, as Zeek's "
        "tcp_attempt_delay (default 5; off: never)",
        off=True,
    )
    active_timeout: float | None = _option(
        None, "end flows longer than this (default: never, as Zeek; NFStream uses 1800)", off=True
    )
    zeek_keys: bool = _option(
        False,
        "key flows by the 5-tuple only, as Zeek does: no VLANs, no tunnel parent (default "
        "for -F zeek and zeek-json)",
    )
    fragment_timeout: float | None = _option(
        60.0,
        "seconds IP fragments wait for the rest of their datagram, which is then one "
        "packet, as in Zeek (default 60; off: no reassembly, each fragment a packet)",
        off=True,
    )
    check_checksums: bool = _option(
        False,
        "verify IPv4, TCP and UDP checksums as Zeek does without -C: a packet with a bad "
        "one is not counted (a bad IPv4 header: no flow) and marks its flow's history "
        "with c/C; off by default, as checksum offloading makes senders' own bad",
    )
    max_flows: int | None = _option(
        None,
        "most flows kept active at once; beyond, those idle the longest end with "
        "end_reason evicted (default: a quarter of the available memory's worth, at "
        "least 1,000,000)",
    )
    uid_seed: int | None = _option(None, "reproducible flow uids from this seed")
    community_id_seed: int = _option(0, "Community ID seed (default 0)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type.startswith("float") and value is not None and not value >= 0:
                raise ValueError(f"{f.name} must be 0 or more seconds, not {value!r}")
        if self.max_flows is not None and self.max_flows < 1:
            raise ValueError(f"max_flows must be at least 1, not {self.max_flows!r}")

    def _quiet_waits(self) -> list[float]:
        """The inactivity timeouts and the close delay that are set."""
        waits = [self.tcp_timeout, self.udp_timeout, self.icmp_timeout, self.other_timeout,
                 self.dns_timeout, self.close_delay]  # fmt: skip
        return [w for w in waits if w is not None]

    @property
    def longest_wait(self) -> float:
        """Seconds past which a flow's next packet always starts a new flow: the longest
        inactivity timeout, close delay or attempt timeout."""
        attempt = [] if self.attempt_timeout is None else [self.attempt_timeout]
        return max(self._quiet_waits() + attempt)

    @property
    def shortest_wait(self) -> float:
        """Seconds a flow must at least be quiet before a timeout can end it: the
        shortest inactivity timeout or close delay."""
        return min(self._quiet_waits())

    @property
    def key_by_tunnel_parent(self) -> bool:
        """The keying the engine applies: a tunnelled flow's key includes its parent."""
        return not self.zeek_keys


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(FlowConfig)}
ALIASES: dict[str, str] = {
    f.metadata["alias"]: f.name for f in FIELDS.values() if f.metadata.get("alias")
}


def flow_config(config: FlowConfig | None = None, **options: Any) -> FlowConfig:
    """``config`` (or the defaults) with ``options`` replaced, by name or alias."""
    chosen: dict[str, Any] = {}
    for name, value in options.items():
        if name == "key_by_tunnel_parent":
            name, value = "zeek_keys", not value
        name = ALIASES.get(name, name)
        if name not in FIELDS:
            known = sorted([*FIELDS, *ALIASES, "key_by_tunnel_parent"])
            raise TypeError(f"unknown flow option {name!r} (known: {', '.join(known)})")
        chosen[name] = value
    return dataclasses.replace(config or FlowConfig(), **chosen)
