"""Who originates a flow: Zeek's rule, vectorised over the first packet of each new flow.

The sender of a bare SYN originates. Any other first packet (mid-stream, SYN-ACK, UDP) is
flipped when its sender's port is a *likely server port* and the receiver's is not; for
TCP packets other than SYN-ACK where both ports are likely servers, the lower port is
taken as the server. ICMP and other transports keep the first sender as originator.

The likely-server set is curated: the system ports (1-1023) plus widely used service
ports. It deliberately avoids Linux's ephemeral range 32768-60999, where registered user
ports collide with client source ports all the time.
"""

from __future__ import annotations

import numpy as np

from portlabel.flows.columns import RESPONDER_BY

BY_SYN, BY_SYN_ACK, BY_SERVER_PORT, BY_LOWER_PORT, BY_FIRST = range(len(RESPONDER_BY))

_SERVICE_PORTS = (
    # remote access, mail, directory, databases, messaging, web and proxies
    1080, 1194, 1433, 1434, 1521, 1701, 1723, 1812, 1813, 1883, 1900, 2049, 2082, 2083,
    2152, 2181, 2375, 2376, 2404, 2483, 2484, 3128, 3260, 3268, 3269, 3306, 3389, 3478,
    3544, 3690, 4369, 4500, 4789, 5004, 5005, 5060, 5061, 5222, 5223, 5228, 5246, 5247,
    5349, 5353, 5355, 5432, 5671, 5672, 5683, 5684, 5900, 5938, 5984, 6000, 6081, 6379,
    6443, 6514, 6653, 6666, 6667, 6697, 7000, 7001, 8000, 8008, 8009, 8080, 8081, 8082,
    8086, 8088, 8443, 8444, 8883, 8888, 9000, 9042, 9090, 9092, 9100, 9200, 9300, 9418,
    9443, 10050, 10051, 11211, 11371, 15672, 27017,
)  # fmt: skip

LIKELY_SERVER_PORTS: frozenset[int] = frozenset(range(1, 1024)) | frozenset(_SERVICE_PORTS)

_LIKELY = np.zeros(65536, dtype=bool)
_LIKELY[list(LIKELY_SERVER_PORTS)] = True

_SYN, _ACK = 0x02, 0x10


def is_likely_server_port(port: np.ndarray) -> np.ndarray:
    """Boolean mask: which ports belong to the curated likely-server set."""
    return _LIKELY[np.asarray(port, dtype=np.int64)]


def decide_orientation(
    ip_proto: np.ndarray, tcp_flags: np.ndarray, sport: np.ndarray, dport: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each new flow's first packet: (flip, responder_by code).

    ``flip`` True means the first packet's *receiver* is the originator.
    """
    tcp = ip_proto == 6
    udp = ip_proto == 17
    syn = (tcp_flags & _SYN) != 0
    ack = (tcp_flags & _ACK) != 0
    src_l, dst_l = is_likely_server_port(sport), is_likely_server_port(dport)
    n = len(ip_proto)
    flip = np.zeros(n, dtype=bool)
    by = np.full(n, BY_FIRST, dtype=np.uint8)

    ported = tcp | udp
    only_src = ported & src_l & ~dst_l
    only_dst = ported & dst_l & ~src_l
    flip |= only_src
    by[only_src | only_dst] = BY_SERVER_PORT

    both = tcp & src_l & dst_l
    by[both] = BY_LOWER_PORT
    # a SYN-ACK is never flipped on a port tie: it may be a stealth scan
    flip |= both & ~syn & (sport < dport)

    syn_ack = tcp & syn & ack
    by[syn_ack & ~(only_src | only_dst)] = BY_SYN_ACK
    pure_syn = tcp & syn & ~ack
    flip[pure_syn] = False
    by[pure_syn] = BY_SYN
    return flip, by
