"""BPF capture filters: compile a filter expression to classic BPF, run it over the
records of a capture file, or attach it to a socket.

The expression is never handed to a shell. It is compiled by libpcap itself through ctypes
(``pcap_open_dead`` + ``pcap_compile``, the same compiler tcpdump uses), or, when libpcap
cannot be loaded, by ``tcpdump -dd`` run with an argument list. Live capture attaches the
program with ``SO_ATTACH_FILTER`` before the socket is bound, so no unfiltered packet
reaches the ring. Reading files, ``PacketFilter`` compiles the program once per link type
and runs it over each raw batch with the ``_bpfvm`` kernel (``run_program`` is its Python
twin), keeping the records it accepts, as ``tcpdump -r FILE EXPRESSION`` does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import shutil
import socket
import struct
import subprocess
from functools import lru_cache

import numpy as np

from portlabel.errors import UsageError

SO_ATTACH_FILTER = 26
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
# capture-file link types whose libpcap DLT differs (pcap_open_dead takes the DLT)
LINKTYPE_TO_DLT = {101: 12, 100: 11, 102: 15, 103: 16, 104: 104}
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


def check_program(program: Program) -> bool:
    """Whether ``program`` is one the VM runs (the ``_bpfvm`` kernel's ``check``): jumps
    inside it, scratch indices below 16, no division by a constant zero, a return last."""
    n = len(program)
    if not 1 <= n <= 4096 or program[-1][0] & 0x07 != 6:
        return False
    for i, (code, jt, jf, k) in enumerate(program):
        cls, left = code & 0x07, n - i - 1
        if cls in (0, 1) and code & 0xE0 == 0x60 and k >= 16:
            return False
        if cls in (2, 3) and k >= 16:
            return False
        if cls == 4 and (code & 0xF0 > 0xA0 or (code & 0xF0 in (0x30, 0x90) and not code & 0x08
                                                  and k == 0)):  # fmt: skip
            return False
        if cls == 5:
            op = code & 0xF0
            if op == 0x00 and k >= left:
                return False
            if op != 0x00 and (op > 0x40 or jt >= left or jf >= left):
                return False
    return True


def run_program(program: Program, packet: bytes, wirelen: int) -> bool:
    """Whether ``program`` keeps ``packet`` (its captured bytes; ``wirelen`` its length on
    the wire): the Python twin of the ``_bpfvm`` kernel, instruction for instruction."""
    a = x = 0
    mem = [0] * 16
    caplen = len(packet)
    pc = 0
    mask = 0xFFFFFFFF
    while True:
        code, jt, jf, k = program[pc]
        cls = code & 0x07
        if cls in (0, 1):  # LD, LDX
            mode, size = code & 0xE0, code & 0x18
            if mode == 0x00:
                value = k
            elif mode == 0x80:
                value = wirelen
            elif mode == 0x60:
                value = mem[k]
            elif cls == 1 and mode == 0xA0:  # MSH: 4 * (low nibble of byte k)
                if k >= caplen:
                    return False
                value = (packet[k] & 0x0F) << 2
            elif cls == 0 and mode in (0x20, 0x40):
                at = k if mode == 0x20 else x + k
                if at > mask:
                    return False
                width = {0x00: 4, 0x08: 2, 0x10: 1}.get(size)
                if width is None or at + width > caplen:
                    return False
                value = int.from_bytes(packet[at : at + width], "big")
            else:
                return False
            if cls == 0:
                a = value
            else:
                x = value
        elif cls == 2:
            mem[k] = a
        elif cls == 3:
            mem[k] = x
        elif cls == 4:  # ALU
            op, v = code & 0xF0, (x if code & 0x08 else k)
            if op in (0x30, 0x90) and v == 0:
                return False
            a = _alu(op, a, v) & mask
        elif cls == 5:  # JMP
            op = code & 0xF0
            if op == 0x00:
                pc += k
            else:
                v = x if code & 0x08 else k
                taken = {0x10: a == v, 0x20: a > v, 0x30: a >= v, 0x40: (a & v) != 0}[op]
                pc += jt if taken else jf
        elif cls == 6:  # RET
            return ((a if code & 0x18 == 0x10 else k) & mask) != 0
        else:  # MISC: TAX or TXA
            if code & 0xF8:
                a = x
            else:
                x = a
        pc += 1


def _alu(op: int, a: int, v: int) -> int:
    if op == 0x00:
        return a + v
    if op == 0x10:
        return a - v
    if op == 0x20:
        return a * v
    if op == 0x30:
        return a // v
    if op == 0x40:
        return a | v
    if op == 0x50:
        return a & v
    if op == 0x60:
        return a << v if v < 32 else 0
    if op == 0x70:
        return a >> v if v < 32 else 0
    if op == 0x80:
        return -a
    if op == 0x90:
        return a % v
    return a ^ v


class PacketFilter:
    """A capture filter expression, applied to the raw batches of capture files.

    ``keep(batch)`` is a boolean mask over the batch's records; each link type met is
    compiled once (a filter that cannot apply to a link type, ``ether host`` on raw IP,
    raises ``UsageError`` naming it, as tcpdump refuses it).
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._programs: dict[int, bytes] = {}
        try:
            from portlabel.capture import _bpfvm
        except ImportError:
            _bpfvm = None
        self._kernel = _bpfvm

    def program(self, linktype: int) -> bytes:
        packed = self._programs.get(linktype)
        if packed is None:
            try:
                insns = compile_filter(self.expression, LINKTYPE_TO_DLT.get(linktype, linktype))
            except UsageError as exc:
                from portlabel.capture.linktypes import linktype_name

                raise UsageError(f"{exc} (link type {linktype_name(linktype)})") from None
            packed = b"".join(BPF_INSN.pack(*insn) for insn in insns)
            self._programs[linktype] = packed
        return packed

    def keep(self, batch) -> np.ndarray:
        n = len(batch)
        keep = np.zeros(n, dtype=np.uint8)
        if not n:
            return keep.astype(bool)
        linktypes = np.unique(batch.linktype)
        for lt in linktypes.tolist():
            rows = np.flatnonzero(batch.linktype == lt) if len(linktypes) > 1 else None
            offset = batch.offset if rows is None else batch.offset[rows]
            caplen = batch.caplen if rows is None else batch.caplen[rows]
            wirelen = batch.wirelen if rows is None else batch.wirelen[rows]
            part = self._run(self.program(lt), batch.buf, offset, caplen, wirelen)
            if rows is None:
                keep = part
            else:
                keep[rows] = part
        return keep.astype(bool)

    def _run(self, packed: bytes, buf, offset, caplen, wirelen) -> np.ndarray:
        out = np.zeros(len(offset), dtype=np.uint8)
        offset = np.ascontiguousarray(offset, dtype=np.int64)
        caplen = np.ascontiguousarray(caplen, dtype=np.uint32)
        wirelen = np.ascontiguousarray(wirelen, dtype=np.uint32)
        if self._kernel is not None:
            self._kernel.filter_records(packed, buf, offset, caplen, wirelen, out)
            return out
        program = [BPF_INSN.unpack_from(packed, i) for i in range(0, len(packed), 8)]
        if not check_program(program):
            raise ValueError("filter_records: not a valid classic BPF program")
        data = memoryview(buf)
        for i, (start, size, length) in enumerate(
            zip(offset.tolist(), caplen.tolist(), wirelen.tolist(), strict=True)
        ):
            out[i] = run_program(program, bytes(data[start : start + size]), length)
        return out
