/* bridge/bridge_int.h - the bridge's state, shared by its files.
 *
 * Who owns what:
 * - The loop thread (loop.c) runs the node and its libuv loop, and alone
 *   calls the loop API (chirp.h).  Fields marked [loop] are its own.
 * - Application threads call chirp_bridge.h: they queue commands and
 *   releases (submit.c, receive.c), wait for their own sends and requests
 *   (requests.c), take events (events.c) and messages (receive.c).
 * - Fields marked [mu] are shared: read and written with b->mu held, and
 *   nobody holds mu while calling into the node or copying message
 *   bodies.  [fixed] fields are set by ch_bridge_open before the loop
 *   thread starts and only read afterwards.
 * - Memory: the bridge owns its commands (until the loop thread completes
 *   them, or the pool keeps them), request entries, the event ring and
 *   the inbox; received messages are the node's until released.
 *
 * One file per job: wake.c (waking the loop thread), submit.c (commands),
 * events.c (the event ring), requests.c (waits and the request table),
 * receive.c (received messages and the inbox), loop.c (the loop thread),
 * bridge.c (open, close, free). */
#ifndef CH_BRIDGE_INT_H
#define CH_BRIDGE_INT_H

#include "bridge/inbox.h"
#include "bridge/wakefd.h"
#include "chirp.h"
#include "chirp_bridge.h"
#include "util/htable.h"
#include "util/queue.h"
#include "util/rng.h"

/* ------------------------------------------------------------- commands */

#define CH_CMD_SEND 1   /* one send; its result becomes an event */
#define CH_CMD_WAITED 2 /* one send or request a thread waits for */
#define CH_CMD_BATCH 3  /* many sends to one remote; one event */
#define CH_CMD_QUERY 4  /* stats and peers; its caller waits (ch_query_t) */
#define CH_CMD_REJECT 5 /* reject a received message (ch_rejectcmd_t) */

/* A flag of ch_submit beside CH_SEND_REQUEST and CH_SEND_NOCOPY: the
 * wait is announced (ch_bridge_start), not waited for. */
#define CH_SEND_ANNOUNCE 0x100

/* What the loop thread takes from the command queue. */
typedef struct ch_cmd {
    ch_link_t link; /* [mu] b->cmds.queue or the pool; [loop] once taken */
    int kind;
} ch_cmd_t;

/* One send (CH_CMD_SEND, or inside a ch_wait_t CH_CMD_WAITED); its
 * header and data follow it in the same allocation (unless nocopy). */
typedef struct ch_sendcmd {
    ch_cmd_t cmd;
    ch_bridge_t *bridge;
    uint64_t token;
    int flags;  /* CH_SEND_REQUEST, CH_SEND_NOCOPY */
    int pooled; /* CH_CMD_SIZE bytes: may be used again */
    ch_send_t send;
} ch_sendcmd_t;

/* ch_wait_t.state */
#define CH_W_WAITING 1   /* a thread waits (or will wait) for the result */
#define CH_W_DONE 2      /* the result is stored; the waiter takes it */
#define CH_W_ABANDONED 3 /* the waiter gave up */

/* A send or request a thread waits for: made by the waiter, referenced
 * by it and by the core until the send completes (refs). */
struct ch_wait {
    int state;           /* [mu] */
    int status;          /* [mu] */
    int refs;            /* [mu] */
    int announced;       /* [fixed] listed in b->reqs.done once done */
    ch_link_t dlink;     /* [mu] b->reqs.done, until taken or abandoned */
    ch_message_t *reply; /* [mu] a request's reply, once it came */
    char detail[CH_DETAIL_SIZE];
    ch_sendcmd_t sc; /* last: its header and data follow */
};

/* Many sends to one remote (send_many, send_each); one event at the end.
 * [loop] once queued: only completions touch it. */
typedef struct ch_batch {
    ch_cmd_t cmd;
    ch_bridge_t *bridge;
    uint64_t token;
    int nsends;
    int remaining;
    int nfailed;
    int status; /* the first failure's */
    char detail[CH_DETAIL_SIZE];
    ch_send_t *sends; /* nsends, after the struct; then header and data */
} ch_batch_t;

/* A message to reject, and the reason (it follows, NUL-terminated). */
typedef struct ch_rejectcmd {
    ch_cmd_t cmd;
    ch_message_t *msg;
} ch_rejectcmd_t;

/* A query of stats and peers: the caller's, on its stack, until done. */
typedef struct ch_query {
    ch_cmd_t cmd;
    ch_stats_t *stats;
    ch_peer_info_t *peers;
    int max;
    int npeers;
    size_t done; /* [mu] 1 once the loop thread filled it in */
} ch_query_t;

/* Small queued sends (header and data up to CH_CMD_PAYLOAD bytes) use
 * commands of one size that the loop thread hands back for reuse,
 * CH_CMD_POOL at most: no malloc and no cross-thread free per message in
 * a stream. */
#define CH_CMD_PAYLOAD 256
#define CH_CMD_SIZE (sizeof(ch_sendcmd_t) + CH_CMD_PAYLOAD)
#define CH_CMD_POOL 256

typedef struct ch_cmds {
    ch_list_t queue; /* [mu] commands for the loop thread */
    ch_list_t rels;  /* [mu] messages to release (by their link) */
    ch_list_t pool;  /* [mu] pooled commands to reuse */
    ch_rng_t rng;    /* [mu] identities of new messages */
    ch_list_t spare; /* [loop] pooled commands done, for the pool */
    int pool_seen;   /* [loop] the pool's size at the last hand-over */
    /* Posts (token 0: nobody waits for them) queued or in the core, and
     * their bytes: a post waits while they are over the high-water mark
     * (ch_bridge_post in chirp_bridge.h). */
    size_t posted, posted_bytes; /* [mu] */
    int post_waiters;            /* [mu] threads waiting to post */
    uv_cond_t post_cv;           /* [mu] they sleep on it */
    int post_cv_ready;
    size_t posts_done, posts_done_bytes; /* [loop] since the hand-over */
} ch_cmds_t;

/* ----------------------------------------------------------------- wake */

typedef struct ch_wake {
    ch_wakefd_t fd; /* the loop polls it: something is queued */
    int awake;      /* [mu] the loop thread spins and drains the queues */
    int running;    /* [mu] the loop thread is busy and drains the queues
                     * before it sleeps (on_prepare): no wake-up needed */
    int poked;      /* [mu] woken to spin: an answer is expected */
} ch_wake_t;

/* --------------------------------------------------------------- events */

typedef struct ch_events {
    ch_event_t *ring;     /* [mu] */
    size_t cap;           /* [mu] */
    size_t head;          /* [mu] */
    size_t len;           /* [mu] */
    size_t reserved;      /* [mu] space promised to accepted sends */
    size_t done;          /* [mu] completions in the ring, merged counted */
    int urgent;           /* [mu] the ring holds more than successes */
    int gathering;        /* [mu] ch_bridge_poll waits for a batch */
    uint64_t last_poll;   /* [mu] when ch_bridge_poll last returned */
    uint64_t hurry_until; /* [mu] ch_bridge_poll does not gather until */
    uv_cond_t cv;
} ch_events_t;

/* ------------------------------------------------------------- requests */

/* A request whose reply is awaited, or was given up on (dropped: its late
 * reply is released, not received).  Dropped entries are kept for
 * drop_ns, CH_DROPPED at most (the oldest go first): a reply later than
 * that is received as a message. */
typedef struct ch_req {
    ch_link_t hlink; /* its bucket */
    ch_link_t dlink; /* the dropped list, once given up */
    uint8_t identity[CH_ID_SIZE];
    uint64_t token;
    ch_wait_t *waiter; /* a thread waits for the reply; NULL: an event */
    int dropped;
    uint64_t dropped_at; /* uv_hrtime() when given up */
} ch_req_t;

#define CH_DROPPED 65536

typedef struct ch_reqtab {
    ch_htable_t table; /* [mu] ch_req_t by identity */
    size_t pending;    /* [mu] entries not dropped */
    ch_list_t dropped; /* [mu] oldest first */
    uint64_t drop_ns;  /* [fixed] how long a dropped entry is kept */
    uv_cond_t cv;      /* waiters (ch_wait_t) sleep on it */
    ch_list_t done;    /* [mu] announced waits done, oldest first */
    ch_wakefd_t donefd; /* [mu] readable while done is not empty */
    int donefd_open;   /* [mu] */
} ch_reqtab_t;

/* -------------------------------------------------------------- receive */

typedef struct ch_recvq {
    ch_list_t msgs;     /* [mu] received, for recv (by their link) */
    ch_inbox_t inbox;   /* [mu] copies of small messages */
    ch_wakefd_t appfd;  /* readable while messages wait */
    int fd_used;        /* [mu] ch_bridge_fd was asked: keep its state */
    int fd_signaled;    /* [mu] */
    uv_cond_t cv;       /* receivers sleep on it */
} ch_recvq_t;

/* ---------------------------------------------------------------- losses */

/* Sends that failed once closing had begun, by destination (the first
 * CH_LOSS_DESTS; the others are counted in total only). */
#define CH_LOSS_DESTS 8
typedef struct ch_losses {
    size_t total;
    int ndests;
    ch_dest_t dest[CH_LOSS_DESTS];
    size_t count[CH_LOSS_DESTS];
    int status[CH_LOSS_DESTS]; /* the first failure's */
} ch_losses_t;

/* ------------------------------------------------------------ the bridge */

struct ch_bridge {
    uv_loop_t loop;           /* [loop] */
    ch_node_t *node;          /* [loop] (its port and identity: fixed) */
    uv_thread_t thread;       /* [fixed] */
    uint16_t port;            /* [fixed] */
    uint8_t identity[CH_ID_SIZE]; /* [fixed] */
    uint64_t spin_ns;         /* [fixed] see loop.c */
    uv_mutex_t mu;
    int started;              /* [mu] the loop thread runs */
    int closing;              /* [mu] close requested: no new work */
    int closed;               /* [mu] the loop finished */
    int loop_closed;          /* ch_bridge_close closed the loop */
    double linger;            /* [mu] of the close; < 0: the node's */
    int linger_changed;       /* [mu] a shorter linger came meanwhile */
    ch_losses_t losses;       /* [loop] sends failed after closing began */
    int close_begun;          /* [loop] the node is closing */
    ch_peer_report_t *pring;  /* [mu] peer events waiting (a ring, made on
                                 first use, freed when emptied) */
    size_t pcap, phead, plen; /* [mu] */
    int peer_marked;          /* [mu] a CH_EV_PEER event stands for them */
    uint64_t peer_dropped;    /* [mu] not queued since the last one */
    uint64_t events_dropped;  /* [mu] not queued, in all */
    int parts;                /* of the parts below, how many are ready */
    ch_wake_t wake;
    ch_cmds_t cmds;
    ch_events_t ev;
    ch_reqtab_t reqs;
    ch_recvq_t rq;
    /* [loop] */
    uv_poll_t wake_poll;
    uv_prepare_t prep;
    uv_check_t chk;
    unsigned long activity; /* counts traffic, for spinning */
    int sig_msg;            /* wake receivers at the end of this turn */
    int sig_ev;             /* wake the event poller at the end of it */
    uint64_t st_token;      /* successful sends st_token .. */
    uint64_t st_count;      /* .. + st_count - 1 not yet in the ring */
};

/* bridge.c: spinning (a thread that waits polls for spin_ns first) */
uint64_t ch_spin_until(const ch_bridge_t *b, uint64_t deadline);
/* Give the CPU away for a moment: 0 when another thread ran meanwhile
 * (the CPUs are busy, and spinning would take time from the work). */
int ch_spin_yield(void);
/* One look while spinning, giving mu away meanwhile; [mu].  0 once until
 * passed or the CPUs are busy. */
int ch_spin_step(ch_bridge_t *b, uint64_t until);
/* Wait on cv until *len > 0, the loop finished, or timeout_ms (< 0:
 * forever), spinning first if spin; [mu].  1 if *len > 0. */
int ch_wait_for(ch_bridge_t *b, uv_cond_t *cv, const size_t *len,
                int timeout_ms, int spin);

/* wake.c, [mu] */
int ch_wake_open(ch_bridge_t *b);
/* Queued something (the queues were empty before if was_empty): wake the
 * loop thread unless it drains them anyway. */
void ch_wake_queued(ch_bridge_t *b, int was_empty);
/* The application took messages and often answers at once: a sleeping
 * loop thread is woken to spin, so the answer needs no wake-up. */
void ch_wake_expect_answer(ch_bridge_t *b);
/* ch_bridge_close: wake the loop thread to close the node. */
void ch_wake_now(ch_bridge_t *b);

/* submit.c, [mu] */
int ch_cmds_init(ch_bridge_t *b);
int ch_cmds_queues_empty(const ch_bridge_t *b);
/* Queue a command for the loop thread (and wake it if need be). */
void ch_cmds_queue(ch_bridge_t *b, ch_cmd_t *cmd);
/* Queue messages (a list, by their link) for release by the loop. */
void ch_cmds_release(ch_bridge_t *b, ch_list_t *msgs);
/* Commands and releases still queued, and the pool (ch_bridge_free). */
void ch_cmds_free(ch_bridge_t *b);
/* Count off the posts the loop finished; wake the posters that may go on. */
void ch_cmds_posts_done(ch_bridge_t *b);
/* Queue a send; with wait set, the result goes to a ch_wait_t (*wait)
 * instead of an event. */
int ch_submit(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
              const char *data, size_t data_len, const char *header,
              size_t header_len, const uint8_t *identity, int flags,
              ch_wait_t **wait);

/* events.c, [mu] */
int ch_events_init(ch_bridge_t *b);
void ch_events_free(ch_bridge_t *b);
int ch_events_reserve(ch_bridge_t *b, size_t n);
void ch_events_unreserve(ch_bridge_t *b, size_t n);
/* An event into reserved space (successes are merged). */
void ch_events_push(ch_bridge_t *b, int type, int status, uint64_t token,
                    ch_message_t *msg, const char *detail);
/* The successes token .. token + count - 1, into reserved space. */
void ch_events_push_ok(ch_bridge_t *b, uint64_t token, uint64_t count);
/* Wake the poller if it should look now (not while it gathers). */
void ch_events_signal(ch_bridge_t *b);

/* requests.c, [mu] */
int ch_reqtab_init(ch_bridge_t *b);
void ch_reqtab_free(ch_bridge_t *b);
/* Track a request (req allocated by the caller, without the lock). */
void ch_reqtab_add(ch_bridge_t *b, ch_req_t *req,
                   const uint8_t identity[CH_ID_SIZE], uint64_t token,
                   ch_wait_t *waiter);
/* A wait's result is in: wake its waiter, or list it if announced. */
void ch_wait_finish(ch_bridge_t *b, ch_wait_t *w, int status,
                    const char *detail);
/* A request's send failed: no reply will come. */
void ch_requests_send_failed(ch_bridge_t *b,
                             const uint8_t identity[CH_ID_SIZE]);
#define CH_REPLY_NONE 0    /* not a reply: a message for recv */
#define CH_REPLY_TAKEN 1   /* handed to its waiter or an event */
#define CH_REPLY_DROPPED 2 /* nobody waits for it: release it */
int ch_requests_match(ch_bridge_t *b, ch_message_t *msg);
/* The node closed: every request still pending fails. */
void ch_requests_close(ch_bridge_t *b);

/* receive.c */
int ch_recvq_init(ch_bridge_t *b);
void ch_recvq_free(ch_bridge_t *b);
/* [loop] the node's receive callback. */
void ch_recv_message(ch_node_t *node, ch_message_t *msg);
/* [mu] wake receivers (after a turn of the loop delivered messages). */
void ch_recvq_signal(ch_bridge_t *b);

/* loop.c, [loop] */
void ch_loop_main(void *arg);
/* The node's ch_peer_cb: a CH_EV_PEER event. */
void ch_loop_peer(ch_node_t *node, const ch_peer_event_t *ev,
                  const char *detail);
/* The callbacks of a command's send and of a batch's sends. */
void ch_send_done(ch_send_t *s, int status, const char *detail);
void ch_batch_done(ch_send_t *s, int status, const char *detail);
int ch_loop_handles_init(ch_bridge_t *b);
void ch_loop_handles_close(ch_bridge_t *b);

#endif
