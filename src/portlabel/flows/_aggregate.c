/* Per-segment sums of a batch's rows, compiled, without the GIL (segments.aggregate).
 *
 * Theory of operation: rows come in segment order (segment numbers never decrease), so
 * one pass adds each row into its segment's record: packets, IP bytes, payload bytes and
 * FINs per direction, the sender MAC of each direction's first packet, the first and last
 * timestamps, the IP version of the first packet, and the capture position of the first
 * packet of each history letter. The records are written in place: the caller passes the
 * structured array (already holding its fill values) and where each field lies in an
 * element (records.RECORD_DTYPE's offsets), so this file restates no layout.
 */
#include "kernel.h"
#include <stdint.h>
#include <string.h>

enum { F_PKTS, F_IP_BYTES, F_PAYLOAD, F_FINS, F_MAC, F_FIRST_TS, F_LAST_TS, F_IP_VERSION,
       F_FIRST_POS, N_FIELDS };

#define FIN 1
#define NO_POS INT64_MAX /* records.NO_POS: a letter not seen yet */

static inline int64_t *i64(uint8_t *rec, int64_t off) { return (int64_t *)(rec + off); }

static int aggregate(const int64_t *seg, const uint8_t *dir, const int64_t *ip_len,
                     const int64_t *payload, const int64_t *ts, const uint64_t *mac,
                     const uint16_t *flags, const uint8_t *ip_version, const int64_t *pos,
                     const int8_t *kind, Py_ssize_t m, uint8_t *records, Py_ssize_t n_seg,
                     Py_ssize_t itemsize, const int64_t *off, Py_ssize_t n_letters)
{
    int64_t last = -1;
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t s = seg[i];
        if (s < 0 || s >= n_seg || s < last)
            return -1;
        uint8_t *r = records + s * itemsize;
        int d = dir[i] ? 1 : 0;
        if (s != last) { /* the segment's first row */
            i64(r, off[F_FIRST_TS])[0] = ts[i];
            r[off[F_IP_VERSION]] = ip_version[i];
            last = s;
        }
        i64(r, off[F_LAST_TS])[0] = ts[i];
        int64_t *pkts = i64(r, off[F_PKTS]);
        if (pkts[d]++ == 0) /* the direction's first packet */
            ((uint64_t *)(r + off[F_MAC]))[d] = mac[i];
        i64(r, off[F_IP_BYTES])[d] += ip_len[i];
        i64(r, off[F_PAYLOAD])[d] += payload[i];
        i64(r, off[F_FINS])[d] += (flags[i] & FIN) != 0;
        if (kind[i] >= 0) {
            Py_ssize_t letter = d * (n_letters / 2) + kind[i];
            if (letter >= n_letters)
                return -1;
            int64_t *first = i64(r, off[F_FIRST_POS]) + letter;
            if (*first == NO_POS) /* the letter's first packet */
                *first = pos[i];
        }
    }
    return 0;
}

static PyObject *aggregate_rows(PyObject *self, PyObject *args)
{
    (void)self;
    enum { N_ROWS = 10, N_BUF = N_ROWS + 2 };
    Py_buffer b[N_BUF];
    Py_ssize_t n_letters;
    /* rows: seg i64, dir u8, ip_len i64, payload i64, ts i64, mac u64, flags u16,
     * ip_version u8, pos i64, kind i8; then records (written) and field offsets i64 */
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*y*y*w*y*n:aggregate_rows", &b[0], &b[1],
                          &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8], &b[9], &b[10],
                          &b[11], &n_letters))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t m = b[1].len;
    static const Py_ssize_t width[N_ROWS] = {8, 1, 8, 8, 8, 8, 2, 1, 8, 1};
    for (int j = 0; j < N_ROWS; j++)
        if (b[j].len != width[j] * m) {
            PyErr_Format(PyExc_ValueError, "aggregate_rows: row array %d has the wrong size", j);
            goto done;
        }
    if (b[11].len != 8 * N_FIELDS || n_letters <= 0 || n_letters % 2) {
        PyErr_SetString(PyExc_ValueError, "aggregate_rows: bad field offsets or letter count");
        goto done;
    }
    Py_ssize_t itemsize = 0, n_seg = 0;
    {
        /* the records' element size: the caller's contiguous structured array */
        PyObject *records = PyTuple_GET_ITEM(args, 10);
        PyObject *size = PyObject_GetAttrString(records, "itemsize");
        if (!size)
            goto done;
        itemsize = PyLong_AsSsize_t(size);
        Py_DECREF(size);
        if (itemsize <= 0 || b[10].len % itemsize) {
            PyErr_SetString(PyExc_ValueError, "aggregate_rows: records of an odd size");
            goto done;
        }
        n_seg = b[10].len / itemsize;
    }
    const int64_t *off = b[11].buf;
    /* bytes written from each field's offset: two directions, one value, or the letters */
    static const int64_t span[N_FIELDS] = {16, 16, 16, 16, 16, 8, 8, 1, 0};
    for (int j = 0; j < N_FIELDS; j++)
        if (off[j] < 0 || off[j] + (j == F_FIRST_POS ? 8 * n_letters : span[j]) > itemsize) {
            PyErr_SetString(PyExc_ValueError, "aggregate_rows: a field offset outside a record");
            goto done;
        }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = aggregate(b[0].buf, b[1].buf, b[2].buf, b[3].buf, b[4].buf, b[5].buf, b[6].buf,
                       b[7].buf, b[8].buf, b[9].buf, m, b[10].buf, n_seg, itemsize, off,
                       n_letters);
    Py_END_ALLOW_THREADS
    result = none_or_error(status, "aggregate_rows: segments out of order or range, or a bad letter");
done:
    release_buffers(b, N_BUF);
    return result;
}

static PyMethodDef methods[] = {
    {"aggregate_rows", aggregate_rows, METH_VARARGS,
     "aggregate_rows(seg, dir, ip_len, payload, ts, mac, flags, ip_version, pos, kind,\n"
     "               records, offsets, n_letters)\n\n"
     "Adds rows into their segments' records in place (see segments.aggregate)."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_aggregate,
                 "Per-segment sums of grouped rows, compiled (see segments.aggregate).",
                 methods)
