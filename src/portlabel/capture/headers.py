"""Header layouts of every protocol the decoder reads, declared once as data.

Each ``Layout`` names a header's fixed part: its minimum length and the position of each
field the decoder needs (byte offset, byte size, byte order, optional bit mask/shift).
The decoding modules never spell an offset themselves; they read ``IPV4.proto`` etc. through
``portlabel.capture.cursor``. Numbers come from the protocols' specifications (RFC 791,
8200, 793, 768, 4960, 4340, 792, 4443, 2784/2890, 7348, 8926, 4380, 29.281 for GTP-U)
and from the LINKTYPE registry for the capture pseudo-headers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    """``size`` bytes at ``offset`` from the header start, then ``(value >> shift) & mask``."""

    offset: int
    size: int
    little: bool = False
    shift: int = 0
    mask: int = 0  # 0 = keep every bit

    def after(self, base: int) -> Field:
        """This field of a header that starts ``base`` bytes into the bytes read."""
        return Field(base + self.offset, self.size, self.little, self.shift, self.mask)


class Layout:
    """A header's fixed part: ``min_len`` bytes holding the named ``Field``s."""

    def __init__(self, name: str, min_len: int, **fields: Field) -> None:
        self.name = name
        self.min_len = min_len
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __getattr__(self, key: str) -> Field:  # for type checkers; real fields are set above
        raise AttributeError(f"{self.name} has no field {key!r}")


# --- link layers --------------------------------------------------------------------
ETHERNET = Layout("ethernet", 14, dst=Field(0, 6), src=Field(6, 6), ethertype=Field(12, 2))
VLAN = Layout("802.1q", 4, vid=Field(0, 2, mask=0x0FFF), ethertype=Field(2, 2))
VNTAG = Layout("vn-tag", 6, ethertype=Field(4, 2))
PBB_ITAG = Layout("802.1ah-i-tag", 4, isid=Field(1, 3))  # then the customer Ethernet frame
FABRICPATH = Layout("cisco-fabricpath", 2)  # FTag/TTL, then a whole inner Ethernet frame
BRCM_TAG = Layout("broadcom-tag", 18, dst=Field(0, 6), src=Field(6, 6), ethertype=Field(16, 2))
MPLS = Layout("mpls", 4, bottom=Field(2, 1, shift=0, mask=0x01))
PPPOE_SESSION = Layout("pppoe-session", 8, protocol=Field(6, 2))
LLC = Layout("llc", 3, dsap=Field(0, 1), ssap=Field(1, 1), control=Field(2, 1))
SNAP = Layout("snap", 8, ethertype=Field(6, 2))  # after the 3 LLC bytes AA AA 03: OUI + type
PPP_ADDR_CTRL = 0xFF03
PPP = Layout("ppp", 2, addr_ctrl=Field(0, 2), protocol=Field(0, 2))
CHDLC = Layout("cisco-hdlc", 4, protocol=Field(2, 2))
NULL_LOOP = Layout("bsd-null", 4, family_le=Field(0, 4, little=True), family_be=Field(0, 4))
SLL = Layout(
    "linux-sll",
    16,
    arphrd=Field(2, 2),
    addr_len=Field(4, 2),
    addr=Field(6, 6),
    protocol=Field(14, 2),
)
SLL2 = Layout(
    "linux-sll2",
    20,
    protocol=Field(0, 2),
    arphrd=Field(8, 2),
    addr_len=Field(11, 1),
    addr=Field(12, 6),
)
IEEE80211 = Layout(
    "802.11",
    24,
    fc0=Field(0, 1),
    flags=Field(1, 1),
    addr1=Field(4, 6),
    addr2=Field(10, 6),
    addr3=Field(16, 6),
    addr4=Field(24, 6),
)
RADIOTAP = Layout("radiotap", 8, version=Field(0, 1), length=Field(2, 2, little=True))
PPI = Layout("ppi", 8, length=Field(2, 2, little=True), dlt=Field(4, 4, little=True))
NFLOG = Layout("nflog", 4, family=Field(0, 1))
NFLOG_TLV = Layout("nflog-tlv", 4, length=Field(0, 2, little=True), type=Field(2, 2, little=True))
NFULA_PAYLOAD = 9
IPOIB = Layout("ipoib", 44, protocol=Field(40, 2))  # 40-byte address pseudo-header, type, rsvd
IPNET = Layout("solaris-ipnet", 24, family=Field(1, 1))
PKTAP = Layout("apple-pktap", 8, length=Field(0, 4, little=True), dlt=Field(4, 4, little=True))
FDDI = Layout("fddi", 13, dst=Field(1, 6), src=Field(7, 6))
MPACKET = Layout("802.3br-mpacket", 8, smd=Field(7, 1))  # 7 preamble bytes, then the SMD

# --- network layers -----------------------------------------------------------------
IPV4 = Layout(
    "ipv4",
    20,
    version=Field(0, 1, shift=4, mask=0x0F),
    ihl=Field(0, 1, mask=0x0F),
    total_len=Field(2, 2),
    ident=Field(4, 2),
    more_frags=Field(6, 1, shift=5, mask=0x01),
    frag_offset=Field(6, 2, mask=0x1FFF),
    proto=Field(9, 1),
    src=Field(12, 4),
    dst=Field(16, 4),
)
IPV6 = Layout(
    "ipv6",
    40,
    version=Field(0, 1, shift=4, mask=0x0F),
    payload_len=Field(4, 2),
    next_header=Field(6, 1),
    src=Field(8, 16),
    dst=Field(24, 16),
    src_prefix32=Field(8, 4),
    dst_prefix32=Field(24, 4),
)
IPV6_EXT = Layout("ipv6-ext", 8, next_header=Field(0, 1), length=Field(1, 1))
IPV6_FRAG = Layout(
    "ipv6-fragment",
    8,
    next_header=Field(0, 1),
    frag_offset=Field(2, 2, shift=3),
    more_frags=Field(3, 1, mask=0x01),
    ident=Field(4, 4),
)

# --- transport layers ---------------------------------------------------------------
PORTS = Layout("ports", 4, sport=Field(0, 2), dport=Field(2, 2))  # shared by TCP/UDP/SCTP/DCCP
TCP = Layout(
    "tcp",
    20,
    seq=Field(4, 4),
    ack=Field(8, 4),
    data_offset=Field(12, 1, shift=4, mask=0x0F),
    flags=Field(12, 2, mask=0x01FF),
    window=Field(14, 2),
)
UDP = Layout("udp", 8, length=Field(4, 2))
SCTP = Layout("sctp", 12, first_chunk=Field(12, 1))
DCCP = Layout("dccp", 12, data_offset=Field(4, 1))
ICMP = Layout("icmp", 8, type=Field(0, 1), code=Field(1, 1), ident=Field(4, 2))

# --- tunnels ------------------------------------------------------------------------
GRE = Layout(
    "gre",
    4,
    checksum=Field(0, 1, shift=7, mask=1),
    routing=Field(0, 1, shift=6, mask=1),
    key=Field(0, 1, shift=5, mask=1),
    sequence=Field(0, 1, shift=4, mask=1),
    ack=Field(1, 1, shift=7, mask=1),  # enhanced GRE (version 1, PPTP) only
    version=Field(1, 1, mask=0x07),
    protocol=Field(2, 2),
)
ERSPAN2 = Layout("erspan-ii", 8, version=Field(0, 1, shift=4, mask=0x0F))
ERSPAN3 = Layout("erspan-iii", 12, optional=Field(11, 1, mask=0x01))
ERSPAN3_PLATFORM_LEN = 8
VXLAN = Layout("vxlan", 8, flags=Field(0, 1))
VXLAN_GPE = Layout("vxlan-gpe", 8, flags=Field(0, 1), next_protocol=Field(3, 1))
NSH = Layout("nsh", 8, length=Field(1, 1, mask=0x3F), next_protocol=Field(3, 1))
GENEVE = Layout(
    "geneve",
    8,
    version=Field(0, 1, shift=6, mask=0x03),
    opt_len=Field(0, 1, mask=0x3F),
    protocol=Field(2, 2),
)
GTPU = Layout(
    "gtp-u",
    8,
    version=Field(0, 1, shift=5, mask=0x07),
    pt=Field(0, 1, shift=4, mask=0x01),
    optional=Field(0, 1, mask=0x07),  # E, S, PN: any set means 4 more header bytes
    extension=Field(0, 1, shift=2, mask=0x01),
    msg_type=Field(1, 1),
    next_ext=Field(11, 1),
)
GTPU_GPDU = 0xFF
GTPU_EXT = Layout("gtp-u-ext", 1, length=Field(0, 1))  # in 4-byte units; last byte = next type
TEREDO_AUTH = Layout("teredo-auth", 13, id_len=Field(2, 1), auth_len=Field(3, 1))
TEREDO_ORIGIN_LEN = 8
TEREDO_PREFIX32 = 0x2001_0000  # 2001::/32, the prefix of every Teredo client address
AYIYA = Layout(
    "ayiya",
    8,
    id_len=Field(0, 1, shift=4, mask=0x0F),
    sig_len=Field(1, 1, shift=4, mask=0x0F),
    opcode=Field(2, 1, mask=0x0F),
    next_header=Field(3, 1),
)

CAPWAP = Layout(  # RFC 5415 data channel header (preamble included)
    "capwap",
    8,
    preamble=Field(0, 1),  # version 0, type 0: a CAPWAP header follows
    hlen=Field(1, 2, shift=11, mask=0x1F),  # header length in 4-byte words
    wbid=Field(2, 1, shift=1, mask=0x1F),  # wireless binding: 1 = IEEE 802.11
    native=Field(2, 2, shift=8, mask=0x01),  # T: the payload is the binding's frame
)
FRAME_RELAY = Layout("frame-relay", 4, control=Field(2, 1), nlpid=Field(3, 1))  # RFC 2427
FR_NLPID_SNAP, FR_NLPID_IPV4, FR_NLPID_IPV6 = 0x80, 0xCC, 0x8E
DSA_TAG_LEN, EDSA_TAG_LEN = 4, 8  # Marvell switch tags after the MAC addresses

# --- well-known numbers -------------------------------------------------------------
UDP_VXLAN, UDP_VXLAN_GPE, UDP_GENEVE, UDP_GTPU, UDP_TEREDO, UDP_AYIYA = (
    4789,
    4790,
    6081,
    2152,
    3544,
    5072,
)
UDP_GRE = 4754  # GRE in UDP (RFC 8086)
UDP_CAPWAP_DATA = 5247
