/* core/conn_read.c - a connection's read path: bytes from the socket (or
 * decrypted by TLS) through the reader into the slot pool, messages
 * delivered to the node, slots given back with their ACK.  With every
 * slot taken the connection stops reading, so TCP holds the sender back.
 * Loop thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "chirp_testing.h"
#include "core/conn_int.h"
#include "util/alloc.h"
#include "wire/wire.h"

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

void ch_conn_slots_init(ch_conn_t *c)
{
    c->slots_used = 0; /* each slot is set up when first taken */
    c->nfree = 0;
    ch_list_init(&c->acks);
    ch_list_init(&c->wacks);
}

int ch_conn_read_start(ch_conn_t *c)
{
    return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static uint8_t *inline_buf(ch_conn_t *c, const ch_message_t *m)
{
    return c->inline_bufs + (size_t)m->index_ * CH_INLINE_SIZE;
}

/* Free a slot's buffer unless it is the slot's own preallocated one;
 * the memory it gives back may let waiting connections go on. */
static void drop_buffer(ch_conn_t *c, ch_message_t *m)
{
    ch_conns_t *cs = c->cs;
    uint8_t *buf = m->buf_;
    uint32_t cap = m->bufcap_;
    m->buf_ = NULL;
    if (cap == 0)
        return; /* none, or the slot's own */
    m->bufcap_ = 0;
    if (buf != NULL) /* else the application took it (take_buffer) */
        ch_bufcache_put(cs->bufs, buf);
    cs->mem_used -= cap;
    cs->stats->message_memory = cs->mem_used;
    if (!ch_list_empty(&cs->mem_wait))
        ch_conns_memory_freed(cs);
}

void ch_conns_memory_freed(ch_conns_t *cs)
{
    ch_link_t *l;
    if (cs->mem_waking)
        return; /* the loop below, further up the stack, goes on */
    cs->mem_waking = 1;
    /* In the order they began to wait, while the first one's fits. */
    while ((l = ch_list_first(&cs->mem_wait)) != NULL) {
        ch_conn_t *c = CH_CONTAINER_OF(l, ch_conn_t, mem_link);
        if (cs->mem_used + c->mem_need > cs->cfg->max_memory)
            break;
        ch_list_remove(&cs->mem_wait, l);
        if (c->stalled && !c->pumping && c->state != CH_CS_CLOSING)
            ch_conn_pump(c);
        if (ch_link_listed(&c->mem_link))
            break; /* it waits again (its next message) */
    }
    cs->mem_waking = 0;
}

/* A buffer for a message too big for the slot's own, within max_memory:
 * CH_OK; CH_EAGAIN: not now (c waits for memory, in cs->mem_wait);
 * CH_ENOMEM. */
static int big_buffer(ch_conn_t *c, ch_message_t *m, uint32_t size)
{
    ch_conns_t *cs = c->cs;
    uint32_t cap;
    uint8_t *buf;
    int queued = !ch_list_empty(&cs->mem_wait) && !cs->mem_waking;
    if (cs->mem_used + size > cs->cfg->max_memory || queued ||
        ch_link_listed(&c->mem_link)) {
        /* Wait, in turn (being woken, c was first: it stays first). */
        if (!ch_link_listed(&c->mem_link)) {
            c->mem_need = size;
            if (cs->mem_waking)
                ch_list_push_front(&cs->mem_wait, &c->mem_link);
            else
                ch_list_push(&cs->mem_wait, &c->mem_link);
            cs->stats->memory_waits++;
        }
        return CH_EAGAIN;
    }
    buf = ch_bufcache_get(cs->bufs, size);
    if (buf != NULL &&
        cs->mem_used + ch_bufcache_size(buf) > cs->cfg->max_memory) {
        /* A kept buffer bigger than the budget allows: a fresh one. */
        ch_bufcache_put(cs->bufs, buf);
        buf = ch_bufcache_fresh(size);
    }
    if (buf == NULL)
        return CH_ENOMEM;
    cap = ch_bufcache_size(buf);
    m->buf_ = buf;
    m->bufcap_ = cap;
    cs->mem_used += cap;
    cs->stats->message_memory = cs->mem_used;
    return CH_OK;
}

static long taken_buffers = 0; /* for ch_testing_taken_buffers */

void *ch_message_take_buffer(ch_message_t *m)
{
    uint8_t *buf = m->buf_;
    if (m->state_ != CH_MS_APP || m->bufcap_ == 0 || buf == NULL)
        return NULL;
    m->buf_ = NULL; /* bufcap_ stays: the release gives the budget back */
    __atomic_add_fetch(&taken_buffers, 1, __ATOMIC_RELAXED);
    return buf;
}

void ch_message_buffer_free(void *buf)
{
    if (buf == NULL)
        return;
    __atomic_sub_fetch(&taken_buffers, 1, __ATOMIC_RELAXED);
    ch_bufcache_return(buf);
}

long ch_testing_taken_buffers(void)
{
    return __atomic_load_n(&taken_buffers, __ATOMIC_RELAXED);
}

void ch_conn_slot_free(ch_conn_t *c, ch_message_t *m)
{
    if (m->state_ == CH_MS_FREE)
        return;
    drop_buffer(c, m);
    m->state_ = CH_MS_FREE;
    m->rejected_ = 0;
    c->free_slots[c->nfree++] = m->index_;
    c->slots_busy--;
    c->cs->stats->slots_in_use--;
    if (c->handle_closed) {
        ch_conn_maybe_free(c);
        return;
    }
    if (c->stalled && !c->pumping && c->state != CH_CS_CLOSING)
        ch_conn_pump(c);
}

/* The application is done with m: queue its ACK if one was asked (the
 * slot is free once the ACK is written), else free the slot now. */
void ch_conn_release(ch_message_t *m)
{
    ch_conn_t *c = m->conn_;
    if (m->state_ != CH_MS_APP)
        return; /* a second release does nothing */
    drop_buffer(c, m);
    m->header = m->data = NULL;
    if ((m->type & CH_MSG_REQ_ACK) && c->state == CH_CS_READY) {
        m->state_ = CH_MS_ACKQ;
        ch_list_push(&c->acks, &m->link);
        ch_conn_flush(c);
        return;
    }
    ch_conn_slot_free(c, m);
}

void ch_conn_reject(ch_message_t *m, const char *reason)
{
    ch_conn_t *c = m->conn_;
    size_t len = strlen(reason);
    if (m->state_ != CH_MS_APP)
        return; /* released or rejected already */
    c->cs->stats->messages_rejected++;
    if (!(m->type & CH_MSG_REQ_ACK) || c->state != CH_CS_READY) {
        ch_conn_release(m); /* nobody waits for an answer, or can get one */
        return;
    }
    if (!c->peer_reject) {
        /* libchirp has no reject frame: no ACK, and the connection closes,
         * so that its sender gets an error of its own. */
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why),
                 "rejected a message, and the peer cannot read why (%.150s)",
                 reason);
        drop_buffer(c, m);
        m->header = m->data = NULL;
        ch_conn_slot_free(c, m);
        ch_conn_close(c, CH_EREJECTED, why);
        return;
    }
    if (len > CH_REJECT_MAX)
        len = CH_REJECT_MAX;
    drop_buffer(c, m);
    m->header = m->data = NULL;
    m->buf_ = inline_buf(c, m); /* the reason waits here until written */
    memcpy(m->buf_, reason, len);
    m->reject_len_ = (uint16_t)len;
    m->rejected_ = 1;
    m->state_ = CH_MS_ACKQ;
    ch_list_push(&c->acks, &m->link);
    ch_conn_flush(c);
}

void ch_conn_slots_closed(ch_conn_t *c)
{
    int i;
    /* Slots still being filled, or waiting for their ACK, are dropped;
     * slots held by the application stay until it releases them. */
    for (i = 0; i < c->slots_used; i++) {
        ch_message_t *m = &c->slots[i];
        if (m->state_ == CH_MS_FILLING || m->state_ == CH_MS_ACKQ ||
            m->state_ == CH_MS_ACKWRITE)
            ch_conn_slot_free(c, m);
    }
}

void ch_conn_slots_free(ch_conn_t *c)
{
    int i;
    for (i = 0; i < c->slots_used; i++)
        drop_buffer(c, &c->slots[i]);
}

/* A free slot: the one freed last, else one never taken yet (set up
 * now); NULL when all are taken. */
static ch_message_t *take_slot(ch_conn_t *c)
{
    ch_message_t *m;
    if (c->nfree > 0) {
        m = &c->slots[c->free_slots[--c->nfree]];
    } else if (c->slots_used < c->nslots) {
        m = &c->slots[c->slots_used];
        memset(m, 0, sizeof(*m));
        m->conn_ = c;
        m->index_ = (uint16_t)c->slots_used++;
    } else {
        return NULL;
    }
    m->state_ = CH_MS_FILLING;
    c->slots_busy++;
    c->cs->stats->slots_in_use++;
    return m;
}

static void deliver(ch_conn_t *c, ch_message_t *m)
{
    ch_reader_t *rd = &c->reader;
    ch_remote_t *r = c->remote;
    memcpy(m->identity, rd->hdr.identity, CH_ID_SIZE);
    m->serial = rd->hdr.serial;
    m->type = rd->hdr.type;
    m->header_len = rd->hdr.header_len;
    m->data_len = rd->hdr.data_len;
    m->header = m->buf_;
    m->data = m->buf_ + m->header_len;
    m->ip_protocol = r->ip_protocol;
    memcpy(m->address, r->address, 16);
    m->port = r->port;
    memcpy(m->remote_identity, c->remote_identity, CH_ID_SIZE);
    m->user_data = NULL;
    m->link.next = m->link.prev = NULL;
    m->state_ = CH_MS_APP;
    c->cur = NULL;
    r->received++;
    c->cs->stats->messages_received++;
    c->cs->stats->bytes_received += (uint64_t)m->header_len + m->data_len;
    c->cs->on_msg(c->cs->node, m);
}

/* The peer announced itself: synchronous sends to it may pipeline, up to
 * its window and ours. */
static void capability(ch_conn_t *c, const ch_cap_t *cap)
{
    int window = cap->window;
    if (window > c->cs->cfg->max_inflight)
        window = c->cs->cfg->max_inflight;
    c->peer_window = window;
    c->peer_reject = (cap->flags & CH_CAP_REJECT) != 0;
    /* The remote's, not the connection's: a new connection to it knows. */
    ch_remote_set_max_msg_size(c->remote, cap->max_msg_size);
    ch_conn_flush(c);
}

/* Stop reading until a slot (or max_memory) frees: TCP holds the sender
 * back meanwhile. */
static void stall(ch_conn_t *c)
{
    if (!c->stalled) {
        c->stalled = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* Parse what is in the read buffer; stop when every slot is taken.
 * Returns 0 when the connection closed or stalled. */
static int process(ch_conn_t *c)
{
    ch_reader_t *rd = &c->reader;
    for (;;) {
        size_t used;
        int ev;
        ch_cap_t cap;
        if (c->state == CH_CS_CLOSING)
            return 0;
        if (rd->state == CH_RS_PAYLOAD_WAIT) {
            ch_message_t *m = take_slot(c);
            if (m == NULL) {
                stall(c);
                return 0;
            }
            if (rd->payload_len <= CH_INLINE_SIZE) {
                m->buf_ = inline_buf(c, m);
            } else {
                int rc = big_buffer(c, m, rd->payload_len);
                if (rc != CH_OK) {
                    ch_conn_slot_free(c, m);
                    if (rc == CH_EAGAIN) { /* max_memory: wait for it */
                        stall(c);
                        return 0;
                    }
                    ch_conn_close(c, CH_ENOMEM,
                                  "out of memory for a large message");
                    return 0;
                }
            }
            c->cur = m;
            ch_reader_set_payload(rd, m->buf_);
        }
        if (c->rpos == c->rlen &&
            !(rd->state == CH_RS_PAYLOAD && ch_reader_payload_missing(rd) == 0))
            break;
        ev = ch_reader_feed(rd, c->rbuf + c->rpos, c->rlen - c->rpos, &used);
        c->rpos += used;
        switch (ev) {
        case CH_RD_MORE:
            break;
        case CH_RD_HANDSHAKE:
            ch_conn_handshake_done(c);
            break;
        case CH_RD_HEADER:
            if (c->state != CH_CS_READY) {
                ch_conn_close(c, CH_EPROTO, "message before handshake");
                return 0;
            }
            break;
        case CH_RD_CONTROL:
            if (rd->hdr.type & CH_MSG_ACK)
                ch_conn_ack_received(c, rd->hdr.identity);
            else if (ch_wire_decode_cap(&rd->hdr, &cap))
                capability(c, &cap);
            break;
        case CH_RD_MESSAGE:
            deliver(c, c->cur);
            break;
        case CH_RD_REJECT:
            ch_conn_reject_received(c, rd->hdr.identity, rd->reason,
                                    rd->hdr.data_len);
            break;
        default: {
            char why[CH_DETAIL_SIZE];
            if (rd->error == CH_EMSGSIZE)
                snprintf(why, sizeof(why),
                         "refused a message of %llu bytes: max_msg_size is "
                         "%lu",
                         (unsigned long long)rd->hdr.header_len +
                             rd->hdr.data_len,
                         (unsigned long)rd->max_msg_size);
            else
                snprintf(why, sizeof(why), "protocol error: %s",
                         rd->why ? rd->why : "bad input");
            ch_conn_close(c, rd->error == CH_EMSGSIZE ? CH_EMSGSIZE
                                                      : CH_EPROTO,
                          why);
            return 0;
        }
        }
    }
    c->rpos = c->rlen = 0;
    return 1;
}

/* Parse everything available (plaintext, or what TLS decrypts), then make
 * sure the connection reads again unless every slot is taken. */
static void pump_once(ch_conn_t *c)
{
    for (;;) {
        char why[CH_DETAIL_SIZE];
        int n;
        uint32_t missing;
        if (!process(c))
            return;
        if (c->tls == NULL)
            break;
        missing = ch_reader_payload_missing(&c->reader);
        if (missing >= CH_DIRECT_READ && c->cur != NULL) {
            /* Decrypt a big payload straight into the message buffer. */
            n = ch_tls_read(c->tls,
                            c->reader.payload + c->reader.payload_have,
                            missing, why, sizeof(why));
            if (n < 0) {
                ch_conn_close(c, n, why);
                return;
            }
            if (n == 0)
                break;
            ch_reader_payload_advance(&c->reader, (uint32_t)n);
            continue;
        }
        n = ch_tls_read(c->tls, c->rbuf, c->rbuf_size, why, sizeof(why));
        if (n < 0) {
            ch_conn_close(c, n, why);
            return;
        }
        if (n == 0)
            break;
        c->rpos = 0;
        c->rlen = (size_t)n;
    }
    if (c->tls != NULL)
        ch_conn_flush_tls(c);
    if (c->stalled && c->state != CH_CS_CLOSING) {
        c->stalled = 0;
        ch_conn_read_start(c);
    }
}

/* pump_once, marked: a message released from inside the receive
 * callback frees its slot for this very pump (the next message takes
 * it), instead of starting another pump inside this one. */
void ch_conn_pump(ch_conn_t *c)
{
    c->pumping++;
    pump_once(c);
    c->pumping--;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ch_conn_t *c = h->data;
    uint32_t missing = ch_reader_payload_missing(&c->reader);
    (void)suggested;
    if (c->tls != NULL) {
        ch_tls_read_buffer(c->tls, buf);
        return;
    }
    if (missing >= CH_DIRECT_READ && c->rpos == c->rlen && c->cur != NULL) {
        /* Read a big payload straight into the message buffer. */
        buf->base = (char *)c->reader.payload + c->reader.payload_have;
        buf->len = missing;
        return;
    }
    buf->base = (char *)c->rbuf;
    buf->len = c->rbuf_size;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ch_conn_t *c = s->data;
    if (nread < 0) {
        char why[CH_DETAIL_SIZE];
        int by_peer = nread == UV_EOF || nread == UV_ECONNRESET;
        if (nread == UV_EOF)
            snprintf(why, sizeof(why), "connection closed by peer");
        else
            snprintf(why, sizeof(why), "read failed: %s",
                     uv_strerror((int)nread));
        ch_conn_close_why(c, CH_ECONN,
                          by_peer ? CH_REASON_PEER_CLOSED : -1, why);
        return;
    }
    if (nread == 0)
        return;
    c->last_activity = uv_now(c->cs->loop);
    if (c->tls != NULL) {
        char why[CH_DETAIL_SIZE];
        if (ch_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread,
                        why, sizeof(why)) != CH_OK) {
            ch_conn_close(c, CH_ETLS, why);
            return;
        }
        if (c->state == CH_CS_TLS)
            ch_conn_tls_step(c);
        else
            ch_conn_pump(c);
        return;
    }
    if (buf->base != (char *)c->rbuf) {
        ch_reader_payload_advance(&c->reader, (uint32_t)nread);
        c->rpos = c->rlen = 0;
    } else {
        c->rpos = 0;
        c->rlen = (size_t)nread;
    }
    ch_conn_pump(c);
}
