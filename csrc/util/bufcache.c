/* util/bufcache.c - kept buffers for big messages (bufcache.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "util/alloc.h"
#include "util/bufcache.h"

uint8_t *ch_bufcache_get(ch_bufcache_t *c, uint32_t size, uint32_t *cap)
{
    int i, best = -1;
    c->used = 1;
    for (i = 0; i < c->n; i++)
        if (c->cap[i] >= size && (best < 0 || c->cap[i] < c->cap[best]))
            best = i;
    if (best >= 0 && c->cap[best] / 2 <= size) {
        uint8_t *buf = c->buf[best];
        *cap = c->cap[best];
        c->bytes -= *cap;
        c->n--;
        c->buf[best] = c->buf[c->n];
        c->cap[best] = c->cap[c->n];
        return buf;
    }
    *cap = size;
    return ch_malloc(size);
}

void ch_bufcache_put(ch_bufcache_t *c, uint8_t *buf, uint32_t cap)
{
    if (!c->closing && c->n < CH_BUFCACHE_SLOTS &&
        c->bytes + cap <= CH_BUFCACHE_KEEP) {
        c->buf[c->n] = buf;
        c->cap[c->n++] = cap;
        c->bytes += cap;
        return;
    }
    ch_free(buf);
}

static void trim(ch_bufcache_t *c)
{
    while (c->n > 0)
        ch_free(c->buf[--c->n]);
    c->bytes = 0;
}

void ch_bufcache_tick(ch_bufcache_t *c)
{
    if (!c->used)
        trim(c);
    c->used = 0;
}

void ch_bufcache_close(ch_bufcache_t *c)
{
    c->closing = 1;
    trim(c);
}
