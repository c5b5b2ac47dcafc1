"""Flow records in columnar form: the per-flow state the engine keeps between batches.

A ``Records`` is one structured numpy array, one element per flow, with the fields of
``RECORD_FIELDS`` (``rec["pkts"]`` is a view of one field). A flow's state is one
contiguous element, so moving flows around (taking finished ones out of a batch,
concatenating) is one copy per flow instead of one per field. Per-direction fields are
``(n, 2)`` indexed by the *canonical* direction (0: key endpoint a -> b, 1: b -> a);
``orig_side`` says which canonical direction the originator sends in. Between batches
the active flows are kept in a more compact form (``store.FlowStore``).
"""

from __future__ import annotations

import numpy as np

from portlabel.flows.keys import KEY_WIDTH

NO_POS = np.iinfo(np.int64).max  # "letter never seen"
N_LETTERS = 16  # 8 history kinds x 2 canonical directions

# name -> (dtype, per-row shape, fill value)
RECORD_FIELDS: dict[str, tuple[str, tuple[int, ...], int]] = {
    "key": ("uint8", (KEY_WIDTH,), 0),
    "ip_version": ("uint8", (), 0),
    "first_ts": ("int64", (), 0),
    "last_ts": ("int64", (), 0),
    "orig_side": ("uint8", (), 0),  # canonical direction of the originator's packets
    "flipped": ("bool", (), 0),  # the first packet's receiver is the originator
    "by": ("uint8", (), 0),  # responder_by code
    "pkts": ("int64", (2,), 0),
    "ip_bytes": ("int64", (2,), 0),
    "payload": ("int64", (2,), 0),
    "mac": ("uint64", (2,), 0),  # sender MAC per direction
    "vlans": ("int32", (2,), -1),  # the first packet's outer and inner VLAN (-1: none)
    "seq_prev": ("uint32", (2,), 0),  # TCP: the last packet's sequence end (tcp_track)
    "seq_u": ("int64", (2,), 0),  # TCP: that end unwrapped past 32 bits
    "seq_top": ("int64", (2,), -(1 << 40)),  # TCP: the highest unwrapped end sent (not RST)
    "deliv": ("int64", (2,), 0),  # TCP: the end of the data seen without a hole (unwrapped)
    "hole_end": ("int64", (2,), -(1 << 40)),  # TCP: where data seen beyond a hole starts
    "scaled": ("uint32", (8,), 0),  # letters.SCALED_KINDS counts per canonical direction
    "base": ("uint32", (2,), 0),  # TCP: sequence number "before" the first octet
    "has_base": ("bool", (2,), 0),
    "seq_end": ("int64", (2,), 0),  # TCP: highest relative sequence end sent
    "acked": ("int64", (2,), 0),  # TCP: highest relative ack received for this side
    "fins": ("int64", (2,), 0),
    "joint": ("uint8", (), 0),  # TCP joint endpoint state (tcp_state)
    "first_pos": ("int64", (N_LETTERS,), NO_POS),  # first packet position of each letter
    "uid": ("uint32", (3,), 0),
    "pos0": ("int64", (), 0),  # capture position of the flow's first packet (its uid's)
    "cut_state": ("uint8", (), 0),  # segments.CS_* bits: what the cutting rules look back at
}

RECORD_DTYPE = np.dtype(
    [(name, dtype, shape) for name, (dtype, shape, _) in RECORD_FIELDS.items()], align=True
)
_FILLED = [(name, fill) for name, (_, _, fill) in RECORD_FIELDS.items() if fill != 0]

Records = np.ndarray  # of RECORD_DTYPE


def empty_records(n: int) -> Records:
    out = np.zeros(n, dtype=RECORD_DTYPE)
    for name, fill in _FILLED:
        out[name] = fill
    return out


def take(rec: Records, index: np.ndarray) -> Records:
    # np.take copies whole elements; ``rec[index]`` on a structured array goes field by
    # field and is several times slower
    return np.take(rec, index)


def concat(parts: list[Records]) -> Records:
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_records(0)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]
