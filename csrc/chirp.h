/* chirp.h - the public C API of the chirp core.
 *
 * A node listens for TCP connections, sends messages to remotes
 * (IP version, address, port) and hands received messages to the
 * application, which releases them when done.  The wire protocol is
 * libchirp 1.2's.  Everything in the "loop API" must be called on the
 * node's libuv loop thread; the "bridge API" runs a node on a loop thread
 * of its own and is safe to call from any thread.
 *
 * Errors are negative codes (ch_strerror() names them); a function that
 * can fail returns one, and a runtime failure never aborts the process.
 */
#ifndef CHIRP_H
#define CHIRP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CH_ID_SIZE 16
#define CH_HANDSHAKE_SIZE 18
#define CH_HEADER_SIZE 27
#define CH_MAX_SLOTS 32
#define CH_DETAIL_SIZE 256

/* Message type bits (wire byte 26). */
#define CH_MSG_REQ_ACK 1
#define CH_MSG_ACK 2
#define CH_MSG_NOOP 4

/* Error codes. */
#define CH_OK 0
#define CH_EINVAL (-1)    /* invalid argument or configuration value */
#define CH_ENOMEM (-2)    /* an allocation failed */
#define CH_ETIMEDOUT (-3) /* send, connect or handshake timeout */
#define CH_ECONN (-4)     /* connection failed or lost */
#define CH_EPROTO (-5)    /* protocol violation by a peer */
#define CH_ECLOSED (-6)   /* the node is closed or closing */
#define CH_ETLS (-7)      /* TLS failure */
#define CH_EADDR (-8)     /* address problem: bind, listen, bad address */
#define CH_EMSGSIZE (-9)  /* message larger than max_msg_size */
#define CH_EAGAIN (-10)   /* nothing available (yet) */

/* The name and meaning of an error code. */
const char *ch_strerror(int err);
const char *ch_errname(int err);

/* ------------------------------------------------------------------ config */

typedef struct ch_config {
    uint16_t port;        /* listening port; 0 = the OS picks (default 2998) */
    double timeout;       /* send timeout in seconds (default 5) */
    double reuse_time;    /* idle connection lifetime in seconds (default 30) */
    int max_slots;        /* receive slots per connection, 1..32 (default 16) */
    int synchronous;      /* 1: messages are acknowledged (default 1) */
    uint32_t buffer_size; /* per-connection read buffer; 0 = 65536 */
    uint32_t max_msg_size; /* header + data limit (default 100 MiB) */
    char bind_v4[64];     /* IPv4 bind address, "" = do not listen on IPv4 */
    char bind_v6[64];     /* IPv6 bind address, "" = do not listen on IPv6 */
    uint8_t identity[CH_ID_SIZE];
    int has_identity;     /* 0: a random identity is chosen */
    int backlog;          /* listen backlog (default 100) */
    int disable_encryption;
    const char *cert_chain_pem; /* path or NULL */
    const char *dh_params_pem;  /* path or NULL */
    int max_inflight;     /* synchronous: unacknowledged messages per chirp
                             remote (libchirp remotes: 1, see conn.c) */
    int spin_us;          /* bridge: microseconds a waiting thread (and the
                             loop thread after a wake-up) keeps polling
                             before it sleeps, 0..100000 (default 50) */
} ch_config_t;

/* Fill a config with the defaults. */
void ch_config_init(ch_config_t *config);
/* CH_OK or CH_EINVAL, with a message naming the bad option in err. */
int ch_config_check(const ch_config_t *config, char *err, size_t errlen);

/* ---------------------------------------------------------------- messages */

typedef struct ch_node ch_node_t;
typedef struct ch_conn ch_conn_t;

/* A received message.  It lives in a slot of the connection it came on
 * and stays valid until ch_node_release() (or the node is freed). */
typedef struct ch_message {
    uint8_t identity[CH_ID_SIZE];
    uint32_t serial;
    uint8_t type;
    uint16_t header_len;
    uint32_t data_len;
    uint8_t *header;
    uint8_t *data;
    uint8_t ip_protocol; /* 4 or 6 */
    uint8_t address[16]; /* IPv4 in the first 4 bytes */
    uint16_t port;       /* the sender's listening port */
    uint8_t remote_identity[CH_ID_SIZE];
    void *user_data;
    /* private */
    ch_conn_t *conn_;
    uint8_t *buf_;
    uint32_t bufcap_; /* a big buffer's size (see ch_node_big_alloc) */
    struct ch_message *next_;
    uint8_t state_;
    uint8_t index_;
    uint8_t ack_hdr_[CH_HEADER_SIZE];
} ch_message_t;

typedef struct ch_send ch_send_t;
/* Called exactly once per accepted send: status CH_OK or an error code, and
 * a human-readable detail ("" on success). */
typedef void (*ch_send_cb)(ch_send_t *req, int status, const char *detail);

/* An outgoing message.  The caller owns it and the buffers it points to
 * until its callback has run. */
struct ch_send {
    uint8_t identity[CH_ID_SIZE]; /* see ch_send_init; keep for replies */
    const uint8_t *header;
    uint32_t header_len;
    const uint8_t *data;
    uint32_t data_len;
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t port;
    ch_send_cb cb;
    void *user_data;
    /* private */
    struct ch_send *next_;
    struct ch_send *prev_;
    struct ch_remote *remote_;
    ch_conn_t *conn_;
    uint64_t deadline_;
    uint32_t serial_;
    uint8_t type_;
    uint8_t state_;
    uint8_t acked_;
    uint8_t has_identity_;
    uint8_t hdr_[CH_HEADER_SIZE];
};

/* Prepare a send: zero it; the identity is chosen at send time unless
 * ch_send_set_identity() is called (replies keep the request's identity). */
void ch_send_init(ch_send_t *req);
void ch_send_set_identity(ch_send_t *req, const uint8_t identity[CH_ID_SIZE]);
/* Parse "1.2.3.4" or "::1" into ip_protocol/address. */
int ch_parse_address(const char *text, uint8_t *ip_protocol,
                     uint8_t address[16]);
/* Format an address; out must hold 64 bytes. */
void ch_format_address(uint8_t ip_protocol, const uint8_t address[16],
                       char *out, size_t outlen);

/* ---------------------------------------------------------------- loop API */

typedef void (*ch_recv_cb)(ch_node_t *node, ch_message_t *msg);
typedef void (*ch_closed_cb)(ch_node_t *node);

/* Create a node on loop: checks the config, binds and listens.  On failure
 * returns an error with a message in err and creates nothing.  If the
 * program left SIGPIPE at its default (terminate), it is set to be
 * ignored: a peer closing a connection mid-write must cost that
 * connection (EPIPE), not the process. */
int ch_node_new(uv_loop_t *loop, const ch_config_t *config, ch_recv_cb on_msg,
                void *user_data, ch_node_t **out, char *err, size_t errlen);
void *ch_node_user_data(ch_node_t *node);
uint16_t ch_node_port(const ch_node_t *node);
const uint8_t *ch_node_identity(const ch_node_t *node);
/* Queue a message.  CH_OK: req->cb runs exactly once later.  An error code:
 * nothing was queued and the callback will not run. */
int ch_node_send(ch_node_t *node, ch_send_t *req);
/* Hold back writing while many sends are queued in one go (from one
 * callback; calls nest): ch_node_uncork then writes each connection's
 * queue at once, many messages per write, instead of the first message
 * alone and the rest after it. */
void ch_node_cork(ch_node_t *node);
void ch_node_uncork(ch_node_t *node);
/* Give a received message's slot back (sends the ACK if one was asked). */
void ch_node_release(ch_node_t *node, ch_message_t *msg);
/* Close: every pending send fails with CH_ECLOSED, connections and
 * listeners close; on_closed runs when all handles are closed, after which
 * ch_node_free() frees the node (messages not released become invalid). */
void ch_node_close(ch_node_t *node, ch_closed_cb on_closed);
void ch_node_free(ch_node_t *node);

/* -------------------------------------------------------------- bridge API */

typedef struct ch_bridge ch_bridge_t;

#define CH_EV_SEND 1  /* a send finished: token, status, detail */
#define CH_EV_REPLY 2 /* the reply to a request: token, msg */
#define CH_EV_CLOSED 3 /* the node is closed; no events follow */

typedef struct ch_event {
    int type;
    int status;
    uint64_t token;
    /* CH_EV_SEND with status CH_OK: the sends token .. token + count - 1
     * all succeeded (consecutive successes are merged into one event);
     * otherwise 1. */
    uint64_t count;
    ch_message_t *msg;
    char detail[CH_DETAIL_SIZE];
} ch_event_t;

/* Flags for ch_bridge_send. */
#define CH_SEND_IDENTITY 1 /* use the given identity (a reply) */
#define CH_SEND_REQUEST 2  /* route the message with this identity back as
                              a CH_EV_REPLY event instead of a message */
#define CH_SEND_NOCOPY 4   /* ch_bridge_send: the data is not copied; it must
                              stay valid and unchanged until the send's
                              CH_EV_SEND event (big messages) */

/* Start a node on a loop thread of its own. */
int ch_bridge_open(const ch_config_t *config, ch_bridge_t **out, char *err,
                   size_t errlen);
uint16_t ch_bridge_port(ch_bridge_t *b);
void ch_bridge_identity(ch_bridge_t *b, uint8_t out[CH_ID_SIZE]);
/* Copy a message and queue it.  Its completion arrives as a CH_EV_SEND
 * event with the token (and a CH_EV_REPLY for requests).  Returns CH_OK,
 * CH_ENOMEM, CH_EINVAL or CH_ECLOSED (then no event follows). */
int ch_bridge_send(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                   const uint8_t *address, uint16_t port, const char *header,
                   size_t header_len, const char *data, size_t data_len,
                   const uint8_t *identity, int flags);
/* A destination for ch_bridge_post, filled once per remote by the caller. */
typedef struct ch_dest {
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t port;
} ch_dest_t;
/* ch_bridge_send for the common case (no identity, no flags), with fewer
 * arguments: each costs in a binding like cffi. */
int ch_bridge_post(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                   const char *data, size_t data_len, const char *header,
                   size_t header_len);
/* Like ch_bridge_send, but the calling thread waits for the result
 * (returned: CH_OK or the error, detail filled) instead of an event.  If
 * it is still pending after timeout_ms (-1: no limit), CH_EAGAIN is
 * returned with *pending set: go on with ch_bridge_wait(), or stop waiting
 * with ch_bridge_abandon(); *pending becomes NULL once the result is taken.
 * A request's reply still comes as an event. */
int ch_bridge_send_wait(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *data, size_t data_len,
                        const uint8_t *identity, int flags, int timeout_ms,
                        void **pending, char *detail, size_t detail_len);
int ch_bridge_wait(ch_bridge_t *b, void **pending, int timeout_ms,
                   char *detail, size_t detail_len);
void ch_bridge_abandon(ch_bridge_t *b, void *pending);
/* Send a request and wait in the calling thread for its reply (*reply,
 * released with ch_bridge_release), or its failure.  CH_EAGAIN after
 * timeout_ms: go on with ch_bridge_wait_reply() or ch_bridge_abandon(). */
int ch_bridge_request_wait(ch_bridge_t *b, uint8_t ip_protocol,
                           const uint8_t *address, uint16_t port,
                           const char *header, size_t header_len,
                           const char *data, size_t data_len,
                           int timeout_ms, void **pending,
                           ch_message_t **reply, char *detail,
                           size_t detail_len);
int ch_bridge_wait_reply(ch_bridge_t *b, void **pending, int timeout_ms,
                         ch_message_t **reply, char *detail,
                         size_t detail_len);

/* Copy n messages (data concatenated, lens[i] bytes each, one header for
 * all) to one remote and queue them in one step; one CH_EV_SEND event with
 * the token reports the batch: CH_OK, or the first error and how many
 * failed.  flags: 0 or CH_SEND_NOCOPY (data is referenced, not copied,
 * until that event).  Same returns as ch_bridge_send. */
int ch_bridge_send_many(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *data, const size_t *lens, int n,
                        int flags);
/* ch_bridge_send_many with the messages where they are (datas[i],
 * lens[i] bytes; never copied, so they must stay valid and unchanged until
 * the batch's event): big messages need no joined copy. */
int ch_bridge_send_each(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *const *datas, const size_t *lens, int n);
/* Forget a request's pending reply. */
void ch_bridge_cancel(ch_bridge_t *b, uint64_t token);
/* Wait up to timeout_ms (-1: forever) for received messages; returns how
 * many were stored in out (> 0), CH_ETIMEDOUT or CH_ECLOSED. */
int ch_bridge_recv(ch_bridge_t *b, ch_message_t **out, int max,
                   int timeout_ms);
/* What ch_bridge_recv_copy stores per message (six 32-bit fields, so
 * that Python can unpack them in one step); the bytes are in the caller's
 * buffer at offset: identity, remote identity, address (16 bytes each),
 * then header_len bytes of header, then data_len bytes of data. */
typedef struct ch_msg_meta {
    uint32_t offset;
    uint32_t serial;
    uint32_t data_len;
    uint32_t header_len;
    uint32_t port;
    uint32_t flags; /* ip_protocol, and CH_META_SAME_SOURCE */
} ch_msg_meta_t;
/* The message comes from the same remote (address, port, protocol and
 * remote identity) as the one before it in this batch. */
#define CH_META_SAME_SOURCE 0x100
/* Like ch_bridge_recv, but copies the messages into buf and releases them
 * at once (for auto-release receivers: the connection refills while the
 * caller works).  Returns the count, with *used set to the bytes of buf
 * filled; 0 with *used set to the size the first message needs when even
 * it does not fit in buflen (at most 4 GiB are used). */
int ch_bridge_recv_copy(ch_bridge_t *b, ch_msg_meta_t *meta, int max,
                        char *buf, size_t buflen, int timeout_ms,
                        size_t *used);
/* Give the node an inbox of `bytes` bytes: received messages of up to
 * 4 KiB (header and data) that need no ACK are copied into it and their
 * slots freed at once, so the connection reads on while the application
 * is busy, and releasing them needs no wake-up of the loop thread.  For
 * receivers that copy every message anyway (an auto-release binding).
 * Bounded: while the inbox is full, messages wait in their slots as
 * without one.  Once per bridge: CH_EINVAL for a second call or a size
 * below 64 bytes or above 2 GiB; CH_ENOMEM; CH_ECLOSED. */
int ch_bridge_set_inbox(ch_bridge_t *b, size_t bytes);
/* Release messages obtained from ch_bridge_recv or a CH_EV_REPLY, each
 * once: a message's memory may hold the next message right after. */
void ch_bridge_release(ch_bridge_t *b, ch_message_t **msgs, int n);
/* Wait for completion events; same returns as ch_bridge_recv. */
int ch_bridge_poll(ch_bridge_t *b, ch_event_t *out, int max, int timeout_ms);
/* Somebody waits on a completion: for a few milliseconds ch_bridge_poll
 * hands out events at once instead of letting them gather. */
void ch_bridge_hurry(ch_bridge_t *b);
/* A file descriptor that is readable while received messages wait (and
 * once the node closed); made on the first call, -1 if that failed or the
 * node was closing by then.  It stays open until ch_bridge_free. */
int ch_bridge_fd(ch_bridge_t *b);
/* Close the node and join its thread; pending sends complete first. */
void ch_bridge_close(ch_bridge_t *b);
/* Free a closed bridge; messages not released become invalid. */
void ch_bridge_free(ch_bridge_t *b);

/* ----------------------------------------------------------------- testing */

/* Make the core's allocations fail: every call after fail_after calls
 * (-1: off) and every fail_every-th call (0: off); counters restart.
 * ch_alloc_inject(-1, 0) turns it off. */
void ch_alloc_inject(long fail_after, long fail_every);
/* Allocations failed on purpose since the last ch_alloc_inject(). */
long ch_alloc_failures(void);

#ifdef __cplusplus
}
#endif
#endif
