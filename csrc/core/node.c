/* core/node.c - a node: its lifecycle, the periodic timer and the loop
 * API of chirp.h.  The node owns its listener, its connection set, its
 * remotes, the big-buffer cache and the TLS context; the modules below it
 * never call back into this file except through the callbacks it sets
 * (a message arrived, a handle closed).  Loop thread only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "chirp.h"
#include "core/conn.h"
#include "core/listener.h"
#include "core/remote.h"
#include "core/send.h"
#include "chirp_testing.h"
#include "util/alloc.h"

struct ch_node {
    uv_loop_t *loop;
    ch_config_t cfg; /* checked; its pointers are not kept (NULL) */
    ch_closed_cb on_closed;
    void *user_data;
    uint8_t identity[CH_ID_SIZE];
    uint16_t port;
    int closing;
    int lingering;        /* closing, waiting for pending sends */
    uint64_t linger_ms;   /* for the next close (ch_node_set_linger) */
    uint64_t linger_end;  /* while lingering */
    int timer_open;   /* the timer handle is open */
    int timer_closed; /* its close began */
    uv_timer_t timer;
    ch_listener_t listener;
    ch_conns_t conns;
    ch_remotes_t remotes;
    ch_bufcache_t bufs;
    ch_rng_t rng;
    ch_tls_ctx_t *tls; /* NULL: no certificate, plaintext only */
    ch_stats_t stats;  /* kept by the connections and the remotes */
};

static ch_node_t *node_of_conns(ch_conns_t *cs)
{
    return CH_CONTAINER_OF(cs, ch_node_t, conns);
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

/* Every handle closed while closing: tell the application. */
static void maybe_closed(ch_node_t *node)
{
    if (node->closing && node->timer_closed && !node->timer_open &&
        node->listener.open_handles == 0 && node->conns.open_handles == 0 &&
        node->on_closed != NULL) {
        ch_closed_cb cb = node->on_closed;
        node->on_closed = NULL;
        cb(node);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    ch_node_t *node = h->data;
    node->timer_open = 0;
    maybe_closed(node);
}

/* Close the timer once every connection is closing: the last handle. */
static void check_drained(ch_node_t *node)
{
    if (!node->closing || node->timer_closed ||
        !ch_conns_all_closing(&node->conns))
        return;
    node->timer_closed = 1;
    uv_timer_stop(&node->timer);
    uv_close((uv_handle_t *)&node->timer, on_timer_closed);
}

static void on_conn_handle_closed(ch_conns_t *cs)
{
    maybe_closed(node_of_conns(cs));
}

static void on_conn_closing(ch_conns_t *cs)
{
    check_drained(node_of_conns(cs));
}

static void on_listener_handle_closed(ch_listener_t *l)
{
    maybe_closed(CH_CONTAINER_OF(l, ch_node_t, listener));
}

static void finish_close(ch_node_t *node);

static void on_timer(uv_timer_t *t)
{
    ch_node_t *node = t->data;
    uint64_t now = uv_now(node->loop);
    ch_conns_tick(&node->conns, now);
    if (node->lingering && now >= node->linger_end)
        finish_close(node);
    if (node->closing) {
        check_drained(node);
        return;
    }
    ch_remotes_gc(&node->remotes);
    ch_bufcache_tick(&node->bufs);
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

/* The node's copy of the config, its timeouts and the connection set's
 * view of it. */
static void setup(ch_node_t *node, uv_loop_t *loop, const ch_config_t *config)
{
    ch_conns_t *cs = &node->conns;
    uint64_t timeout_ms = (uint64_t)(config->timeout * 1000.0);
    node->loop = loop;
    node->cfg = *config;
    node->cfg.bind_v4 = node->cfg.bind_v6 = NULL;
    node->cfg.cert_chain_pem = node->cfg.dh_params_pem = NULL;
    node->cfg.identity = NULL;
    if (node->cfg.buffer_size == 0)
        node->cfg.buffer_size = 65536;
    ch_rng_seed(&node->rng);
    if (config->identity != NULL)
        memcpy(node->identity, config->identity, CH_ID_SIZE);
    else
        ch_rng_id(&node->rng, node->identity);
    if (timeout_ms == 0)
        timeout_ms = 1;
    node->linger_ms = config->linger < 0 ? timeout_ms
                                         : (uint64_t)(config->linger * 1000.0);
    cs->loop = loop;
    cs->cfg = &node->cfg;
    ch_bufcache_init(&node->bufs);
    cs->bufs = &node->bufs;
    cs->rng = &node->rng;
    cs->remotes = &node->remotes;
    cs->identity = node->identity;
    cs->timeout_ms = timeout_ms;
    cs->connect_timeout_ms = timeout_ms * 2 > 60000 ? 60000 : timeout_ms * 2;
    cs->gc_ms = (uint64_t)(config->reuse_time * 1000.0);
    if (cs->gc_ms < timeout_ms * 3)
        cs->gc_ms = timeout_ms * 3;
    cs->noop_ms = (uint64_t)(config->reuse_time * 750.0);
    cs->on_handle_closed = on_conn_handle_closed;
    cs->on_closing = on_conn_closing;
    ch_conns_init(cs);
    node->listener.cs = cs;
    node->listener.on_handle_closed = on_listener_handle_closed;
}

static void start_timer(ch_node_t *node)
{
    uint64_t tick = node->conns.timeout_ms / 10;
    if (tick < 10)
        tick = 10;
    if (tick > 250)
        tick = 250;
    uv_timer_init(node->loop, &node->timer);
    node->timer.data = node;
    node->timer_open = 1;
    uv_timer_start(&node->timer, on_timer, tick, tick);
}

static void node_free(ch_node_t *node)
{
    ch_conns_free(&node->conns);
    ch_remotes_free(&node->remotes);
    ch_bufcache_close(&node->bufs);
    ch_tls_ctx_free(node->tls);
    ch_free(node);
}

int ch_node_new(uv_loop_t *loop, const ch_config_t *config, ch_recv_cb on_msg,
                void *user_data, ch_node_t **out, char *err, size_t errlen)
{
    ch_node_t *node;
    int rc;
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
    if (node == NULL || ch_remotes_init(&node->remotes) != CH_OK) {
        ch_free(node);
        snprintf(err, errlen, "out of memory allocating the node");
        return CH_ENOMEM;
    }
    setup(node, loop, config);
    node->conns.on_msg = on_msg;
    node->conns.node = node;
    node->conns.stats = &node->stats;
    node->remotes.stats = &node->stats;
    node->user_data = user_data;
    if (!config->disable_encryption && config->cert_chain_pem != NULL) {
        /* Certificate and key problems surface here, not at a send. */
        rc = ch_tls_ctx_new(config->cert_chain_pem, config->dh_params_pem,
                            &node->tls, err, errlen);
        if (rc != CH_OK) {
            node_free(node);
            return rc;
        }
        node->conns.tls = node->tls;
    }
    rc = ch_listener_open(&node->listener, loop, config, &node->port, err,
                          errlen);
    if (rc != CH_OK) {
        /* Close what was opened, then run the loop until it is closed. */
        ch_listener_close(&node->listener);
        while (node->listener.open_handles > 0)
            uv_run(loop, UV_RUN_ONCE);
        node_free(node);
        return rc;
    }
    node->conns.port = node->port;
    start_timer(node);
    *out = node;
    return CH_OK;
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
    remote = ch_remote_get(&node->remotes, req->ip_protocol, req->address,
                           req->port, 1);
    if (remote == NULL)
        return CH_ENOMEM;
    if (!req->has_identity_)
        ch_rng_id(&node->rng, req->identity);
    req->deadline_ = uv_now(node->loop) + node->conns.timeout_ms;
    ch_remote_queue(remote, req);
    ch_conns_kick(&node->conns, remote);
    return CH_OK;
}

void ch_node_cork(ch_node_t *node)
{
    ch_conns_cork(&node->conns);
}

void ch_node_uncork(ch_node_t *node)
{
    ch_conns_uncork(&node->conns);
}

void ch_node_release(ch_node_t *node, ch_message_t *msg)
{
    (void)node;
    ch_conn_release(msg);
}

void ch_node_reject(ch_node_t *node, ch_message_t *msg, const char *reason)
{
    (void)node;
    ch_conn_reject(msg, reason != NULL ? reason : "");
}

void ch_node_set_peer_cb(ch_node_t *node, ch_peer_cb cb)
{
    node->conns.on_peer = cb;
}

void ch_node_stats(ch_node_t *node, ch_stats_t *out)
{
    *out = node->stats;
}

int ch_node_peers(ch_node_t *node, ch_peer_info_t *out, int max)
{
    return ch_conns_peers(&node->conns, out, max);
}

void ch_node_set_linger(ch_node_t *node, double seconds)
{
    uint64_t ms, now;
    if (seconds < 0)
        return;
    ms = (uint64_t)(seconds * 1000.0);
    if (!node->closing) {
        node->linger_ms = ms;
        return;
    }
    /* Lingering: a shorter linger ends it sooner (0: now). */
    now = uv_now(node->loop);
    if (node->lingering && now + ms < node->linger_end) {
        node->linger_end = now + ms;
        if (ms == 0)
            finish_close(node);
    }
}

static void fail_queue(ch_remote_t *r, void *detail)
{
    ch_remote_fail_queue(r, CH_ECLOSED, detail);
}

/* Fail what is pending and close the connections: the end of a close,
 * at once or once the linger is over. */
static void finish_close(ch_node_t *node)
{
    char detail[CH_DETAIL_SIZE];
    uint64_t drain_ms, now = uv_now(node->loop);
    /* The linger bounds the whole close, the last writes (ACKs of
     * released messages) too: with 0, a write stuck on a peer that reads
     * nothing kept close() for the whole timeout. */
    drain_ms = node->linger_end > now ? node->linger_end - now : 0;
    if (node->lingering) {
        if (node->remotes.sends > 0)
            snprintf(detail, sizeof(detail),
                     "node closed: %zu sends unfinished when the linger of "
                     "%.3g s ran out",
                     node->remotes.sends, (double)node->linger_ms / 1000.0);
        else
            snprintf(detail, sizeof(detail), "node closed");
    } else {
        snprintf(detail, sizeof(detail), "node closed");
    }
    node->lingering = 0;
    node->remotes.on_idle = NULL;
    ch_remotes_each(&node->remotes, fail_queue, detail);
    ch_conns_close(&node->conns, detail, drain_ms);
    check_drained(node);
}

static void on_sends_done(ch_remotes_t *t)
{
    ch_node_t *node = CH_CONTAINER_OF(t, ch_node_t, remotes);
    if (node->lingering)
        finish_close(node);
}

void ch_node_close(ch_node_t *node, ch_closed_cb on_closed)
{
    if (node->closing)
        return;
    node->closing = 1; /* no new sends from now on */
    node->on_closed = on_closed;
    ch_bufcache_close(&node->bufs);
    ch_listener_close(&node->listener);
    node->linger_end = uv_now(node->loop) + node->linger_ms;
    if (node->linger_ms > 0 && node->remotes.sends > 0) {
        /* Pending sends go on (writes, ACKs, even connecting) until they
         * are done or the linger is over (on_timer). */
        node->lingering = 1;
        node->remotes.on_idle = on_sends_done;
        return;
    }
    finish_close(node);
}

int ch_testing_close_writing(ch_node_t *node, const ch_dest_t *dest)
{
    ch_remote_t *r = ch_remote_get(&node->remotes, dest->ip_protocol,
                                   dest->address, dest->port, 0);
    return r == NULL ? CH_EINVAL : ch_conns_testing_close(&node->conns, r);
}

int ch_testing_remote(ch_node_t *node, const ch_dest_t *dest,
                      ch_testing_remote_t *out)
{
    ch_remote_t *r = ch_remote_get(&node->remotes, dest->ip_protocol,
                                   dest->address, dest->port, 0);
    if (r == NULL)
        return CH_EINVAL;
    ch_conns_testing_state(&node->conns, r, out);
    return CH_OK;
}

void ch_node_free(ch_node_t *node)
{
    if (node != NULL)
        node_free(node);
}
