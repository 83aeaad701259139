/* chirp.h - the loop API of the chirp core.
 *
 * A node listens for TCP connections, sends messages to remotes
 * (IP version, address, port) and hands received messages to the
 * application, which releases them when done.  The wire protocol is
 * libchirp 1.2's (docs/protocol.md).  Everything here runs on the node's
 * libuv loop thread; chirp_bridge.h runs a node on a loop thread of its
 * own for other threads and bindings. */
#ifndef CHIRP_H
#define CHIRP_H

#include <uv.h>

#include "chirp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ch_node ch_node_t;
typedef struct ch_send ch_send_t;

/* Called exactly once per accepted send: status CH_OK or an error code, and
 * a human-readable detail ("" on success). */
typedef void (*ch_send_cb)(ch_send_t *req, int status, const char *detail);

/* An outgoing message.  The caller owns it and the buffers it points to
 * until its callback has run (as uv_write_t). */
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
    /* private: the remote's queue and the writer's (core/) */
    ch_link_t link_;
    struct ch_remote *remote_;
    ch_conn_t *conn_;
    ch_send_t *wnext_; /* the next message of the same write */
    uint64_t deadline_;
    uint32_t serial_;
    uint8_t type_;
    uint8_t state_;
    uint8_t acked_;
    uint8_t has_identity_;
    uint8_t hdr_[CH_HEADER_SIZE];
    char *why_; /* a reject's detail, while the write is still running */
};

/* Prepare a send: zero it; the identity is chosen at send time unless
 * ch_send_set_identity() is called (replies keep the request's identity). */
void ch_send_init(ch_send_t *req);
void ch_send_set_identity(ch_send_t *req, const uint8_t identity[CH_ID_SIZE]);
/* Address the send to dest. */
void ch_send_set_dest(ch_send_t *req, const ch_dest_t *dest);

typedef void (*ch_recv_cb)(ch_node_t *node, ch_message_t *msg);
typedef void (*ch_closed_cb)(ch_node_t *node);
/* A connection became ready, closed, or was refused (see ch_peer_event_t):
 * called on the loop thread as it happens; detail says who and why ("" when
 * connected) and is valid during the call. */
typedef void (*ch_peer_cb)(ch_node_t *node, const ch_peer_event_t *ev,
                           const char *detail);

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
/* Give a received message's slot back (sends the ACK if one was asked);
 * a second release of the same message does nothing. */
void ch_node_release(ch_node_t *node, ch_message_t *msg);
/* End a received message with a failure instead of an ACK, and give its
 * slot back.  A synchronous chirp sender's send fails with CH_EREJECTED
 * and the reason (up to CH_REJECT_MAX bytes); a peer that cannot read
 * reject frames (libchirp) gets no ACK, and its connection is closed.
 * An asynchronous sender asked for nothing: the message is released. */
void ch_node_reject(ch_node_t *node, ch_message_t *msg, const char *reason);
/* Close: the node takes no new sends and stops listening; queued and
 * in-flight sends get up to the linger (the config's, or the last
 * ch_node_set_linger's) to complete as usual, then what is left fails with
 * CH_ECLOSED and the connections close.  ACKs of released messages still
 * go out within the linger (with a linger of 0: within the timeout).
 * on_closed runs when all handles are closed, after which ch_node_free()
 * frees the node (messages not released become invalid). */
void ch_node_close(ch_node_t *node, ch_closed_cb on_closed);
/* The linger, in seconds, of the next ch_node_close (negative: keep). */
void ch_node_set_linger(ch_node_t *node, double seconds);
/* Be told of connections as they open and close (see ch_peer_cb); NULL:
 * not. */
void ch_node_set_peer_cb(ch_node_t *node, ch_peer_cb cb);
/* The node's counters (inbox_bytes and events_dropped: 0, the bridge's). */
void ch_node_stats(ch_node_t *node, ch_stats_t *out);
/* The remotes the node knows, up to max into out; returns how many there
 * are (maybe more than max). */
int ch_node_peers(ch_node_t *node, ch_peer_info_t *out, int max);
void ch_node_free(ch_node_t *node);

#ifdef __cplusplus
}
#endif
#endif
