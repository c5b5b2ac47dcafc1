"""The packet decoder's entry point: ``decode(raw: RawBatch) -> PacketBatch``.

Theory of operation: every packet starts on the layer its link type names. A *pass* visits
the layers in ``PASS_ORDER`` (link, EtherType payloads, IP, transport, tunnels); each visited
handler decodes all the packets sitting on its layer at once and moves them to their next
layer. Layers only ever lead to higher numbers, except tunnels which lead back to Ethernet
or IP, so plain traffic finishes in one pass and each level of tunnelling costs one more.
Packets are retired with a ``DecodeStatus`` (OK, TRUNCATED, MALFORMED, NOT_IP,
UNSUPPORTED_LINK, FRAGMENT); nothing in here raises on packet contents.

Plain frames (Ethernet or raw IP, TCP/UDP/ICMP, nothing unusual) are first decoded by the
compiled fast path (``plaindecode``) when it is built; the passes then run only on the rows
it left, which come out the same either way.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from portlabel.capture import linklayer, network, plaindecode, transport, tunnels
from portlabel.capture.batch import DecodeStatus, PacketBatch, RawBatch
from portlabel.capture.cursor import DecodeState
from portlabel.capture.nextlayer import DLT_TO_LAYER, PASS_ORDER, Layer

Handler = Callable[[DecodeState, np.ndarray], None]

HANDLERS: dict[Layer, Handler] = {
    Layer.PKTAP: linklayer.pktap,
    Layer.PPI: linklayer.ppi,
    Layer.RADIOTAP: linklayer.radiotap,
    Layer.NFLOG: linklayer.nflog,
    Layer.IPNET: linklayer.ipnet,
    Layer.IPOIB: linklayer.ipoib,
    Layer.NULL: linklayer.null,
    Layer.LOOP: linklayer.loop,
    Layer.PPP_DIR: linklayer.ppp_dir,
    Layer.MPACKET: linklayer.mpacket,
    Layer.FDDI: linklayer.fddi,
    Layer.IEEE80211: linklayer.ieee80211,
    Layer.SLL: linklayer.sll,
    Layer.SLL2: linklayer.sll2,
    Layer.RAW: linklayer.raw,
    Layer.BRCM: linklayer.brcm,
    Layer.ETHER: linklayer.ether,
    Layer.FABRICPATH: linklayer.fabricpath,
    Layer.VNTAG: linklayer.vntag,
    Layer.VLAN: linklayer.vlan,
    Layer.LLC: linklayer.llc,
    Layer.PPPOE: linklayer.pppoe,
    Layer.CHDLC: linklayer.chdlc,
    Layer.PPP: linklayer.ppp,
    Layer.MPLS: linklayer.mpls,
    Layer.PBB: linklayer.pbb,
    Layer.FRAME_RELAY: linklayer.frame_relay,
    Layer.DSA: linklayer.dsa,
    Layer.IPV4: network.ipv4,
    Layer.IPV6: network.ipv6,
    Layer.IP_EXT: network.ip_extensions,
    Layer.TCP: transport.tcp,
    Layer.UDP: transport.udp,
    Layer.SCTP: transport.sctp,
    Layer.DCCP: transport.dccp,
    Layer.ICMP: transport.icmp,
    Layer.ICMPV6: transport.icmpv6,
    Layer.IP_OTHER: transport.ip_other,
    Layer.NO_NEXT: transport.no_next_header,
    Layer.GRE: tunnels.gre,
    Layer.ERSPAN2: tunnels.erspan2,
    Layer.ERSPAN3: tunnels.erspan3,
    Layer.VXLAN: tunnels.vxlan,
    Layer.VXLAN_GPE: tunnels.vxlan_gpe,
    Layer.NSH: tunnels.nsh,
    Layer.GENEVE: tunnels.geneve,
    Layer.GTPU: tunnels.gtpu,
    Layer.TEREDO: tunnels.teredo,
    Layer.AYIYA: tunnels.ayiya,
    Layer.IP_IN_IP: tunnels.ip_in_ip,
    Layer.CAPWAP: tunnels.capwap,
}
_ORDERED = [(code, HANDLERS[Layer(code)]) for code in PASS_ORDER]
MAX_PASSES = 12  # tunnel nesting deeper than this is called malformed
# Rows decoded together: small enough for the per-row work arrays to stay in the CPU cache.
CHUNK = 16384


def decode(raw: RawBatch, chunk: int = CHUNK, compiled: bool = True) -> PacketBatch:
    """Decode every frame of ``raw`` down to its innermost transport header.

    ``compiled=False`` decodes every row with the vectorised passes, even when the
    compiled fast path is there (to compare the two).
    """
    out = _with_metadata(raw)
    if not (compiled and plaindecode.available()):
        _decode_passes(raw, out, chunk)
        return out
    rest = plaindecode.decode_plain(raw, out)
    if len(rest):
        sub = RawBatch(
            raw.buf, raw.offset[rest], raw.caplen[rest], raw.wirelen[rest], raw.ts_ns[rest],
            raw.linktype[rest], raw.iface[rest], raw.frame[rest],
        )  # fmt: skip
        done = _with_metadata(sub)
        _decode_passes(sub, done, chunk)
        for name, column in done.columns().items():
            getattr(out, name)[rest] = column
    return out


def _with_metadata(raw: RawBatch) -> PacketBatch:
    """An empty PacketBatch for ``raw`` with the reader's per-frame columns copied in."""
    out = PacketBatch.empty(len(raw))
    out.frame[:] = raw.frame
    out.ts_ns[:] = raw.ts_ns
    out.caplen[:] = raw.caplen
    out.wirelen[:] = raw.wirelen
    out.linktype[:] = raw.linktype
    out.iface[:] = raw.iface
    return out


def _decode_passes(raw: RawBatch, out: PacketBatch, chunk: int) -> None:
    n = len(raw)
    for lo in range(0, n, chunk):
        _decode_rows(DecodeState(raw, out, lo, min(n, lo + chunk)))


def _decode_rows(st: DecodeState) -> None:
    everyone = np.arange(len(st.pos), dtype=np.int64)
    st.goto(everyone, DLT_TO_LAYER[st.out.linktype.astype(np.int64)], st.pos)
    for _ in range(MAX_PASSES):
        if not st.pending[1:].any():
            break
        for code, handler in _ORDERED:
            if not st.pending[code]:
                continue
            st.pending[code] = False
            idx = np.flatnonzero(st.layer == code)
            if len(idx):
                handler(st, idx)
    stuck = np.flatnonzero(st.layer != Layer.DONE)
    st.finish(stuck, DecodeStatus.MALFORMED)
