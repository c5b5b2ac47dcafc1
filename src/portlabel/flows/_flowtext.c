/* Text columns of finished flows, compiled, without the GIL (see render.py, uid.py, emit.py).
 *
 * Theory of operation: each function writes the text of many rows into a caller-owned
 * buffer, as a blob plus offsets (Arrow's string layout) or as a NUL-padded matrix, the
 * same bytes the numpy renderers produce:
 *  - addresses: IPv4 rows (the last 4 of 16 bytes) and IPv6 rows spelled by the C
 *    library's inet_ntop, whose spelling (RFC 5952, dotted quads for the mapped and
 *    compatible forms) the numpy renderer reproduces;
 *  - uids: "C" and the base62 digits of a 96-bit value without leading zeros, digits
 *    from the caller's alphabet;
 *  - history: each row's letters in order of their first packet position (ties in column
 *    order), letters from the caller's table, NUL-padded.
 */
#define _POSIX_C_SOURCE 200809L
#include "kernel.h"
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define V6_TEXT_WIDTH 46 /* render.V6_TEXT_WIDTH: INET6_ADDRSTRLEN */

static PyObject *address_text(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer ips, v4, blob, offsets;
    if (!PyArg_ParseTuple(args, "y*y*w*w*:address_text", &ips, &v4, &blob, &offsets))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = v4.len;
    if (ips.len != 16 * n || blob.len < V6_TEXT_WIDTH * n || offsets.len != 8 * (n + 1)) {
        PyErr_SetString(PyExc_ValueError,
                        "address_text: (n, 16) addresses, n flags, a blob of n * 46 bytes "
                        "and int64 offsets[n + 1]");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *ip = ips.buf, *is_v4 = v4.buf;
    char *out = blob.buf;
    int64_t *off = offsets.buf, at = 0;
    char text[INET6_ADDRSTRLEN];
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *a = ip + 16 * i;
        const char *s = is_v4[i] ? inet_ntop(AF_INET, a + 12, text, sizeof text)
                                 : inet_ntop(AF_INET6, a, text, sizeof text);
        size_t len = s ? strlen(s) : 0;
        memcpy(out + at, text, len);
        at += (int64_t)len;
        off[i + 1] = at;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&ips);
    PyBuffer_Release(&v4);
    PyBuffer_Release(&blob);
    PyBuffer_Release(&offsets);
    return result;
}

/* Divide the 96-bit number in limbs[0..2] (most significant first) by d; the remainder. */
static uint32_t divide(uint32_t limbs[3], uint32_t d)
{
    uint64_t rem = 0;
    for (int j = 0; j < 3; j++) {
        uint64_t cur = (rem << 32) | limbs[j];
        limbs[j] = (uint32_t)(cur / d);
        rem = cur % d;
    }
    return (uint32_t)rem;
}

static PyObject *uid_text(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer limbs, alphabet, blob, offsets;
    if (!PyArg_ParseTuple(args, "y*y*w*w*:uid_text", &limbs, &alphabet, &blob, &offsets))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = limbs.len / 12;
    if (limbs.len != 12 * n || alphabet.len != 62 || blob.len < 18 * n ||
        offsets.len != 8 * (n + 1)) {
        PyErr_SetString(PyExc_ValueError,
                        "uid_text: (n, 3) uint32 limbs, a 62-letter alphabet, a blob of "
                        "n * 18 bytes and int64 offsets[n + 1]");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint32_t *in = limbs.buf;
    const char *digit = alphabet.buf;
    char *out = blob.buf;
    int64_t *off = offsets.buf, at = 0;
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t v[3] = {in[3 * i], in[3 * i + 1], in[3 * i + 2]};
        char rev[20];
        int k = 0;
        do
            rev[k++] = digit[divide(v, 62)];
        while (v[0] | v[1] | v[2]);
        out[at++] = 'C';
        while (k)
            out[at++] = rev[--k];
        off[i + 1] = at;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&limbs);
    PyBuffer_Release(&alphabet);
    PyBuffer_Release(&blob);
    PyBuffer_Release(&offsets);
    return result;
}

static PyObject *history_codes(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer pos, letters, codes;
    int64_t missing;
    if (!PyArg_ParseTuple(args, "y*y*Lw*:history_codes", &pos, &letters, &missing, &codes))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t width = letters.len, n = width ? codes.len / width : 0;
    if (width <= 0 || width > 64 || codes.len != n * width || pos.len != 8 * n * width) {
        PyErr_SetString(PyExc_ValueError,
                        "history_codes: (n, w) int64 positions, w letters, (n, w) codes");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const int64_t *p = pos.buf;
    const uint8_t *letter = letters.buf;
    uint8_t *out = codes.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        const int64_t *row = p + i * width;
        int col[64], k = 0;
        for (int j = 0; j < width; j++) { /* insertion sort by position, stable */
            if (row[j] == missing)
                continue;
            int at = k++;
            while (at > 0 && row[col[at - 1]] > row[j]) {
                col[at] = col[at - 1];
                at--;
            }
            col[at] = j;
        }
        uint8_t *o = out + i * width;
        for (int j = 0; j < width; j++)
            o[j] = j < k ? letter[col[j]] : 0;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&pos);
    PyBuffer_Release(&letters);
    PyBuffer_Release(&codes);
    return result;
}

static PyMethodDef methods[] = {
    {"address_text", address_text, METH_VARARGS,
     "address_text(ips, v4, blob, offsets): address text of (n, 16) rows into blob."},
    {"uid_text", uid_text, METH_VARARGS,
     "uid_text(limbs, alphabet, blob, offsets): uid strings of (n, 3) limbs into blob."},
    {"history_codes", history_codes, METH_VARARGS,
     "history_codes(pos, letters, missing, codes): letters of each row by position."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_flowtext,
                 "Text columns of finished flows, compiled (see render.py).",
                 methods)
