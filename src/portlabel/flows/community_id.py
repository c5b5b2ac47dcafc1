"""Community ID v1 flow hashes (the Corelight community-id spec), seed 0 by default.

The hash input is: seed (2 bytes, network order), the two addresses, the IP protocol,
one zero pad byte, then the two ports (ICMP: type and counterpart/code), all in network
order, with the endpoints ordered so that the smaller (address, port) comes first --
except for one-way ICMP messages, which keep their direction. The result is "1:" plus the
base64 of the SHA-1 digest. The byte strings are assembled vectorised; the digests of a
whole batch come from one call to the C extension ``_sha1rows`` (without the GIL), or,
without it, from one hashlib call per flow.
"""

from __future__ import annotations

import base64
import hashlib

import numpy as np

from portlabel.flows.keys import endpoint_greater, icmp_ports

try:
    from portlabel.flows import _sha1rows
except ImportError:  # built without a C compiler: hashlib, one call per flow
    _sha1rows = None

_PORTED = (6, 17, 132)  # the spec's transports with ports (besides ICMP)


def community_ids(
    src_ip: np.ndarray,
    dst_ip: np.ndarray,
    ip_version: np.ndarray,
    ip_proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    icmp_type: np.ndarray | None = None,
    icmp_code: np.ndarray | None = None,
    seed: int = 0,
) -> list[str]:
    """Community ID strings for flows given as (src, dst) in any direction.

    Addresses are 16-byte rows (IPv4 as ::ffff:a.b.c.d, hashed as 4 bytes). For ICMP,
    pass the raw ``icmp_type``/``icmp_code``; otherwise ``sport``/``dport`` are used.
    """
    chars = community_id_chars(
        src_ip, dst_ip, ip_version, ip_proto, sport, dport, icmp_type, icmp_code, seed
    )
    return chars.view(f"S{chars.shape[1]}").ravel().astype(str).tolist()


def community_id_chars(
    src_ip: np.ndarray,
    dst_ip: np.ndarray,
    ip_version: np.ndarray,
    ip_proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    icmp_type: np.ndarray | None = None,
    icmp_code: np.ndarray | None = None,
    seed: int = 0,
    compiled: bool = True,
) -> np.ndarray:
    """``community_ids`` as an ``(n, 30)`` uint8 character matrix ("1:" + base64).

    The digests come from ``_sha1rows`` in one call when it is built (``compiled=False``:
    one hashlib call per flow)."""
    n = len(ip_proto)
    proto = ip_proto.astype(np.uint8)
    icmp = (proto == 1) | (proto == 58)
    one_way = np.zeros(n, dtype=bool)
    sp, dp = sport.astype(np.uint16), dport.astype(np.uint16)
    if icmp_type is not None and icmp_code is not None and icmp.any():
        it, ic, ow = icmp_ports(proto, icmp_type.astype(np.uint8), icmp_code.astype(np.uint8))
        sp, dp = np.where(icmp, it, sp), np.where(icmp, ic, dp)
        one_way = icmp & ow
    has_ports = np.isin(proto, _PORTED) | icmp
    sp, dp = np.where(has_ports, sp, 0), np.where(has_ports, dp, 0)
    swap = endpoint_greater(src_ip, sp, dst_ip, dp) & ~one_way
    a = np.where(swap[:, None], dst_ip, src_ip)
    b = np.where(swap[:, None], src_ip, dst_ip)
    ap, bp = np.where(swap, dp, sp), np.where(swap, sp, dp)

    v4 = ip_version == 4
    rows = np.zeros((n, 2 + 32 + 2 + 4), dtype=np.uint8)
    rows[:, 0:2] = np.frombuffer(int(seed).to_bytes(2, "big"), dtype=np.uint8)
    rows[:, 2:18] = a
    rows[:, 18:34] = b
    rows[:, 34] = proto
    rows[:, 36:38] = ap.astype(">u2").view(np.uint8).reshape(-1, 2)
    rows[:, 38:40] = bp.astype(">u2").view(np.uint8).reshape(-1, 2)
    # IPv4 rows: seed, a[12:16], b[12:16], proto, pad, ports -> 16 bytes
    v4rows = np.concatenate([rows[:, 0:2], a[:, 12:], b[:, 12:], rows[:, 34:40]], axis=1)
    digests = np.zeros((n, 21), dtype=np.uint8)  # 21 bytes encode to 28 base64 characters
    if n and _sha1rows is not None and compiled:
        digests[:, :20] = _digests_compiled(rows, v4rows, v4, has_ports)
    elif n:
        digests[:, :20] = _digests_hashlib(rows, v4rows, v4, has_ports)
    chars = np.zeros((n, 30), dtype=np.uint8)
    chars[:, 0], chars[:, 1] = ord("1"), ord(":")
    if n:
        chars[:, 2:] = np.frombuffer(base64.b64encode(digests.tobytes()), np.uint8).reshape(n, 28)
        chars[:, 29] = ord("=")  # the 20-byte digest's padding, in place of the NUL's bits
    return chars


def _digests_compiled(rows, v4rows, v4, has_ports) -> np.ndarray:
    """(n, 20) SHA-1 digests of each flow's bytes, all in one call to ``_sha1rows``."""
    messages = rows.copy()
    messages[v4, :16] = v4rows[v4]
    lengths = np.where(v4, 16, 40) - np.where(has_ports, 0, 4)
    digests = np.empty((len(rows), 20), dtype=np.uint8)
    _sha1rows.sha1_rows(messages, messages.shape[1], lengths.astype(np.int64), digests)
    return digests


def _digests_hashlib(rows, v4rows, v4, has_ports) -> np.ndarray:
    """``_digests_compiled`` with one hashlib call per flow."""
    n = len(rows)
    # one SHA-1 per flow over its own bytes; transports without ports hash no port bytes
    inputs = np.empty(n, dtype=object)
    inputs[v4] = v4rows[v4].view("V16").ravel().tolist()
    inputs[~v4] = rows[~v4].view("V40").ravel().tolist()
    for i in np.flatnonzero(~has_ports).tolist():
        inputs[i] = inputs[i][:-4]
    sha1 = hashlib.sha1
    joined = b"".join([sha1(x).digest() for x in inputs.tolist()])
    return np.frombuffer(joined, dtype=np.uint8).reshape(n, 20)
