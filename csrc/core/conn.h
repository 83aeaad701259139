/* core/conn.h - a node's connections: connect, accept, the handshake and
 * the capability frame, the read path into the slot pool, the writer,
 * idle and handshake timeouts, close and free.
 *
 * The node owns one ch_conns_t: it fills in the first block (what every
 * connection needs from it) and the callbacks; the rest is this module's
 * (conn.c, conn_read.c, conn_write.c), which owns every connection: a
 * connection is freed when its handle is closed and the application
 * holds none of its slots.  Loop thread only. */
#ifndef CH_CONN_H
#define CH_CONN_H

#include <stdint.h>

#include <uv.h>

#include "chirp.h"
#include "chirp_testing.h"
#include "core/remote.h"
#include "tls/tls.h"
#include "util/bufcache.h"
#include "util/queue.h"
#include "util/rng.h"

typedef struct ch_conns ch_conns_t;

/* One write coalesces at most this many messages (and, in plaintext, stops
 * adding after CH_WRITE_BYTES): 64 gave 6.5-6.9M msg/s in the two-process
 * C stream, 256 gave 12.3-12.4M (bench/c_stream.c). */
#define CH_BATCH_MSGS 256
#define CH_WRITE_BYTES (4u * 1024u * 1024u)
#define CH_BATCH_ACKS 256
/* A write's vector: the capability frame, a NOOP, each ACK with its
 * reason, each message's three parts. */
#define CH_IOV_CAP (3 * CH_BATCH_MSGS + 2 * CH_BATCH_ACKS + 3)

struct ch_conns {
    /* Set by the owner before the first connection, then read only. */
    uv_loop_t *loop;
    const ch_config_t *cfg;  /* checked */
    ch_tls_ctx_t *tls;       /* NULL: plaintext only */
    ch_bufcache_t *bufs;     /* big message buffers */
    ch_rng_t *rng;           /* NOOP identities */
    ch_remotes_t *remotes;
    uint16_t port;           /* announced in the handshake */
    const uint8_t *identity; /* announced in the handshake */
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    uint64_t gc_ms;          /* idle connections are closed after this */
    uint64_t noop_ms;        /* a NOOP goes first after this long idle */
    /* A message arrived: the application's callback, called with node
     * (the application releases the message). */
    ch_recv_cb on_msg;
    ch_node_t *node;
    /* A connection became ready, closed or was refused (or NULL). */
    ch_peer_cb on_peer;
    /* The node's counters, kept by this module and the remotes'. */
    ch_stats_t *stats;
    /* A connection's handle closed (open_handles went down by one). */
    void (*on_handle_closed)(ch_conns_t *cs);
    /* While closing: a connection began to close. */
    void (*on_closing)(ch_conns_t *cs);
    /* This module's. */
    ch_list_t all;       /* every connection */
    ch_list_t flush;     /* corked: connections to write at uncork */
    ch_list_t mem_wait;  /* connections waiting for max_memory, in order */
    uint64_t mem_used;   /* bytes of big message buffers held */
    int mem_waking;      /* in ch_conns_memory_freed */
    int corked;
    int flushing; /* building a write: a flush meanwhile waits in flush */
    int closing;
    int open_handles;
    uint64_t drain_deadline;
    char close_detail[CH_DETAIL_SIZE]; /* why what is left fails */
    /* The vector of the write being built: libuv copies it and TLS
     * encrypts it before ch_conn_write returns, so one serves every
     * connection (none keeps 13 KiB of its own). */
    uv_buf_t iov[CH_IOV_CAP];
};

/* Before the first connection (after the owner's block is filled). */
void ch_conns_init(ch_conns_t *cs);
/* Big message buffers were given back: connections waiting for
 * max_memory go on, in order, as far as it allows (conn_read.c). */
void ch_conns_memory_freed(ch_conns_t *cs);
/* Accept a connection from server: CH_OK, or CH_ENOMEM when there is no
 * memory for it (it is not accepted: the caller must accept and drop it,
 * or the listener stops accepting). */
int ch_conn_accept(ch_conns_t *cs, uv_stream_t *server);
/* Sends were queued on r: write them, or connect to r first.  A failure
 * to connect fails them (through their callbacks). */
void ch_conns_kick(ch_conns_t *cs, ch_remote_t *r);
/* Hold back writing (nests); uncork writes each connection once. */
void ch_conns_cork(ch_conns_t *cs);
void ch_conns_uncork(ch_conns_t *cs);
/* The application released a message (a second release does nothing). */
void ch_conn_release(ch_message_t *msg);
/* The application rejected a message (see ch_node_reject). */
void ch_conn_reject(ch_message_t *msg, const char *reason);
/* The timer: send timeouts, connect, handshake and idle timeouts. */
void ch_conns_tick(ch_conns_t *cs, uint64_t now);
/* The node closes: connections with ACKs to write (or a write in
 * progress) drain them for up to drain_ms, the others close now; what
 * still waits for an ACK fails with detail. */
void ch_conns_close(ch_conns_t *cs, const char *detail, uint64_t drain_ms);
/* 1 when every connection is closing. */
int ch_conns_all_closing(const ch_conns_t *cs);
/* The remotes, up to max into out; returns how many there are. */
int ch_conns_peers(ch_conns_t *cs, ch_peer_info_t *out, int max);
/* Free every connection (the node is freed; handles are closed). */
void ch_conns_free(ch_conns_t *cs);
/* chirp_testing.h: close r's current connection if it is writing; what
 * r's current connection is doing. */
int ch_conns_testing_close(ch_conns_t *cs, ch_remote_t *r);
void ch_conns_testing_state(ch_conns_t *cs, ch_remote_t *r,
                            ch_testing_remote_t *out);

#endif
