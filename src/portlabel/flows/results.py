"""What the flow table hands out: finished flows before rendering, and packets' flows.

``FinishedFlows`` holds the records of flows that finished in one step of a
``FlowTable`` and renders them into the FlowBatch (``table()``), a pure function that may
run in another thread. ``PacketFlows`` says which flow each packet of a batch went to
(``FlowTable.update(batch, want_rows=True)`` returns both in a ``FlowUpdate``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from portlabel.flows.emit import to_flow_batch
from portlabel.flows.keys import KEY_FIELDS
from portlabel.flows.packets import Rows
from portlabel.flows.records import Records
from portlabel.flows.render import uid_strings

_A_PORT, _B_PORT = KEY_FIELDS["a_port"][0], KEY_FIELDS["b_port"][0]
_PROTO_AT = KEY_FIELDS["proto"][0]


@dataclass(slots=True)
class PacketFlows:
    """The flow of each packet of one batch (arrays aligned with the batch's rows).

    A tunnelled packet belongs to its innermost flow (its tunnel's flow if the inner
    frame is not IP). Packets in no flow (not IP, malformed) have ``flow`` -1.
    A flow's uid and orientation are fixed when the flow starts, so they are known as
    soon as its first packet is folded in.
    """

    flow: np.ndarray  # int64: the packet's row in ``flow_uid`` (-1: in no flow)
    flow_uid: np.ndarray  # (flows, 3) uint32: the batch's flows' uid limbs, once each
    ip_proto: np.ndarray  # uint8
    orig_p: np.ndarray  # uint16, the flow's originator port (ICMP: type)
    resp_p: np.ndarray  # uint16

    @classmethod
    def empty(cls, n: int) -> PacketFlows:
        return cls(
            np.full(n, -1, dtype=np.int64),
            np.zeros((0, 3), dtype=np.uint32),
            np.zeros(n, dtype=np.uint8),
            np.zeros(n, dtype=np.uint16),
            np.zeros(n, dtype=np.uint16),
        )

    @property
    def in_flow(self) -> np.ndarray:
        """Whether each packet is in a flow."""
        return self.flow >= 0

    @property
    def uid(self) -> np.ndarray:
        """Each packet's flow's uid limbs ``(n, 3)`` (zero for a packet in no flow)."""
        out = np.zeros((len(self.flow), 3), dtype=np.uint32)
        out[self.in_flow] = self.flow_uid[self.flow[self.in_flow]]
        return out

    def fill(self, rows: Rows, seg: np.ndarray, rec: Records, first_pos: int) -> None:
        keys = rec["key"]
        ports = np.ascontiguousarray(keys[:, _A_PORT : _B_PORT + 2]).view(">u2")
        side = rec["orig_side"].astype(np.int64)
        flows = np.arange(len(side))
        orig_p, resp_p = ports[flows, side], ports[flows, 1 - side]
        # tunnel parent rows first: a packet with no inner flow (ARP in VXLAN) keeps
        # its outer flow, any other is overwritten by its inner flow
        parts = [slice(None)] if rows.outer is None else [rows.outer, ~rows.outer]
        self.flow_uid = np.ascontiguousarray(rec["uid"])
        for part in parts:
            at, s = rows.pos[part] - first_pos, seg[part]
            self.flow[at] = s
            self.ip_proto[at] = keys[s, _PROTO_AT]
            self.orig_p[at], self.resp_p[at] = orig_p[s], resp_p[s]

    def uids(self) -> pa.Array:
        """The uid strings (null for packets in no flow)."""
        return uid_strings(self.uid, null_mask=~self.in_flow)


@dataclass(frozen=True, slots=True)
class FinishedFlows:
    """Flows that finished in one step of the table, as records not yet rendered.

    ``table()`` renders them (orientation, Zeek's derived fields, text columns, Community
    ID) into the FlowBatch; it is a pure function of what is held here.
    """

    records: Records
    reasons: np.ndarray  # END_REASONS code per flow
    parents: list[list[str]] | None  # tunnel parent uids per flow (None: no flow has any)
    community_id_seed: int
    letters: list[list[tuple[int, int]]] | None = None  # scaled-letter events per flow

    def __len__(self) -> int:
        return len(self.reasons)

    def table(self) -> pa.Table:
        return to_flow_batch(
            self.records, self.reasons, self.parents, self.community_id_seed, self.letters
        )

    def pieces(self, size: int) -> Iterator[FinishedFlows]:
        """These flows ``size`` at a time, in order (itself when there are no more)."""
        if len(self) <= size:
            yield self
            return
        for at in range(0, len(self), size):
            part = slice(at, at + size)
            yield FinishedFlows(
                self.records[part],
                self.reasons[part],
                None if self.parents is None else self.parents[part],
                self.community_id_seed,
                None if self.letters is None else self.letters[part],
            )


@dataclass(frozen=True, slots=True)
class FlowUpdate:
    """What ``FlowTable.update(batch, want_rows=True)`` returns."""

    flows: pa.Table | None  # flows finished by this batch, if any
    packets: PacketFlows  # the flow of each packet of the batch
