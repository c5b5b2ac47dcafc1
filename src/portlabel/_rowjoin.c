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
    /* a number column, rendered here: NUMBER_NONE, or its kind */
    int number;
    int width;                /* bytes per value: 1, 2, 4 or 8 */
    int decimals;             /* EPOCH_ROUNDED: digits after the point */
    const uint8_t *values;    /* the number column's values (width bytes each) */
    const uint8_t *when_null; /* written for a null value, or NULL: the value is null */
    Py_ssize_t when_null_len;
} column_t;

enum { NUMBER_NONE = 0, SIGNED, UNSIGNED, EPOCH, EPOCH_ROUNDED };
#define NUMBER_TEXT 32 /* room for any number's text: 20 digits and a sign, or a time */


static int64_t signed_at(const column_t *c, Py_ssize_t row)
{
    const uint8_t *p = c->values + (c->first + row) * c->width;
    switch (c->width) {
    case 1: return *(const int8_t *)p;
    case 2: { int16_t v; memcpy(&v, p, 2); return v; }
    case 4: { int32_t v; memcpy(&v, p, 4); return v; }
    default: { int64_t v; memcpy(&v, p, 8); return v; }
    }
}

static uint64_t unsigned_at(const column_t *c, Py_ssize_t row)
{
    const uint8_t *p = c->values + (c->first + row) * c->width;
    switch (c->width) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

/* ``value`` in decimal, at least ``min_digits`` digits (zero-padded), at ``out``; its length */
static int decimal(uint64_t value, int min_digits, uint8_t *out)
{
    uint8_t tmp[NUMBER_TEXT];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n < min_digits)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static const uint64_t POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                 100000000, 1000000000};

/* A number column's value of ``row`` as text, at ``out`` (NUMBER_TEXT bytes); its length.
 * SIGNED/UNSIGNED: the integer, as pyarrow casts it to a string. EPOCH: nanoseconds as
 * seconds, six decimals when on a whole microsecond, else nine. EPOCH_ROUNDED: rounded to
 * ``decimals`` decimals (half away from zero). Both as text.epoch_seconds writes them. */
static int number_text(const column_t *c, Py_ssize_t row, uint8_t *out)
{
    int n = 0;
    if (c->number == UNSIGNED)
        return decimal(unsigned_at(c, row), 1, out);
    int64_t v = signed_at(c, row);
    uint64_t magnitude = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        out[n++] = '-';
    if (c->number == SIGNED)
        return n + decimal(magnitude, 1, out + n);
    uint64_t whole, frac;
    int digits;
    if (c->number == EPOCH) {
        whole = magnitude / 1000000000u, frac = magnitude % 1000000000u;
        digits = frac % 1000 == 0 ? 6 : 9;
        if (digits == 6)
            frac /= 1000;
    } else {
        digits = c->decimals;
        uint64_t step = POW10[9 - digits];
        uint64_t units = magnitude / step + (magnitude % step >= step - step / 2 ? 1 : 0);
        whole = units / POW10[digits], frac = units % POW10[digits];
    }
    n += decimal(whole, 1, out + n);
    out[n++] = '.';
    return n + decimal(frac, digits, out + n);
}

static Py_ssize_t entry(const column_t *c, Py_ssize_t row)
{
    return c->indices != NULL ? (Py_ssize_t)c->indices[row] : row;
}

static int is_set(const column_t *c, Py_ssize_t row)
{
    if (c->null_constant)
        return 0;
    if (c->constant != NULL || c->valid == NULL)
        return 1;
    Py_ssize_t bit = c->first + (c->number ? row : entry(c, row));
    return (c->valid[bit >> 3] >> (bit & 7)) & 1;
}

/* The text of column ``c`` in ``row``: its bytes (``*len`` of them; a number is rendered
 * into ``scratch``), or NULL for a null value that has no text of its own. */
static const uint8_t *value_text(const column_t *c, Py_ssize_t row, uint8_t *scratch,
                                 Py_ssize_t *len)
{
    if (!is_set(c, row)) {
        *len = c->when_null_len;
        return c->when_null;
    }
    if (c->constant != NULL) {
        *len = c->constant_len;
        return c->constant;
    }
    if (c->number) {
        *len = number_text(c, row, scratch);
        return scratch;
    }
    Py_ssize_t at = c->first + entry(c, row);
    *len = (Py_ssize_t)c->offsets[at + 1] - c->offsets[at];
    return c->data + c->offsets[at];
}

/* A column's validity bitmap (None: no nulls) into views[0], covering ``bits`` rows. */
static int borrow_validity(PyObject *validity, Py_ssize_t bits, column_t *col, Py_buffer *views,
                           int *held)
{
    if (validity == Py_None)
        return 0;
    if (PyObject_GetBuffer(validity, &views[0], PyBUF_SIMPLE) < 0)
        return -1;
    held[0] = 1;
    if (views[0].len * 8 < bits) {
        PyErr_SetString(PyExc_ValueError, "row_join: a validity bitmap shorter than its rows");
        return -1;
    }
    col->valid = views[0].buf;
    return 0;
}

/* A number column: (kind, width, validity or None, data, offset, decimals, when_null or
 * None), kind "signed", "unsigned", "epoch" (int64 nanoseconds) or "epoch_rounded". */
static int borrow_numbers(PyObject *item, Py_ssize_t n, column_t *col, Py_buffer *views,
                          int *held)
{
    const char *kind;
    int width, decimals;
    PyObject *validity, *data, *when_null;
    Py_ssize_t first;
    if (!PyArg_ParseTuple(item, "siOOniO:row_join number column", &kind, &width, &validity,
                          &data, &first, &decimals, &when_null))
        return -1;
    col->number = strcmp(kind, "signed") == 0          ? SIGNED
                  : strcmp(kind, "unsigned") == 0      ? UNSIGNED
                  : strcmp(kind, "epoch") == 0         ? EPOCH
                  : strcmp(kind, "epoch_rounded") == 0 ? EPOCH_ROUNDED
                                                       : NUMBER_NONE;
    int epoch = col->number == EPOCH || col->number == EPOCH_ROUNDED;
    if (col->number == NUMBER_NONE || (width != 1 && width != 2 && width != 4 && width != 8) ||
        (epoch && width != 8) || (col->number == EPOCH_ROUNDED && (decimals < 1 || decimals > 9)) ||
        first < 0) {
        PyErr_SetString(PyExc_ValueError, "row_join: not a number column this can write");
        return -1;
    }
    col->width = width, col->decimals = decimals, col->first = first;
    if (when_null != Py_None) {
        if (!PyBytes_Check(when_null)) {
            PyErr_SetString(PyExc_TypeError, "row_join: a null's text must be bytes");
            return -1;
        }
        col->when_null = (const uint8_t *)PyBytes_AS_STRING(when_null);
        col->when_null_len = PyBytes_GET_SIZE(when_null);
    }
    if (PyObject_GetBuffer(data, &views[2], PyBUF_SIMPLE) < 0)
        return -1;
    held[2] = 1;
    if (views[2].len < (first + n) * width) {
        PyErr_SetString(PyExc_ValueError, "row_join: number data shorter than its rows");
        return -1;
    }
    col->values = views[2].buf;
    return borrow_validity(validity, first + n, col, views, held);
}

/* Whether ``row`` has text in column ``c``: a set value, or a null with text for it. */
static int present(const column_t *c, Py_ssize_t row)
{
    return is_set(c, row) || c->when_null != NULL;
}

/* The length of a present value's text, for a column that is not a set number. */
static Py_ssize_t text_len(const column_t *c, Py_ssize_t row)
{
    if (!is_set(c, row))
        return c->when_null_len;
    if (c->constant != NULL)
        return c->constant_len;
    Py_ssize_t at = c->first + entry(c, row);
    return (Py_ssize_t)c->offsets[at + 1] - c->offsets[at];
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
    if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) && PyUnicode_Check(PyTuple_GET_ITEM(item, 0)))
        return borrow_numbers(item, n, col, views, held);
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
    if (borrow_validity(validity, first + size, col, views, held) < 0)
        return -1;
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
    /* room for the text, row by row: exact for strings, NUMBER_TEXT for a number (its
     * text is rendered once, in the copy below; the result is cut to what was written) */
    Py_ssize_t bound = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t row = prefix.len + suffix.len, values = 0;
        int dropped = 0;
        for (Py_ssize_t j = 0; j < k; j++) {
            const column_t *c = &cols[j];
            if (!present(c, r)) {
                if (!skip_nulls) {
                    dropped = 1;
                    break;
                }
                continue;
            }
            row += (c->number && is_set(c, r) ? NUMBER_TEXT : text_len(c, r)) +
                   (values++ ? sep.len : 0);
        }
        if (!dropped && values)
            bound += row;
    }
    result = PyBytes_FromStringAndSize(NULL, bound);
    if (result == NULL)
        goto done;
    uint8_t *start = (uint8_t *)PyBytes_AS_STRING(result), *out = start, *out_end = start + bound;
    uint8_t scratch[NUMBER_TEXT];
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        int dropped = !skip_nulls, none = 1;
        for (Py_ssize_t j = 0; j < k; j++) {
            int here = present(&cols[j], r);
            none &= !here;
            if (!here && !skip_nulls)
                break;
            if (j == k - 1)
                dropped = 0;
        }
        if (dropped || none)
            continue;
        memcpy(out, prefix.buf, (size_t)prefix.len);
        out += prefix.len;
        Py_ssize_t values = 0, len;
        for (Py_ssize_t j = 0; j < k; j++) {
            const uint8_t *from = value_text(&cols[j], r, scratch, &len);
            if (from == NULL)
                continue;
            if (values++ && sep.len) {
                memcpy(out, sep.buf, (size_t)sep.len);
                out += sep.len;
            }
            /* a value read from a column's data or constant (not a rendered number, not a
             * null's text) may be moved with what follows it, up to that buffer's end */
            int in_buffer = from != scratch && from != cols[j].when_null;
            if (len <= 16 && in_buffer && from + 16 <= cols[j].end && out + 16 <= out_end)
                memcpy(out, from, 16); /* most values are short: one fixed-size move */
            else
                memcpy(out, from, (size_t)len);
            out += len;
        }
        memcpy(out, suffix.buf, (size_t)suffix.len);
        out += suffix.len;
    }
    Py_END_ALLOW_THREADS
    if (out - start != bound)
        _PyBytes_Resize(&result, out - start); /* NULL, with MemoryError, if it fails */
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
