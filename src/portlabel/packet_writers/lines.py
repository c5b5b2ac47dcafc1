"""Packets as lines: tcpdump-like text or JSON lines, a block of lines per batch.

Theory of operation: each ``PacketBatch`` is turned into its block of output lines at
once: every column becomes an array of text fragments (addresses through a cache of
unique addresses, ports/flags/statuses through lookup tables) and the fragments are
joined column-wise with ``numpy.strings``, so no Python code runs per packet. ``extra``
is text appended to each line (``labels.PacketLabeller``'s per-packet label fields).
"""

from __future__ import annotations

import ipaddress

import numpy as np

from portlabel.capture.batch import DecodeStatus, TunnelType
from portlabel.constants import PORTED_PROTOCOLS, PROTOCOL_NAMES

TCP_FLAG_LETTERS = "FSRPAUECN"  # bit 0 (FIN) .. bit 8 (NS)


class PacketFormatter:
    """Turns ``PacketBatch``es into output text, remembering address texts across batches."""

    MAX_CACHED = 1 << 16

    def __init__(self) -> None:
        self.addresses: dict[bytes, str] = {}
        text = np.dtypes.StringDType()
        self.status_names = np.array([s.name.lower() for s in DecodeStatus], dtype=text)
        self.tunnel_names = np.array([t.name.lower() for t in TunnelType], dtype=text)
        names = [PROTOCOL_NAMES.get(p, str(p)) for p in range(256)]
        self.transport_text = np.array(names, dtype=np.dtypes.StringDType())
        self.transport_json = np.array(
            [f'"{PROTOCOL_NAMES[p]}"' if p in PROTOCOL_NAMES else str(p) for p in range(256)],
            dtype=np.dtypes.StringDType(),
        )
        self.flag_letters = np.array(
            ["".join(c for b, c in enumerate(TCP_FLAG_LETTERS) if v >> b & 1) for v in range(512)],
            dtype=np.dtypes.StringDType(),
        )
        self.has_ports = np.zeros(256, dtype=bool)
        self.has_ports[list(PORTED_PROTOCOLS)] = True

    # -- columns as text -------------------------------------------------------------
    def address_text(self, column, present):
        """Innermost addresses as text ("" where ``present`` is False)."""
        out = np.full(column.shape[0], "", dtype=np.dtypes.StringDType())
        if not present.any():
            return out
        unique, inverse = np.unique(column[present], axis=0, return_inverse=True)
        texts = []
        for row in unique:
            key = row.tobytes()
            text = self.addresses.get(key)
            if text is None:
                address = ipaddress.IPv6Address(key)
                text = str(address.ipv4_mapped or address)
                if len(self.addresses) < self.MAX_CACHED:
                    self.addresses[key] = text
            texts.append(text)
        out[present] = np.array(texts, dtype=np.dtypes.StringDType())[inverse.ravel()]
        return out

    def _parts(self, batch) -> dict:
        is_ip = batch.ip_version != 0
        proto = batch.ip_proto.astype(np.intp)
        ports = is_ip & self.has_ports[proto] & ((batch.sport != 0) | (batch.dport != 0))
        return {
            "is_ip": is_ip,
            "ports": ports,
            "tcp": is_ip & (proto == 6) & ports,
            "src": self.address_text(batch.src_ip, is_ip),
            "dst": self.address_text(batch.dst_ip, is_ip),
            "status": self.status_names[batch.status],
        }

    @staticmethod
    def _seconds(ts_ns):
        """Epoch seconds with nanoseconds as exact text ("1436720898.354402000")."""
        sec, ns = np.divmod(ts_ns, 1_000_000_000)
        digits = np.strings.zfill(ns.astype(np.dtypes.StringDType()), 9)
        return np.strings.add(np.strings.add(sec.astype(np.dtypes.StringDType()), "."), digits)

    # -- JSON --------------------------------------------------------------------------
    def json_lines(self, batch, extra=None) -> str:
        """One JSON object per packet, newline-terminated (``extra``: text to append to
        each object, e.g. ``,"uid":"C..."``)."""
        S = np.strings
        p = self._parts(batch)
        null = "null"

        def quoted(text, present):
            return np.where(present, S.add(S.add('"', text), '"'), null)

        def number(values, present):
            return np.where(present, values.astype(np.dtypes.StringDType()), null)

        transport = np.where(p["is_ip"], self.transport_json[batch.ip_proto], null)
        fields = [
            ('{"frame":', (batch.frame + 1).astype(np.dtypes.StringDType())),
            (',"ts":', self._seconds(batch.ts_ns)),
            (',"src":', quoted(p["src"], p["is_ip"])),
            (',"dst":', quoted(p["dst"], p["is_ip"])),
            (',"sport":', number(batch.sport, p["ports"])),
            (',"dport":', number(batch.dport, p["ports"])),
            (',"transport":', transport),
            (',"len":', batch.wirelen.astype(np.dtypes.StringDType())),
            (',"status":', quoted(p["status"], True)),
        ]
        line = _join(S, fields)
        optional = [
            (',"vlan":', _text(batch.vlan), batch.vlan >= 0),
            (',"inner_vlan":', _text(batch.inner_vlan), batch.inner_vlan >= 0),
            (',"tunnel":', quoted(self.tunnel_names[batch.tunnel], True), batch.tunnel != 0),
            (',"tcp_flags":', quoted(self.flag_letters[batch.tcp_flags & 0x1FF], True), p["tcp"]),
        ]
        for key, text, present in optional:
            line = np.where(present, S.add(S.add(line, key), text), line)
        if extra is not None:
            line = S.add(line, extra)
        return "".join(S.add(line, "}\n").tolist())

    # -- text --------------------------------------------------------------------------
    def text_lines(self, batch, extra=None) -> str:
        """One aligned human line per packet, tcpdump -n style, newline-terminated."""
        S = np.strings
        p = self._parts(batch)
        when = np.datetime_as_string(batch.ts_ns.astype("datetime64[ns]"), unit="us")
        when = S.replace(when.astype(np.dtypes.StringDType()), "T", " ")
        src = np.where(
            p["ports"],
            S.add(S.add(p["src"], "."), batch.sport.astype(np.dtypes.StringDType())),
            p["src"],
        )
        dst = np.where(
            p["ports"],
            S.add(S.add(p["dst"], "."), batch.dport.astype(np.dtypes.StringDType())),
            p["dst"],
        )
        src = np.where(p["is_ip"], src, "-")
        dst = np.where(p["is_ip"], dst, "-")
        kind = np.where(p["is_ip"], self.transport_text[batch.ip_proto], "-")
        frame = S.rjust((batch.frame + 1).astype(np.dtypes.StringDType()), 7)
        src = S.ljust(src, int(S.str_len(src).max()))
        dst = S.ljust(dst, int(S.str_len(dst).max()))
        kind = S.ljust(kind, 5)
        length = S.rjust(batch.wirelen.astype(np.dtypes.StringDType()), 5)
        line = _join(
            S, [("", frame), (" ", when), (" ", kind), (" ", src), (" > ", dst), (" len ", length)]
        )
        flags = S.add(S.add(" [", self.flag_letters[batch.tcp_flags & 0x1FF]), "]")
        line = np.where(p["tcp"], S.add(line, flags), line)
        tunnel = S.add(" tunnel=", self.tunnel_names[batch.tunnel])
        line = np.where(batch.tunnel != 0, S.add(line, tunnel), line)
        line = np.where(
            batch.vlan >= 0,
            S.add(S.add(line, " vlan="), batch.vlan.astype(np.dtypes.StringDType())),
            line,
        )
        line = np.where(batch.status != 0, S.add(S.add(line, " "), p["status"]), line)
        if extra is not None:
            line = S.add(line, extra)
        return "".join(S.add(line, "\n").tolist())  # fmt: skip


def _text(values):
    """Integers (or anything numpy can print) as a StringDType array."""
    return values.astype(np.dtypes.StringDType())


def _join(S, fields):
    line = None
    for prefix, text in fields:
        part = S.add(prefix, text) if prefix else text
        line = part if line is None else S.add(line, part)
    return line
