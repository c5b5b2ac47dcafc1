/* SHA-1 (FIPS 180-4) of many short messages in one call, without the GIL.
 *
 * Community IDs need one SHA-1 per flow over 12 to 40 bytes. hashlib hashes one message
 * per Python call (2 microseconds each, holding the GIL); no library offers a batch of
 * digests, so the hash is computed here: messages are the rows of a matrix, each with its
 * own length. community_id.py checks the result against hashlib in the tests.
 */
#include "kernel.h"
#include <stdint.h>
#include <string.h>

static inline uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void compress(uint32_t h[5], const uint8_t block[64])
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = ((uint32_t)block[4 * t] << 24) | ((uint32_t)block[4 * t + 1] << 16) |
               ((uint32_t)block[4 * t + 2] << 8) | block[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t done = 0;
    for (; len - done >= 64; done += 64)
        compress(h, msg + done);
    uint8_t block[128] = {0};
    size_t rest = len - done;
    memcpy(block, msg + done, rest);
    block[rest] = 0x80;
    size_t blocks = rest + 9 <= 64 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        block[64 * blocks - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t i = 0; i < blocks; i++)
        compress(h, block + 64 * i);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static PyObject *sha1_rows(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer rows, lengths, digests;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*ny*w*:sha1_rows", &rows, &width, &lengths, &digests))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = lengths.len / 8;
    if (width <= 0 || rows.len != n * width || lengths.len != 8 * n || digests.len != 20 * n) {
        PyErr_SetString(PyExc_ValueError,
                        "sha1_rows: (n, width) rows, int64 lengths[n] and (n, 20) digests");
        goto done;
    }
    const int64_t *len = lengths.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        if (len[i] < 0 || len[i] > width) {
            PyErr_SetString(PyExc_ValueError, "sha1_rows: a length outside its row");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *in = rows.buf;
    uint8_t *out = digests.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        sha1(in + i * width, (size_t)len[i], out + 20 * i);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&rows);
    PyBuffer_Release(&lengths);
    PyBuffer_Release(&digests);
    return result;
}

static PyMethodDef methods[] = {
    {"sha1_rows", sha1_rows, METH_VARARGS,
     "sha1_rows(rows, width, lengths, digests)\n\n"
     "SHA-1 of rows[i, :lengths[i]] into digests[i] for each row of an (n, width) matrix."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_sha1rows,
                 "SHA-1 of many short messages at once (see community_id.py).",
                 methods)
