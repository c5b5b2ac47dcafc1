"""Transport-layer handlers: TCP, UDP, SCTP, DCCP, ICMP, ICMPv6 and port-less protocols.

Ports are filled as soon as their four bytes are captured, even when the rest of the header
is cut (the row is then TRUNCATED but still attributable to its flow). ``payload_len`` is
the IP payload length from the IP header minus the transport header, floored at zero.
UDP datagrams on a tunnel port are handed to the matching tunnel handler, which gives them
back as plain UDP when the payload does not look like that tunnel; UDP on other ports whose
payload starts like Teredo goes to the Teredo handler for a stricter content check.
"""

from __future__ import annotations

import numpy as np

from portlabel.capture import headers as H
from portlabel.capture import tunnels
from portlabel.capture.batch import DecodeStatus
from portlabel.capture.cursor import DecodeState, field, gather, read
from portlabel.capture.nextlayer import Layer

ICMP_WITH_ID = np.zeros(256, dtype=bool)
ICMP_WITH_ID[[0, 8, 13, 14, 15, 16, 17, 18]] = True  # echo, timestamp, info, mask
ICMPV6_WITH_ID = np.zeros(256, dtype=bool)
ICMPV6_WITH_ID[[128, 129]] = True

_UDP_TUNNEL_PORTS = {
    H.UDP_VXLAN: Layer.VXLAN,
    H.UDP_VXLAN_GPE: Layer.VXLAN_GPE,
    H.UDP_GENEVE: Layer.GENEVE,
    H.UDP_GTPU: Layer.GTPU,
    H.UDP_TEREDO: Layer.TEREDO,
    H.UDP_AYIYA: Layer.AYIYA,
    H.UDP_GRE: Layer.GRE,
    H.UDP_CAPWAP_DATA: Layer.CAPWAP,
}
UDP_PORT_TO_TUNNEL = np.zeros(65536, dtype=np.uint8)  # 0 = Layer.DONE: no tunnel
for _port, _layer in _UDP_TUNNEL_PORTS.items():
    UDP_PORT_TO_TUNNEL[_port] = _layer

# Tunnels found by content on any UDP port (Zeek's dpd signatures): a payload is a
# candidate when each of its first four bytes has the tunnel's bit in its table.
# GTP-U G-PDU: version 1, PT 1, type 255; AYIYA: authentication 1 / forward, IPv4 or IPv6.
PROBE_GTPU, PROBE_AYIYA = 1, 2
UDP_CONTENT_PROBES = np.full((4, 256), PROBE_GTPU | PROBE_AYIYA, dtype=np.uint8)
UDP_CONTENT_PROBES[0] = PROBE_AYIYA
UDP_CONTENT_PROBES[0, 0x30:0x38] |= PROBE_GTPU
UDP_CONTENT_PROBES[1] = PROBE_AYIYA
UDP_CONTENT_PROBES[1, 0xFF] |= PROBE_GTPU
UDP_CONTENT_PROBES[2] = PROBE_GTPU
UDP_CONTENT_PROBES[2, 0x11] |= PROBE_AYIYA
UDP_CONTENT_PROBES[3] = PROBE_GTPU
UDP_CONTENT_PROBES[3, [4, 41]] |= PROBE_AYIYA
_PROBED = {PROBE_GTPU: Layer.GTPU, PROBE_AYIYA: Layer.AYIYA}


def _ports(st: DecodeState, idx: np.ndarray, header_len: int):
    """Fill ports where captured; keep only packets whose whole fixed header is there.

    Returns ``(idx, pos, header)``: the kept packets and their fixed header bytes.
    """
    pos, end = st.pos[idx], st.end[idx]
    st.out.l4_offset[idx] = pos - st.start[idx]
    full = pos + header_len <= end
    if full.all():
        hdr = gather(st.buf, pos, header_len)
        st.out.sport[idx] = field(hdr, H.PORTS.sport)
        st.out.dport[idx] = field(hdr, H.PORTS.dport)
        return idx, pos, hdr
    idx, pos = st.need(idx, H.PORTS.min_len, pos)
    full = pos + header_len <= st.end[idx]
    ports = gather(st.buf, pos, H.PORTS.min_len)
    st.out.sport[idx] = field(ports, H.PORTS.sport)
    st.out.dport[idx] = field(ports, H.PORTS.dport)
    st.finish(idx[~full], DecodeStatus.TRUNCATED)
    idx, pos = idx[full], pos[full]
    return idx, pos, gather(st.buf, pos, header_len)


def _payload(st: DecodeState, idx: np.ndarray, header_len) -> None:
    st.out.payload_len[idx] = np.maximum(st.ip_rest[idx] - header_len, 0)


def tcp(st: DecodeState, idx: np.ndarray) -> None:
    L, out = H.TCP, st.out
    idx, pos, hdr = _ports(st, idx, L.min_len)
    out.tcp_seq[idx] = field(hdr, L.seq)
    out.tcp_ack[idx] = field(hdr, L.ack)
    out.tcp_flags[idx] = field(hdr, L.flags)
    out.tcp_window[idx] = field(hdr, L.window)
    data_offset = field(hdr, L.data_offset) * 4
    bad = data_offset < L.min_len
    _payload(st, idx, data_offset)
    st.finish(idx)
    if bad.any():
        st.finish(idx[bad], DecodeStatus.MALFORMED)


def udp(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos, _ = _ports(st, idx, H.UDP.min_len)
    _payload(st, idx, H.UDP.min_len)
    # A tunnel is recognised on either port; the destination port wins a tie.
    tunnel = UDP_PORT_TO_TUNNEL[st.out.dport[idx]]
    tunnel = np.where(tunnel == 0, UDP_PORT_TO_TUNNEL[st.out.sport[idx]], tunnel)
    to_tunnel = tunnel != 0
    if to_tunnel.any():
        st.goto(idx[to_tunnel], tunnel[to_tunnel], pos[to_tunnel] + H.UDP.min_len)
        idx, pos = idx[~to_tunnel], pos[~to_tunnel]
    teredo = tunnels.teredo_candidates(st, idx, pos + H.UDP.min_len)
    if teredo.any():
        st.arg[idx[teredo]] = tunnels.BY_CONTENT
        st.goto(idx[teredo], Layer.TEREDO, pos[teredo] + H.UDP.min_len)
        idx, pos = idx[~teredo], pos[~teredo]
    idx, pos = _probe_content(st, idx, pos + H.UDP.min_len)
    st.finish(idx)


def _probe_content(st: DecodeState, idx: np.ndarray, payload: np.ndarray):
    """Send datagrams whose payload starts like GTP-U or AYIYA to those handlers (which
    check more); return the others."""
    room = (st.ip_rest[idx] - H.UDP.min_len >= 8) & (payload + 8 <= st.end[idx])
    if not room.any():
        return idx, payload
    rows = np.flatnonzero(room)
    head = gather(st.buf, payload[rows], 4)
    bits = UDP_CONTENT_PROBES[0][head[:, 0]] & UDP_CONTENT_PROBES[1][head[:, 1]]
    bits &= UDP_CONTENT_PROBES[2][head[:, 2]] & UDP_CONTENT_PROBES[3][head[:, 3]]
    keep = np.ones(len(idx), dtype=bool)
    for bit, layer in _PROBED.items():
        hit = rows[(bits & bit) != 0]
        hit = hit[keep[hit]]
        if len(hit):
            st.arg[idx[hit]] = tunnels.BY_CONTENT
            st.goto(idx[hit], layer, payload[hit])
            keep[hit] = False
    return idx[keep], payload[keep]


def sctp(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos, _ = _ports(st, idx, H.SCTP.min_len)
    _payload(st, idx, H.SCTP.min_len)
    has_chunk = pos + H.SCTP.min_len < st.end[idx]
    st.out.sctp_chunk[idx[has_chunk]] = read(st.buf, pos[has_chunk], H.SCTP.first_chunk)
    st.finish(idx)


def dccp(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos, hdr = _ports(st, idx, H.DCCP.min_len)
    data_offset = field(hdr, H.DCCP.data_offset) * 4
    _payload(st, idx, data_offset)
    bad = data_offset < H.DCCP.min_len
    st.finish(idx[bad], DecodeStatus.MALFORMED)
    st.finish(idx[~bad])


def _icmp(st: DecodeState, idx: np.ndarray, with_id: np.ndarray) -> None:
    L, out = H.ICMP, st.out
    out.l4_offset[idx] = st.pos[idx] - st.start[idx]
    idx, pos = st.need(idx, 2)
    kind = read(st.buf, pos, L.type)
    out.icmp_type[idx] = kind
    out.icmp_code[idx] = read(st.buf, pos, L.code)
    idx, pos, kind = st.need(idx, L.min_len, pos, kind)
    echo = with_id[kind]
    out.icmp_id[idx[echo]] = read(st.buf, pos[echo], L.ident)
    _payload(st, idx, L.min_len)
    st.finish(idx)


def icmp(st: DecodeState, idx: np.ndarray) -> None:
    _icmp(st, idx, ICMP_WITH_ID)


def icmpv6(st: DecodeState, idx: np.ndarray) -> None:
    _icmp(st, idx, ICMPV6_WITH_ID)


def no_next_header(st: DecodeState, idx: np.ndarray) -> None:
    """IPv6 next header 59: the packet carries nothing (Teredo's bubbles). Zeek makes no
    connection of it, so the row leaves with its own status rather than OK."""
    st.out.l4_offset[idx] = st.pos[idx] - st.start[idx]
    _payload(st, idx, 0)
    st.finish(idx, DecodeStatus.NO_NEXT_HEADER)


def ip_other(st: DecodeState, idx: np.ndarray) -> None:
    """A protocol without ports (ESP, IGMP, OSPF, no-next-header...): decoding ends here."""
    st.out.l4_offset[idx] = st.pos[idx] - st.start[idx]
    _payload(st, idx, 0)
    st.finish(idx)
