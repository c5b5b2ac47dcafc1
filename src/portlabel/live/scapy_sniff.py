"""The scapy backend: scapy's ``AsyncSniffer`` on one listening socket per interface.

The baseline the native backend is measured against: scapy builds a Python object per
packet on its sniffer thread; ``prn`` hands the frame bytes to a ``FrameQueue``. Sockets
are opened here (without scapy's own filter) so that the filter compiled by ``bpf`` is
attached before anything is read, and so their kernel counters can be read.
"""

from __future__ import annotations

import logging
import socket
import struct

from portlabel.capture.bpf import attach_filter
from portlabel.errors import CaptureError
from portlabel.live.afpacket import PACKET_STATISTICS, SOL_PACKET, interface_dlt
from portlabel.live.queued import FrameQueue
from portlabel.live.stats import KernelCounters

TPACKET_STATS = struct.Struct("=II")  # packets (incl. drops), drops
RCVBUF = 64 << 20


class ScapySource:
    name = "scapy"

    def __init__(self, ifaces: list[str], program_for, promisc: bool = True) -> None:
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        from scapy.arch.linux import L2ListenSocket
        from scapy.sendrecv import AsyncSniffer

        self.ifaces = list(ifaces)
        self.counters_ = [KernelCounters() for _ in ifaces]
        dlts = [interface_dlt(i) for i in ifaces]
        self.queue = FrameQueue(dlts)
        self.sockets = []
        try:
            for iface, dlt in zip(ifaces, dlts, strict=True):
                try:
                    sock = L2ListenSocket(iface=iface, promisc=promisc, nofilter=1)
                except PermissionError:
                    raise CaptureError(iface, "capture not permitted (needs root)") from None
                self.sockets.append(sock)
                sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
                program = program_for(dlt)
                if program:
                    attach_filter(sock.ins, program)
                    _discard_queued(sock.ins)
        except BaseException:
            self.close()
            raise
        labels = {sock: str(i) for i, sock in enumerate(self.sockets)}
        self.sniffer = AsyncSniffer(opened_socket=labels, prn=self._on_packet, store=False)
        self.sniffer.start()

    def _on_packet(self, pkt) -> None:
        frame = bytes(pkt)
        ts_ns = int(round(float(pkt.time) * 1e9))
        self.queue.put(frame, ts_ns, pkt.wirelen or len(frame), int(pkt.sniffed_on or 0))

    def read(self, timeout: float):
        return self.queue.take(timeout)

    def counters(self) -> list[KernelCounters]:
        for sock, counters in zip(self.sockets, self.counters_, strict=False):
            if sock.ins.fileno() >= 0:
                raw = sock.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, TPACKET_STATS.size)
                counters.add(*TPACKET_STATS.unpack(raw))
        return self.counters_

    def stop(self) -> None:
        """Stop the sniffer thread, then queue what is still in the sockets' buffers."""
        sniffer = getattr(self, "sniffer", None)
        if sniffer is not None and sniffer.running:
            sniffer.stop(join=True)
        for i, sock in enumerate(self.sockets):
            sock.ins.setblocking(False)
            while True:
                try:
                    _cls, frame, ts = sock.recv_raw()
                except (BlockingIOError, InterruptedError):
                    break
                if frame is None:
                    break
                self.queue.put(frame, int(round(float(ts) * 1e9)), len(frame), i)

    def close(self) -> None:
        self.stop()
        for sock in self.sockets:
            sock.close()
        self.sockets = []


def _discard_queued(sock: socket.socket) -> None:
    """Drop what arrived between bind and the filter: it was never filtered."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65536)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
