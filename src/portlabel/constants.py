"""The numbers and names every layer shares: transports, IP protocols, the batch size.

Declared once here and imported everywhere else (the registry's index rows, the decoder,
the flow engine, the labels, the writers and the enrich tables all read these), so a
transport added or renamed is one edit.

- ``TRANSPORTS``: the registry's transports, in the order of its index-array rows.
- ``IP_PROTO_OF_TRANSPORT`` / ``TRANSPORT_OF_IP_PROTO``: their IP protocol numbers.
- ``PORTED_PROTOCOLS``: the IP protocols whose packets carry 16-bit ports, that is the
  registry's transports' numbers.
- ``PROTOCOL_NAMES``: the name portlabel gives a flow's or packet's IP protocol in its
  ``transport`` column and packet lines (the transports, ``icmp`` and ``icmp6``).
- ``ZEEK_PROTO_NAMES``: Zeek's ``transport_proto`` enum as conn.log writes it (ICMPv6 is
  ``icmp`` there; every other protocol is ``unknown_transport``).
- ``BATCH_SIZE``: packets read, decoded and folded at a time unless told otherwise.
"""

from __future__ import annotations

TRANSPORTS: tuple[str, ...] = ("tcp", "udp", "sctp", "dccp")
IP_PROTO_OF_TRANSPORT: dict[str, int] = {"tcp": 6, "udp": 17, "sctp": 132, "dccp": 33}
TRANSPORT_OF_IP_PROTO: dict[int, str] = {v: k for k, v in IP_PROTO_OF_TRANSPORT.items()}
PORTED_PROTOCOLS: tuple[int, ...] = tuple(IP_PROTO_OF_TRANSPORT[t] for t in TRANSPORTS)

ICMP, ICMP6 = 1, 58
ICMP_PROTOCOLS: tuple[int, ...] = (ICMP, ICMP6)
PROTOCOL_NAMES: dict[int, str] = {**TRANSPORT_OF_IP_PROTO, ICMP: "icmp", ICMP6: "icmp6"}
ZEEK_PROTO_NAMES: dict[int, str] = {6: "tcp", 17: "udp", ICMP: "icmp", ICMP6: "icmp"}
ZEEK_UNKNOWN_PROTO = "unknown_transport"

BATCH_SIZE = 65536
