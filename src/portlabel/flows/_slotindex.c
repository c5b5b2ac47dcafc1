/* The flow store's index from key to slot, compiled: a hash table without the GIL.
 *
 * Theory of operation: the store keeps each active flow's record, key included, in a slot
 * array (store.FlowStore). The index is an open-addressing table of 32-bit slot numbers
 * (linear probing; EMPTY and REMOVED cells, hashed under a random key of the table's, see
 * kernel.h) held in a numpy array the caller owns and regrows; a cell's key is read from
 * the record in its slot, so keys are stored once.
 * Lookups compare whole keys, so hash collisions cost a probe and never a wrong flow.
 */
#include "kernel.h"
#include <stdint.h>
#include <string.h>

#define EMPTY (-1)
#define REMOVED (-2)

typedef struct {
    int32_t *cells; /* slot numbers: a store has fewer than 2^31 slots */
    size_t mask;
    const uint8_t *records;
    Py_ssize_t itemsize, n_slots, width; /* key bytes at offset 0 of each record */
    uint64_t hash_key[2];                 /* the table's own random key (kernel.h) */
} Index;

static inline const uint8_t *key_of(const Index *ix, int64_t slot)
{
    return ix->records + slot * ix->itemsize;
}

static int64_t find(const Index *ix, const uint8_t *key)
{
    size_t c = keyed_hash(key, (size_t)ix->width, ix->hash_key) & ix->mask;
    for (size_t probes = 0; probes <= ix->mask; probes++, c = (c + 1) & ix->mask) {
        int64_t slot = ix->cells[c];
        if (slot == EMPTY)
            return -1;
        if (slot >= 0 && slot < ix->n_slots && memcmp(key_of(ix, slot), key, ix->width) == 0)
            return slot;
    }
    return -1;
}

/* 0, or -1 when a slot is outside the records or the table has no free cell */
static int insert(Index *ix, int64_t slot, Py_ssize_t *reused)
{
    if (slot < 0 || slot >= ix->n_slots || slot > INT32_MAX)
        return -1;
    size_t c = keyed_hash(key_of(ix, slot), (size_t)ix->width, ix->hash_key) & ix->mask;
    for (size_t probes = 0; probes <= ix->mask; probes++, c = (c + 1) & ix->mask)
        if (ix->cells[c] < 0) {
            *reused += ix->cells[c] == REMOVED;
            ix->cells[c] = (int32_t)slot;
            return 0;
        }
    return -1;
}

static int remove_slot(Index *ix, int64_t slot)
{
    if (slot < 0 || slot >= ix->n_slots)
        return -1;
    size_t c = keyed_hash(key_of(ix, slot), (size_t)ix->width, ix->hash_key) & ix->mask;
    for (size_t probes = 0; probes <= ix->mask; probes++, c = (c + 1) & ix->mask) {
        if (ix->cells[c] == EMPTY)
            break;
        if (ix->cells[c] == slot) {
            ix->cells[c] = REMOVED;
            return 0;
        }
    }
    return -1; /* not indexed */
}

/* Shared argument handling: (cells, records, itemsize, width, array, out-or-None). */
static int open_index(Index *ix, Py_buffer *cells, Py_buffer *records, Py_ssize_t itemsize,
                      Py_ssize_t width, Py_buffer *hash_key)
{
    size_t n = (size_t)cells->len / 4;
    if (n == 0 || (n & (n - 1)) || cells->len % 4 || itemsize <= 0 ||
        records->len % itemsize || width <= 0 || width > itemsize || width % 8 ||
        hash_key->len != 16) {
        PyErr_SetString(PyExc_ValueError,
                        "slot index: a power-of-two int32 table, whole records, keys of a "
                        "multiple of 8 bytes at their start, a 16-byte hash key");
        return -1;
    }
    memcpy(ix->hash_key, hash_key->buf, 16);
    ix->cells = cells->buf;
    ix->mask = n - 1;
    ix->records = records->buf;
    ix->itemsize = itemsize;
    ix->n_slots = records->len / itemsize;
    ix->width = width;
    return 0;
}

static PyObject *index_lookup(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer cells, records, keys, out, hash_key;
    Py_ssize_t itemsize, width;
    if (!PyArg_ParseTuple(args, "w*y*nny*w*y*:lookup", &cells, &records, &itemsize, &width,
                          &keys, &out, &hash_key))
        return NULL;
    PyObject *result = NULL;
    Index ix;
    if (open_index(&ix, &cells, &records, itemsize, width, &hash_key) < 0)
        goto done;
    Py_ssize_t n = keys.len / width;
    if (keys.len != n * width || out.len != 8 * n) {
        PyErr_SetString(PyExc_ValueError, "lookup: (n, width) keys and int64 out[n]");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const uint8_t *k = keys.buf;
    int64_t *slots = out.buf;
    for (Py_ssize_t i = 0; i < n; i++)
        slots[i] = find(&ix, k + i * width);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&cells);
    PyBuffer_Release(&records);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&out);
    PyBuffer_Release(&hash_key);
    return result;
}

static PyObject *index_change(PyObject *args, int adding)
{
    Py_buffer cells, records, slots, hash_key;
    Py_ssize_t itemsize, width;
    if (!PyArg_ParseTuple(args, "w*y*nny*y*", &cells, &records, &itemsize, &width, &slots,
                          &hash_key))
        return NULL;
    PyObject *result = NULL;
    Index ix;
    if (open_index(&ix, &cells, &records, itemsize, width, &hash_key) < 0)
        goto done;
    if (slots.len % 8) {
        PyErr_SetString(PyExc_ValueError, "slot index: slots must be int64");
        goto done;
    }
    Py_ssize_t n = slots.len / 8, reused = 0;
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    const int64_t *s = slots.buf;
    for (Py_ssize_t i = 0; i < n && status == 0; i++)
        status = adding ? insert(&ix, s[i], &reused) : remove_slot(&ix, s[i]);
    Py_END_ALLOW_THREADS
    if (status < 0)
        PyErr_SetString(PyExc_ValueError, adding ? "add: a slot outside the records or a full "
                                                   "table"
                                                 : "remove: a slot that is not indexed");
    else
        result = PyLong_FromSsize_t(reused);
done:
    PyBuffer_Release(&cells);
    PyBuffer_Release(&records);
    PyBuffer_Release(&slots);
    PyBuffer_Release(&hash_key);
    return result;
}

static PyObject *index_add(PyObject *self, PyObject *args)
{
    (void)self;
    return index_change(args, 1);
}

static PyObject *index_remove(PyObject *self, PyObject *args)
{
    (void)self;
    return index_change(args, 0);
}

static PyMethodDef methods[] = {
    {"lookup", index_lookup, METH_VARARGS,
     "lookup(cells, records, itemsize, width, keys, out, hash_key)\n\n"
     "out[i] = the slot whose record's key is keys[i], or -1."},
    {"add", index_add, METH_VARARGS,
     "add(cells, records, itemsize, width, slots, hash_key) -> removed cells reused\n\n"
     "Index each slot under the key its record holds (keys not indexed yet)."},
    {"remove", index_remove, METH_VARARGS,
     "remove(cells, records, itemsize, width, slots, hash_key) -> 0\n\n"
     "Unindex each slot (its record still holds its key)."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_slotindex,
                 "The flow store's key-to-slot hash table, compiled (see store.FlowStore).",
                 methods)
