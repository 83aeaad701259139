/* core/remote.h - the remotes (IP version, address, port) a node talks
 * to: a hashed table, each remote with the queue of sends not yet
 * written and the list of sends waiting for their ACK.  A remote owns
 * nothing: the sends are their callers', the connections the connection
 * set's; it points at its current connection.  Loop thread only. */
#ifndef CH_REMOTE_H
#define CH_REMOTE_H

#include <stdint.h>

#include "chirp.h"
#include "core/send.h"
#include "util/alloc.h"
#include "util/htable.h"
#include "util/queue.h"

typedef struct ch_remotes ch_remotes_t;

typedef struct ch_remote {
    ch_remotes_t *table;
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t port;
    ch_link_t hlink;     /* in its table bucket */
    ch_conn_t *conn;     /* the current ready connection, or NULL */
    ch_conn_t *pending;  /* an outgoing connection being set up, or NULL */
    ch_list_t queue;     /* sends not yet written */
    ch_list_t inflight;  /* written, waiting for the ACK (synchronous) */
    uint32_t serial;     /* of the last message written to it */
    int nconns;          /* connections that belong to it */
    uint32_t max_msg_size; /* what it announced (capability); 0: unknown */
    uint64_t sent;       /* messages written to it */
    uint64_t received;   /* messages received from it */
} ch_remote_t;

struct ch_remotes {
    ch_htable_t table; /* of ch_remote_t, by hlink */
    size_t sends;      /* accepted and not completed, on every remote */
    ch_stats_t *stats; /* the node's: failed sends are counted here */
    /* If set: called when sends drops to 0 (a closing node waits). */
    void (*on_idle)(ch_remotes_t *t);
    struct ch_remote *last; /* the one ch_remote_get found last, or NULL */
};

/* CH_OK or CH_ENOMEM. */
int ch_remotes_init(ch_remotes_t *t);
/* Free every remote and the table. */
void ch_remotes_free(ch_remotes_t *t);
/* The remote for (ip_protocol, address, port); made if create is set
 * (NULL when there is no memory for it). */
ch_remote_t *ch_remote_get(ch_remotes_t *t, uint8_t ip_protocol,
                           const uint8_t address[16], uint16_t port,
                           int create);
/* Call fn on every remote (fn must not free any). */
void ch_remotes_each(ch_remotes_t *t, void (*fn)(ch_remote_t *, void *),
                     void *arg);
/* Free the remotes nothing refers to any more. */
void ch_remotes_gc(ch_remotes_t *t);

/* Fail every queued send (not those in flight). */
void ch_remote_fail_queue(ch_remote_t *r, int status, const char *detail);
/* Fail the queued sends whose deadline passed. */
void ch_remote_expire_queue(ch_remote_t *r, uint64_t now);
/* The send in flight with this identity, or NULL. */
ch_send_t *ch_remote_inflight_find(ch_remote_t *r,
                                   const uint8_t identity[CH_ID_SIZE]);

/* The small ones, inline: each runs once or twice per message. */

/* A send failed with status: count it by cause. */
static inline void ch_stats_failed(ch_stats_t *st, int status)
{
    st->sends_failed++;
    switch (status) {
    case CH_ETIMEDOUT:
        st->sends_failed_timeout++;
        break;
    case CH_ECONN:
        st->sends_failed_connection++;
        break;
    case CH_ETLS:
        st->sends_failed_tls++;
        break;
    case CH_EMSGSIZE:
        st->sends_failed_size++;
        break;
    case CH_ECLOSED:
        st->sends_failed_closed++;
        break;
    case CH_EREJECTED:
        st->sends_failed_rejected++;
        break;
    default:
        st->sends_failed_other++;
    }
}

/* Queue a send (its deadline set): it is pending until completed. */
static inline void ch_remote_queue(ch_remote_t *r, ch_send_t *s)
{
    r->table->sends++;
    s->remote_ = r;
    s->conn_ = NULL;
    s->acked_ = 0;
    s->state_ = CH_SS_QUEUED;
    ch_list_push(&r->queue, &s->link_);
}

/* Complete a send (once): its callback runs with the status and a detail
 * ("" on success; the error's meaning when none is given). */
static inline void ch_remote_complete(ch_send_t *s, int status,
                                      const char *detail)
{
    ch_remotes_t *t = s->remote_->table;
    if (s->why_ != NULL) { /* a reject's detail (conn_write.c) */
        ch_free(s->why_);
        s->why_ = NULL;
    }
    s->state_ = CH_SS_DONE;
    s->remote_ = NULL;
    s->conn_ = NULL;
    if (detail == NULL || (status != CH_OK && detail[0] == '\0'))
        detail = status == CH_OK ? "" : ch_strerror(status);
    if (status != CH_OK)
        ch_stats_failed(t->stats, status);
    s->cb(s, status, detail);
    if (--t->sends == 0 && t->on_idle != NULL)
        t->on_idle(t);
}

/* The next queued send to write, or NULL. */
static inline ch_send_t *ch_remote_next(ch_remote_t *r)
{
    return ch_send_of(ch_list_pop(&r->queue));
}

/* A synchronous send was written / is done waiting for its ACK. */
static inline void ch_remote_inflight_add(ch_remote_t *r, ch_send_t *s)
{
    ch_list_push(&r->inflight, &s->link_);
}

static inline void ch_remote_inflight_remove(ch_remote_t *r, ch_send_t *s)
{
    ch_list_remove(&r->inflight, &s->link_);
}

static inline uint32_t ch_remote_next_serial(ch_remote_t *r)
{
    return ++r->serial;
}

/* Connections: one more / one less belongs to r; the current and the
 * pending one. */
static inline void ch_remote_attach(ch_remote_t *r)
{
    r->nconns++;
}

static inline void ch_remote_detach(ch_remote_t *r)
{
    r->nconns--;
}

static inline void ch_remote_set_current(ch_remote_t *r, ch_conn_t *c)
{
    r->conn = c;
}

static inline void ch_remote_set_pending(ch_remote_t *r, ch_conn_t *c)
{
    r->pending = c;
}

/* The largest message the remote takes, as it announced (0: unknown). */
static inline void ch_remote_set_max_msg_size(ch_remote_t *r, uint32_t n)
{
    r->max_msg_size = n;
}

#endif
