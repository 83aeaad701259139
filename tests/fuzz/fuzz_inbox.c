/* tests/fuzz/fuzz_inbox.c - libFuzzer: the bridge's inbox ring
 * (csrc/bridge/inbox.c), driven by the input as a list of operations.
 *
 * Each input byte is one operation: even, take a block of (byte * 3) %
 * 700 bytes, filled with a pattern of its own; odd, give back the held
 * block the byte picks.  Held blocks never overlap, stay inside the
 * ring and keep their bytes; a refusal comes only when the ring holds
 * something (an empty ring takes any block that fits it); once every
 * block is given back, a block of half the ring fits again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/inbox.h"
#include "chirp_common.h"

#define CAP 4096
#define MAXB 256

typedef struct {
    uint8_t *p;
    size_t n;
    uint8_t fill;
} held_t;

static void check(const ch_inbox_t *in, const held_t *held, int nheld)
{
    int i, j;
    for (i = 0; i < nheld; i++) {
        const held_t *a = &held[i];
        size_t k;
        if (a->n > 0 && (a->p < in->buf || a->p + a->n > in->buf + in->cap))
            abort();
        if (!ch_inbox_holds(in, a->p))
            abort();
        for (k = 0; k < a->n; k++)
            if (a->p[k] != (uint8_t)(a->fill + k))
                abort();
        for (j = i + 1; j < nheld; j++) {
            const held_t *b = &held[j];
            if (a->n > 0 && b->n > 0 && a->p < b->p + b->n && b->p < a->p + a->n)
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_inbox_t in;
    held_t held[MAXB];
    int nheld = 0;
    size_t i;
    void *big;
    if (ch_inbox_init(&in, CAP) != CH_OK)
        abort();
    for (i = 0; i < size; i++) {
        uint8_t op = data[i];
        if ((op & 1) == 0 && nheld < MAXB) {
            size_t n = ((size_t)op * 3) % 700;
            uint8_t *p = ch_inbox_alloc(&in, n);
            if (p == NULL) {
                if (nheld == 0)
                    abort(); /* an empty ring refused a block that fits */
                continue;
            }
            if (((uintptr_t)p & 7) != 0)
                abort();
            held[nheld].p = p;
            held[nheld].n = n;
            held[nheld].fill = (uint8_t)i;
            memset(p, 0, n);
            {
                size_t k;
                for (k = 0; k < n; k++)
                    p[k] = (uint8_t)(held[nheld].fill + k);
            }
            nheld++;
        } else if (nheld > 0) {
            int k = (op >> 1) % nheld;
            ch_inbox_give_back(&in, held[k].p);
            held[k] = held[--nheld];
        }
        check(&in, held, nheld);
    }
    while (nheld > 0)
        ch_inbox_give_back(&in, held[--nheld].p);
    big = ch_inbox_alloc(&in, CAP / 2);
    if (big == NULL)
        abort();
    ch_inbox_give_back(&in, big);
    ch_inbox_free(&in);
    return 0;
}
