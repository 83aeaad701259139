/* bridge/submit.c - commands from application threads to the loop
 * thread: sends (one, waited, or a batch) and releases, queued under
 * b->mu with one wake-up per batch (wake.c).  Every public function here
 * runs on an application thread and takes mu; the ch_cmds_* helpers run
 * with it held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include "bridge/bridge_int.h"
#include "util/alloc.h"

int ch_cmds_init(ch_bridge_t *b)
{
    ch_list_init(&b->cmds.queue);
    ch_list_init(&b->cmds.rels);
    ch_list_init(&b->cmds.pool);
    ch_list_init(&b->cmds.spare);
    ch_rng_seed(&b->cmds.rng);
    if (uv_cond_init(&b->cmds.post_cv) != 0)
        return CH_ENOMEM;
    b->cmds.post_cv_ready = 1;
    return CH_OK;
}

void ch_cmds_posts_done(ch_bridge_t *b)
{
    ch_cmds_t *c = &b->cmds;
    if (c->posts_done == 0)
        return;
    c->posted -= c->posts_done;
    c->posted_bytes -= c->posts_done_bytes;
    c->posts_done = c->posts_done_bytes = 0;
    if (c->post_waiters > 0 && c->posted < CH_POST_HWM &&
        c->posted_bytes < CH_POST_HWM_BYTES)
        uv_cond_broadcast(&c->post_cv);
}

/* A post waits while the posts not yet done are over the high-water mark
 * (one is always let through: a big message alone may exceed the bytes),
 * CH_POST_SLICE_MS at most: the caller calls again, and checks meanwhile
 * for its own deadline and for signals (Ctrl-C in a binding); [mu].
 * CH_OK, CH_EAGAIN or CH_ECLOSED. */
static int post_wait(ch_bridge_t *b)
{
    ch_cmds_t *c = &b->cmds;
    uint64_t deadline = 0;
    int rc = CH_OK;
    while (!b->closing && !b->closed && c->posted > 0 &&
           (c->posted >= CH_POST_HWM || c->posted_bytes >= CH_POST_HWM_BYTES)) {
        uint64_t now = uv_hrtime();
        if (deadline == 0)
            deadline = now + (uint64_t)CH_POST_SLICE_MS * 1000000u;
        if (now >= deadline) {
            rc = CH_EAGAIN;
            break;
        }
        c->post_waiters++;
        uv_cond_timedwait(&c->post_cv, &b->mu, deadline - now);
        c->post_waiters--;
    }
    if (rc == CH_OK && (b->closing || b->closed))
        rc = CH_ECLOSED;
    return rc;
}

int ch_cmds_queues_empty(const ch_bridge_t *b)
{
    return ch_list_empty(&b->cmds.queue) && ch_list_empty(&b->cmds.rels);
}

void ch_cmds_release(ch_bridge_t *b, ch_list_t *msgs)
{
    int was_empty = ch_cmds_queues_empty(b);
    ch_list_move(&b->cmds.rels, msgs);
    ch_wake_queued(b, was_empty);
}

void ch_cmds_queue(ch_bridge_t *b, ch_cmd_t *cmd)
{
    int was_empty = ch_cmds_queues_empty(b);
    ch_list_push(&b->cmds.queue, &cmd->link);
    ch_wake_queued(b, was_empty);
}

void ch_cmds_free(ch_bridge_t *b)
{
    ch_link_t *l;
    /* Commands that raced with close never reached the node. */
    while ((l = ch_list_pop(&b->cmds.queue)) != NULL) {
        ch_cmd_t *cmd = CH_CONTAINER_OF(l, ch_cmd_t, link);
        if (cmd->kind == CH_CMD_QUERY)
            continue; /* its caller's, who unlinks it (ch_bridge_query) */
        if (cmd->kind == CH_CMD_WAITED) {
            ch_wait_t *w = CH_CONTAINER_OF(cmd, ch_wait_t, sc.cmd);
            /* A request failed at close may be listed as done too. */
            if (ch_link_listed(&w->dlink))
                ch_list_remove(&b->reqs.done, &w->dlink);
            ch_free(w);
        } else
            ch_free(cmd); /* a ch_sendcmd_t or ch_batch_t starts with it */
    }
    ch_list_move(&b->cmds.pool, &b->cmds.spare);
    while ((l = ch_list_pop(&b->cmds.pool)) != NULL)
        ch_free(CH_CONTAINER_OF(l, ch_sendcmd_t, cmd.link));
    if (b->cmds.post_cv_ready)
        uv_cond_destroy(&b->cmds.post_cv);
    b->cmds.post_cv_ready = 0;
}

/* Fill a command for one send: header, and data unless nocopy, copied
 * behind it. */
static void fill(ch_sendcmd_t *sc, ch_bridge_t *b, uint64_t token,
                 const ch_dest_t *dest, const char *data, size_t data_len,
                 const char *header, size_t header_len, int flags)
{
    int nocopy = (flags & CH_SEND_NOCOPY) != 0;
    uint8_t *p = (uint8_t *)(sc + 1);
    ch_send_init(&sc->send);
    sc->bridge = b;
    sc->token = token;
    sc->flags = flags;
    if (header_len > 0)
        memcpy(p, header, header_len);
    if (data_len > 0 && !nocopy)
        memcpy(p + header_len, data, data_len);
    sc->send.header = p;
    sc->send.header_len = (uint32_t)header_len;
    sc->send.data = nocopy ? (const uint8_t *)data : p + header_len;
    sc->send.data_len = (uint32_t)data_len;
    ch_send_set_dest(&sc->send, dest);
    sc->send.cb = ch_send_done;
    sc->send.user_data = sc;
}

/* A command for a small send from the pool (or a new one); [mu]. */
static ch_sendcmd_t *pool_take(ch_bridge_t *b)
{
    ch_link_t *l = ch_list_pop(&b->cmds.pool);
    if (l != NULL)
        return CH_CONTAINER_OF(l, ch_sendcmd_t, cmd.link);
    return ch_malloc(CH_CMD_SIZE);
}

int ch_submit(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
              const char *data, size_t data_len, const char *header,
              size_t header_len, const uint8_t *identity, int flags,
              ch_wait_t **wait)
{
    int nocopy = (flags & CH_SEND_NOCOPY) != 0;
    int request = (flags & CH_SEND_REQUEST) != 0;
    size_t payload = header_len + (nocopy ? 0 : data_len);
    int pooled = wait == NULL && payload <= CH_CMD_PAYLOAD;
    ch_sendcmd_t *sc = NULL;
    ch_wait_t *w = NULL;
    ch_req_t *req = NULL;
    int rc = CH_OK;
    if (wait != NULL)
        *wait = NULL;
    if (header_len > 0xffff || data_len > 0xffffffffu ||
        (dest->ip_protocol != 4 && dest->ip_protocol != 6) ||
        (nocopy && wait != NULL) || (token == 0 && wait == NULL && (request || nocopy)))
        return CH_EINVAL;
    if (request && (req = ch_malloc(sizeof(*req))) == NULL)
        return CH_ENOMEM;
    if (wait != NULL) {
        w = ch_malloc(sizeof(*w) + payload);
        if (w == NULL) {
            ch_free(req);
            return CH_ENOMEM;
        }
        sc = &w->sc;
        w->state = CH_W_WAITING;
        w->status = CH_OK;
        w->refs = 2; /* the core's and the waiter's */
        w->reply = NULL;
        w->detail[0] = '\0';
        w->announced = (flags & CH_SEND_ANNOUNCE) != 0;
        w->dlink.next = w->dlink.prev = NULL;
    } else if (!pooled && (sc = ch_malloc(sizeof(*sc) + payload)) == NULL) {
        ch_free(req);
        return CH_ENOMEM;
    }
    if (sc != NULL) /* big ones are copied without the lock */
        fill(sc, b, token, dest, data, data_len, header, header_len, flags);
    uv_mutex_lock(&b->mu);
    if (b->closing)
        rc = CH_ECLOSED;
    else if (token == 0 && w == NULL)
        rc = post_wait(b);
    if (rc == CH_OK && pooled) {
        /* Small: a short copy under the lock, one lock for the call. */
        if ((sc = pool_take(b)) == NULL)
            rc = CH_ENOMEM;
        else
            fill(sc, b, token, dest, data, data_len, header, header_len,
                 flags);
    }
    if (rc == CH_OK) {
        sc->cmd.kind = w != NULL ? CH_CMD_WAITED : CH_CMD_SEND;
        sc->pooled = pooled;
        if (identity != NULL) {
            ch_send_set_identity(&sc->send, identity);
        } else {
            /* Chosen here so that a request's reply can be matched before
             * the message is even written. */
            uint8_t id[CH_ID_SIZE];
            ch_rng_id(&b->cmds.rng, id);
            ch_send_set_identity(&sc->send, id);
        }
        /* A send event, and a reply event for a request; token 0 (a
         * post) has none unless it fails (see ch_send_done). */
        if (w == NULL && token != 0)
            rc = ch_events_reserve(b, request ? 2 : 1);
    }
    if (rc != CH_OK) {
        uv_mutex_unlock(&b->mu);
        ch_free(req);
        if (w != NULL)
            ch_free(w);
        else if (sc != NULL)
            ch_free(sc); /* a pooled one is simply not reused */
        return rc;
    }
    if (request)
        ch_reqtab_add(b, req, sc->send.identity, token, w);
    if (token == 0 && w == NULL) {
        b->cmds.posted++;
        b->cmds.posted_bytes += header_len + data_len;
    }
    ch_cmds_queue(b, &sc->cmd);
    if (wait != NULL)
        *wait = w;
    uv_mutex_unlock(&b->mu);
    return CH_OK;
}

int ch_bridge_send(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                   const char *data, size_t data_len, const char *header,
                   size_t header_len, const uint8_t *identity, int flags)
{
    if (flags & ~(CH_SEND_REQUEST | CH_SEND_NOCOPY))
        return CH_EINVAL;
    return ch_submit(b, token, dest, data, data_len, header, header_len,
                     identity, flags, NULL);
}

int ch_bridge_post(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                   const char *data, size_t data_len, const char *header,
                   size_t header_len)
{
    return ch_submit(b, token, dest, data, data_len, header, header_len,
                     NULL, 0, NULL);
}

/* Queue a batch: the data joined (message i at the sum of the lengths
 * before it) or, with each, one pointer per message (never copied). */
static int send_batch(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                      const char *data, const char *const *each,
                      const size_t *lens, int n, const char *header,
                      size_t header_len, int nocopy)
{
    ch_batch_t *batch;
    uint8_t *hdr, *body;
    size_t total = 0, off = 0;
    int i, rc;
    if (n <= 0 || header_len > 0xffff ||
        (dest->ip_protocol != 4 && dest->ip_protocol != 6))
        return CH_EINVAL;
    for (i = 0; i < n; i++) {
        if (lens[i] > 0xffffffffu || total + lens[i] < total)
            return CH_EINVAL;
        total += lens[i];
    }
    batch = ch_malloc(sizeof(*batch) + (size_t)n * sizeof(ch_send_t) +
                      header_len + (nocopy ? 0 : total));
    if (batch == NULL)
        return CH_ENOMEM;
    memset(batch, 0, sizeof(*batch));
    batch->cmd.kind = CH_CMD_BATCH;
    batch->bridge = b;
    batch->token = token;
    batch->nsends = batch->remaining = n;
    batch->sends = (ch_send_t *)(batch + 1);
    hdr = (uint8_t *)(batch->sends + n);
    body = nocopy ? (uint8_t *)(uintptr_t)data : hdr + header_len;
    if (header_len > 0)
        memcpy(hdr, header, header_len);
    if (total > 0 && !nocopy)
        memcpy(body, data, total);
    for (i = 0; i < n; i++) {
        ch_send_t *s = &batch->sends[i];
        ch_send_init(s);
        s->header = hdr;
        s->header_len = (uint32_t)header_len;
        s->data = each != NULL ? (const uint8_t *)each[i] : body + off;
        s->data_len = (uint32_t)lens[i];
        off += lens[i];
        ch_send_set_dest(s, dest);
        s->cb = ch_batch_done;
        s->user_data = batch;
    }
    uv_mutex_lock(&b->mu);
    rc = b->closing ? CH_ECLOSED : ch_events_reserve(b, 1);
    if (rc != CH_OK) {
        uv_mutex_unlock(&b->mu);
        ch_free(batch);
        return rc;
    }
    for (i = 0; i < n; i++) {
        uint8_t id[CH_ID_SIZE];
        ch_rng_id(&b->cmds.rng, id);
        ch_send_set_identity(&batch->sends[i], id);
    }
    ch_cmds_queue(b, &batch->cmd);
    uv_mutex_unlock(&b->mu);
    return CH_OK;
}

int ch_bridge_send_many(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                        const char *data, const size_t *lens, int n,
                        const char *header, size_t header_len, int flags)
{
    if (flags & ~CH_SEND_NOCOPY)
        return CH_EINVAL;
    return send_batch(b, token, dest, data, NULL, lens, n, header,
                      header_len, (flags & CH_SEND_NOCOPY) != 0);
}

int ch_bridge_send_each(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                        const char *const *datas, const size_t *lens, int n,
                        const char *header, size_t header_len)
{
    return send_batch(b, token, dest, NULL, datas, lens, n, header,
                      header_len, 1);
}
