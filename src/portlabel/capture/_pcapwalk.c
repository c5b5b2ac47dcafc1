/* The classic pcap record walk, compiled: record starts of a span, without the GIL.
 *
 * Theory of operation: record i+1 starts where record i's header says it ends, so the
 * walk is one loop reading one length field per record. It returns what
 * recordwalk.walk returns for a pcap file (pcap.py chooses between the two): the starts
 * before ``stop`` and where the chain goes on -- the first start at or past ``stop``, or
 * BROKEN after a length beyond ``max_step`` (that record's start is the last one listed,
 * as in the vectorised walk, so the caller can name it). The four header fields of each
 * record found are returned too, read while the header is in the cache.
 */
#include "kernel.h"
#include <stdint.h>

/* how the two length fields are read (pcap.py's LENGTHS_*) */
#define PREFETCH_BYTES 8192

enum { LENGTHS_NORMAL = 0, LENGTHS_SWAPPED = 1, LENGTHS_MAYBE_SWAPPED = 2 };

static inline uint32_t u32(const uint8_t *p, int big)
{
    return big ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]
               : ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static PyObject *walk_pcap(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, found, fields;
    Py_ssize_t start, stop, header_len, max_step, broken;
    int lengths, big;
    if (!PyArg_ParseTuple(args, "y*nnniinnw*w*:walk_pcap", &buf, &start, &stop, &header_len,
                          &lengths, &big, &max_step, &broken, &found, &fields))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t capacity = found.len / 8;
    if (start < 0 || stop > buf.len - header_len + 1 || header_len < 16 ||
        capacity < (stop - start) / header_len + 1 || fields.len != 16 * capacity) {
        PyErr_SetString(PyExc_ValueError,
                        "walk_pcap: stop must leave a whole header in the buffer, found must "
                        "hold (stop - start) // header_len + 1 int64 starts and fields as "
                        "many rows of four uint32");
        goto done;
    }
    const uint8_t *data = buf.buf;
    int64_t *out = found.buf;
    uint32_t *head = fields.buf;
    Py_ssize_t k = 0, p = start, ahead = start;
    Py_BEGIN_ALLOW_THREADS
    while (p < stop) {
        /* Each step waits for the header it has just computed the place of; streaming
         * the bytes ahead into the cache turns that wait into sequential reads. */
        for (; ahead < p + PREFETCH_BYTES && ahead < buf.len; ahead += 64)
            __builtin_prefetch(data + ahead);
        uint32_t first = u32(data + p + 8, big), second = u32(data + p + 12, big);
        uint32_t *h = head + 4 * k; /* the header's seconds, fraction and two lengths */
        h[0] = u32(data + p, big);
        h[1] = u32(data + p + 4, big);
        h[2] = first;
        h[3] = second;
        out[k++] = p;
        uint32_t caplen = lengths == LENGTHS_NORMAL    ? first
                          : lengths == LENGTHS_SWAPPED ? second
                          : (first < second ? first : second);
        Py_ssize_t step = (Py_ssize_t)caplen + header_len;
        if (step > max_step) {
            p = broken;
            break;
        }
        p += step;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nn", k, p);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&found);
    PyBuffer_Release(&fields);
    return result;
}

static PyMethodDef methods[] = {
    {"walk_pcap", walk_pcap, METH_VARARGS,
     "walk_pcap(buf, start, stop, header_len, lengths, big_endian, max_step, broken, found,"
     " fields) -> (count, next)\n\nfound: int64 array receiving the record starts; fields:"
     " (len(found), 4) uint32 receiving each header's four fields in native order."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_pcapwalk,
                 "The classic pcap record walk, compiled (see pcap.py).",
                 methods)
