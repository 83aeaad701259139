/* node.c - configuration, node lifecycle, the periodic timer and the
 * loop-thread entry points of the public API. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_internal.h"

const char *ch_errname(int err)
{
    switch (err) {
    case CH_OK: return "CH_OK";
    case CH_EINVAL: return "CH_EINVAL";
    case CH_ENOMEM: return "CH_ENOMEM";
    case CH_ETIMEDOUT: return "CH_ETIMEDOUT";
    case CH_ECONN: return "CH_ECONN";
    case CH_EPROTO: return "CH_EPROTO";
    case CH_ECLOSED: return "CH_ECLOSED";
    case CH_ETLS: return "CH_ETLS";
    case CH_EADDR: return "CH_EADDR";
    case CH_EMSGSIZE: return "CH_EMSGSIZE";
    case CH_EAGAIN: return "CH_EAGAIN";
    default: return "CH_EUNKNOWN";
    }
}

const char *ch_strerror(int err)
{
    switch (err) {
    case CH_OK: return "success";
    case CH_EINVAL: return "invalid argument";
    case CH_ENOMEM: return "out of memory";
    case CH_ETIMEDOUT: return "timed out";
    case CH_ECONN: return "connection failed or lost";
    case CH_EPROTO: return "protocol error";
    case CH_ECLOSED: return "node closed";
    case CH_ETLS: return "TLS error";
    case CH_EADDR: return "address error";
    case CH_EMSGSIZE: return "message too large";
    case CH_EAGAIN: return "resource temporarily unavailable";
    default: return "unknown error";
    }
}

void ch_config_init(ch_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 2998;
    c->timeout = 5.0;
    c->reuse_time = 30.0;
    c->max_slots = 16;
    c->synchronous = 1;
    c->buffer_size = 0;
    c->max_msg_size = 100u * 1024u * 1024u;
    strcpy(c->bind_v4, "0.0.0.0");
    strcpy(c->bind_v6, "::");
    c->backlog = 100;
    c->max_inflight = 16;
    c->spin_us = 50;
}

#define FAIL(...)                                                           \
    do {                                                                    \
        if (err != NULL && errlen > 0)                                      \
            snprintf(err, errlen, __VA_ARGS__);                             \
        return CH_EINVAL;                                                   \
    } while (0)

int ch_config_check(const ch_config_t *c, char *err, size_t errlen)
{
    uint8_t proto, addr[16];
    if (!(c->timeout > 0.0) || c->timeout > 86400.0)
        FAIL("timeout must be > 0 and <= 86400 seconds, got %g", c->timeout);
    if (!(c->reuse_time > 0.0) || c->reuse_time > 86400.0)
        FAIL("reuse_time must be > 0 and <= 86400 seconds, got %g",
             c->reuse_time);
    if (c->max_slots < 1 || c->max_slots > CH_MAX_SLOTS)
        FAIL("max_slots must be in 1..%d, got %d", CH_MAX_SLOTS,
             c->max_slots);
    if (c->buffer_size != 0 &&
        (c->buffer_size < 1024 || c->buffer_size > 16u * 1024u * 1024u))
        FAIL("buffer_size must be 0 or in 1024..16777216, got %u",
             c->buffer_size);
    if (c->max_msg_size < 1)
        FAIL("max_msg_size must be >= 1, got %u", c->max_msg_size);
    if (c->backlog < 1 || c->backlog > 65535)
        FAIL("backlog must be in 1..65535, got %d", c->backlog);
    if (c->max_inflight < 1 || c->max_inflight > 1024)
        FAIL("max_inflight must be in 1..1024, got %d", c->max_inflight);
    if (c->spin_us < 0 || c->spin_us > 100000)
        FAIL("spin_us must be in 0..100000, got %d", c->spin_us);
    if (c->bind_v4[0] == '\0' && c->bind_v6[0] == '\0')
        FAIL("bind_v4 and bind_v6 are both empty: nothing to listen on");
    if (c->bind_v4[0] != '\0' &&
        (ch_parse_address(c->bind_v4, &proto, addr) != CH_OK || proto != 4))
        FAIL("bind_v4 is not an IPv4 address: '%s'", c->bind_v4);
    if (c->bind_v6[0] != '\0' &&
        (ch_parse_address(c->bind_v6, &proto, addr) != CH_OK || proto != 6))
        FAIL("bind_v6 is not an IPv6 address: '%s'", c->bind_v6);
    return CH_OK;
}
#undef FAIL

int ch_parse_address(const char *text, uint8_t *ip_protocol,
                     uint8_t address[16])
{
    memset(address, 0, 16);
    if (uv_inet_pton(AF_INET, text, address) == 0) {
        *ip_protocol = 4;
        return CH_OK;
    }
    if (uv_inet_pton(AF_INET6, text, address) == 0) {
        *ip_protocol = 6;
        return CH_OK;
    }
    return CH_EINVAL;
}

void ch_format_address(uint8_t ip_protocol, const uint8_t address[16],
                       char *out, size_t outlen)
{
    if (uv_inet_ntop(ip_protocol == 6 ? AF_INET6 : AF_INET, address, out,
                     outlen) != 0)
        snprintf(out, outlen, "?");
}

uint64_t ch_now(ch_node_t *node)
{
    return uv_now(node->loop);
}

/* xoroshiro128+: message identities need to be unique, not secret. */
uint64_t ch_rng_next(uint64_t s[2])
{
    uint64_t s0 = s[0], s1 = s[1], r = s0 + s1;
    s1 ^= s0;
    s[0] = ((s0 << 55) | (s0 >> 9)) ^ s1 ^ (s1 << 14);
    s[1] = (s1 << 36) | (s1 >> 28);
    return r;
}

void ch_rng_id(uint64_t s[2], uint8_t out[CH_ID_SIZE])
{
    uint64_t a = ch_rng_next(s), b = ch_rng_next(s);
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}

void ch_random_id(ch_node_t *node, uint8_t out[CH_ID_SIZE])
{
    ch_rng_id(node->rng, out);
}

int ch_identity_is_chirp(const uint8_t id[CH_ID_SIZE])
{
    return memcmp(id + CH_ID_SIZE - 4, CH_ID_MAGIC, 4) == 0;
}

/* Corked: write c at ch_node_uncork. */
static void flush_later(ch_node_t *node, ch_conn_t *c)
{
    if (!c->flush_listed) {
        c->flush_listed = 1;
        c->flush_next = node->flush_head;
        node->flush_head = c;
    }
}

void ch_node_cork(ch_node_t *node)
{
    node->corked++;
}

void ch_node_uncork(ch_node_t *node)
{
    if (node->corked == 0 || --node->corked > 0)
        return;
    while (node->flush_head != NULL) {
        ch_conn_t *c = node->flush_head;
        node->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flush_listed = 0;
        ch_writer_flush(c);
    }
}

/* A connection going away leaves the cork list. */
void ch_node_unlist(ch_node_t *node, ch_conn_t *c)
{
    ch_conn_t **pp;
    if (!c->flush_listed)
        return;
    for (pp = &node->flush_head; *pp != NULL; pp = &(*pp)->flush_next) {
        if (*pp == c) {
            *pp = c->flush_next;
            break;
        }
    }
    c->flush_next = NULL;
    c->flush_listed = 0;
}

void ch_send_init(ch_send_t *req)
{
    memset(req, 0, sizeof(*req));
}

void ch_send_set_identity(ch_send_t *req, const uint8_t id[CH_ID_SIZE])
{
    memcpy(req->identity, id, CH_ID_SIZE);
    req->has_identity_ = 1;
}

void *ch_node_user_data(ch_node_t *node)
{
    return node->user_data;
}

uint16_t ch_node_port(const ch_node_t *node)
{
    return node->port;
}

const uint8_t *ch_node_identity(const ch_node_t *node)
{
    return node->identity;
}

/* Buffers for messages too big for a slot's own.  Memory fresh from the
 * system costs a page fault per 4 KiB as it is first written, more than
 * the copy itself for big messages, so a few freed buffers are kept for
 * the next ones (at most CH_BIG_KEEP bytes in all, let go after a timer
 * tick without big messages).  *cap gets the buffer's real size, to be
 * handed back to ch_node_big_free. */
uint8_t *ch_node_big_alloc(ch_node_t *node, uint32_t size, uint32_t *cap)
{
    int i, best = -1;
    node->big_used = 1;
    for (i = 0; i < node->nbig; i++)
        if (node->bigcap[i] >= size &&
            (best < 0 || node->bigcap[i] < node->bigcap[best]))
            best = i;
    if (best >= 0 && node->bigcap[best] / 2 <= size) {
        uint8_t *buf = node->big[best];
        *cap = node->bigcap[best];
        node->bigbytes -= *cap;
        node->nbig--;
        node->big[best] = node->big[node->nbig];
        node->bigcap[best] = node->bigcap[node->nbig];
        return buf;
    }
    *cap = size;
    return ch_malloc(size);
}

void ch_node_big_free(ch_node_t *node, uint8_t *buf, uint32_t cap)
{
    if (!node->closing && node->nbig < CH_BIG_SLOTS &&
        node->bigbytes + cap <= CH_BIG_KEEP) {
        node->big[node->nbig] = buf;
        node->bigcap[node->nbig++] = cap;
        node->bigbytes += cap;
        return;
    }
    ch_free(buf);
}

static void big_trim(ch_node_t *node)
{
    while (node->nbig > 0)
        ch_free(node->big[--node->nbig]);
    node->bigbytes = 0;
}

static void on_timer(uv_timer_t *t)
{
    ch_node_t *node = t->data;
    uint64_t now = ch_now(node);
    ch_conn_t *c, *next;
    size_t i;
    if (node->closing) {
        for (c = node->conns; c != NULL; c = next) {
            next = c->cnext;
            if (c->draining && c->state != CH_CS_CLOSING &&
                now >= node->drain_deadline)
                ch_conn_close(c, CH_ECLOSED, "node closed");
        }
        ch_node_check_drained(node);
        return;
    }
    for (i = 0; i < node->nbuckets; i++) {
        ch_remote_t *r, *rn;
        for (r = node->buckets[i]; r != NULL; r = rn) {
            rn = r->hnext;
            ch_writer_tick(r, now);
        }
    }
    for (c = node->conns; c != NULL; c = next) {
        next = c->cnext;
        ch_conn_tick(c, now);
    }
    ch_remote_gc(node);
    if (!node->big_used)
        big_trim(node);
    node->big_used = 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    ch_node_t *node = server->data;
    if (status < 0 || node->closing)
        return;
    ch_conn_accept(node, server);
}

static void on_handle_closed(uv_handle_t *h)
{
    ch_node_handle_closed(h->data);
}

void ch_node_handle_closed(ch_node_t *node)
{
    node->handles_open--;
    if (node->closing && node->handles_open == 0 && node->on_closed != NULL) {
        ch_closed_cb cb = node->on_closed;
        node->on_closed = NULL;
        cb(node);
    }
}

static int listen_on(ch_node_t *node, uv_tcp_t *h, const char *addr,
                     int v6, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int rc, len;
    rc = uv_tcp_init(node->loop, h);
    if (rc < 0) {
        snprintf(err, errlen, "tcp init: %s", uv_strerror(rc));
        return CH_EADDR;
    }
    h->data = node;
    node->handles_open++;
    if (v6)
        rc = uv_ip6_addr(addr, node->port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(addr, node->port, (struct sockaddr_in *)&ss);
    if (rc == 0)
        rc = uv_tcp_bind(h, (struct sockaddr *)&ss, v6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, node->cfg.backlog, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s port %u: %s",
                 v6 ? "[" : "", addr, v6 ? "]" : "", node->port,
                 uv_strerror(rc));
        return rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL ? 1 : CH_EADDR;
    }
    if (node->port == 0) {
        len = sizeof(ss);
        rc = uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len);
        if (rc < 0) {
            snprintf(err, errlen, "getsockname: %s", uv_strerror(rc));
            return CH_EADDR;
        }
        node->port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                              : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return CH_OK;
}

static void close_handle(ch_node_t *node, uv_handle_t *h)
{
    (void)node;
    if (!uv_is_closing(h))
        uv_close(h, on_handle_closed);
}

/* See ch_node_new in chirp.h.  A handler or SIG_IGN the program chose is
 * kept. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int ch_node_new(uv_loop_t *loop, const ch_config_t *config, ch_recv_cb on_msg,
                void *user_data, ch_node_t **out, char *err, size_t errlen)
{
    ch_node_t *node;
    int rc, rc6 = CH_OK;
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    *out = NULL;
    rc = ch_config_check(config, err, errlen);
    if (rc != CH_OK)
        return rc;
    ignore_sigpipe();
    node = ch_calloc(1, sizeof(*node));
    if (node == NULL) {
        snprintf(err, errlen, "out of memory allocating the node");
        return CH_ENOMEM;
    }
    node->nbuckets = 64;
    node->buckets = ch_calloc(node->nbuckets, sizeof(*node->buckets));
    if (node->buckets == NULL) {
        ch_free(node);
        snprintf(err, errlen, "out of memory allocating the node");
        return CH_ENOMEM;
    }
    node->loop = loop;
    node->cfg = *config;
    if (node->cfg.buffer_size == 0)
        node->cfg.buffer_size = 65536;
    node->on_msg = on_msg;
    node->user_data = user_data;
    node->port = config->port;
    node->timeout_ms = (uint64_t)(config->timeout * 1000.0);
    if (node->timeout_ms == 0)
        node->timeout_ms = 1;
    node->connect_timeout_ms = node->timeout_ms * 2;
    if (node->connect_timeout_ms > 60000)
        node->connect_timeout_ms = 60000;
    node->gc_ms = (uint64_t)(config->reuse_time * 1000.0);
    if (node->gc_ms < node->timeout_ms * 3)
        node->gc_ms = node->timeout_ms * 3;
    node->noop_ms = (uint64_t)(config->reuse_time * 750.0);
    if (uv_random(NULL, NULL, node->rng, sizeof(node->rng), 0, NULL) != 0) {
        node->rng[0] = uv_hrtime() ^ (uint64_t)(uintptr_t)node;
        node->rng[1] = 0x9e3779b97f4a7c15ull ^ (uint64_t)uv_os_getpid();
    }
    if (config->has_identity) {
        memcpy(node->identity, config->identity, CH_ID_SIZE);
    } else {
        ch_random_id(node, node->identity);
        memcpy(node->identity + CH_ID_SIZE - 4, CH_ID_MAGIC, 4);
    }
    if (!config->disable_encryption && config->cert_chain_pem != NULL) {
        /* Certificate and key problems surface here, not at a send. */
        rc = ch_tls_ctx_new(config, &node->tls_ctx, err, errlen);
        if (rc != CH_OK) {
            ch_free(node->buckets);
            ch_free(node);
            return rc;
        }
    }

    if (config->bind_v4[0] != '\0') {
        rc = listen_on(node, &node->listen4, config->bind_v4, 0, err, errlen);
        node->has4 = 1;
        if (rc != CH_OK)
            goto fail;
    }
    if (config->bind_v6[0] != '\0') {
        char err6[CH_DETAIL_SIZE];
        rc6 = listen_on(node, &node->listen6, config->bind_v6, 1, err6,
                        sizeof(err6));
        node->has6 = 1;
        /* A host without IPv6 still serves IPv4. */
        if (rc6 != CH_OK && !(rc6 == 1 && node->has4)) {
            snprintf(err, errlen, "%s", err6);
            rc = CH_EADDR;
            goto fail;
        }
    }
    rc = uv_timer_init(loop, &node->timer);
    if (rc < 0) {
        snprintf(err, errlen, "timer init: %s", uv_strerror(rc));
        rc = CH_EADDR;
        goto fail;
    }
    node->timer.data = node;
    node->handles_open++;
    {
        uint64_t tick = node->timeout_ms / 10;
        if (tick < 10)
            tick = 10;
        if (tick > 250)
            tick = 250;
        uv_timer_start(&node->timer, on_timer, tick, tick);
    }
    *out = node;
    return CH_OK;
fail:
    /* Close what was opened, then run the loop until it is closed. */
    node->closing = 1;
    if (node->has4)
        close_handle(node, (uv_handle_t *)&node->listen4);
    if (node->has6)
        close_handle(node, (uv_handle_t *)&node->listen6);
    while (node->handles_open > 0)
        uv_run(loop, UV_RUN_ONCE);
    ch_tls_ctx_free(node->tls_ctx);
    ch_free(node->buckets);
    ch_free(node);
    return rc == CH_OK ? CH_EADDR : rc;
}

int ch_node_send(ch_node_t *node, ch_send_t *req)
{
    ch_remote_t *remote;
    if (node->closing)
        return CH_ECLOSED;
    if (req->header_len > 0xffff)
        return CH_EINVAL;
    if (req->ip_protocol != 4 && req->ip_protocol != 6)
        return CH_EINVAL;
    if ((uint64_t)req->header_len + req->data_len > node->cfg.max_msg_size)
        return CH_EMSGSIZE;
    remote = ch_remote_get(node, req->ip_protocol, req->address, req->port,
                           1);
    if (remote == NULL)
        return CH_ENOMEM;
    if (!req->has_identity_)
        ch_random_id(node, req->identity);
    req->remote_ = remote;
    req->conn_ = NULL;
    req->acked_ = 0;
    req->deadline_ = ch_now(node) + node->timeout_ms;
    req->state_ = CH_SS_QUEUED;
    ch_sendq_push(&remote->queue, req);
    if (remote->conn != NULL && node->corked)
        flush_later(node, remote->conn);
    else if (remote->conn != NULL)
        ch_writer_flush(remote->conn);
    else if (remote->pending == NULL) {
        int rc = ch_conn_connect(node, remote);
        if (rc != CH_OK) {
            /* The send was accepted: it fails through its callback. */
            ch_remote_fail_queue(remote, rc, "cannot open a connection");
        }
    }
    return CH_OK;
}

void ch_node_release(ch_node_t *node, ch_message_t *msg)
{
    (void)node;
    if (msg->state_ == CH_MS_APP) /* a second release does nothing */
        ch_conn_release(msg->conn_, msg);
}

/* Close the timer once every connection is closing: the last handle. */
void ch_node_check_drained(ch_node_t *node)
{
    ch_conn_t *c;
    if (!node->closing || node->timer_closed)
        return;
    for (c = node->conns; c != NULL; c = c->cnext)
        if (c->state != CH_CS_CLOSING)
            return;
    node->timer_closed = 1;
    uv_timer_stop(&node->timer);
    close_handle(node, (uv_handle_t *)&node->timer);
}

void ch_node_close(ch_node_t *node, ch_closed_cb on_closed)
{
    ch_conn_t *c, *next;
    size_t i;
    if (node->closing)
        return;
    node->closing = 1;
    node->on_closed = on_closed;
    node->drain_deadline = ch_now(node) + node->timeout_ms;
    if (node->has4)
        close_handle(node, (uv_handle_t *)&node->listen4);
    if (node->has6)
        close_handle(node, (uv_handle_t *)&node->listen6);
    for (i = 0; i < node->nbuckets; i++) {
        ch_remote_t *r;
        for (r = node->buckets[i]; r != NULL; r = r->hnext)
            ch_remote_fail_queue(r, CH_ECLOSED, "node closed");
    }
    /* ACKs of released messages still go out (bounded by the timeout),
     * so a synchronous sender learns that they were delivered. */
    for (c = node->conns; c != NULL; c = next) {
        next = c->cnext;
        if (c->state == CH_CS_READY && (c->writing || c->ack_head != NULL))
            c->draining = 1;
        else
            ch_conn_close(c, CH_ECLOSED, "node closed");
    }
    ch_node_check_drained(node);
}

void ch_node_free(ch_node_t *node)
{
    ch_conn_t *c, *next;
    if (node == NULL)
        return;
    for (c = node->conns; c != NULL; c = next) {
        next = c->cnext;
        ch_conn_free(c);
    }
    ch_remotes_free(node);
    big_trim(node);
    ch_tls_ctx_free(node->tls_ctx);
    ch_free(node->buckets);
    ch_free(node);
}
