"""The tshark backend: Wireshark's dissectors, read through pyshark's JSON mode.

Theory of operation: pyshark runs ``tshark -n -T json`` on the file, with IP reassembly off
(each frame is described as captured) and the JSON cut down to the protocols read here
(``-J``), and gives one packet object per frame. ``describe`` walks the frame's protocol
list (``frame.protocols``) outermost first, taking each protocol's n-th occurrence from
pyshark's layer and its ``duplicate_layers``: the innermost IP datagram wins, a tunnel
protocol (GRE, ERSPAN, VXLAN, Geneve, GTP, Teredo) or an IP directly inside IP moves the
datagram seen so far to the ``outer_*`` columns, and the walk stops at ICMP, whose quoted
datagram is not the packet's own.

tshark reports wiretap encapsulations, not DLT numbers; ``WTAP_TO_DLT`` maps the ones
seen in the corpus back (others become ``UNKNOWN_LINKTYPE``). The first SCTP chunk type
sits under a display-text key in tshark's JSON and is not filled.

Speed, measured on this corpus (2-core machine): about 1.2 ms per packet plus ~0.4 s of
tshark start-up per file, i.e. ~800 packets/s; almost all of it is pyshark's per-packet
JSON parsing. That is fine for cross-checking and small captures; the native backend is
the one for volume. pyshark stays the documented way to drive tshark here.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import sys
from collections.abc import Iterator

from portlabel.capture.backends.rows import Row, enter_tunnel, packed_address, rows_to_batch
from portlabel.capture.batch import DecodeStatus, PacketBatch, TunnelType
from portlabel.capture.pyshark_processes import ensure_child_watcher, with_exact_exits
from portlabel.constants import ICMP, ICMP6, IP_PROTO_OF_TRANSPORT
from portlabel.errors import CaptureError, UsageError

TSHARK = "tshark"
PREFERENCES = {
    "ip.defragment": "FALSE",
    "ipv6.defragment": "FALSE",
    "teredo.heuristic_teredo": "TRUE",
}
PROTOCOLS = (
    "frame eth vlan ip ipv6 tcp udp sctp dccp icmp icmpv6 gre erspan vxlan geneve gtp teredo"
)
UNKNOWN_LINKTYPE = 0xFFFF
WTAP_TO_DLT = {
    1: 1, 4: 9, 6: 10, 7: 101, 15: 0, 20: 105, 23: 127, 25: 113, 28: 104, 97: 192, 124: 226,
    125: 227, 129: 228, 130: 229, 141: 239, 146: 231, 171: 258, 180: 242, 185: 271, 210: 276,
}  # fmt: skip
TUNNELS = {
    "gre": TunnelType.GRE,
    "erspan": TunnelType.ERSPAN,
    "vxlan": TunnelType.VXLAN,
    "geneve": TunnelType.GENEVE,
    "gtp": TunnelType.GTP_U,
    "teredo": TunnelType.TEREDO,
}
# tshark layer name -> IP protocol (tshark calls ICMPv6 "icmpv6")
TRANSPORTS = {**IP_PROTO_OF_TRANSPORT, "icmp": ICMP, "icmpv6": ICMP6}
_ICMP_ID_FIELD = {"icmp": "icmp.ident", "icmpv6": "icmpv6.echo.identifier"}
_HEADER_LEN = {"udp": 8, "sctp": 12, "icmp": 8, "icmpv6": 8}


def _field(layer, name: str) -> str | None:
    """A field's text (the first one when tshark repeats it), None when absent."""
    try:
        value = layer.get_field(name)
    except AttributeError:
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def _int(layer, name: str, default: int = 0) -> int:
    text = _field(layer, name)
    if text is None or text == "":
        return default
    try:
        return int(text, 0)
    except ValueError:
        return default


def ts_ns(epoch: str) -> int:
    """``frame.time_epoch`` text ("1436720898.354402000") to integer nanoseconds."""
    seconds, _, fraction = epoch.partition(".")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


@functools.cache  # built once: pyshark's classes and ours do not change
def _capture_class():
    """pyshark's ``FileCapture``, made exact about what tshark says and when it ends.

    - Its JSON parser needs ``frame.time_epoch``, which tshark leaves out of a frame
      without a timestamp (a pcapng Simple Packet Block) and of records that are not
      packets (custom blocks). Such a packet takes the time of the packet before, as
      the native reader gives it; a record without an encapsulation is skipped.
    - exit statuses and error lines kept exact (``capture.pyshark_processes``).
    """
    import json

    import pyshark
    from pyshark.tshark.output_parser.tshark_json import TsharkJsonParser

    class Parser(TsharkJsonParser):
        last_epoch = "0"

        def _parse_single_packet(self, packet):
            try:
                parsed = super()._parse_single_packet(packet)
            except KeyError:
                whole = json.loads(packet)
                frame = whole["_source"]["layers"].get("frame", {})
                if "frame.encap_type" not in frame or "frame.len" not in frame:
                    return None  # not a packet: pyshark reads on
                frame["frame.time_epoch"] = self.last_epoch
                parsed = super()._parse_single_packet(json.dumps(whole).encode())
            self.last_epoch = parsed.sniff_timestamp
            return parsed

    class Capture(with_exact_exits(pyshark.FileCapture)):
        def _setup_tshark_output_parser(self):
            return Parser(self._get_tshark_version())

    return Capture


def _capture(path: str):
    return _capture_class()(
        path,
        keep_packets=False,
        use_json=True,
        override_prefs=PREFERENCES,
        custom_parameters=["-J", PROTOCOLS],
    )


def read_file(
    path: str, batch_size: int, first_frame: int, warnings: list[str]
) -> Iterator[PacketBatch]:
    """Batches of one capture file, dissected by tshark (``-`` : standard input, which is
    first copied to a temporary file, as tshark reads a pipe only once)."""
    if shutil.which(TSHARK) is None:
        raise UsageError("the tshark backend needs the tshark program, which is not installed")
    if path == "-":
        yield from _read_stdin(batch_size, first_frame, warnings)
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from exc
    with _event_loop():
        yield from _read(path, batch_size, first_frame, warnings)


def _read_stdin(batch_size: int, first_frame: int, warnings: list[str]):
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="portlabel-stdin-", suffix=".pcap") as copy:
        shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        copy.flush()
        with _event_loop():
            yield from _read(copy.name, batch_size, first_frame, warnings, name="-")


@contextlib.contextmanager
def _event_loop():
    """A fresh asyncio loop for pyshark in this thread, closed when the file is read (an
    unclosed loop of a finished thread fails in its finaliser: "Invalid file descriptor")."""
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ensure_child_watcher()
    try:
        yield loop
    finally:
        loop.close()
        main = threading.current_thread() is threading.main_thread()
        asyncio.set_event_loop(asyncio.new_event_loop() if main else None)
        if main:
            # pyshark attached a SafeChildWatcher (process-wide) to the loop just closed;
            # a later read from another thread would find it inactive
            ensure_child_watcher(force=True)


def _read(path: str, batch_size: int, first_frame: int, warnings: list[str], name=None):
    rows: list[Row] = []
    seen, failure = 0, None
    capture = _capture(path)
    try:
        for packet in capture:
            row = describe(packet)
            row["frame"] = first_frame + seen
            seen += 1
            rows.append(row)
            if len(rows) == batch_size:
                yield rows_to_batch(rows)
                rows = []
    except Exception as exc:  # pyshark reports tshark's failures with its own classes
        failure = exc
    try:
        capture.close()  # where pyshark raises for tshark's exit status
    except Exception as exc:
        failure = failure or exc
    # pyshark's finaliser would close (and raise) again; it has nothing left to do.
    capture.close = lambda: None
    if rows:
        yield rows_to_batch(rows)
    if failure is not None:
        message = _tshark_message(failure)
        if not seen:
            raise CaptureError(name or path, f"tshark cannot read it: {message}") from failure
        warnings.append(f"after frame {first_frame + seen}: tshark: {message}")


def _tshark_message(exc: Exception) -> str:
    """tshark's own complaint from pyshark's exception text, on one line."""
    text = str(exc)
    if "Last error line:" in text:
        status = text.split("retcode: ", 1)[1].split(")", 1)[0] if "retcode: " in text else "?"
        text = text.split("Last error line:", 1)[1].split("Try rerunning", 1)[0]
        if text.strip() in ("", "None"):
            text = f"tshark exited with status {status} and said nothing more"
    elif isinstance(exc, KeyError):  # pyshark needs fields some pcapng blocks lack
        text = f"pyshark found no {exc} field in a frame"
    text = " ".join(text.split()).removeprefix("tshark: ")
    return text or type(exc).__name__


class _Layers:
    """A packet's layers by protocol name, each name's occurrences in order."""

    def __init__(self, packet) -> None:
        self.by_name: dict[str, list] = {}
        for layer in packet.layers:
            self.by_name[layer.layer_name] = [layer, *layer.duplicate_layers]
        self.count: dict[str, int] = {}

    def next(self, name: str):
        """The next not yet visited occurrence of ``name`` (None if tshark left it out)."""
        k = self.count.get(name, 0)
        self.count[name] = k + 1
        found = self.by_name.get(name, [])
        return found[k] if k < len(found) else None


def describe(packet) -> Row:
    """One frame's row from tshark's dissection."""
    frame = packet.frame_info
    wirelen, caplen = _int(frame, "frame.len"), _int(frame, "frame.cap_len")
    row: Row = {
        "ts_ns": ts_ns(_field(frame, "frame.time_epoch") or "0"),
        "wirelen": wirelen,
        "caplen": caplen,
        "iface": _int(frame, "frame.interface_id"),
        "linktype": WTAP_TO_DLT.get(_int(frame, "frame.encap_type", -1), UNKNOWN_LINKTYPE),
        "status": DecodeStatus.NOT_IP,
    }
    protocols = (_field(frame, "frame.protocols") or "").split(":")
    layers, tunnel, expect = _Layers(packet), None, None
    for name in protocols:
        layer = layers.next(name)
        if layer is None:
            continue
        if name == "eth" and "src_mac" not in row:
            row["src_mac"] = _mac(_field(layer, "eth.src"))
            row["dst_mac"] = _mac(_field(layer, "eth.dst"))
        elif name == "vlan" and "ip_version" not in row:
            row.setdefault("vlan" if "vlan" not in row else "inner_vlan", _int(layer, "vlan.id"))
        elif name in ("ip", "ipv6"):
            if "ip_version" in row or tunnel is not None:
                enter_tunnel(row, tunnel or TunnelType.IP_IN_IP)
            tunnel = None
            expect = _ip(row, layer, name)
            if row["status"] == DecodeStatus.FRAGMENT:
                break
        elif name == "ipv6.fraghdr":
            continue  # read with its IPv6 header
        elif name in TUNNELS:
            tunnel = TUNNELS[name]
            if name == "erspan" and row.get("tunnel") == TunnelType.GRE:
                row["tunnel"] = TunnelType.ERSPAN
        elif name in TRANSPORTS and "ip_version" in row and tunnel is None:
            _transport(row, layer, name)
            expect = None
            if name in ("icmp", "icmpv6"):
                break
    if tunnel is not None:  # a tunnel whose inner frame is not IP (ARP in VXLAN...)
        enter_tunnel(row, tunnel)
        row["status"] = DecodeStatus.NOT_IP
    elif expect is not None and row["status"] == DecodeStatus.OK:
        # the IP header announced a transport tshark could not dissect
        row["status"] = DecodeStatus.TRUNCATED if caplen < wirelen else DecodeStatus.MALFORMED
        row.pop("ip_rest", None)
    return row


def _mac(text: str | None) -> int:
    return int(text.replace(":", ""), 16) if text and text.count(":") == 5 else 0


def _ip(row: Row, layer, name: str) -> int | None:
    """Fill the IP columns; the transport protocol the header announces (if we read it)."""
    prefix = "ip" if name == "ip" else "ipv6"
    try:
        row["src_ip"] = packed_address(_field(layer, f"{prefix}.src") or "")
        row["dst_ip"] = packed_address(_field(layer, f"{prefix}.dst") or "")
    except ValueError:
        row["status"] = DecodeStatus.TRUNCATED
        return None
    row["status"] = DecodeStatus.OK
    if name == "ip":
        row.update(ip_version=4, ip_proto=_int(layer, "ip.proto"), ip_len=_int(layer, "ip.len"))
        row.update(ip_id=_int(layer, "ip.id"), frag_offset=_int(layer, "ip.frag_offset"))
        row["more_frags"] = bool(_int(layer, "ip.flags") & 1)
        row["ip_rest"] = row["ip_len"] - _int(layer, "ip.hdr_len", 20)
    else:
        plen = _int(layer, "ipv6.plen")
        row.update(ip_version=6, ip_proto=_int(layer, "ipv6.nxt"), ip_len=plen + 40)
        row["ip_rest"] = plen
        fragment = _fragment_header(layer)
        if fragment is not None:
            row["ip_proto"] = _int(fragment, "ipv6.fraghdr.nxt")
            row["ip_id"] = _int(fragment, "ipv6.fraghdr.ident")
            row["frag_offset"] = _int(fragment, "ipv6.fraghdr.offset")
            row["more_frags"] = bool(_int(fragment, "ipv6.fraghdr.more"))
    if row.get("frag_offset"):
        row["status"] = DecodeStatus.FRAGMENT
        return None
    proto = int(row["ip_proto"])  # type: ignore[call-overload]
    return proto if proto in TRANSPORTS.values() else None


def _fragment_header(ipv6_layer):
    try:
        return ipv6_layer.get_field("ipv6.fraghdr")
    except AttributeError:
        return None


def _transport(row: Row, layer, name: str) -> None:
    row["ip_proto"] = TRANSPORTS[name]  # after any IPv6 extension headers
    rest = int(row.pop("ip_rest", 0))  # type: ignore[call-overload]
    if name in ("icmp", "icmpv6"):
        row["icmp_type"] = _int(layer, f"{name}.type")
        row["icmp_code"] = _int(layer, f"{name}.code")
        row["icmp_id"] = _int(layer, _ICMP_ID_FIELD[name])
    else:
        row["sport"] = _int(layer, f"{name}.srcport")
        row["dport"] = _int(layer, f"{name}.dstport")
    header = _HEADER_LEN.get(name, 0)
    if name == "tcp":
        row["tcp_flags"] = _int(layer, "tcp.flags") & 0x1FF
        row["tcp_seq"] = _int(layer, "tcp.seq_raw")
        row["tcp_ack"] = _int(layer, "tcp.ack_raw")
        row["tcp_window"] = _int(layer, "tcp.window_size_value")
        header = _int(layer, "tcp.hdr_len", 20)
    elif name == "dccp":
        header = _int(layer, "dccp.data_offset", 3) * 4
    row["payload_len"] = max(rest - header, 0)
