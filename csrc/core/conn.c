/* core/conn.c - a connection's lifecycle: connect or accept, TLS, the
 * chirp handshake, which connection of a remote is current, timeouts,
 * close and free; and the connection set (conn.h) the node holds.  Loop
 * thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "core/conn_int.h"
#include "util/addr.h"
#include "util/alloc.h"
#include "util/sock.h"
#include "wire/wire.h"

static ch_conn_t *conn_of(ch_link_t *l)
{
    return l != NULL ? CH_CONTAINER_OF(l, ch_conn_t, link) : NULL;
}

static ch_conn_t *next_conn(ch_conns_t *cs, ch_conn_t *c)
{
    return conn_of(ch_list_next(&cs->all, &c->link));
}

void ch_conns_init(ch_conns_t *cs)
{
    ch_list_init(&cs->all);
    ch_list_init(&cs->flush);
    ch_list_init(&cs->mem_wait);
    cs->mem_used = 0;
    cs->mem_waking = 0;
    cs->corked = 0;
    cs->flushing = 0;
    cs->closing = 0;
    cs->open_handles = 0;
}

/* The peer as "address:port": its listening port once known (from the
 * handshake, or the one we connected to), else the TCP source port. */
static void describe(ch_conn_t *c, char *out, size_t len)
{
    ch_addr_describe(c->ip_protocol, c->address,
                     c->remote != NULL ? c->remote->port : c->peer_port, out,
                     len);
}

/* One allocation per connection: struct, (TLS) its TLS state, slots, the
 * stack of freed slots, slot buffers, read buffer and (TLS) ciphertext
 * buffer; a running connection allocates nothing more for messages that
 * fit the slot buffers.  Only the first two are zeroed, and a slot is
 * set up when first taken: an idle connection that never touches most of
 * its slots and buffers keeps them out of resident memory. */
static ch_conn_t *conn_new(ch_conns_t *cs)
{
    size_t nslots = (size_t)cs->cfg->max_slots;
    size_t rsize = cs->cfg->buffer_size;
    size_t csize = cs->tls != NULL ? rsize : 0;
    size_t tsize = cs->tls != NULL ? (ch_tls_size() + 15) & ~(size_t)15 : 0;
    size_t ssize = nslots * sizeof(ch_message_t);
    size_t fsize = (nslots * sizeof(uint16_t) + 15) & ~(size_t)15;
    size_t head = sizeof(ch_conn_t) + tsize;
    size_t size = head + ssize + fsize + nslots * CH_INLINE_SIZE + rsize +
                  csize;
    uint8_t *mem = ch_malloc(size);
    ch_conn_t *c;
    if (mem == NULL)
        return NULL;
    /* Buffers stay untouched until used, so an idle connection costs
     * little resident memory. */
    memset(mem, 0, head);
    c = (ch_conn_t *)mem;
    mem += sizeof(ch_conn_t);
    c->tls_mem = tsize > 0 ? (ch_tls_t *)(void *)mem : NULL;
    mem += tsize;
    c->slots = (ch_message_t *)(void *)mem;
    mem += ssize;
    c->free_slots = (uint16_t *)(void *)mem;
    mem += fsize;
    c->inline_bufs = mem;
    mem += nslots * CH_INLINE_SIZE;
    c->rbuf = mem;
    c->rbuf_size = rsize;
    mem += rsize;
    c->cbuf = csize > 0 ? mem : NULL;
    c->nslots = (int)nslots;
    c->cs = cs;
    c->tcp.data = c;
    c->wreq.data = c;
    c->creq.data = c;
    c->peer_window = 1;
    ch_conn_slots_init(c);
    ch_reader_init(&c->reader, cs->cfg->max_msg_size);
    c->last_activity = uv_now(cs->loop);
    c->deadline = c->last_activity + cs->connect_timeout_ms;
    ch_list_push(&cs->all, &c->link);
    return c;
}

static void conn_free(ch_conn_t *c)
{
    ch_conns_t *cs = c->cs;
    if (ch_link_listed(&c->flush_link))
        ch_list_remove(&cs->flush, &c->flush_link);
    ch_conn_slots_free(c);
    ch_list_remove(&cs->all, &c->link);
    if (c->remote != NULL)
        ch_remote_detach(c->remote);
    if (c->tls != NULL)
        ch_tls_cleanup(c->tls);
    ch_free(c);
}

void ch_conn_maybe_free(ch_conn_t *c)
{
    if (c->handle_closed && c->slots_busy == 0)
        conn_free(c);
}

static void on_close(uv_handle_t *h)
{
    ch_conn_t *c = h->data;
    ch_conns_t *cs = c->cs;
    ch_conn_slots_closed(c);
    c->handle_closed = 1;
    cs->open_handles--;
    ch_conn_maybe_free(c);
    cs->on_handle_closed(cs);
}

/* Why a connection closed, when the caller did not say. */
static int reason_of(const ch_conn_t *c, int status)
{
    switch (status) {
    case CH_OK:
        return CH_REASON_IDLE;
    case CH_ETIMEDOUT:
        return CH_REASON_TIMEOUT;
    case CH_ETLS:
        return CH_REASON_TLS;
    case CH_EPROTO:
        return CH_REASON_PROTOCOL;
    case CH_EMSGSIZE:
        return CH_REASON_MSGSIZE;
    case CH_ECLOSED:
        return CH_REASON_NODE_CLOSED;
    case CH_ENOMEM:
        return CH_REASON_NOMEM;
    default:
        return c->state == CH_CS_CONNECTING ? CH_REASON_CONNECT
                                            : CH_REASON_ERROR;
    }
}

/* Tell the owner (on_peer): kind, and the reason of a close. */
static void peer_event(ch_conn_t *c, int kind, int reason)
{
    ch_conns_t *cs = c->cs;
    ch_peer_event_t ev;
    if (cs->on_peer == NULL)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.kind = kind;
    ev.reason = reason;
    ev.status = kind == CH_PEER_CONNECTED ? CH_OK : c->close_status;
    ev.ip_protocol = c->ip_protocol;
    memcpy(ev.address, c->address, 16);
    ev.port = c->remote != NULL ? c->remote->port : c->peer_port;
    memcpy(ev.identity, c->remote_identity, CH_ID_SIZE);
    ev.encrypted = (uint8_t)c->encrypted;
    ev.outgoing = (uint8_t)c->outgoing;
    cs->on_peer(cs->node, &ev,
                kind == CH_PEER_CONNECTED ? "" : c->close_detail);
}

void ch_conn_close(ch_conn_t *c, int status, const char *detail)
{
    ch_conn_close_why(c, status, -1, detail);
}

void ch_conn_close_why(ch_conn_t *c, int status, int reason,
                       const char *detail)
{
    ch_conns_t *cs = c->cs;
    ch_remote_t *r = c->remote;
    int was_ready = c->state == CH_CS_READY;
    if (c->state == CH_CS_CLOSING)
        return;
    c->close_reason = reason >= 0 ? reason : reason_of(c, status);
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
    if (ch_link_listed(&c->mem_link))
        ch_list_remove(&cs->mem_wait, &c->mem_link);
    if (c->tls != NULL) {
        uv_buf_t notify;
        ch_tls_close(c->tls, c->writing, &notify);
        if (notify.len > 0)
            uv_try_write((uv_stream_t *)&c->tcp, &notify, 1);
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
    if (r != NULL) {
        if (r->conn == c) {
            /* Go on with another ready connection to the remote, if any
             * (c itself is still counted in nconns). */
            ch_conn_t *o;
            for (o = r->nconns > 1 ? conn_of(ch_list_first(&cs->all)) : NULL;
                 o != NULL; o = next_conn(cs, o))
                if (o != c && o->remote == r && o->state == CH_CS_READY)
                    break; /* the oldest */
            ch_remote_set_current(r, o);
        }
        if (r->pending == c)
            ch_remote_set_pending(r, NULL);
        ch_conn_writer_closed(c);
        /* Nothing left to carry the queue: fail it with the cause. */
        if (r->conn == NULL && r->pending == NULL && !ch_list_empty(&r->queue))
            ch_remote_fail_queue(r, status == CH_OK ? CH_ECONN : status,
                                 c->close_detail);
        else if (r->conn != NULL)
            ch_conn_flush(r->conn);
    }
    if (was_ready) {
        cs->stats->connections_closed++;
        cs->stats->connections_ready--;
    } else {
        cs->stats->connections_refused++;
    }
    if (status == CH_ETLS)
        cs->stats->tls_failures++;
    peer_event(c, was_ready ? CH_PEER_DISCONNECTED : CH_PEER_REFUSED,
               c->close_reason);
    if (cs->closing)
        cs->on_closing(cs);
}

void ch_conn_handshake_done(ch_conn_t *c)
{
    ch_conns_t *cs = c->cs;
    ch_remote_t *r;
    memcpy(c->remote_identity, c->reader.hs_identity, CH_ID_SIZE);
    if (!c->outgoing) {
        r = ch_remote_get(cs->remotes, c->ip_protocol, c->address,
                          c->reader.hs_port, 1);
        if (r == NULL) {
            ch_conn_close(c, CH_ENOMEM, "out of memory for the remote");
            return;
        }
        c->remote = r;
        ch_remote_attach(r);
    }
    r = c->remote;
    if (r->pending == c)
        ch_remote_set_pending(r, NULL);
    /* Two connections to one remote (both sides connected at once): the
     * one whose handshake completes last becomes current, as in libchirp,
     * unless messages were already written on the current one -- then it
     * stays, since switching streams would reorder what is in flight.
     * The other one idles and is collected.  A connection the peer made
     * never takes over from another the peer made: the port a handshake
     * announces is only a claim, and a second process claiming the port
     * of a live one must not get the traffic (the replies) meant for it.
     * A race is always ours against theirs; a peer that restarted is
     * current again once its old connection closes. */
    if (r->conn == NULL ||
        (r->conn->written == 0 && (c->outgoing || r->conn->outgoing)))
        ch_remote_set_current(r, c);
    c->state = CH_CS_READY;
    c->last_activity = c->ready_at = uv_now(cs->loop);
    c->cap_due = 1; /* the capability frame, first of all */
    cs->stats->connections_opened++;
    cs->stats->connections_ready++;
    peer_event(c, CH_PEER_CONNECTED, CH_REASON_NONE);
    if (c->state == CH_CS_READY)
        ch_conn_flush(c);
}

/* Write the chirp handshake (and start reading, unless TLS already
 * does). */
static void start_handshake(ch_conn_t *c, int start_reading)
{
    ch_conns_t *cs = c->cs;
    uv_buf_t b;
    int rc;
    if (c->state != CH_CS_TLS)
        c->deadline = uv_now(cs->loop) + cs->connect_timeout_ms;
    c->state = CH_CS_HANDSHAKE;
    uv_tcp_nodelay(&c->tcp, 1);
    ch_wire_encode_handshake(c->hs_out, cs->port, cs->identity);
    b = uv_buf_init((char *)c->hs_out, CH_HANDSHAKE_SIZE);
    if (c->tls != NULL) {
        /* A TLS flight may still be being written: queue it behind. */
        rc = ch_tls_write(c->tls, &b, 1) == CH_OK ? 0 : UV_EPROTO;
        if (rc == 0)
            ch_conn_flush_tls(c);
    } else {
        rc = ch_conn_write(c, &b, 1);
    }
    if (rc == 0 && start_reading)
        rc = ch_conn_read_start(c);
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
    c->encrypted = !c->cs->cfg->disable_encryption &&
                   !ch_addr_is_loopback(c->ip_protocol, c->address);
    if (c->encrypted && c->cs->tls == NULL) {
        ch_conn_close(c, CH_ETLS,
                      "peer is not loopback, so the connection must be "
                      "encrypted, but no cert_chain_pem is configured "
                      "(or set disable_encryption)");
        return -1;
    }
    return 0;
}

void ch_conn_tls_step(ch_conn_t *c)
{
    char why[CH_DETAIL_SIZE];
    int rc = ch_tls_handshake(c->tls, why, sizeof(why));
    if (rc < 0) {
        ch_conn_flush_tls(c); /* the alert, if the socket takes it */
        ch_conn_close(c, CH_ETLS, why);
        return;
    }
    if (rc == 1) {
        c->cs->stats->tls_handshakes++;
        start_handshake(c, 0); /* the chirp handshake, encrypted */
        if (c->state == CH_CS_HANDSHAKE)
            ch_conn_pump(c); /* data that came with the last flight */
        return;
    }
    ch_conn_flush_tls(c);
}

static void start_tls(ch_conn_t *c, int server)
{
    int rc;
    c->state = CH_CS_TLS;
    c->deadline = uv_now(c->cs->loop) + c->cs->connect_timeout_ms;
    uv_tcp_nodelay(&c->tcp, 1);
    rc = ch_tls_init(c->tls_mem, c->cs->tls, server, c->cbuf, c->rbuf_size);
    if (rc != CH_OK) {
        ch_conn_close(c, rc, "cannot set up TLS for the connection");
        return;
    }
    c->tls = c->tls_mem;
    rc = ch_conn_read_start(c);
    if (rc < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "read: %s", uv_strerror(rc));
        ch_conn_close(c, CH_ECONN, why);
        return;
    }
    if (!server)
        ch_conn_tls_step(c); /* ClientHello */
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

static int conn_connect(ch_conns_t *cs, ch_remote_t *r)
{
    struct sockaddr_storage ss;
    ch_conn_t *c = conn_new(cs);
    int rc;
    if (c == NULL)
        return CH_ENOMEM;
    c->outgoing = 1;
    c->remote = r;
    ch_remote_attach(r);
    ch_remote_set_pending(r, c);
    c->ip_protocol = r->ip_protocol;
    memcpy(c->address, r->address, 16);
    c->peer_port = r->port;
    c->state = CH_CS_CONNECTING;
    rc = uv_tcp_init(cs->loop, &c->tcp);
    if (rc < 0) {
        /* No handle: unlink and free right away. */
        ch_remote_set_pending(r, NULL);
        conn_free(c);
        return CH_ECONN;
    }
    cs->open_handles++;
    if (choose_encryption(c) != 0)
        return CH_OK;
    ch_addr_to_sockaddr(r->ip_protocol, r->address, r->port, &ss);
    rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss,
                        on_connect);
    if (rc < 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "connect failed: %s", uv_strerror(rc));
        ch_conn_close(c, CH_ECONN, why);
    }
    return CH_OK;
}

/* One address holds max_peer_connections accepted connections already:
 * close c at once, saying so (1).  A linear count: accepting is rare
 * beside messages. */
static int over_peer_limit(ch_conn_t *c)
{
    ch_conns_t *cs = c->cs;
    int max = cs->cfg->max_peer_connections, n = 0;
    ch_link_t *l;
    size_t alen = c->ip_protocol == 6 ? 16 : 4;
    if (max == 0)
        return 0;
    for (l = ch_list_first(&cs->all); l != NULL; l = ch_list_next(&cs->all, l)) {
        ch_conn_t *o = CH_CONTAINER_OF(l, ch_conn_t, link);
        if (o != c && !o->outgoing && o->state != CH_CS_CLOSING &&
            o->ip_protocol == c->ip_protocol &&
            memcmp(o->address, c->address, alen) == 0)
            n++;
    }
    if (n < max)
        return 0;
    {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why),
                 "refused: %d connections from this address already "
                 "(max_peer_connections)",
                 n);
        ch_conn_close_why(c, CH_ECONN, CH_REASON_LIMIT, why);
    }
    return 1;
}

int ch_conn_accept(ch_conns_t *cs, uv_stream_t *server)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;
    ch_conn_t *c = conn_new(cs);
    if (c == NULL)
        return CH_ENOMEM;
    c->state = CH_CS_HANDSHAKE;
    if (uv_tcp_init(cs->loop, &c->tcp) < 0) {
        conn_free(c);
        return CH_ENOMEM;
    }
    cs->open_handles++;
    rc = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len);
    if (rc < 0) {
        ch_conn_close(c, CH_ECONN, "accept failed");
        return CH_OK;
    }
    ch_addr_from_sockaddr(&ss, &c->ip_protocol, c->address, &c->peer_port);
    if (over_peer_limit(c))
        return CH_OK;
    if (choose_encryption(c) != 0)
        return CH_OK;
    if (c->encrypted)
        start_tls(c, 1);
    else
        start_handshake(c, 1);
    return CH_OK;
}

void ch_conns_kick(ch_conns_t *cs, ch_remote_t *r)
{
    if (r->conn != NULL) {
        ch_conn_t *c = r->conn;
        if (!cs->corked)
            ch_conn_flush(c);
        else if (!ch_link_listed(&c->flush_link))
            ch_list_push(&cs->flush, &c->flush_link);
    } else if (r->pending == NULL) {
        int rc = conn_connect(cs, r);
        if (rc != CH_OK) /* the sends were accepted: they fail */
            ch_remote_fail_queue(r, rc, "cannot open a connection");
    }
}

void ch_conns_cork(ch_conns_t *cs)
{
    cs->corked++;
}

void ch_conns_uncork(ch_conns_t *cs)
{
    ch_link_t *l;
    if (cs->corked == 0 || --cs->corked > 0)
        return;
    while ((l = ch_list_pop(&cs->flush)) != NULL)
        ch_conn_flush(CH_CONTAINER_OF(l, ch_conn_t, flush_link));
}

/* A connection that stopped reading (its slots or max_memory) does not
 * see its peer leave.  Collect it when the peer reset it, or when the
 * peer finished writing and the message the reader waits with wants an
 * ACK: it can never be given, the sender has failed it already.  An
 * unacknowledged message (an asynchronous sender's) is still delivered:
 * the connection ends when its data is read. */
static int peer_left(ch_conn_t *c)
{
    int st = ch_sock_peer_state(&c->tcp);
    if (st == CH_SOCK_GONE)
        return 1;
    return st == CH_SOCK_PEER_DONE && c->reader.state == CH_RS_PAYLOAD_WAIT &&
           (c->reader.hdr.type & CH_MSG_REQ_ACK) != 0;
}

static void conn_tick(ch_conn_t *c, uint64_t now)
{
    ch_conns_t *cs = c->cs;
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
    if (c->writing && c->whead != NULL && now >= c->whead->deadline_) {
        ch_conn_close(c, CH_ETIMEDOUT, "write timed out");
        return;
    }
    if (c->tls != NULL && !c->writing && now - c->last_activity >= 1000)
        ch_tls_trim(c->tls); /* quiet for a second: keep no big buffer */
    if (c->stalled && peer_left(c)) {
        ch_conn_close_why(c, CH_ECONN, CH_REASON_PEER_CLOSED,
                          "connection closed by peer while its slots were "
                          "held (its unread messages are dropped)");
        return;
    }
    if (now - c->last_activity >= cs->gc_ms && !c->writing &&
        c->slots_busy == 0 && c->inflight == 0 &&
        (c->remote == NULL || c->remote->conn != c ||
         ch_list_empty(&c->remote->queue)))
        ch_conn_close(c, CH_OK, "idle connection closed");
}

static void expire_remote(ch_remote_t *r, void *now)
{
    ch_remote_expire_queue(r, *(uint64_t *)now);
    ch_conn_expire_inflight(r, *(uint64_t *)now);
}

void ch_conns_tick(ch_conns_t *cs, uint64_t now)
{
    ch_conn_t *c, *next;
    if (cs->closing) {
        for (c = conn_of(ch_list_first(&cs->all)); c != NULL; c = next) {
            next = next_conn(cs, c);
            if (c->draining && c->state != CH_CS_CLOSING &&
                now >= cs->drain_deadline)
                ch_conn_close(c, CH_ECLOSED, cs->close_detail);
        }
        return;
    }
    ch_remotes_each(cs->remotes, expire_remote, &now);
    for (c = conn_of(ch_list_first(&cs->all)); c != NULL; c = next) {
        next = next_conn(cs, c);
        conn_tick(c, now);
    }
}

void ch_conns_close(ch_conns_t *cs, const char *detail, uint64_t drain_ms)
{
    ch_conn_t *c, *next;
    cs->closing = 1;
    cs->drain_deadline = uv_now(cs->loop) + drain_ms;
    snprintf(cs->close_detail, sizeof(cs->close_detail), "%s", detail);
    /* ACKs of released messages still go out (bounded), so a synchronous
     * sender learns that they were delivered. */
    for (c = conn_of(ch_list_first(&cs->all)); c != NULL; c = next) {
        next = next_conn(cs, c);
        if (drain_ms > 0 && c->state == CH_CS_READY &&
            (c->writing || !ch_list_empty(&c->acks)))
            c->draining = 1;
        else
            ch_conn_close(c, CH_ECLOSED, cs->close_detail);
    }
}

int ch_conns_all_closing(const ch_conns_t *cs)
{
    ch_link_t *l;
    for (l = ch_list_first(&cs->all); l != NULL; l = ch_list_next(&cs->all, l))
        if (conn_of(l)->state != CH_CS_CLOSING)
            return 0;
    return 1;
}

typedef struct peers_walk {
    uint64_t now;
    ch_peer_info_t *out;
    int max;
    int n;
} peers_walk_t;

static void peer_info(ch_remote_t *r, void *arg)
{
    peers_walk_t *w = arg;
    ch_peer_info_t *p;
    ch_conn_t *c = r->conn;
    if (w->n++ >= w->max)
        return;
    p = &w->out[w->n - 1];
    memset(p, 0, sizeof(*p));
    p->ip_protocol = r->ip_protocol;
    memcpy(p->address, r->address, 16);
    p->port = r->port;
    p->connections = r->nconns;
    p->inflight = r->inflight.len;
    p->queued = r->queue.len;
    p->sent = r->sent;
    p->received = r->received;
    if (c != NULL && c->state == CH_CS_READY) {
        memcpy(p->identity, c->remote_identity, CH_ID_SIZE);
        p->connected = 1;
        p->encrypted = (uint8_t)c->encrypted;
        p->connected_ms = w->now - c->ready_at;
    }
}

int ch_conns_peers(ch_conns_t *cs, ch_peer_info_t *out, int max)
{
    peers_walk_t w;
    w.now = uv_now(cs->loop);
    w.out = out;
    w.max = max;
    w.n = 0;
    ch_remotes_each(cs->remotes, peer_info, &w);
    return w.n;
}

int ch_conns_testing_close(ch_conns_t *cs, ch_remote_t *r)
{
    (void)cs;
    if (r->conn == NULL)
        return CH_EINVAL;
    if (!r->conn->writing)
        return CH_EAGAIN;
    ch_conn_close(r->conn, CH_ECONN, "closed by the test");
    return CH_OK;
}

void ch_conns_testing_state(ch_conns_t *cs, ch_remote_t *r,
                            ch_testing_remote_t *out)
{
    ch_conn_t *c = r->conn;
    (void)cs;
    memset(out, 0, sizeof(*out));
    out->queued = r->queue.len;
    out->inflight = r->inflight.len;
    if (c != NULL) {
        out->connected = 1;
        out->writing = c->writing;
        out->in_write = c->wcount;
        out->window = c->peer_window;
    }
}

void ch_conns_free(ch_conns_t *cs)
{
    ch_link_t *l;
    while ((l = ch_list_first(&cs->all)) != NULL)
        conn_free(conn_of(l));
}
