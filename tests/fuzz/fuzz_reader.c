/* tests/fuzz/fuzz_reader.c - libFuzzer: the incremental reader
 * (csrc/wire/reader.c) against the whole-buffer model (model.h).
 *
 * Input: byte 0 picks max_msg_size, bytes 1-2 seed the split of the rest
 * into reads of 1 to 64 bytes; the rest is the stream a peer sends (the
 * handshake, then frames).  Both must give the same events, in order:
 * handshakes, controls, messages, reject frames (with the same lengths
 * and bytes), up to the same protocol error or the same incomplete end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "wire/reader.h"

#define MAX_EVENTS 4096

static const uint32_t MAXES[4] = {1, 64, 1000, 65536};

static m_event_t want[MAX_EVENTS], got[MAX_EVENTS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_reader_t rd;
    uint32_t max, seed;
    const uint8_t *in;
    size_t len, pos = 0, nwant, ngot = 0;
    uint8_t *payload = NULL;
    uint64_t idsum = 0;
    int failed = 0;
    if (size < 3)
        return 0;
    max = MAXES[data[0] & 3];
    seed = (uint32_t)data[1] << 8 | data[2];
    in = data + 3;
    len = size - 3;
    nwant = m_parse(in, len, max, want, MAX_EVENTS);

    ch_reader_init(&rd, max);
    while (pos < len && !failed && ngot < MAX_EVENTS) {
        size_t chunk, off = 0;
        seed = seed * 1103515245u + 12345u;
        chunk = 1 + (seed >> 16) % 64;
        if (chunk > len - pos)
            chunk = len - pos;
        for (;;) {
            size_t used;
            int ev = ch_reader_feed(&rd, in + pos + off, chunk - off, &used);
            m_event_t *e = &got[ngot];
            off += used;
            if (ev == CH_RD_MORE)
                break;
            if (ngot == MAX_EVENTS)
                break;
            memset(e, 0, sizeof(*e));
            switch (ev) {
            case CH_RD_HANDSHAKE:
                e->kind = EV_HANDSHAKE;
                e->a = rd.hs_port;
                e->sum = m_fnv(M_FNV0, rd.hs_identity, 16);
                ngot++;
                break;
            case CH_RD_CONTROL:
                e->kind = EV_CONTROL;
                e->a = rd.hdr.type;
                e->sum = m_fnv(M_FNV0, rd.hdr.identity, 16);
                ngot++;
                break;
            case CH_RD_HEADER:
                /* the payload's buffer, as a slot would give it */
                free(payload);
                payload = malloc(rd.payload_len ? rd.payload_len : 1);
                if (payload == NULL)
                    abort();
                idsum = m_fnv(M_FNV0, rd.hdr.identity, 16);
                ch_reader_set_payload(&rd, payload);
                break;
            case CH_RD_MESSAGE:
                e->kind = EV_MESSAGE;
                e->a = rd.hdr.type;
                e->len = rd.payload_len;
                e->sum = m_fnv(idsum, payload, rd.payload_len);
                ngot++;
                break;
            case CH_RD_REJECT:
                e->kind = EV_REJECT;
                e->a = rd.hdr.type;
                e->len = rd.hdr.data_len;
                e->sum = m_fnv(m_fnv(M_FNV0, rd.hdr.identity, 16), rd.reason, rd.hdr.data_len);
                ngot++;
                break;
            default:
                e->kind = EV_ERROR;
                e->a = rd.hdr.type;
                ngot++;
                failed = 1;
                break;
            }
            if (failed)
                break;
        }
        pos += chunk;
    }
    free(payload);
    if (ngot > MAX_EVENTS - 1 || nwant > MAX_EVENTS - 1)
        return 0; /* one side stopped at the cap: compare nothing */
    if (ngot != nwant)
        abort();
    if (memcmp(got, want, ngot * sizeof(m_event_t)) != 0)
        abort();
    return 0;
}
