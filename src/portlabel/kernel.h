/* What every compiled kernel of portlabel shares: the module definition, the release of
 * the buffers a call borrowed, and the keyed hash of the flow-key tables. Each kernel is one C file beside the Python module it
 * speeds up; portlabel/kernels.py lists them and setup.py builds them. */
#ifndef PORTLABEL_KERNEL_H
#define PORTLABEL_KERNEL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The module object of a kernel: PORTLABEL_MODULE(_name, "doc", methods) */
#define PORTLABEL_MODULE(NAME, DOC, METHODS)                                                 \
    static struct PyModuleDef NAME##_module = {                                              \
        .m_base = PyModuleDef_HEAD_INIT,                                                     \
        .m_name = #NAME,                                                                     \
        .m_doc = DOC,                                                                        \
        .m_size = -1,                                                                        \
        .m_methods = METHODS,                                                                \
    };                                                                                       \
    PyMODINIT_FUNC PyInit_##NAME(void) { return PyModule_Create(&NAME##_module); }

/* SipHash-1-3 (Aumasson and Bernstein's keyed hash; the variant CPython hashes bytes with)
 * of ``len`` bytes under the 128-bit ``key``. The flow-key tables hash with a key drawn
 * at random by their Python callers, so a capture cannot be crafted to make every key
 * land in one probe chain (a fixed mix can be inverted to do that). */
#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                                            \
    do {                                                                                     \
        v0 += v1;                                                                            \
        v1 = SIP_ROTL(v1, 13);                                                               \
        v1 ^= v0;                                                                            \
        v0 = SIP_ROTL(v0, 32);                                                               \
        v2 += v3;                                                                            \
        v3 = SIP_ROTL(v3, 16);                                                               \
        v3 ^= v2;                                                                            \
        v0 += v3;                                                                            \
        v3 = SIP_ROTL(v3, 21);                                                               \
        v3 ^= v0;                                                                            \
        v2 += v1;                                                                            \
        v1 = SIP_ROTL(v1, 17);                                                               \
        v1 ^= v2;                                                                            \
        v2 = SIP_ROTL(v2, 32);                                                               \
    } while (0)

static inline uint64_t keyed_hash(const uint8_t *in, size_t len, const uint64_t key[2])
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ key[0], v1 = 0x646f72616e646f6dULL ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ULL ^ key[0], v3 = 0x7465646279746573ULL ^ key[1];
    size_t full = len & ~(size_t)7;
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m; /* in the machine's byte order: a table's hashes never leave it */
        memcpy(&m, in + i, 8);
        v3 ^= m;
        SIP_ROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t j = 0; j < len - full; j++)
        last |= (uint64_t)in[full + j] << (8 * j);
    v3 ^= last;
    SIP_ROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIP_ROUND;
    SIP_ROUND;
    SIP_ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Give back the first ``count`` buffers of ``views``. */
static inline void release_buffers(Py_buffer *views, int count)
{
    for (int i = 0; i < count; i++)
        PyBuffer_Release(&views[i]);
}

/* None when a kernel's loop succeeded (status 0), else a ValueError with ``message``. */
static inline PyObject *none_or_error(int status, const char *message)
{
    if (status < 0) {
        PyErr_SetString(PyExc_ValueError, message);
        return NULL;
    }
    return Py_NewRef(Py_None);
}

#endif
