"""Which header comes next: layer codes and the number-to-layer tables.

``Layer`` numbers every header the decoder knows; the numeric order is the order in which a
decoding pass visits them, so an ordinary Ethernet/IPv4/TCP frame is finished in one pass
(tunnels send their cursors back up to a lower number and take one more pass).

The tables map the "next protocol" numbers found in headers (DLT, EtherType, PPP protocol,
IP protocol number) to a ``Layer``; unknown numbers map to ``NOT_IP`` or ``UNSUPPORTED``.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Layer(IntEnum):
    DONE = 0
    # capture pseudo-headers and link layers
    PKTAP = 1
    PPI = 2
    RADIOTAP = 3
    NFLOG = 4
    IPNET = 5
    IPOIB = 6
    NULL = 7  # BSD loopback, family in the capturing host's byte order
    LOOP = 8  # OpenBSD loopback, family in network byte order
    PPP_DIR = 9
    MPACKET = 10
    FDDI = 11
    IEEE80211 = 12
    SLL = 13
    SLL2 = 14
    RAW = 15  # IP version taken from the first nibble
    BRCM = 16
    ETHER = 17
    # headers found through an EtherType
    FABRICPATH = 20
    VNTAG = 21
    VLAN = 22
    LLC = 23
    PPPOE = 24
    CHDLC = 25
    PPP = 26  # a PPP frame, possibly with address/control bytes first
    MPLS = 27
    PBB = 28  # 802.1ah provider backbone bridging: an I-TAG, then a customer frame
    FRAME_RELAY = 29  # Q.922 address, UI control, NLPID
    DSA = 30  # Marvell DSA/EDSA switch tag between the MAC addresses and the EtherType
    # network
    IPV4 = 40
    IPV6 = 41
    IP_EXT = 42  # IPv6 extension headers and AH; the header type is in DecodeState.arg
    # transport
    TCP = 50
    UDP = 51
    SCTP = 52
    DCCP = 53
    ICMP = 54
    ICMPV6 = 55
    IP_OTHER = 56  # a protocol with no ports (ESP, OSPF, IGMP...): decoding ends OK
    NO_NEXT = 57  # IPv6's "no next header": nothing follows, and no flow (as in Zeek)
    # tunnels
    GRE = 60
    ERSPAN2 = 61
    ERSPAN3 = 62
    VXLAN = 63
    VXLAN_GPE = 64
    NSH = 65
    GENEVE = 66
    GTPU = 67
    TEREDO = 68
    AYIYA = 69
    IP_IN_IP = 70  # IPv4/IPv6 inside IP; the inner version is in DecodeState.arg
    CAPWAP = 71  # CAPWAP data channel: an 802.11 or 802.3 frame


UNSUPPORTED = 253  # a link type we cannot find IP in
NOT_IP = 254  # a known link whose payload is not IP

IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6 = 6, 17, 1, 58
IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE, IPPROTO_SCTP, IPPROTO_DCCP = 4, 41, 47, 132, 33
IPV6_EXTENSIONS = (0, 43, 44, 51, 60, 135, 139, 140)  # hop-by-hop, routing, fragment, AH...
IPV6_FRAGMENT, IPPROTO_AH = 44, 51


def _table(size: int, default: int, entries: dict[int, int]) -> np.ndarray:
    table = np.full(size, default, dtype=np.uint8)
    for key, value in entries.items():
        table[key] = value
    return table


DLT_TO_LAYER = _table(
    65536,
    UNSUPPORTED,
    {
        0: Layer.NULL,
        1: Layer.ETHER,
        9: Layer.PPP,
        10: Layer.FDDI,
        12: Layer.RAW,
        14: Layer.RAW,
        50: Layer.PPP,  # PPP in HDLC-like framing
        51: Layer.PPPOE,
        101: Layer.RAW,
        104: Layer.CHDLC,
        105: Layer.IEEE80211,
        107: Layer.FRAME_RELAY,
        108: Layer.LOOP,
        113: Layer.SLL,
        127: Layer.RADIOTAP,
        166: Layer.PPP_DIR,  # PPP_PPPD: direction byte first
        192: Layer.PPI,
        204: Layer.PPP_DIR,
        226: Layer.IPNET,
        228: Layer.IPV4,
        229: Layer.IPV6,
        239: Layer.NFLOG,
        242: Layer.IPOIB,
        258: Layer.PKTAP,
        274: Layer.MPACKET,
        276: Layer.SLL2,
        281: Layer.BRCM,
        284: Layer.DSA,  # DSA_TAG_DSA
        285: Layer.DSA,  # DSA_TAG_EDSA
    },
)

ETHERTYPE_TO_LAYER = _table(
    65536,
    NOT_IP,
    {
        0x0800: Layer.IPV4,
        0x86DD: Layer.IPV6,
        0x8100: Layer.VLAN,
        0x88A8: Layer.VLAN,
        0x9100: Layer.VLAN,
        0x9200: Layer.VLAN,
        0x8847: Layer.MPLS,
        0x8848: Layer.MPLS,
        0x8864: Layer.PPPOE,
        0x880B: Layer.PPP,
        0x6558: Layer.ETHER,  # transparent Ethernet bridging
        0x8903: Layer.FABRICPATH,
        0x8926: Layer.VNTAG,
        0x88BE: Layer.ERSPAN2,
        0x22EB: Layer.ERSPAN3,
        0x894F: Layer.NSH,
        0x88E7: Layer.PBB,
        0x8200: Layer.IEEE80211,  # Aruba's GRE: its access points' 802.11 frames
        0x8210: Layer.IEEE80211,
    },
)
ETHERTYPE_TO_LAYER[:0x0600] = Layer.LLC  # IEEE 802.3 length field: an LLC header follows

PPP_TO_LAYER = _table(
    65536,
    NOT_IP,
    {0x0021: Layer.IPV4, 0x0057: Layer.IPV6, 0x0281: Layer.MPLS, 0x0283: Layer.MPLS},
)

IPPROTO_TO_LAYER = _table(
    256,
    Layer.IP_OTHER,
    {
        IPPROTO_TCP: Layer.TCP,
        IPPROTO_UDP: Layer.UDP,
        IPPROTO_SCTP: Layer.SCTP,
        IPPROTO_DCCP: Layer.DCCP,
        IPPROTO_ICMP: Layer.ICMP,
        IPPROTO_ICMPV6: Layer.ICMPV6,
        IPPROTO_GRE: Layer.GRE,
        IPPROTO_IPIP: Layer.IP_IN_IP,
        IPPROTO_IPV6: Layer.IP_IN_IP,
        IPPROTO_AH: Layer.IP_EXT,
    },
)
# In IPv6 the extension headers are part of the network layer.
IP6PROTO_TO_LAYER = IPPROTO_TO_LAYER.copy()
IP6PROTO_TO_LAYER[list(IPV6_EXTENSIONS)] = Layer.IP_EXT
IP6PROTO_TO_LAYER[59] = Layer.NO_NEXT

# The numbers of the Layer members that have a handler, in pass order.
PASS_ORDER = sorted(int(v) for v in Layer if v != Layer.DONE)
