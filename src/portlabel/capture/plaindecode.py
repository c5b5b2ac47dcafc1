"""The decoder's compiled fast path for plain frames, and the tables it reads.

Theory of operation: ``_plaindecode`` (a C extension built at install) decodes, in one
loop that releases the GIL, the rows whose frames are plain -- Ethernet with up to four
VLAN tags, or raw IP; IPv4 or IPv6 without fragments or extension headers; TCP, UDP off
the tunnel ports, ICMP, ICMPv6 or a port-less protocol; nothing truncated or malformed --
and returns the other rows, which the vectorised decoder then handles. Both paths give
the same columns for a row (a test checks this on every bundled capture and on random
frames), so the extension only changes the speed.

The C code holds no protocol numbers: ``TABLES`` classifies link types, EtherTypes and
IP protocols from the vectorised decoder's own tables (``nextlayer``, ``transport``,
``tunnels``), so a protocol taught to the decoder is deferred by the fast path at once.

Without a C compiler at install time the extension is absent, ``available()`` is False
and every row takes the vectorised path.
"""

from __future__ import annotations

import numpy as np

from portlabel.capture import transport, tunnels
from portlabel.capture.batch import PacketBatch, RawBatch
from portlabel.capture.nextlayer import (
    DLT_TO_LAYER,
    ETHERTYPE_TO_LAYER,
    IP6PROTO_TO_LAYER,
    IPPROTO_TO_LAYER,
    Layer,
)

try:
    from portlabel.capture import _plaindecode
except ImportError:  # built without a C compiler: the vectorised decoder does everything
    _plaindecode = None

# Class numbers shared with _plaindecode.c.
LINK_ETHER, LINK_RAW, LINK_IPV4, LINK_IPV6 = 1, 2, 3, 4
ETH_IPV4, ETH_IPV6, ETH_VLAN = 1, 2, 3
L4_TCP, L4_UDP, L4_ICMP, L4_ICMPV6, L4_OTHER = 1, 2, 3, 4, 5

# The output columns, in the order the extension takes them.
OUTPUT_COLUMNS = (
    "status", "src_mac", "dst_mac", "vlan", "inner_vlan", "ip_version", "src_ip", "dst_ip",
    "ip_proto", "ip_len", "ip_id", "frag_offset", "more_frags", "sport", "dport",
    "tcp_flags", "tcp_seq", "tcp_ack", "payload_len", "icmp_type", "icmp_code", "icmp_id",
    "tcp_window", "l3_offset", "l4_offset",
)  # fmt: skip


def _classify(layer_table: np.ndarray, classes: dict[int, int]) -> np.ndarray:
    """A uint8 table: the class of each entry's layer, 0 (defer) for unlisted layers."""
    by_layer = np.zeros(256, dtype=np.uint8)
    for layer, cls in classes.items():
        by_layer[layer] = cls
    return by_layer[layer_table]


def _tables() -> tuple[np.ndarray, ...]:
    l4 = {
        Layer.TCP: L4_TCP,
        Layer.UDP: L4_UDP,
        Layer.ICMP: L4_ICMP,
        Layer.ICMPV6: L4_ICMPV6,
        Layer.IP_OTHER: L4_OTHER,
    }
    links = {Layer.ETHER: LINK_ETHER, Layer.RAW: LINK_RAW}
    link = _classify(DLT_TO_LAYER, {**links, Layer.IPV4: LINK_IPV4, Layer.IPV6: LINK_IPV6})
    ether = _classify(
        ETHERTYPE_TO_LAYER, {Layer.IPV4: ETH_IPV4, Layer.IPV6: ETH_IPV6, Layer.VLAN: ETH_VLAN}
    )
    return tuple(
        np.ascontiguousarray(t, dtype=np.uint8)
        for t in (
            link,
            ether,
            _classify(IPPROTO_TO_LAYER, l4),
            _classify(IP6PROTO_TO_LAYER, l4),
            transport.UDP_PORT_TO_TUNNEL != 0,
            tunnels.TEREDO_FIRST_BYTE,
            transport.ICMP_WITH_ID,
            transport.ICMPV6_WITH_ID,
            transport.UDP_CONTENT_PROBES.reshape(-1),
        )
    )


TABLES = _tables()


def available() -> bool:
    """Whether the compiled fast path was built with this install."""
    return _plaindecode is not None


def decode_plain(raw: RawBatch, out: PacketBatch) -> np.ndarray:
    """Decode the plain rows of ``raw`` into ``out``; the indices of the other rows.

    ``out`` must be freshly made by ``PacketBatch.empty`` (the fast path writes only the
    columns a plain row sets). Without the extension every row is returned.
    """
    n = len(raw)
    if _plaindecode is None:
        return np.arange(n, dtype=np.int64)
    deferred = np.empty(n, dtype=np.int64)
    inputs = (
        np.ascontiguousarray(raw.buf, dtype=np.uint8),
        np.ascontiguousarray(raw.offset, dtype=np.int64),
        np.ascontiguousarray(raw.caplen, dtype=np.uint32),
        np.ascontiguousarray(raw.linktype, dtype=np.uint16),
    )
    outputs = tuple(getattr(out, name) for name in OUTPUT_COLUMNS)
    k = _plaindecode.decode_plain(inputs, TABLES, outputs, deferred)
    return deferred[:k]
