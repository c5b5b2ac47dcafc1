/* Rows of text joined from columns of text, compiled (see textrows.py).
 *
 * row_join(columns, n, separator, prefix, suffix, skip_nulls) -> bytes: for each of the n
 * rows, prefix + separator.join(the row's value in each column) + suffix, all rows one
 * after another. A column is a constant (bytes: the same text in every row; None: null
 * in every row), an Arrow string or binary array given by its buffers, (validity or
 * None, int32 offsets, data, array offset), or such an array of ``size`` entries read
 * through int64 ``indices``, one per row: (validity, offsets, data, offset, size,
 * indices). A null value drops its row (skip_nulls false:
 * Arrow's binary_join_element_wise makes such a row null, and a null row has no text) or
 * is left out with its separator (skip_nulls true; a row with no value left is dropped,
 * as Arrow makes it null too). Every offset is checked against its
 * buffers before anything is copied; the copy runs without the GIL.
 */
#include "kernel.h"

typedef struct {
    const uint8_t *valid; /* NULL: no nulls */
    const int32_t *offsets;
    const uint8_t *data;
    Py_ssize_t first;        /* the array's offset */
    const uint8_t *constant; /* a constant column's text, or NULL */
    Py_ssize_t constant_len;
    const uint8_t *end; /* the end of the readable bytes of data or constant */
    const int64_t *indices; /* the entry each row reads, or NULL: row r reads entry r */
    int null_constant;
} column_t;

static Py_ssize_t entry(const column_t *c, Py_ssize_t row)
{
    return c->indices != NULL ? (Py_ssize_t)c->indices[row] : row;
}

static int is_valid(const column_t *c, Py_ssize_t row)
{
    if (c->null_constant)
        return 0;
    if (c->constant != NULL || c->valid == NULL)
        return 1;
    Py_ssize_t bit = c->first + entry(c, row);
    return (c->valid[bit >> 3] >> (bit & 7)) & 1;
}

static Py_ssize_t value_len(const column_t *c, Py_ssize_t row)
{
    if (c->constant != NULL)
        return c->constant_len;
    Py_ssize_t at = c->first + entry(c, row);
    return (Py_ssize_t)c->offsets[at + 1] - c->offsets[at];
}

static const uint8_t *value_at(const column_t *c, Py_ssize_t row)
{
    if (c->constant != NULL)
        return c->constant;
    return c->data + c->offsets[c->first + entry(c, row)];
}

/* Borrow column ``item``'s buffers into ``col`` (views[0..3] are its buffers, kept until
 * the call ends); -1 with an exception set when it is neither a constant nor a string
 * array of at least n rows (or of ``size`` entries and n indices inside them) whose
 * offsets lie inside its data. */
static int borrow(PyObject *item, Py_ssize_t n, column_t *col, Py_buffer *views, int *held)
{
    memset(col, 0, sizeof(*col));
    if (item == Py_None) {
        col->null_constant = 1;
        return 0;
    }
    if (PyBytes_Check(item)) {
        col->constant = (const uint8_t *)PyBytes_AS_STRING(item);
        col->constant_len = PyBytes_GET_SIZE(item);
        if (col->constant_len == 0)
            col->constant = (const uint8_t *)""; /* an empty constant is still one */
        col->end = col->constant + col->constant_len;
        return 0;
    }
    PyObject *validity, *offsets, *data, *indices = NULL;
    Py_ssize_t first, size = n;
    if (!PyArg_ParseTuple(item, "OOOn|nO:row_join column", &validity, &offsets, &data, &first,
                          &size, &indices))
        return -1;
    if (indices != NULL) {
        if (PyObject_GetBuffer(indices, &views[3], PyBUF_SIMPLE) < 0)
            return -1;
        held[3] = 1;
        if (views[3].len != 8 * n) {
            PyErr_SetString(PyExc_ValueError, "row_join: not one int64 index per row");
            return -1;
        }
        col->indices = views[3].buf;
        for (Py_ssize_t r = 0; r < n; r++)
            if (col->indices[r] < 0 || col->indices[r] >= size) {
                PyErr_SetString(PyExc_ValueError, "row_join: an index outside its entries");
                return -1;
            }
    } else if (size != n) {
        PyErr_SetString(PyExc_ValueError, "row_join: entries without indices must be rows");
        return -1;
    }
    if (first < 0) {
        PyErr_SetString(PyExc_ValueError, "row_join: a negative array offset");
        return -1;
    }
    if (PyObject_GetBuffer(offsets, &views[1], PyBUF_SIMPLE) < 0)
        return -1;
    held[1] = 1;
    if (PyObject_GetBuffer(data, &views[2], PyBUF_SIMPLE) < 0)
        return -1;
    held[2] = 1;
    if (validity != Py_None) {
        if (PyObject_GetBuffer(validity, &views[0], PyBUF_SIMPLE) < 0)
            return -1;
        held[0] = 1;
        if (views[0].len * 8 < first + size) {
            PyErr_SetString(PyExc_ValueError, "row_join: a validity bitmap shorter than its rows");
            return -1;
        }
        col->valid = views[0].buf;
    }
    if (views[1].len < (Py_ssize_t)sizeof(int32_t) * (first + size + 1)) {
        PyErr_SetString(PyExc_ValueError, "row_join: offsets shorter than their rows");
        return -1;
    }
    col->offsets = views[1].buf;
    col->data = views[2].buf;
    col->end = col->data + views[2].len;
    col->first = first;
    for (Py_ssize_t r = first; r < first + size; r++) {
        int32_t start = col->offsets[r], end = col->offsets[r + 1];
        if (start < 0 || end < start || end > views[2].len) {
            PyErr_SetString(PyExc_ValueError, "row_join: an offset outside its data");
            return -1;
        }
    }
    return 0;
}

static PyObject *row_join(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *seq;
    Py_ssize_t n;
    Py_buffer sep, prefix, suffix;
    int skip_nulls;
    if (!PyArg_ParseTuple(args, "Ony*y*y*p:row_join", &seq, &n, &sep, &prefix, &suffix,
                          &skip_nulls))
        return NULL;
    PyObject *result = NULL, *fast = PySequence_Fast(seq, "row_join: columns must be a sequence");
    Py_ssize_t k = fast ? PySequence_Fast_GET_SIZE(fast) : 0;
    column_t *cols = fast ? PyMem_Calloc((size_t)k + 1, sizeof(column_t)) : NULL;
    Py_buffer *views = fast ? PyMem_Calloc(4 * (size_t)k + 1, sizeof(Py_buffer)) : NULL;
    int *held = fast ? PyMem_Calloc(4 * (size_t)k + 1, sizeof(int)) : NULL;
    if (fast == NULL || cols == NULL || views == NULL || held == NULL) {
        if (fast != NULL)
            PyErr_NoMemory();
        goto done;
    }
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "row_join: a negative row count");
        goto done;
    }
    for (Py_ssize_t j = 0; j < k; j++)
        if (borrow(PySequence_Fast_GET_ITEM(fast, j), n, &cols[j], &views[4 * j], &held[4 * j]) < 0)
            goto done;
    /* the size of the text, row by row */
    Py_ssize_t total = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t row = prefix.len + suffix.len, values = 0;
        int dropped = 0;
        for (Py_ssize_t j = 0; j < k; j++) {
            if (!is_valid(&cols[j], r)) {
                if (!skip_nulls) {
                    dropped = 1;
                    break;
                }
                continue;
            }
            row += value_len(&cols[j], r) + (values++ ? sep.len : 0);
        }
        if (!dropped && values)
            total += row;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL)
        goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result), *out_end = out + total;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        int dropped = !skip_nulls, none = 1;
        for (Py_ssize_t j = 0; j < k; j++) {
            int valid = is_valid(&cols[j], r);
            none &= !valid;
            if (!valid && !skip_nulls)
                break;
            if (j == k - 1)
                dropped = 0;
        }
        if (dropped || none)
            continue;
        memcpy(out, prefix.buf, (size_t)prefix.len);
        out += prefix.len;
        Py_ssize_t values = 0;
        for (Py_ssize_t j = 0; j < k; j++) {
            const column_t *c = &cols[j];
            if (!is_valid(c, r))
                continue;
            if (values++ && sep.len) {
                memcpy(out, sep.buf, (size_t)sep.len);
                out += sep.len;
            }
            Py_ssize_t len = value_len(c, r);
            const uint8_t *from = value_at(c, r);
            if (len <= 16 && from + 16 <= c->end && out + 16 <= out_end)
                memcpy(out, from, 16); /* most values are short: one fixed-size move */
            else
                memcpy(out, from, (size_t)len);
            out += len;
        }
        memcpy(out, suffix.buf, (size_t)suffix.len);
        out += suffix.len;
    }
    Py_END_ALLOW_THREADS
done:
    if (views != NULL && held != NULL)
        for (Py_ssize_t j = 0; j < 4 * k; j++)
            if (held[j])
                PyBuffer_Release(&views[j]);
    PyMem_Free(cols);
    PyMem_Free(views);
    PyMem_Free(held);
    Py_XDECREF(fast);
    PyBuffer_Release(&sep);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&suffix);
    return result;
}

static PyMethodDef methods[] = {
    {"row_join", row_join, METH_VARARGS,
     "row_join(columns, n, separator, prefix, suffix, skip_nulls) -> bytes: each row's "
     "prefix + separator.join(values) + suffix; a column is bytes, None, (validity, "
     "offsets, data, offset) of an Arrow string array, or (validity, offsets, data, "
     "offset, size, indices) for its entries gathered by int64 indices."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_rowjoin, "Rows of text joined from columns, compiled (see textrows.py).",
                 methods)
