/* chirp_common.h - what the loop API (chirp.h) and the bridge API
 * (chirp_bridge.h) share: error codes, sizes, the configuration and its
 * option table, received messages, destinations and addresses.  It needs
 * no libuv header, so bindings can declare it as it is.
 *
 * Errors are negative codes; a function that can fail returns one, and a
 * runtime failure never aborts the process. */
#ifndef CHIRP_COMMON_H
#define CHIRP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CH_ID_SIZE 16
#define CH_HANDSHAKE_SIZE 18
#define CH_HEADER_SIZE 27
#define CH_MAX_SLOTS 1024
#define CH_DETAIL_SIZE 256
/* Header and data up to this size live in a slot's own buffer; bigger
 * messages get one of their own (see ch_message_take_buffer). */
#define CH_INLINE_SIZE 1024

/* Message type bits (wire byte 26). */
#define CH_MSG_REQ_ACK 1
#define CH_MSG_ACK 2
#define CH_MSG_NOOP 4
/* With CH_MSG_ACK: the message was rejected; its data (up to
 * CH_REJECT_MAX bytes) is the reason.  Sent only to peers whose
 * capability frame has CH_CAP_REJECT (docs/protocol.md). */
#define CH_MSG_REJECT 8
#define CH_REJECT_MAX 180

/* ------------------------------------------------------------------ errors */

/* Every error code: XX(name, code, meaning).  ch_errname() gives
 * "CH_<name>", ch_strerror() the meaning. */
#define CH_ERRNO_MAP(XX)                                                    \
    XX(OK, 0, "success")                                                    \
    XX(EINVAL, -1, "invalid argument")                                      \
    XX(ENOMEM, -2, "out of memory")                                         \
    XX(ETIMEDOUT, -3, "timed out")                                          \
    XX(ECONN, -4, "connection failed or lost")                              \
    XX(EPROTO, -5, "protocol error")                                        \
    XX(ECLOSED, -6, "node closed")                                          \
    XX(ETLS, -7, "TLS error")                                               \
    XX(EADDR, -8, "address error")                                          \
    XX(EMSGSIZE, -9, "message too large")                                   \
    XX(EAGAIN, -10, "resource temporarily unavailable")                     \
    XX(EREJECTED, -11, "rejected by the receiver")

enum ch_errno {
#define CH_ERRNO_ENUM_(name, code, text) CH_##name = code,
    CH_ERRNO_MAP(CH_ERRNO_ENUM_)
#undef CH_ERRNO_ENUM_
};

/* The name ("CH_EINVAL") and meaning of an error code. */
const char *ch_errname(int err);
const char *ch_strerror(int err);

/* ------------------------------------------------------------------ config */

/* Option kinds: the C type of a field of ch_config_t, and its check. */
#define CH_OPT_INT 1     /* int in lo..hi */
#define CH_OPT_U32 2     /* uint32_t in lo..hi */
#define CH_OPT_SECONDS 3 /* double, > lo and <= hi */
#define CH_OPT_BOOL 4    /* int, 0 or 1 */
#define CH_OPT_IPV4 5    /* const char *: an IPv4 address; NULL or "": off */
#define CH_OPT_IPV6 6    /* const char *: an IPv6 address; NULL or "": off */
#define CH_OPT_PATH 7    /* const char *: a file's path, or NULL */
#define CH_OPT_ID 8      /* const uint8_t *: CH_ID_SIZE bytes, or NULL */

#define CH_OPT_CTYPE_INT int
#define CH_OPT_CTYPE_U32 uint32_t
#define CH_OPT_CTYPE_SECONDS double
#define CH_OPT_CTYPE_BOOL int
#define CH_OPT_CTYPE_IPV4 const char *
#define CH_OPT_CTYPE_IPV6 const char *
#define CH_OPT_CTYPE_PATH const char *
#define CH_OPT_CTYPE_ID const uint8_t *

/* Option flags. */
#define CH_OPT_ZERO_OK 1 /* 0 is allowed besides lo..hi (a default) */
#define CH_OPT_BINDING 2 /* for the bridge and bindings; the loop API
                            ignores it */
#define CH_OPT_UNSET 4   /* a negative value means "not set" (the doc says
                            what applies then) */

/* Every option, one entry each: XX(name, kind, default, default text,
 * lo, hi, flags, doc).  This table is the configuration: ch_config_t
 * has one field per entry, of the kind's C type; ch_config_init() and
 * ch_config_check() follow it, ch_config_options() hands it to
 * bindings (chirp.Config is made from it) and docs/options.md is
 * written from it.  Pointers are the caller's and need to live only
 * until ch_node_new() or ch_bridge_open() returns. */
#define CH_CONFIG_MAP(XX)                                                   \
    XX(port, INT, 2998, NULL, 0, 65535, 0,                                  \
       "TCP port to listen on; 0: the system picks one")                    \
    XX(timeout, SECONDS, 5.0, NULL, 0, 86400, 0,                            \
       "seconds a send may take to be written (synchronous: acknowledged); "\
       "connecting may take min(2 x timeout, 60 s)")                        \
    XX(reuse_time, SECONDS, 30.0, NULL, 0, 86400, 0,                        \
       "an idle connection is closed after max(reuse_time, 3 x timeout) "   \
       "seconds")                                                           \
    XX(max_slots, INT, 64, NULL, 1, CH_MAX_SLOTS, 0,                        \
       "receive slots per connection: with every slot held by the "         \
       "application, the connection stops reading and TCP holds the "       \
       "sender back; with max_inflight, the window of chirp peers' "        \
       "acknowledged streams")                                              \
    XX(synchronous, BOOL, 1, NULL, 0, 1, 0,                                 \
       "a send succeeds only when the remote released the message "         \
       "(acknowledged); off: when it was handed to the kernel")             \
    XX(buffer_size, INT, 0, NULL, 1024, 16777216, CH_OPT_ZERO_OK,           \
       "read buffer per connection in bytes; 0: 65536")                     \
    XX(max_msg_size, U32, 104857600, NULL, 1, 4294967295.0, 0,              \
       "header + data of one message at most, in bytes")                    \
    XX(bind_v4, IPV4, 0, "0.0.0.0", 0, 0, 0,                                \
       "IPv4 address to listen on; empty: none")                            \
    XX(bind_v6, IPV6, 0, "::", 0, 0, 0,                                     \
       "IPv6 address to listen on; empty: none")                            \
    XX(identity, ID, 0, NULL, 0, 0, 0,                                      \
       "the node's 16-byte identity; none: random")                         \
    XX(backlog, INT, 100, NULL, 1, 65535, 0, "listen backlog")              \
    XX(disable_encryption, BOOL, 0, NULL, 0, 1, 0,                          \
       "plaintext to every peer; off: TLS unless the peer is 127.0.0.1 "    \
       "or ::1")                                                            \
    XX(cert_chain_pem, PATH, 0, NULL, 0, 0, 0,                              \
       "PEM file: the node's certificate, the CA certificate(s), the "      \
       "node's private key, in this order; also the trust store")           \
    XX(dh_params_pem, PATH, 0, NULL, 0, 0, 0,                               \
       "PEM file of DH parameters for DHE ciphers with TLS 1.2 peers")      \
    XX(auto_release, BOOL, 1, NULL, 0, 1, CH_OPT_BINDING,                   \
       "bindings: a received message is released as it is handed out "     \
       "(small ones through the bridge's inbox); off: the application "     \
       "releases each")                                                     \
    XX(linger, SECONDS, -1, NULL, 0, 86400, CH_OPT_ZERO_OK | CH_OPT_UNSET,  \
       "seconds a closing node waits for its queued and in-flight sends "   \
       "to complete (written; synchronous: acknowledged) before it fails "  \
       "the rest, and its last writes (ACKs) may take; 0: at once; not "    \
       "set: the timeout")                                                  \
    XX(max_inflight, INT, 64, NULL, 1, 1024, 0,                             \
       "synchronous: messages in flight per remote at most (libchirp "      \
       "peers: 1); this node announces the smaller of it and max_slots "    \
       "to chirp peers as their window")                                    \
    XX(spin_us, INT, 50, NULL, 0, 100000, CH_OPT_BINDING,                   \
       "bridge: microseconds a waiting thread, and the loop thread after "  \
       "traffic, polls before it sleeps; 0: sleep at once")                 \
    XX(inbox_size, INT, 262144, NULL, 4096, 1073741824,                     \
       CH_OPT_ZERO_OK | CH_OPT_BINDING,                                     \
       "bridge, with auto_release: bytes of the inbox that small messages " \
       "needing no acknowledgement are copied into, freeing their slots; "  \
       "0: none")                                                           \
    XX(max_memory, U32, 268435456, NULL, 65536, 4294967295.0, 0,            \
       "bytes of received messages too big for a slot's own buffer held "   \
       "at once, over all connections; a connection whose next message "   \
       "would pass it waits (TCP holds its sender back); at least "         \
       "max_msg_size")                                                      \
    XX(max_peer_connections, INT, 256, NULL, 1, 1048576, CH_OPT_ZERO_OK,    \
       "connections accepted from one address at once; more are closed "    \
       "as they come (a refused event, reason limit); 0: no limit")

typedef struct ch_config {
#define CH_CONFIG_FIELD_(name, kind, dflt, dtext, lo, hi, flags, doc)       \
    CH_OPT_CTYPE_##kind name;
    CH_CONFIG_MAP(CH_CONFIG_FIELD_)
#undef CH_CONFIG_FIELD_
} ch_config_t;

/* One entry of CH_CONFIG_MAP, for bindings and documentation. */
typedef struct ch_option {
    const char *name;
    int kind;             /* CH_OPT_INT ... */
    int flags;            /* CH_OPT_ZERO_OK, CH_OPT_BINDING */
    size_t offset;        /* of the field in ch_config_t */
    double dflt;          /* the default of a number or bool */
    const char *dflt_text; /* the default of an address (else NULL) */
    double lo;            /* bounds of numbers (see the kinds) */
    double hi;
    const char *doc;
} ch_option_t;

/* Fill a config with the defaults. */
void ch_config_init(ch_config_t *config);
/* CH_OK, or CH_EINVAL with a message naming the bad option in err. */
int ch_config_check(const ch_config_t *config, char *err, size_t errlen);
/* The option table, in CH_CONFIG_MAP's order; *count gets its length. */
const ch_option_t *ch_config_options(int *count);

/* ---------------------------------------------------------------- messages */

typedef struct ch_conn ch_conn_t;

/* A link of the core's intrusive lists (util/queue.h); private. */
typedef struct ch_link {
    struct ch_link *next;
    struct ch_link *prev;
} ch_link_t;

/* A received message.  It lives in a slot of the connection it came on
 * and stays valid until it is released (or the node is freed). */
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
    /* Whoever holds the message (the application, or the bridge) may
     * keep it on a list with this link; the core does not touch it
     * between delivery and release (after release it is the core's, for
     * its queue of ACKs to write). */
    ch_link_t link;
    /* private: the connection's (core/conn_read.c) */
    ch_conn_t *conn_;
    uint8_t *buf_;
    uint32_t bufcap_; /* a big buffer's size (util/bufcache.c) */
    uint16_t index_;
    uint8_t state_;
    uint8_t rejected_;    /* its ACK is a reject frame; reason in buf_ */
    uint16_t reject_len_;
    uint8_t ack_hdr_[CH_HEADER_SIZE];
} ch_message_t;

/* Take a held (not yet released) message's buffer without a copy: the
 * caller owns the memory msg->header and msg->data point into from now
 * on, past the message's release and the node's end, and frees it with
 * ch_message_buffer_free.  Returns NULL, taking nothing, when the message
 * lives in its slot's own small buffer (CH_INLINE_SIZE bytes of header and
 * data, or less: copy those) or was released.  Any thread may call it:
 * the core does not touch a held message's buffer.  The node's memory
 * budget (max_memory) counts the buffer until the message is released. */
void *ch_message_take_buffer(ch_message_t *msg);
void ch_message_buffer_free(void *buf);

/* ------------------------------------------------------------ peer events */

/* What happened to a connection (ch_peer_event_t.kind). */
#define CH_PEER_CONNECTED 1    /* its handshakes completed: ready */
#define CH_PEER_DISCONNECTED 2 /* a ready connection closed */
#define CH_PEER_REFUSED 3      /* a connection closed before it was ready
                                  (TLS, handshake, protocol, connect) */

/* Why a connection closed: XX(name, code, text).  ch_reasonname() gives
 * the text ("closed by peer"). */
#define CH_REASON_MAP(XX)                                                   \
    XX(NONE, 0, "none")                                                     \
    XX(TIMEOUT, 1, "timeout")                                               \
    XX(PEER_CLOSED, 2, "closed by peer")                                    \
    XX(TLS, 3, "TLS failure")                                               \
    XX(PROTOCOL, 4, "protocol violation")                                   \
    XX(MSGSIZE, 5, "message too large")                                     \
    XX(IDLE, 6, "idle collection")                                          \
    XX(NODE_CLOSED, 7, "node closed")                                       \
    XX(CONNECT, 8, "connect failed")                                        \
    XX(ERROR, 9, "connection error")                                        \
    XX(NOMEM, 10, "out of memory")                                          \
    XX(LIMIT, 11, "max_peer_connections")

enum ch_reason {
#define CH_REASON_ENUM_(name, code, text) CH_REASON_##name = code,
    CH_REASON_MAP(CH_REASON_ENUM_)
#undef CH_REASON_ENUM_
};

const char *ch_reasonname(int reason);

/* One event of a connection, in the order they happened (per connection;
 * every connection to one remote is a connection of its own). */
typedef struct ch_peer_event {
    int kind;            /* CH_PEER_* */
    int reason;          /* CH_REASON_*; CH_REASON_NONE when connected */
    int status;          /* the CH_E* code of a close (CH_OK: idle) */
    uint8_t ip_protocol; /* 4 or 6 */
    uint8_t address[16];
    uint16_t port;       /* its listening port once known, else its TCP
                            port */
    uint8_t identity[CH_ID_SIZE]; /* the remote node's, from its handshake;
                                     zeros before */
    uint8_t encrypted;   /* TLS */
    uint8_t outgoing;    /* this node connected */
} ch_peer_event_t;

/* -------------------------------------------------------- stats and peers */

/* The node's counters: XX(name, doc).  Counters only grow; the gauges
 * (slots_in_use, inbox_bytes, connections_ready) are the current value. */
#define CH_STATS_MAP(XX)                                                    \
    XX(messages_sent, "messages written to a connection")                   \
    XX(bytes_sent, "header and data bytes of messages_sent")                \
    XX(messages_received, "messages received (handed to the application)")  \
    XX(bytes_received, "header and data bytes of messages_received")        \
    XX(messages_acknowledged, "synchronous sends acknowledged by the peer") \
    XX(sends_failed, "sends that failed, whatever the cause")               \
    XX(sends_failed_timeout, "sends failed: timed out")                     \
    XX(sends_failed_connection, "sends failed: connection failed or lost")  \
    XX(sends_failed_tls, "sends failed: TLS")                               \
    XX(sends_failed_size, "sends failed: larger than the peer takes")       \
    XX(sends_failed_closed, "sends failed: the node closed")                \
    XX(sends_failed_rejected, "sends failed: rejected by the receiver")     \
    XX(messages_rejected, "received messages this node rejected")           \
    XX(sends_failed_other, "sends failed: another cause")                   \
    XX(connections_opened, "connections that became ready")                 \
    XX(connections_closed, "ready connections that closed")                 \
    XX(connections_refused, "connections closed before they were ready")    \
    XX(connections_ready, "gauge: connections ready now")                   \
    XX(tls_handshakes, "TLS handshakes completed")                          \
    XX(tls_failures, "connections closed for a TLS failure")                \
    XX(slots_in_use, "gauge: receive slots taken, over all connections")    \
    XX(message_memory, "gauge: bytes of big message buffers held (max_memory)")\
    XX(memory_waits, "times a connection waited for max_memory")            \
    XX(inbox_bytes, "gauge: bytes in the bridge's inbox (bridge only)")     \
    XX(events_dropped, "peer events not queued: too many waiting (bridge)") \
    XX(posts_pending, "gauge: posted messages not yet done (bridge only)")

typedef struct ch_stats {
#define CH_STATS_FIELD_(name, doc) uint64_t name;
    CH_STATS_MAP(CH_STATS_FIELD_)
#undef CH_STATS_FIELD_
} ch_stats_t;

/* One remote (a node this one knows: connected to, or connecting). */
typedef struct ch_peer_info {
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t port;                /* its listening port */
    uint8_t identity[CH_ID_SIZE]; /* of its current connection, or zeros */
    uint8_t connected;            /* has a ready connection */
    uint8_t encrypted;            /* that connection is TLS */
    int connections;              /* connections to it, any state */
    uint64_t connected_ms;        /* for how long the current one is ready */
    uint64_t inflight;            /* written, waiting for the ACK */
    uint64_t queued;              /* accepted, not yet written */
    uint64_t sent;                /* messages written to it */
    uint64_t received;            /* messages received from it */
} ch_peer_info_t;

/* Where a message goes: a remote node's address and listening port. */
typedef struct ch_dest {
    uint8_t ip_protocol; /* 4 or 6 */
    uint8_t address[16]; /* IPv4 in the first 4 bytes */
    uint16_t port;
} ch_dest_t;

/* Parse "1.2.3.4" or "::1" into ip_protocol/address: CH_OK or CH_EINVAL. */
int ch_parse_address(const char *text, uint8_t *ip_protocol,
                     uint8_t address[16]);
/* Format an address; out should hold 64 bytes. */
void ch_format_address(uint8_t ip_protocol, const uint8_t address[16],
                       char *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
