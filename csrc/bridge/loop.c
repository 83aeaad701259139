/* bridge/loop.c - the loop thread: it runs the node's libuv loop, carries
 * out the queued commands and releases, turns completions into events,
 * and wakes the waiting threads once per turn of the loop.  Everything
 * here runs on the loop thread; it takes b->mu for short sections and
 * never holds it while calling into the node.
 *
 * Waking a sleeping thread costs tens of microseconds on a virtual
 * machine, several times on every round trip.  So after traffic the loop
 * thread looks again without sleeping until spin_ns pass without any
 * (yielding the CPU between looks), draining the queues itself meanwhile;
 * a thread that waits does the same (bridge.c). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "bridge/bridge_int.h"
#include "util/alloc.h"

#define CH_SPIN_BUSY 8 /* the loop stops spinning after this many busy looks */

/* Successes go into the ring once per turn of the loop (flush_signals);
 * until then the loop thread stages them without the lock. */
static void stage_ok(ch_bridge_t *b, uint64_t token)
{
    if (b->st_count > 0 && b->st_token + b->st_count == token) {
        b->st_count++;
        return;
    }
    if (b->st_count > 0) {
        uv_mutex_lock(&b->mu);
        ch_events_push_ok(b, b->st_token, b->st_count);
        uv_mutex_unlock(&b->mu);
    }
    b->st_token = token;
    b->st_count = 1;
    b->sig_ev = 1;
}

/* A pooled command is done: kept for the pool (flush_signals hands it
 * over), unless the pool is full. */
static void recycle(ch_bridge_t *b, ch_sendcmd_t *sc)
{
    ch_cmds_t *c = &b->cmds;
    if (!sc->pooled || c->pool_seen + (int)c->spare.len >= CH_CMD_POOL) {
        ch_free(sc);
        return;
    }
    ch_list_push(&c->spare, &sc->cmd.link);
}

/* A send failed after closing began: count it by destination. */
static void lost(ch_bridge_t *b, const ch_send_t *s, int status)
{
    ch_losses_t *l = &b->losses;
    int i;
    l->total++;
    for (i = 0; i < l->ndests; i++) {
        ch_dest_t *d = &l->dest[i];
        if (d->port == s->port && d->ip_protocol == s->ip_protocol &&
            memcmp(d->address, s->address, 16) == 0) {
            l->count[i]++;
            return;
        }
    }
    if (l->ndests < CH_LOSS_DESTS) {
        i = l->ndests++;
        l->dest[i].ip_protocol = s->ip_protocol;
        memcpy(l->dest[i].address, s->address, 16);
        l->dest[i].port = s->port;
        l->count[i] = 1;
        l->status[i] = status;
    }
}

void ch_send_done(ch_send_t *s, int status, const char *detail)
{
    ch_sendcmd_t *sc = s->user_data;
    ch_bridge_t *b = sc->bridge;
    int is_req = (sc->flags & CH_SEND_REQUEST) != 0;
    int free_it = 1;
    b->activity++;
    if (status != CH_OK && b->close_begun)
        lost(b, s, status);
    if (sc->token == 0 && sc->cmd.kind == CH_CMD_SEND) {
        /* A post: counted off at the hand-over (flush_signals). */
        b->cmds.posts_done++;
        b->cmds.posts_done_bytes += (size_t)s->header_len + s->data_len;
    }
    if (status == CH_OK && sc->cmd.kind == CH_CMD_SEND && !is_req) {
        /* The common case: a queued send written or acknowledged.  A
         * post (token 0) has nobody to tell. */
        if (sc->token != 0)
            stage_ok(b, sc->token);
        recycle(b, sc);
        return;
    }
    uv_mutex_lock(&b->mu);
    if (status != CH_OK && is_req)
        ch_requests_send_failed(b, s->identity);
    if (sc->cmd.kind == CH_CMD_WAITED) {
        ch_wait_t *w = CH_CONTAINER_OF(sc, ch_wait_t, sc);
        /* A waited request goes on waiting for its reply, unless the send
         * failed; a waited send is done. */
        if (w->state == CH_W_WAITING && (!is_req || status != CH_OK))
            ch_wait_finish(b, w, status, detail);
        free_it = --w->refs == 0;
        uv_mutex_unlock(&b->mu);
        if (free_it)
            ch_free(w);
        return;
    }
    /* A failed post gets its event now: it reserved none.  Without the
     * memory for it, the failure is still in the node's stats; once the
     * node closes, posts lost are told with the other losses (lost()). */
    if (sc->token != 0 ||
        (!b->close_begun && ch_events_reserve(b, 1) == CH_OK))
        ch_events_push(b, CH_EV_SEND, status, sc->token, NULL, detail);
    uv_mutex_unlock(&b->mu);
    recycle(b, sc);
}

void ch_batch_done(ch_send_t *s, int status, const char *detail)
{
    ch_batch_t *batch = s->user_data;
    ch_bridge_t *b = batch->bridge;
    b->activity++;
    if (status != CH_OK && b->close_begun)
        lost(b, s, status);
    if (status != CH_OK && batch->nfailed++ == 0) {
        batch->status = status;
        snprintf(batch->detail, CH_DETAIL_SIZE, "%s", detail ? detail : "");
    }
    if (--batch->remaining > 0)
        return;
    uv_mutex_lock(&b->mu);
    if (batch->nfailed > 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why),
                 "%d of %d messages failed, the first: %.200s",
                 batch->nfailed, batch->nsends, batch->detail);
        ch_events_push(b, CH_EV_SEND, batch->status, batch->token, NULL, why);
    } else {
        ch_events_push(b, CH_EV_SEND, CH_OK, batch->token, NULL, "");
    }
    uv_mutex_unlock(&b->mu);
    ch_free(batch);
}

/* Wake waiting threads once per turn of the loop, not once per message:
 * they then find a whole batch (everything one read delivered); [mu]. */
static void flush_signals(ch_bridge_t *b)
{
    ch_cmds_t *c = &b->cmds;
    if (b->st_count > 0) {
        ch_events_push_ok(b, b->st_token, b->st_count);
        b->st_count = 0;
    }
    ch_list_move(&c->pool, &c->spare); /* the commands done, to reuse */
    c->pool_seen = (int)c->pool.len;
    ch_cmds_posts_done(b);
    if (b->sig_msg) {
        ch_recvq_signal(b);
        b->sig_msg = 0;
    }
    ch_events_signal(b);
}

static void on_node_closed(ch_node_t *node)
{
    ch_bridge_t *b = ch_node_user_data(node);
    uv_mutex_lock(&b->mu);
    flush_signals(b);
    uv_mutex_unlock(&b->mu);
    ch_loop_handles_close(b);
}

void ch_loop_peer(ch_node_t *node, const ch_peer_event_t *pev,
                  const char *detail)
{
    ch_bridge_t *b = ch_node_user_data(node);
    ch_peer_report_t *p;
    uv_mutex_lock(&b->mu);
    if (b->plen == b->pcap && b->pcap < CH_PEER_EVENTS) { /* grow */
        size_t cap = b->pcap ? 2 * b->pcap : 16, i;
        ch_peer_report_t *n = ch_malloc(cap * sizeof(*n));
        if (n != NULL) {
            for (i = 0; i < b->plen; i++)
                n[i] = b->pring[(b->phead + i) % b->pcap];
            ch_free(b->pring);
            b->pring = n;
            b->pcap = cap;
            b->phead = 0;
        }
    }
    if (b->plen == b->pcap) { /* full, or no memory to grow */
        b->peer_dropped++;
        b->events_dropped++;
        uv_mutex_unlock(&b->mu);
        return;
    }
    p = &b->pring[(b->phead + b->plen++) % b->pcap];
    p->ev = *pev;
    p->dropped = b->peer_dropped;
    b->peer_dropped = 0;
    snprintf(p->detail, sizeof(p->detail), "%s", detail);
    if (!b->peer_marked && ch_events_reserve(b, 1) == CH_OK) {
        ch_events_push(b, CH_EV_PEER, 0, 0, NULL, "");
        b->peer_marked = 1;
    }
    uv_mutex_unlock(&b->mu);
}

/* A query: the stats and peers, filled in on this thread (the node's). */
static void run_query(ch_bridge_t *b, ch_query_t *q)
{
    if (q->stats != NULL)
        ch_node_stats(b->node, q->stats);
    q->npeers = ch_node_peers(b->node, q->peers, q->peers ? q->max : 0);
    uv_mutex_lock(&b->mu);
    if (q->stats != NULL) {
        q->stats->inbox_bytes = b->rq.inbox.used;
        q->stats->events_dropped = b->events_dropped;
        ch_cmds_posts_done(b); /* the ones done this turn, too */
        q->stats->posts_pending = b->cmds.posted;
    }
    q->done = 1;
    uv_cond_broadcast(&b->reqs.cv);
    uv_mutex_unlock(&b->mu);
}

/* A send the node would not take: its callback reports why. */
static void refused(ch_send_t *s, int rc)
{
    char why[CH_DETAIL_SIZE];
    snprintf(why, sizeof(why), "send refused: %s", ch_strerror(rc));
    s->cb(s, rc, why);
}

static void run_command(ch_bridge_t *b, ch_cmd_t *cmd)
{
    int rc;
    if (cmd->kind == CH_CMD_QUERY) {
        run_query(b, CH_CONTAINER_OF(cmd, ch_query_t, cmd));
        return;
    }
    if (cmd->kind == CH_CMD_REJECT) {
        ch_rejectcmd_t *rc = CH_CONTAINER_OF(cmd, ch_rejectcmd_t, cmd);
        ch_node_reject(b->node, rc->msg, (const char *)(rc + 1));
        ch_free(rc);
        return;
    }
    if (cmd->kind == CH_CMD_BATCH) {
        ch_batch_t *batch = CH_CONTAINER_OF(cmd, ch_batch_t, cmd);
        int i, n = batch->nsends;
        ch_send_t *sends = batch->sends;
        /* The last completion frees the batch: no access after it. */
        for (i = 0; i < n; i++)
            if ((rc = ch_node_send(b->node, &sends[i])) != CH_OK)
                refused(&sends[i], rc);
        return;
    }
    {
        ch_sendcmd_t *sc = CH_CONTAINER_OF(cmd, ch_sendcmd_t, cmd);
        if ((rc = ch_node_send(b->node, &sc->send)) != CH_OK)
            refused(&sc->send, rc);
    }
}

/* What the queues held when they were taken; [loop]. */
typedef struct taken {
    ch_list_t cmds;
    ch_list_t rels;
    int closing;
    double linger;
    int linger_changed;
} taken_t;

/* Take the queued commands and releases; [mu]. */
static void take(ch_bridge_t *b, taken_t *t)
{
    ch_list_init(&t->cmds);
    ch_list_init(&t->rels);
    ch_list_move(&t->cmds, &b->cmds.queue);
    ch_list_move(&t->rels, &b->cmds.rels);
    t->closing = b->closing;
    t->linger = b->linger;
    t->linger_changed = b->linger_changed;
    b->linger_changed = 0;
}

/* Carry out what was taken, without the lock: all the releases, then all
 * the sends, then one write per connection. */
static void run(ch_bridge_t *b, taken_t *t)
{
    ch_link_t *l;
    if (!ch_list_empty(&t->cmds) || !ch_list_empty(&t->rels))
        b->activity++;
    while ((l = ch_list_pop(&t->rels)) != NULL)
        ch_node_release(b->node, CH_CONTAINER_OF(l, ch_message_t, link));
    ch_node_cork(b->node);
    while ((l = ch_list_pop(&t->cmds)) != NULL)
        run_command(b, CH_CONTAINER_OF(l, ch_cmd_t, link));
    ch_node_uncork(b->node);
    if (t->closing && !b->close_begun) {
        b->close_begun = 1;
        ch_node_set_linger(b->node, t->linger);
        ch_node_close(b->node, on_node_closed);
    } else if (t->closing && t->linger_changed) {
        ch_node_set_linger(b->node, t->linger); /* shortens the linger */
    }
}

/* Drain the queues (on a wake-up, and on every look while spinning).
 * The loop is busy now: it passes on_prepare before it sleeps again. */
static void drain(ch_bridge_t *b)
{
    taken_t t;
    int poked;
    uv_mutex_lock(&b->mu);
    take(b, &t);
    b->wake.running = 1;
    poked = b->wake.poked;
    b->wake.poked = 0;
    uv_mutex_unlock(&b->mu);
    if (poked)
        b->activity++; /* spin: the answer is on its way */
    run(b, &t);
}

/* Before the loop sleeps: carry out what was queued while it was busy
 * (queueing threads did not wake it, see running), then signal waiting
 * threads.  A few rounds at most: a queue that still refills after them
 * gets a wake-up, so the loop does not sleep on it. */
static void on_prepare(uv_prepare_t *h)
{
    ch_bridge_t *b = h->data;
    taken_t t;
    int round;
    for (round = 0;; round++) {
        uv_mutex_lock(&b->mu);
        if (ch_cmds_queues_empty(b) || round == 2) {
            if (!ch_cmds_queues_empty(b))
                ch_wake_now(b);
            b->wake.running = 0;
            flush_signals(b);
            uv_mutex_unlock(&b->mu);
            return;
        }
        take(b, &t);
        uv_mutex_unlock(&b->mu);
        run(b, &t);
    }
}

/* After the loop's poll: it is busy until its next on_prepare. */
static void on_check(uv_check_t *h)
{
    ch_bridge_t *b = h->data;
    uv_mutex_lock(&b->mu);
    b->wake.running = 1;
    flush_signals(b);
    uv_mutex_unlock(&b->mu);
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    ch_bridge_t *b = h->data;
    (void)status;
    (void)events;
    ch_wakefd_clear(&b->wake.fd);
    drain(b);
}

int ch_loop_handles_init(ch_bridge_t *b)
{
    int rc = uv_poll_init(&b->loop, &b->wake_poll, b->wake.fd.rd);
    if (rc < 0)
        return rc;
    b->wake_poll.data = b;
    uv_poll_start(&b->wake_poll, UV_READABLE, on_wake);
    uv_prepare_init(&b->loop, &b->prep);
    uv_check_init(&b->loop, &b->chk);
    b->prep.data = b->chk.data = b;
    uv_prepare_start(&b->prep, on_prepare);
    uv_check_start(&b->chk, on_check);
    return 0;
}

void ch_loop_handles_close(ch_bridge_t *b)
{
    uv_close((uv_handle_t *)&b->wake_poll, NULL);
    uv_close((uv_handle_t *)&b->prep, NULL);
    uv_close((uv_handle_t *)&b->chk, NULL);
}

/* Is the loop thread spinning (it drains the queues by itself)?  Tells
 * queueing threads whether to wake it.  Returns 1 if something was
 * queued meanwhile. */
static int set_awake(ch_bridge_t *b, int awake)
{
    int queued;
    uv_mutex_lock(&b->mu);
    b->wake.awake = awake;
    queued = !ch_cmds_queues_empty(b);
    uv_mutex_unlock(&b->mu);
    return queued;
}

/* After traffic (not a timer tick), look again without sleeping until
 * spin_ns pass without any: the next command or packet of a conversation
 * is usually close.  Returns 0 when the loop has nothing left to run. */
static int spin(ch_bridge_t *b, unsigned long *seen)
{
    int busy = 0, more = 1;
    uint64_t until = 0;
    set_awake(b, 1);
    for (;;) {
        uint64_t now = uv_hrtime();
        if (b->activity != *seen) {
            *seen = b->activity;
            until = now + b->spin_ns;
            /* Work at every look: a stream, not a conversation.
             * Sleeping lets work pile up into bigger batches. */
            if (++busy >= CH_SPIN_BUSY)
                break;
        } else {
            busy = 0;
        }
        if (now >= until || !ch_spin_yield())
            break;
        drain(b);
        more = uv_run(&b->loop, UV_RUN_NOWAIT);
        if (!more)
            break;
    }
    if (set_awake(b, 0)) /* queued before awake was cleared: no wake-up */
        drain(b);
    return more;
}

void ch_loop_main(void *arg)
{
    ch_bridge_t *b = arg;
    int more = 1;
    unsigned long seen = b->activity;
    while (more) {
        if (b->spin_ns > 0 && b->activity != seen && !spin(b, &seen))
            break;
        more = uv_run(&b->loop, UV_RUN_ONCE);
    }
    uv_mutex_lock(&b->mu);
    b->closed = 1;
    /* Requests still waiting for a reply will not get one. */
    ch_requests_close(b);
    ch_events_push(b, CH_EV_CLOSED, CH_ECLOSED, 0, NULL, "node closed");
    uv_cond_broadcast(&b->ev.cv);
    uv_cond_broadcast(&b->rq.cv);
    uv_cond_broadcast(&b->cmds.post_cv);
    ch_recvq_signal(b);
    uv_mutex_unlock(&b->mu);
}
