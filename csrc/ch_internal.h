/* ch_internal.h - the core's private types, shared by node, conn, writer
 * and remote.  Ownership:
 *   node   owns listeners, the timer, all connections and all remotes;
 *   conn   owns its slots and read buffer (one allocation); it is freed
 *          when its handle is closed and no slot is held by the app;
 *   remote owns nothing: it links the sends queued for it (owned by their
 *          callers until the callback) and points at its current conn. */
#ifndef CH_INTERNAL_H
#define CH_INTERNAL_H

#include <stdint.h>

#include "ch_wire.h"
#include "chirp.h"

#define CH_INLINE_SIZE 1024   /* slot buffer for small messages */
#define CH_BATCH_MSGS 64      /* messages per coalesced write */
#define CH_TLS_BATCH (256u * 1024u) /* TLS: stop adding messages at this
                                       size, so that encrypting the next
                                       batch overlaps sending this one */
#define CH_DIRECT_READ 16384  /* payloads this big are read in place */
#define CH_BIG_SLOTS 8                    /* freed big buffers kept ... */
#define CH_BIG_KEEP (8u * 1024u * 1024u)  /* ... up to this many bytes */

/* Random chirp identities end in these 4 bytes.  libchirp 1.2 drops ACKs
 * when several REQ_ACK messages are in flight, so a synchronous node keeps
 * one in flight per remote unless the remote's identity says "chirp". */
#define CH_ID_MAGIC "\xc4\x1a\x9b\x2e"
int ch_identity_is_chirp(const uint8_t id[CH_ID_SIZE]);

/* A ring of bytes for received messages copied out of their slots
 * (inbox.c); the caller locks. */
typedef struct ch_inbox {
    uint8_t *buf;
    size_t cap;
    size_t head; /* the oldest block not yet reclaimed */
    size_t tail; /* where the next block goes */
    size_t used; /* bytes from head to tail (gaps included) */
    int wrapped; /* tail is before head */
} ch_inbox_t;
int ch_inbox_init(ch_inbox_t *in, size_t cap);
void ch_inbox_free(ch_inbox_t *in);
/* n bytes, 8-aligned, or NULL when they do not fit now. */
void *ch_inbox_alloc(ch_inbox_t *in, size_t n);
/* Give back what ch_inbox_alloc returned (in any order). */
void ch_inbox_give_back(ch_inbox_t *in, void *p);

/* ch_send_t.state_ */
#define CH_SS_NEW 0
#define CH_SS_QUEUED 1
#define CH_SS_WRITING 2
#define CH_SS_INFLIGHT 3
#define CH_SS_DONE 4

/* ch_message_t.state_ */
#define CH_MS_FREE 0
#define CH_MS_FILLING 1
#define CH_MS_APP 2
#define CH_MS_ACKQ 3
#define CH_MS_ACKWRITE 4
#define CH_MS_INBOX 5 /* a copy in the bridge's inbox, no slot of its own */

/* conn states */
#define CH_CS_CONNECTING 0
#define CH_CS_HANDSHAKE 1
#define CH_CS_READY 2
#define CH_CS_CLOSING 3
#define CH_CS_TLS 4 /* TLS handshake before the chirp handshake */

typedef struct ch_sendq {
    ch_send_t *head;
    ch_send_t *tail;
    size_t len;
} ch_sendq_t;

typedef struct ch_remote {
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t port;
    struct ch_remote *hnext;
    ch_conn_t *conn;    /* current ready connection, or NULL */
    ch_conn_t *pending; /* outgoing connection being set up */
    ch_sendq_t queue;   /* not yet written */
    ch_sendq_t inflight; /* written, waiting for the ACK (synchronous) */
    uint32_t serial;
    int nconns;
    int window; /* synchronous: messages in flight at most */
} ch_remote_t;

struct ch_conn {
    ch_node_t *node;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct ch_conn *cnext;
    struct ch_conn *cprev;
    int state;
    int outgoing;
    int handle_closed;
    int writing;
    int stalled;
    int pumping; /* in pump(): a slot freed meanwhile is taken by it, so
                  * ch_conn_slot_free does not resume (no recursion) */
    int encrypted;
    int draining; /* node closing: close once the queued ACKs are out */
    ch_remote_t *remote;
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t peer_port; /* TCP port of the peer */
    uint8_t remote_identity[CH_ID_SIZE];
    ch_reader_t reader;
    ch_message_t *cur; /* the slot being filled */
    uint8_t *rbuf;
    size_t rbuf_size;
    size_t rpos;
    size_t rlen;
    int nslots;
    int slots_busy;
    ch_message_t *slots;
    uint8_t *inline_bufs;
    ch_message_t *ack_head; /* released slots whose ACK waits */
    ch_message_t *ack_tail;
    /* the write in progress */
    uv_buf_t *iov;
    int iov_cap;
    ch_send_t *wmsgs[CH_BATCH_MSGS];
    int wcount;
    ch_message_t *wacks[CH_MAX_SLOTS];
    int wacks_n;
    int inflight;
    uint64_t written; /* messages this node wrote on the connection */
    /* TLS (tls.c); NULL/0 on plaintext connections */
    struct ssl_st *ssl;
    uint8_t *cbuf; /* ciphertext read buffer */
    const uint8_t *tin; /* received ciphertext OpenSSL has not taken yet */
    size_t tin_len;
    /* Ciphertext out, two buffers: OpenSSL appends to tls_out[tls_cur]
     * while the other one may be being written. */
    uint8_t *tls_out[2];
    size_t tls_out_cap[2];
    size_t tls_out_len;
    int tls_cur;
    int tls_nomem; /* the BIO could not grow tls_out: CH_ENOMEM */
    int tls_done;
    uint8_t hs_out[CH_HANDSHAKE_SIZE];
    uint8_t noop_hdr[CH_HEADER_SIZE];
    uint64_t last_activity;
    uint64_t deadline;
    int close_status;
    char close_detail[CH_DETAIL_SIZE];
    struct ch_conn *flush_next; /* on the node's list while corked */
    int flush_listed;
};

struct ch_node {
    uv_loop_t *loop;
    ch_config_t cfg;
    ch_recv_cb on_msg;
    ch_closed_cb on_closed;
    void *user_data;
    uint8_t identity[CH_ID_SIZE];
    uint16_t port;
    uv_tcp_t listen4;
    uv_tcp_t listen6;
    int has4;
    int has6;
    uv_timer_t timer;
    uv_tcp_t drop;    /* accepts and closes a connection with no memory */
    int drop_busy;
    uv_stream_t *drop_pending[2];
    int closing;
    int timer_closed;
    uint64_t drain_deadline;
    int handles_open;
    /* freed big message buffers kept for the next ones (node.c) */
    uint8_t *big[CH_BIG_SLOTS];
    uint32_t bigcap[CH_BIG_SLOTS];
    int nbig;
    size_t bigbytes;
    int big_used; /* since the last timer tick */
    ch_remote_t **buckets;
    size_t nbuckets;
    size_t nremotes;
    ch_conn_t *conns;
    size_t nconns;
    uint64_t rng[2];
    struct ssl_ctx_st *tls_ctx; /* NULL: no certificate, plaintext only */
    uint64_t timeout_ms;
    uint64_t connect_timeout_ms;
    uint64_t gc_ms;
    uint64_t noop_ms;
    int corked;             /* ch_node_cork depth: sends only queue */
    ch_conn_t *flush_head;  /* connections to write at ch_node_uncork */
};

/* alloc.c */
void *ch_malloc(size_t size);
void *ch_calloc(size_t n, size_t size);
void *ch_realloc(void *p, size_t size);
void ch_free(void *p);

/* node.c */
uint64_t ch_now(ch_node_t *node);
void ch_node_unlist(ch_node_t *node, ch_conn_t *c);
void ch_random_id(ch_node_t *node, uint8_t out[CH_ID_SIZE]);
uint64_t ch_rng_next(uint64_t s[2]);
void ch_rng_id(uint64_t s[2], uint8_t out[CH_ID_SIZE]);
void ch_node_handle_closed(ch_node_t *node);
void ch_node_check_drained(ch_node_t *node);
uint8_t *ch_node_big_alloc(ch_node_t *node, uint32_t size, uint32_t *cap);
void ch_node_big_free(ch_node_t *node, uint8_t *buf, uint32_t cap);

/* remote.c */
ch_remote_t *ch_remote_get(ch_node_t *node, uint8_t ip_protocol,
                           const uint8_t address[16], uint16_t port,
                           int create);
void ch_remote_fail_queue(ch_remote_t *remote, int status,
                          const char *detail);
void ch_remote_gc(ch_node_t *node);
void ch_remotes_free(ch_node_t *node);
void ch_sendq_push(ch_sendq_t *q, ch_send_t *s);
void ch_sendq_remove(ch_sendq_t *q, ch_send_t *s);
ch_send_t *ch_sendq_pop(ch_sendq_t *q);

/* conn.c */
int ch_conn_connect(ch_node_t *node, ch_remote_t *remote);
void ch_conn_accept(ch_node_t *node, uv_stream_t *server);
void ch_conn_close(ch_conn_t *conn, int status, const char *detail);
void ch_conn_tick(ch_conn_t *conn, uint64_t now);
void ch_conn_slot_free(ch_conn_t *conn, ch_message_t *msg);
void ch_conn_resume(ch_conn_t *conn);
void ch_conn_release(ch_conn_t *conn, ch_message_t *msg);
void ch_conn_free(ch_conn_t *conn);
int ch_is_loopback(uint8_t ip_protocol, const uint8_t address[16]);

/* tls.c */
int ch_tls_ctx_new(const ch_config_t *cfg, struct ssl_ctx_st **out,
                   char *err, size_t errlen);
void ch_tls_ctx_free(struct ssl_ctx_st *ctx);
int ch_tls_conn_init(ch_conn_t *c, int server);
void ch_tls_conn_free(ch_conn_t *c);
/* Ciphertext just read into the buffer ch_tls_read_buffer gave (it
 * stays there until OpenSSL takes it). */
void ch_tls_feed(ch_conn_t *c, const uint8_t *data, size_t len);
/* Where to read ciphertext to: the connection's buffer, after what
 * OpenSSL has not taken yet. */
void ch_tls_read_buffer(ch_conn_t *c, uv_buf_t *buf);
int ch_tls_handshake(ch_conn_t *c, char *why, size_t whylen);
int ch_tls_read(ch_conn_t *c, uint8_t *out, size_t cap, char *why,
                size_t whylen);
size_t ch_tls_pending(ch_conn_t *c);
int ch_tls_write(ch_conn_t *c, const uv_buf_t *bufs, int n);
/* Not writing: let go of a ciphertext buffer grown by a big message. */
void ch_tls_trim(ch_conn_t *c);
int ch_tls_encrypt(ch_conn_t *c, const uv_buf_t *bufs, int n, uv_buf_t *out);
void ch_tls_shutdown(ch_conn_t *c);

/* writer.c */
void ch_writer_flush_tls(ch_conn_t *conn);
void ch_send_complete(ch_send_t *s, int status, const char *detail);
void ch_writer_flush(ch_conn_t *conn);
int ch_writer_start(ch_conn_t *conn, uv_buf_t *bufs, int n);
void ch_writer_ack_received(ch_conn_t *conn, const uint8_t id[CH_ID_SIZE]);
void ch_writer_conn_closed(ch_conn_t *conn);
void ch_writer_tick(ch_remote_t *remote, uint64_t now);

#endif
