/* The decoder's compiled fast path: plain frames decoded in one loop, without the GIL.
 *
 * Theory of operation: most captured frames are Ethernet (or raw IP), maybe VLAN-tagged,
 * carrying IPv4 or IPv6 with TCP, UDP, ICMP or a port-less protocol, whole and well formed.
 * ``decode_plain`` decodes exactly those, row by row, into the PacketBatch columns, and
 * lists every other row as *deferred*: truncated or malformed headers, fragments, IPv6
 * extension headers, tunnels (and UDP that might be Teredo), SCTP/DCCP, other link types.
 * The vectorised decoder (portlabel.capture.decode) then decodes the deferred rows, so
 * every row gets the same values whichever path decoded it; this file only has to be
 * right about the rows it keeps, and deferring is always allowed.
 *
 * Which numbers lead where is not written here: the caller passes lookup tables built
 * from portlabel.capture.nextlayer and portlabel.capture.tunnels (see plaindecode.py), so
 * the protocol facts stay declared once, in Python.
 */
#include "kernel.h"
#include <stdint.h>
#include <string.h>

/* classes of the link-type table */
enum { LINK_DEFER = 0, LINK_ETHER = 1, LINK_RAW = 2, LINK_IPV4 = 3, LINK_IPV6 = 4 };
/* classes of the EtherType table */
enum { ETH_DEFER = 0, ETH_IPV4 = 1, ETH_IPV6 = 2, ETH_VLAN = 3 };
/* classes of the IP protocol tables */
enum { L4_DEFER = 0, L4_TCP = 1, L4_UDP = 2, L4_ICMP = 3, L4_ICMPV6 = 4, L4_OTHER = 5 };

#define MAX_VLAN_TAGS 4
#define PREFETCH_ROWS 8
#define NO_VLAN (-1)

static inline uint32_t be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t be48(const uint8_t *p)
{
    return ((uint64_t)be16(p) << 32) | be32(p + 2);
}

typedef struct {
    const uint8_t *link, *ether, *v4, *v6, *udp_tunnel, *teredo_first, *icmp_id, *icmp6_id;
    const uint8_t *probe; /* [4][256]: transport.UDP_CONTENT_PROBES */
} Tables;

typedef struct {
    uint8_t *status, *ip_version, *ip_proto, *more_frags, *icmp_type, *icmp_code;
    uint64_t *src_mac, *dst_mac;
    int32_t *vlan, *inner_vlan;
    uint8_t *src_ip, *dst_ip; /* 16 bytes per row */
    uint32_t *ip_len, *ip_id, *tcp_seq, *tcp_ack, *payload_len, *l3_offset, *l4_offset;
    uint16_t *frag_offset, *sport, *dport, *tcp_flags, *icmp_id, *tcp_window;
    const uint8_t *frame; /* the current row's first byte, for the header offsets */
} Columns;

static inline uint32_t floor0(int64_t v) { return v > 0 ? (uint32_t)v : 0; }

/* tunnels.teredo_may_be for one UDP payload of ``size`` bytes (at least an IPv6 header's
 * 40 of them captured): an IPv6 header filling the payload, right at its start or after
 * an 8-byte origin indicator, or an authentication indicator. */
static int teredo_may_be(const uint8_t *payload, int64_t size)
{
    uint8_t first = payload[0], second = payload[1];
    if ((first >> 4) == 6 && (int64_t)be16(payload + 4) + 40 == size)
        return 1;
    if (first == 0 && second == 0 && (payload[8] >> 4) == 6 &&
        (int64_t)be16(payload + 12) + 8 + 40 == size)
        return 1;
    return first == 0 && second == 1;
}

/* The transport header at p (end: end of the capture), for the row i of IP version
 * ``version`` whose IP payload is ``rest`` bytes; 0 when the row must be deferred. */
static int transport(const uint8_t *p, const uint8_t *end, int cls, int version, int64_t rest,
                     const Tables *t, Columns *c, Py_ssize_t i)
{
    switch (cls) {
    case L4_TCP: {
        if (p + 20 > end)
            return 0;
        uint32_t data_offset = (p[12] >> 4) * 4;
        if (data_offset < 20)
            return 0;
        c->sport[i] = (uint16_t)be16(p);
        c->dport[i] = (uint16_t)be16(p + 2);
        c->tcp_seq[i] = be32(p + 4);
        c->tcp_ack[i] = be32(p + 8);
        c->tcp_flags[i] = (uint16_t)(be16(p + 12) & 0x01FF);
        c->tcp_window[i] = (uint16_t)be16(p + 14);
        c->payload_len[i] = floor0(rest - data_offset);
        return 1;
    }
    case L4_UDP: {
        if (p + 8 > end)
            return 0;
        uint32_t sport = be16(p), dport = be16(p + 2);
        if (t->udp_tunnel[sport] || t->udp_tunnel[dport])
            return 0;
        const uint8_t *payload = p + 8;
        int64_t size = rest - 8;
        if (version == 4 && size >= 40 && payload + 40 <= end && t->teredo_first[payload[0]] &&
            teredo_may_be(payload, size))
            return 0; /* may be Teredo: the vectorised decoder looks closer */
        if (size >= 8 && payload + 8 <= end &&
            (t->probe[payload[0]] & t->probe[256 + payload[1]] & t->probe[512 + payload[2]] &
             t->probe[768 + payload[3]]))
            return 0; /* may be a tunnel found by content (GTP-U, AYIYA) */
        c->sport[i] = (uint16_t)sport;
        c->dport[i] = (uint16_t)dport;
        c->payload_len[i] = floor0(size);
        return 1;
    }
    case L4_ICMP:
    case L4_ICMPV6: {
        if (p + 8 > end)
            return 0;
        const uint8_t *with_id = cls == L4_ICMP ? t->icmp_id : t->icmp6_id;
        c->icmp_type[i] = p[0];
        c->icmp_code[i] = p[1];
        if (with_id[p[0]])
            c->icmp_id[i] = (uint16_t)be16(p + 4);
        c->payload_len[i] = floor0(rest - 8);
        return 1;
    }
    case L4_OTHER:
        c->payload_len[i] = floor0(rest);
        return 1;
    default:
        return 0;
    }
}

static int ipv4(const uint8_t *p, const uint8_t *end, const Tables *t, Columns *c,
                Py_ssize_t i)
{
    if (p + 20 > end || (p[0] >> 4) != 4)
        return 0;
    int64_t ihl = (p[0] & 0x0F) * 4;
    int64_t header_total = be16(p + 2), total = header_total;
    if (total == 0) /* TSO/LRO captures: the captured bytes are the length to decode */
        total = end - p;
    if (ihl < 20 || total < ihl || p + ihl > end)
        return 0;
    uint32_t frag = be16(p + 6);
    if (frag & 0x3FFF) /* a fragment: the vectorised decoder notes it for reassembly */
        return 0;
    int cls = t->v4[p[9]];
    if (cls == L4_DEFER)
        return 0;
    if (!transport(p + ihl, end, cls, 4, total - ihl, t, c, i))
        return 0;
    c->l3_offset[i] = (uint32_t)(p - c->frame);
    c->l4_offset[i] = (uint32_t)(p + ihl - c->frame);
    c->ip_version[i] = 4;
    uint8_t *src = c->src_ip + 16 * i, *dst = c->dst_ip + 16 * i;
    memset(src, 0, 10);
    memset(dst, 0, 10);
    src[10] = src[11] = dst[10] = dst[11] = 0xFF;
    memcpy(src + 12, p + 12, 4);
    memcpy(dst + 12, p + 16, 4);
    c->ip_proto[i] = p[9];
    c->ip_len[i] = (uint32_t)header_total; /* IP bytes as the header says, as Zeek counts */
    c->ip_id[i] = be16(p + 4);
    c->frag_offset[i] = 0;
    c->more_frags[i] = (frag >> 13) & 1;
    return 1;
}

static int ipv6(const uint8_t *p, const uint8_t *end, const Tables *t, Columns *c,
                Py_ssize_t i)
{
    if (p + 40 > end || (p[0] >> 4) != 6)
        return 0;
    int64_t header_payload = be16(p + 4), payload = header_payload;
    if (payload == 0) /* a jumbogram or a TSO capture: decode what was captured */
        payload = end - p - 40;
    int cls = t->v6[p[6]];
    if (cls == L4_DEFER)
        return 0;
    if (!transport(p + 40, end, cls, 6, payload, t, c, i))
        return 0;
    c->l3_offset[i] = (uint32_t)(p - c->frame);
    c->l4_offset[i] = (uint32_t)(p + 40 - c->frame);
    c->ip_version[i] = 6;
    memcpy(c->src_ip + 16 * i, p + 8, 16);
    memcpy(c->dst_ip + 16 * i, p + 24, 16);
    c->ip_proto[i] = p[6];
    c->ip_len[i] = (uint32_t)(header_payload + 40);
    return 1;
}

static int ip_by_version(const uint8_t *p, const uint8_t *end, const Tables *t, Columns *c,
                         Py_ssize_t i)
{
    if (p >= end)
        return 0;
    switch (p[0] >> 4) {
    case 4:
        return ipv4(p, end, t, c, i);
    case 6:
        return ipv6(p, end, t, c, i);
    default:
        return 0;
    }
}

static int ether(const uint8_t *p, const uint8_t *end, const Tables *t, Columns *c,
                 Py_ssize_t i)
{
    if (p + 14 > end)
        return 0;
    uint32_t ethertype = be16(p + 12);
    const uint8_t *next = p + 14;
    int32_t vid[MAX_VLAN_TAGS];
    int tags = 0;
    while (t->ether[ethertype] == ETH_VLAN) {
        if (tags == MAX_VLAN_TAGS || next + 4 > end)
            return 0;
        vid[tags++] = (int32_t)(be16(next) & 0x0FFF);
        ethertype = be16(next + 2);
        next += 4;
    }
    int ok;
    switch (t->ether[ethertype]) {
    case ETH_IPV4:
        ok = ipv4(next, end, t, c, i);
        break;
    case ETH_IPV6:
        ok = ipv6(next, end, t, c, i);
        break;
    default:
        return 0;
    }
    if (!ok)
        return 0;
    c->dst_mac[i] = be48(p);
    c->src_mac[i] = be48(p + 6);
    c->vlan[i] = tags > 0 ? vid[0] : NO_VLAN;
    c->inner_vlan[i] = tags > 1 ? vid[1] : NO_VLAN;
    return 1;
}

/* Decode the rows whose frames are plain; return how many were deferred (listed). */
static Py_ssize_t decode_rows(const uint8_t *buf, Py_ssize_t buflen, const int64_t *offset,
                              const uint32_t *caplen, const uint16_t *linktype, Py_ssize_t n,
                              const Tables *t, Columns *c, int64_t *deferred)
{
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Frames are hundreds of bytes apart, too far for the hardware prefetcher: ask for
         * the headers a few rows ahead while this one is decoded. */
        if (i + PREFETCH_ROWS < n && offset[i + PREFETCH_ROWS] >= 0 &&
            offset[i + PREFETCH_ROWS] <= buflen - 64) {
            __builtin_prefetch(buf + offset[i + PREFETCH_ROWS]);
            __builtin_prefetch(buf + offset[i + PREFETCH_ROWS] + 63);
        }
        int64_t start = offset[i];
        int ok = 0;
        if (start >= 0 && start <= buflen && (int64_t)caplen[i] <= buflen - start) {
            const uint8_t *p = buf + start, *end = p + caplen[i];
            c->frame = p;
            switch (t->link[linktype[i]]) {
            case LINK_ETHER:
                ok = ether(p, end, t, c, i);
                break;
            case LINK_RAW:
                ok = ip_by_version(p, end, t, c, i);
                break;
            case LINK_IPV4:
                ok = ipv4(p, end, t, c, i);
                break;
            case LINK_IPV6:
                ok = ipv6(p, end, t, c, i);
                break;
            default:
                break;
            }
        }
        if (!ok)
            deferred[k++] = i;
    }
    return k;
}

/* ---- the Python binding ------------------------------------------------------------ */

enum { N_IN = 4, N_TABLES = 9, N_OUT = 25 };

static const char *const OUT_NAMES[N_OUT] = {
    "status",    "src_mac",     "dst_mac",  "vlan",       "inner_vlan", "ip_version",
    "src_ip",    "dst_ip",      "ip_proto", "ip_len",     "ip_id",      "frag_offset",
    "more_frags", "sport",      "dport",    "tcp_flags",  "tcp_seq",    "tcp_ack",
    "payload_len", "icmp_type", "icmp_code", "icmp_id", "tcp_window", "l3_offset",
    "l4_offset",
};
/* bytes per row of each output column, in OUT_NAMES order */
static const Py_ssize_t OUT_WIDTH[N_OUT] = {1, 8, 8, 4, 4, 1, 16, 16, 1, 4, 4,
                                            2, 1, 2, 2, 2, 4, 4, 4, 1, 1, 2, 2, 4, 4};
static const Py_ssize_t TABLE_LEN[N_TABLES] = {65536, 65536, 256, 256, 65536,
                                                256,   256,   256, 1024};

static PyObject *decode_plain(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *inputs, *tables, *outputs, *deferred_obj;
    if (!PyArg_ParseTuple(args, "O!O!O!O:decode_plain", &PyTuple_Type, &inputs, &PyTuple_Type,
                          &tables, &PyTuple_Type, &outputs, &deferred_obj))
        return NULL;
    if (PyTuple_GET_SIZE(inputs) != N_IN || PyTuple_GET_SIZE(tables) != N_TABLES ||
        PyTuple_GET_SIZE(outputs) != N_OUT) {
        PyErr_Format(PyExc_ValueError, "decode_plain takes %d inputs, %d tables, %d outputs",
                     N_IN, N_TABLES, N_OUT);
        return NULL;
    }
    Py_buffer in[N_IN], tab[N_TABLES], out[N_OUT], deferred;
    int got_in = 0, got_tab = 0, got_out = 0, got_deferred = 0;
    PyObject *result = NULL;
    for (; got_in < N_IN; got_in++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(inputs, got_in), &in[got_in],
                               PyBUF_C_CONTIGUOUS) < 0)
            goto done;
    for (; got_tab < N_TABLES; got_tab++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tables, got_tab), &tab[got_tab],
                               PyBUF_C_CONTIGUOUS) < 0)
            goto done;
    for (; got_out < N_OUT; got_out++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(outputs, got_out), &out[got_out],
                               PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
            goto done;
    if (PyObject_GetBuffer(deferred_obj, &deferred, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    got_deferred = 1;

    Py_ssize_t n = in[1].len / 8;
    if (in[1].len != 8 * n || in[2].len != 4 * n || in[3].len != 2 * n ||
        deferred.len != 8 * n) {
        PyErr_SetString(PyExc_ValueError,
                        "offset (int64), caplen (uint32), linktype (uint16) and deferred "
                        "(int64) must have one element per row");
        goto done;
    }
    for (int j = 0; j < N_TABLES; j++)
        if (tab[j].len != TABLE_LEN[j]) {
            PyErr_Format(PyExc_ValueError, "table %d has %zd bytes, not %zd", j, tab[j].len,
                         TABLE_LEN[j]);
            goto done;
        }
    for (int j = 0; j < N_OUT; j++)
        if (out[j].len != OUT_WIDTH[j] * n) {
            PyErr_Format(PyExc_ValueError, "column %s has %zd bytes, not %zd", OUT_NAMES[j],
                         out[j].len, OUT_WIDTH[j] * n);
            goto done;
        }
    Tables t = {tab[0].buf, tab[1].buf, tab[2].buf, tab[3].buf, tab[4].buf,
                tab[5].buf, tab[6].buf, tab[7].buf, tab[8].buf};
    Columns c = {
        .status = out[0].buf,       .src_mac = out[1].buf,     .dst_mac = out[2].buf,
        .vlan = out[3].buf,         .inner_vlan = out[4].buf,  .ip_version = out[5].buf,
        .src_ip = out[6].buf,       .dst_ip = out[7].buf,      .ip_proto = out[8].buf,
        .ip_len = out[9].buf,       .ip_id = out[10].buf,      .frag_offset = out[11].buf,
        .more_frags = out[12].buf,  .sport = out[13].buf,      .dport = out[14].buf,
        .tcp_flags = out[15].buf,   .tcp_seq = out[16].buf,    .tcp_ack = out[17].buf,
        .payload_len = out[18].buf, .icmp_type = out[19].buf,  .icmp_code = out[20].buf,
        .icmp_id = out[21].buf,     .tcp_window = out[22].buf, .l3_offset = out[23].buf,
        .l4_offset = out[24].buf,
    };
    Py_ssize_t k;
    Py_BEGIN_ALLOW_THREADS
    k = decode_rows(in[0].buf, in[0].len, in[1].buf, in[2].buf, in[3].buf, n, &t, &c,
                    deferred.buf);
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(k);
done:
    release_buffers(in, got_in);
    release_buffers(tab, got_tab);
    release_buffers(out, got_out);
    if (got_deferred)
        PyBuffer_Release(&deferred);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_plain", decode_plain, METH_VARARGS,
     "decode_plain(inputs, tables, outputs, deferred) -> number of deferred rows\n\n"
     "inputs: (buf, offset, caplen, linktype); tables and outputs: see plaindecode.py."},
    {NULL, NULL, 0, NULL},
};

PORTLABEL_MODULE(_plaindecode,
                 "The decoder's compiled fast path for plain frames (see plaindecode.py).",
                 methods)
