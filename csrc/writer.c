/* writer.c - coalesced writes (ACKs, NOOP, queued messages in one
 * uv_write), acknowledgement tracking and send timeouts.  Every send ends
 * in exactly one ch_send_complete(). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "ch_internal.h"

void ch_send_complete(ch_send_t *s, int status, const char *detail)
{
    s->state_ = CH_SS_DONE;
    s->remote_ = NULL;
    s->conn_ = NULL;
    if (detail == NULL || (status != CH_OK && detail[0] == '\0'))
        detail = status == CH_OK ? "" : ch_strerror(status);
    s->cb(s, status, detail);
}

static void on_write(uv_write_t *req, int status);

int ch_writer_start(ch_conn_t *c, uv_buf_t *bufs, int n)
{
    uv_buf_t cipher;
    int rc;
    if (c->ssl != NULL) {
        /* Encrypt the whole batch into one buffer, then write that. */
        rc = ch_tls_encrypt(c, bufs, n, &cipher);
        if (rc != CH_OK)
            return rc == CH_ENOMEM ? UV_ENOMEM : UV_EPROTO;
        bufs = &cipher;
        n = 1;
    }
    c->writing = 1;
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, (unsigned)n,
                  on_write);
    if (rc < 0)
        c->writing = 0;
    return rc;
}

static int is_sync(const ch_send_t *s)
{
    return (s->type_ & CH_MSG_REQ_ACK) != 0;
}

/* A synchronous send leaves the in-flight list with its result. */
static void finish_inflight(ch_conn_t *c, ch_send_t *s, int status,
                            const char *detail)
{
    ch_sendq_remove(&s->remote_->inflight, s);
    if (c != NULL)
        c->inflight--;
    ch_send_complete(s, status, detail);
}

static int close_status(const ch_conn_t *c)
{
    return c->close_status == CH_OK ? CH_ECONN : c->close_status;
}

static void on_write(uv_write_t *req, int status)
{
    ch_conn_t *c = req->data;
    ch_send_t *msgs[CH_BATCH_MSGS];
    ch_message_t *acks[CH_MAX_SLOTS];
    int nmsgs = c->wcount, nacks = c->wacks_n, i;
    /* Copy the batch out: completions may start the next write. */
    memcpy(msgs, c->wmsgs, sizeof(ch_send_t *) * (size_t)nmsgs);
    memcpy(acks, c->wacks, sizeof(ch_message_t *) * (size_t)nacks);
    c->wcount = 0;
    c->wacks_n = 0;
    c->writing = 0;
    if (status < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
        ch_conn_close(c, CH_ECONN, why);
        for (i = 0; i < nmsgs; i++) {
            ch_send_t *s = msgs[i];
            if (is_sync(s))
                finish_inflight(c, s, close_status(c), c->close_detail);
            else
                ch_send_complete(s, close_status(c), c->close_detail);
        }
        for (i = 0; i < nacks; i++)
            ch_conn_slot_free(c, acks[i]);
        return;
    }
    c->last_activity = ch_now(c->node);
    for (i = 0; i < nmsgs; i++) {
        ch_send_t *s = msgs[i];
        if (!is_sync(s)) {
            ch_send_complete(s, CH_OK, "");
        } else if (s->acked_) {
            finish_inflight(c, s, CH_OK, "");
        } else if (c->state == CH_CS_CLOSING) {
            /* The write finished just before the connection closed (libuv
             * reports it after the close began): its ACK can no longer
             * come, and ch_writer_conn_closed has already run. */
            finish_inflight(c, s, close_status(c), c->close_detail);
        } else {
            s->state_ = CH_SS_INFLIGHT;
        }
    }
    for (i = 0; i < nacks; i++)
        ch_conn_slot_free(c, acks[i]);
    ch_writer_flush(c);
    ch_writer_flush_tls(c);
    if (c->draining && !c->writing && c->state != CH_CS_CLOSING)
        ch_conn_close(c, CH_ECLOSED, "node closed");
}

static void add(ch_conn_t *c, int *n, const void *base, size_t len)
{
    c->iov[*n] = uv_buf_init((char *)base, (unsigned)len);
    (*n)++;
}

void ch_writer_flush(ch_conn_t *c)
{
    ch_node_t *node = c->node;
    ch_remote_t *r = c->remote;
    ch_wire_header_t h;
    int n = 0, rc;
    if (c->writing || c->state != CH_CS_READY || r == NULL)
        return;
    while (c->ack_head != NULL && c->wacks_n < CH_MAX_SLOTS) {
        ch_message_t *m = c->ack_head;
        c->ack_head = m->next_;
        if (c->ack_head == NULL)
            c->ack_tail = NULL;
        m->next_ = NULL;
        m->state_ = CH_MS_ACKWRITE;
        memset(&h, 0, sizeof(h));
        memcpy(h.identity, m->identity, CH_ID_SIZE);
        h.serial = ++r->serial;
        h.type = CH_MSG_ACK;
        ch_wire_encode_header(m->ack_hdr_, &h);
        add(c, &n, m->ack_hdr_, CH_HEADER_SIZE);
        c->wacks[c->wacks_n++] = m;
    }
    if (r->conn == c) {
        int sync = node->cfg.synchronous;
        uint64_t now = ch_now(node);
        size_t bytes = 0;
        while (r->queue.head != NULL && c->wcount < CH_BATCH_MSGS) {
            ch_send_t *s;
            if (sync && r->inflight.len >= (size_t)r->window)
                break;
            if (c->ssl != NULL && bytes >= CH_TLS_BATCH)
                break;
            if (c->wcount == 0 && now - c->last_activity > node->noop_ms) {
                /* Probe a connection that was idle for a long time. */
                memset(&h, 0, sizeof(h));
                ch_random_id(node, h.identity);
                h.serial = ++r->serial;
                h.type = CH_MSG_NOOP;
                ch_wire_encode_header(c->noop_hdr, &h);
                add(c, &n, c->noop_hdr, CH_HEADER_SIZE);
                c->last_activity = now;
            }
            s = ch_sendq_pop(&r->queue);
            bytes += (size_t)s->header_len + s->data_len;
            memcpy(h.identity, s->identity, CH_ID_SIZE);
            s->serial_ = h.serial = ++r->serial;
            h.data_len = s->data_len;
            h.header_len = (uint16_t)s->header_len;
            s->type_ = h.type = sync ? CH_MSG_REQ_ACK : 0;
            ch_wire_encode_header(s->hdr_, &h);
            add(c, &n, s->hdr_, CH_HEADER_SIZE);
            if (s->header_len > 0)
                add(c, &n, s->header, s->header_len);
            if (s->data_len > 0)
                add(c, &n, s->data, s->data_len);
            s->conn_ = c;
            c->written++;
            s->acked_ = 0;
            s->state_ = CH_SS_WRITING;
            c->wmsgs[c->wcount++] = s;
            if (sync) {
                ch_sendq_push(&r->inflight, s);
                c->inflight++;
            }
        }
    }
    if (n == 0)
        return;
    rc = ch_writer_start(c, c->iov, n);
    if (rc < 0) {
        c->writing = 1;
        on_write(&c->wreq, rc);
    }
}

/* Write TLS output that no batch carried (handshake, alerts, tickets). */
void ch_writer_flush_tls(ch_conn_t *c)
{
    int rc;
    if (c->ssl == NULL || c->writing || c->state == CH_CS_CLOSING ||
        ch_tls_pending(c) == 0)
        return;
    rc = ch_writer_start(c, NULL, 0);
    if (rc < 0) {
        c->writing = 1;
        on_write(&c->wreq, rc);
    }
}

void ch_writer_ack_received(ch_conn_t *c, const uint8_t id[CH_ID_SIZE])
{
    ch_remote_t *r = c->remote;
    ch_send_t *s;
    ch_conn_t *wc;
    if (r == NULL)
        return;
    for (s = r->inflight.head; s != NULL; s = s->next_)
        if (memcmp(s->identity, id, CH_ID_SIZE) == 0)
            break;
    if (s == NULL)
        return; /* late ACK of a message that already failed */
    if (s->state_ == CH_SS_WRITING) {
        s->acked_ = 1;
        return;
    }
    wc = s->conn_;
    finish_inflight(wc, s, CH_OK, "");
    if (r->conn != NULL)
        ch_writer_flush(r->conn);
}

/* Fail what waits on a closing connection's ACKs. */
void ch_writer_conn_closed(ch_conn_t *c)
{
    ch_remote_t *r = c->remote;
    ch_send_t *s, *next;
    int status = close_status(c);
    while (c->ack_head != NULL) {
        ch_message_t *m = c->ack_head;
        c->ack_head = m->next_;
        m->next_ = NULL;
        ch_conn_slot_free(c, m);
    }
    c->ack_tail = NULL;
    if (r == NULL)
        return;
    for (s = r->inflight.head; s != NULL; s = next) {
        next = s->next_;
        if (s->conn_ == c && s->state_ == CH_SS_INFLIGHT) {
            finish_inflight(c, s, status, c->close_detail);
            /* A callback may have changed the list: start over. */
            next = r->inflight.head;
        }
    }
}

void ch_writer_tick(ch_remote_t *r, uint64_t now)
{
    ch_send_t *s;
    while ((s = r->queue.head) != NULL && s->deadline_ <= now) {
        ch_sendq_remove(&r->queue, s);
        ch_send_complete(s, CH_ETIMEDOUT,
                         r->pending != NULL
                             ? "send timed out while connecting"
                             : "send timed out before the message was "
                               "written");
    }
    /* Sends are in flight in the order they were queued, so their
     * deadlines are too: stop at the first that has time left. */
    while ((s = r->inflight.head) != NULL && s->deadline_ <= now) {
        ch_conn_t *c = s->conn_;
        if (c != NULL && c->state != CH_CS_CLOSING) {
            /* No ACK in time: the connection is stuck; closing it fails
             * everything that waits on it. */
            ch_conn_close(c, CH_ETIMEDOUT,
                          "no acknowledgement within the send timeout");
            continue;
        }
        if (s->state_ == CH_SS_WRITING)
            break; /* its write callback completes it */
        /* Defensive: nothing will answer for it any more. */
        finish_inflight(c, s, CH_ETIMEDOUT,
                        "no acknowledgement within the send timeout");
    }
}
