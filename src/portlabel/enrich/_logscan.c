/* Zeek log blocks scanned in C: where the lines are (splice.py), and chosen top-level
 * fields of JSON-lines records (zeek_json.py).
 *
 * line_bounds(block) -> (starts, ends): int64 start and end (exclusive of the newline)
 * of every line, as bytes; a last line without a newline counts, an empty block has none.
 *
 * scan_fields(block, starts, ends, names, status, closes, kinds, ints, spans): for each
 * line block[starts[i]:ends[i]], which must hold one JSON object, the value of each
 * top-level key in ``names`` (the last one when a key repeats, as json.loads keeps):
 * its kind, an integer's value, a string's span (inside the quotes), and where the
 * object's closing brace is. A name given as (name, values) gets, for a string value
 * without escapes, its place among those values in ``ints`` (-1: none of them).
 *
 * The check is stricter than json.loads, never laxer: a line this passes (status OK) is
 * one json.loads reads as an object, with the same values for the chosen keys. It
 * checks the whole grammar (RFC 8259: literals, numbers, escapes, nesting, no control
 * byte inside a string, nothing but whitespace after the object) and that every byte is
 * well-formed UTF-8 (no surrogate code points: json.loads would accept those, so such a
 * line is left to it). Anything else gets another status, for the caller to hand the
 * block to json.loads: MALFORMED (not one valid JSON object), ODD (valid, but a key is
 * written with an escape, so it cannot be compared byte for byte, or the object is
 * empty). Runs without the GIL.
 */
#include "kernel.h"

enum { OK = 0, MALFORMED = 1, ODD = 2 };
enum { ABSENT = 0, NUL = 1, INT = 2, STRING = 3, ESCAPED_STRING = 4, OTHER = 5 };
#define MAX_NAMES 16
#define MAX_DEPTH 512

typedef struct {
    const uint8_t *p, *end;
} cursor_t;

static void skip_ws(cursor_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hex(uint8_t b)
{
    return (b >= '0' && b <= '9') || ((b | 0x20) >= 'a' && (b | 0x20) <= 'f');
}

/* One UTF-8 sequence starting at c->p (its first byte >= 0x80); 0 when malformed, or a
 * surrogate, or an overlong form. */
static int utf8_sequence(cursor_t *c)
{
    const uint8_t *s = c->p;
    Py_ssize_t room = c->end - s;
    uint8_t b = s[0];
    int n;
    uint32_t cp;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2;
        cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        cp = b & 0x07;
    } else
        return 0;
    if (room < n)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    c->p += n;
    return 1;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The bytes a string holds as they are: printable ASCII but the quote and the backslash */
static uint8_t plain[256];

static void init_plain(void)
{
    for (int b = 0x20; b < 0x80; b++)
        plain[b] = b != '"' && b != '\\';
}

/* A string whose opening quote is at c->p; leaves c->p after the closing quote. 0 when
 * malformed; *escaped tells whether it holds a backslash escape. */
static int string(cursor_t *c, int *escaped)
{
    c->p++;
    *escaped = 0;
    while (c->p < c->end) {
        /* eight bytes at a time while none is a quote, a backslash, a control byte or
         * the start of a multi-byte sequence (each test exact for "any byte"), then byte
         * by byte up to the one that is */
        while (c->end - c->p >= 8) {
            uint64_t w;
            memcpy(&w, c->p, 8);
            uint64_t quote = w ^ 0x2222222222222222ULL, slash = w ^ 0x5C5C5C5C5C5C5C5CULL;
            uint64_t hits = ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) |
                            ((w - 0x2020202020202020ULL) & ~w) | w;
            if (hits & HIGHS)
                break;
            c->p += 8;
        }
        while (c->p < c->end && plain[*c->p])
            c->p++;
        if (c->p >= c->end)
            return 0;
        uint8_t b = *c->p;
        if (b == '"') {
            c->p++;
            return 1;
        }
        if (b < 0x20)
            return 0;
        if (b == '\\') {
            *escaped = 1;
            if (c->end - c->p < 2)
                return 0;
            uint8_t e = c->p[1];
            if (e == 'u') {
                if (c->end - c->p < 6 || !hex(c->p[2]) || !hex(c->p[3]) || !hex(c->p[4]) ||
                    !hex(c->p[5]))
                    return 0;
                c->p += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't')
                c->p += 2;
            else
                return 0;
        } else if (b >= 0x80) {
            if (!utf8_sequence(c))
                return 0;
        } else
            c->p++;
    }
    return 0;
}

/* A number at c->p (RFC 8259's grammar); *integer tells whether it is a plain integer of
 * at most 18 digits, and *value is then its value. */
static int number(cursor_t *c, int *integer, int64_t *value)
{
    int negative = 0, digits = 0;
    int64_t v = 0;
    *integer = 1;
    if (c->p < c->end && *c->p == '-') {
        negative = 1;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return 0;
    if (*c->p == '0')
        c->p++, digits = 1;
    else
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (digits < 18)
                v = v * 10 + (*c->p - '0');
            digits++;
            c->p++;
        }
    if (c->p < c->end && *c->p == '.') {
        *integer = 0;
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        *integer = 0;
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (digits > 18)
        *integer = 0;
    *value = negative ? -v : v;
    return 1;
}

static int literal(cursor_t *c, const char *word, Py_ssize_t len)
{
    if (c->end - c->p < len || memcmp(c->p, word, (size_t)len) != 0)
        return 0;
    c->p += len;
    return 1;
}

/* An object member's name and its colon, from c->p (whitespace first); leaves c->p
 * after the colon. The name's bytes (inside the quotes) in [*key, *key + *len), and
 * whether it holds an escape. 0 when malformed. */
static int member_name(cursor_t *c, const uint8_t **key, Py_ssize_t *len, int *escaped)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return 0;
    *key = c->p + 1;
    if (!string(c, escaped))
        return 0;
    *len = (c->p - 1) - *key;
    skip_ws(c);
    if (c->p >= c->end || *c->p != ':')
        return 0;
    c->p++;
    return 1;
}

/* Any JSON value at c->p, nesting kept on an explicit stack (no recursion: a line of a
 * million '[' must not overflow the C stack). Sets the kind and, for an integer, its value,
 * for a string its span. 0 when malformed. */
static int value(cursor_t *c, int *kind, int64_t *ints, const uint8_t **span_start,
                 const uint8_t **span_end)
{
    uint8_t stack[MAX_DEPTH];
    int depth = 0, escaped, integer;
    const uint8_t *name; /* nested members' names: checked, not kept */
    Py_ssize_t name_len;
    int64_t v;
    for (;;) {
        skip_ws(c);
        if (c->p >= c->end)
            return 0;
        uint8_t b = *c->p;
        if (b == '{' || b == '[') {
            if (depth == MAX_DEPTH)
                return 0;
            stack[depth++] = b;
            c->p++;
            skip_ws(c);
            if (c->p < c->end && *c->p == (b == '{' ? '}' : ']')) {
                c->p++;
                depth--;
            } else if (b == '{') {
                if (!member_name(c, &name, &name_len, &escaped)) /* the first member */
                    return 0;
                continue;
            } else
                continue; /* the first element */
            if (depth == 0 && kind != NULL)
                *kind = OTHER;
        } else if (b == '"') {
            const uint8_t *s = c->p + 1;
            if (!string(c, &escaped))
                return 0;
            if (depth == 0 && kind != NULL) {
                *kind = escaped ? ESCAPED_STRING : STRING;
                *span_start = s;
                *span_end = c->p - 1;
            }
        } else if (b == '-' || (b >= '0' && b <= '9')) {
            if (!number(c, &integer, &v))
                return 0;
            if (depth == 0 && kind != NULL) {
                *kind = integer ? INT : OTHER;
                *ints = v;
            }
        } else if (literal(c, "true", 4) || literal(c, "false", 5)) {
            if (depth == 0 && kind != NULL)
                *kind = OTHER;
        } else if (literal(c, "null", 4)) {
            if (depth == 0 && kind != NULL)
                *kind = NUL;
        } else
            return 0;
        /* after a value: close containers, or go on to the next element or member */
        for (;;) {
            if (depth == 0)
                return 1;
            skip_ws(c);
            if (c->p >= c->end)
                return 0;
            uint8_t open = stack[depth - 1], close = open == '{' ? '}' : ']';
            if (*c->p == close) {
                c->p++;
                depth--;
                if (depth == 0 && kind != NULL)
                    *kind = OTHER;
                continue;
            }
            if (*c->p != ',')
                return 0;
            c->p++;
            if (open == '{' && !member_name(c, &name, &name_len, &escaped))
                return 0;
            break;
        }
    }
}

#define MAX_VALUES 64

typedef struct {
    const uint8_t *text;
    Py_ssize_t len;
    int n_values; /* known values of a string-valued key: its place among them is reported */
    const uint8_t *value_text[MAX_VALUES];
    Py_ssize_t value_len[MAX_VALUES];
} name_t;

/* The place of the string value [s, e) among name ``nm``'s known values, or -1. */
static int64_t known_value(const name_t *nm, const uint8_t *s, const uint8_t *e)
{
    Py_ssize_t len = e - s;
    for (int i = 0; i < nm->n_values; i++)
        if (nm->value_len[i] == len && memcmp(nm->value_text[i], s, (size_t)len) == 0)
            return i;
    return -1;
}

/* One line: the object's members, the chosen ones recorded. */
static int line(cursor_t *c, const name_t *names, int k, int8_t *kinds, int64_t *ints,
                int64_t *spans, const uint8_t *base, int64_t *close)
{
    for (int j = 0; j < k; j++)
        kinds[j] = ABSENT;
    skip_ws(c);
    if (c->p >= c->end || *c->p != '{')
        return MALFORMED;
    c->p++;
    skip_ws(c);
    int status = OK;
    if (c->p < c->end && *c->p == '}') {
        status = ODD; /* {}: the caller writes no comma before the new keys */
        c->p++;
    } else
        for (;;) {
            const uint8_t *key;
            Py_ssize_t key_len;
            int escaped;
            if (!member_name(c, &key, &key_len, &escaped))
                return MALFORMED;
            if (escaped)
                status = ODD;
            int which = -1;
            for (int j = 0; j < k && !escaped; j++)
                if (names[j].len == key_len && key_len && names[j].text[0] == key[0] &&
                    names[j].text[key_len - 1] == key[key_len - 1] &&
                    memcmp(names[j].text, key, (size_t)key_len) == 0)
                    which = j;
            int kind = ABSENT;
            int64_t v = 0;
            const uint8_t *s = NULL, *e = NULL;
            if (!value(c, which >= 0 ? &kind : NULL, &v, &s, &e))
                return MALFORMED;
            if (which >= 0) {
                kinds[which] = (int8_t)kind;
                ints[which] = kind == STRING && names[which].n_values ? known_value(&names[which], s, e) : v;
                spans[2 * which] = s ? s - base : 0;
                spans[2 * which + 1] = s ? e - s : 0;
            }
            skip_ws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == '}') {
                c->p++;
                break;
            }
            return MALFORMED;
        }
    *close = (c->p - 1) - base;
    skip_ws(c);
    return c->p == c->end ? status : MALFORMED;
}

static PyObject *scan_fields(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *name_seq;
    Py_buffer v[8]; /* block, starts, ends, status, closes, kinds, ints, spans */
    if (!PyArg_ParseTuple(args, "y*y*y*Ow*w*w*w*w*:scan_fields", &v[0], &v[1], &v[2], &name_seq,
                          &v[3], &v[4], &v[5], &v[6], &v[7]))
        return NULL;
    name_t names[MAX_NAMES];
    int status = 0, k = 0;
    PyObject *fast = PySequence_Fast(name_seq, "scan_fields: names must be a sequence");
    if (fast == NULL) {
        release_buffers(v, 8);
        return NULL;
    }
    k = (int)PySequence_Fast_GET_SIZE(fast);
    if (k > MAX_NAMES)
        status = -1;
    for (int j = 0; status == 0 && j < k; j++) {
        /* a name, or (name, known values): all bytes, borrowed from ``fast`` */
        PyObject *item = PySequence_Fast_GET_ITEM(fast, j), *values = NULL;
        names[j].n_values = 0;
        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            values = PyTuple_GET_ITEM(item, 1);
            item = PyTuple_GET_ITEM(item, 0);
            if (!PyTuple_Check(values) || PyTuple_GET_SIZE(values) > MAX_VALUES)
                status = -1;
        }
        if (status || !PyBytes_Check(item)) {
            status = -1;
            break;
        }
        names[j].text = (const uint8_t *)PyBytes_AS_STRING(item);
        names[j].len = PyBytes_GET_SIZE(item);
        for (Py_ssize_t i = 0; values != NULL && i < PyTuple_GET_SIZE(values); i++) {
            PyObject *value = PyTuple_GET_ITEM(values, i);
            if (!PyBytes_Check(value)) {
                status = -1;
                break;
            }
            names[j].value_text[i] = (const uint8_t *)PyBytes_AS_STRING(value);
            names[j].value_len[i] = PyBytes_GET_SIZE(value);
            names[j].n_values = (int)i + 1;
        }
    }
    Py_ssize_t n = v[1].len / 8;
    if (v[1].len % 8 || v[2].len != 8 * n || v[3].len != n || v[4].len != 8 * n ||
        v[5].len != n * k || v[6].len != 8 * n * k || v[7].len != 16 * n * k)
        status = -1;
    const int64_t *starts = v[1].buf, *ends = v[2].buf;
    for (Py_ssize_t i = 0; status == 0 && i < n; i++)
        if (starts[i] < 0 || ends[i] < starts[i] || ends[i] > v[0].len)
            status = -1;
    if (status == 0) {
        if (!plain['a'])
            init_plain();
        const uint8_t *base = v[0].buf;
        uint8_t *st = v[3].buf;
        int64_t *closes = v[4].buf, *ints = v[6].buf, *spans = v[7].buf;
        int8_t *kinds = v[5].buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++) {
            cursor_t c = {base + starts[i], base + ends[i]};
            closes[i] = -1;
            st[i] = (uint8_t)line(&c, names, k, kinds + i * k, ints + i * k, spans + 2 * i * k,
                                  base, &closes[i]);
        }
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(fast);
    release_buffers(v, 8);
    return none_or_error(status, "scan_fields: a block, int64 starts and ends inside it, at "
                                 "most 16 names as bytes or (name, up to 64 known values), "
                                 "and outputs of n (status), n int64 "
                                 "(closes), n*k int8 (kinds), n*k int64 (ints), n*k*2 int64 "
                                 "(spans)");
}

static PyObject *line_bounds(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer block;
    if (!PyArg_ParseTuple(args, "y*:line_bounds", &block))
        return NULL;
    const char *base = block.buf, *end = base + block.len;
    Py_ssize_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    for (const char *p = base; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    Py_END_ALLOW_THREADS
    PyObject *starts = PyBytes_FromStringAndSize(NULL, 8 * n);
    PyObject *ends = PyBytes_FromStringAndSize(NULL, 8 * n);
    PyObject *result = NULL;
    if (starts != NULL && ends != NULL) {
        int64_t *s = (int64_t *)PyBytes_AS_STRING(starts), *e = (int64_t *)PyBytes_AS_STRING(ends);
        Py_BEGIN_ALLOW_THREADS
        Py_ssize_t i = 0;
        for (const char *p = base; p < end; i++) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            s[i] = p - base;
            e[i] = (nl ? nl : end) - base;
            p = nl ? nl + 1 : end;
        }
        Py_END_ALLOW_THREADS
        result = PyTuple_Pack(2, starts, ends);
    }
    Py_XDECREF(starts);
    Py_XDECREF(ends);
    PyBuffer_Release(&block);
    return result;
}

static PyMethodDef methods[] = {
    {"line_bounds", line_bounds, METH_VARARGS,
     "line_bounds(block) -> (starts, ends): each line's int64 start and end (exclusive of "
     "its newline), as bytes."},
    {"scan_fields", scan_fields, METH_VARARGS,
     "scan_fields(block, starts, ends, names, status, closes, kinds, ints, spans): the "
     "chosen top-level fields of each line's JSON object (see the module's C source)."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_logscan, "Zeek log blocks scanned in C: line bounds, JSON lines' fields.",
                 methods)
