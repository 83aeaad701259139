/* wire/wire.c - encode and decode the handshake, the message header and
 * the capability frame (wire.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include "wire/wire.h"

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

void ch_wire_encode_handshake(uint8_t out[CH_HANDSHAKE_SIZE], uint16_t port,
                              const uint8_t identity[CH_ID_SIZE])
{
    put16(out, port);
    memcpy(out + 2, identity, CH_ID_SIZE);
}

void ch_wire_decode_handshake(const uint8_t in[CH_HANDSHAKE_SIZE],
                              uint16_t *port, uint8_t identity[CH_ID_SIZE])
{
    *port = get16(in);
    memcpy(identity, in + 2, CH_ID_SIZE);
}

void ch_wire_encode_header(uint8_t out[CH_HEADER_SIZE],
                           const ch_wire_header_t *h)
{
    memcpy(out, h->identity, CH_ID_SIZE);
    put32(out + 16, h->serial);
    put32(out + 20, h->data_len);
    put16(out + 24, h->header_len);
    out[26] = h->type;
}

void ch_wire_decode_header(const uint8_t in[CH_HEADER_SIZE],
                           ch_wire_header_t *h)
{
    memcpy(h->identity, in, CH_ID_SIZE);
    h->serial = get32(in + 16);
    h->data_len = get32(in + 20);
    h->header_len = get16(in + 24);
    h->type = in[26];
}

int ch_wire_check_header(const ch_wire_header_t *h, uint32_t max_msg_size,
                         const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    if (h->type & ~(CH_MSG_REQ_ACK | CH_MSG_ACK | CH_MSG_NOOP |
                    CH_MSG_REJECT)) {
        *why = "unknown message type bits";
        return CH_EPROTO;
    }
    if (h->type & CH_MSG_REJECT) {
        if (h->type != (CH_MSG_ACK | CH_MSG_REJECT)) {
            *why = "REJECT without ACK, or with other type bits";
            return CH_EPROTO;
        }
        if (h->header_len != 0 || h->data_len > CH_REJECT_MAX) {
            *why = "reject frame with a header or a reason too long";
            return CH_EPROTO;
        }
        return CH_OK;
    }
    if ((h->type & CH_MSG_ACK) && (h->type & CH_MSG_NOOP)) {
        *why = "message is both ACK and NOOP";
        return CH_EPROTO;
    }
    if (h->type & (CH_MSG_ACK | CH_MSG_NOOP)) {
        if (h->type & CH_MSG_REQ_ACK) {
            *why = "ACK or NOOP that requests an ACK";
            return CH_EPROTO;
        }
        if (h->header_len != 0 || h->data_len != 0) {
            *why = "ACK or NOOP with header or data";
            return CH_EPROTO;
        }
        return CH_OK;
    }
    /* 64-bit sum: header_len + data_len cannot wrap. */
    if ((uint64_t)h->header_len + (uint64_t)h->data_len >
        (uint64_t)max_msg_size) {
        *why = "header_len + data_len exceeds max_msg_size";
        return CH_EMSGSIZE;
    }
    return CH_OK;
}

void ch_wire_encode_cap(uint8_t out[CH_HEADER_SIZE], uint32_t serial,
                        const ch_cap_t *cap)
{
    ch_wire_header_t h;
    memset(&h, 0, sizeof(h));
    memcpy(h.identity, CH_CAP_TAG, CH_CAP_TAG_SIZE);
    h.identity[8] = cap->version;
    h.identity[9] = cap->flags;
    put16(h.identity + 10, cap->window);
    put32(h.identity + 12, cap->max_msg_size);
    h.serial = serial;
    h.type = CH_MSG_NOOP;
    ch_wire_encode_header(out, &h);
}

int ch_wire_decode_cap(const ch_wire_header_t *h, ch_cap_t *cap)
{
    if (h->type != CH_MSG_NOOP || h->header_len != 0 || h->data_len != 0 ||
        memcmp(h->identity, CH_CAP_TAG, CH_CAP_TAG_SIZE) != 0 ||
        h->identity[8] < 1)
        return 0;
    cap->version = h->identity[8];
    cap->flags = h->identity[9];
    cap->window = get16(h->identity + 10);
    cap->max_msg_size = get32(h->identity + 12);
    if (cap->window == 0)
        cap->window = 1;
    return 1;
}
