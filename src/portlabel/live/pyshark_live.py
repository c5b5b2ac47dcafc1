"""The pyshark backend: pyshark's ``LiveCapture`` (dumpcap piped into tshark, JSON out).

pyshark runs its own asyncio loop, so it lives on a thread of its own with a fresh event
loop; each packet's raw bytes (``include_raw``) go to a ``FrameQueue``. The capture filter
is handed to dumpcap as an argument by pyshark (never through a shell). Stopping sends
SIGINT to dumpcap, which ends the capture and closes the pipe, so tshark finishes the
packets already captured before the thread ends. dumpcap's counters go to pyshark's
logger, not to us: kernel counters are reported as unknown.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import threading
import time

from portlabel.capture.pyshark_processes import ensure_child_watcher, with_exact_exits
from portlabel.errors import CaptureError
from portlabel.live.afpacket import interface_dlt
from portlabel.live.queued import FrameQueue
from portlabel.live.stats import KernelCounters

STOP_WAIT = 30.0  # seconds to let tshark finish the packets it already has


class PysharkSource:
    name = "pyshark"

    def __init__(self, ifaces: list[str], bpf: str | None) -> None:
        self.ifaces = list(ifaces)
        self.queue = FrameQueue([interface_dlt(i) for i in ifaces])
        self._index = {name: i for i, name in enumerate(ifaces)}
        self._bpf = bpf
        self._capture = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pyshark", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        self._wait_capturing(STOP_WAIT)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ensure_child_watcher()
        try:
            self._capture = _live_capture_class()(
                interface=self.ifaces, bpf_filter=self._bpf, use_json=True,
                include_raw=True, eventloop=loop,
            )  # fmt: skip
            self._ready.set()
            self._capture.apply_on_packets(self._on_packet)
        except BaseException as exc:  # reported by read(); the thread must not die silently
            self.error = exc
        finally:
            self._ready.set()
            self.queue.close()

    def _on_packet(self, pkt) -> None:
        frame = pkt.get_raw_packet()
        ts_ns = int(round(float(pkt.sniff_timestamp) * 1e9))
        iface = 0
        if len(self.ifaces) > 1:
            name = getattr(getattr(pkt, "frame_info", None), "interface_name", None)
            iface = self._index.get(str(name), 0)
        self.queue.put(frame, ts_ns, int(pkt.length), iface)

    def read(self, timeout: float):
        if self.error is not None and not self._thread.is_alive():
            error, self.error = self.error, None
            raise CaptureError(",".join(self.ifaces), f"pyshark capture failed: {error}")
        return self.queue.take(timeout)

    def counters(self) -> list[KernelCounters]:
        return [KernelCounters(None, None) for _ in self.ifaces]

    def _wait_capturing(self, timeout: float) -> None:
        """Return once dumpcap holds a bound packet socket (so nothing sent after is
        missed), or the thread died, or ``timeout`` passed."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and self._thread.is_alive():
            if any(_has_packet_socket(pid) for pid in self._dumpcaps()):
                return
            time.sleep(0.05)

    def _dumpcaps(self) -> list[int]:
        out = []
        for pid in self._processes():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == "dumpcap":
                        out.append(pid)
            except OSError:
                pass
        return out

    def _processes(self) -> list[int]:
        procs = getattr(self._capture, "_running_processes", None) or ()
        return [p.pid for p in list(procs) if getattr(p, "pid", None)]

    def stop(self) -> None:
        """End the capture; return once tshark has handed over every captured packet."""
        if self._capture is not None:
            self._capture._portlabel_stopping = True  # their exits are awaited, not forced
        for pid in self._dumpcaps():
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass
        self._thread.join(STOP_WAIT)

    def close(self) -> None:
        if self._thread.is_alive():
            self.stop()
        for pid in self._processes():
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass


@functools.cache  # built once: pyshark's classes and ours do not change
def _live_capture_class():
    """pyshark's ``LiveCapture``, with the pipe from dumpcap to tshark owned by them alone.

    pyshark keeps both ends of that pipe open in this process, so when dumpcap ends
    (SIGINT), tshark never sees the end of its input and the capture never finishes: a
    ``--duration 2`` run waited out both 30 s stop timeouts. Here each end is closed in
    this process as soon as the program that reads or writes it has been started. Exit
    statuses are kept exact as for files (``capture.pyshark_processes``).
    """
    import pyshark
    from pyshark.capture.capture import Capture
    from pyshark.tshark.tshark import get_process_path

    class Live(with_exact_exits(pyshark.LiveCapture)):
        async def _get_tshark_process(self, packet_count=None, stdin=None):
            read_end, write_end = os.pipe()
            try:
                argv = [get_process_path(process_name="dumpcap", tshark_path=self.tshark_path)]
                argv += self._get_dumpcap_parameters()
                dumpcap = await asyncio.create_subprocess_exec(
                    *argv, stdout=write_end, stderr=subprocess.PIPE
                )
            finally:
                os.close(write_end)  # dumpcap has its copy: its exit is tshark's EOF
            self._create_stderr_handling_task(dumpcap.stderr)
            self._created_new_process(argv, dumpcap, process_name="Dumpcap")
            try:
                return await Capture._get_tshark_process(
                    self, packet_count=packet_count, stdin=read_end
                )
            finally:
                os.close(read_end)

    return Live


def _has_packet_socket(pid: int) -> bool:
    """True when ``pid`` has an open AF_PACKET socket (listed in its /proc net/packet)."""
    try:
        with open(f"/proc/{pid}/net/packet") as f:
            inodes = {line.split()[-1] for line in f.read().splitlines()[1:] if line.strip()}
        fds = os.listdir(f"/proc/{pid}/fd")
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)
