/* wire/wire.h - the wire format (docs/protocol.md): the handshake, the
 * message header and the capability frame.  Pure functions: nothing here
 * touches a socket, so all of it is testable and fuzzable alone. */
#ifndef CH_WIRE_H
#define CH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "chirp_common.h"

typedef struct ch_wire_header {
    uint8_t identity[CH_ID_SIZE];
    uint32_t serial;
    uint32_t data_len;
    uint16_t header_len;
    uint8_t type;
} ch_wire_header_t;

void ch_wire_encode_handshake(uint8_t out[CH_HANDSHAKE_SIZE], uint16_t port,
                              const uint8_t identity[CH_ID_SIZE]);
void ch_wire_decode_handshake(const uint8_t in[CH_HANDSHAKE_SIZE],
                              uint16_t *port, uint8_t identity[CH_ID_SIZE]);
void ch_wire_encode_header(uint8_t out[CH_HEADER_SIZE],
                           const ch_wire_header_t *h);
void ch_wire_decode_header(const uint8_t in[CH_HEADER_SIZE],
                           ch_wire_header_t *h);
/* CH_OK, or CH_EPROTO / CH_EMSGSIZE with a reason in *why.  A reject
 * frame (ACK | REJECT) may carry up to CH_REJECT_MAX bytes of data. */
int ch_wire_check_header(const ch_wire_header_t *h, uint32_t max_msg_size,
                         const char **why);

/* The capability frame: a NOOP (no header, no data) whose identity field
 * holds the tag, a version, flags, the window its sender accepts and its
 * max_msg_size.  A chirp node writes it right after the handshake;
 * libchirp 1.2 reads a NOOP's identity as noise and ignores it.  Identity
 * bytes: 0-7 the tag, 8 the version, 9 flags, 10-11 the window, 12-15 the
 * max_msg_size (big-endian; 0: not told). */
#define CH_CAP_TAG "CHIRPCAP"
#define CH_CAP_TAG_SIZE 8
#define CH_CAP_VERSION 1
/* Capability flags. */
#define CH_CAP_REJECT 1 /* it reads reject frames (CH_MSG_REJECT) */

typedef struct ch_cap {
    uint8_t version;
    uint8_t flags;   /* CH_CAP_*; unknown ones are ignored when read */
    uint16_t window; /* synchronous messages the sender of the frame takes
                        in flight at once, 1 or more */
    uint32_t max_msg_size; /* the largest message it takes; 0: not told */
} ch_cap_t;

/* The whole 27-byte header of a capability frame. */
void ch_wire_encode_cap(uint8_t out[CH_HEADER_SIZE], uint32_t serial,
                        const ch_cap_t *cap);
/* 1 with *cap filled if h (a checked header) is a capability frame of
 * version 1 or later (a window of 0 is read as 1), else 0. */
int ch_wire_decode_cap(const ch_wire_header_t *h, ch_cap_t *cap);

#endif
