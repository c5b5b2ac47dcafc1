/* Flow keys, compiled: packing them and grouping equal ones, without the GIL.
 *
 * Packing (pack_short_keys) writes keys.py's short key layout -- a_ip, b_ip, a_port,
 * b_port, vlan, inner_vlan, proto, padding -- with the lower (address, port) endpoint
 * first, and each row's direction (1 when the source was the higher endpoint).
 *
 * Grouping (group_keys): one pass puts every key row in an open-addressing hash table of
 * group numbers, hashed with a key the caller draws at random (kernel.h) (linear probing, at most half full); a row whose slot holds a group is
 * compared with that group's first row word by word, so hash collisions cost a probe,
 * never a wrong group. Groups are numbered in order of first appearance. A counting sort
 * by group number then lists the rows group after group, each group in row order.
 * This is keys.group_rows' contract (see keys.py) with another, equally valid, group
 * order.
 */
#include "kernel.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SHORT_WIDTH 48 /* keys.SHORT_WIDTH, checked by keys.py at import */

/* Fill order (n) and starts (one per group); return the number of groups, -1 when out
 * of memory. */
static Py_ssize_t group(const uint8_t *keys, Py_ssize_t n, Py_ssize_t width, int64_t *order,
                        int64_t *starts, const uint64_t hash_key[2])
{
    size_t size = 16;
    while (size < 2 * (size_t)n)
        size <<= 1;
    int64_t *table = malloc(size * sizeof *table); /* group number + 1, 0 = empty */
    int64_t *group_of = malloc((n ? n : 1) * sizeof *group_of);
    if (!table || !group_of) {
        free(table);
        free(group_of);
        return -1;
    }
    memset(table, 0, size * sizeof *table);
    Py_ssize_t groups = 0;
    int64_t *first = starts; /* first row of each group, until starts is computed */
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *row = keys + i * width;
        size_t slot = keyed_hash(row, (size_t)width, hash_key) & (size - 1);
        for (;;) {
            int64_t g = table[slot] - 1;
            if (g < 0) {
                table[slot] = groups + 1;
                first[groups] = i;
                group_of[i] = groups++;
                break;
            }
            if (memcmp(keys + first[g] * width, row, (size_t)width) == 0) {
                group_of[i] = g;
                break;
            }
            slot = (slot + 1) & (size - 1);
        }
    }
    /* counting sort by group number; the table's memory holds the running positions */
    int64_t *next = table;
    memset(next, 0, groups * sizeof *next);
    for (Py_ssize_t i = 0; i < n; i++)
        next[group_of[i]]++;
    int64_t at = 0;
    for (Py_ssize_t g = 0; g < groups; g++) {
        int64_t count = next[g];
        next[g] = starts[g] = at;
        at += count;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        order[next[group_of[i]]++] = i;
    free(table);
    free(group_of);
    return groups;
}

static PyObject *group_keys(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer keys, order, starts, hash_key;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*nw*w*y*:group_keys", &keys, &width, &order, &starts,
                          &hash_key))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = width > 0 ? keys.len / width : 0;
    if (width <= 0 || keys.len != n * width || order.len != 8 * n || starts.len != 8 * n ||
        hash_key.len != 16) {
        PyErr_SetString(PyExc_ValueError,
                        "group_keys: n rows of width bytes, order and starts n int64, a "
                        "16-byte hash key");
        goto done;
    }
    Py_ssize_t groups;
    uint64_t k[2];
    memcpy(k, hash_key.buf, 16);
    Py_BEGIN_ALLOW_THREADS
    groups = group(keys.buf, n, width, order.buf, starts.buf, k);
    Py_END_ALLOW_THREADS
    if (groups < 0)
        PyErr_NoMemory();
    else
        result = PyLong_FromSsize_t(groups);
done:
    PyBuffer_Release(&keys);
    PyBuffer_Release(&order);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&hash_key);
    return result;
}

static inline void put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put_be32(uint8_t *p, uint32_t v)
{
    put_be16(p, v >> 16);
    put_be16(p + 2, v);
}

static PyObject *pack_short_keys(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer src, dst, sport, dport, proto, vlan, inner, keys, dir;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*w*w*:pack_short_keys", &src, &dst, &sport,
                          &dport, &proto, &vlan, &inner, &keys, &dir))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = proto.len;
    if (src.len != 16 * n || dst.len != 16 * n || sport.len != 2 * n || dport.len != 2 * n ||
        vlan.len != 4 * n || inner.len != 4 * n || keys.len != SHORT_WIDTH * n ||
        dir.len != n) {
        PyErr_SetString(PyExc_ValueError,
                        "pack_short_keys: (n,16) u8 addresses, u16 ports, u8 proto, i32 vlans, "
                        "(n,48) u8 keys and u8 directions");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *s_ip = src.buf, *d_ip = dst.buf, *pr = proto.buf;
    const uint16_t *sp = sport.buf, *dp = dport.buf;
    const int32_t *v = vlan.buf, *iv = inner.buf;
    uint8_t *out = keys.buf, *direction = dir.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        const uint8_t *a = s_ip + 16 * i, *b = d_ip + 16 * i;
        int c = memcmp(a, b, 16);
        int swap = c > 0 || (c == 0 && sp[i] > dp[i]);
        uint8_t *k = out + SHORT_WIDTH * i;
        memcpy(k, swap ? b : a, 16);
        memcpy(k + 16, swap ? a : b, 16);
        put_be16(k + 32, swap ? dp[i] : sp[i]);
        put_be16(k + 34, swap ? sp[i] : dp[i]);
        put_be32(k + 36, (uint32_t)v[i]);
        put_be32(k + 40, (uint32_t)iv[i]);
        k[44] = pr[i];
        k[45] = k[46] = k[47] = 0;
        direction[i] = (uint8_t)swap;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&sport);
    PyBuffer_Release(&dport);
    PyBuffer_Release(&proto);
    PyBuffer_Release(&vlan);
    PyBuffer_Release(&inner);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&dir);
    return result;
}

static PyMethodDef methods[] = {
    {"pack_short_keys", pack_short_keys, METH_VARARGS,
     "pack_short_keys(src_ip, dst_ip, sport, dport, proto, vlan, inner_vlan, keys, dir)\n\n"
     "Fills keys ((n, 48) uint8) and dir (uint8[n]); see keys.pack_keys."},
    {"group_keys", group_keys, METH_VARARGS,
     "group_keys(keys, width, order, starts, hash_key) -> number of groups\n\n"
     "keys: n rows of width bytes (C order); order, starts: int64[n]; hash_key: 16 bytes."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_flowkeys,
                 "Flow keys, compiled: packing and grouping (see keys.py).",
                 methods)
