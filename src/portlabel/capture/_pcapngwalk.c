/* The pcapng packet-block walk, compiled, without the GIL (pcapng.walk_blocks in C).
 *
 * Theory of operation: consecutive Enhanced, Simple and obsolete Packet blocks are walked
 * and their framing checked; each fills one row of the caller's preallocated columns
 * (data offset, raw timestamp, options offset; captured and wire lengths, interface,
 * options length, comment count). The walk stops at any other block, at the end of the
 * data, when the rows are full, or at a framing error, and says which; pcapng.py handles
 * the rest exactly as after its Python version of this loop, which states the same rules.
 */
#include "kernel.h"
#include <stdint.h>

enum { SHB_TYPE = 0x0A0D0D0A, OPB = 2, SPB = 3, EPB = 6 };
enum { OPT_ENDOFOPT = 0, OPT_COMMENT = 1 };
enum { FULL, NEED_MORE, OTHER_BLOCK, BAD_LENGTH, BAD_TRAILER, BAD_BODY, BAD_IFACE };
#define MIN_BLOCK 12
#define MAX_BLOCK (256LL << 20)
#define EPB_FIXED 28
#define SPB_FIXED 12

static inline uint32_t u16(const uint8_t *b, int64_t p, int big)
{
    return big ? ((uint32_t)b[p] << 8) | b[p + 1] : ((uint32_t)b[p + 1] << 8) | b[p];
}

static inline uint32_t u32(const uint8_t *b, int64_t p, int big)
{
    return big ? ((uint32_t)b[p] << 24) | ((uint32_t)b[p + 1] << 16) |
                     ((uint32_t)b[p + 2] << 8) | b[p + 3]
               : ((uint32_t)b[p + 3] << 24) | ((uint32_t)b[p + 2] << 16) |
                     ((uint32_t)b[p + 1] << 8) | b[p];
}

static uint32_t count_comments(const uint8_t *b, int64_t q, int64_t opt_end, int big)
{
    uint32_t count = 0;
    while (q + 4 <= opt_end) {
        uint32_t code = u16(b, q, big);
        int64_t olen = u16(b, q + 2, big);
        if (code == OPT_ENDOFOPT || q + 4 + olen > opt_end)
            break;
        count += code == OPT_COMMENT;
        q += 4 + ((olen + 3) & ~3LL);
    }
    return count;
}

typedef struct {
    int64_t *data, *units, *opt;                 /* cols_i64 rows */
    uint32_t *cap, *wire, *iface, *optlen, *ncomm; /* cols_u32 rows */
} Cols;

static int walk(const uint8_t *b, int64_t end, int64_t *pp, int big, int64_t n_ifaces,
                int64_t spb_snaplen, const Cols *c, int64_t *pn, int64_t maxn)
{
    int64_t p = *pp, n = *pn;
    int status = FULL;
    while (n < maxn) {
        if (p + 8 > end) {
            status = NEED_MORE;
            break;
        }
        uint32_t btype = u32(b, p, big);
        if (btype != EPB && btype != SPB && btype != OPB) {
            status = OTHER_BLOCK;
            break;
        }
        int64_t blen = u32(b, p + 4, big);
        if (blen < MIN_BLOCK || blen % 4 != 0 || blen > MAX_BLOCK) {
            status = BAD_LENGTH;
            break;
        }
        if (p + blen > end) {
            status = NEED_MORE;
            break;
        }
        if (u32(b, p + blen - 4, big) != blen) {
            status = BAD_TRAILER;
            break;
        }
        int64_t data, opt, opt_end, cap, wire;
        uint64_t units = 0;
        uint32_t iface;
        int has_ts = 1;
        if (btype == SPB) {
            if (blen < SPB_FIXED + 4) {
                status = BAD_BODY;
                break;
            }
            if (n_ifaces == 0) {
                status = BAD_IFACE;
                break;
            }
            iface = 0;
            wire = u32(b, p + 8, big);
            cap = wire < blen - SPB_FIXED - 4 ? wire : blen - SPB_FIXED - 4;
            if (spb_snaplen > 0 && cap > spb_snaplen)
                cap = spb_snaplen;
            data = p + SPB_FIXED;
            has_ts = 0;
            opt = opt_end = p + blen - 4;
        } else {
            if (blen < EPB_FIXED + 4) {
                status = BAD_BODY;
                break;
            }
            iface = btype == EPB ? u32(b, p + 8, big) : u16(b, p + 8, big);
            if ((int64_t)iface >= n_ifaces) {
                status = BAD_IFACE;
                break;
            }
            units = ((uint64_t)u32(b, p + 12, big) << 32) | u32(b, p + 16, big);
            cap = u32(b, p + 20, big);
            wire = u32(b, p + 24, big);
            data = p + EPB_FIXED;
            opt = data + ((cap + 3) & ~3LL);
            opt_end = p + blen - 4;
            if (opt > opt_end) {
                status = BAD_BODY;
                break;
            }
        }
        c->data[n] = data;
        c->units[n] = (int64_t)units;
        c->opt[n] = has_ts ? opt : -1;
        c->cap[n] = (uint32_t)cap;
        c->wire[n] = (uint32_t)wire;
        c->iface[n] = iface;
        c->optlen[n] = (uint32_t)(opt_end - opt);
        c->ncomm[n] = opt < opt_end ? count_comments(b, opt, opt_end, big) : 0;
        n++;
        p += blen;
    }
    *pp = p;
    *pn = n;
    return status;
}

static PyObject *walk_pcapng(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buf, i64, u32s;
    long long p, n_ifaces, spb_snaplen, n, maxn;
    int big;
    if (!PyArg_ParseTuple(args, "y*LpLLw*w*LL:walk_pcapng", &buf, &p, &big, &n_ifaces,
                          &spb_snaplen, &i64, &u32s, &n, &maxn))
        return NULL;
    PyObject *result = NULL;
    int64_t width = i64.len / (3 * 8);
    if (i64.len != 3 * 8 * width || u32s.len != 5 * 4 * width || maxn > width || n < 0 ||
        n > maxn || p < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "walk_pcapng: int64 (3, size) and uint32 (5, size) columns, "
                        "0 <= n <= maxn <= size, p >= 0");
        goto done;
    }
    int64_t *ci = i64.buf;
    uint32_t *cu = u32s.buf;
    Cols c = {ci, ci + width, ci + 2 * width, cu, cu + width, cu + 2 * width, cu + 3 * width,
              cu + 4 * width};
    int64_t pos = p, rows = n;
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = walk(buf.buf, buf.len, &pos, big, n_ifaces, spb_snaplen, &c, &rows, maxn);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("LLi", (long long)rows, (long long)pos, status);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&i64);
    PyBuffer_Release(&u32s);
    return result;
}

static PyMethodDef methods[] = {
    {"walk_pcapng", walk_pcapng, METH_VARARGS,
     "walk_pcapng(buf, p, big, n_ifaces, spb_snaplen, cols_i64, cols_u32, n, maxn)\n"
     "-> (n, p, status): pcapng.walk_blocks' contract."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_pcapngwalk,
                 "The pcapng packet-block walk, compiled (see pcapng.py).",
                 methods)
