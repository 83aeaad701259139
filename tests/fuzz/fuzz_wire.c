/* tests/fuzz/fuzz_wire.c - libFuzzer: the wire module (csrc/wire/wire.c).
 *
 * Input: 27 bytes of a header, the rest of the bytes as a handshake, and
 * the first 4 bytes as a max_msg_size.  Decoding then encoding gives the
 * same bytes back (header, handshake); ch_wire_check_header agrees with
 * the model's rules (model.h); a header ch_wire_decode_cap takes as a
 * capability frame has the tag, and encoding that capability again
 * decodes to the same values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chirp_common.h"
#include "model.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[CH_HEADER_SIZE], hs[CH_HANDSHAKE_SIZE], id[CH_ID_SIZE];
    ch_wire_header_t h;
    ch_cap_t cap, again;
    const char *why = NULL;
    uint32_t max;
    uint16_t port;
    int ok;
    if (size < CH_HEADER_SIZE + CH_HANDSHAKE_SIZE)
        return 0;
    max = m_be32(data);
    if (max == 0)
        max = 1;

    ch_wire_decode_header(data, &h);
    ch_wire_encode_header(out, &h);
    if (memcmp(out, data, CH_HEADER_SIZE) != 0)
        abort();
    ok = ch_wire_check_header(&h, max, &why) == CH_OK;
    if (ok != m_header_ok(h.type, h.header_len, h.data_len, max))
        abort();
    if (!ok && why == NULL)
        abort(); /* a refusal says why */

    ch_wire_decode_handshake(data + CH_HEADER_SIZE, &port, id);
    ch_wire_encode_handshake(hs, port, id);
    if (memcmp(hs, data + CH_HEADER_SIZE, CH_HANDSHAKE_SIZE) != 0)
        abort();

    if (ch_wire_decode_cap(&h, &cap)) {
        ch_wire_header_t h2;
        if (memcmp(h.identity, "CHIRPCAP", 8) != 0 || h.type != M_NOOP || cap.window == 0)
            abort();
        ch_wire_encode_cap(out, h.serial, &cap);
        ch_wire_decode_header(out, &h2);
        if (!ch_wire_decode_cap(&h2, &again) || h2.serial != h.serial ||
            again.version != cap.version || again.flags != cap.flags ||
            again.window != cap.window || again.max_msg_size != cap.max_msg_size)
            abort();
    }
    return 0;
}
