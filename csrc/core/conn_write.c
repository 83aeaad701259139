/* core/conn_write.c - a connection's writer: coalesced writes (the
 * capability frame, ACKs, a NOOP probe and queued messages in one
 * uv_write), acknowledgement tracking and the send timeouts of messages
 * in flight.  Every send ends in exactly one ch_remote_complete().  Loop
 * thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "core/conn_int.h"
#include "util/addr.h"
#include "util/alloc.h"
#include "wire/wire.h"

static void on_write(uv_write_t *req, int status);

int ch_conn_write(ch_conn_t *c, uv_buf_t *bufs, int n)
{
    uv_buf_t cipher;
    int rc;
    if (c->tls != NULL) {
        /* Encrypt the whole batch into one buffer, then write that. */
        rc = ch_tls_encrypt(c->tls, bufs, n, &cipher);
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
    ch_remote_inflight_remove(s->remote_, s);
    if (c != NULL)
        c->inflight--;
    ch_remote_complete(s, status, detail);
}

static int close_status(const ch_conn_t *c)
{
    return c->close_status == CH_OK ? CH_ECONN : c->close_status;
}

/* A message bigger than the peer's announced max_msg_size: CH_EMSGSIZE
 * with a detail naming both sizes and the peer; else status, detail. */
static int too_big(const ch_conn_t *c, const ch_send_t *s, int status,
                   const char **detail, char *buf, size_t len)
{
    uint64_t size = (uint64_t)s->header_len + s->data_len;
    uint32_t max = c->remote->max_msg_size;
    char who[96];
    if (max == 0 || size <= max)
        return status;
    ch_addr_describe(c->ip_protocol, c->address, c->remote->port, who,
                     sizeof(who));
    snprintf(buf, len,
             "message of %llu bytes exceeds the max_msg_size of %lu that "
             "%s announced",
             (unsigned long long)size, (unsigned long)max, who);
    *detail = buf;
    return CH_EMSGSIZE;
}

/* A send the connection's failure ends: why, as precise as we know. */
static void fail_send(ch_conn_t *c, ch_send_t *s)
{
    char buf[CH_DETAIL_SIZE];
    const char *detail = c->close_detail;
    int status = too_big(c, s, close_status(c), &detail, buf, sizeof(buf));
    if (is_sync(s))
        finish_inflight(c, s, status, detail);
    else
        ch_remote_complete(s, status, detail);
}

/* The slots whose ACK a write carried are free: each leaves the list
 * before, as freeing one may fill another (not one of these: they are not
 * free yet). */
static void free_acked(ch_conn_t *c, ch_list_t *acks)
{
    ch_link_t *l;
    while ((l = ch_list_pop(acks)) != NULL)
        ch_conn_slot_free(c, CH_CONTAINER_OF(l, ch_message_t, link));
}

static void on_write(uv_write_t *req, int status)
{
    ch_conn_t *c = req->data;
    ch_send_t *s = c->whead, *next;
    ch_list_t acks;
    /* Take the batch out: completions may start the next write.  Each
     * send's successor is read before its completion, which may reuse
     * it. */
    ch_list_init(&acks);
    ch_list_move(&acks, &c->wacks);
    c->whead = c->wtail = NULL;
    c->wcount = 0;
    c->writing = 0;
    if (status < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
        ch_conn_close(c, CH_ECONN, why);
        for (; s != NULL; s = next) {
            next = s->wnext_;
            fail_send(c, s);
        }
        free_acked(c, &acks);
        return;
    }
    c->last_activity = uv_now(c->cs->loop);
    for (; s != NULL; s = next) {
        next = s->wnext_;
        if (!is_sync(s)) {
            ch_remote_complete(s, CH_OK, "");
        } else if (s->acked_ == CH_REJECTED) {
            char why[CH_DETAIL_SIZE];
            snprintf(why, sizeof(why), "%s",
                     s->why_ != NULL ? s->why_ : "rejected by the receiver");
            finish_inflight(c, s, CH_EREJECTED, why);
        } else if (s->acked_) {
            finish_inflight(c, s, CH_OK, "");
        } else if (c->state == CH_CS_CLOSING) {
            /* The write finished just before the connection closed (libuv
             * reports it after the close began): its ACK can no longer
             * come, and ch_conn_writer_closed has already run. */
            fail_send(c, s);
        } else {
            s->state_ = CH_SS_INFLIGHT;
        }
    }
    free_acked(c, &acks);
    ch_conn_flush(c);
    ch_conn_flush_tls(c);
    if (c->draining && !c->writing && c->state != CH_CS_CLOSING)
        ch_conn_close(c, CH_ECLOSED, c->cs->close_detail);
}

static void add(ch_conn_t *c, int *n, const void *base, size_t len)
{
    c->cs->iov[*n] = uv_buf_init((char *)base, (unsigned)len);
    (*n)++;
}

/* The queued messages of the remote whose current connection c is, as
 * many as the batch, the window and the batch's bytes allow. */
static void add_messages(ch_conn_t *c, ch_remote_t *r, int *n)
{
    ch_conns_t *cs = c->cs;
    int sync = cs->cfg->synchronous;
    uint64_t now = uv_now(cs->loop);
    size_t bytes = 0, max_bytes = c->tls != NULL ? CH_TLS_BATCH
                                                 : CH_WRITE_BYTES;
    ch_wire_header_t h;
    memset(&h, 0, sizeof(h));
    while (!ch_list_empty(&r->queue) && c->wcount < CH_BATCH_MSGS) {
        ch_send_t *s;
        if (sync && r->inflight.len >= (size_t)c->peer_window)
            break;
        if (bytes >= max_bytes)
            break;
        if (c->wcount == 0 && now - c->last_activity > cs->noop_ms) {
            /* Probe a connection that was idle for a long time. */
            ch_rng_id(cs->rng, h.identity);
            h.serial = ch_remote_next_serial(r);
            h.type = CH_MSG_NOOP;
            ch_wire_encode_header(c->noop_hdr, &h);
            add(c, n, c->noop_hdr, CH_HEADER_SIZE);
            c->last_activity = now;
        }
        s = ch_remote_next(r);
        if (r->max_msg_size != 0 &&
            (uint64_t)s->header_len + s->data_len > r->max_msg_size) {
            /* The peer would close the connection on it: fail it here,
             * saying why, and go on with the next. */
            char buf[CH_DETAIL_SIZE];
            const char *detail = "";
            int status = too_big(c, s, CH_OK, &detail, buf, sizeof(buf));
            ch_remote_complete(s, status, detail);
            continue;
        }
        bytes += (size_t)s->header_len + s->data_len;
        memcpy(h.identity, s->identity, CH_ID_SIZE);
        s->serial_ = h.serial = ch_remote_next_serial(r);
        h.data_len = s->data_len;
        h.header_len = (uint16_t)s->header_len;
        s->type_ = h.type = sync ? CH_MSG_REQ_ACK : 0;
        ch_wire_encode_header(s->hdr_, &h);
        add(c, n, s->hdr_, CH_HEADER_SIZE);
        if (s->header_len > 0)
            add(c, n, s->header, s->header_len);
        if (s->data_len > 0)
            add(c, n, s->data, s->data_len);
        s->conn_ = c;
        c->written++;
        r->sent++;
        c->cs->stats->messages_sent++;
        c->cs->stats->bytes_sent += (uint64_t)s->header_len + s->data_len;
        s->acked_ = 0;
        s->state_ = CH_SS_WRITING;
        s->wnext_ = NULL;
        if (c->wtail != NULL)
            c->wtail->wnext_ = s;
        else
            c->whead = s;
        c->wtail = s;
        c->wcount++;
        if (sync) {
            ch_remote_inflight_add(r, s);
            c->inflight++;
        }
    }
}

/* Write what is due on c.  Failing a message too big for the peer calls
 * back into the application, which may send again: a flush asked for
 * meanwhile (on any connection: the vector is shared) waits in cs->flush
 * until this one has written. */
void ch_conn_flush(ch_conn_t *c)
{
    ch_conns_t *cs = c->cs;
    ch_remote_t *r = c->remote;
    ch_wire_header_t h;
    ch_link_t *l;
    int n = 0, rc = 0;
    if (c->writing || c->state != CH_CS_READY || r == NULL)
        return;
    if (cs->flushing) {
        if (!ch_link_listed(&c->flush_link))
            ch_list_push(&cs->flush, &c->flush_link);
        return;
    }
    cs->flushing = 1;
    if (c->cap_due) {
        /* First after the handshake: the window this node accepts, never
         * more than its slots.  A message beyond them would stop this
         * node's reader, and with it the ACKs behind it in the stream:
         * a reply's ACK that the release of a slot waits for (a router
         * releases a message only once its reply is acknowledged). */
        ch_cap_t cap;
        int window = c->cs->cfg->max_inflight;
        if (window > c->nslots)
            window = c->nslots;
        cap.version = CH_CAP_VERSION;
        cap.flags = CH_CAP_REJECT;
        cap.window = (uint16_t)window;
        cap.max_msg_size = c->cs->cfg->max_msg_size;
        ch_wire_encode_cap(c->cap_hdr, ch_remote_next_serial(r), &cap);
        add(c, &n, c->cap_hdr, CH_HEADER_SIZE);
        c->cap_due = 0;
    }
    while (c->wacks.len < CH_BATCH_ACKS &&
           (l = ch_list_pop(&c->acks)) != NULL) {
        ch_message_t *m = CH_CONTAINER_OF(l, ch_message_t, link);
        m->state_ = CH_MS_ACKWRITE;
        memset(&h, 0, sizeof(h));
        memcpy(h.identity, m->identity, CH_ID_SIZE);
        h.serial = ch_remote_next_serial(r);
        h.type = CH_MSG_ACK;
        if (m->rejected_) {
            h.type |= CH_MSG_REJECT;
            h.data_len = m->reject_len_;
        }
        ch_wire_encode_header(m->ack_hdr_, &h);
        add(c, &n, m->ack_hdr_, CH_HEADER_SIZE);
        if (m->rejected_ && m->reject_len_ > 0)
            add(c, &n, m->buf_, m->reject_len_);
        ch_list_push(&c->wacks, &m->link);
    }
    if (r->conn == c)
        add_messages(c, r, &n);
    if (n > 0)
        rc = ch_conn_write(c, cs->iov, n);
    cs->flushing = 0;
    if (rc < 0) {
        c->writing = 1;
        on_write(&c->wreq, rc);
    }
    if (!cs->corked)
        while ((l = ch_list_pop(&cs->flush)) != NULL)
            ch_conn_flush(CH_CONTAINER_OF(l, ch_conn_t, flush_link));
}

void ch_conn_flush_tls(ch_conn_t *c)
{
    int rc;
    if (c->tls == NULL || c->writing || c->state == CH_CS_CLOSING ||
        ch_tls_pending(c->tls) == 0)
        return;
    rc = ch_conn_write(c, NULL, 0);
    if (rc < 0) {
        c->writing = 1;
        on_write(&c->wreq, rc);
    }
}

void ch_conn_ack_received(ch_conn_t *c, const uint8_t id[CH_ID_SIZE])
{
    ch_remote_t *r = c->remote;
    ch_send_t *s;
    if (r == NULL || (s = ch_remote_inflight_find(r, id)) == NULL)
        return; /* a late ACK of a message that already failed */
    c->cs->stats->messages_acknowledged++;
    if (s->state_ == CH_SS_WRITING) {
        s->acked_ = 1; /* its write callback completes it */
        return;
    }
    finish_inflight(s->conn_, s, CH_OK, "");
    if (r->conn != NULL)
        ch_conn_flush(r->conn);
}

void ch_conn_reject_received(ch_conn_t *c, const uint8_t id[CH_ID_SIZE],
                             const uint8_t *reason, uint32_t len)
{
    ch_remote_t *r = c->remote;
    ch_send_t *s;
    char who[96], why[CH_DETAIL_SIZE];
    uint32_t i;
    if (r == NULL || (s = ch_remote_inflight_find(r, id)) == NULL)
        return; /* a late answer to a message that already failed */
    ch_addr_describe(c->ip_protocol, c->address, r->port, who, sizeof(who));
    i = (uint32_t)snprintf(why, sizeof(why), "%s rejected the message: ", who);
    /* The reason is the peer's text: printable ASCII and UTF-8 kept. */
    for (; len > 0 && i + 1 < sizeof(why); reason++, len--)
        why[i++] = (*reason >= 0x20 && *reason != 0x7f) ? (char)*reason : '?';
    why[i < sizeof(why) ? i : sizeof(why) - 1] = '\0';
    if (s->state_ == CH_SS_WRITING) {
        /* Its write callback completes it; the detail waits here. */
        s->acked_ = CH_REJECTED;
        ch_free(s->why_);
        s->why_ = ch_malloc(strlen(why) + 1);
        if (s->why_ != NULL) /* else: the generic text */
            memcpy(s->why_, why, strlen(why) + 1);
        return;
    }
    finish_inflight(s->conn_, s, CH_EREJECTED, why);
    if (r->conn != NULL)
        ch_conn_flush(r->conn);
}

void ch_conn_writer_closed(ch_conn_t *c)
{
    ch_remote_t *r = c->remote;
    ch_link_t *l, *next;
    while ((l = ch_list_pop(&c->acks)) != NULL)
        ch_conn_slot_free(c, CH_CONTAINER_OF(l, ch_message_t, link));
    if (r == NULL)
        return;
    for (l = ch_list_first(&r->inflight); l != NULL; l = next) {
        ch_send_t *s = ch_send_of(l);
        next = ch_list_next(&r->inflight, l);
        if (s->conn_ == c && s->state_ == CH_SS_INFLIGHT) {
            fail_send(c, s);
            /* A callback may have changed the list: start over. */
            next = ch_list_first(&r->inflight);
        }
    }
}

void ch_conn_expire_inflight(ch_remote_t *r, uint64_t now)
{
    ch_send_t *s;
    /* Sends are in flight in the order they were queued, so their
     * deadlines are too: stop at the first that has time left. */
    while ((s = ch_send_of(ch_list_first(&r->inflight))) != NULL &&
           s->deadline_ <= now) {
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
