/* TCP sequence tracking and the endpoint state machine, compiled, without the GIL.
 *
 * Theory of operation: tcp_track.track's rules applied to a batch's rows in order, one row
 * at a time, so what the vectorised version works out with first-index tables and event
 * rounds is here plain per-segment state:
 *  - a direction's sequence base is set by its first packet (the SYN's sequence number,
 *    else one before the first octet) and never changes;
 *  - seq_end is the highest sequence end sent (not counting RST packets), relative to the
 *    base; acked the highest ack received, counted once the acked side has a base;
 *  - every packet's event moves the segment's joint state through TRANSITIONS.
 * Rows that are not TCP, or are later fragments, are skipped. The tables (events and
 * transitions) are tcp_state's, passed in.
 */
#include "kernel.h"
#include <stdint.h>

enum { FIN = 1, SYN = 2, RST = 4, ACK = 16, EVENT_FLAGS = FIN | SYN | RST | ACK };

/* x - base as a signed distance in 32-bit sequence space */
static inline int64_t rel(int64_t x, uint32_t base)
{
    int64_t d = (x - (int64_t)base) & 0xFFFFFFFFLL;
    return d >= (1LL << 31) ? d - (1LL << 32) : d;
}

typedef struct {
    const uint8_t *proto, *frag, *dir;
    const int64_t *seg, *payload;
    const uint16_t *flags;
    const uint32_t *seq, *ack;
} RowsIn;

typedef struct {
    uint32_t *base;   /* [seg][dir] */
    uint8_t *has_base;
    int64_t *seq_end, *acked;
    uint8_t *joint;   /* [seg] */
    const uint8_t *orig_side;
} SegState;

/* 0 on success, -1 on a segment or table index out of range */
static int track(const RowsIn *r, Py_ssize_t m, SegState *st, Py_ssize_t n_seg,
                 const uint8_t *events, Py_ssize_t n_events_in, const uint8_t *transitions,
                 Py_ssize_t n_joint, Py_ssize_t n_events)
{
    for (Py_ssize_t i = 0; i < m; i++) {
        if (r->proto[i] != 6 || r->frag[i])
            continue;
        int64_t s = r->seg[i];
        if (s < 0 || s >= n_seg)
            return -1;
        int d = r->dir[i] ? 1 : 0;
        int64_t sd = 2 * s + d, od = 2 * s + (1 - d);
        uint32_t f = r->flags[i];
        int syn = (f & SYN) != 0, fin = (f & FIN) != 0, rst = (f & RST) != 0;
        int64_t plen = r->payload[i];
        if (!st->has_base[sd]) {
            st->base[sd] = r->seq[i] - (syn ? 0u : 1u);
            st->has_base[sd] = 1;
        }
        if (!rst) {
            int64_t end = rel((int64_t)r->seq[i] + plen + syn + fin, st->base[sd]);
            if (end > st->seq_end[sd])
                st->seq_end[sd] = end;
        }
        if ((f & ACK) && st->has_base[od]) {
            int64_t acked = rel(r->ack[i], st->base[od]);
            if (acked > st->acked[od])
                st->acked[od] = acked;
        }
        Py_ssize_t e = (Py_ssize_t)(f & EVENT_FLAGS) * 4 + (plen > 0) * 2 + (d != st->orig_side[s]);
        if (e >= n_events_in)
            return -1;
        uint8_t event = events[e], joint = st->joint[s];
        if (joint >= n_joint || event >= n_events)
            return -1;
        st->joint[s] = transitions[joint * n_events + event];
    }
    return 0;
}

static PyObject *track_tcp(PyObject *self, PyObject *args)
{
    (void)self;
    /* rows: proto u8, frag bool, dir u8, seg i64, payload i64, flags u16, seq u32, ack u32;
     * segments: base u32[2], has_base bool[2], seq_end i64[2], acked i64[2], joint u8
     * (written), orig_side u8; tables: events u8, transitions u8[states][n_events] */
    enum { N_BUF = 16 };
    Py_buffer b[N_BUF];
    Py_ssize_t n_events;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*w*w*w*w*w*y*y*y*n:track_tcp", &b[0], &b[1],
                          &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10],
                          &b[11], &b[12], &b[13], &b[14], &b[15], &n_events))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t m = b[0].len, n_seg = b[12].len;
    if (b[1].len != m || b[2].len != m || b[3].len != 8 * m || b[4].len != 8 * m ||
        b[5].len != 2 * m || b[6].len != 4 * m || b[7].len != 4 * m || b[8].len != 8 * n_seg ||
        b[9].len != 2 * n_seg || b[10].len != 16 * n_seg || b[11].len != 16 * n_seg ||
        b[13].len != n_seg || n_events <= 0 || b[15].len % n_events) {
        PyErr_SetString(PyExc_ValueError, "track_tcp: arrays of the wrong sizes");
        goto done;
    }
    RowsIn r = {
        b[0].buf, b[1].buf, b[2].buf, b[3].buf, b[4].buf, b[5].buf, b[6].buf, b[7].buf,
    };
    SegState st = {b[8].buf, b[9].buf, b[10].buf, b[11].buf, b[12].buf, b[13].buf};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = track(&r, m, &st, n_seg, b[14].buf, b[14].len, b[15].buf, b[15].len / n_events,
                   n_events);
    Py_END_ALLOW_THREADS
    result = none_or_error(status, "track_tcp: a segment, event or state out of range");
done:
    release_buffers(b, N_BUF);
    return result;
}

static PyMethodDef methods[] = {
    {"track_tcp", track_tcp, METH_VARARGS,
     "track_tcp(proto, frag, dir, seg, payload, flags, seq, ack,\n"
     "          base, has_base, seq_end, acked, joint, orig_side, events, transitions,\n"
     "          n_events)\n\n"
     "Updates base, has_base, seq_end, acked and joint in place (see tcp_track.py)."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_tcptrack,
                 "TCP sequence tracking and state machine, compiled (see tcp_track.py).",
                 methods)
