"""The decoder's working state and its vectorised byte reads.

Theory of operation: every packet of a batch has a *cursor* -- the absolute position ``pos``
of the next header to read in the batch buffer and the ``layer`` code saying what that header
is (``portlabel.capture.nextlayer.Layer``). A layer handler receives the indices of all the
packets currently sitting on its layer, reads their header fields with one fancy-indexing
gather per field (``buf[pos + offset]``), writes the result columns, and moves each cursor
to the next header (or finishes it with a ``DecodeStatus``). Bounds are checked *before*
reading: a handler first calls ``DecodeState.need`` which retires the packets whose captured
bytes end inside the header as TRUNCATED, so gathers never leave a record.
"""

from __future__ import annotations

import numpy as np

from portlabel.capture.batch import DecodeStatus, PacketBatch, RawBatch
from portlabel.capture.headers import Field
from portlabel.capture.nextlayer import NOT_IP, UNSUPPORTED, Layer

_BE = {1: np.dtype("u1"), 2: np.dtype(">u2"), 4: np.dtype(">u4"), 8: np.dtype(">u8")}
_LE = {1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


def gather(buf: np.ndarray, pos: np.ndarray, size: int) -> np.ndarray:
    """``size`` consecutive bytes at each position, as an (n, size) uint8 matrix."""
    return buf[pos[:, None] + np.arange(size, dtype=np.int64)]


def read(buf: np.ndarray, pos: np.ndarray, field: Field) -> np.ndarray:
    """The value of ``field`` for headers starting at ``pos``, as int64."""
    start = pos + field.offset if field.offset else pos
    if field.size == 1:
        value = buf[start].astype(np.int64)
    elif field.size in _BE:
        dtype = (_LE if field.little else _BE)[field.size]
        value = gather(buf, start, field.size).view(dtype)[:, 0].astype(np.int64)
    else:  # 6-byte MAC addresses: big-endian, at most 8 bytes
        m = gather(buf, start, field.size).astype(np.int64)
        value = np.zeros(len(pos), dtype=np.int64)
        for k in range(field.size):
            value = (value << 8) | m[:, k]
    if field.shift:
        value >>= field.shift
    if field.mask:
        value &= field.mask
    return value


class DecodeState:
    """Per-packet cursors over one RawBatch plus the PacketBatch being filled."""

    def __init__(self, raw: RawBatch) -> None:
        n = len(raw)
        self.buf = raw.buf
        self.pos = raw.offset.astype(np.int64, copy=True)
        self.end = self.pos + raw.caplen.astype(np.int64)
        self.layer = np.zeros(n, dtype=np.uint8)
        self.arg = np.zeros(n, dtype=np.int64)  # a value passed to the next layer (a proto)
        self.ip_rest = np.zeros(n, dtype=np.int64)  # IP payload bytes still unread per header
        self.pending = np.zeros(256, dtype=bool)  # layer codes some cursor may sit on
        out = PacketBatch.empty(n)
        out.frame[:] = raw.frame
        out.ts_ns[:] = raw.ts_ns
        out.caplen[:] = raw.caplen
        out.wirelen[:] = raw.wirelen
        out.linktype[:] = raw.linktype
        out.iface[:] = raw.iface
        self.out = out

    # -- cursor moves ---------------------------------------------------------------
    def goto(self, idx: np.ndarray, layer: np.ndarray | int, pos: np.ndarray) -> None:
        """Move cursors ``idx`` to header ``layer`` at absolute position ``pos``."""
        self.pos[idx] = pos
        if np.isscalar(layer):
            self.layer[idx] = layer
            self.pending[int(layer)] = True
            if layer >= UNSUPPORTED:
                self._retire_unknown(idx, np.full(len(idx), layer, dtype=np.uint8))
            return
        layer = np.asarray(layer, dtype=np.uint8)
        self.layer[idx] = layer
        self.pending |= np.bincount(layer, minlength=256).astype(bool)
        unknown = layer >= UNSUPPORTED
        if unknown.any():
            self._retire_unknown(idx[unknown], layer[unknown])

    def _retire_unknown(self, idx: np.ndarray, layer: np.ndarray) -> None:
        status = np.where(layer == NOT_IP, DecodeStatus.NOT_IP, DecodeStatus.UNSUPPORTED_LINK)
        self.out.status[idx] = status
        self.layer[idx] = Layer.DONE

    def finish(self, idx: np.ndarray, status: DecodeStatus | None = None) -> None:
        """Stop decoding ``idx`` (their transport layer is read or cannot be reached)."""
        self.layer[idx] = Layer.DONE
        if status is not None:
            self.out.status[idx] = status

    def need(
        self,
        idx: np.ndarray,
        nbytes,
        at: np.ndarray | None = None,
        *arrays: np.ndarray,
        short: DecodeStatus | None = DecodeStatus.TRUNCATED,
    ):
        """Keep the packets having ``nbytes`` captured at ``at`` (default: their cursor).

        The others are finished with status ``short`` (None: keep the status they have).
        Returns ``(idx, at, *arrays)`` restricted to the kept packets (``arrays`` are
        per-packet companions of ``idx``).
        """
        at = self.pos[idx] if at is None else at
        ok = at + nbytes <= self.end[idx]
        if ok.all():
            return (idx, at, *arrays) if arrays else (idx, at)
        self.finish(idx[~ok], short)
        kept = (idx[ok], at[ok], *(a[ok] for a in arrays))
        return kept

    def malformed(self, idx: np.ndarray, bad: np.ndarray, *arrays: np.ndarray):
        """Finish ``idx[bad]`` as MALFORMED; return the good ``idx`` and ``arrays`` rows."""
        if not bad.any():
            return (idx, *arrays)
        self.finish(idx[bad], DecodeStatus.MALFORMED)
        good = ~bad
        return (idx[good], *(a[good] for a in arrays))
