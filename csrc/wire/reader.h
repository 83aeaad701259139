/* wire/reader.h - the incremental parser over a connection's received
 * bytes: any fragmentation in, events out.  Pure: testable and fuzzable
 * alone (tests/test_reader.py). */
#ifndef CH_READER_H
#define CH_READER_H

#include <stddef.h>
#include <stdint.h>

#include "wire/wire.h"

/* Reader events, returned by ch_reader_feed. */
#define CH_RD_MORE 0      /* all input consumed, nothing complete */
#define CH_RD_HANDSHAKE 1 /* handshake complete: r->hs_port, r->hs_identity */
#define CH_RD_HEADER 2    /* a message header: call ch_reader_set_payload */
#define CH_RD_CONTROL 3   /* an ACK or NOOP (r->hdr), no payload */
#define CH_RD_MESSAGE 4   /* the payload given at CH_RD_HEADER is complete */
#define CH_RD_ERROR 5     /* protocol error: r->error, r->why */
#define CH_RD_REJECT 6    /* a reject frame (r->hdr), its reason in
                             r->reason (r->hdr.data_len bytes) */

#define CH_RS_HANDSHAKE 0
#define CH_RS_HEADER 1
#define CH_RS_PAYLOAD_WAIT 2 /* header seen, no payload buffer given yet */
#define CH_RS_PAYLOAD 3
#define CH_RS_FAILED 4
#define CH_RS_REASON 5 /* reading a reject frame's reason */

typedef struct ch_reader {
    int state;
    uint32_t max_msg_size;
    uint8_t buf[CH_HEADER_SIZE];
    size_t have;
    uint16_t hs_port;
    uint8_t hs_identity[CH_ID_SIZE];
    ch_wire_header_t hdr;
    uint8_t *payload; /* header_len + data_len bytes */
    uint32_t payload_len;
    uint32_t payload_have;
    int error;
    const char *why;
    uint8_t reason[CH_REJECT_MAX];
    uint32_t reason_have;
} ch_reader_t;

void ch_reader_init(ch_reader_t *r, uint32_t max_msg_size);
/* Consume bytes until an event or the end of input; the number of bytes
 * consumed is stored in *used.  After CH_RD_HEADER the caller must call
 * ch_reader_set_payload before feeding again. */
int ch_reader_feed(ch_reader_t *r, const uint8_t *in, size_t len,
                   size_t *used);
/* Give the buffer (of header_len + data_len bytes; NULL when 0) the
 * payload is read into. */
void ch_reader_set_payload(ch_reader_t *r, uint8_t *payload);
/* Payload bytes still missing (for reading straight into the buffer). */
uint32_t ch_reader_payload_missing(const ch_reader_t *r);
/* Account n bytes that were read straight into the payload buffer. */
void ch_reader_payload_advance(ch_reader_t *r, uint32_t n);

#endif
