/* bridge/inbox.h - a ring of bytes for received messages copied out of
 * their slots.  Blocks are taken at the tail and given back in any order.
 * The caller locks. */
#ifndef CH_INBOX_H
#define CH_INBOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct ch_inbox {
    uint8_t *buf;
    size_t cap;
    size_t head; /* the oldest block not yet reclaimed */
    size_t tail; /* where the next block goes */
    size_t used; /* bytes from head to tail (gaps included) */
    int wrapped; /* tail is before head */
} ch_inbox_t;

/* CH_OK, CH_EINVAL (below 64 bytes or above 2 GiB) or CH_ENOMEM. */
int ch_inbox_init(ch_inbox_t *in, size_t cap);
void ch_inbox_free(ch_inbox_t *in);
/* n bytes, 8-aligned, or NULL when they do not fit now. */
void *ch_inbox_alloc(ch_inbox_t *in, size_t n);
/* Give back what ch_inbox_alloc returned (in any order). */
void ch_inbox_give_back(ch_inbox_t *in, void *p);
/* Is p in the ring's memory (a block it gave)? */
int ch_inbox_holds(const ch_inbox_t *in, const void *p);

#endif
