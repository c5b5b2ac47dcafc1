"""Network-layer handlers: IPv4 (with options), IPv6 and its extension-header chain.

Every IP header overwrites the row's IP columns, so after a tunnel the row holds the
innermost datagram (the tunnel handlers save the outer one first). IPv4 addresses are
stored in their IPv4-mapped IPv6 form ``::ffff:a.b.c.d``. ``DecodeState.ip_rest`` carries
the datagram's payload length (from the IP header, not the capture) down to the transport
handler, which subtracts its own header to get ``payload_len``.

A non-first fragment (offset > 0) ends with status FRAGMENT: addresses, ``ip_id``,
``frag_offset`` and ``more_frags`` are filled so the flow layer can attach it to the flow
its first fragment opened.
"""

from __future__ import annotations

import numpy as np

from portlabel.capture import headers as H
from portlabel.capture.batch import DecodeStatus
from portlabel.capture.cursor import DecodeState, field, gather, read, words
from portlabel.capture.nextlayer import (
    IP6PROTO_TO_LAYER,
    IPPROTO_AH,
    IPPROTO_TO_LAYER,
    IPV6_FRAGMENT,
    Layer,
)

_MAX_EXTENSIONS = 16
TRUNCATED = DecodeStatus.TRUNCATED


def _rows16(column: np.ndarray) -> np.ndarray:
    """A (n, 16) uint8 address column seen as n 16-byte items, for fast row writes."""
    return column.view(np.dtype("V16")).reshape(column.shape[0])


def _store_v4_address(column: np.ndarray, rows: np.ndarray, word: np.ndarray) -> None:
    """Write IPv4 addresses as ::ffff:a.b.c.d, whole 16-byte rows at a time."""
    mapped = np.zeros((len(rows), 4), dtype=np.uint32)
    mapped[:, 2] = _V4_MAPPED_WORD
    mapped[:, 3] = word
    _rows16(column)[rows] = _rows16(mapped)


# ::ffff:0:0/96 as the third 4-byte word of an address, in memory order.
_V4_MAPPED_WORD = np.frombuffer(b"\x00\x00\xff\xff", dtype=np.uint32)[0]


def ipv4(st: DecodeState, idx: np.ndarray) -> None:
    L, out = H.IPV4, st.out
    pos, end = st.pos[idx], st.end[idx]
    idx, pos, end = st.keep(idx, pos + L.min_len <= end, pos, end, status=TRUNCATED)
    hdr = gather(st.buf, pos, L.min_len)
    ihl = field(hdr, L.ihl) * 4
    header_total = field(hdr, L.total_len)
    # A zero total length is what TSO/LRO captures carry: decode the captured bytes, but
    # count the IP bytes the header says (0), as Zeek does.
    total = header_total
    if not total.all():
        total = np.where(total == 0, end - pos, total)
    bad = (field(hdr, L.version) != 4) | (ihl < L.min_len) | (total < ihl)
    idx, pos, end, ihl, total, hdr, header_total = st.malformed(
        idx, bad, pos, end, ihl, total, hdr, header_total
    )
    ok = pos + ihl <= end
    idx, pos, ihl, total, hdr, header_total = st.keep(
        idx, ok, pos, ihl, total, hdr, header_total, status=TRUNCATED
    )
    if len(idx) == 0:
        return
    proto = field(hdr, L.proto)
    frag_offset = field(hdr, L.frag_offset)
    out.ip_version[idx] = 4
    out.l3_offset[idx] = pos - st.start[idx]
    _store_v4_address(out.src_ip, idx, words(hdr, L.src.offset, 1)[:, 0])
    _store_v4_address(out.dst_ip, idx, words(hdr, L.dst.offset, 1)[:, 0])
    out.ip_proto[idx] = proto
    out.ip_len[idx] = header_total
    out.ip_id[idx] = field(hdr, L.ident)
    out.frag_offset[idx] = frag_offset
    out.more_frags[idx] = field(hdr, L.more_frags) == 1
    st.ip_rest[idx] = total - ihl
    st.arg[idx] = proto
    fragment = (frag_offset > 0) | (field(hdr, L.more_frags) == 1)
    if fragment.any():
        _record_fragment(st, idx[fragment], pos[fragment], field(hdr, L.ident)[fragment],
                         frag_offset[fragment] * 8, field(hdr, L.more_frags)[fragment] == 1,
                         pos[fragment] + ihl[fragment], total[fragment] - ihl[fragment],
                         proto[fragment], None)  # fmt: skip
    later = frag_offset > 0
    if later.any():
        st.finish(idx[later], DecodeStatus.FRAGMENT)
        first = ~later
        idx, pos, ihl, proto = idx[first], pos[first], ihl[first], proto[first]
    st.goto(idx, IPPROTO_TO_LAYER[proto], pos + ihl)


def _record_fragment(st, idx, ip_at, ident, data_pos, more, data_at, data_len, nh, nh_at):
    """Note the fragments of a frame's first IP datagram for ``reassembly`` (a fragment
    inside a tunnel is joined to its flow by ``flows.packets.FragmentPorts`` instead)."""
    own = st.on_own_link(idx)
    if not own.all():
        idx, ip_at, ident, data_pos, more, data_at, data_len, nh = (
            a[own] for a in (idx, ip_at, ident, data_pos, more, data_at, data_len, nh)
        )
        nh_at = None if nh_at is None else nh_at[own]
    start = st.start[idx]
    out = st.out
    out.frag_at[idx] = ip_at - start + 1
    out.frag_id[idx] = ident
    out.frag_pos[idx] = data_pos
    out.frag_more[idx] = more
    out.frag_data[idx] = data_at - start
    out.frag_len[idx] = np.maximum(data_len, 0)
    out.frag_nh[idx] = nh
    out.frag_nh_at[idx] = 0 if nh_at is None else nh_at - start


def ipv6(st: DecodeState, idx: np.ndarray) -> None:
    L, out = H.IPV6, st.out
    idx, pos = st.need(idx, L.min_len)
    hdr = gather(st.buf, pos, L.min_len)
    idx, pos, hdr = st.malformed(idx, field(hdr, L.version) != 6, pos, hdr)
    if len(idx) == 0:
        return
    header_payload = field(hdr, L.payload_len)
    # Zero is a jumbogram or a TSO capture: decode the captured bytes, count the header's.
    payload = np.where(header_payload == 0, st.end[idx] - pos - L.min_len, header_payload)
    next_header = field(hdr, L.next_header)
    out.ip_version[idx] = 6
    out.l3_offset[idx] = pos - st.start[idx]
    out.src_ip.view(np.uint32)[idx] = words(hdr, L.src.offset, 4)
    out.dst_ip.view(np.uint32)[idx] = words(hdr, L.dst.offset, 4)
    out.ip_proto[idx] = next_header
    out.ip_len[idx] = header_payload + L.min_len
    out.ip_id[idx] = 0
    out.frag_offset[idx] = 0
    out.more_frags[idx] = False
    st.ip_rest[idx] = payload
    st.arg[idx] = next_header
    st.goto(idx, IP6PROTO_TO_LAYER[next_header], pos + L.min_len)


def _ext_length(st: DecodeState, kind: np.ndarray, pos: np.ndarray) -> np.ndarray:
    units = read(st.buf, pos, H.IPV6_EXT.length)
    length = (units + 1) * 8
    length = np.where(kind == IPPROTO_AH, (units + 2) * 4, length)
    return np.where(kind == IPV6_FRAGMENT, H.IPV6_FRAG.min_len, length)


def ip_extensions(st: DecodeState, idx: np.ndarray) -> None:
    """Walk IPv6 extension headers (and AH, in either IP version) to the upper layer."""
    out = st.out
    pos, kind = st.pos[idx], st.arg[idx]
    # the byte that names the header at ``pos``: the IPv6 header's next-header field first
    naming = st.start[idx] + out.l3_offset[idx] + H.IPV6.next_header.offset
    for _ in range(_MAX_EXTENSIONS):
        idx, pos, kind, naming = st.need(idx, H.IPV6_EXT.min_len, pos, kind, naming)
        if len(idx) == 0:
            return
        length = _ext_length(st, kind, pos)
        idx, pos, kind, length, naming = st.need(idx, length, pos, kind, length, naming)
        next_header = read(st.buf, pos, H.IPV6_EXT.next_header)
        frag = kind == IPV6_FRAGMENT
        if frag.any():
            rows, p = idx[frag], pos[frag]
            offset = read(st.buf, p, H.IPV6_FRAG.frag_offset)
            out.ip_id[rows] = read(st.buf, p, H.IPV6_FRAG.ident)
            out.frag_offset[rows] = offset
            out.more_frags[rows] = read(st.buf, p, H.IPV6_FRAG.more_frags) == 1
            v6 = out.ip_version[rows] == 6
            ip_at = st.start[rows] + out.l3_offset[rows]
            _record_fragment(st, rows[v6], ip_at[v6], out.ip_id[rows][v6],
                             offset[v6] * 8, out.more_frags[rows][v6], p[v6] + H.IPV6_FRAG.min_len,
                             st.ip_rest[rows][v6] - H.IPV6_FRAG.min_len, next_header[frag][v6],
                             naming[frag][v6])  # fmt: skip
            later = offset > 0
            out.ip_proto[rows[later]] = next_header[frag][later]
            st.finish(rows[later], DecodeStatus.FRAGMENT)
        st.ip_rest[idx] -= length
        out.ip_proto[idx] = next_header
        pos, layer = pos + length, IP6PROTO_TO_LAYER[next_header]
        go_on = (layer == Layer.IP_EXT) & (st.layer[idx] == Layer.IP_EXT)
        leave = ~go_on & (st.layer[idx] == Layer.IP_EXT)
        st.arg[idx[leave]] = next_header[leave]
        st.goto(idx[leave], layer[leave], pos[leave])
        naming = pos - length  # the header just read names the next one
        idx, pos, kind, naming = idx[go_on], pos[go_on], next_header[go_on], naming[go_on]
        if len(idx) == 0:
            return
    st.finish(idx, DecodeStatus.MALFORMED)
