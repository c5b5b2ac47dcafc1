"""Which transport a Zeek record's responder port belongs to, declared as data.

A record's IP protocol comes from the first of these that gives one:

1. ``ip_proto`` (Zeek 7+ conn.log): the IP protocol number itself; the only source that
   tells ICMPv6 (58) from ICMP (1) and names what ``unknown_transport`` really was.
2. ``proto`` (conn, dns, ...): Zeek's transport enum, ``PROTO_NUMBERS`` below.
3. ``tunnel_type`` (tunnel.log): the encapsulation implies it, ``TUNNEL_TRANSPORT``.
4. The log's path (``#path``, JSON ``_path``, else the file name): ``PATH_TRANSPORT``.
   Only logs whose analyzer runs over a single transport are listed; dns.log always has
   ``proto`` (it is tcp or udp), ssl.log is listed as tcp (DTLS also lands there, but
   rarely). Logs not listed and without any of the columns above (kerberos: tcp or
   udp; files, x509, notice: no connection) get every ``iana.*`` field unset.

``UNKNOWN`` (256) marks rows whose protocol cannot be told.
"""

from __future__ import annotations

import re

from portlabel.constants import ICMP6, PROTOCOL_NAMES

UNKNOWN = 256

# Zeek ``transport_proto`` enum values (and a few spellings other tools use).
PROTO_NUMBERS: dict[str, int] = {
    **{name: number for number, name in PROTOCOL_NAMES.items()},
    "ipv6-icmp": ICMP6,
}

TCP, UDP, GRE = 6, 17, 47

PATH_TRANSPORT: dict[str, int] = {
    **dict.fromkeys(
        (
            "http",
            "ssl",
            "ssh",
            "smtp",
            "ftp",
            "irc",
            "mysql",
            "rdp",
            "rfb",
            "socks",
            "pop3",
            "imap",
            "ldap",
            "ldap_search",
            "smb_files",
            "smb_mapping",
            "dce_rpc",
            "ntlm",
            "modbus",
            "dnp3",
            "websocket",
            "http2",
            "postgresql",
            "redis",
            "mqtt_connect",
            "mqtt_publish",
            "mqtt_subscribe",
            "telnet",
            "rlogin",
            "rsh",
            "ftp_data",
        ),
        TCP,
    ),
    **dict.fromkeys(
        (
            "ntp",
            "snmp",
            "radius",
            "sip",
            "quic",
            "tftp",
            "bacnet",
            "openvpn",
            "wireguard",
            "mdns",
            "llmnr",
            "nbns",
            "netbios_ns",
            "stun",
            "dhcp",
        ),
        UDP,
    ),
}

TUNNEL_TRANSPORT: dict[str, int] = {
    "Tunnel::TEREDO": UDP,
    "Tunnel::AYIYA": UDP,
    "Tunnel::VXLAN": UDP,
    "Tunnel::GENEVE": UDP,
    "Tunnel::GTPv1": UDP,
    "Tunnel::GRE": GRE,
    "Tunnel::HTTP": TCP,
    "Tunnel::SOCKS": TCP,
}

# Columns read per record: name -> value table (None: the value is the number itself).
TRANSPORT_COLUMNS: tuple[tuple[str, dict[str, int] | None], ...] = (
    ("ip_proto", None),
    ("proto", PROTO_NUMBERS),
    ("tunnel_type", TUNNEL_TRANSPORT),
)
PORT_COLUMN = "id.resp_p"

_PATH_IN_NAME = re.compile(r"(?:^|[._])([a-z0-9_]+?)(?:\.\d{2}[:\d-]*)?\.(?:log|json)(?:\.gz)?$")


def path_from_filename(name: str) -> str | None:
    """The Zeek path a file name implies: ``conn.log`` -> conn, ``x.zeek_http.log`` -> http."""
    base = name.rsplit("/", 1)[-1]
    m = _PATH_IN_NAME.search(base)
    if not m:
        return None
    word = m.group(1)
    for prefix in ("zeek_", "bro_"):
        if word.startswith(prefix):
            word = word[len(prefix) :]
    return word.rsplit("_", 1)[-1] if word not in PATH_TRANSPORT and "_" in word else word


def path_transport(path: str | None) -> int:
    """The IP protocol a log path implies, or ``UNKNOWN``."""
    return PATH_TRANSPORT.get(path or "", UNKNOWN)
