/* bridge/inbox.c - a ring of bytes for received messages copied out of
 * their slots (the bridge's inbox, see receive.c).  Blocks are taken at
 * the tail and given back in any order; space is reclaimed from the head,
 * over the blocks given back, so a block still held keeps the ones after
 * it from being reused, never from being given back.  The caller locks.
 *
 * Each block starts with a ch_inblock_t: its size (this header included,
 * a multiple of 8) and whether it is still held.  A block that does not
 * fit before the end of the buffer starts at offset 0; the tail end left
 * over is marked as a gap (or is too short for a header, and is skipped
 * by its size alone). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdint.h>
#include <string.h>

#include "bridge/inbox.h"
#include "chirp_common.h"
#include "util/alloc.h"

#define CH_IB_HELD 1
#define CH_IB_GIVEN 2 /* given back, not yet reclaimed */
#define CH_IB_GAP 3   /* the unused end before a wrap */

typedef struct ch_inblock {
    uint32_t size;
    uint32_t state;
} ch_inblock_t;

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)

int ch_inbox_init(ch_inbox_t *in, size_t cap)
{
    memset(in, 0, sizeof(*in));
    cap &= ~(size_t)7u;
    if (cap < 64 || cap > 0x7fffffffu)
        return CH_EINVAL;
    in->buf = ch_malloc(cap);
    if (in->buf == NULL)
        return CH_ENOMEM;
    in->cap = cap;
    return CH_OK;
}

void ch_inbox_free(ch_inbox_t *in)
{
    ch_free(in->buf);
    memset(in, 0, sizeof(*in));
}

static ch_inblock_t *block_at(ch_inbox_t *in, size_t off)
{
    return (ch_inblock_t *)(void *)(in->buf + off);
}

void *ch_inbox_alloc(ch_inbox_t *in, size_t n)
{
    /* At least one byte: a block of none at the very end would begin at
     * buf + cap, where ch_inbox_holds no longer sees it (found by
     * tests/fuzz/fuzz_inbox.c; the bridge never asks for 0 bytes). */
    size_t need = ALIGN8(sizeof(ch_inblock_t) + (n > 0 ? n : 1));
    size_t off;
    /* An empty ring has head and tail at 0 (reclaim starts it over). */
    if (in->buf == NULL || n > in->cap)
        return NULL;
    if (in->tail >= in->head && !in->wrapped) {
        /* Free: tail .. end, and 0 .. head. */
        if (in->cap - in->tail >= need) {
            off = in->tail;
        } else if (in->head >= need) {
            size_t rest = in->cap - in->tail;
            if (rest >= sizeof(ch_inblock_t)) {
                block_at(in, in->tail)->size = (uint32_t)rest;
                block_at(in, in->tail)->state = CH_IB_GAP;
            }
            in->used += rest;
            in->tail = 0;
            in->wrapped = 1;
            off = 0;
        } else {
            return NULL;
        }
    } else {
        /* Wrapped: free is tail .. head. */
        if (in->head - in->tail < need)
            return NULL;
        off = in->tail;
    }
    block_at(in, off)->size = (uint32_t)need;
    block_at(in, off)->state = CH_IB_HELD;
    in->tail = off + need;
    in->used += need;
    return in->buf + off + sizeof(ch_inblock_t);
}

/* Reclaim given-back blocks (and gaps) at the head. */
static void reclaim(ch_inbox_t *in)
{
    while (in->used > 0) {
        size_t rest = in->cap - in->head;
        ch_inblock_t *h;
        if (in->wrapped && rest < sizeof(ch_inblock_t)) {
            in->used -= rest; /* a tail end too short for a header */
            in->head = 0;
            in->wrapped = 0;
            continue;
        }
        h = block_at(in, in->head);
        if (h->state == CH_IB_HELD)
            return;
        in->used -= h->size;
        if (h->state == CH_IB_GAP) {
            in->head = 0;
            in->wrapped = 0;
        } else {
            in->head += h->size;
            if (in->head == in->cap) {
                in->head = 0;
                in->wrapped = 0;
            }
        }
    }
    in->head = in->tail = 0;
    in->wrapped = 0;
}

void ch_inbox_give_back(ch_inbox_t *in, void *p)
{
    ch_inblock_t *h = (ch_inblock_t *)(void *)((uint8_t *)p -
                                               sizeof(ch_inblock_t));
    h->state = CH_IB_GIVEN;
    reclaim(in);
}

int ch_inbox_holds(const ch_inbox_t *in, const void *p)
{
    const uint8_t *b = p;
    return in->buf != NULL && b >= in->buf && b < in->buf + in->cap;
}
