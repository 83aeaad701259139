/* util/bufcache.h - buffers for messages too big for a slot's own.
 * Memory fresh from the system costs a page fault per 4 KiB as it is first
 * written, more than the copy itself for big messages, so a few freed
 * buffers are kept for the next ones (at most CH_BUFCACHE_KEEP bytes in
 * all), and let go after a tick without big messages.  Loop thread only;
 * the node owns one. */
#ifndef CH_BUFCACHE_H
#define CH_BUFCACHE_H

#include <stddef.h>
#include <stdint.h>

#define CH_BUFCACHE_SLOTS 8
#define CH_BUFCACHE_KEEP (8u * 1024u * 1024u)

typedef struct ch_bufcache {
    uint8_t *buf[CH_BUFCACHE_SLOTS];
    uint32_t cap[CH_BUFCACHE_SLOTS];
    int n;
    size_t bytes;
    int used;    /* since the last tick */
    int closing; /* keep nothing more */
} ch_bufcache_t;

/* A buffer of at least size bytes (its real size in *cap, to be handed
 * back to ch_bufcache_put), or NULL. */
uint8_t *ch_bufcache_get(ch_bufcache_t *c, uint32_t size, uint32_t *cap);
/* Keep the buffer for the next message, or free it. */
void ch_bufcache_put(ch_bufcache_t *c, uint8_t *buf, uint32_t cap);
/* A timer tick: free what was kept if no big message came since the last. */
void ch_bufcache_tick(ch_bufcache_t *c);
/* Free what is kept and keep nothing from now on (the node closes). */
void ch_bufcache_close(ch_bufcache_t *c);

#endif
