"""Tunnel handlers: GRE/ERSPAN, VXLAN(-GPE)/NSH, Geneve, GTP-U, Teredo, AYIYA, IP-in-IP.

Entering a tunnel (``enter_tunnel``) copies the row's current IP addresses, protocol, ports
and IP datagram length to the ``outer_*`` columns and clears the inner ones, then the cursor
moves to the encapsulated frame, which the ordinary handlers decode into the row. The
outermost tunnel is ``tunnel`` and ``outer_*``; a tunnel inside it is ``inner_tunnel``
and ``mid_*`` (the datagram carrying the innermost tunnel, the packet's direct parent).

The UDP-based tunnels are recognised by port, so each one first checks that its payload
really has that tunnel's shape; when it does not, the packet stays a plain UDP row. Off
their ports, Teredo, GTP-U and AYIYA are also found by content, as Zeek's dynamic protocol
detection finds them (``transport.UDP_CONTENT_PROBES``), with stricter checks.
"""

from __future__ import annotations

import numpy as np

from portlabel.capture import headers as H
from portlabel.capture.batch import DecodeStatus, TunnelType
from portlabel.capture.cursor import DecodeState, field, gather, read
from portlabel.capture.linklayer import goto_ethertype, goto_ip_version
from portlabel.capture.nextlayer import IPPROTO_IPIP, IPPROTO_IPV6, NOT_IP, Layer

_ERSPAN_TYPES = (0x88BE, 0x22EB)
_TEREDO_AUTH, _TEREDO_ORIGIN = 0x0001, 0x0000
BY_CONTENT = -1  # DecodeState.arg of UDP sent to a tunnel handler by content, not by port
TEREDO_BY_CONTENT = BY_CONTENT
# Next headers a Teredo-carried IPv6 packet plausibly starts with: hop-by-hop, TCP, UDP,
# routing, fragment, ESP, AH, ICMPv6, no next header (bubbles), destination options.
_TEREDO_NEXT_HEADERS = np.zeros(256, dtype=bool)
_TEREDO_NEXT_HEADERS[[0, 6, 17, 43, 44, 50, 51, 58, 59, 60]] = True
# First UDP payload bytes worth a Teredo check: an indicator (0x00) or IPv6 (version 6).
TEREDO_FIRST_BYTE = np.zeros(256, dtype=bool)
TEREDO_FIRST_BYTE[[0, *range(0x60, 0x70)]] = True
TEREDO_PEEK = H.TEREDO_ORIGIN_LEN + 6  # through the length of an IPv6 header after an origin
_MAX_GTP_EXTENSIONS = 8
_INNER_COLUMNS = (
    "ip_version", "src_ip", "dst_ip", "ip_proto", "ip_len", "ip_id", "frag_offset",
    "more_frags", "sport", "dport", "payload_len", "l3_offset", "l4_offset",
)  # fmt: skip


def enter_tunnel(st: DecodeState, idx: np.ndarray, kind) -> None:
    """Record the tunnel (outermost as ``outer_*``, an inner one as ``mid_*``) and clear
    the inner columns for ``idx``."""
    out = st.out
    st.tunnelled = st.tunnelled or len(idx) > 0
    first = out.tunnel[idx] == TunnelType.NONE
    kinds = np.broadcast_to(np.asarray(kind, dtype=np.uint8), idx.shape)
    for rows, tunnel, prefix in ((idx[first], out.tunnel, "outer"),
                                 (idx[~first], out.inner_tunnel, "mid")):  # fmt: skip
        tunnel[rows] = kinds[first] if prefix == "outer" else kinds[~first]
        getattr(out, f"{prefix}_src_ip")[rows] = out.src_ip[rows]
        getattr(out, f"{prefix}_dst_ip")[rows] = out.dst_ip[rows]
        getattr(out, f"{prefix}_proto")[rows] = out.ip_proto[rows]
        getattr(out, f"{prefix}_sport")[rows] = out.sport[rows]
        getattr(out, f"{prefix}_dport")[rows] = out.dport[rows]
        getattr(out, f"{prefix}_ip_len")[rows] = out.ip_len[rows]
    for name in _INNER_COLUMNS:
        getattr(out, name)[idx] = 0


def _plain_udp(st: DecodeState, idx: np.ndarray, looks_right: np.ndarray):
    """Finish the packets whose payload is not the tunnel; return the others' mask."""
    st.finish(idx[~looks_right])
    return looks_right


def ip_in_ip(st: DecodeState, idx: np.ndarray) -> None:
    enter_tunnel(st, idx, TunnelType.IP_IN_IP)
    inner = st.arg[idx]
    layer = np.select([inner == IPPROTO_IPIP, inner == IPPROTO_IPV6], [Layer.IPV4, Layer.IPV6])
    st.goto(idx, layer, st.pos[idx])


def gre(st: DecodeState, idx: np.ndarray) -> None:
    """GRE version 0 (RFC 2784/2890) and the enhanced version 1 used by PPTP."""
    L = H.GRE
    idx, pos = st.need(idx, L.min_len)
    version = read(st.buf, pos, L.version)
    idx, pos, version = st.malformed(idx, version > 1, pos, version)
    seq = read(st.buf, pos, L.sequence)
    length = 4 + 4 * (read(st.buf, pos, L.checksum) | read(st.buf, pos, L.routing))
    length += 4 * (read(st.buf, pos, L.key) | version) + 4 * seq
    length += 4 * np.where(version == 1, read(st.buf, pos, L.ack), 0)
    protocol = read(st.buf, pos, L.protocol)
    erspan = np.isin(protocol, _ERSPAN_TYPES)
    enter_tunnel(st, idx, np.where(erspan, TunnelType.ERSPAN, TunnelType.GRE))
    st.arg[idx] = seq  # ERSPAN type I has no sequence number and no ERSPAN header
    goto_ethertype(st, idx, protocol, pos + length)


def erspan2(st: DecodeState, idx: np.ndarray) -> None:
    has_header = st.arg[idx] == 1
    st.goto(idx[~has_header], Layer.ETHER, st.pos[idx[~has_header]])
    idx, pos = st.need(idx[has_header], H.ERSPAN2.min_len)
    st.goto(idx, Layer.ETHER, pos + H.ERSPAN2.min_len)


def erspan3(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.ERSPAN3.min_len)
    optional = read(st.buf, pos, H.ERSPAN3.optional) * H.ERSPAN3_PLATFORM_LEN
    st.goto(idx, Layer.ETHER, pos + H.ERSPAN3.min_len + optional)


def vxlan(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.VXLAN.min_len, short=None)
    ok = _plain_udp(st, idx, (read(st.buf, pos, H.VXLAN.flags) & 0x08) != 0)
    enter_tunnel(st, idx[ok], TunnelType.VXLAN)
    st.goto(idx[ok], Layer.ETHER, pos[ok] + H.VXLAN.min_len)


def vxlan_gpe(st: DecodeState, idx: np.ndarray) -> None:
    L = H.VXLAN_GPE
    idx, pos = st.need(idx, L.min_len, short=None)
    flags, proto = read(st.buf, pos, L.flags), read(st.buf, pos, L.next_protocol)
    proto = np.where((flags & 0x04) != 0, proto, 3)  # no P bit: Ethernet, as in VXLAN
    layer = np.select(
        [proto == 1, proto == 2, proto == 3, proto == 4],
        [Layer.IPV4, Layer.IPV6, Layer.ETHER, Layer.NSH],
        Layer.DONE,
    )
    ok = _plain_udp(st, idx, ((flags & 0x08) != 0) & (layer != Layer.DONE))
    enter_tunnel(st, idx[ok], TunnelType.VXLAN)
    st.goto(idx[ok], layer[ok], pos[ok] + L.min_len)


def nsh(st: DecodeState, idx: np.ndarray) -> None:
    idx, pos = st.need(idx, H.NSH.min_len)
    length = read(st.buf, pos, H.NSH.length) * 4
    proto = read(st.buf, pos, H.NSH.next_protocol)
    layer = np.select(
        [proto == 1, proto == 2, proto == 3], [Layer.IPV4, Layer.IPV6, Layer.ETHER], NOT_IP
    )
    idx, pos, length, layer = st.malformed(idx, length < H.NSH.min_len, pos, length, layer)
    st.goto(idx, layer, pos + length)


def geneve(st: DecodeState, idx: np.ndarray) -> None:
    L = H.GENEVE
    idx, pos = st.need(idx, L.min_len, short=None)
    ok = _plain_udp(st, idx, read(st.buf, pos, L.version) == 0)
    idx, pos = idx[ok], pos[ok]
    enter_tunnel(st, idx, TunnelType.GENEVE)
    length = L.min_len + 4 * read(st.buf, pos, L.opt_len)
    goto_ethertype(st, idx, read(st.buf, pos, L.protocol), pos + length)


def gtpu(st: DecodeState, idx: np.ndarray) -> None:
    """GTP-U G-PDUs (version 1, PT 1, type 255) carrying IP, with extension headers. Found
    by content off port 2152 (``st.arg`` is ``BY_CONTENT``, as Zeek's dpd signature finds
    them), the GTP length must also fill the UDP payload exactly."""
    L = H.GTPU
    strict = st.arg[idx] == BY_CONTENT
    idx, pos, strict = st.need(idx, L.min_len, st.pos[idx], strict, short=None)
    looks = (read(st.buf, pos, L.version) == 1) & (read(st.buf, pos, L.pt) == 1)
    if strict.any():
        fills = read(st.buf, pos, H.Field(2, 2)) + L.min_len == st.ip_rest[idx] - H.UDP.min_len
        looks &= ~strict | fills
    ok = _plain_udp(st, idx, looks & (read(st.buf, pos, L.msg_type) == H.GTPU_GPDU))
    idx, pos = idx[ok], pos[ok]
    optional = read(st.buf, pos, L.optional) != 0
    idx, pos, optional = st.need(idx, np.where(optional, 12, 8), pos, optional)
    ext = np.zeros(len(idx), dtype=np.int64)
    has_ext = read(st.buf, pos, L.extension) == 1
    ext[has_ext] = read(st.buf, pos[has_ext], L.next_ext)
    inner = pos + np.where(optional, 12, 8)
    for _ in range(_MAX_GTP_EXTENSIONS):
        walking = ext != 0
        if not walking.any():
            break
        rest = ~walking
        done_idx, done_inner = idx[rest], inner[rest]
        w_idx, w_inner = st.need(idx[walking], 1, inner[walking])
        length = read(st.buf, w_inner, H.GTPU_EXT.length) * 4
        w_idx, w_inner, length = st.malformed(w_idx, length == 0, w_inner, length)
        w_idx, w_inner, length = st.need(w_idx, length, w_inner, length)
        w_ext = st.buf[w_inner + length - 1].astype(np.int64)
        idx = np.concatenate([done_idx, w_idx])
        inner = np.concatenate([done_inner, w_inner + length])
        ext = np.concatenate([np.zeros(len(done_idx), dtype=np.int64), w_ext])
    else:
        st.finish(idx[ext != 0], DecodeStatus.MALFORMED)
        idx, inner = idx[ext == 0], inner[ext == 0]
    enter_tunnel(st, idx, TunnelType.GTP_U)
    goto_ip_version(st, idx, inner)


def teredo_candidates(st: DecodeState, idx: np.ndarray, payload: np.ndarray) -> np.ndarray:
    """Mask of the UDP datagrams ``idx`` (payload at ``payload``) worth a Teredo check.

    Teredo runs on any port pair once a client has its mapping, so UDP off the tunnel
    ports is tried by content: an IPv4 datagram whose payload may hold an IPv6 packet
    (``teredo_may_be``). This is only the cheap first look; ``teredo`` does the checks.
    """
    size = st.ip_rest[idx] - H.UDP.min_len
    # The full check needs a whole IPv6 header captured, so rows without one are not tried.
    ok = (size >= H.IPV6.min_len) & (payload + H.IPV6.min_len <= st.end[idx])
    ok &= st.out.ip_version[idx] == 4
    rows = np.flatnonzero(ok)
    rows = rows[TEREDO_FIRST_BYTE[st.buf[payload[rows]]]]
    ok[:] = False
    if len(rows):
        head = gather(st.buf, payload[rows], TEREDO_PEEK)
        ok[rows] = teredo_may_be(head, size[rows])
    return ok


def teredo_may_be(head: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Necessary conditions for Teredo, from a UDP payload's first ``TEREDO_PEEK`` bytes.

    ``head`` is an (n, TEREDO_PEEK) matrix and ``size`` the payload lengths. An IPv6
    header right at the start or after an origin indicator must fill the payload exactly,
    as ``teredo`` requires off port 3544; an authentication indicator always passes.
    """
    L, origin_len = H.IPV6, H.TEREDO_ORIGIN_LEN
    first, second = head[:, 0], head[:, 1]
    direct = ((first >> 4) == 6) & (field(head, L.payload_len) + L.min_len == size)
    origin = (first == 0) & (second == 0) & ((head[:, origin_len] >> 4) == 6)
    origin_plen = field(head, L.payload_len.after(origin_len))
    origin &= origin_plen + origin_len + L.min_len == size
    auth = (first == 0) & (second == 1)
    return (size >= L.min_len) & (direct | origin | auth)


def teredo(st: DecodeState, idx: np.ndarray) -> None:
    """Teredo (RFC 4380): optional authentication and origin indicators, then IPv6.

    On port 3544 the IPv6 header only has to fit in the UDP payload. Found by content
    elsewhere (``st.arg`` is ``TEREDO_BY_CONTENT``), it must fill the payload exactly,
    carry a plausible next header and have a Teredo (2001::/32) source or destination.
    """
    L = H.IPV6
    pos, strict = st.pos[idx], st.arg[idx] == TEREDO_BY_CONTENT
    for indicator in (_TEREDO_AUTH, _TEREDO_ORIGIN):
        idx, pos, strict = st.need(idx, 2, pos, strict, short=None)
        mark = read(st.buf, pos, H.Field(0, 2))
        if indicator == _TEREDO_AUTH:
            auth = mark == _TEREDO_AUTH
            minimum = np.where(auth, H.TEREDO_AUTH.min_len, 0)
            idx, pos, auth, strict = st.need(idx, minimum, pos, auth, strict, short=None)
            extra = read(st.buf, pos[auth], H.TEREDO_AUTH.id_len)
            extra += read(st.buf, pos[auth], H.TEREDO_AUTH.auth_len)
            pos[auth] += H.TEREDO_AUTH.min_len + extra
        else:
            pos = pos + np.where(mark == _TEREDO_ORIGIN, H.TEREDO_ORIGIN_LEN, 0)
    idx, pos, strict = st.need(idx, L.min_len, pos, strict, short=None)
    udp_end = st.pos[idx] + st.ip_rest[idx] - H.UDP.min_len  # payload end, by IP lengths
    hdr = gather(st.buf, pos, L.min_len)
    ipv6_end = pos + L.min_len + field(hdr, L.payload_len)
    looks = (field(hdr, L.version) == 6) & (ipv6_end <= udp_end)
    if strict.any():
        teredo_address = (field(hdr, L.src_prefix32) == H.TEREDO_PREFIX32) | (
            field(hdr, L.dst_prefix32) == H.TEREDO_PREFIX32
        )
        plausible = _TEREDO_NEXT_HEADERS[field(hdr, L.next_header)]
        looks &= ~strict | ((ipv6_end == udp_end) & plausible & teredo_address)
    ok = _plain_udp(st, idx, looks)
    enter_tunnel(st, idx[ok], TunnelType.TEREDO)
    st.goto(idx[ok], Layer.IPV6, pos[ok])


def _fills_payload(st: DecodeState, idx: np.ndarray, inner: np.ndarray, v4: np.ndarray):
    """Whether an IPv4 (``v4``) or IPv6 header at ``inner``, captured, has the version it
    should and a length that ends exactly where the UDP payload ends."""
    udp_end = st.pos[idx] + st.ip_rest[idx] - H.UDP.min_len
    ok = inner + H.IPV6.min_len <= np.minimum(st.end[idx], udp_end)
    ok |= v4 & (inner + H.IPV4.min_len <= np.minimum(st.end[idx], udp_end))
    at = np.where(ok, inner, st.pos[idx])
    version = st.buf[at] >> 4
    total = np.where(v4, read(st.buf, at, H.IPV4.total_len),
                     read(st.buf, at, H.IPV6.payload_len) + H.IPV6.min_len)  # fmt: skip
    return ok & (version == np.where(v4, 4, 6)) & (inner + total == udp_end)


def capwap(st: DecodeState, idx: np.ndarray) -> None:
    """CAPWAP data (RFC 5415): the header, then the frame it carries: 802.11 when the
    T bit says native and the binding is IEEE 802.11, else 802.3. DTLS-protected data
    (another preamble type) stays a UDP datagram."""
    L = H.CAPWAP
    idx, pos = st.need(idx, L.min_len, short=None)
    ok = _plain_udp(st, idx, read(st.buf, pos, L.preamble) == 0)
    idx, pos = idx[ok], pos[ok]
    length = read(st.buf, pos, L.hlen) * 4
    wlan = (read(st.buf, pos, L.native) == 1) & (read(st.buf, pos, L.wbid) == 1)
    # a header shorter than CAPWAP's own is not CAPWAP: the datagram stays plain UDP
    ok = _plain_udp(st, idx, length >= L.min_len)
    idx, pos, length, wlan = idx[ok], pos[ok], length[ok], wlan[ok]
    enter_tunnel(st, idx, TunnelType.CAPWAP)
    st.goto(idx, np.where(wlan, Layer.IEEE80211, Layer.ETHER), pos + length)


def ayiya(st: DecodeState, idx: np.ndarray) -> None:
    """AYIYA (RFC draft, SixXS): forwarded IPv4 or IPv6. Found by content off port 5072,
    the inner IP header must also fill the UDP payload exactly."""
    L = H.AYIYA
    strict = st.arg[idx] == BY_CONTENT
    idx, pos, strict = st.need(idx, L.min_len, st.pos[idx], strict, short=None)
    length = L.min_len + (1 << read(st.buf, pos, L.id_len)) + 4 * read(st.buf, pos, L.sig_len)
    nh = read(st.buf, pos, L.next_header)
    forward = read(st.buf, pos, L.opcode) == 1
    looks = forward & ((nh == IPPROTO_IPIP) | (nh == IPPROTO_IPV6))
    if strict.any():
        looks &= ~strict | _fills_payload(st, idx, pos + length, nh == IPPROTO_IPIP)
    ok = _plain_udp(st, idx, looks)
    idx, pos, length, nh = idx[ok], pos[ok], length[ok], nh[ok]
    enter_tunnel(st, idx, TunnelType.AYIYA)
    st.goto(idx, np.where(nh == IPPROTO_IPIP, Layer.IPV4, Layer.IPV6), pos + length)
