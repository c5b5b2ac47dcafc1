"""TCP endpoint states, history letters and conn_state, as tables with Zeek's meaning.

Theory of operation. Each TCP endpoint is in one of Zeek's seven states; a flow's joint
state is ``orig * 7 + resp`` (49 values). A packet is reduced to an *event*: who sent it
and its SYN/ACK/FIN/RST bits and whether it carries payload (64 values). ``TRANSITIONS``
is the ``(49, 64)`` table ``joint state x event -> joint state``; it is compiled once from
``RULES``, the transition rules written as data, in the spirit of h11's state tables.
The engine only ever indexes the table, vectorised across flows.

Most packets cannot change the state (plain ACKs and data once an endpoint has left
INACTIVE), so the engine feeds the table only the packets that may: any SYN/FIN/RST and
the first plain packet per direction after each of them.

History letters (``HISTORY_KINDS``) follow Zeek: one letter per packet -- Q for a
multi-flag packet (I for FIN+RST), else S/H for SYN without/with ACK, F, R, else D for
payload or A for a pure ACK -- recorded the first time it occurs per direction,
upper case for the originator. UDP packets give D/d.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Endpoint(IntEnum):
    """Zeek's TCP endpoint states (same numbering as Zeek's script-level constants)."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


N_STATES = len(Endpoint)
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# event bits
EV_LEN, EV_RST, EV_FIN, EV_ACK, EV_SYN, EV_RESP = 1, 2, 4, 8, 16, 32

E = Endpoint
_ANY = None  # wildcard in RULES

# (sender state(s), peer state(s), flags that must be set, flags that must be clear,
#  new sender state, new peer state); the first matching rule per *phase* applies.
# Phases run in order for each packet: "syn", "fin", "rst", "plain" (Zeek's order).
RULES: dict[str, list[tuple]] = {
    "syn": [
        # an originator's first SYN (with ACK: a SYN-ACK sent by the originator)
        ((E.INACTIVE,), _ANY, "orig", SYN, ACK, E.SYN_SENT, None),
        ((E.INACTIVE,), _ANY, "orig", SYN | ACK, 0, E.SYN_ACK_SENT, None),
        # the responder answers a SYN: both sides are established
        ((E.INACTIVE,), (E.SYN_SENT, E.SYN_ACK_SENT), "resp", SYN, 0, E.ESTABLISHED,
         E.ESTABLISHED),
        ((E.INACTIVE,), _ANY, "resp", SYN, 0, E.ESTABLISHED, None),
        # a new SYN from a half-seen partial endpoint restarts the handshake
        ((E.PARTIAL,), (E.INACTIVE,), _ANY, SYN, ACK, E.SYN_SENT, None),
    ],
    "fin": [
        ((E.INACTIVE, E.SYN_SENT, E.SYN_ACK_SENT), _ANY, _ANY, FIN, 0, E.CLOSED, None),
        ((E.PARTIAL, E.ESTABLISHED), _ANY, _ANY, FIN, RST, E.CLOSED, None),
    ],
    "rst": [
        ((E.INACTIVE, E.SYN_SENT, E.SYN_ACK_SENT, E.PARTIAL, E.ESTABLISHED), _ANY, _ANY,
         RST, 0, E.RESET, None),
    ],
    "plain": [
        # a responder's bare ACK of a pending SYN does not make it partial
        ((E.INACTIVE,), (E.SYN_SENT,), "resp", 0, SYN | FIN | RST, E.INACTIVE, None,
         "no-len"),
        ((E.INACTIVE,), _ANY, _ANY, 0, SYN | FIN | RST, E.PARTIAL, None),
    ],
}  # fmt: skip


def _matches(rule: tuple, me: int, peer: int, is_resp: bool, flags: int, has_len: bool):
    mine, peers, who, need, forbid = rule[:5]
    if me not in mine or (peers is not None and peer not in peers):
        return False
    if who is not None and (who == "resp") != is_resp:
        return False
    if flags & need != need or flags & forbid:
        return False
    return not (len(rule) > 7 and rule[7] == "no-len" and has_len)


def _step(orig: int, resp: int, event: int) -> tuple[int, int]:
    is_resp = bool(event & EV_RESP)
    flags = (
        (SYN if event & EV_SYN else 0)
        | (ACK if event & EV_ACK else 0)
        | (FIN if event & EV_FIN else 0)
        | (RST if event & EV_RST else 0)
    )
    has_len = bool(event & EV_LEN)
    me, peer = (resp, orig) if is_resp else (orig, resp)
    for phase in ("syn", "fin", "rst", "plain"):
        for rule in RULES[phase]:
            if _matches(rule, me, peer, is_resp, flags, has_len):
                me = int(rule[5])
                if rule[6] is not None:
                    peer = int(rule[6])
                break
    return (peer, me) if is_resp else (me, peer)


def _compile_by_steps() -> np.ndarray:
    """The table, one ``_step`` per (joint state, event): the reference for ``_compile``."""
    table = np.zeros((N_STATES * N_STATES, 64), dtype=np.uint8)
    for o in range(N_STATES):
        for r in range(N_STATES):
            for ev in range(64):
                no, nr = _step(o, r, ev)
                table[o * N_STATES + r, ev] = no * N_STATES + nr
    return table


def _compile() -> np.ndarray:
    """The table, with every (joint state, event) pair run through the rules at once.

    Same rules, same first-match-per-phase order as ``_step``, but vectorised over the
    3,136 pairs: import time stays in the microseconds, not tens of milliseconds.
    """
    joint, event = np.divmod(np.arange(N_STATES * N_STATES * 64), 64)
    orig, resp = np.divmod(joint, N_STATES)
    is_resp = (event & EV_RESP) != 0
    flags = np.zeros_like(event)
    for bit, flag in ((EV_SYN, SYN), (EV_ACK, ACK), (EV_FIN, FIN), (EV_RST, RST)):
        flags |= np.where(event & bit, flag, 0)
    has_len = (event & EV_LEN) != 0
    me, peer = np.where(is_resp, resp, orig), np.where(is_resp, orig, resp)
    for phase in ("syn", "fin", "rst", "plain"):
        open_ = np.ones(len(event), dtype=bool)  # no rule of this phase matched yet
        new_me, new_peer = me.copy(), peer.copy()
        for rule in RULES[phase]:
            mine, peers, who, need, forbid, to_me, to_peer = rule[:7]
            hit = open_ & np.isin(me, [int(x) for x in mine])
            if peers is not None:
                hit &= np.isin(peer, [int(x) for x in peers])
            if who is not None:
                hit &= is_resp == (who == "resp")
            hit &= ((flags & need) == need) & ((flags & forbid) == 0)
            if len(rule) > 7 and rule[7] == "no-len":
                hit &= ~has_len
            new_me[hit] = int(to_me)
            if to_peer is not None:
                new_peer[hit] = int(to_peer)
            open_ &= ~hit
        me, peer = new_me, new_peer
    new_orig, new_resp = np.where(is_resp, peer, me), np.where(is_resp, me, peer)
    return (new_orig * N_STATES + new_resp).astype(np.uint8).reshape(N_STATES * N_STATES, 64)


TRANSITIONS: np.ndarray = _compile()


def _events_of(tcp_flags: np.ndarray, payload_len: np.ndarray, from_resp: np.ndarray):
    """Event code of each packet for ``TRANSITIONS``, from its flags."""
    f = tcp_flags.astype(np.uint8)
    ev = (payload_len > 0).astype(np.uint8)
    ev |= np.where(f & RST, EV_RST, 0).astype(np.uint8)
    ev |= np.where(f & FIN, EV_FIN, 0).astype(np.uint8)
    ev |= np.where(f & ACK, EV_ACK, 0).astype(np.uint8)
    ev |= np.where(f & SYN, EV_SYN, 0).astype(np.uint8)
    ev |= np.where(from_resp, EV_RESP, 0).astype(np.uint8)
    return ev


# (RST/FIN/ACK/SYN bits, payload > 0, from the responder) -> event: one gather per packet
EVENT_TABLE = _events_of(
    np.repeat(np.arange(32), 4), np.tile([0, 0, 1, 1], 32), np.tile([False, True], 64)
)


def packet_events(tcp_flags: np.ndarray, payload_len: np.ndarray, from_resp: np.ndarray):
    """Event code of each packet for ``TRANSITIONS``."""
    index = (tcp_flags & (FIN | SYN | RST | ACK)).astype(np.intp) * 4
    index += (payload_len > 0) * 2
    index += from_resp
    return EVENT_TABLE[index]


def finished(joint: np.ndarray, partial: np.ndarray | bool = False) -> np.ndarray:
    """Connections Zeek removes once quiet for the close delay: either side reset, both
    sides closed, or -- for a connection joined mid-stream (``partial``) -- one side closed.
    """
    o, r = joint // N_STATES, joint % N_STATES
    reset = (o == E.RESET) | (r == E.RESET)
    return (
        reset
        | ((o == E.CLOSED) & (r == E.CLOSED))
        | (partial & ((o == E.CLOSED) | (r == E.CLOSED)))
    )


# ---- history letters -------------------------------------------------------------------

HISTORY_KINDS = "SHADFRQI"  # index = kind code; upper case = originator
K_S, K_H, K_A, K_D, K_F, K_R, K_Q, K_I = range(len(HISTORY_KINDS))


def _history_kind_of(tcp_flags: np.ndarray, payload_len: np.ndarray) -> np.ndarray:
    """Zeek's history letter kind of each TCP packet (-1: none), from its flags."""
    f = tcp_flags.astype(np.int64)
    syn, fin, rst, ack = (f & SYN) != 0, (f & FIN) != 0, (f & RST) != 0, (f & ACK) != 0
    bits = syn.astype(np.int8) + fin + rst
    kind = np.full(len(f), -1, dtype=np.int8)
    kind[(bits == 0) & ack] = K_A
    kind[(bits == 0) & (payload_len > 0)] = K_D
    kind[(bits == 1) & rst] = K_R
    kind[(bits == 1) & fin] = K_F
    kind[(bits == 1) & syn] = np.where(ack[(bits == 1) & syn], K_H, K_S)
    kind[bits > 1] = np.where(fin[bits > 1] & rst[bits > 1], K_I, K_Q)
    return kind


_KIND_BITS = FIN | SYN | RST | ACK  # all below 32
# the kind of every (flag bits, payload > 0) combination: one gather per packet
_KIND_TABLE = _history_kind_of(np.repeat(np.arange(32), 2), np.tile([0, 1], 32))


def tcp_history_kind(tcp_flags: np.ndarray, payload_len: np.ndarray) -> np.ndarray:
    """Zeek's history letter kind of each TCP packet (-1: none)."""
    index = (tcp_flags & _KIND_BITS).astype(np.intp) * 2
    index += payload_len > 0
    return _KIND_TABLE[index]


# ---- conn_state --------------------------------------------------------------------------

CONN_STATES = ("S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH",
               "SHR", "OTH")  # fmt: skip


def _tcp_conn_state(os: int, rs: int, no_bytes: bool, syn_then_rst: bool) -> str:
    o_inactive = os in (E.INACTIVE, E.PARTIAL)
    r_inactive = rs in (E.INACTIVE, E.PARTIAL)
    if rs == E.RESET:
        if os in (E.SYN_SENT, E.SYN_ACK_SENT) or (os == E.RESET and no_bytes):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os == E.RESET:
        if r_inactive:
            return "RSTOS0" if syn_then_rst else "OTH"
        return "RSTO"
    if rs == E.CLOSED and os == E.CLOSED:
        return "SF"
    if os == E.CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == E.CLOSED:
        return "SHR" if o_inactive else "S3"
    if os == E.SYN_SENT and rs == E.INACTIVE:
        return "S0"
    if os == E.ESTABLISHED and rs == E.ESTABLISHED:
        return "S1"
    return "OTH"


# [joint, no_bytes, syn_then_rst] -> index into CONN_STATES
TCP_CONN_STATE = np.array(
    [
        [
            [
                CONN_STATES.index(_tcp_conn_state(j // N_STATES, j % N_STATES, nb, sr))
                for sr in (0, 1)
            ]
            for nb in (0, 1)
        ]
        for j in range(N_STATES * N_STATES)
    ],
    dtype=np.uint8,
)


def conn_state_codes(
    ip_proto: np.ndarray,
    joint: np.ndarray,
    orig_pkts: np.ndarray,
    resp_pkts: np.ndarray,
    no_bytes: np.ndarray,
    syn_then_rst: np.ndarray,
) -> np.ndarray:
    """``conn_state`` as indices into ``CONN_STATES``."""
    tcp = TCP_CONN_STATE[joint, no_bytes.astype(np.int64), syn_then_rst.astype(np.int64)]
    o, r = orig_pkts > 0, resp_pkts > 0
    udp = np.select([o & r, o, r], [CONN_STATES.index(s) for s in ("SF", "S0", "SHR")],
                    CONN_STATES.index("OTH"))  # fmt: skip
    return np.where(ip_proto == 6, tcp, np.where(ip_proto == 17, udp, CONN_STATES.index("OTH")))
