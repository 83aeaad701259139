/* conn.c - connection lifecycle: connect, accept, handshake, the read path
 * into the slot pool, idle and handshake timeouts, close and free. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_internal.h"

#define IOV_CAP (3 * CH_BATCH_MSGS + CH_MAX_SLOTS + 2)

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void pump(ch_conn_t *c);
static void on_tls_read(ch_conn_t *c, const uint8_t *data, size_t len);

int ch_is_loopback(uint8_t proto, const uint8_t a[16])
{
    static const uint8_t v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 0, 0, 0, 1};
    if (proto == 4)
        return a[0] == 127 && a[1] == 0 && a[2] == 0 && a[3] == 1;
    return memcmp(a, v6lo, 16) == 0;
}

static void describe(ch_conn_t *conn, char *out, size_t len)
{
    char a[64];
    ch_format_address(conn->ip_protocol, conn->address, a, sizeof(a));
    snprintf(out, len, conn->ip_protocol == 6 ? "[%s]:%u" : "%s:%u", a,
             conn->outgoing && conn->remote ? conn->remote->port
                                            : conn->peer_port);
}

/* One allocation per connection: struct, slots, slot buffers, read buffer
 * and the write vector; a running connection allocates nothing more for
 * messages that fit the slot buffers. */
static ch_conn_t *conn_new(ch_node_t *node)
{
    size_t nslots = (size_t)node->cfg.max_slots;
    size_t rsize = node->cfg.buffer_size;
    size_t csize = node->tls_ctx != NULL ? rsize : 0;
    size_t size = sizeof(ch_conn_t) + nslots * sizeof(ch_message_t) +
                  IOV_CAP * sizeof(uv_buf_t) + nslots * CH_INLINE_SIZE +
                  rsize + csize;
    size_t head = sizeof(ch_conn_t) + nslots * sizeof(ch_message_t) +
                  IOV_CAP * sizeof(uv_buf_t);
    uint8_t *mem = ch_malloc(size);
    ch_conn_t *c;
    size_t i;
    if (mem == NULL)
        return NULL;
    /* Buffers stay untouched until used, so an idle connection costs
     * little resident memory. */
    memset(mem, 0, head);
    c = (ch_conn_t *)mem;
    mem += sizeof(ch_conn_t);
    c->slots = (ch_message_t *)mem;
    mem += nslots * sizeof(ch_message_t);
    c->iov = (uv_buf_t *)mem;
    c->iov_cap = IOV_CAP;
    mem += IOV_CAP * sizeof(uv_buf_t);
    c->inline_bufs = mem;
    mem += nslots * CH_INLINE_SIZE;
    c->rbuf = mem;
    c->rbuf_size = rsize;
    mem += rsize;
    c->cbuf = csize > 0 ? mem : NULL;
    c->nslots = (int)nslots;
    for (i = 0; i < nslots; i++) {
        c->slots[i].conn_ = c;
        c->slots[i].index_ = (uint8_t)i;
        c->slots[i].state_ = CH_MS_FREE;
    }
    c->node = node;
    c->tcp.data = c;
    c->wreq.data = c;
    c->creq.data = c;
    ch_reader_init(&c->reader, node->cfg.max_msg_size);
    c->last_activity = ch_now(node);
    c->deadline = c->last_activity + node->connect_timeout_ms;
    /* link */
    c->cnext = node->conns;
    if (node->conns != NULL)
        node->conns->cprev = c;
    node->conns = c;
    node->nconns++;
    return c;
}

/* Free a slot's buffer unless it is the slot's own preallocated one. */
static void drop_buffer(ch_conn_t *c, ch_message_t *m)
{
    if (m->buf_ != NULL &&
        m->buf_ != c->inline_bufs + (size_t)m->index_ * CH_INLINE_SIZE)
        ch_node_big_free(c->node, m->buf_, m->bufcap_);
    m->buf_ = NULL;
}

void ch_conn_free(ch_conn_t *c)
{
    ch_node_t *node = c->node;
    int i;
    ch_node_unlist(node, c);
    for (i = 0; i < c->nslots; i++)
        drop_buffer(c, &c->slots[i]);
    if (c->cprev != NULL)
        c->cprev->cnext = c->cnext;
    else
        node->conns = c->cnext;
    if (c->cnext != NULL)
        c->cnext->cprev = c->cprev;
    node->nconns--;
    if (c->remote != NULL)
        c->remote->nconns--;
    ch_tls_conn_free(c);
    ch_free(c);
}

static void maybe_free(ch_conn_t *c)
{
    if (c->handle_closed && c->slots_busy == 0)
        ch_conn_free(c);
}

static void on_close(uv_handle_t *h)
{
    ch_conn_t *c = h->data;
    ch_node_t *node = c->node;
    int i;
    /* Slots still being filled, or waiting for their ACK, are dropped;
     * slots held by the application stay until it releases them. */
    for (i = 0; i < c->nslots; i++) {
        ch_message_t *m = &c->slots[i];
        if (m->state_ == CH_MS_FILLING || m->state_ == CH_MS_ACKQ ||
            m->state_ == CH_MS_ACKWRITE)
            ch_conn_slot_free(c, m);
    }
    c->handle_closed = 1;
    maybe_free(c);
    ch_node_handle_closed(node);
}

void ch_conn_close(ch_conn_t *c, int status, const char *detail)
{
    ch_remote_t *r = c->remote;
    if (c->state == CH_CS_CLOSING)
        return;
    c->state = CH_CS_CLOSING;
    c->close_status = status;
    if (status != CH_OK) {
        char who[96];
        describe(c, who, sizeof(who));
        snprintf(c->close_detail, sizeof(c->close_detail), "%s: %s", who,
                 detail);
    } else {
        snprintf(c->close_detail, sizeof(c->close_detail), "%s", detail);
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->ssl != NULL)
        ch_tls_shutdown(c);
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
    if (r != NULL) {
        if (r->conn == c) {
            ch_conn_t *o;
            r->conn = NULL;
            /* Go on with another ready connection to the remote, if any
             * (c itself is still counted in nconns). */
            for (o = r->nconns > 1 ? c->node->conns : NULL; o != NULL;
                 o = o->cnext)
                if (o != c && o->remote == r && o->state == CH_CS_READY)
                    r->conn = o;
        }
        if (r->pending == c)
            r->pending = NULL;
        ch_writer_conn_closed(c);
        /* Nothing left to carry the queue: fail it with the cause. */
        if (r->conn == NULL && r->pending == NULL && r->queue.len > 0)
            ch_remote_fail_queue(r, status == CH_OK ? CH_ECONN : status,
                                 c->close_detail);
        else if (r->conn != NULL)
            ch_writer_flush(r->conn);
    }
    if (c->node->closing)
        ch_node_check_drained(c->node);
}

void ch_conn_slot_free(ch_conn_t *c, ch_message_t *m)
{
    if (m->state_ == CH_MS_FREE)
        return;
    drop_buffer(c, m);
    m->state_ = CH_MS_FREE;
    c->slots_busy--;
    if (c->handle_closed) {
        maybe_free(c);
        return;
    }
    if (c->stalled && !c->pumping && c->state != CH_CS_CLOSING)
        ch_conn_resume(c);
}

/* The application is done with m: queue its ACK if one was asked (the
 * slot is free once the ACK is written), else free the slot now. */
void ch_conn_release(ch_conn_t *c, ch_message_t *m)
{
    drop_buffer(c, m);
    m->header = m->data = NULL;
    if ((m->type & CH_MSG_REQ_ACK) && c->state == CH_CS_READY) {
        m->state_ = CH_MS_ACKQ;
        m->next_ = NULL;
        if (c->ack_tail != NULL)
            c->ack_tail->next_ = m;
        else
            c->ack_head = m;
        c->ack_tail = m;
        ch_writer_flush(c);
        return;
    }
    ch_conn_slot_free(c, m);
}

static ch_message_t *take_slot(ch_conn_t *c)
{
    int i;
    for (i = 0; i < c->nslots; i++) {
        if (c->slots[i].state_ == CH_MS_FREE) {
            ch_message_t *m = &c->slots[i];
            m->state_ = CH_MS_FILLING;
            c->slots_busy++;
            return m;
        }
    }
    return NULL;
}

static void handshake_done(ch_conn_t *c)
{
    ch_node_t *node = c->node;
    ch_remote_t *r;
    memcpy(c->remote_identity, c->reader.hs_identity, CH_ID_SIZE);
    if (!c->outgoing) {
        r = ch_remote_get(node, c->ip_protocol, c->address,
                          c->reader.hs_port, 1);
        if (r == NULL) {
            ch_conn_close(c, CH_ENOMEM, "out of memory for the remote");
            return;
        }
        c->remote = r;
        r->nconns++;
    }
    r = c->remote;
    if (r->pending == c)
        r->pending = NULL;
    /* Two connections to one remote (both sides connected at once): the
     * one whose handshake completes last becomes current, as in libchirp,
     * unless messages were already written on the current one -- then it
     * stays, since switching streams would reorder what is in flight.
     * The other one idles and is collected. */
    if (r->conn == NULL || r->conn->written == 0)
        r->conn = c;
    r->window = ch_identity_is_chirp(c->remote_identity)
                    ? node->cfg.max_inflight
                    : 1;
    c->state = CH_CS_READY;
    c->last_activity = ch_now(node);
    ch_writer_flush(c);
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
    m->next_ = NULL;
    m->state_ = CH_MS_APP;
    c->cur = NULL;
    c->node->on_msg(c->node, m);
}

/* Parse what is in the read buffer; stop when every slot is taken. */
static int process(ch_conn_t *c)
{
    ch_reader_t *rd = &c->reader;
    for (;;) {
        size_t used;
        int ev;
        if (c->state == CH_CS_CLOSING)
            return 0;
        if (rd->state == CH_RS_PAYLOAD_WAIT) {
            ch_message_t *m = take_slot(c);
            if (m == NULL) {
                if (!c->stalled) {
                    c->stalled = 1;
                    uv_read_stop((uv_stream_t *)&c->tcp);
                }
                return 0;
            }
            if (rd->payload_len <= CH_INLINE_SIZE) {
                m->buf_ = c->inline_bufs + (size_t)m->index_ * CH_INLINE_SIZE;
            } else {
                m->buf_ = ch_node_big_alloc(c->node, rd->payload_len,
                                            &m->bufcap_);
                if (m->buf_ == NULL) {
                    ch_conn_slot_free(c, m);
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
            handshake_done(c);
            break;
        case CH_RD_HEADER:
            if (c->state != CH_CS_READY) {
                ch_conn_close(c, CH_EPROTO, "message before handshake");
                return 0;
            }
            break;
        case CH_RD_CONTROL:
            if (rd->hdr.type & CH_MSG_ACK)
                ch_writer_ack_received(c, rd->hdr.identity);
            break;
        case CH_RD_MESSAGE:
            deliver(c, c->cur);
            break;
        default: {
            char why[CH_DETAIL_SIZE];
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
        if (c->ssl == NULL)
            break;
        missing = ch_reader_payload_missing(&c->reader);
        if (missing >= CH_DIRECT_READ && c->cur != NULL) {
            /* Decrypt a big payload straight into the message buffer. */
            n = ch_tls_read(c,
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
        n = ch_tls_read(c, c->rbuf, c->rbuf_size, why, sizeof(why));
        if (n < 0) {
            ch_conn_close(c, n, why);
            return;
        }
        if (n == 0)
            break;
        c->rpos = 0;
        c->rlen = (size_t)n;
    }
    if (c->ssl != NULL)
        ch_writer_flush_tls(c);
    if (c->stalled && c->state != CH_CS_CLOSING) {
        c->stalled = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* pump_once, marked: a message released from inside the receive
 * callback frees its slot for this very pump (the next message takes
 * it), instead of starting another pump inside this one. */
static void pump(ch_conn_t *c)
{
    c->pumping++;
    pump_once(c);
    c->pumping--;
}

void ch_conn_resume(ch_conn_t *c)
{
    pump(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ch_conn_t *c = h->data;
    uint32_t missing = ch_reader_payload_missing(&c->reader);
    (void)suggested;
    if (c->ssl != NULL) {
        ch_tls_read_buffer(c, buf);
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
        if (nread == UV_EOF)
            snprintf(why, sizeof(why), "connection closed by peer");
        else
            snprintf(why, sizeof(why), "read failed: %s",
                     uv_strerror((int)nread));
        ch_conn_close(c, CH_ECONN, why);
        return;
    }
    if (nread == 0)
        return;
    c->last_activity = ch_now(c->node);
    if (c->ssl != NULL) {
        on_tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (buf->base != (char *)c->rbuf) {
        ch_reader_payload_advance(&c->reader, (uint32_t)nread);
        c->rpos = c->rlen = 0;
    } else {
        c->rpos = 0;
        c->rlen = (size_t)nread;
    }
    pump(c);
}

static void start_handshake(ch_conn_t *c, int start_reading)
{
    ch_node_t *node = c->node;
    uv_buf_t b;
    int rc;
    if (c->state != CH_CS_TLS)
        c->deadline = ch_now(node) + node->connect_timeout_ms;
    c->state = CH_CS_HANDSHAKE;
    uv_tcp_nodelay(&c->tcp, 1);
    ch_wire_encode_handshake(c->hs_out, node->port, node->identity);
    b = uv_buf_init((char *)c->hs_out, CH_HANDSHAKE_SIZE);
    if (c->ssl != NULL) {
        /* A TLS flight may still be being written: queue it behind. */
        rc = ch_tls_write(c, &b, 1) == CH_OK ? 0 : UV_EPROTO;
        if (rc == 0)
            ch_writer_flush_tls(c);
    } else {
        rc = ch_writer_start(c, &b, 1);
    }
    if (rc == 0 && start_reading)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "handshake: %s", uv_strerror(rc));
        ch_conn_close(c, CH_ECONN, why);
    }
}

/* TLS unless disabled or the peer is exactly 127.0.0.1 / ::1.  Returns 0
 * when the connection may go on, or closes it and returns -1. */
static int choose_encryption(ch_conn_t *c)
{
    c->encrypted = !c->node->cfg.disable_encryption &&
                   !ch_is_loopback(c->ip_protocol, c->address);
    if (c->encrypted && c->node->tls_ctx == NULL) {
        ch_conn_close(c, CH_ETLS,
                      "peer is not loopback, so the connection must be "
                      "encrypted, but no cert_chain_pem is configured "
                      "(or set disable_encryption)");
        return -1;
    }
    return 0;
}

static void tls_step(ch_conn_t *c)
{
    char why[CH_DETAIL_SIZE];
    int rc = ch_tls_handshake(c, why, sizeof(why));
    if (rc < 0) {
        ch_writer_flush_tls(c); /* the alert, if the socket takes it */
        ch_conn_close(c, CH_ETLS, why);
        return;
    }
    if (rc == 1) {
        start_handshake(c, 0); /* the chirp handshake, encrypted */
        if (c->state == CH_CS_HANDSHAKE)
            pump(c); /* data that came with the last handshake flight */
        return;
    }
    ch_writer_flush_tls(c);
}

static void start_tls(ch_conn_t *c, int server)
{
    int rc;
    c->state = CH_CS_TLS;
    c->deadline = ch_now(c->node) + c->node->connect_timeout_ms;
    uv_tcp_nodelay(&c->tcp, 1);
    rc = ch_tls_conn_init(c, server);
    if (rc != CH_OK) {
        ch_conn_close(c, rc, "cannot set up TLS for the connection");
        return;
    }
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "read: %s", uv_strerror(rc));
        ch_conn_close(c, CH_ECONN, why);
        return;
    }
    if (!server)
        tls_step(c); /* ClientHello */
}

static void on_tls_read(ch_conn_t *c, const uint8_t *data, size_t len)
{
    ch_tls_feed(c, data, len);
    if (c->state == CH_CS_TLS) {
        tls_step(c);
        return;
    }
    pump(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    ch_conn_t *c = req->data;
    if (c->state == CH_CS_CLOSING)
        return;
    if (status < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "connect failed: %s",
                 uv_strerror(status));
        ch_conn_close(c, status == UV_ETIMEDOUT ? CH_ETIMEDOUT : CH_ECONN,
                      why);
        return;
    }
    if (c->encrypted)
        start_tls(c, 0);
    else
        start_handshake(c, 1);
}

int ch_conn_connect(ch_node_t *node, ch_remote_t *r)
{
    struct sockaddr_storage ss;
    ch_conn_t *c = conn_new(node);
    int rc;
    if (c == NULL)
        return CH_ENOMEM;
    c->outgoing = 1;
    c->remote = r;
    r->nconns++;
    r->pending = c;
    c->ip_protocol = r->ip_protocol;
    memcpy(c->address, r->address, 16);
    c->peer_port = r->port;
    c->state = CH_CS_CONNECTING;
    rc = uv_tcp_init(node->loop, &c->tcp);
    if (rc < 0) {
        /* No handle: unlink and free right away. */
        r->pending = NULL;
        ch_conn_free(c);
        return CH_ECONN;
    }
    node->handles_open++;
    if (choose_encryption(c) != 0)
        return CH_OK;
    memset(&ss, 0, sizeof(ss));
    if (r->ip_protocol == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, r->address, 16);
        a->sin6_port = htons(r->port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, r->address, 4);
        a->sin_port = htons(r->port);
    }
    rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss,
                        on_connect);
    if (rc < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "connect failed: %s", uv_strerror(rc));
        ch_conn_close(c, CH_ECONN, why);
    }
    return CH_OK;
}

static void on_drop_closed(uv_handle_t *h)
{
    ch_node_t *node = h->data;
    int i;
    node->drop_busy = 0;
    ch_node_handle_closed(node);
    for (i = 0; i < 2; i++) {
        uv_stream_t *server = node->drop_pending[i];
        node->drop_pending[i] = NULL;
        if (server != NULL && !node->closing)
            ch_conn_accept(node, server); /* memory may be back */
    }
}

/* Accept a connection we have no memory for and close it at once, with a
 * handle the node owns: a listener whose connection is never accepted
 * stops accepting altogether. */
static void drop_connection(ch_node_t *node, uv_stream_t *server)
{
    if (node->drop_busy ||
        uv_tcp_init(node->loop, &node->drop) != 0) {
        node->drop_pending[server == (uv_stream_t *)&node->listen4 ? 0 : 1] =
            server;
        return;
    }
    node->drop.data = node;
    node->drop_busy = 1;
    node->handles_open++;
    uv_accept(server, (uv_stream_t *)&node->drop);
    uv_close((uv_handle_t *)&node->drop, on_drop_closed);
}

void ch_conn_accept(ch_node_t *node, uv_stream_t *server)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;
    ch_conn_t *c = conn_new(node);
    if (c == NULL) {
        drop_connection(node, server);
        return;
    }
    c->state = CH_CS_HANDSHAKE;
    rc = uv_tcp_init(node->loop, &c->tcp);
    if (rc < 0) {
        ch_conn_free(c);
        drop_connection(node, server);
        return;
    }
    node->handles_open++;
    rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    if (rc < 0) {
        ch_conn_close(c, CH_ECONN, "accept failed");
        return;
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(&a->sin6_addr, mapped, 12) == 0) {
            c->ip_protocol = 4;
            memcpy(c->address, (uint8_t *)&a->sin6_addr + 12, 4);
        } else {
            c->ip_protocol = 6;
            memcpy(c->address, &a->sin6_addr, 16);
        }
        c->peer_port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        c->ip_protocol = 4;
        memcpy(c->address, &a->sin_addr, 4);
        c->peer_port = ntohs(a->sin_port);
    }
    if (choose_encryption(c) != 0)
        return;
    if (c->encrypted)
        start_tls(c, 1);
    else
        start_handshake(c, 1);
}

void ch_conn_tick(ch_conn_t *c, uint64_t now)
{
    ch_node_t *node = c->node;
    if (c->state == CH_CS_CLOSING)
        return;
    if (c->state != CH_CS_READY) {
        if (now >= c->deadline)
            ch_conn_close(c, CH_ETIMEDOUT,
                          c->state == CH_CS_CONNECTING ? "connect timed out"
                          : c->state == CH_CS_TLS ? "TLS handshake timed out"
                                                  : "handshake timed out");
        return;
    }
    if (c->writing && c->wcount > 0 && now >= c->wmsgs[0]->deadline_) {
        ch_conn_close(c, CH_ETIMEDOUT, "write timed out");
        return;
    }
    if (c->ssl != NULL && !c->writing && now - c->last_activity >= 1000)
        ch_tls_trim(c); /* quiet for a second: keep no big buffer */
    if (now - c->last_activity >= node->gc_ms && !c->writing &&
        c->slots_busy == 0 && c->inflight == 0 &&
        (c->remote == NULL || c->remote->conn != c ||
         c->remote->queue.len == 0))
        ch_conn_close(c, CH_OK, "idle connection closed");
}
