/* inbox.c - a white-box test of the inbox ring (csrc/bridge/inbox.c): random
 * takes and give-backs, in and out of order, against what must hold:
 * held blocks never overlap and keep their bytes; a block is refused
 * only when no free run in the ring is big enough for it; once everything
 * is given back, one block of nearly the whole ring fits again.  Then a
 * few fixed cases at the edges (exactly full, wrap, a gap at the end).
 * Exit 0 on success.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/inbox.h"
#include "chirp_common.h"
#include "testkit.h"

#define CAP 4096
#define MAXB 512
#define HDR 8 /* the ring's per-block header */

typedef struct {
    uint8_t *p;
    size_t n;
    uint8_t fill;
} held_t;

static held_t held[MAXB];
static int nheld;
static size_t rounded(size_t n)
{
    return (HDR + (n > 0 ? n : 1) + 7) & ~(size_t)7; /* 0 bytes take 1 */
}

/* The free runs: with blocks held in the order they were taken, and the
 * ring's head at the first still-held (or not reclaimed) block, is there
 * room for need bytes?  Checked from the ring's own fields: a refusal
 * is right only if neither the run after tail nor the one before head
 * fits. */
static int fits(const ch_inbox_t *in, size_t need)
{
    if (in->used == 0)
        return need <= in->cap;
    if (in->wrapped)
        return in->head - in->tail >= need;
    return in->cap - in->tail >= need || in->head >= need;
}

static void take(ch_inbox_t *in, size_t n)
{
    int room = fits(in, rounded(n)) || in->used == 0;
    uint8_t *p = ch_inbox_alloc(in, n);
    int i;
    if (p == NULL) {
        CHECK(!room, "refused %zu bytes with room (used %zu head %zu "
                     "tail %zu wrapped %d)",
              n, in->used, in->head, in->tail, in->wrapped);
        return;
    }
    CHECK(((uintptr_t)p & 7) == 0, "block not 8-aligned");
    CHECK(p >= in->buf && p + n <= in->buf + in->cap, "block outside");
    for (i = 0; i < nheld; i++)
        CHECK(p + n <= held[i].p || held[i].p + held[i].n <= p,
              "block overlaps a held one");
    held[nheld].p = p;
    held[nheld].n = n;
    held[nheld].fill = (uint8_t)rand();
    memset(p, held[nheld].fill, n);
    nheld++;
}

static void give(ch_inbox_t *in, int i)
{
    size_t k;
    for (k = 0; k < held[i].n; k++)
        if (held[i].p[k] != held[i].fill) {
            CHECK(0, "held block changed");
            break;
        }
    ch_inbox_give_back(in, held[i].p);
    held[i] = held[--nheld];
}

static void give_all(ch_inbox_t *in)
{
    while (nheld > 0)
        give(in, rand() % nheld);
}

int main(void)
{
    ch_inbox_t in;
    void *a, *b, *c;
    int round, step;
    srand(7);
    CHECK(ch_inbox_init(&in, 32) == CH_EINVAL, "tiny ring accepted");
    CHECK(ch_inbox_init(&in, CAP) == CH_OK, "init");
    for (round = 0; round < 2000; round++) {
        for (step = 0; step < 40; step++) {
            if (nheld < MAXB && (nheld == 0 || rand() % 3 != 0)) {
                size_t n = rand() % 4 == 0 ? (size_t)(rand() % 1500)
                                           : (size_t)(rand() % 120);
                take(&in, n);
            } else {
                /* mostly the oldest first, as a receiver does */
                give(&in, rand() % 4 == 0 ? rand() % nheld : 0);
            }
        }
        if (round % 50 == 0) {
            give_all(&in);
            CHECK(in.used == 0, "not empty after giving all back");
            a = ch_inbox_alloc(&in, CAP - HDR);
            CHECK(a != NULL, "the whole ring does not fit when empty");
            if (a != NULL)
                ch_inbox_give_back(&in, a);
        }
    }
    give_all(&in);
    CHECK(in.used == 0, "not empty at the end");

    /* Exactly full, then nothing more; freed, everything again. */
    a = ch_inbox_alloc(&in, CAP / 2 - HDR);
    b = ch_inbox_alloc(&in, CAP / 2 - HDR);
    CHECK(a != NULL && b != NULL, "two halves");
    CHECK(ch_inbox_alloc(&in, 0) == NULL, "a block beyond full");
    ch_inbox_give_back(&in, a);
    /* the first half is free, behind the tail: a wrap */
    c = ch_inbox_alloc(&in, 100);
    CHECK(c == in.buf + HDR, "wrap to the front");
    ch_inbox_give_back(&in, b);
    ch_inbox_give_back(&in, c);
    CHECK(in.used == 0 && in.head == 0 && in.tail == 0, "empty again");
    /* A gap: the end too short for the next block is skipped. */
    a = ch_inbox_alloc(&in, CAP - 200);
    b = ch_inbox_alloc(&in, 100);
    ch_inbox_give_back(&in, a);
    c = ch_inbox_alloc(&in, 300); /* does not fit after b: at the front */
    CHECK(c == in.buf + HDR, "block after a gap at the front");
    ch_inbox_give_back(&in, b); /* reclaims b and the gap */
    CHECK(in.head == 0 && !in.wrapped, "gap reclaimed");
    ch_inbox_give_back(&in, c);
    CHECK(in.used == 0, "empty at last");
    CHECK(ch_inbox_alloc(&in, CAP + 1) == NULL, "bigger than the ring");
    ch_inbox_free(&in);
    printf("inbox: %s\n", kit_failed() ? "FAILED" : "ok");
    return kit_failed();
}
