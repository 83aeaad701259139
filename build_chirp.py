"""cffi build script (out-of-line API mode): compiles csrc/*.c into chirp._chirp.

Set CHIRP_SANITIZE=1 to build the core with AddressSanitizer and
UndefinedBehaviorSanitizer, and CHIRP_DEBUG=1 for an unoptimised build.
"""

from __future__ import annotations

import glob
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "csrc")

# The bridge and testing sections come from csrc/chirp.h itself ({bridge},
# {testing}); the rest is the subset of the header Python needs.
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

{bridge}

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

{testing}
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


def _section(title: str) -> str:
    """One section of csrc/chirp.h (from its "/* ---- title */" rule to the
    next rule or the closing C++ guard), declared to cffi as the header
    has it: no copy to drift."""
    with open(os.path.join(CSRC, "chirp.h")) as f:
        text = f.read()
    rule = re.compile(r"^/\* -+ ([A-Za-z ]+) \*/$", re.M)
    starts = {m.group(1): m for m in rule.finditer(text)}
    start = starts[title]
    nxt = rule.search(text, start.end())
    end = nxt.start() if nxt else text.index("#ifdef __cplusplus", start.end())
    return text[start.end() : end]


ffibuilder = FFI()
ffibuilder.cdef(
    CDEF.replace("{bridge}", _section("bridge API")).replace("{testing}", _section("testing"))
)
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
