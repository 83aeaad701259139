/* tests/fuzz/model.h - an independent model of the wire format
 * (docs/protocol.md), written from the document and not from csrc/wire:
 * the fuzz harnesses compare the core's reader and wire module with it.
 * Whole-buffer, not incremental: it sees all the bytes at once. */
#ifndef CH_FUZZ_MODEL_H
#define CH_FUZZ_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define M_HANDSHAKE 18 /* port (2), identity (16) */
#define M_HEADER 27    /* identity (16), serial, data_len (4 each), header_len (2), type (1) */
#define M_REQ_ACK 1
#define M_ACK 2
#define M_NOOP 4
#define M_REJECT 8
#define M_REJECT_MAX 180

enum { EV_HANDSHAKE = 1, EV_CONTROL, EV_MESSAGE, EV_REJECT, EV_ERROR };

typedef struct {
    int kind;
    uint32_t a;   /* handshake: port; others: the type */
    uint32_t len; /* payload (header + data) or reason length */
    uint64_t sum; /* FNV-1a of the payload or reason, and of the identity */
} m_event_t;

static inline uint64_t m_fnv(uint64_t h, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

#define M_FNV0 14695981039346656037ULL

static inline uint32_t m_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Is a header with these fields allowed (max: the receiver's
 * max_msg_size)?  The protocol's rules, one by one. */
static inline int m_header_ok(uint8_t type, uint16_t header_len, uint32_t data_len,
                              uint32_t max)
{
    if (type > 15)
        return 0; /* bits other than REQ_ACK, ACK, NOOP, REJECT */
    if (type & M_REJECT) /* a reject frame: exactly ACK|REJECT, a short reason */
        return type == (M_ACK | M_REJECT) && header_len == 0 && data_len <= M_REJECT_MAX;
    if (type & (M_ACK | M_NOOP)) /* control: one of them, nothing else, empty */
        return (type == M_ACK || type == M_NOOP) && header_len == 0 && data_len == 0;
    return (uint64_t)header_len + data_len <= max;
}

/* The events of buf, parsed whole; an incomplete item at the end gives
 * none.  Returns how many were written to out (at most cap). */
static inline size_t m_parse(const uint8_t *buf, size_t len, uint32_t max, m_event_t *out,
                             size_t cap)
{
    size_t pos = 0, n = 0;
    if (len < M_HANDSHAKE || cap == 0)
        return 0;
    out[n].kind = EV_HANDSHAKE;
    out[n].a = (uint32_t)buf[0] << 8 | buf[1];
    out[n].len = 0;
    out[n].sum = m_fnv(M_FNV0, buf + 2, 16);
    n++;
    pos = M_HANDSHAKE;
    while (n < cap && len - pos >= M_HEADER) {
        const uint8_t *h = buf + pos;
        uint32_t data_len = m_be32(h + 20);
        uint16_t header_len = (uint16_t)(h[24] << 8 | h[25]);
        uint8_t type = h[26];
        uint64_t body;
        pos += M_HEADER;
        if (!m_header_ok(type, header_len, data_len, max)) {
            out[n].kind = EV_ERROR;
            out[n].a = type;
            out[n].len = 0;
            out[n].sum = 0;
            return n + 1;
        }
        body = (uint64_t)header_len + data_len;
        if ((type & (M_ACK | M_NOOP)) && !(type & M_REJECT)) {
            out[n].kind = EV_CONTROL;
            out[n].a = type;
            out[n].len = 0;
            out[n].sum = m_fnv(M_FNV0, h, 16);
            n++;
            continue;
        }
        if (len - pos < body)
            return n; /* incomplete */
        out[n].kind = (type & M_REJECT) ? EV_REJECT : EV_MESSAGE;
        out[n].a = type;
        out[n].len = (uint32_t)body;
        out[n].sum = m_fnv(m_fnv(M_FNV0, h, 16), buf + pos, (size_t)body);
        n++;
        pos += (size_t)body;
    }
    return n;
}

#endif
