/* core/send.c - preparing sends (chirp.h) and completing them (send.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include "core/send.h"

void ch_send_init(ch_send_t *req)
{
    memset(req, 0, sizeof(*req));
}

void ch_send_set_identity(ch_send_t *req, const uint8_t id[CH_ID_SIZE])
{
    memcpy(req->identity, id, CH_ID_SIZE);
    req->has_identity_ = 1;
}

void ch_send_set_dest(ch_send_t *req, const ch_dest_t *dest)
{
    req->ip_protocol = dest->ip_protocol;
    memcpy(req->address, dest->address, 16);
    req->port = dest->port;
}
