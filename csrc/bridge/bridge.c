/* bridge/bridge.c - opening, closing and freeing a bridge, and how a
 * thread waits (bridge_int.h tells who owns what).  ch_bridge_open,
 * ch_bridge_close and ch_bridge_free run on application threads; the
 * waits run with b->mu held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "bridge/bridge_int.h"
#include "util/alloc.h"

#define CH_SPIN_CONTENDED_NS 20000u /* a yield this long: the CPUs are busy */

uint64_t ch_spin_until(const ch_bridge_t *b, uint64_t deadline)
{
    uint64_t until;
    if (b->spin_ns == 0)
        return 0;
    until = uv_hrtime() + b->spin_ns;
    return deadline != 0 && deadline < until ? deadline : until;
}

int ch_spin_yield(void)
{
    uint64_t t0 = uv_hrtime();
    sched_yield();
    return uv_hrtime() - t0 < CH_SPIN_CONTENDED_NS;
}

int ch_spin_step(ch_bridge_t *b, uint64_t until)
{
    int go_on;
    if (until == 0 || uv_hrtime() >= until)
        return 0;
    uv_mutex_unlock(&b->mu);
    go_on = ch_spin_yield();
    uv_mutex_lock(&b->mu);
    return go_on;
}

int ch_wait_for(ch_bridge_t *b, uv_cond_t *cv, const size_t *len,
                int timeout_ms, int spin)
{
    uint64_t deadline = 0;
    if (timeout_ms > 0)
        deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    if (spin && timeout_ms != 0) {
        uint64_t until = ch_spin_until(b, deadline);
        while (*len == 0 && !b->closed && ch_spin_step(b, until))
            ;
    }
    while (*len == 0 && !b->closed) {
        if (timeout_ms == 0)
            break;
        if (timeout_ms < 0) {
            uv_cond_wait(cv, &b->mu);
        } else {
            uint64_t now = uv_hrtime();
            if (now >= deadline)
                break;
            uv_cond_timedwait(cv, &b->mu, deadline - now);
        }
    }
    return *len > 0;
}

uint16_t ch_bridge_port(ch_bridge_t *b)
{
    return b->port;
}

void ch_bridge_identity(ch_bridge_t *b, uint8_t out[CH_ID_SIZE])
{
    memcpy(out, b->identity, CH_ID_SIZE);
}

/* Free what open made (the loop thread is not running). */
static void bridge_free(ch_bridge_t *b)
{
    ch_cmds_free(b);
    ch_node_free(b->node);
    if (!b->loop_closed)
        uv_loop_close(&b->loop);
    if (b->parts > 0)
        ch_recvq_free(b);
    if (b->parts > 1)
        ch_reqtab_free(b);
    if (b->parts > 2)
        ch_events_free(b);
    ch_wakefd_close(&b->wake.fd);
    uv_mutex_destroy(&b->mu);
    ch_free(b);
}

/* Run the node's loop here until what opened is closed (open failed). */
static void close_here(ch_bridge_t *b, int handles)
{
    if (handles)
        ch_loop_handles_close(b);
    if (b->node != NULL)
        ch_node_close(b->node, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    b->closed = 1;
}

/* The parts, in order (b->parts counts those ready, for bridge_free);
 * CH_OK or CH_ENOMEM. */
static int init_parts(ch_bridge_t *b)
{
    b->wake.fd.rd = b->wake.fd.wr = -1;
    if (ch_cmds_init(b) != CH_OK)
        return CH_ENOMEM;
    if (ch_recvq_init(b) != CH_OK)
        return CH_ENOMEM;
    b->parts = 1;
    if (ch_reqtab_init(b) != CH_OK)
        return CH_ENOMEM;
    b->parts = 2;
    if (ch_events_init(b) != CH_OK)
        return CH_ENOMEM;
    b->parts = 3;
    return CH_OK;
}

int ch_bridge_open(const ch_config_t *config, ch_bridge_t **out, char *err,
                   size_t errlen)
{
    ch_bridge_t *b;
    int rc, handles = 0;
    char dummy[8];
    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *out = NULL;
    b = ch_calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return CH_ENOMEM;
    }
    b->linger = -1;
    uv_mutex_init(&b->mu);
    if (uv_loop_init(&b->loop) != 0) {
        uv_mutex_destroy(&b->mu);
        ch_free(b);
        snprintf(err, errlen, "cannot create the event loop");
        return CH_ENOMEM;
    }
    rc = init_parts(b);
    if (rc != CH_OK)
        snprintf(err, errlen, "out of memory");
    else if (ch_wake_open(b) != 0) {
        snprintf(err, errlen, "cannot create a wake-up fd: %s",
                 strerror(errno));
        rc = CH_ENOMEM;
    }
    if (rc == CH_OK)
        rc = ch_node_new(&b->loop, config, ch_recv_message, b, &b->node, err,
                         errlen);
    if (rc == CH_OK)
        ch_node_set_peer_cb(b->node, ch_loop_peer);
    if (rc == CH_OK && (rc = ch_loop_handles_init(b)) < 0) {
        snprintf(err, errlen, "wake-up poll: %s", uv_strerror(rc));
        rc = CH_ENOMEM;
    }
    handles = rc == CH_OK;
    if (rc == CH_OK && config->auto_release && config->inbox_size > 0) {
        /* Bounded: without it (no memory), messages wait in their slots. */
        ch_inbox_init(&b->rq.inbox, (size_t)config->inbox_size);
    }
    if (rc == CH_OK) {
        b->spin_ns = (uint64_t)config->spin_us * 1000u;
        /* Late replies to requests given up on are dropped for a while:
         * ten times the timeout, a minute at least. */
        b->reqs.drop_ns = (uint64_t)(config->timeout * 10e9);
        if (b->reqs.drop_ns < 60000000000ull)
            b->reqs.drop_ns = 60000000000ull;
        b->port = ch_node_port(b->node);
        memcpy(b->identity, ch_node_identity(b->node), CH_ID_SIZE);
        rc = uv_thread_create(&b->thread, ch_loop_main, b);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start the loop thread: %s",
                     uv_strerror(rc));
            rc = CH_ENOMEM;
        }
    }
    if (rc != CH_OK) {
        b->closing = 1;
        close_here(b, handles);
        bridge_free(b);
        return rc;
    }
    b->started = 1;
    *out = b;
    return CH_OK;
}

void ch_bridge_close(ch_bridge_t *b)
{
    ch_bridge_shutdown(b, -1);
}

int ch_bridge_losses(ch_bridge_t *b, char *text, size_t len)
{
    const ch_losses_t *l = &b->losses;
    size_t off = 0, shown = 0;
    int i;
    if (len > 0)
        text[0] = '\0';
    for (i = 0; i < l->ndests && off < len; i++) {
        char who[96];
        ch_format_address(l->dest[i].ip_protocol, l->dest[i].address, who,
                          sizeof(who));
        off += (size_t)snprintf(
            text + off, len - off,
            l->dest[i].ip_protocol == 6 ? "%s%zu to [%s]:%u (%s)"
                                        : "%s%zu to %s:%u (%s)",
            i > 0 ? ", " : "", l->count[i], who, (unsigned)l->dest[i].port,
            ch_strerror(l->status[i]));
        shown += l->count[i];
    }
    if (shown < l->total && off < len)
        snprintf(text + off, len - off, ", %zu to others",
                 l->total - shown);
    return (int)l->total;
}

void ch_bridge_close_start(ch_bridge_t *b, double linger)
{
    uv_mutex_lock(&b->mu);
    if (!b->closing) {
        b->linger = linger;
    } else if (linger >= 0 && (b->linger < 0 || linger < b->linger)) {
        b->linger = linger;
        b->linger_changed = 1;
    }
    b->closing = 1;
    if (b->cmds.post_waiters > 0)
        uv_cond_broadcast(&b->cmds.post_cv);
    if (b->started)
        ch_wake_now(b);
    uv_mutex_unlock(&b->mu);
}

int ch_bridge_close_wait(ch_bridge_t *b, int timeout_ms)
{
    int join;
    uv_mutex_lock(&b->mu);
    if (b->started) {
        /* The loop thread ends with closed set and the receivers woken. */
        uint64_t deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
        while (!b->closed) {
            uint64_t now = uv_hrtime();
            if (timeout_ms < 0) {
                uv_cond_wait(&b->rq.cv, &b->mu);
            } else if (now >= deadline) {
                uv_mutex_unlock(&b->mu);
                return CH_EAGAIN;
            } else {
                uv_cond_timedwait(&b->rq.cv, &b->mu, deadline - now);
            }
        }
    }
    join = b->started;
    b->started = 0;
    uv_mutex_unlock(&b->mu);
    if (!join)
        return CH_OK;
    uv_thread_join(&b->thread);
    /* The loop is done: its fds go now, the memory with ch_bridge_free
     * (other threads may still call in and get CH_ECLOSED).  Nothing
     * signals the wake fd any more: queueing stops at closing, and
     * wake-ups happen under mu.  The app's fd stays, readable, until
     * ch_bridge_free: a selector may still wait on it. */
    uv_mutex_lock(&b->mu);
    ch_wakefd_close(&b->wake.fd);
    uv_mutex_unlock(&b->mu);
    if (uv_loop_close(&b->loop) == 0)
        b->loop_closed = 1;
    return CH_OK;
}

void ch_bridge_shutdown(ch_bridge_t *b, double linger)
{
    ch_bridge_close_start(b, linger);
    ch_bridge_close_wait(b, -1);
}

void ch_bridge_free(ch_bridge_t *b)
{
    if (b == NULL)
        return;
    ch_bridge_close(b);
    bridge_free(b);
}
