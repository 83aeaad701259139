/* remote.c - the table of remotes (IP version, address, port) and the
 * intrusive send queues hanging off them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_internal.h"

void ch_sendq_push(ch_sendq_t *q, ch_send_t *s)
{
    s->next_ = NULL;
    s->prev_ = q->tail;
    if (q->tail != NULL)
        q->tail->next_ = s;
    else
        q->head = s;
    q->tail = s;
    q->len++;
}

void ch_sendq_remove(ch_sendq_t *q, ch_send_t *s)
{
    if (s->prev_ != NULL)
        s->prev_->next_ = s->next_;
    else
        q->head = s->next_;
    if (s->next_ != NULL)
        s->next_->prev_ = s->prev_;
    else
        q->tail = s->prev_;
    s->next_ = s->prev_ = NULL;
    q->len--;
}

ch_send_t *ch_sendq_pop(ch_sendq_t *q)
{
    ch_send_t *s = q->head;
    if (s != NULL)
        ch_sendq_remove(q, s);
    return s;
}

static size_t remote_hash(uint8_t proto, const uint8_t *addr, uint16_t port)
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
    return (size_t)(h ^ (h >> 29));
}

static void grow(ch_node_t *node)
{
    size_t n = node->nbuckets * 2, i;
    ch_remote_t **b = ch_calloc(n, sizeof(*b));
    if (b == NULL)
        return; /* keep the old table: slower, still correct */
    for (i = 0; i < node->nbuckets; i++) {
        ch_remote_t *r, *next;
        for (r = node->buckets[i]; r != NULL; r = next) {
            size_t k = remote_hash(r->ip_protocol, r->address, r->port) % n;
            next = r->hnext;
            r->hnext = b[k];
            b[k] = r;
        }
    }
    ch_free(node->buckets);
    node->buckets = b;
    node->nbuckets = n;
}

ch_remote_t *ch_remote_get(ch_node_t *node, uint8_t proto,
                           const uint8_t address[16], uint16_t port,
                           int create)
{
    size_t k = remote_hash(proto, address, port) % node->nbuckets;
    ch_remote_t *r;
    for (r = node->buckets[k]; r != NULL; r = r->hnext)
        if (r->port == port && r->ip_protocol == proto &&
            memcmp(r->address, address, 16) == 0)
            return r;
    if (!create)
        return NULL;
    r = ch_calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->ip_protocol = proto;
    memcpy(r->address, address, 16);
    r->port = port;
    r->hnext = node->buckets[k];
    node->buckets[k] = r;
    node->nremotes++;
    if (node->nremotes > node->nbuckets * 2)
        grow(node);
    return r;
}

void ch_remote_fail_queue(ch_remote_t *remote, int status, const char *detail)
{
    /* Detach first: a callback may queue new sends, which are not part of
     * this failure and must not be failed with it. */
    ch_sendq_t q = remote->queue;
    ch_send_t *s;
    char why[CH_DETAIL_SIZE];
    snprintf(why, sizeof(why), "%s", detail ? detail : "");
    remote->queue.head = remote->queue.tail = NULL;
    remote->queue.len = 0;
    while ((s = ch_sendq_pop(&q)) != NULL)
        ch_send_complete(s, status, why);
}

/* Free remotes that nothing refers to any more. */
void ch_remote_gc(ch_node_t *node)
{
    size_t i;
    for (i = 0; i < node->nbuckets; i++) {
        ch_remote_t **pp = &node->buckets[i], *r;
        while ((r = *pp) != NULL) {
            if (r->nconns == 0 && r->conn == NULL && r->pending == NULL &&
                r->queue.len == 0 && r->inflight.len == 0) {
                *pp = r->hnext;
                node->nremotes--;
                ch_free(r);
            } else {
                pp = &r->hnext;
            }
        }
    }
}

void ch_remotes_free(ch_node_t *node)
{
    size_t i;
    for (i = 0; i < node->nbuckets; i++) {
        ch_remote_t *r, *next;
        for (r = node->buckets[i]; r != NULL; r = next) {
            next = r->hnext;
            ch_free(r);
        }
        node->buckets[i] = NULL;
    }
    node->nremotes = 0;
}
