/* bridge/requests.c - requests and waits.  A request's reply is the
 * message that comes back with its identity: the table below, hashed by
 * identity, routes it to the thread that waits for it (a ch_wait_t) or to
 * an event, and drops the late replies of requests given up on.  A thread
 * may also wait for one send of its own (ch_bridge_send_wait).
 * The table's functions run with b->mu held (the loop thread looks up
 * every received message while requests are pending); the public waits
 * run on application threads and take it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "bridge/bridge_int.h"
#include "util/alloc.h"

#define CH_REQ_BUCKETS 16

static ch_req_t *req_of(const ch_link_t *l)
{
    return CH_CONTAINER_OF(l, ch_req_t, hlink);
}

static uint64_t hash_identity(const uint8_t *identity)
{
    uint64_t h;
    memcpy(&h, identity, sizeof(h)); /* identities are random */
    return h;
}

static uint64_t hash_link(const ch_link_t *l)
{
    return hash_identity(req_of(l)->identity);
}

int ch_reqtab_init(ch_bridge_t *b)
{
    ch_reqtab_t *t = &b->reqs;
    ch_list_init(&t->dropped);
    ch_list_init(&t->done);
    t->donefd_open = 0;
    t->pending = 0;
    if (ch_htable_init(&t->table, CH_REQ_BUCKETS, hash_link) != CH_OK)
        return CH_ENOMEM;
    if (uv_cond_init(&t->cv) != 0) {
        ch_htable_free(&t->table, NULL);
        return CH_ENOMEM;
    }
    return CH_OK;
}

static void free_link(ch_link_t *l)
{
    ch_free(req_of(l));
}

void ch_reqtab_free(ch_bridge_t *b)
{
    ch_link_t *l;
    /* Announced waits done and never taken: their waiter is gone (a
     * reply went with the node's memory). */
    while ((l = ch_list_pop(&b->reqs.done)) != NULL) {
        ch_wait_t *w = CH_CONTAINER_OF(l, ch_wait_t, dlink);
        if (--w->refs == 0)
            ch_free(w);
    }
    if (b->reqs.donefd_open)
        ch_wakefd_close(&b->reqs.donefd);
    ch_htable_free(&b->reqs.table, free_link);
    uv_cond_destroy(&b->reqs.cv);
}

void ch_reqtab_add(ch_bridge_t *b, ch_req_t *req,
                   const uint8_t identity[CH_ID_SIZE], uint64_t token,
                   ch_wait_t *waiter)
{
    memcpy(req->identity, identity, CH_ID_SIZE);
    req->token = token;
    req->waiter = waiter;
    req->dropped = 0;
    req->dlink.next = req->dlink.prev = NULL;
    ch_htable_add(&b->reqs.table, &req->hlink);
    b->reqs.pending++;
}

static ch_req_t *find(ch_reqtab_t *t, const uint8_t *identity)
{
    ch_list_t *bk = ch_htable_bucket(&t->table, hash_identity(identity));
    ch_link_t *l;
    for (l = ch_list_first(bk); l != NULL; l = ch_list_next(bk, l))
        if (memcmp(req_of(l)->identity, identity, CH_ID_SIZE) == 0)
            return req_of(l);
    return NULL;
}

/* Take an entry out of the table and free it. */
static void forget(ch_bridge_t *b, ch_req_t *req)
{
    ch_reqtab_t *t = &b->reqs;
    ch_htable_remove(&t->table, &req->hlink);
    if (req->dropped) {
        ch_list_remove(&t->dropped, &req->dlink);
    } else {
        t->pending--;
        if (req->waiter == NULL)
            ch_events_unreserve(b, 1); /* the reply event that won't come */
    }
    ch_free(req);
}

/* Forget dropped entries that are too old, or too many. */
static void expire_dropped(ch_bridge_t *b, uint64_t now)
{
    ch_reqtab_t *t = &b->reqs;
    ch_link_t *l;
    while ((l = ch_list_first(&t->dropped)) != NULL) {
        ch_req_t *oldest = CH_CONTAINER_OF(l, ch_req_t, dlink);
        if (t->dropped.len <= CH_DROPPED &&
            now - oldest->dropped_at < t->drop_ns)
            return;
        forget(b, oldest);
    }
}

/* Give up on a pending request: a reply that comes later is dropped. */
static void drop(ch_bridge_t *b, ch_req_t *req)
{
    ch_reqtab_t *t = &b->reqs;
    if (req->waiter == NULL)
        ch_events_unreserve(b, 1);
    req->dropped = 1;
    req->waiter = NULL;
    req->dropped_at = uv_hrtime();
    t->pending--;
    ch_list_push(&t->dropped, &req->dlink);
    expire_dropped(b, req->dropped_at);
}

void ch_requests_send_failed(ch_bridge_t *b,
                             const uint8_t identity[CH_ID_SIZE])
{
    ch_req_t *req = find(&b->reqs, identity);
    if (req != NULL && !req->dropped)
        forget(b, req); /* unless its reply came already */
}

int ch_requests_match(ch_bridge_t *b, ch_message_t *msg)
{
    ch_req_t *req;
    ch_wait_t *w;
    if (b->reqs.table.count == 0)
        return CH_REPLY_NONE;
    if (!ch_list_empty(&b->reqs.dropped))
        expire_dropped(b, uv_hrtime());
    req = find(&b->reqs, msg->identity);
    if (req == NULL)
        return CH_REPLY_NONE;
    if (req->dropped) {
        forget(b, req);
        return CH_REPLY_DROPPED;
    }
    if ((w = req->waiter) != NULL) {
        /* Straight to the waiting thread, even before the send's own
         * completion (a consumer replies before it acknowledges). */
        w->reply = msg;
        ch_wait_finish(b, w, CH_OK, "");
    } else {
        /* Into the place reserved for it. */
        ch_events_push(b, CH_EV_REPLY, CH_OK, req->token, msg, "");
    }
    b->reqs.pending--;
    ch_htable_remove(&b->reqs.table, &req->hlink);
    ch_free(req);
    return CH_REPLY_TAKEN;
}

static void close_one(ch_link_t *l, void *arg)
{
    ch_bridge_t *b = arg;
    ch_req_t *req = req_of(l);
    ch_wait_t *w = req->waiter;
    if (req->dropped)
        return;
    if (w != NULL && w->state == CH_W_WAITING)
        ch_wait_finish(b, w, CH_ECLOSED, "node closed");
    forget(b, req);
}

void ch_requests_close(ch_bridge_t *b)
{
    ch_htable_each(&b->reqs.table, close_one, b);
    uv_cond_broadcast(&b->reqs.cv);
}

/* ----------------------------------------------------------------- waits */

void ch_wait_finish(ch_bridge_t *b, ch_wait_t *w, int status,
                    const char *detail)
{
    ch_reqtab_t *t = &b->reqs;
    w->state = CH_W_DONE;
    w->status = status;
    snprintf(w->detail, CH_DETAIL_SIZE, "%s", detail ? detail : "");
    if (!w->announced) {
        uv_cond_broadcast(&t->cv);
        return;
    }
    ch_list_push(&t->done, &w->dlink);
    if (t->done.len == 1 && t->donefd_open)
        ch_wakefd_signal(&t->donefd);
}

static int wait_done(ch_bridge_t *b, ch_wait_t **wait, int timeout_ms,
                     ch_message_t **reply, char *detail, size_t detail_len)
{
    ch_wait_t *w = *wait;
    uint64_t deadline =
        uv_hrtime() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    uint64_t until = ch_spin_until(b, timeout_ms < 0 ? 0 : deadline);
    int status, free_it;
    uv_mutex_lock(&b->mu);
    while (w->state == CH_W_WAITING && ch_spin_step(b, until))
        ;
    while (w->state == CH_W_WAITING) {
        uint64_t now = uv_hrtime();
        if (timeout_ms >= 0 && now >= deadline) {
            uv_mutex_unlock(&b->mu);
            return CH_EAGAIN;
        }
        if (timeout_ms < 0)
            uv_cond_wait(&b->reqs.cv, &b->mu);
        else
            uv_cond_timedwait(&b->reqs.cv, &b->mu, deadline - now);
    }
    status = w->status;
    if (detail != NULL && detail_len > 0)
        snprintf(detail, detail_len, "%s", status == CH_OK ? "" : w->detail);
    if (reply != NULL)
        *reply = w->reply;
    w->reply = NULL;
    *wait = NULL;
    free_it = --w->refs == 0;
    uv_mutex_unlock(&b->mu);
    if (free_it)
        ch_free(w);
    return status;
}

int ch_bridge_wait(ch_bridge_t *b, ch_wait_t **wait, int timeout_ms,
                   ch_message_t **reply, char *detail, size_t detail_len)
{
    if (reply != NULL)
        *reply = NULL;
    return wait_done(b, wait, timeout_ms, reply, detail, detail_len);
}

int ch_bridge_send_wait(ch_bridge_t *b, const ch_dest_t *dest,
                        const char *data, size_t data_len, const char *header,
                        size_t header_len, const uint8_t *identity,
                        int timeout_ms, ch_wait_t **wait, char *detail,
                        size_t detail_len)
{
    int rc = ch_submit(b, 0, dest, data, data_len, header, header_len,
                       identity, 0, wait);
    if (rc != CH_OK)
        return rc;
    return wait_done(b, wait, timeout_ms, NULL, detail, detail_len);
}

int ch_bridge_request_wait(ch_bridge_t *b, const ch_dest_t *dest,
                           const char *data, size_t data_len,
                           const char *header, size_t header_len,
                           int timeout_ms, ch_wait_t **wait,
                           ch_message_t **reply, char *detail,
                           size_t detail_len)
{
    int rc;
    *reply = NULL;
    rc = ch_submit(b, 0, dest, data, data_len, header, header_len, NULL,
                   CH_SEND_REQUEST, wait);
    if (rc != CH_OK)
        return rc;
    return wait_done(b, wait, timeout_ms, reply, detail, detail_len);
}

void ch_bridge_abandon(ch_bridge_t *b, ch_wait_t *w)
{
    ch_req_t *req;
    int free_it;
    if (w == NULL)
        return;
    uv_mutex_lock(&b->mu);
    if ((w->sc.flags & CH_SEND_REQUEST) &&
        (req = find(&b->reqs, w->sc.send.identity)) != NULL && !req->dropped)
        drop(b, req);
    if (w->reply != NULL && !b->closing) {
        /* A reply nobody will read: give its slot back. */
        ch_list_t one;
        ch_list_init(&one);
        ch_list_push(&one, &w->reply->link);
        ch_cmds_release(b, &one);
    }
    w->reply = NULL;
    if (ch_link_listed(&w->dlink)) {
        ch_list_remove(&b->reqs.done, &w->dlink);
        if (ch_list_empty(&b->reqs.done) && b->reqs.donefd_open)
            ch_wakefd_clear(&b->reqs.donefd);
    }
    if (w->state == CH_W_WAITING)
        w->state = CH_W_ABANDONED;
    free_it = --w->refs == 0;
    uv_mutex_unlock(&b->mu);
    if (free_it)
        ch_free(w);
}

int ch_bridge_start(ch_bridge_t *b, const ch_dest_t *dest, const char *data,
                    size_t data_len, const char *header, size_t header_len,
                    int request, ch_wait_t **wait)
{
    int flags = CH_SEND_ANNOUNCE | (request ? CH_SEND_REQUEST : 0);
    return ch_submit(b, 0, dest, data, data_len, header, header_len, NULL,
                     flags, wait);
}

int ch_bridge_done_fd(ch_bridge_t *b)
{
    ch_reqtab_t *t = &b->reqs;
    int fd = -1;
    uv_mutex_lock(&b->mu);
    if (!t->donefd_open && ch_wakefd_open(&t->donefd) == 0) {
        t->donefd_open = 1;
        if (!ch_list_empty(&t->done))
            ch_wakefd_signal(&t->donefd);
    }
    if (t->donefd_open)
        fd = t->donefd.rd;
    uv_mutex_unlock(&b->mu);
    return fd;
}

int ch_bridge_done(ch_bridge_t *b, ch_wait_t **out, int max)
{
    ch_reqtab_t *t = &b->reqs;
    ch_link_t *l;
    int n = 0;
    uv_mutex_lock(&b->mu);
    while (n < max && (l = ch_list_pop(&t->done)) != NULL)
        out[n++] = CH_CONTAINER_OF(l, ch_wait_t, dlink);
    if (ch_list_empty(&t->done) && t->donefd_open)
        ch_wakefd_clear(&t->donefd);
    uv_mutex_unlock(&b->mu);
    return n;
}

typedef struct by_token {
    uint64_t token;
    ch_req_t *found;
} by_token_t;

static void match_token(ch_link_t *l, void *arg)
{
    by_token_t *q = arg;
    ch_req_t *req = req_of(l);
    if (!req->dropped && req->waiter == NULL && req->token == q->token)
        q->found = req;
}

void ch_bridge_cancel(ch_bridge_t *b, uint64_t token)
{
    by_token_t q;
    q.token = token;
    q.found = NULL;
    uv_mutex_lock(&b->mu);
    ch_htable_each(&b->reqs.table, match_token, &q); /* rare: a scan */
    if (q.found != NULL)
        drop(b, q.found);
    uv_mutex_unlock(&b->mu);
}
