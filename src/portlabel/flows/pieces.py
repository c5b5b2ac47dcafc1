"""Splitting a keyed batch of very many flows into pieces, in capture order.

A batch's memory in the pipeline follows its number of flows, not of packets: every flow
it touches gets a record while it is folded, and every flow it ends is rendered, labelled
and written a few batches behind. Ordinary traffic brings a few thousand flows per batch
of 65536 packets; a flood of new connections (a scan, spoofed sources) brings one per
packet, and then a batch's flows cost about as much memory as a million stored ones.
``pieces`` cuts such a batch into consecutive stretches of the capture of at most about
``PIECE_FLOWS`` flows each, which the table folds one after the other (and the flows a
batch ends are handed on that many at a time). Timeouts and eviction run once, after the
last piece, so the flows are those of the unsplit batch.
"""

from __future__ import annotations

import numpy as np

PIECE_FLOWS = 1 << 14  # flows (key groups) a piece of a keyed batch holds at most, about


def piece_edges(pos: np.ndarray, groups: int, limit: int = PIECE_FLOWS) -> np.ndarray:
    """Capture positions where pieces start (the first is the batch's first position):
    one piece when ``groups`` is within ``limit``, else ``ceil(groups / limit)`` pieces
    of about the same number of rows. Rows of one position (a tunnel's inner and outer
    rows) stay in one piece."""
    n_pieces = -(-groups // limit)
    if n_pieces <= 1 or len(pos) < 2:
        return np.zeros(1, dtype=np.int64)
    ordered = np.sort(pos)
    edges = ordered[(np.arange(n_pieces) * len(ordered)) // n_pieces]
    return np.unique(edges)


def split_keyed(keyed, limit: int = PIECE_FLOWS) -> list:
    """``[keyed]`` (a ``KeyedBatch``) when it has at most ``limit`` groups, else its
    pieces: each the rows of a stretch of capture positions, still grouped by key in the
    batch's key order, each group's rows in their order. Fold all but the last with
    ``settle=False``: timeouts and eviction then run once, for the whole batch."""
    rows, gstarts = keyed.rows, keyed.gstarts
    edges = piece_edges(rows.pos, len(gstarts), limit)
    if len(edges) == 1:
        return [keyed]
    group_start = np.zeros(len(rows), dtype=bool)
    group_start[gstarts] = True
    group = np.cumsum(group_start) - 1
    piece = np.searchsorted(edges, rows.pos, side="right") - 1
    order = np.argsort(piece, kind="stable")  # by piece, key order kept within each
    bounds = np.searchsorted(piece[order], np.arange(len(edges) + 1))
    out = []
    for p in range(len(edges)):  # every piece has rows: its edge is one of their positions
        index = order[bounds[p] : bounds[p + 1]]
        g = group[index]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        last = p == len(edges) - 1
        out.append(
            type(keyed)(
                rows.take(index),
                starts,
                keyed.group_keys[g[starts]],
                keyed.first_pos,
                keyed.last_ts if last else int(rows.ts[index].max()),
            )
        )
    return out
