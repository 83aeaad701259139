/* chirp_bridge.h - a chirp node on a loop thread of its own, for other
 * threads and for bindings (the Python package uses only this).
 *
 * Every function here is safe to call from any thread.  Commands (sends,
 * releases, close) are queued and the loop thread is woken once per batch;
 * results come back as events (ch_bridge_poll), received messages through
 * ch_bridge_recv / ch_bridge_recv_copy, and a thread may instead wait for
 * one send or request of its own (ch_bridge_send_wait,
 * ch_bridge_request_wait).  docs/architecture.md tells which thread owns
 * what. */
#ifndef CHIRP_BRIDGE_H
#define CHIRP_BRIDGE_H

#include "chirp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_bridge ch_bridge_t;
/* A send or request a thread waits for (ch_bridge_send_wait). */
typedef struct ch_wait ch_wait_t;

/* ----------------------------------------------------------------- events */

#define CH_EV_SEND 1    /* a send finished: token, status, detail */
#define CH_EV_REPLY 2   /* the reply to a request: token, msg */
#define CH_EV_CLOSED 3  /* the node is closed; no events follow */
#define CH_EV_PEER 4    /* peer events wait: take them with
                           ch_bridge_peer_events (one such event stands
                           for all that came until they are taken) */

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

/* A connection opened, closed or was refused (ch_peer_cb), as the bridge
 * keeps it: at most CH_PEER_EVENTS wait at once; more are dropped and
 * counted (the stats' events_dropped, and dropped in the next one). */
#define CH_PEER_EVENTS 1024
typedef struct ch_peer_report {
    ch_peer_event_t ev;
    uint64_t dropped; /* events dropped just before this one */
    char detail[CH_DETAIL_SIZE];
} ch_peer_report_t;

/* Take up to max waiting peer events, oldest first; returns how many. */
int ch_bridge_peer_events(ch_bridge_t *b, ch_peer_report_t *out, int max);

/* ----------------------------------------------------------- open, close */

/* Start a node on a loop thread of its own.  With auto_release and an
 * inbox_size, the node copies small messages that need no ACK out of
 * their slots as they arrive, into an inbox of inbox_size bytes: the
 * connection reads on while the application is busy, and giving them
 * back needs no wake-up of the loop thread (bounded: while the inbox is
 * full, messages wait in their slots). */
int ch_bridge_open(const ch_config_t *config, ch_bridge_t **out, char *err,
                   size_t errlen);
uint16_t ch_bridge_port(ch_bridge_t *b);
void ch_bridge_identity(ch_bridge_t *b, uint8_t out[CH_ID_SIZE]);
/* A file descriptor that is readable while received messages wait (and
 * once the node closed); made on the first call, -1 if that failed or the
 * node was closing by then.  It stays open until ch_bridge_free. */
int ch_bridge_fd(ch_bridge_t *b);
/* Close the node and join its thread: no new sends are taken; queued and
 * in-flight ones get up to the node's linger to complete, then what is
 * left fails with CH_ECLOSED (ch_node_close). */
void ch_bridge_close(ch_bridge_t *b);
/* ch_bridge_close with this linger in seconds (negative: the node's). */
void ch_bridge_shutdown(ch_bridge_t *b, double linger);
/* The two halves of ch_bridge_shutdown, for a caller that must stay
 * responsive (a binding handling Ctrl-C): start closing, without waiting
 * (called again while the node lingers, a shorter linger ends it sooner:
 * 0 at once); then wait up to timeout_ms (-1: no limit) for the loop
 * thread to end: CH_OK (it ended and was joined) or CH_EAGAIN. */
void ch_bridge_close_start(ch_bridge_t *b, double linger);
int ch_bridge_close_wait(ch_bridge_t *b, int timeout_ms);
/* After close: how many sends failed once closing had begun (returned),
 * and to whom, as text ("3 to 10.0.0.1:2998 (timed out), ..."). */
int ch_bridge_losses(ch_bridge_t *b, char *text, size_t len);
/* Free a bridge (closing it first); messages not released become
 * invalid. */
void ch_bridge_free(ch_bridge_t *b);

/* ---------------------------------------------------------------- sending */

/* Flags for ch_bridge_send. */
#define CH_SEND_REQUEST 2 /* route the message with this identity back as
                             a CH_EV_REPLY event instead of a message */
#define CH_SEND_NOCOPY 4  /* the data is not copied; it must stay valid and
                             unchanged until the send's CH_EV_SEND event */

/* Copy a message (data_len bytes of data, header_len of header) and queue
 * it to dest, with the given identity (a reply) or, if NULL, a new one.
 * Its completion arrives as a CH_EV_SEND event with the token (and a
 * CH_EV_REPLY for a request).  Token 0 posts the message: nobody waits
 * for it, so only a failure gives an event (token 0; not with requests
 * or CH_SEND_NOCOPY).  Returns CH_OK, or CH_ENOMEM, CH_EINVAL,
 * CH_ECLOSED (then no event follows). */
int ch_bridge_send(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                   const char *data, size_t data_len, const char *header,
                   size_t header_len, const uint8_t *identity, int flags);
/* ch_bridge_send for the common case (no identity, no flags), with fewer
 * arguments: each costs in a binding like cffi.  With token 0 it posts
 * (see ch_bridge_send), and paces: while CH_POST_HWM posts or
 * CH_POST_HWM_BYTES (64 MiB) of them are not yet done (written; synchronous:
 * acknowledged), it waits, CH_POST_SLICE_MS at most; still full then, it
 * returns CH_EAGAIN and the message is not queued: call again (a binding
 * looks for signals and its own deadline in between). */
#define CH_POST_HWM 65536
#define CH_POST_HWM_BYTES 67108864
#define CH_POST_SLICE_MS 200
int ch_bridge_post(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                   const char *data, size_t data_len, const char *header,
                   size_t header_len);
/* Queue n messages to one remote in one step, all with one header: data
 * holds them back to back (lens[i] bytes each), copied unless flags has
 * CH_SEND_NOCOPY.  One CH_EV_SEND event with the token reports the batch:
 * CH_OK, or the first error and how many failed.  Same returns as
 * ch_bridge_send. */
int ch_bridge_send_many(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                        const char *data, const size_t *lens, int n,
                        const char *header, size_t header_len, int flags);
/* ch_bridge_send_many with each message where it is (datas[i], lens[i]
 * bytes; never copied, so they must stay valid and unchanged until the
 * batch's event): big messages need no joined copy. */
int ch_bridge_send_each(ch_bridge_t *b, uint64_t token, const ch_dest_t *dest,
                        const char *const *datas, const size_t *lens, int n,
                        const char *header, size_t header_len);
/* Forget the pending reply of the request sent with token: a reply that
 * comes later is dropped, not received (within ten times the timeout, a
 * minute at least; the last 65536 requests given up on). */
void ch_bridge_cancel(ch_bridge_t *b, uint64_t token);

/* ---------------------------------------------------------------- waiting */

/* Like ch_bridge_send (the message is copied), but the calling thread
 * waits for the result instead of an event: CH_OK or the error, with the
 * detail filled.  Still pending after timeout_ms (-1: no limit): CH_EAGAIN
 * with *wait set; go on with ch_bridge_wait() or stop waiting with
 * ch_bridge_abandon().  *wait is NULL again once the result is taken. */
int ch_bridge_send_wait(ch_bridge_t *b, const ch_dest_t *dest,
                        const char *data, size_t data_len, const char *header,
                        size_t header_len, const uint8_t *identity,
                        int timeout_ms, ch_wait_t **wait, char *detail,
                        size_t detail_len);
/* Send a request and wait in the calling thread for its reply (*reply,
 * released with ch_bridge_release) or its failure; CH_EAGAIN as above. */
int ch_bridge_request_wait(ch_bridge_t *b, const ch_dest_t *dest,
                           const char *data, size_t data_len,
                           const char *header, size_t header_len,
                           int timeout_ms, ch_wait_t **wait,
                           ch_message_t **reply, char *detail,
                           size_t detail_len);
/* Go on waiting (reply may be NULL for a send). */
int ch_bridge_wait(ch_bridge_t *b, ch_wait_t **wait, int timeout_ms,
                   ch_message_t **reply, char *detail, size_t detail_len);
/* Stop waiting: the send still completes in the core; a request's late
 * reply is dropped. */
void ch_bridge_abandon(ch_bridge_t *b, ch_wait_t *wait);

/* Announced waits, for a thread that runs an event loop (asyncio) and
 * must not block: like ch_bridge_send_wait (request 0) or
 * ch_bridge_request_wait (request 1), but *wait is set at once, and once
 * its result is in it is listed for ch_bridge_done, and ch_bridge_done_fd
 * turns readable.  Take the result with ch_bridge_wait(b, wait, 0, ...),
 * or give up with ch_bridge_abandon (a request's late reply is dropped).
 * Returns CH_OK, or CH_ENOMEM, CH_EINVAL, CH_ECLOSED (no wait made). */
int ch_bridge_start(ch_bridge_t *b, const ch_dest_t *dest, const char *data,
                    size_t data_len, const char *header, size_t header_len,
                    int request, ch_wait_t **wait);
/* An fd, readable while announced waits are done and not taken (made on
 * the first call, closed by ch_bridge_free); -1 if it cannot be made. */
int ch_bridge_done_fd(ch_bridge_t *b);
/* Up to max announced waits whose results are in, oldest first, into
 * out; none left: the fd is no longer readable.  Returns how many. */
int ch_bridge_done(ch_bridge_t *b, ch_wait_t **out, int max);

/* ---------------------------------------------------------- stats, peers */

/* The node's counters into stats (if not NULL) and up to max of its
 * remotes into peers; *npeers (if not NULL) gets how many remotes there
 * are (maybe more than max).  One round trip to the loop thread.  CH_OK,
 * or CH_ECLOSED once the node is closed (while it closes, CH_OK). */
int ch_bridge_query(ch_bridge_t *b, ch_stats_t *stats, ch_peer_info_t *peers,
                    int max, int *npeers);

/* -------------------------------------------------------------- receiving */

/* Wait up to timeout_ms (-1: forever) for received messages; returns how
 * many were stored in out (> 0), CH_ETIMEDOUT or CH_ECLOSED. */
int ch_bridge_recv(ch_bridge_t *b, ch_message_t **out, int max,
                   int timeout_ms);

/* What ch_bridge_recv_copy stores per message (six 32-bit fields, so
 * that a binding can unpack them in one step); the bytes are in the
 * caller's buffer at offset: identity, remote identity, address (16 bytes
 * each), then the header, then the data. */
typedef struct ch_msg_meta {
    uint32_t offset;
    uint32_t serial;
    uint32_t data_start; /* the data is buf[data_start, data_end), the */
    uint32_t data_end;   /* header buf[offset + 48, data_start) */
    uint32_t port;
    uint32_t flags; /* ip_protocol, CH_META_SAME_SOURCE, CH_META_HEADER */
} ch_msg_meta_t;
/* The message comes from the same remote (address, port, protocol and
 * remote identity) as the one before it in this batch. */
#define CH_META_SAME_SOURCE 0x100
/* The message has a header (header_len > 0). */
#define CH_META_HEADER 0x200

/* Like ch_bridge_recv, but copies the messages into buf and releases them
 * at once (for auto-release receivers: the connection refills while the
 * caller works).  Returns the count, with *used set to the bytes of buf
 * filled; 0 with *used set to the size the first message needs when even
 * it does not fit in buflen (at most 4 GiB are used). */
int ch_bridge_recv_copy(ch_bridge_t *b, ch_msg_meta_t *meta, int max,
                        char *buf, size_t buflen, int timeout_ms,
                        size_t *used);
/* Like ch_bridge_recv_copy, but copies only each message's data, one
 * after the other: message i is buf[ends[i-1], ends[i]) (ends[-1] being
 * 0).  Header, sender and identity are dropped: for streams whose
 * receiver wants the data alone. */
int ch_bridge_recv_data(ch_bridge_t *b, uint32_t *ends, int max, char *buf,
                        size_t buflen, int timeout_ms, size_t *used);
/* Release messages obtained from ch_bridge_recv or a reply, each once: a
 * message's memory may hold the next message right after. */
void ch_bridge_release(ch_bridge_t *b, ch_message_t **msgs, int n);

/* End a message obtained from ch_bridge_recv with a failure instead of an
 * ACK (see ch_node_reject), in place of releasing it.  CH_OK, CH_ENOMEM
 * (nothing done: release it instead), or CH_ECLOSED. */
int ch_bridge_reject(ch_bridge_t *b, ch_message_t *msg, const char *reason);

/* Wait for events; same returns as ch_bridge_recv.  Called again soon
 * after it returned, it lets successful completions gather for up to a
 * millisecond (a stream's completions are handed out in batches). */
int ch_bridge_poll(ch_bridge_t *b, ch_event_t *out, int max, int timeout_ms);
/* Somebody waits on a completion: for a few milliseconds ch_bridge_poll
 * hands out events at once instead of letting them gather. */
void ch_bridge_hurry(ch_bridge_t *b);

#ifdef __cplusplus
}
#endif
#endif
