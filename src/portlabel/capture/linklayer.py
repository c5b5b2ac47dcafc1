"""Link-layer handlers: capture pseudo-headers, Ethernet and what rides on an EtherType.

Each handler takes the ``DecodeState`` and the indices of the packets whose cursor sits on
its header, reads that header for all of them at once and moves the cursors on (see
``portlabel.capture.cursor`` for the model). MAC addresses and VLAN ids are recorded for
the capture's own link only, not for Ethernet frames found inside a tunnel.
"""

from __future__ import annotations

import numpy as np

from portlabel.capture import headers as H
from portlabel.capture.batch import NO_VLAN, DecodeStatus
from portlabel.capture.cursor import DecodeState, field, gather, read
from portlabel.capture.nextlayer import (
    DLT_TO_LAYER,
    ETHERTYPE_TO_LAYER,
    NOT_IP,
    PPP_TO_LAYER,
    UNSUPPORTED,
    Layer,
)

_BSD_AF_INET6 = (24, 28, 30)  # NetBSD/OpenBSD, FreeBSD, macOS
_MPACKET_SMD_FRAME = (0xD5, 0xE6, 0x4C, 0x7F, 0xB3)  # SMD-E and SMD-S0..3 start a frame
_MAX_LOOPS = 16  # label stacks / TLV lists longer than this are called malformed


def goto_ethertype(st: DecodeState, idx: np.ndarray, ethertype: np.ndarray, pos) -> None:
    st.goto(idx, ETHERTYPE_TO_LAYER[ethertype], pos)


def goto_dlt(st: DecodeState, idx: np.ndarray, dlt: np.ndarray, pos) -> None:
    layer = np.where(dlt < 65536, DLT_TO_LAYER[np.minimum(dlt, 65535)], UNSUPPORTED)
    st.goto(idx, layer, pos)


def goto_ip_version(st: DecodeState, idx: np.ndarray, pos: np.ndarray) -> None:
    """IP whose version is only known from the first nibble (raw IP, MPLS payloads)."""
    idx, pos = st.need(idx, 1, pos)
    version = st.buf[pos] >> 4
    layer = np.select([version == 4, version == 6], [Layer.IPV4, Layer.IPV6], NOT_IP)
    st.goto(idx, layer, pos)


def _own_link(st: DecodeState, idx: np.ndarray) -> np.ndarray:
    return idx[st.on_own_link(idx)]


def _set_macs(st: DecodeState, idx: np.ndarray, pos: np.ndarray, src: H.Field, dst: H.Field):
    own = st.on_own_link(idx)
    if own.any():
        st.out.src_mac[idx[own]] = read(st.buf, pos[own], src)
        st.out.dst_mac[idx[own]] = read(st.buf, pos[own], dst)


# --- capture pseudo-headers ----------------------------------------------------------
def pktap(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.PKTAP.min_len)
    length = read(st.buf, pos, H.PKTAP.length)
    idx, pos, length = st.malformed(idx, length < H.PKTAP.min_len, pos, length)
    goto_dlt(st, idx, read(st.buf, pos, H.PKTAP.dlt), pos + length)


def ppi(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.PPI.min_len)
    length = read(st.buf, pos, H.PPI.length)
    idx, pos, length = st.malformed(idx, length < H.PPI.min_len, pos, length)
    goto_dlt(st, idx, read(st.buf, pos, H.PPI.dlt), pos + length)


def radiotap(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.RADIOTAP.min_len)
    length = read(st.buf, pos, H.RADIOTAP.length)
    bad = (read(st.buf, pos, H.RADIOTAP.version) != 0) | (length < H.RADIOTAP.min_len)
    idx, pos, length = st.malformed(idx, bad, pos, length)
    st.goto(idx, Layer.IEEE80211, pos + length)


def nflog(st: DecodeState, idx: np.ndarray) -> None:
    """NFLOG: a family byte, then TLVs until the NFULA_PAYLOAD one holding the packet."""
    idx, pos = st.need(idx, H.NFLOG.min_len)
    family = read(st.buf, pos, H.NFLOG.family)
    tlv = pos + H.NFLOG.min_len
    for _ in range(_MAX_LOOPS * 4):
        if len(idx) == 0:
            return
        idx, tlv, family = st.need(idx, H.NFLOG_TLV.min_len, tlv, family)
        length = read(st.buf, tlv, H.NFLOG_TLV.length)
        kind = read(st.buf, tlv, H.NFLOG_TLV.type)
        idx, tlv, length, kind, family = st.malformed(
            idx, length < H.NFLOG_TLV.min_len, tlv, length, kind, family
        )
        found = kind == H.NFULA_PAYLOAD
        if found.any():
            layer = np.select(
                [family[found] == 2, family[found] == 10], [Layer.IPV4, Layer.IPV6], NOT_IP
            )
            st.goto(idx[found], layer, tlv[found] + H.NFLOG_TLV.min_len)
        rest = ~found
        idx, tlv, family = idx[rest], tlv[rest] + ((length[rest] + 3) & ~3), family[rest]
    st.finish(idx, DecodeStatus.MALFORMED)


def ipnet(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.IPNET.min_len)
    family = read(st.buf, pos, H.IPNET.family)
    layer = np.select([family == 2, family == 26], [Layer.IPV4, Layer.IPV6], NOT_IP)
    st.goto(idx, layer, pos + H.IPNET.min_len)


def ipoib(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.IPOIB.min_len)
    goto_ethertype(st, idx, read(st.buf, pos, H.IPOIB.protocol), pos + H.IPOIB.min_len)


def _goto_bsd_family(st: DecodeState, idx: np.ndarray, family: np.ndarray, pos) -> None:
    is_v6 = np.isin(family, _BSD_AF_INET6)
    layer = np.select([family == 2, is_v6], [Layer.IPV4, Layer.IPV6], NOT_IP)
    st.goto(idx, layer, pos + H.NULL_LOOP.min_len)


def null(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.NULL_LOOP.min_len)
    family = read(st.buf, pos, H.NULL_LOOP.family_le)
    # The family is in the capturing host's byte order: a big value means big-endian.
    swapped = family > 0xFFFF
    if swapped.any():
        family[swapped] = read(st.buf, pos[swapped], H.NULL_LOOP.family_be)
    _goto_bsd_family(st, idx, family, pos)


def loop(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.NULL_LOOP.min_len)
    _goto_bsd_family(st, idx, read(st.buf, pos, H.NULL_LOOP.family_be), pos)


def ppp_dir(st: DecodeState, idx: np.ndarray) -> None:
    st.goto(idx, Layer.PPP, st.pos[idx] + 1)


def mpacket(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.MPACKET.min_len)
    starts = np.isin(read(st.buf, pos, H.MPACKET.smd), _MPACKET_SMD_FRAME)
    st.goto(idx, np.where(starts, Layer.ETHER, NOT_IP), pos + H.MPACKET.min_len)


def fddi(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.FDDI.min_len)
    st.goto(idx, Layer.LLC, pos + H.FDDI.min_len)


def ieee80211(st: DecodeState, idx: np.ndarray) -> None:
    """802.11 data frames (not protected, not null-data) lead to LLC/SNAP."""
    L = H.IEEE80211
    idx, pos = st.need(idx, L.min_len)
    fc0 = read(st.buf, pos, L.fc0)
    flags = read(st.buf, pos, L.flags)
    frame_type, subtype = (fc0 >> 2) & 3, fc0 >> 4
    is_data = (frame_type == 2) & ((subtype & 0x4) == 0) & ((flags & 0x40) == 0)
    st.goto(idx[~is_data], NOT_IP, pos[~is_data])
    idx, pos, flags, subtype = idx[is_data], pos[is_data], flags[is_data], subtype[is_data]
    ds = flags & 3
    qos = (subtype & 0x8) != 0
    length = 24 + np.where(ds == 3, 6, 0) + np.where(qos, 2, 0)
    length += np.where(qos & ((flags & 0x80) != 0), 4, 0)  # HT control field
    idx, pos, ds, length = st.need(idx, length, pos, ds, length)
    # SA/DA sit in addr1..addr4 depending on the To-DS/From-DS bits.
    own = st.on_own_link(idx)
    if own.any():
        p, d = pos[own], ds[own]
        a1, a2 = read(st.buf, p, L.addr1), read(st.buf, p, L.addr2)
        a3 = read(st.buf, p, L.addr3)
        a4 = np.zeros_like(a3)
        wds = d == 3
        a4[wds] = read(st.buf, p[wds], L.addr4)
        st.out.dst_mac[idx[own]] = np.where((d & 1) == 1, a3, a1)
        st.out.src_mac[idx[own]] = np.select([d == 0, d == 1, d == 2], [a2, a2, a3], a4)
    st.goto(idx, Layer.LLC, pos + length)


def _sll_protocol_layer(protocol: np.ndarray) -> np.ndarray:
    layer = ETHERTYPE_TO_LAYER[protocol]
    # Below 0x0600 the SLL protocol is a Linux ETH_P_* pseudo-type: 4 = 802.2 LLC frames.
    return np.where(protocol < 0x0600, np.where(protocol == 4, Layer.LLC, NOT_IP), layer)


def _linux_cooked(L):
    """SLL and SLL2 hold the same fields at different offsets: one handler per layout."""

    def handler(st: DecodeState, idx: np.ndarray) -> None:
        idx, pos = st.need(idx, L.min_len)
        six = read(st.buf, pos, L.addr_len) == 6
        own = _own_link(st, idx[six])
        if len(own):
            st.out.src_mac[own] = read(st.buf, st.pos[own], L.addr)
        protocol = read(st.buf, pos, L.protocol)
        st.goto(idx, _sll_protocol_layer(protocol), pos + L.min_len)

    return handler


sll = _linux_cooked(H.SLL)
sll2 = _linux_cooked(H.SLL2)


def raw(st: DecodeState, idx: np.ndarray) -> None:
    goto_ip_version(st, idx, st.pos[idx])


def brcm(st: DecodeState, idx: np.ndarray) -> None:
    """Broadcom switch tag (4 bytes) between the source MAC and the EtherType."""
    L = H.BRCM_TAG
    idx, pos = st.need(idx, L.min_len)
    _set_macs(st, idx, pos, L.src, L.dst)
    goto_ethertype(st, idx, read(st.buf, pos, L.ethertype), pos + L.min_len)


def dsa(st: DecodeState, idx: np.ndarray) -> None:
    """Marvell switch tags (link types 284, 285): the MAC addresses, a 4-byte DSA or an
    8-byte EDSA tag, then the EtherType."""
    L = H.ETHERNET
    tag = np.where(st.out.linktype[idx] == 285, H.EDSA_TAG_LEN, H.DSA_TAG_LEN)
    idx, pos, tag = st.need(idx, L.min_len + tag, st.pos[idx], tag)
    _set_macs(st, idx, pos, L.src, L.dst)
    goto_ethertype(st, idx, read(st.buf, pos + tag, L.ethertype), pos + L.min_len + tag)


def frame_relay(st: DecodeState, idx: np.ndarray) -> None:
    """RFC 2427: a 2-byte Q.922 address, UI control, then an NLPID naming IPv4 or IPv6, or
    (after a pad byte) SNAP with an EtherType."""
    L = H.FRAME_RELAY
    idx, pos = st.need(idx, L.min_len)
    ui = read(st.buf, pos, L.control) == 0x03
    st.goto(idx[~ui], NOT_IP, pos[~ui])
    idx, pos = idx[ui], pos[ui]
    nlpid = read(st.buf, pos, L.nlpid)
    padded = nlpid == 0
    idx, pos, padded = st.need(idx, np.where(padded, 5, 4), pos, padded)
    at = pos + np.where(padded, 5, 4)
    nlpid = st.buf[at - 1].astype(np.int64)
    snap = nlpid == H.FR_NLPID_SNAP
    layer = np.select([nlpid == H.FR_NLPID_IPV4, nlpid == H.FR_NLPID_IPV6],
                      [Layer.IPV4, Layer.IPV6], NOT_IP)  # fmt: skip
    st.goto(idx[~snap], layer[~snap], at[~snap])
    idx, at = st.need(idx[snap], 5, at[snap])  # OUI, then the EtherType
    goto_ethertype(st, idx, read(st.buf, at, H.Field(3, 2)), at + 5)


def ether(st: DecodeState, idx: np.ndarray) -> None:
    L = H.ETHERNET
    idx, pos = st.need(idx, L.min_len)
    hdr = gather(st.buf, pos, L.min_len)
    own = st.on_own_link(idx)
    if own.all():
        st.out.src_mac[idx] = field(hdr, L.src)
        st.out.dst_mac[idx] = field(hdr, L.dst)
    elif own.any():
        st.out.src_mac[idx[own]] = field(hdr[own], L.src)
        st.out.dst_mac[idx[own]] = field(hdr[own], L.dst)
    goto_ethertype(st, idx, field(hdr, L.ethertype), pos + L.min_len)


# --- headers found through an EtherType ----------------------------------------------
def fabricpath(st: DecodeState, idx: np.ndarray) -> None:
    st.goto(idx, Layer.ETHER, st.pos[idx] + H.FABRICPATH.min_len)


def pbb(st: DecodeState, idx: np.ndarray) -> None:
    """802.1ah: the I-TAG, then the customer's whole Ethernet frame (MACs, EtherType)."""
    idx, pos = st.need(idx, H.PBB_ITAG.min_len)
    st.goto(idx, Layer.ETHER, pos + H.PBB_ITAG.min_len)


def vntag(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.VNTAG.min_len)
    goto_ethertype(st, idx, read(st.buf, pos, H.VNTAG.ethertype), pos + H.VNTAG.min_len)


def vlan(st: DecodeState, idx: np.ndarray) -> None:
    L = H.VLAN
    idx, pos = st.need(idx, L.min_len)
    tag = gather(st.buf, pos, L.min_len)
    own = st.on_own_link(idx)
    if own.any():
        vid = field(tag[own], L.vid)
        rows = idx[own]
        first = st.out.vlan[rows] == NO_VLAN
        st.out.vlan[rows[first]] = vid[first]
        second = ~first & (st.out.inner_vlan[rows] == NO_VLAN)
        st.out.inner_vlan[rows[second]] = vid[second]
    goto_ethertype(st, idx, field(tag, L.ethertype), pos + L.min_len)


def llc(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.LLC.min_len)
    dsap, ssap = read(st.buf, pos, H.LLC.dsap), read(st.buf, pos, H.LLC.ssap)
    control = read(st.buf, pos, H.LLC.control)
    snap = (dsap == 0xAA) & (ssap == 0xAA) & (control == 3)
    ip = (dsap == 0x06) & (ssap == 0x06) & (control == 3)
    st.goto(idx[ip], Layer.IPV4, pos[ip] + H.LLC.min_len)
    st.goto(idx[~(ip | snap)], NOT_IP, pos[~(ip | snap)])
    idx, pos = st.need(idx[snap], H.SNAP.min_len, pos[snap])
    goto_ethertype(st, idx, read(st.buf, pos, H.SNAP.ethertype), pos + H.SNAP.min_len)


def pppoe(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.PPPOE_SESSION.min_len)
    protocol = read(st.buf, pos, H.PPPOE_SESSION.protocol)
    st.goto(idx, PPP_TO_LAYER[protocol], pos + H.PPPOE_SESSION.min_len)


def chdlc(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.CHDLC.min_len)
    goto_ethertype(st, idx, read(st.buf, pos, H.CHDLC.protocol), pos + H.CHDLC.min_len)


def ppp(st: DecodeState, idx: np.ndarray) -> None:
    """PPP: optional FF 03, then a 1-byte (compressed, odd) or 2-byte protocol."""
    idx, pos = st.need(idx, 2)
    first = st.buf[pos]
    cisco = (first == 0x0F) | (first == 0x8F)  # Cisco HDLC framing on a PPP link type
    st.goto(idx[cisco], Layer.CHDLC, pos[cisco])
    idx, pos = idx[~cisco], pos[~cisco]
    pos = pos + np.where(read(st.buf, pos, H.PPP.addr_ctrl) == H.PPP_ADDR_CTRL, 2, 0)
    idx, pos = st.need(idx, 1, pos)
    short = (st.buf[pos] & 1) == 1
    idx2, pos2 = st.need(idx[~short], 2, pos[~short])
    protocol = read(st.buf, pos2, H.PPP.protocol)
    st.goto(idx2, PPP_TO_LAYER[protocol], pos2 + 2)
    st.goto(idx[short], PPP_TO_LAYER[st.buf[pos[short]].astype(np.int64)], pos[short] + 1)


def mpls(st: DecodeState, idx: np.ndarray) -> None:
    """Walk the label stack to its bottom, then guess the payload from its first nibble."""
    pos = st.pos[idx]
    for _ in range(_MAX_LOOPS):
        idx, pos = st.need(idx, H.MPLS.min_len, pos)
        bottom = read(st.buf, pos, H.MPLS.bottom) == 1
        pos = pos + H.MPLS.min_len
        if bottom.all():
            break
        done_idx, done_pos = idx[bottom], pos[bottom]
        idx, pos = idx[~bottom], pos[~bottom]
        _after_mpls(st, done_idx, done_pos)
        if len(idx) == 0:
            return
    else:
        st.finish(idx, DecodeStatus.MALFORMED)
        return
    _after_mpls(st, idx, pos)


def _after_mpls(st: DecodeState, idx: np.ndarray, pos: np.ndarray) -> None:
    idx, pos = st.need(idx, 1, pos)
    nibble = st.buf[pos] >> 4
    cw = nibble == 0  # a pseudowire control word, then an Ethernet frame
    st.goto(idx[cw], Layer.ETHER, pos[cw] + 4)
    goto_ip_version(st, idx[~cw], pos[~cw])
