"""cffi build script (out-of-line API mode): compiles csrc/*.c into chirp._chirp.

Set CHIRP_SANITIZE=1 to build the core with AddressSanitizer and
UndefinedBehaviorSanitizer, and CHIRP_DEBUG=1 for an unoptimised build.
"""

from __future__ import annotations

import glob
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")

CDEF = """
#define CH_ID_SIZE 16
#define CH_HANDSHAKE_SIZE 18
#define CH_HEADER_SIZE 27
#define CH_MAX_SLOTS 32
#define CH_DETAIL_SIZE 256
#define CH_MSG_REQ_ACK 1
#define CH_MSG_ACK 2
#define CH_MSG_NOOP 4
#define CH_OK 0
#define CH_EINVAL ...
#define CH_ENOMEM ...
#define CH_ETIMEDOUT ...
#define CH_ECONN ...
#define CH_EPROTO ...
#define CH_ECLOSED ...
#define CH_ETLS ...
#define CH_EADDR ...
#define CH_EMSGSIZE ...
#define CH_EAGAIN ...
#define CH_EV_SEND 1
#define CH_EV_REPLY 2
#define CH_EV_CLOSED 3
#define CH_SEND_IDENTITY 1
#define CH_SEND_REQUEST 2
#define CH_SEND_NOCOPY 4

const char *ch_strerror(int err);
const char *ch_errname(int err);

typedef struct ch_config {
    uint16_t port;
    double timeout;
    double reuse_time;
    int max_slots;
    int synchronous;
    uint32_t buffer_size;
    uint32_t max_msg_size;
    char bind_v4[64];
    char bind_v6[64];
    uint8_t identity[16];
    int has_identity;
    int backlog;
    int disable_encryption;
    const char *cert_chain_pem;
    const char *dh_params_pem;
    int max_inflight;
    int spin_us;
} ch_config_t;

void ch_config_init(ch_config_t *config);
int ch_config_check(const ch_config_t *config, char *err, size_t errlen);

typedef struct ch_message {
    uint8_t identity[16];
    uint32_t serial;
    uint8_t type;
    uint16_t header_len;
    uint32_t data_len;
    uint8_t *header;
    uint8_t *data;
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t port;
    uint8_t remote_identity[16];
    ...;
} ch_message_t;

int ch_parse_address(const char *text, uint8_t *ip_protocol, uint8_t address[16]);
void ch_format_address(uint8_t ip_protocol, const uint8_t address[16], char *out, size_t outlen);

typedef struct ch_bridge ch_bridge_t;
typedef struct ch_event {
    int type;
    int status;
    uint64_t token;
    uint64_t count;
    ch_message_t *msg;
    char detail[256];
} ch_event_t;

int ch_bridge_open(const ch_config_t *config, ch_bridge_t **out, char *err, size_t errlen);
uint16_t ch_bridge_port(ch_bridge_t *b);
void ch_bridge_identity(ch_bridge_t *b, uint8_t out[16]);
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

int ch_bridge_send_many(ch_bridge_t *b, uint64_t token, uint8_t ip_protocol,
                        const uint8_t *address, uint16_t port,
                        const char *header, size_t header_len,
                        const char *data, const size_t *lens, int n,
                        int flags);
void ch_bridge_cancel(ch_bridge_t *b, uint64_t token);
int ch_bridge_recv(ch_bridge_t *b, ch_message_t **out, int max, int timeout_ms);
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
#define CH_META_SAME_SOURCE ...
/* Like ch_bridge_recv, but copies the messages into buf and releases them
 * at once (for auto-release receivers: the connection refills while the
 * caller works).  Returns the count, with *used set to the bytes of buf
 * filled; 0 with *used set to the size the first message needs when even
 * it does not fit in buflen (at most 4 GiB are used). */
int ch_bridge_recv_copy(ch_bridge_t *b, ch_msg_meta_t *meta, int max,
                        char *buf, size_t buflen, int timeout_ms,
                        size_t *used);
void ch_bridge_release(ch_bridge_t *b, ch_message_t **msgs, int n);
int ch_bridge_poll(ch_bridge_t *b, ch_event_t *out, int max, int timeout_ms);
/* Somebody waits on a completion: for a few milliseconds ch_bridge_poll
 * hands out events at once instead of letting them gather. */
void ch_bridge_hurry(ch_bridge_t *b);
int ch_bridge_fd(ch_bridge_t *b);
void ch_bridge_close(ch_bridge_t *b);
void ch_bridge_free(ch_bridge_t *b);

/* wire and reader, exposed for tests */
typedef struct ch_wire_header {
    uint8_t identity[16];
    uint32_t serial;
    uint32_t data_len;
    uint16_t header_len;
    uint8_t type;
} ch_wire_header_t;
void ch_wire_encode_handshake(uint8_t out[18], uint16_t port, const uint8_t identity[16]);
void ch_wire_decode_handshake(const uint8_t in[18], uint16_t *port, uint8_t identity[16]);
void ch_wire_encode_header(uint8_t out[27], const ch_wire_header_t *h);
void ch_wire_decode_header(const uint8_t in[27], ch_wire_header_t *h);
int ch_wire_check_header(const ch_wire_header_t *h, uint32_t max_msg_size, const char **why);

#define CH_RD_MORE 0
#define CH_RD_HANDSHAKE 1
#define CH_RD_HEADER 2
#define CH_RD_CONTROL 3
#define CH_RD_MESSAGE 4
#define CH_RD_ERROR 5
typedef struct ch_reader {
    int state;
    uint16_t hs_port;
    uint8_t hs_identity[16];
    ch_wire_header_t hdr;
    uint32_t payload_len;
    int error;
    const char *why;
    ...;
} ch_reader_t;
void ch_reader_init(ch_reader_t *r, uint32_t max_msg_size);
int ch_reader_feed(ch_reader_t *r, const uint8_t *in, size_t len, size_t *used);
void ch_reader_set_payload(ch_reader_t *r, uint8_t *payload);

void ch_alloc_inject(long fail_after, long fail_every);
long ch_alloc_failures(void);
"""


def _flags() -> tuple[list[str], list[str]]:
    cflags = ["-std=c99", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
    ldflags: list[str] = []
    if os.environ.get("CHIRP_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
        cflags += san + ["-O1", "-g"]
        ldflags += san
    elif os.environ.get("CHIRP_DEBUG"):
        cflags += ["-O0", "-g"]
    else:
        cflags += ["-O2"]
    return cflags, ldflags


def _sources() -> list[str]:
    """The C core's sources, relative to this file (setuptools wants that)."""
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(CSRC, "*.c")))


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
_cflags, _ldflags = _flags()
ffibuilder.set_source(
    "chirp._chirp",
    '#include "chirp.h"\n#include "ch_wire.h"\n',
    sources=_sources(),
    include_dirs=[CSRC],
    libraries=["uv", "ssl", "crypto"],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
