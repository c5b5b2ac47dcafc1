"""BPF capture filters: compile a filter expression to classic BPF and attach it to a socket.

The expression is never handed to a shell. It is compiled by libpcap itself through ctypes
(``pcap_open_dead`` + ``pcap_compile``, the same compiler tcpdump uses), or, when libpcap
cannot be loaded, by ``tcpdump -dd`` run with an argument list. The program is attached with
``SO_ATTACH_FILTER`` before the socket is bound, so no unfiltered packet reaches the ring.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import socket
import struct
import subprocess
from functools import lru_cache

from portlabel.errors import UsageError

SO_ATTACH_FILTER = 26
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
BPF_INSN = struct.Struct("=HBBI")  # code, jt, jf, k: one struct sock_filter
SOCK_FPROG = struct.Struct("=HxxxxxxQ")  # struct sock_fprog on 64-bit: len, pad, pointer

Program = list[tuple[int, int, int, int]]


class _BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


@lru_cache(maxsize=1)
def _libpcap() -> ctypes.CDLL | None:
    for name in (ctypes.util.find_library("pcap"), "libpcap.so.1", "libpcap.so.0.8"):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _compile_libpcap(lib: ctypes.CDLL, expression: str, linktype: int, snaplen: int) -> Program:
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise UsageError(f"cannot compile BPF filter {expression!r}: pcap_open_dead failed")
    prog = _BpfProgram()
    try:
        rc = lib.pcap_compile(
            handle, ctypes.byref(prog), expression.encode(), 1, PCAP_NETMASK_UNKNOWN
        )
        if rc != 0:
            why = lib.pcap_geterr(handle).decode(errors="replace")
            raise UsageError(f"bad BPF filter {expression!r}: {why}")
        insns = [prog.bf_insns[i] for i in range(prog.bf_len)]
        program = [(i.code, i.jt, i.jf, i.k) for i in insns]
        lib.pcap_freecode(ctypes.byref(prog))
        return program
    finally:
        lib.pcap_close(handle)


def _compile_tcpdump(expression: str, linktype: int) -> Program:
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise UsageError("cannot compile a BPF filter: neither libpcap nor tcpdump is available")
    # -y picks the link type by DLT name; EN10MB is the only one the native backend opens
    # without libpcap, the others fall back to the interface's own.
    argv = [tcpdump, "-dd", "-y", "EN10MB", expression] if linktype == 1 else None
    if argv is None:
        raise UsageError("cannot compile a BPF filter for this link type without libpcap")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
        raise UsageError(f"bad BPF filter {expression!r}: {why}")
    return parse_dd(done.stdout)


def parse_dd(text: str) -> Program:
    """``tcpdump -dd`` output (``{ 0x28, 0, 0, 0x0000000c },`` per line) as tuples."""
    program = []
    for line in text.splitlines():
        line = line.strip().strip(",").strip("{}").strip()
        if line:
            code, jt, jf, k = (int(x.strip(), 0) for x in line.split(","))
            program.append((code, jt, jf, k))
    return program


def compile_filter(expression: str, linktype: int = 1, snaplen: int = 262144) -> Program:
    """The classic BPF program for ``expression`` on ``linktype``; UsageError if invalid."""
    lib = _libpcap()
    if lib is not None:
        return _compile_libpcap(lib, expression, linktype, snaplen)
    return _compile_tcpdump(expression, linktype)


def attach_filter(sock: socket.socket, program: Program) -> None:
    """Attach ``program`` to ``sock`` (a packet socket) with SO_ATTACH_FILTER."""
    blob = b"".join(BPF_INSN.pack(*insn) for insn in program)
    buf = ctypes.create_string_buffer(blob, len(blob))
    fprog = SOCK_FPROG.pack(len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
