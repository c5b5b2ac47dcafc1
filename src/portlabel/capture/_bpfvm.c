/* Classic BPF, run over a batch of records: which packets a capture filter keeps.
 *
 * Theory of operation: the program is the one libpcap compiles for tcpdump (see bpf.py),
 * checked once by ``check`` as the Linux kernel checks a socket filter (every jump lands
 * inside the program, scratch memory indices are below 16, a division by a constant is
 * not by zero, the last instruction returns), then run once per record over that
 * record's captured bytes. A load past the captured bytes rejects the packet, as in
 * libpcap's interpreter; ``len`` is the wire length. The result is one byte per record:
 * 1 kept, 0 not. bpf.py's ``run_program`` is the Python twin.
 */
#include "kernel.h"
#include <stdint.h>

#define BPF_MEMWORDS 16
/* instruction classes and fields (the classic BPF encoding) */
#define CLASS(c) ((c) & 0x07)
#define SIZE(c) ((c) & 0x18)
#define MODE(c) ((c) & 0xe0)
#define OP(c) ((c) & 0xf0)
#define SRC(c) ((c) & 0x08)
enum { LD = 0, LDX = 1, ST = 2, STX = 3, ALU = 4, JMP = 5, RET = 6, MISC = 7 };
enum { W = 0x00, H = 0x08, B = 0x10 };
enum { IMM = 0x00, ABS = 0x20, IND = 0x40, MEM = 0x60, LEN = 0x80, MSH = 0xa0 };
enum { ADD = 0x00, SUB = 0x10, MUL = 0x20, DIV = 0x30, OR = 0x40, AND = 0x50, LSH = 0x60,
       RSH = 0x70, NEG = 0x80, MOD = 0x90, XOR = 0xa0 };
enum { JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40 };
enum { K = 0x00, X = 0x08, A = 0x10 };

typedef struct {
    uint16_t code;
    uint8_t jt, jf;
    uint32_t k;
} insn;

static int check(const insn *p, Py_ssize_t n)
{
    if (n < 1 || n > 4096 || CLASS(p[n - 1].code) != RET)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint16_t c = p[i].code;
        switch (CLASS(c)) {
        case LD:
        case LDX:
            if (MODE(c) == MEM && p[i].k >= BPF_MEMWORDS)
                return 0;
            break;
        case ST:
        case STX:
            if (p[i].k >= BPF_MEMWORDS)
                return 0;
            break;
        case ALU:
            if ((OP(c) == DIV || OP(c) == MOD) && SRC(c) == K && p[i].k == 0)
                return 0;
            if (OP(c) > XOR)
                return 0;
            break;
        case JMP:
            if (OP(c) == JA) {
                if ((uint64_t)p[i].k >= (uint64_t)(n - i - 1))
                    return 0;
            } else if (OP(c) > JSET || p[i].jt >= n - i - 1 || p[i].jf >= n - i - 1) {
                return 0;
            }
            break;
        default:
            break;
        }
    }
    return 1;
}

/* The program's verdict on one packet: nonzero keeps it. */
static uint32_t run(const insn *p, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen)
{
    uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
    for (const insn *pc = p;; pc++) {
        uint16_t c = pc->code;
        uint32_t k = pc->k, at;
        switch (CLASS(c)) {
        case LD:
            switch (MODE(c)) {
            case IMM: a = k; continue;
            case LEN: a = wirelen; continue;
            case MEM: a = mem[k]; continue;
            case ABS: at = k; break;
            case IND:
                at = x + k;
                if (at < x) /* wrapped: past any packet */
                    return 0;
                break;
            default: return 0;
            }
            switch (SIZE(c)) {
            case W:
                if (at > caplen || caplen - at < 4)
                    return 0;
                a = ((uint32_t)pkt[at] << 24) | ((uint32_t)pkt[at + 1] << 16) |
                    ((uint32_t)pkt[at + 2] << 8) | pkt[at + 3];
                continue;
            case H:
                if (at > caplen || caplen - at < 2)
                    return 0;
                a = ((uint32_t)pkt[at] << 8) | pkt[at + 1];
                continue;
            case B:
                if (at >= caplen)
                    return 0;
                a = pkt[at];
                continue;
            default: return 0;
            }
        case LDX:
            switch (MODE(c)) {
            case IMM: x = k; continue;
            case LEN: x = wirelen; continue;
            case MEM: x = mem[k]; continue;
            case MSH:
                if (k >= caplen)
                    return 0;
                x = (uint32_t)(pkt[k] & 0x0f) << 2;
                continue;
            default: return 0;
            }
        case ST: mem[k] = a; continue;
        case STX: mem[k] = x; continue;
        case ALU: {
            uint32_t v = SRC(c) == X ? x : k;
            switch (OP(c)) {
            case ADD: a += v; break;
            case SUB: a -= v; break;
            case MUL: a *= v; break;
            case DIV:
                if (v == 0)
                    return 0;
                a /= v;
                break;
            case MOD:
                if (v == 0)
                    return 0;
                a %= v;
                break;
            case OR: a |= v; break;
            case AND: a &= v; break;
            case LSH: a = v < 32 ? a << v : 0; break;
            case RSH: a = v < 32 ? a >> v : 0; break;
            case NEG: a = (uint32_t)(-(int64_t)a); break;
            case XOR: a ^= v; break;
            default: return 0;
            }
            continue;
        }
        case JMP: {
            if (OP(c) == JA) {
                pc += k;
                continue;
            }
            uint32_t v = SRC(c) == X ? x : k;
            int taken = OP(c) == JEQ ? a == v : OP(c) == JGT ? a > v : OP(c) == JGE ? a >= v
                                                                                  : (a & v) != 0;
            pc += taken ? pc->jt : pc->jf;
            continue;
        }
        case RET: return (pc->code & 0x18) == A ? a : k;
        case MISC:
            if (c & 0xf8) /* TXA */
                a = x;
            else /* TAX */
                x = a;
            continue;
        }
    }
}

static PyObject *filter_records(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer v[6]; /* program, buf, offset, caplen, wirelen, keep */
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*w*:filter_records", &v[0], &v[1], &v[2], &v[3], &v[4],
                          &v[5]))
        return NULL;
    Py_ssize_t n = v[2].len / 8, ninsn = v[0].len / 8;
    int status = 0;
    if (v[0].len % 8 || v[3].len != 4 * n || v[4].len != 4 * n || v[5].len != n) {
        status = -1;
    } else if (!check(v[0].buf, ninsn)) {
        status = -2;
    } else {
        const insn *prog = v[0].buf;
        const uint8_t *data = v[1].buf;
        const int64_t *offset = v[2].buf;
        const uint32_t *caplen = v[3].buf, *wirelen = v[4].buf;
        uint8_t *keep = v[5].buf;
        Py_ssize_t size = v[1].len;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            if (offset[i] < 0 || offset[i] > size || caplen[i] > size - offset[i]) {
                status = -3;
                break;
            }
            keep[i] = run(prog, data + offset[i], caplen[i], wirelen[i]) != 0;
        }
        Py_END_ALLOW_THREADS
    }
    release_buffers(v, 6);
    if (status == -2) {
        PyErr_SetString(PyExc_ValueError, "filter_records: not a valid classic BPF program");
        return NULL;
    }
    return none_or_error(status, "filter_records: offset/caplen/wirelen/keep must have one "
                                 "entry per record (int64, uint32, uint32, uint8), records "
                                 "inside buf, the program whole 8-byte instructions");
}

static PyMethodDef methods[] = {
    {"filter_records", filter_records, METH_VARARGS,
     "filter_records(program, buf, offset, caplen, wirelen, keep) -> None\n\nprogram: packed "
     "struct sock_filter instructions (native order); keep: uint8 array set to 1 for each "
     "record the program accepts."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_bpfvm, "Classic BPF over a batch of records, compiled (see bpf.py).", methods)
