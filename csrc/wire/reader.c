/* wire/reader.c - incremental parser over the received byte stream.
 *
 * Accepts any fragmentation: the handshake and headers are collected in a
 * small buffer across reads; payloads go straight into the buffer the
 * caller provides for the message (a slot). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include "wire/reader.h"

void ch_reader_init(ch_reader_t *r, uint32_t max_msg_size)
{
    memset(r, 0, sizeof(*r));
    r->state = CH_RS_HANDSHAKE;
    r->max_msg_size = max_msg_size;
}

static size_t collect(ch_reader_t *r, size_t want, const uint8_t *in,
                      size_t len)
{
    size_t n = want - r->have;
    if (n > len)
        n = len;
    memcpy(r->buf + r->have, in, n);
    r->have += n;
    return n;
}

int ch_reader_feed(ch_reader_t *r, const uint8_t *in, size_t len,
                   size_t *used)
{
    size_t pos = 0;
    *used = 0;
    for (;;) {
        switch (r->state) {
        case CH_RS_HANDSHAKE:
            pos += collect(r, CH_HANDSHAKE_SIZE, in + pos, len - pos);
            if (r->have < CH_HANDSHAKE_SIZE) {
                *used = pos;
                return CH_RD_MORE;
            }
            ch_wire_decode_handshake(r->buf, &r->hs_port, r->hs_identity);
            r->have = 0;
            r->state = CH_RS_HEADER;
            *used = pos;
            return CH_RD_HANDSHAKE;
        case CH_RS_HEADER: {
            int rc;
            pos += collect(r, CH_HEADER_SIZE, in + pos, len - pos);
            if (r->have < CH_HEADER_SIZE) {
                *used = pos;
                return CH_RD_MORE;
            }
            r->have = 0;
            ch_wire_decode_header(r->buf, &r->hdr);
            *used = pos;
            rc = ch_wire_check_header(&r->hdr, r->max_msg_size, &r->why);
            if (rc != CH_OK) {
                r->error = rc;
                r->state = CH_RS_FAILED;
                return CH_RD_ERROR;
            }
            if (r->hdr.type & CH_MSG_REJECT) {
                r->reason_have = 0;
                r->state = CH_RS_REASON;
                break;
            }
            if (r->hdr.type & (CH_MSG_ACK | CH_MSG_NOOP))
                return CH_RD_CONTROL;
            r->payload_len = (uint32_t)r->hdr.header_len + r->hdr.data_len;
            r->payload_have = 0;
            r->payload = NULL;
            r->state = CH_RS_PAYLOAD_WAIT;
            return CH_RD_HEADER;
        }
        case CH_RS_REASON: {
            uint32_t n = r->hdr.data_len - r->reason_have;
            if (n > len - pos)
                n = (uint32_t)(len - pos);
            memcpy(r->reason + r->reason_have, in + pos, n);
            r->reason_have += n;
            pos += n;
            *used = pos;
            if (r->reason_have < r->hdr.data_len)
                return CH_RD_MORE;
            r->state = CH_RS_HEADER;
            return CH_RD_REJECT;
        }
        case CH_RS_PAYLOAD_WAIT:
            /* The caller did not provide the buffer: a usage error. */
            *used = pos;
            r->error = CH_EINVAL;
            r->why = "reader fed before the payload buffer was set";
            return CH_RD_ERROR;
        case CH_RS_PAYLOAD: {
            uint32_t n = r->payload_len - r->payload_have;
            if (n > len - pos)
                n = (uint32_t)(len - pos);
            if (n > 0) {
                memcpy(r->payload + r->payload_have, in + pos, n);
                r->payload_have += n;
                pos += n;
            }
            *used = pos;
            if (r->payload_have < r->payload_len)
                return CH_RD_MORE;
            r->state = CH_RS_HEADER;
            return CH_RD_MESSAGE;
        }
        default:
            *used = pos;
            return CH_RD_ERROR;
        }
    }
}

void ch_reader_set_payload(ch_reader_t *r, uint8_t *payload)
{
    r->payload = payload;
    r->payload_have = 0;
    r->state = CH_RS_PAYLOAD;
}

uint32_t ch_reader_payload_missing(const ch_reader_t *r)
{
    if (r->state != CH_RS_PAYLOAD)
        return 0;
    return r->payload_len - r->payload_have;
}

void ch_reader_payload_advance(ch_reader_t *r, uint32_t n)
{
    r->payload_have += n;
}
