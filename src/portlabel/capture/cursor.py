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

import functools

import numpy as np

from portlabel.capture.batch import DecodeStatus, PacketBatch, RawBatch
from portlabel.capture.headers import Field
from portlabel.capture.nextlayer import NOT_IP, UNSUPPORTED, Layer


def gather(buf: np.ndarray, pos: np.ndarray, size: int) -> np.ndarray:
    """``size`` consecutive bytes at each position, as an (n, size) uint8 matrix.

    The buffer is viewed as overlapping ``size``-byte records (stride 1), so the gather is
    one 1-D fancy index of fixed-size items: much cheaper than an (n, size) index matrix.
    """
    if len(pos) == 0 or len(buf) < size:
        return np.zeros((len(pos), size), dtype=np.uint8)
    records = np.ndarray(
        shape=(len(buf) - size + 1,), dtype=np.dtype(f"V{size}"), buffer=buf, strides=(1,)
    )
    return records[pos].view(np.uint8).reshape(len(pos), size)


@functools.lru_cache(maxsize=512)
def _field_dtype(width: int, offset: int, fmt: str) -> np.dtype:
    return np.dtype({"names": ["v"], "formats": [fmt], "offsets": [offset], "itemsize": width})


def field(header: np.ndarray, f: Field) -> np.ndarray:
    """The value of ``f`` (as int64) from an (n, width) matrix made by ``gather``.

    The matrix rows are viewed through a one-field structured dtype placed at the field's
    offset, so each field costs one strided conversion pass.
    """
    width, offset, size = header.shape[1], f.offset, f.size
    shift, mask = f.shift, f.mask
    if size == 6:  # a MAC address: read 8 bytes around it and drop the extra two
        if width < 8:
            wide = np.zeros((header.shape[0], 8), dtype=np.uint8)
            wide[:, 2:] = header[:, offset : offset + 6]
            header, width, offset = wide, 8, 2
        if offset + 8 <= width:
            size, shift = 8, shift + 16
        else:
            size, offset = 8, offset - 2
        # The 8-byte read lands in a signed int64: keep only the 48 address bits, or the
        # arithmetic shift above would smear a high first octet into the top bits.
        mask = mask or 0xFFFF_FFFF_FFFF
    fmt = ("<" if f.little else ">") + f"u{size}"
    if header.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    value = header.view(_field_dtype(width, offset, fmt))["v"][:, 0].astype(np.int64)
    if shift:
        value >>= shift
    if mask:
        value &= mask
    return value


def words(header: np.ndarray, offset: int, count: int) -> np.ndarray:
    """``count`` 4-byte words at ``offset`` as native uint32, bytes kept in memory order."""
    dtype = _field_dtype(header.shape[1], offset, f"({count},)=u4")
    return header.view(dtype)["v"][:, 0]


def read(buf: np.ndarray, pos: np.ndarray, f: Field) -> np.ndarray:
    """The value of field ``f`` for headers starting at ``pos``, as int64."""
    if f.size == 1:
        value = buf[pos + f.offset].astype(np.int64)
        if f.shift:
            value >>= f.shift
        return value & f.mask if f.mask else value
    return field(gather(buf, pos + f.offset, f.size), Field(0, f.size, f.little, f.shift, f.mask))


class DecodeState:
    """Per-packet cursors over one RawBatch plus the PacketBatch being filled."""

    def __init__(self, raw: RawBatch, out: PacketBatch, lo: int, hi: int) -> None:
        """Cursors for records ``lo:hi`` of ``raw``, writing rows ``lo:hi`` of ``out``."""
        n = hi - lo
        self.buf = np.ascontiguousarray(raw.buf, dtype=np.uint8)
        self.start = raw.offset[lo:hi].astype(np.int64, copy=True)  # each frame's first byte
        self.pos = self.start.copy()
        self.end = self.pos + raw.caplen[lo:hi]
        self.layer = np.zeros(n, dtype=np.uint8)
        self.arg = np.zeros(n, dtype=np.int64)  # a value passed to the next layer (a proto)
        self.ip_rest = np.zeros(n, dtype=np.int64)  # IP payload bytes still unread per header
        self.pending = np.zeros(256, dtype=bool)  # layer codes some cursor may sit on
        self.tunnelled = False  # whether any row has entered a tunnel yet
        self.out = PacketBatch(**{name: col[lo:hi] for name, col in out.columns().items()})

    def on_own_link(self, idx: np.ndarray) -> np.ndarray:
        """Mask of ``idx`` still on the capture's own link (not inside a tunnel)."""
        if not self.tunnelled:
            return np.ones(len(idx), dtype=bool)
        return self.out.tunnel[idx] == 0

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

    def keep(self, idx: np.ndarray, ok: np.ndarray, *arrays: np.ndarray, status=None):
        """Finish ``idx[~ok]`` with ``status``; return ``idx[ok]`` and ``arrays[ok]``."""
        if ok.all():
            return (idx, *arrays)
        self.finish(idx[~ok], status)
        return (idx[ok], *(a[ok] for a in arrays))

    def malformed(self, idx: np.ndarray, bad: np.ndarray, *arrays: np.ndarray):
        """Finish ``idx[bad]`` as MALFORMED; return the good ``idx`` and ``arrays`` rows."""
        if not bad.any():
            return (idx, *arrays)
        self.finish(idx[bad], DecodeStatus.MALFORMED)
        good = ~bad
        return (idx[good], *(a[good] for a in arrays))
