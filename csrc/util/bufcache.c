/* util/bufcache.c - kept buffers for big messages (bufcache.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/bufcache.h"

/* Each buffer starts CH_BUF_PREFIX bytes into its allocation; its size is
 * kept there (16 bytes keep the buffer aligned as malloc's memory is). */
#define CH_BUF_PREFIX 16

/* The process's pool of buffers handed back by the application, from any
 * thread.  Its lock is held for a few instructions.  A message's path only
 * tries it: when it is busy a buffer is freed, or a fresh one allocated,
 * instead.  A cache that opens or closes tries a bounded number of times
 * (lock_hard).  So a child forked while another thread held the lock
 * cannot hang on it. */
static struct {
    uint8_t *buf[CH_BUFCACHE_SLOTS];
    int n;
    size_t bytes;
    int used;  /* since a tick looked */
    int caches; /* nodes' caches open: with none, nothing is kept */
    pid_t pid;  /* of the process they are open in (not a forked child) */
} pool;
static char pool_lock;

static int try_lock(void)
{
    return !__atomic_test_and_set(&pool_lock, __ATOMIC_ACQUIRE);
}

/* For what must happen (a cache opens or closes): tries a bounded number
 * of times, yielding the CPU to a holder in between (0: the lock stayed
 * busy, as in a child forked while another thread held it). */
static int lock_hard(void)
{
    int i;
    for (i = 0; i < 10000; i++) {
        if (try_lock())
            return 1;
        sched_yield();
    }
    return 0;
}

static void unlock(void)
{
    __atomic_clear(&pool_lock, __ATOMIC_RELEASE);
}

uint8_t *ch_bufcache_fresh(uint32_t size)
{
    uint8_t *p = ch_malloc((size_t)size + CH_BUF_PREFIX);
    if (p == NULL)
        return NULL;
    memcpy(p, &size, sizeof(size));
    return p + CH_BUF_PREFIX;
}

static void release(uint8_t *buf)
{
    ch_free(buf - CH_BUF_PREFIX);
}

uint32_t ch_bufcache_size(const uint8_t *buf)
{
    uint32_t size;
    memcpy(&size, buf - CH_BUF_PREFIX, sizeof(size));
    return size;
}

/* The smallest of bufs[0..n) that holds size bytes without wasting more
 * than half of itself, taken out of the array; NULL: none. */
static uint8_t *take_fit(uint8_t **bufs, int *n, size_t *bytes, uint32_t size)
{
    int i, best = -1;
    uint32_t best_size = 0;
    uint8_t *buf;
    for (i = 0; i < *n; i++) {
        uint32_t s = ch_bufcache_size(bufs[i]);
        if (s >= size && (best < 0 || s < best_size)) {
            best = i;
            best_size = s;
        }
    }
    if (best < 0 || best_size / 2 > size)
        return NULL;
    buf = bufs[best];
    *bytes -= best_size;
    bufs[best] = bufs[--*n];
    return buf;
}

void ch_bufcache_init(ch_bufcache_t *c)
{
    memset(c, 0, sizeof(*c));
    if (lock_hard()) {
        if (pool.pid != getpid()) { /* the first, or the first in a child */
            pool.pid = getpid();
            pool.caches = 0;
        }
        pool.caches++;
        unlock();
    }
}

uint8_t *ch_bufcache_get(ch_bufcache_t *c, uint32_t size)
{
    uint8_t *buf;
    c->used = 1;
    buf = take_fit(c->buf, &c->n, &c->bytes, size);
    if (buf == NULL && try_lock()) {
        if (pool.n > 0) {
            buf = take_fit(pool.buf, &pool.n, &pool.bytes, size);
            pool.used = 1;
        }
        unlock();
    }
    return buf != NULL ? buf : ch_bufcache_fresh(size);
}

void ch_bufcache_put(ch_bufcache_t *c, uint8_t *buf)
{
    uint32_t size = ch_bufcache_size(buf);
    if (!c->closing && c->n < CH_BUFCACHE_SLOTS &&
        c->bytes + size <= CH_BUFCACHE_KEEP) {
        c->buf[c->n++] = buf;
        c->bytes += size;
        return;
    }
    release(buf);
}

void ch_bufcache_return(uint8_t *buf)
{
    uint32_t size = ch_bufcache_size(buf);
    if (try_lock()) {
        if (pool.caches > 0 && pool.pid == getpid() &&
            pool.n < CH_BUFCACHE_SLOTS &&
            pool.bytes + size <= CH_BUFCACHE_KEEP) {
            pool.buf[pool.n++] = buf;
            pool.bytes += size;
            pool.used = 1;
            buf = NULL;
        }
        unlock();
    }
    if (buf != NULL)
        release(buf);
}

/* Empty the process's pool; tick: only if nothing came or went since the
 * last look (and never wait for the lock); else a cache closes. */
static void pool_trim(int tick)
{
    uint8_t *out[CH_BUFCACHE_SLOTS];
    int n = 0;
    if (!(tick ? try_lock() : lock_hard()))
        return; /* the next tick, or close, tries again */
    if (!tick)
        pool.caches--;
    if (!tick || !pool.used) {
        n = pool.n;
        memcpy(out, pool.buf, (size_t)n * sizeof(out[0]));
        pool.n = 0;
        pool.bytes = 0;
    }
    pool.used = 0;
    unlock();
    while (n > 0)
        release(out[--n]); /* outside the lock */
}

static void trim(ch_bufcache_t *c)
{
    while (c->n > 0)
        release(c->buf[--c->n]);
    c->bytes = 0;
}

void ch_bufcache_tick(ch_bufcache_t *c)
{
    if (!c->used)
        trim(c);
    c->used = 0;
    pool_trim(1);
}

void ch_bufcache_close(ch_bufcache_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    trim(c);
    pool_trim(0);
}
