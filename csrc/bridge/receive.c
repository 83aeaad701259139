/* bridge/receive.c - received messages, from the loop thread to the
 * threads that receive: a queue, woken once per turn of the loop; an
 * inbox that small messages needing no ACK are copied into, so their
 * slots are free at once; the fd that tells event loops that messages
 * wait.  ch_recv_message runs on the loop thread, the rest on
 * application threads; each takes b->mu, but ch_recvq_signal, which runs
 * with it held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include "bridge/bridge_int.h"
#include "util/alloc.h"

/* Messages up to this size (header and data) are copied into the inbox. */
#define CH_INBOX_MSG_MAX 4096u

int ch_recvq_init(ch_bridge_t *b)
{
    ch_recvq_t *rq = &b->rq;
    ch_list_init(&rq->msgs);
    rq->appfd.rd = rq->appfd.wr = -1;
    memset(&rq->inbox, 0, sizeof(rq->inbox));
    if (uv_cond_init(&rq->cv) != 0)
        return CH_ENOMEM;
    return CH_OK;
}

void ch_recvq_free(ch_bridge_t *b)
{
    uv_cond_destroy(&b->rq.cv);
    ch_wakefd_close(&b->rq.appfd);
    ch_inbox_free(&b->rq.inbox);
}

/* Make the fd readable; [mu].  Only once somebody asked for the fd: two
 * system calls per batch of messages are saved otherwise. */
static void fd_signal(ch_recvq_t *rq)
{
    if (rq->fd_used && !rq->fd_signaled) {
        ch_wakefd_signal(&rq->appfd);
        rq->fd_signaled = 1;
    }
}

static void fd_clear(ch_recvq_t *rq)
{
    if (rq->fd_signaled) {
        ch_wakefd_clear(&rq->appfd);
        rq->fd_signaled = 0;
    }
}

void ch_recvq_signal(ch_bridge_t *b)
{
    fd_signal(&b->rq);
    if (b->rq.msgs.len > 1)
        uv_cond_broadcast(&b->rq.cv);
    else
        uv_cond_signal(&b->rq.cv);
}

int ch_bridge_fd(ch_bridge_t *b)
{
    ch_recvq_t *rq = &b->rq;
    int fd;
    uv_mutex_lock(&b->mu);
    /* Made on first use (not once closing): most nodes never need it. */
    if (!rq->fd_used && !b->closing && ch_wakefd_open(&rq->appfd) == 0) {
        rq->fd_used = 1;
        if (rq->msgs.len > 0 || b->closed)
            fd_signal(rq);
    }
    fd = rq->appfd.rd;
    uv_mutex_unlock(&b->mu);
    return fd;
}

/* A copy of a small message that needs no ACK, in the inbox; NULL when
 * the message is not such or does not fit now (it stays in its slot);
 * [mu]. */
static ch_message_t *inbox_copy(ch_recvq_t *rq, const ch_message_t *m)
{
    ch_message_t *c;
    uint8_t *p;
    size_t body = (size_t)m->header_len + m->data_len;
    if (rq->inbox.buf == NULL || (m->type & CH_MSG_REQ_ACK) ||
        body > CH_INBOX_MSG_MAX)
        return NULL;
    c = ch_inbox_alloc(&rq->inbox, sizeof(*c) + body);
    if (c == NULL)
        return NULL;
    *c = *m; /* the public fields count; the core never sees a copy (it
              * does not go back to it: ch_inbox_holds tells) */
    c->buf_ = NULL; /* nothing for ch_message_take_buffer to take */
    c->bufcap_ = 0;
    p = (uint8_t *)(c + 1);
    if (m->header_len > 0)
        memcpy(p, m->header, m->header_len);
    if (m->data_len > 0)
        memcpy(p + m->header_len, m->data, m->data_len);
    c->header = p;
    c->data = p + m->header_len;
    return c;
}

void ch_recv_message(ch_node_t *node, ch_message_t *msg)
{
    ch_bridge_t *b = ch_node_user_data(node);
    ch_message_t *copy;
    int reply;
    b->activity++;
    uv_mutex_lock(&b->mu);
    reply = ch_requests_match(b, msg);
    if (reply == CH_REPLY_TAKEN) {
        uv_mutex_unlock(&b->mu);
        return;
    }
    if (reply == CH_REPLY_DROPPED) {
        uv_mutex_unlock(&b->mu);
        ch_node_release(node, msg); /* nobody waits for it any more */
        return;
    }
    copy = inbox_copy(&b->rq, msg);
    ch_list_push(&b->rq.msgs, copy != NULL ? &copy->link : &msg->link);
    b->sig_msg = 1; /* receivers are woken once per turn of the loop */
    uv_mutex_unlock(&b->mu);
    /* A copy's slot is free again at once: this read goes on with it. */
    if (copy != NULL)
        ch_node_release(node, msg);
}

static ch_message_t *msg_of(ch_link_t *l)
{
    return CH_CONTAINER_OF(l, ch_message_t, link);
}

/* Take the oldest received message; [mu], the queue not empty. */
static ch_message_t *take(ch_bridge_t *b)
{
    ch_message_t *m = msg_of(ch_list_pop(&b->rq.msgs));
    if (ch_list_empty(&b->rq.msgs) && !b->closed)
        fd_clear(&b->rq);
    return m;
}

/* Give received messages back: inbox copies at once, the others queued
 * for the loop thread; [mu]. */
static void give_back(ch_bridge_t *b, ch_list_t *msgs)
{
    ch_link_t *l, *next;
    for (l = ch_list_first(msgs); l != NULL; l = next) {
        next = ch_list_next(msgs, l);
        if (ch_inbox_holds(&b->rq.inbox, msg_of(l))) {
            ch_list_remove(msgs, l);
            ch_inbox_give_back(&b->rq.inbox, msg_of(l));
        }
    }
    if (!ch_list_empty(msgs))
        ch_cmds_release(b, msgs);
}

static int closed_or_timeout(const ch_bridge_t *b)
{
    return (b->closed || b->closing) ? CH_ECLOSED : CH_ETIMEDOUT;
}

int ch_bridge_recv(ch_bridge_t *b, ch_message_t **out, int max,
                   int timeout_ms)
{
    int n = 0;
    uv_mutex_lock(&b->mu);
    if (!ch_wait_for(b, &b->rq.cv, &b->rq.msgs.len, timeout_ms, 1)) {
        int rc = closed_or_timeout(b);
        uv_mutex_unlock(&b->mu);
        return rc;
    }
    while (n < max && !ch_list_empty(&b->rq.msgs))
        out[n++] = take(b);
    uv_mutex_unlock(&b->mu);
    return n;
}

/* Bytes a message takes in ch_bridge_recv_copy's buffer. */
static size_t copy_size(const ch_message_t *m)
{
    return 3 * CH_ID_SIZE + (size_t)m->header_len + m->data_len;
}

/* Copy one message to p and describe it in d; same_source: it comes from
 * the same remote as prev. */
static void copy_out(const ch_message_t *m, const ch_message_t *prev,
                     uint8_t *p, uint32_t off, ch_msg_meta_t *d)
{
    memcpy(p, m->identity, CH_ID_SIZE);
    memcpy(p + CH_ID_SIZE, m->remote_identity, CH_ID_SIZE);
    memcpy(p + 2 * CH_ID_SIZE, m->address, 16);
    if (m->header_len > 0)
        memcpy(p + 3 * CH_ID_SIZE, m->header, m->header_len);
    if (m->data_len > 0)
        memcpy(p + 3 * CH_ID_SIZE + m->header_len, m->data, m->data_len);
    /* Where things are, not how long: the binding slices without
     * arithmetic of its own. */
    d->offset = off;
    d->serial = m->serial;
    d->data_start = off + 3 * CH_ID_SIZE + m->header_len;
    d->data_end = d->data_start + m->data_len;
    d->port = m->port;
    d->flags = m->ip_protocol;
    if (m->header_len > 0)
        d->flags |= CH_META_HEADER;
    if (prev != NULL && prev->port == m->port &&
        prev->ip_protocol == m->ip_protocol &&
        memcmp(prev->address, m->address, 16) == 0 &&
        memcmp(prev->remote_identity, m->remote_identity, CH_ID_SIZE) == 0)
        d->flags |= CH_META_SAME_SOURCE;
}

/* Bytes a message takes in ch_bridge_recv_data's buffer. */
static size_t data_size(const ch_message_t *m)
{
    return m->data_len;
}

/* Wait for messages and take, in order, as many as fit in buflen bytes
 * (each size(m) of them), up to max, onto taken.  Returns the count; 0
 * with *used set to the first one's size when even it does not fit; or
 * CH_ETIMEDOUT / CH_ECLOSED. */
static int take_fitting(ch_bridge_t *b, ch_list_t *taken, int max,
                        size_t buflen, int timeout_ms, size_t *used,
                        size_t (*size_of)(const ch_message_t *))
{
    size_t off = 0;
    int n = 0;
    *used = 0;
    ch_list_init(taken);
    if (buflen > 0xffffffffu)
        buflen = 0xffffffffu; /* offsets are 32 bits */
    uv_mutex_lock(&b->mu);
    if (!ch_wait_for(b, &b->rq.cv, &b->rq.msgs.len, timeout_ms, 1)) {
        int rc = closed_or_timeout(b);
        uv_mutex_unlock(&b->mu);
        return rc;
    }
    while (n < max && !ch_list_empty(&b->rq.msgs)) {
        size_t size = size_of(msg_of(ch_list_first(&b->rq.msgs)));
        if (off + size > buflen) {
            if (n == 0)
                *used = size; /* the caller's buffer is too small */
            break;
        }
        ch_list_push(taken, &take(b)->link);
        off += size;
        n++;
    }
    uv_mutex_unlock(&b->mu);
    return n;
}

/* The taken messages were copied: their slots go back to the core. */
static void hand_back(ch_bridge_t *b, ch_list_t *taken)
{
    uv_mutex_lock(&b->mu);
    if (!b->closing) {
        give_back(b, taken);
        ch_wake_expect_answer(b);
    }
    uv_mutex_unlock(&b->mu);
}

int ch_bridge_recv_copy(ch_bridge_t *b, ch_msg_meta_t *meta, int max,
                        char *buf, size_t buflen, int timeout_ms,
                        size_t *used)
{
    ch_list_t taken;
    ch_link_t *l;
    const ch_message_t *prev = NULL;
    size_t off = 0;
    int n = take_fitting(b, &taken, max, buflen, timeout_ms, used, copy_size);
    if (n <= 0)
        return n;
    /* Copied without the lock: the loop thread queues new messages
     * meanwhile. */
    n = 0;
    for (l = ch_list_first(&taken); l != NULL; l = ch_list_next(&taken, l)) {
        const ch_message_t *m = msg_of(l);
        copy_out(m, prev, (uint8_t *)buf + off, (uint32_t)off, &meta[n++]);
        off += copy_size(m);
        prev = m;
    }
    *used = off;
    hand_back(b, &taken);
    return n;
}

int ch_bridge_recv_data(ch_bridge_t *b, uint32_t *ends, int max, char *buf,
                        size_t buflen, int timeout_ms, size_t *used)
{
    ch_list_t taken;
    ch_link_t *l;
    size_t off = 0;
    int n = take_fitting(b, &taken, max, buflen, timeout_ms, used, data_size);
    if (n <= 0)
        return n;
    n = 0;
    for (l = ch_list_first(&taken); l != NULL; l = ch_list_next(&taken, l)) {
        const ch_message_t *m = msg_of(l);
        if (m->data_len > 0)
            memcpy(buf + off, m->data, m->data_len);
        off += m->data_len;
        ends[n++] = (uint32_t)off;
    }
    *used = off;
    hand_back(b, &taken);
    return n;
}

void ch_bridge_release(ch_bridge_t *b, ch_message_t **msgs, int n)
{
    ch_list_t chain;
    int i;
    if (n <= 0)
        return;
    ch_list_init(&chain);
    uv_mutex_lock(&b->mu);
    if (!b->closing) {
        for (i = 0; i < n; i++)
            ch_list_push(&chain, &msgs[i]->link);
        give_back(b, &chain);
    }
    uv_mutex_unlock(&b->mu);
}

int ch_bridge_reject(ch_bridge_t *b, ch_message_t *msg, const char *reason)
{
    size_t len = strlen(reason);
    ch_rejectcmd_t *rc;
    if (len > CH_REJECT_MAX)
        len = CH_REJECT_MAX;
    rc = ch_malloc(sizeof(*rc) + len + 1);
    if (rc == NULL)
        return CH_ENOMEM;
    rc->cmd.kind = CH_CMD_REJECT;
    rc->msg = msg;
    memcpy(rc + 1, reason, len);
    ((char *)(rc + 1))[len] = '\0';
    uv_mutex_lock(&b->mu);
    if (b->closing) {
        uv_mutex_unlock(&b->mu);
        ch_free(rc);
        return CH_ECLOSED;
    }
    if (ch_inbox_holds(&b->rq.inbox, msg)) {
        /* A copy in the inbox was released when it was copied: nothing
         * waits for an answer any more; give the copy back. */
        ch_list_t one;
        ch_list_init(&one);
        ch_list_push(&one, &msg->link);
        give_back(b, &one);
        uv_mutex_unlock(&b->mu);
        ch_free(rc);
        return CH_OK;
    }
    ch_cmds_queue(b, &rc->cmd);
    uv_mutex_unlock(&b->mu);
    return CH_OK;
}
