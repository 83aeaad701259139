/* core/remote.c - the table of remotes and their send queues (remote.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "core/remote.h"
#include "core/send.h"
#include "util/alloc.h"

#define CH_REMOTE_BUCKETS 64

static ch_remote_t *remote_of(const ch_link_t *l)
{
    return CH_CONTAINER_OF(l, ch_remote_t, hlink);
}

static uint64_t remote_hash(uint8_t proto, const uint8_t *addr, uint16_t port)
{
    uint64_t h = 1469598103934665603ull;
    int i, n = proto == 6 ? 16 : 4;
    for (i = 0; i < n; i++) {
        h ^= addr[i];
        h *= 1099511628211ull;
    }
    h ^= port;
    h *= 1099511628211ull;
    h ^= proto;
    h *= 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_link(const ch_link_t *l)
{
    const ch_remote_t *r = remote_of(l);
    return remote_hash(r->ip_protocol, r->address, r->port);
}

int ch_remotes_init(ch_remotes_t *t)
{
    t->sends = 0;
    t->on_idle = NULL;
    t->last = NULL;
    return ch_htable_init(&t->table, CH_REMOTE_BUCKETS, hash_link);
}

static void free_link(ch_link_t *l)
{
    ch_free(remote_of(l));
}

void ch_remotes_free(ch_remotes_t *t)
{
    t->last = NULL;
    ch_htable_free(&t->table, free_link);
}

ch_remote_t *ch_remote_get(ch_remotes_t *t, uint8_t proto,
                           const uint8_t address[16], uint16_t port,
                           int create)
{
    ch_list_t *bucket;
    ch_link_t *l;
    ch_remote_t *r = t->last;
    /* A stream sends to one remote again and again: no hash for it. */
    if (r != NULL && r->port == port && r->ip_protocol == proto &&
        memcmp(r->address, address, 16) == 0)
        return r;
    bucket = ch_htable_bucket(&t->table, remote_hash(proto, address, port));
    for (l = ch_list_first(bucket); l != NULL; l = ch_list_next(bucket, l)) {
        r = remote_of(l);
        if (r->port == port && r->ip_protocol == proto &&
            memcmp(r->address, address, 16) == 0)
            return t->last = r;
    }
    if (!create)
        return NULL;
    r = ch_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->table = t;
    r->ip_protocol = proto;
    memcpy(r->address, address, 16);
    r->port = port;
    ch_list_init(&r->queue);
    ch_list_init(&r->inflight);
    ch_htable_add(&t->table, &r->hlink);
    return t->last = r;
}

typedef struct each_arg {
    void (*fn)(ch_remote_t *, void *);
    void *arg;
} each_arg_t;

static void each_link(ch_link_t *l, void *arg)
{
    each_arg_t *e = arg;
    e->fn(remote_of(l), e->arg);
}

void ch_remotes_each(ch_remotes_t *t, void (*fn)(ch_remote_t *, void *),
                     void *arg)
{
    each_arg_t e;
    e.fn = fn;
    e.arg = arg;
    ch_htable_each(&t->table, each_link, &e);
}

static void gc_link(ch_link_t *l, void *arg)
{
    ch_remote_t *r = remote_of(l);
    ch_remotes_t *t = arg;
    if (r->nconns == 0 && r->conn == NULL && r->pending == NULL &&
        ch_list_empty(&r->queue) && ch_list_empty(&r->inflight)) {
        ch_htable_remove(&t->table, l);
        if (t->last == r)
            t->last = NULL;
        ch_free(r);
    }
}

void ch_remotes_gc(ch_remotes_t *t)
{
    ch_htable_each(&t->table, gc_link, t);
}

void ch_remote_fail_queue(ch_remote_t *r, int status, const char *detail)
{
    /* Detach first: a callback may queue new sends, which are not part of
     * this failure and must not be failed with it. */
    ch_list_t q;
    ch_send_t *s;
    char why[CH_DETAIL_SIZE];
    snprintf(why, sizeof(why), "%s", detail ? detail : "");
    ch_list_init(&q);
    ch_list_move(&q, &r->queue);
    while ((s = ch_send_of(ch_list_pop(&q))) != NULL)
        ch_remote_complete(s, status, why);
}

void ch_remote_expire_queue(ch_remote_t *r, uint64_t now)
{
    ch_send_t *s;
    /* Queued in order, so their deadlines are too. */
    while ((s = ch_send_of(ch_list_first(&r->queue))) != NULL &&
           s->deadline_ <= now) {
        ch_list_remove(&r->queue, &s->link_);
        ch_remote_complete(s, CH_ETIMEDOUT,
                         r->pending != NULL
                             ? "send timed out while connecting"
                             : "send timed out before the message was "
                               "written");
    }
}

ch_send_t *ch_remote_inflight_find(ch_remote_t *r,
                                   const uint8_t identity[CH_ID_SIZE])
{
    ch_link_t *l;
    for (l = ch_list_first(&r->inflight); l != NULL;
         l = ch_list_next(&r->inflight, l)) {
        ch_send_t *s = ch_send_of(l);
        if (memcmp(s->identity, identity, CH_ID_SIZE) == 0)
            return s;
    }
    return NULL;
}
