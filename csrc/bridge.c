/* bridge.c - runs a node on a loop thread of its own, for bindings.
 *
 * Other threads -> loop: sends go into a locked command list and releases
 * into an intrusive list; one write to an eventfd wakes the loop for all
 * of them (not uv_async_send: its loop side busy-waits while a sending
 * thread is inside it, which showed as a tenth of a receiver's CPU).
 * Loop -> other threads: received messages go into an intrusive queue
 * (recv), completions into an event ring (poll); waiters sleep on
 * condition variables, and an eventfd signals waiting messages to event
 * loops such as asyncio.  Event ring space is reserved when a send is
 * accepted, so a completion can never be lost for lack of memory.
 *
 * Waking a sleeping thread costs tens of microseconds on a virtual
 * machine, several times on every round trip.  So a waiting thread, and
 * the loop thread after each wake-up, first polls for spin_ns (yielding
 * the CPU between looks) and sleeps only when nothing came meanwhile. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "ch_internal.h"

/* ch_bcmd_t.wait: who learns the result */
#define CH_W_EVENT 0     /* a CH_EV_SEND event */
#define CH_W_WAITING 1   /* a thread in ch_bridge_send_wait/ch_bridge_wait */
#define CH_W_DONE 2      /* result stored; the waiting thread frees it */
#define CH_W_ABANDONED 3 /* the waiter gave up: the loop frees it */

typedef struct ch_bcmd {
    struct ch_bcmd *next;
    ch_bridge_t *bridge;
    uint64_t token;
    int flags;
    int wait;
    int wstatus;
    int refs;            /* the core's and, if waited, the waiter's */
    ch_message_t *reply; /* waited request: the reply, once it came */
    char *wdetail; /* CH_DETAIL_SIZE bytes after the payload, if waited */
    /* a batch (ch_bridge_send_many): nsends sends, one event at the end */
    int nsends;
    int remaining;
    int nfailed;
    int bstatus;
    char *bdetail;
    ch_send_t *sends;
    int pooled; /* CH_CMD_SIZE bytes: may be used again (see cmd_recycle) */
    ch_send_t send;
    /* header and data follow (a batch: the sends, detail, header, data) */
} ch_bcmd_t;

/* Queued sends of small messages (header and data up to CH_CMD_PAYLOAD
 * bytes) use commands of one size that the loop thread hands back for
 * reuse, CH_CMD_POOL at most: no malloc and no cross-thread free per
 * message in a stream. */
#define CH_CMD_PAYLOAD 256
#define CH_CMD_SIZE (sizeof(ch_bcmd_t) + CH_CMD_PAYLOAD)
#define CH_CMD_POOL 256

/* An fd that other threads or loops can wait on: an eventfd, or a pipe
 * where there is none.  Both ends are non-blocking. */
typedef struct ch_fdpair {
    int rd;
    int wr;
} ch_fdpair_t;

static int fdpair_open(ch_fdpair_t *p)
{
    int fds[2];
    p->rd = p->wr = -1;
#ifdef __linux__
    p->rd = p->wr = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->rd >= 0)
        return 0;
#endif
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    p->rd = fds[0];
    p->wr = fds[1];
    return 0;
}

/* Make it readable (a full pipe is readable already). */
static void fdpair_signal(ch_fdpair_t *p)
{
    uint64_t one = 1;
    ssize_t rc;
    do
        rc = write(p->wr, &one, p->wr == p->rd ? sizeof(one) : 1);
    while (rc < 0 && errno == EINTR);
}

/* Make it unreadable again. */
static void fdpair_clear(ch_fdpair_t *p)
{
    uint64_t buf;
    ssize_t rc;
    do
        rc = read(p->rd, &buf, sizeof(buf));
    while ((rc < 0 && errno == EINTR) || (rc > 0 && p->wr != p->rd));
}

static void fdpair_close(ch_fdpair_t *p)
{
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0 && p->wr != p->rd)
        close(p->wr);
    p->rd = p->wr = -1;
}

#define CH_DROPPED 32
#define CH_SPIN_BUSY 8 /* the loop stops spinning after this many busy looks */
#define CH_SPIN_CONTENDED_NS 20000u /* a yield this long: the CPUs are busy */

/* ch_bridge_poll, called again within CH_EV_GATHER_NS of its last
 * return, lets successful completions gather for the rest of that time or
 * until there are CH_EV_BATCH of them (anything else ends the wait): in a
 * stream the pump thread then wakes about once a millisecond.  For
 * CH_EV_HURRY_NS after ch_bridge_hurry (somebody waits on a Future) it
 * does not gather. */
#define CH_EV_BATCH 2048
/* Messages up to this size (header and data) are copied into the inbox. */
#define CH_INBOX_MSG_MAX 4096u
#define CH_EV_GATHER_NS 1000000u
#define CH_EV_HURRY_NS 5000000u

typedef struct ch_pending_req {
    uint8_t identity[CH_ID_SIZE];
    uint64_t token;
    struct ch_bcmd *waiter; /* a thread waits for the reply; NULL: event */
} ch_pending_req_t;

struct ch_bridge {
    uv_loop_t loop;
    uv_poll_t wake;   /* readable: commands or releases are queued */
    ch_fdpair_t wakefd;
    uv_prepare_t prep;
    uv_check_t chk;
    int sig_msg; /* loop thread only: wake recv waiters */
    int sig_ev;  /* loop thread only: wake poll waiters */
    uv_thread_t thread;
    ch_node_t *node;
    uv_mutex_t mu;
    uv_cond_t cv_msg;
    uv_cond_t cv_ev;
    uv_cond_t cv_wait;
    int closing;  /* close requested: no new work */
    int closed;   /* loop finished */
    int started;
    ch_bcmd_t *cmd_head;
    ch_bcmd_t *cmd_tail;
    ch_message_t *rel_head;
    ch_message_t *rel_tail;
    ch_message_t *mq_head;
    ch_message_t *mq_tail;
    size_t mq_len;
    ch_event_t *eq;
    size_t eq_cap;
    size_t eq_head;
    size_t eq_len;
    size_t eq_reserved;
    size_t eq_done;   /* completions in the ring, merged ones counted */
    int ev_urgent;    /* the ring holds more than successful completions */
    int gathering;    /* ch_bridge_poll waits for a batch */
    uint64_t last_poll; /* when ch_bridge_poll last returned events */
    uint64_t hurry_until; /* ch_bridge_poll does not gather until then */
    ch_pending_req_t *reqs;
    /* identities of requests given up on: a late reply is dropped, not
     * handed to recv() (a small ring: the most recent ones) */
    uint8_t dropped[CH_DROPPED][CH_ID_SIZE];
    int ndropped;
    size_t nreqs;
    size_t reqs_cap;
    ch_fdpair_t appfd; /* readable while received messages wait */
    int fd_signaled;
    uint64_t rng[2];
    uint64_t spin_ns; /* see the top of the file; 0: sleep at once */
    unsigned long activity; /* loop thread: counts traffic, for spinning */
    int awake;        /* the loop thread spins and drains the queues */
    ch_bcmd_t *pool;   /* commands to reuse (under mu) */
    int npool;
    ch_bcmd_t *lfree;  /* loop thread: commands done, for the pool */
    ch_bcmd_t *lfree_tail;
    int nlfree;
    int npool_seen;    /* loop thread: npool at the last flush */
    uint64_t st_token; /* loop thread: successful sends st_token .. */
    uint64_t st_count; /* .. + st_count - 1 not yet in the ring */
    int running;      /* the loop thread is busy and passes on_prepare (which
                       * drains the queues) before it sleeps: no wake-up */
    int fd_used;      /* ch_bridge_fd was asked: keep the fd's state */
    int loop_closed;  /* ch_bridge_close closed the loop already */
    int poked;        /* woken by expect_answer: spin after the wake-up */
    ch_inbox_t inbox; /* see ch_bridge_set_inbox; under mu */
    uint16_t port;
    uint8_t identity[CH_ID_SIZE];
};

/* When a wait that started now stops spinning: spin_ns from now, but not
 * after deadline (0: none). */
static uint64_t spin_until(const ch_bridge_t *b, uint64_t deadline)
{
    uint64_t until;
    if (b->spin_ns == 0)
        return 0;
    until = uv_hrtime() + b->spin_ns;
    return deadline != 0 && deadline < until ? deadline : until;
}

/* Give the CPU away for a moment while spinning.  Returns 0 when another
 * thread ran meanwhile (the yield took long): then the CPUs are all busy,
 * and spinning would only take time from the threads doing the work. */
static int spin_yield(void)
{
    uint64_t t0 = uv_hrtime();
    sched_yield();
    return uv_hrtime() - t0 < CH_SPIN_CONTENDED_NS;
}

/* One look while spinning, giving mu away meanwhile.  Under mu; returns
 * 0 once until has passed or the CPUs are busy. */
static int spin_step(ch_bridge_t *b, uint64_t until)
{
    int go_on;
    if (until == 0 || uv_hrtime() >= until)
        return 0;
    uv_mutex_unlock(&b->mu);
    go_on = spin_yield();
    uv_mutex_lock(&b->mu);
    return go_on;
}

/* Make the fd readable; under mu.  Only once somebody asked for the fd:
 * two system calls per batch of messages are saved otherwise. */
static void fd_signal(ch_bridge_t *b)
{
    if (b->fd_used && !b->fd_signaled) {
        fdpair_signal(&b->appfd);
        b->fd_signaled = 1;
    }
}

static void fd_clear(ch_bridge_t *b)
{
    if (b->fd_signaled) {
        fdpair_clear(&b->appfd);
        b->fd_signaled = 0;
    }
}

/* Wake the loop thread (after queueing with nothing queued before); under
 * mu, so that ch_bridge_close cannot close the fd meanwhile. */
static void wake_loop(ch_bridge_t *b)
{
    fdpair_signal(&b->wakefd);
}

/* Grow the event ring so that `more` further events fit; under mu. */
static int eq_reserve(ch_bridge_t *b, size_t more)
{
    size_t need = b->eq_len + b->eq_reserved + more, cap, i;
    ch_event_t *n;
    if (need <= b->eq_cap) {
        b->eq_reserved += more;
        return CH_OK;
    }
    cap = b->eq_cap ? b->eq_cap : 64;
    while (cap < need)
        cap *= 2;
    n = ch_malloc(cap * sizeof(*n));
    if (n == NULL)
        return CH_ENOMEM;
    for (i = 0; i < b->eq_len; i++)
        n[i] = b->eq[(b->eq_head + i) % b->eq_cap];
    ch_free(b->eq);
    b->eq = n;
    b->eq_cap = cap;
    b->eq_head = 0;
    b->eq_reserved += more;
    return CH_OK;
}

/* Successes token .. token + count - 1 into reserved space; under mu.
 * Merged into the newest event when that is a success just before them
 * (one event for a whole stream of completions). */
static void eq_push_ok(ch_bridge_t *b, uint64_t token, uint64_t count)
{
    ch_event_t *e;
    b->eq_reserved -= count; /* each had a place; one event takes one */
    b->eq_done += count;
    b->sig_ev = 1; /* woken once per loop iteration: see flush_signals */
    if (b->eq_len > 0) {
        e = &b->eq[(b->eq_head + b->eq_len - 1) % b->eq_cap];
        if (e->type == CH_EV_SEND && e->status == CH_OK &&
            e->token + e->count == token) {
            e->count += count;
            return;
        }
    }
    e = &b->eq[(b->eq_head + b->eq_len) % b->eq_cap];
    e->type = CH_EV_SEND;
    e->status = CH_OK;
    e->token = token;
    e->count = count;
    e->msg = NULL;
    e->detail[0] = '\0';
    b->eq_len++;
}

/* Move the successes the loop thread staged without the lock into the
 * ring; under mu. */
static void eq_flush_staged(ch_bridge_t *b)
{
    if (b->st_count > 0) {
        eq_push_ok(b, b->st_token, b->st_count);
        b->st_count = 0;
    }
}

/* Push into reserved space; under mu.  Staged successes go first, so
 * that events keep their order. */
static void eq_push(ch_bridge_t *b, int type, int status, uint64_t token,
                    ch_message_t *msg, const char *detail)
{
    ch_event_t *e;
    eq_flush_staged(b);
    if (type == CH_EV_SEND && status == CH_OK) {
        eq_push_ok(b, token, 1);
        return;
    }
    b->ev_urgent = 1;
    e = &b->eq[(b->eq_head + b->eq_len) % b->eq_cap];
    e->type = type;
    e->status = status;
    e->token = token;
    e->count = 1;
    e->msg = msg;
    if (detail != NULL && detail[0] != '\0')
        snprintf(e->detail, sizeof(e->detail), "%s", detail);
    else
        e->detail[0] = '\0';
    b->eq_len++;
    b->eq_done++;
    b->eq_reserved--;
    b->sig_ev = 1; /* woken once per loop iteration: see flush_signals */
}

static int req_find(ch_bridge_t *b, const uint8_t *id, uint64_t token)
{
    size_t i;
    for (i = 0; i < b->nreqs; i++)
        if (id != NULL ? memcmp(b->reqs[i].identity, id, CH_ID_SIZE) == 0
                       : b->reqs[i].token == token)
            return (int)i;
    return -1;
}

static void req_remove(ch_bridge_t *b, int i)
{
    if (b->reqs[i].waiter == NULL)
        b->eq_reserved--; /* the reply event that will not come */
    b->reqs[i] = b->reqs[b->nreqs - 1];
    b->nreqs--;
}

/* Remember a request given up on (timeout, interrupt); under mu.  The
 * oldest is forgotten when the list is full. */
static void drop_later(ch_bridge_t *b, const uint8_t *identity)
{
    if (b->ndropped == CH_DROPPED) {
        memmove(b->dropped[0], b->dropped[1],
                (size_t)(CH_DROPPED - 1) * CH_ID_SIZE);
        b->ndropped--;
    }
    memcpy(b->dropped[b->ndropped++], identity, CH_ID_SIZE);
}

/* Is this the late reply to a request given up on?  Forgets it if so. */
static int is_dropped(ch_bridge_t *b, const uint8_t *identity)
{
    int i;
    for (i = 0; i < b->ndropped; i++) {
        if (memcmp(b->dropped[i], identity, CH_ID_SIZE) == 0) {
            memmove(b->dropped[i], b->dropped[i + 1],
                    (size_t)(b->ndropped - i - 1) * CH_ID_SIZE);
            b->ndropped--;
            return 1;
        }
    }
    return 0;
}

/* Queue a command for the loop thread, waking it if it may sleep on the
 * queue (nothing was queued before); under mu. */
static void cmd_append(ch_bridge_t *b, ch_bcmd_t *cmd)
{
    int wake = b->cmd_head == NULL && b->rel_head == NULL && !b->awake &&
               !b->running;
    cmd->next = NULL;
    if (b->cmd_tail != NULL)
        b->cmd_tail->next = cmd;
    else
        b->cmd_head = cmd;
    b->cmd_tail = cmd;
    if (wake)
        wake_loop(b);
}

/* Queue a chain of messages (linked by next_) for release, waking the
 * loop like cmd_append; under mu. */
static void rel_append(ch_bridge_t *b, ch_message_t *first, ch_message_t *last)
{
    int wake = b->cmd_head == NULL && b->rel_head == NULL && !b->awake &&
               !b->running;
    last->next_ = NULL;
    if (b->rel_tail != NULL)
        b->rel_tail->next_ = first;
    else
        b->rel_head = first;
    b->rel_tail = last;
    if (wake)
        wake_loop(b);
}

/* Drop one reference to a command; under mu. Returns 1 if it must be
 * freed (by the caller, after unlocking). */
static int cmd_unref(ch_bcmd_t *cmd)
{
    return --cmd->refs == 0;
}

/* ------------------------------------------------------- loop thread side */

/* Queue a received message for recv; under mu. */
static void mq_append(ch_bridge_t *b, ch_message_t *msg)
{
    msg->next_ = NULL;
    if (b->mq_tail != NULL)
        b->mq_tail->next_ = msg;
    else
        b->mq_head = msg;
    b->mq_tail = msg;
    b->mq_len++;
    b->sig_msg = 1;
}

/* A copy of a small message that needs no ACK, in the inbox (the loop
 * then frees its slot at once: the connection reads on while the
 * application is busy, and releasing it needs no wake-up of the loop
 * thread); NULL when the message is not such or does not fit now, and
 * it stays in its slot.  Under mu. */
static ch_message_t *inbox_copy(ch_bridge_t *b, const ch_message_t *m)
{
    ch_message_t *c;
    uint8_t *p;
    size_t body = (size_t)m->header_len + m->data_len;
    if ((m->type & CH_MSG_REQ_ACK) || body > CH_INBOX_MSG_MAX)
        return NULL;
    c = ch_inbox_alloc(&b->inbox, sizeof(*c) + body);
    if (c == NULL)
        return NULL;
    *c = *m;
    p = (uint8_t *)(c + 1);
    if (m->header_len > 0)
        memcpy(p, m->header, m->header_len);
    if (m->data_len > 0)
        memcpy(p + m->header_len, m->data, m->data_len);
    c->header = p;
    c->data = p + m->header_len;
    c->conn_ = NULL;
    c->buf_ = NULL;
    c->state_ = CH_MS_INBOX;
    return c;
}

/* Give received messages back (a chain linked by next_, ended by NULL):
 * inbox copies at once, the others queued for the loop thread; under
 * mu. */
static void release_chain(ch_bridge_t *b, ch_message_t *m)
{
    ch_message_t *head = NULL, *tail = NULL, *next;
    for (; m != NULL; m = next) {
        next = m->next_;
        if (m->state_ == CH_MS_INBOX) {
            m->state_ = CH_MS_FREE;
            ch_inbox_give_back(&b->inbox, m);
            continue;
        }
        if (tail != NULL)
            tail->next_ = m;
        else
            head = m;
        tail = m;
    }
    if (head != NULL)
        rel_append(b, head, tail);
}

static void on_message(ch_node_t *node, ch_message_t *msg)
{
    ch_bridge_t *b = ch_node_user_data(node);
    ch_message_t *copy;
    int i;
    b->activity++;
    uv_mutex_lock(&b->mu);
    if (b->nreqs > 0 && (i = req_find(b, msg->identity, 0)) >= 0) {
        uint64_t token = b->reqs[i].token;
        ch_bcmd_t *waiter = b->reqs[i].waiter;
        b->reqs[i] = b->reqs[b->nreqs - 1];
        b->nreqs--;
        if (waiter != NULL) {
            /* Straight to the waiting thread, even before the send's own
             * completion (a consumer replies before it acknowledges). */
            waiter->reply = msg;
            waiter->wait = CH_W_DONE;
            waiter->wstatus = CH_OK;
            uv_cond_broadcast(&b->cv_wait);
        } else {
            eq_push(b, CH_EV_REPLY, CH_OK, token, msg, "");
        }
        uv_mutex_unlock(&b->mu);
        return;
    }
    if (b->ndropped > 0 && is_dropped(b, msg->identity)) {
        uv_mutex_unlock(&b->mu);
        ch_node_release(node, msg); /* nobody waits for it any more */
        return;
    }
    if (b->inbox.buf != NULL && (copy = inbox_copy(b, msg)) != NULL) {
        mq_append(b, copy);
        uv_mutex_unlock(&b->mu);
        /* Its slot is free again at once: this read goes on with it. */
        ch_node_release(node, msg);
        return;
    }
    mq_append(b, msg);
    uv_mutex_unlock(&b->mu);
}

/* Hand the commands the loop thread kept (cmd_recycle) to the pool;
 * under mu. */
static void pool_gather(ch_bridge_t *b)
{
    if (b->lfree != NULL) {
        b->lfree_tail->next = b->pool;
        b->pool = b->lfree;
        b->npool += b->nlfree;
        b->lfree = b->lfree_tail = NULL;
        b->nlfree = 0;
    }
    b->npool_seen = b->npool;
}

/* Wake waiting threads once per loop iteration, not once per message:
 * they then find a whole batch (everything one read delivered); under mu. */
static void flush_signals(ch_bridge_t *b)
{
    eq_flush_staged(b);
    pool_gather(b);
    if (b->sig_msg) {
        fd_signal(b);
        if (b->mq_len > 1)
            uv_cond_broadcast(&b->cv_msg);
        else
            uv_cond_signal(&b->cv_msg);
    }
    /* Not while ch_bridge_poll gathers a batch (unless it is complete). */
    if (b->sig_ev && (!b->gathering || b->eq_done >= CH_EV_BATCH ||
                      b->ev_urgent)) {
        uv_cond_signal(&b->cv_ev);
        b->sig_ev = 0;
    }
    b->sig_msg = 0;
}

/* A command is done (loop thread, mu not held): a pooled one is kept for
 * the pool (flush_signals hands it over), unless the pool is full. */
static void cmd_recycle(ch_bridge_t *b, ch_bcmd_t *cmd)
{
    if (!cmd->pooled || b->npool_seen + b->nlfree >= CH_CMD_POOL) {
        ch_free(cmd);
        return;
    }
    cmd->next = b->lfree;
    if (b->lfree == NULL)
        b->lfree_tail = cmd;
    b->lfree = cmd;
    b->nlfree++;
}

static void on_send_done(ch_send_t *s, int status, const char *detail)
{
    ch_bcmd_t *cmd = s->user_data;
    ch_bridge_t *b = cmd->bridge;
    int free_it, is_req = (cmd->flags & CH_SEND_REQUEST) != 0;
    b->activity++;
    /* wdetail is set once, before the loop sees the command: NULL for a
     * send nobody waits on (its wait field alone is read by others). */
    if (status == CH_OK && cmd->wdetail == NULL && !is_req) {
        /* The common case, a queued send written or acknowledged: staged
         * without the lock (the loop thread alone holds such a command),
         * into the ring once per loop iteration (flush_signals). */
        if (b->st_count > 0 && b->st_token + b->st_count == cmd->token) {
            b->st_count++;
        } else {
            if (b->st_count > 0) {
                uv_mutex_lock(&b->mu);
                eq_flush_staged(b);
                uv_mutex_unlock(&b->mu);
            }
            b->st_token = cmd->token;
            b->st_count = 1;
        }
        b->sig_ev = 1;
        cmd_recycle(b, cmd);
        return;
    }
    uv_mutex_lock(&b->mu);
    if (status != CH_OK && is_req) {
        /* No reply will come (unless one already did). */
        int i = req_find(b, cmd->send.identity, 0);
        if (i >= 0)
            req_remove(b, i);
    }
    if (cmd->wait == CH_W_WAITING) {
        /* A waited request goes on waiting for its reply, unless the send
         * failed; a waited send is done. */
        if (!is_req || status != CH_OK) {
            cmd->wait = CH_W_DONE;
            cmd->wstatus = status;
            snprintf(cmd->wdetail, CH_DETAIL_SIZE, "%s",
                     detail ? detail : "");
            uv_cond_broadcast(&b->cv_wait);
        }
    } else if (cmd->wait == CH_W_EVENT) {
        eq_push(b, CH_EV_SEND, status, cmd->token, NULL, detail);
    }
    free_it = cmd_unref(cmd);
    uv_mutex_unlock(&b->mu);
    if (free_it)
        cmd_recycle(b, cmd);
}

static void on_batch_done(ch_send_t *s, int status, const char *detail)
{
    ch_bcmd_t *cmd = s->user_data;
    ch_bridge_t *b = cmd->bridge;
    b->activity++;
    if (status != CH_OK && cmd->nfailed++ == 0) {
        cmd->bstatus = status;
        snprintf(cmd->bdetail, CH_DETAIL_SIZE, "%s", detail ? detail : "");
    }
    if (--cmd->remaining > 0)
        return;
    uv_mutex_lock(&b->mu);
    if (cmd->nfailed > 0) {
        char why[CH_DETAIL_SIZE];
        snprintf(why, sizeof(why), "%d of %d messages failed, the first: %s",
                 cmd->nfailed, cmd->nsends, cmd->bdetail);
        eq_push(b, CH_EV_SEND, cmd->bstatus, cmd->token, NULL, why);
    } else {
        eq_push(b, CH_EV_SEND, CH_OK, cmd->token, NULL, "");
    }
    uv_mutex_unlock(&b->mu);
    ch_free(cmd);
}

static void on_node_closed(ch_node_t *node)
{
    ch_bridge_t *b = ch_node_user_data(node);
    uv_mutex_lock(&b->mu);
    flush_signals(b);
    uv_mutex_unlock(&b->mu);
    uv_close((uv_handle_t *)&b->wake, NULL);
    uv_close((uv_handle_t *)&b->prep, NULL);
    uv_close((uv_handle_t *)&b->chk, NULL);
}

/* A send the node would not take: its callback reports why. */
static void refused(ch_send_t *s, int rc)
{
    char why[CH_DETAIL_SIZE];
    snprintf(why, sizeof(why), "send refused: %s", ch_strerror(rc));
    s->cb(s, rc, why);
}

/* Take the queued commands and releases; under mu. */
static void take_queues(ch_bridge_t *b, ch_bcmd_t **cmds,
                        ch_message_t **rels, int *closing)
{
    *cmds = b->cmd_head;
    *rels = b->rel_head;
    b->cmd_head = b->cmd_tail = NULL;
    b->rel_head = b->rel_tail = NULL;
    *closing = b->closing;
}

/* Carry out what take_queues took (loop thread, mu not held). */
static void run_queues(ch_bridge_t *b, ch_bcmd_t *cmds, ch_message_t *rels,
                       int closing)
{
    if (cmds != NULL || rels != NULL)
        b->activity++;
    while (rels != NULL) {
        ch_message_t *m = rels;
        rels = m->next_;
        m->next_ = NULL;
        ch_node_release(b->node, m);
    }
    /* All the sends first, then one write per connection. */
    ch_node_cork(b->node);
    while (cmds != NULL) {
        ch_bcmd_t *c = cmds;
        int rc;
        cmds = c->next;
        if (c->nsends > 0) {
            int i, n = c->nsends;
            /* The last completion frees c: do not touch it after that. */
            for (i = 0; i < n; i++)
                if ((rc = ch_node_send(b->node, &c->sends[i])) != CH_OK)
                    refused(&c->sends[i], rc);
            continue;
        }
        if ((rc = ch_node_send(b->node, &c->send)) != CH_OK)
            refused(&c->send, rc);
    }
    ch_node_uncork(b->node);
    if (closing)
        ch_node_close(b->node, on_node_closed);
}

/* Take the queues and carry them out (loop thread: on a wake-up, and on
 * every look while spinning).  The loop is busy now: it passes
 * on_prepare before it sleeps again. */
static void drain(ch_bridge_t *b)
{
    ch_bcmd_t *cmds;
    ch_message_t *rels;
    int closing, poked;
    uv_mutex_lock(&b->mu);
    take_queues(b, &cmds, &rels, &closing);
    b->running = 1;
    poked = b->poked;
    b->poked = 0;
    uv_mutex_unlock(&b->mu);
    if (poked)
        b->activity++; /* spin: the answer is on its way */
    run_queues(b, cmds, rels, closing);
}

/* Before the loop sleeps: carry out what was queued while it was busy
 * (queueing threads did not wake it, see running), then signal waiting
 * threads.  A few rounds at most: a queue that still refills after them
 * gets a wake-up, so the loop does not sleep on it. */
static void on_prepare(uv_prepare_t *h)
{
    ch_bridge_t *b = h->data;
    ch_bcmd_t *cmds;
    ch_message_t *rels;
    int closing, round;
    for (round = 0;; round++) {
        uv_mutex_lock(&b->mu);
        if ((b->cmd_head == NULL && b->rel_head == NULL) || round == 2) {
            if (b->cmd_head != NULL || b->rel_head != NULL)
                wake_loop(b);
            b->running = 0;
            flush_signals(b);
            uv_mutex_unlock(&b->mu);
            return;
        }
        take_queues(b, &cmds, &rels, &closing);
        uv_mutex_unlock(&b->mu);
        run_queues(b, cmds, rels, closing);
    }
}

/* After the loop's poll: it is busy until its next on_prepare. */
static void on_check(uv_check_t *h)
{
    ch_bridge_t *b = h->data;
    uv_mutex_lock(&b->mu);
    b->running = 1;
    flush_signals(b);
    uv_mutex_unlock(&b->mu);
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    ch_bridge_t *b = h->data;
    (void)status;
    (void)events;
    fdpair_clear(&b->wakefd);
    drain(b);
}

/* Is the loop thread spinning (it drains the queues by itself)?  Tells
 * queueing threads whether to wake it; under mu. */
static void set_awake(ch_bridge_t *b, int awake, int *queued)
{
    uv_mutex_lock(&b->mu);
    b->awake = awake;
    if (queued != NULL)
        *queued = b->cmd_head != NULL || b->rel_head != NULL;
    uv_mutex_unlock(&b->mu);
}

static void loop_main(void *arg)
{
    ch_bridge_t *b = arg;
    int more = 1, queued;
    unsigned long seen = b->activity;
    uint64_t until = 0;
    while (more) {
        /* After traffic (not a timer tick), look again without sleeping
         * until spin_ns pass without any: the next command or packet of
         * a conversation is usually close.  Meanwhile the queues are
         * drained here, so other threads need not wake the loop. */
        if (b->spin_ns > 0 && b->activity != seen) {
            int busy = 0;
            set_awake(b, 1, NULL);
            for (;;) {
                uint64_t now = uv_hrtime();
                if (b->activity != seen) {
                    seen = b->activity;
                    until = now + b->spin_ns;
                    /* Work at every look: a stream, not a conversation.
                     * Sleeping lets work pile up into bigger batches. */
                    if (++busy >= CH_SPIN_BUSY)
                        break;
                } else {
                    busy = 0;
                }
                if (now >= until || !spin_yield())
                    break;
                drain(b);
                more = uv_run(&b->loop, UV_RUN_NOWAIT);
                if (!more)
                    break;
            }
            set_awake(b, 0, &queued);
            if (queued) /* queued before awake was cleared: no wake-up */
                drain(b);
            if (!more)
                break;
        }
        more = uv_run(&b->loop, UV_RUN_ONCE);
    }
    uv_mutex_lock(&b->mu);
    b->closed = 1;
    /* Requests still waiting for a reply will not get one. */
    while (b->nreqs > 0) {
        ch_bcmd_t *w = b->reqs[b->nreqs - 1].waiter;
        if (w != NULL && w->wait == CH_W_WAITING) {
            w->wait = CH_W_DONE;
            w->wstatus = CH_ECLOSED;
            snprintf(w->wdetail, CH_DETAIL_SIZE, "node closed");
        }
        req_remove(b, (int)b->nreqs - 1);
    }
    eq_push(b, CH_EV_CLOSED, CH_ECLOSED, 0, NULL, "node closed");
    uv_cond_broadcast(&b->cv_ev);
    uv_cond_broadcast(&b->cv_msg);
    uv_cond_broadcast(&b->cv_wait);
    fd_signal(b);
    uv_mutex_unlock(&b->mu);
}

/* ---------------------------------------------------------- caller side */

int ch_bridge_open(const ch_config_t *config, ch_bridge_t **out, char *err,
                   size_t errlen)
{
    ch_bridge_t *b;
    int rc;
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
    b->appfd.rd = b->appfd.wr = -1;
    if (fdpair_open(&b->wakefd) != 0) {
        ch_free(b);
        snprintf(err, errlen, "cannot create a wake-up fd: %s",
                 strerror(errno));
        return CH_ENOMEM;
    }
    if (uv_loop_init(&b->loop) != 0) {
        fdpair_close(&b->wakefd);
        ch_free(b);
        snprintf(err, errlen, "cannot create the event loop");
        return CH_ENOMEM;
    }
    uv_mutex_init(&b->mu);
    uv_cond_init(&b->cv_msg);
    uv_cond_init(&b->cv_ev);
    uv_cond_init(&b->cv_wait);
    rc = ch_node_new(&b->loop, config, on_message, b, &b->node, err, errlen);
    if (rc == CH_OK && eq_reserve(b, 1) != CH_OK) { /* the CLOSED event */
        snprintf(err, errlen, "out of memory");
        rc = CH_ENOMEM;
    }
    if (rc == CH_OK) {
        rc = uv_poll_init(&b->loop, &b->wake, b->wakefd.rd);
        if (rc < 0) {
            snprintf(err, errlen, "wake-up poll: %s", uv_strerror(rc));
            rc = CH_ENOMEM;
        } else {
            b->wake.data = b;
            uv_poll_start(&b->wake, UV_READABLE, on_wake);
        }
    }
    if (rc == CH_OK) {
        uv_prepare_init(&b->loop, &b->prep);
        uv_check_init(&b->loop, &b->chk);
        b->prep.data = b->chk.data = b;
        uv_prepare_start(&b->prep, on_prepare);
        uv_check_start(&b->chk, on_check);
    }
    if (rc != CH_OK) {
        if (b->node != NULL) {
            ch_node_close(b->node, NULL);
            uv_run(&b->loop, UV_RUN_DEFAULT);
            ch_node_free(b->node);
        }
        uv_loop_close(&b->loop);
        uv_cond_destroy(&b->cv_msg);
        uv_cond_destroy(&b->cv_ev);
        uv_cond_destroy(&b->cv_wait);
        uv_mutex_destroy(&b->mu);
        fdpair_close(&b->wakefd);
        ch_free(b->eq);
        ch_free(b);
        return rc;
    }
    b->spin_ns = (uint64_t)config->spin_us * 1000u;
    b->port = ch_node_port(b->node);
    memcpy(b->identity, ch_node_identity(b->node), CH_ID_SIZE);
    if (uv_random(NULL, NULL, b->rng, sizeof(b->rng), 0, NULL) != 0) {
        b->rng[0] = uv_hrtime();
        b->rng[1] = (uint64_t)(uintptr_t)b;
    }
    rc = uv_thread_create(&b->thread, loop_main, b);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the loop thread: %s",
                 uv_strerror(rc));
        b->started = 0;
        b->closing = 1;
        uv_close((uv_handle_t *)&b->wake, NULL);
        uv_close((uv_handle_t *)&b->prep, NULL);
        uv_close((uv_handle_t *)&b->chk, NULL);
        ch_node_close(b->node, NULL);
        uv_run(&b->loop, UV_RUN_DEFAULT);
        b->closed = 1;
        ch_bridge_free(b);
        return CH_ENOMEM;
    }
    b->started = 1;
    *out = b;
    return CH_OK;
}

uint16_t ch_bridge_port(ch_bridge_t *b)
{
    return b->port;
}

void ch_bridge_identity(ch_bridge_t *b, uint8_t out[CH_ID_SIZE])
{
    memcpy(out, b->identity, CH_ID_SIZE);
}

int ch_bridge_set_inbox(ch_bridge_t *b, size_t bytes)
{
    int rc;
    uv_mutex_lock(&b->mu);
    if (b->closing)
        rc = CH_ECLOSED;
    else if (b->inbox.buf != NULL)
        rc = CH_EINVAL;
    else
        rc = ch_inbox_init(&b->inbox, bytes);
    uv_mutex_unlock(&b->mu);
    return rc;
}

int ch_bridge_fd(ch_bridge_t *b)
{
    int fd;
    uv_mutex_lock(&b->mu);
    /* Made on first use (not once closing): most nodes never need it. */
    if (!b->fd_used && !b->closing && fdpair_open(&b->appfd) == 0) {
        b->fd_used = 1;
        if (b->mq_len > 0 || b->closed)
            fd_signal(b);
    }
    fd = b->appfd.rd;
    uv_mutex_unlock(&b->mu);
    return fd;
}


/* Fill a command for one send (header and data copied unless nocopy). */
static void cmd_fill(ch_bcmd_t *cmd, ch_bridge_t *b, uint64_t token,
                     uint8_t ip_protocol, const uint8_t *address,
                     uint16_t port, const char *header, size_t header_len,
                     const char *data, size_t data_len, int flags, int waited)
{
    int nocopy = (flags & CH_SEND_NOCOPY) != 0;
    uint8_t *p = (uint8_t *)(cmd + 1);
    ch_send_init(&cmd->send);
    cmd->next = NULL;
    cmd->bridge = b;
    cmd->token = token;
    cmd->flags = flags;
    cmd->wait = waited ? CH_W_WAITING : CH_W_EVENT;
    cmd->wstatus = CH_OK;
    cmd->refs = waited ? 2 : 1;
    cmd->reply = NULL;
    cmd->nsends = 0;
    cmd->sends = NULL;
    cmd->wdetail = waited ? (char *)p + header_len + data_len : NULL;
    if (header_len > 0)
        memcpy(p, header, header_len);
    if (data_len > 0 && !nocopy)
        memcpy(p + header_len, data, data_len);
    cmd->send.header = p;
    cmd->send.header_len = (uint32_t)header_len;
    cmd->send.data = nocopy ? (const uint8_t *)data : p + header_len;
    cmd->send.data_len = (uint32_t)data_len;
    cmd->send.ip_protocol = ip_protocol;
    memcpy(cmd->send.address, address, 16);
    cmd->send.port = port;
    cmd->send.cb = on_send_done;
    cmd->send.user_data = cmd;
}

/* Copy a message into a command and queue it for the loop thread.  With
 * waited set, the result is kept in the command for the calling thread
 * instead of becoming an event. */
static int submit(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                  const uint8_t *address, uint16_t port, const char *header,
                  size_t header_len, const char *data, size_t data_len,
                  const uint8_t *identity, int flags, int waited,
                  ch_bcmd_t **out)
{
    ch_bcmd_t *cmd;
    int rc = CH_OK;
    int nocopy = (flags & CH_SEND_NOCOPY) != 0;
    size_t payload = header_len + (nocopy ? 0 : data_len);
    int pooled = !waited && payload <= CH_CMD_PAYLOAD;
    if (header_len > 0xffff || data_len > 0xffffffffu ||
        (ip_protocol != 4 && ip_protocol != 6) || (nocopy && waited))
        return CH_EINVAL;
    if (pooled) {
        /* Small: taken from the pool and filled under the lock (a short
         * copy), one lock for the whole call. */
        uv_mutex_lock(&b->mu);
        if (b->closing) {
            uv_mutex_unlock(&b->mu);
            return CH_ECLOSED;
        }
        if ((cmd = b->pool) != NULL) {
            b->pool = cmd->next;
            b->npool--;
        } else if ((cmd = ch_malloc(CH_CMD_SIZE)) == NULL) {
            uv_mutex_unlock(&b->mu);
            return CH_ENOMEM;
        }
        cmd_fill(cmd, b, token, ip_protocol, address, port, header,
                 header_len, data, data_len, flags, 0);
    } else {
        cmd = ch_malloc(sizeof(*cmd) + payload +
                        (waited ? CH_DETAIL_SIZE : 0));
        if (cmd == NULL)
            return CH_ENOMEM;
        cmd_fill(cmd, b, token, ip_protocol, address, port, header,
                 header_len, data, data_len, flags, waited);
        uv_mutex_lock(&b->mu);
        if (b->closing) {
            uv_mutex_unlock(&b->mu);
            ch_free(cmd);
            return CH_ECLOSED;
        }
    }
    cmd->pooled = pooled;
    if (identity != NULL && (flags & CH_SEND_IDENTITY)) {
        ch_send_set_identity(&cmd->send, identity);
    } else {
        /* Chosen here so that a request's reply can be matched before
         * the message is even written. */
        uint8_t id[CH_ID_SIZE];
        ch_rng_id(b->rng, id);
        ch_send_set_identity(&cmd->send, id);
    }
    if (!waited) /* a send event, and a reply event for a request */
        rc = eq_reserve(b, (flags & CH_SEND_REQUEST) ? 2 : 1);
    if (rc == CH_OK && (flags & CH_SEND_REQUEST)) {
        if (b->nreqs == b->reqs_cap) {
            size_t cap = b->reqs_cap ? b->reqs_cap * 2 : 16;
            ch_pending_req_t *n = ch_realloc(b->reqs, cap * sizeof(*n));
            if (n == NULL) {
                b->eq_reserved -= waited ? 0 : 2;
                rc = CH_ENOMEM;
            } else {
                b->reqs = n;
                b->reqs_cap = cap;
            }
        }
        if (rc == CH_OK) {
            memcpy(b->reqs[b->nreqs].identity, cmd->send.identity,
                   CH_ID_SIZE);
            b->reqs[b->nreqs].token = token;
            b->reqs[b->nreqs].waiter = waited ? cmd : NULL;
            b->nreqs++;
        }
    }
    if (rc != CH_OK) {
        uv_mutex_unlock(&b->mu);
        ch_free(cmd);
        return rc;
    }
    cmd_append(b, cmd);
    if (out != NULL)
        *out = cmd;
    uv_mutex_unlock(&b->mu);
    return CH_OK;
}

int ch_bridge_send(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                   const uint8_t *address, uint16_t port, const char *header,
                   size_t header_len, const char *data, size_t data_len,
                   const uint8_t *identity, int flags)
{
    return submit(b, token, ip_protocol, address, port, header, header_len,
                  data, data_len, identity, flags, 0, NULL);
}

int ch_bridge_post(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                   const char *data, size_t data_len, const char *header,
                   size_t header_len)
{
    return submit(b, token, dest->ip_protocol, dest->address, dest->port,
                  header, header_len, data, data_len, NULL, 0, 0, NULL);
}

static int wait_done(ch_bridge_t *b, void **pending, int timeout_ms,
                     ch_message_t **reply, char *detail, size_t detail_len)
{
    ch_bcmd_t *cmd = *pending;
    uint64_t deadline =
        uv_hrtime() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
    uint64_t until = spin_until(b, timeout_ms < 0 ? 0 : deadline);
    int status, free_it;
    uv_mutex_lock(&b->mu);
    while (cmd->wait == CH_W_WAITING && spin_step(b, until))
        ;
    while (cmd->wait == CH_W_WAITING) {
        uint64_t now = uv_hrtime();
        if (timeout_ms >= 0 && now >= deadline) {
            uv_mutex_unlock(&b->mu);
            return CH_EAGAIN;
        }
        if (timeout_ms < 0)
            uv_cond_wait(&b->cv_wait, &b->mu);
        else
            uv_cond_timedwait(&b->cv_wait, &b->mu, deadline - now);
    }
    status = cmd->wstatus;
    if (detail != NULL && detail_len > 0)
        snprintf(detail, detail_len, "%s", status == CH_OK ? "" : cmd->wdetail);
    if (reply != NULL)
        *reply = cmd->reply;
    cmd->reply = NULL;
    *pending = NULL;
    free_it = cmd_unref(cmd);
    uv_mutex_unlock(&b->mu);
    if (free_it)
        ch_free(cmd);
    return status;
}

int ch_bridge_wait(ch_bridge_t *b, void **pending, int timeout_ms,
                   char *detail, size_t detail_len)
{
    return wait_done(b, pending, timeout_ms, NULL, detail, detail_len);
}

int ch_bridge_wait_reply(ch_bridge_t *b, void **pending, int timeout_ms,
                         ch_message_t **reply, char *detail,
                         size_t detail_len)
{
    *reply = NULL;
    return wait_done(b, pending, timeout_ms, reply, detail, detail_len);
}

int ch_bridge_send_wait(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *data, size_t data_len,
                        const uint8_t *identity, int flags, int timeout_ms,
                        void **pending, char *detail, size_t detail_len)
{
    ch_bcmd_t *cmd = NULL;
    int rc = submit(b, token, ip_protocol, address, port, header, header_len,
                    data, data_len, identity, flags & ~CH_SEND_REQUEST, 1,
                    &cmd);
    *pending = NULL;
    if (rc != CH_OK)
        return rc;
    *pending = cmd;
    return ch_bridge_wait(b, pending, timeout_ms, detail, detail_len);
}

int ch_bridge_request_wait(ch_bridge_t *b, uint8_t ip_protocol,
                           const uint8_t *address, uint16_t port,
                           const char *header, size_t header_len,
                           const char *data, size_t data_len,
                           int timeout_ms, void **pending,
                           ch_message_t **reply, char *detail,
                           size_t detail_len)
{
    ch_bcmd_t *cmd = NULL;
    int rc = submit(b, 0, ip_protocol, address, port, header, header_len,
                    data, data_len, NULL, CH_SEND_REQUEST, 1, &cmd);
    *pending = NULL;
    *reply = NULL;
    if (rc != CH_OK)
        return rc;
    *pending = cmd;
    return ch_bridge_wait_reply(b, pending, timeout_ms, reply, detail,
                                detail_len);
}

void ch_bridge_abandon(ch_bridge_t *b, void *pending)
{
    ch_bcmd_t *cmd = pending;
    int free_it, i;
    if (cmd == NULL)
        return;
    uv_mutex_lock(&b->mu);
    if ((cmd->flags & CH_SEND_REQUEST) &&
        (i = req_find(b, cmd->send.identity, 0)) >= 0) {
        drop_later(b, cmd->send.identity);
        req_remove(b, i);
    }
    if (cmd->reply != NULL && !b->closing) {
        /* A reply nobody will read: give its slot back. */
        rel_append(b, cmd->reply, cmd->reply);
    }
    cmd->reply = NULL;
    if (cmd->wait == CH_W_WAITING)
        cmd->wait = CH_W_ABANDONED;
    free_it = cmd_unref(cmd);
    uv_mutex_unlock(&b->mu);
    if (free_it)
        ch_free(cmd);
}

/* Queue a batch: the data is joined (message i at the sum of the lengths
 * before it) or, with each, one pointer per message (never copied). */
static int send_batch(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                      const uint8_t *address, uint16_t port,
                      const char *header, size_t header_len,
                      const char *data, const char *const *each,
                      const size_t *lens, int n, int nocopy)
{
    ch_bcmd_t *cmd;
    uint8_t *p, *hdr, *body;
    size_t total = 0, off = 0;
    int i, rc;
    if (n <= 0 || header_len > 0xffff ||
        (ip_protocol != 4 && ip_protocol != 6))
        return CH_EINVAL;
    for (i = 0; i < n; i++) {
        if (lens[i] > 0xffffffffu || total + lens[i] < total)
            return CH_EINVAL;
        total += lens[i];
    }
    cmd = ch_malloc(sizeof(*cmd) + (size_t)n * sizeof(ch_send_t) +
                    CH_DETAIL_SIZE + header_len + (nocopy ? 0 : total));
    if (cmd == NULL)
        return CH_ENOMEM;
    memset(cmd, 0, sizeof(*cmd));
    cmd->bridge = b;
    cmd->token = token;
    cmd->wait = CH_W_EVENT;
    cmd->nsends = cmd->remaining = n;
    cmd->sends = (ch_send_t *)(cmd + 1);
    p = (uint8_t *)(cmd->sends + n);
    cmd->bdetail = (char *)p;
    cmd->bdetail[0] = '\0';
    hdr = p + CH_DETAIL_SIZE;
    body = nocopy ? (uint8_t *)(uintptr_t)data : hdr + header_len;
    if (header_len > 0)
        memcpy(hdr, header, header_len);
    if (total > 0 && !nocopy)
        memcpy(body, data, total);
    uv_mutex_lock(&b->mu);
    if (b->closing) {
        uv_mutex_unlock(&b->mu);
        ch_free(cmd);
        return CH_ECLOSED;
    }
    rc = eq_reserve(b, 1);
    if (rc != CH_OK) {
        uv_mutex_unlock(&b->mu);
        ch_free(cmd);
        return rc;
    }
    for (i = 0; i < n; i++) {
        ch_send_t *s = &cmd->sends[i];
        uint8_t id[CH_ID_SIZE];
        ch_send_init(s);
        ch_rng_id(b->rng, id);
        ch_send_set_identity(s, id);
        s->header = hdr;
        s->header_len = (uint32_t)header_len;
        s->data = each != NULL ? (const uint8_t *)each[i] : body + off;
        s->data_len = (uint32_t)lens[i];
        off += lens[i];
        s->ip_protocol = ip_protocol;
        memcpy(s->address, address, 16);
        s->port = port;
        s->cb = on_batch_done;
        s->user_data = cmd;
    }
    cmd_append(b, cmd);
    uv_mutex_unlock(&b->mu);
    return CH_OK;
}

int ch_bridge_send_many(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *data, const size_t *lens, int n,
                        int flags)
{
    if (flags & ~CH_SEND_NOCOPY)
        return CH_EINVAL;
    return send_batch(b, token, ip_protocol, address, port, header,
                      header_len, data, NULL, lens, n,
                      (flags & CH_SEND_NOCOPY) != 0);
}

int ch_bridge_send_each(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *const *datas, const size_t *lens, int n)
{
    return send_batch(b, token, ip_protocol, address, port, header,
                      header_len, NULL, datas, lens, n, 1);
}

void ch_bridge_cancel(ch_bridge_t *b, uint64_t token)
{
    int i;
    uv_mutex_lock(&b->mu);
    i = req_find(b, NULL, token);
    if (i >= 0) {
        drop_later(b, b->reqs[i].identity);
        req_remove(b, i);
    }
    uv_mutex_unlock(&b->mu);
}

/* Wait on cv until *len > 0 or timeout; under mu.  timeout_ms < 0:
 * forever.  Spins first if spin is set. */
static int wait_for(ch_bridge_t *b, uv_cond_t *cv, const size_t *len,
                    int timeout_ms, int spin)
{
    uint64_t deadline = 0;
    if (timeout_ms > 0)
        deadline = uv_hrtime() + (uint64_t)timeout_ms * 1000000u;
    if (spin && timeout_ms != 0) {
        uint64_t until = spin_until(b, deadline);
        while (*len == 0 && !b->closed && spin_step(b, until))
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

/* Take the oldest received message; under mu, the queue not empty. */
static ch_message_t *mq_pop(ch_bridge_t *b)
{
    ch_message_t *m = b->mq_head;
    b->mq_head = m->next_;
    m->next_ = NULL;
    b->mq_len--;
    if (b->mq_head == NULL) {
        b->mq_tail = NULL;
        if (!b->closed)
            fd_clear(b);
    }
    return m;
}

int ch_bridge_recv(ch_bridge_t *b, ch_message_t **out, int max,
                   int timeout_ms)
{
    int n = 0;
    uv_mutex_lock(&b->mu);
    if (!wait_for(b, &b->cv_msg, &b->mq_len, timeout_ms, 1)) {
        int rc = (b->closed || b->closing) ? CH_ECLOSED : CH_ETIMEDOUT;
        uv_mutex_unlock(&b->mu);
        return rc;
    }
    while (n < max && b->mq_head != NULL)
        out[n++] = mq_pop(b);
    uv_mutex_unlock(&b->mu);
    return n;
}

/* The application just took messages, and often answers them at once:
 * a loop thread that sleeps is woken to spin for spin_ns, so that the
 * answer does not wait for a wake-up of its own (releasing slots used to
 * do this; inbox copies are given back without the loop).  Under mu. */
static void expect_answer(ch_bridge_t *b)
{
    if (b->spin_ns > 0 && !b->awake && !b->running && !b->poked &&
        !b->closing && b->cmd_head == NULL && b->rel_head == NULL) {
        b->poked = 1;
        wake_loop(b);
    }
}

/* Bytes a message takes in ch_bridge_recv_copy's buffer. */
static size_t copy_size(const ch_message_t *m)
{
    return 3 * CH_ID_SIZE + (size_t)m->header_len + m->data_len;
}

int ch_bridge_recv_copy(ch_bridge_t *b, ch_msg_meta_t *meta, int max,
                        char *buf, size_t buflen, int timeout_ms,
                        size_t *used)
{
    ch_message_t *taken = NULL, *last = NULL, *m;
    size_t off = 0;
    int n = 0, i;
    *used = 0;
    if (buflen > 0xffffffffu)
        buflen = 0xffffffffu; /* offsets are 32 bits */
    uv_mutex_lock(&b->mu);
    if (!wait_for(b, &b->cv_msg, &b->mq_len, timeout_ms, 1)) {
        int rc = (b->closed || b->closing) ? CH_ECLOSED : CH_ETIMEDOUT;
        uv_mutex_unlock(&b->mu);
        return rc;
    }
    /* Take what fits; copy it without the lock (the loop thread queues
     * new messages meanwhile), then hand the slots back. */
    while (n < max && b->mq_head != NULL) {
        size_t size;
        m = b->mq_head;
        size = copy_size(m);
        if (off + size > buflen) {
            if (n == 0)
                *used = size; /* the caller's buffer is too small */
            break;
        }
        mq_pop(b);
        if (last != NULL)
            last->next_ = m;
        else
            taken = m;
        last = m;
        off += size;
        n++;
    }
    uv_mutex_unlock(&b->mu);
    if (n == 0)
        return 0;
    off = 0;
    for (i = 0, m = taken; i < n; i++, m = m->next_) {
        ch_msg_meta_t *d = &meta[i];
        uint8_t *p = (uint8_t *)buf + off;
        memcpy(p, m->identity, CH_ID_SIZE);
        memcpy(p + CH_ID_SIZE, m->remote_identity, CH_ID_SIZE);
        memcpy(p + 2 * CH_ID_SIZE, m->address, 16);
        if (m->header_len > 0)
            memcpy(p + 3 * CH_ID_SIZE, m->header, m->header_len);
        if (m->data_len > 0)
            memcpy(p + 3 * CH_ID_SIZE + m->header_len, m->data, m->data_len);
        d->offset = (uint32_t)off;
        d->serial = m->serial;
        d->data_len = m->data_len;
        d->header_len = m->header_len;
        d->port = m->port;
        d->flags = m->ip_protocol;
        if (i > 0 && last->port == m->port &&
            last->ip_protocol == m->ip_protocol &&
            memcmp(last->address, m->address, 16) == 0 &&
            memcmp(last->remote_identity, m->remote_identity,
                   CH_ID_SIZE) == 0)
            d->flags |= CH_META_SAME_SOURCE;
        off += copy_size(m);
        last = m;
    }
    *used = off;
    last->next_ = NULL;
    uv_mutex_lock(&b->mu);
    if (!b->closing) {
        release_chain(b, taken);
        expect_answer(b);
    }
    uv_mutex_unlock(&b->mu);
    return n;
}

void ch_bridge_release(ch_bridge_t *b, ch_message_t **msgs, int n)
{
    int i;
    if (n <= 0)
        return;
    uv_mutex_lock(&b->mu);
    if (b->closing) {
        uv_mutex_unlock(&b->mu);
        return;
    }
    for (i = 0; i + 1 < n; i++)
        msgs[i]->next_ = msgs[i + 1];
    msgs[n - 1]->next_ = NULL;
    release_chain(b, msgs[0]);
    uv_mutex_unlock(&b->mu);
}

int ch_bridge_poll(ch_bridge_t *b, ch_event_t *out, int max, int timeout_ms)
{
    int n = 0;
    uv_mutex_lock(&b->mu);
    /* Called again soon (completions keep coming): let them gather, so
     * that the caller handles many per call instead of one per wake-up. */
    if (timeout_ms != 0) {
        uint64_t end = b->last_poll + CH_EV_GATHER_NS, now;
        b->gathering = 1;
        while (b->eq_done < CH_EV_BATCH && !b->ev_urgent && !b->closed &&
               (now = uv_hrtime()) < end && now >= b->hurry_until)
            uv_cond_timedwait(&b->cv_ev, &b->mu, end - now);
        b->gathering = 0;
    }
    /* No spinning here: Futures are not the low-latency path (the
     * blocking calls are), and a spinning pump thread would take CPU from
     * the threads doing the work. */
    if (!wait_for(b, &b->cv_ev, &b->eq_len, timeout_ms, 0)) {
        int rc = b->closed ? CH_ECLOSED : CH_ETIMEDOUT;
        uv_mutex_unlock(&b->mu);
        return rc;
    }
    while (n < max && b->eq_len > 0) {
        b->eq_done -= b->eq[b->eq_head].count;
        out[n++] = b->eq[b->eq_head];
        b->eq_head = (b->eq_head + 1) % b->eq_cap;
        b->eq_len--;
    }
    if (b->eq_len == 0)
        b->ev_urgent = 0;
    b->last_poll = uv_hrtime();
    uv_mutex_unlock(&b->mu);
    return n;
}

void ch_bridge_hurry(ch_bridge_t *b)
{
    uv_mutex_lock(&b->mu);
    b->hurry_until = uv_hrtime() + CH_EV_HURRY_NS;
    if (b->gathering)
        uv_cond_signal(&b->cv_ev);
    uv_mutex_unlock(&b->mu);
}

void ch_bridge_close(ch_bridge_t *b)
{
    int join;
    uv_mutex_lock(&b->mu);
    join = b->started;
    b->started = 0;
    b->closing = 1;
    if (join)
        wake_loop(b);
    uv_mutex_unlock(&b->mu);
    if (!join)
        return;
    uv_thread_join(&b->thread);
    /* The loop is done: its fds go now, the memory with ch_bridge_free
     * (other threads may still call in and get CH_ECLOSED).  Nothing
     * signals the wake fd any more: queueing stops at closing, and
     * wake-ups happen under mu.  The app's fd stays, readable, until
     * ch_bridge_free: a selector may still wait on it. */
    uv_mutex_lock(&b->mu);
    fdpair_close(&b->wakefd);
    uv_mutex_unlock(&b->mu);
    if (uv_loop_close(&b->loop) == 0)
        b->loop_closed = 1;
}

void ch_bridge_free(ch_bridge_t *b)
{
    ch_bcmd_t *c;
    if (b == NULL)
        return;
    ch_bridge_close(b);
    /* Commands that raced with close never reached the node; the pool. */
    for (c = b->cmd_head; c != NULL;) {
        ch_bcmd_t *next = c->next;
        ch_free(c);
        c = next;
    }
    pool_gather(b); /* the loop thread is gone: its spares too */
    for (c = b->pool; c != NULL;) {
        ch_bcmd_t *next = c->next;
        ch_free(c);
        c = next;
    }
    ch_node_free(b->node);
    if (!b->loop_closed)
        uv_loop_close(&b->loop);
    uv_cond_destroy(&b->cv_msg);
    uv_cond_destroy(&b->cv_ev);
    uv_cond_destroy(&b->cv_wait);
    uv_mutex_destroy(&b->mu);
    fdpair_close(&b->appfd);
    fdpair_close(&b->wakefd);
    ch_free(b->eq);
    ch_free(b->reqs);
    ch_inbox_free(&b->inbox);
    ch_free(b);
}
