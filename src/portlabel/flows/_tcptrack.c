/* TCP sequence tracking and the endpoint state machine, compiled, without the GIL.
 *
 * Theory of operation: tcp_track.track's rules applied to a batch's rows in order, one row
 * at a time, so what the vectorised version works out with first-index tables and event
 * rounds is here plain per-segment state:
 *  - a direction's sequence base is set by its first packet (the SYN's sequence number,
 *    else one before the first octet) and never changes;
 *  - seq_end is the highest sequence end sent (not counting RST packets), relative to the
 *    base; acked the highest ack received, counted once the acked side has a base;
 *  - every packet's event moves the segment's joint state through TRANSITIONS;
 *  - each row is marked (after its state change) as Zeek's endpoint would see it: a
 *    retransmission (payload that does not reach past the highest sequence end sent, by
 *    an endpoint not reset; a first SYN's own end counts as sent) and a zero window
 *    (advertised by an endpoint not reset, to a peer not closed, on a packet without RST).
 *    Sequence ends are compared *unwrapped*: each packet's end is the previous packet's
 *    (of that direction) plus their signed 32-bit distance (seq_prev, seq_u), so a
 *    transfer past 2 GiB or across a wrap keeps moving forward; seq_top is the highest;
 *  - a content gap (marked on the ACK): the peer acknowledges sequence space beyond
 *    what this direction's packets carried contiguously (deliv: the end of the data seen
 *    without a hole, from the direction's first packet; hole_end: where the data seen
 *    beyond a hole starts); the acked space then counts as delivered, and with it what
 *    was seen beyond the hole (up to seq_top), as when a retransmission fills the hole.
 * Rows that are not TCP, or are later fragments, are skipped. The tables (events and
 * transitions) are tcp_state's, passed in; N_STATES is theirs too.
 */
#include "kernel.h"
#include <stdint.h>

enum { FIN = 1, SYN = 2, RST = 4, ACK = 16, EVENT_FLAGS = FIN | SYN | RST | ACK };
/* tcp_state.Endpoint values and N_STATES; tcp_track.MARK_* bits */
enum { CLOSED = 5, RESET = 6, N_STATES = 7, MARK_RXMIT = 1, MARK_ZERO_WINDOW = 2,
       MARK_GAP = 4 };
#define NOT_SENT (-(1LL << 40)) /* tcp_track._NOT_SENT */

/* x - base as a signed distance in 32-bit sequence space */
static inline int64_t rel(int64_t x, uint32_t base)
{
    int64_t d = (x - (int64_t)base) & 0xFFFFFFFFLL;
    return d >= (1LL << 31) ? d - (1LL << 32) : d;
}

typedef struct {
    const uint8_t *proto, *frag, *dir;
    const int64_t *seg, *payload;
    const uint16_t *flags, *window;
    const uint32_t *seq, *ack;
    uint8_t *marks; /* written: MARK_* bits per row */
} RowsIn;

typedef struct {
    uint32_t *base;   /* [seg][dir] */
    uint8_t *has_base;
    int64_t *seq_end, *acked;
    uint32_t *seq_prev; /* [seg][dir] the last packet's sequence end */
    int64_t *seq_u, *seq_top; /* [seg][dir] its unwrapped end; the highest sent (not RST) */
    int64_t *deliv; /* [seg][dir] the end of the data seen without a hole (unwrapped) */
    int64_t *hole_end; /* [seg][dir] where data seen beyond deliv starts (NOT_SENT: none) */
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
        int first = !st->has_base[sd];
        if (first) {
            st->base[sd] = r->seq[i] - (syn ? 0u : 1u);
            st->has_base[sd] = 1;
        }
        uint32_t end_abs = r->seq[i] + (uint32_t)plen + (uint32_t)syn + (uint32_t)fin;
        int64_t end = rel((int64_t)r->seq[i] + plen + syn + fin, st->base[sd]);
        if (!rst && end > st->seq_end[sd])
            st->seq_end[sd] = end;
        /* the unwrapped end, and the highest sent before it (a first SYN sent its own) */
        int64_t u = first ? end : st->seq_u[sd] + (int32_t)(end_abs - st->seq_prev[sd]);
        int64_t sent = first ? (syn ? u : NOT_SENT) : st->seq_top[sd];
        st->seq_prev[sd] = end_abs;
        st->seq_u[sd] = u;
        if (!rst && (first || u > st->seq_top[sd]))
            st->seq_top[sd] = u;
        if (!rst) {
            int64_t data_start = u - plen - syn - fin;
            if (first) {
                st->deliv[sd] = u;
                st->hole_end[sd] = NOT_SENT;
            } else if (data_start <= st->deliv[sd]) {
                if (u > st->deliv[sd])
                    st->deliv[sd] = u;
                if (st->hole_end[sd] != NOT_SENT && st->deliv[sd] >= st->hole_end[sd]) {
                    st->deliv[sd] = st->seq_top[sd]; /* the hole is filled */
                    st->hole_end[sd] = NOT_SENT;
                }
            } else if (st->hole_end[sd] == NOT_SENT || data_start < st->hole_end[sd]) {
                st->hole_end[sd] = data_start;
            }
        }
        int gap = 0;
        if ((f & ACK) && !rst && st->has_base[od]) {
            int64_t acked_u = st->seq_u[od] + (int32_t)(r->ack[i] - st->seq_prev[od]);
            if (acked_u > st->deliv[od]) {
                gap = 1;
                st->deliv[od] = acked_u > st->seq_top[od] ? acked_u : st->seq_top[od];
                st->hole_end[od] = NOT_SENT;
            }
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
        joint = st->joint[s] = transitions[joint * n_events + event];
        int from_orig = d == st->orig_side[s];
        int own = from_orig ? joint / N_STATES : joint % N_STATES;
        int peer = from_orig ? joint % N_STATES : joint / N_STATES;
        uint8_t mark = 0;
        if (plen > 0 && own != RESET && u <= sent)
            mark |= MARK_RXMIT;
        if (r->window[i] == 0 && !rst && own != RESET && peer != CLOSED)
            mark |= MARK_ZERO_WINDOW;
        if (gap)
            mark |= MARK_GAP;
        r->marks[i] = mark;
    }
    return 0;
}

static PyObject *track_tcp(PyObject *self, PyObject *args)
{
    (void)self;
    /* rows: proto u8, frag bool, dir u8, seg i64, payload i64, flags u16, seq u32, ack u32,
     * window u16, marks u8 (written); segments: base u32[2], has_base bool[2], seq_end
     * i64[2], acked i64[2], joint u8 (written), orig_side u8, seq_prev u32[2], seq_u
     * i64[2], seq_top i64[2], deliv i64[2], hole_end i64[2]; tables: events u8,
     * transitions u8[states][n_events] */
    enum { N_BUF = 23 };
    Py_buffer b[N_BUF];
    Py_ssize_t n_events;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*w*w*w*w*w*w*y*w*w*w*w*w*y*y*n:track_tcp",
                          &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8],
                          &b[9], &b[10], &b[11], &b[12], &b[13], &b[14], &b[15], &b[16],
                          &b[17], &b[18], &b[19], &b[20], &b[21], &b[22], &n_events))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t m = b[0].len, n_seg = b[14].len;
    if (b[1].len != m || b[2].len != m || b[3].len != 8 * m || b[4].len != 8 * m ||
        b[5].len != 2 * m || b[6].len != 4 * m || b[7].len != 4 * m || b[8].len != 2 * m ||
        b[9].len != m || b[10].len != 8 * n_seg || b[11].len != 2 * n_seg ||
        b[12].len != 16 * n_seg || b[13].len != 16 * n_seg || b[15].len != n_seg ||
        b[16].len != 8 * n_seg || b[17].len != 16 * n_seg || b[18].len != 16 * n_seg ||
        b[19].len != 16 * n_seg || b[20].len != 16 * n_seg || n_events <= 0 ||
        b[22].len % n_events || b[22].len / n_events > N_STATES * N_STATES) {
        PyErr_SetString(PyExc_ValueError, "track_tcp: arrays of the wrong sizes");
        goto done;
    }
    RowsIn r = {
        b[0].buf, b[1].buf, b[2].buf, b[3].buf, b[4].buf, b[5].buf, b[8].buf, b[6].buf,
        b[7].buf, b[9].buf,
    };
    SegState st = {b[10].buf, b[11].buf, b[12].buf, b[13].buf, b[16].buf, b[17].buf,
                   b[18].buf, b[19].buf, b[20].buf, b[14].buf, b[15].buf};
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = track(&r, m, &st, n_seg, b[21].buf, b[21].len, b[22].buf, b[22].len / n_events,
                   n_events);
    Py_END_ALLOW_THREADS
    result = none_or_error(status, "track_tcp: a segment, event or state out of range");
done:
    release_buffers(b, N_BUF);
    return result;
}

static PyMethodDef methods[] = {
    {"track_tcp", track_tcp, METH_VARARGS,
     "track_tcp(proto, frag, dir, seg, payload, flags, seq, ack, window, marks,\n"
     "          base, has_base, seq_end, acked, joint, orig_side, seq_prev, seq_u,\n"
     "          seq_top, deliv, hole_end, events, transitions,\n"
     "          n_events)\n\n"
     "Updates base, has_base, seq_end, acked and joint in place and writes each row's\n"
     "marks (see tcp_track.py)."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_tcptrack,
                 "TCP sequence tracking and state machine, compiled (see tcp_track.py).",
                 methods)
