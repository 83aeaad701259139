/* util/bufcache.h - buffers for messages too big for a slot's own.
 * Memory fresh from the system costs a page fault per 4 KiB as it is first
 * written, more than the copy itself for big messages, so a few freed
 * buffers are kept for the next ones (at most CH_BUFCACHE_KEEP bytes in
 * all), and let go after a tick without big messages.  Loop thread only;
 * the node owns one.
 *
 * A buffer the application took over (ch_message_take_buffer) comes back
 * from any thread through ch_bufcache_return, into a pool of the process
 * that every node's cache draws from: without it each taken buffer would
 * be fresh memory again.  A buffer knows its own size (kept just before
 * it), so the application hands back only the pointer. */
#ifndef CH_BUFCACHE_H
#define CH_BUFCACHE_H

#include <stddef.h>
#include <stdint.h>

#define CH_BUFCACHE_SLOTS 8
#define CH_BUFCACHE_KEEP (8u * 1024u * 1024u)

typedef struct ch_bufcache {
    uint8_t *buf[CH_BUFCACHE_SLOTS];
    int n;
    size_t bytes;
    int used;    /* since the last tick */
    int closing; /* keep nothing more */
} ch_bufcache_t;

/* Set up a node's cache (the process's pool keeps buffers only while a
 * cache is open). */
void ch_bufcache_init(ch_bufcache_t *c);
/* A buffer of at least size bytes, kept or new (its real size:
 * ch_bufcache_size), or NULL. */
uint8_t *ch_bufcache_get(ch_bufcache_t *c, uint32_t size);
/* A new buffer of exactly size bytes (for ch_bufcache_put or _return
 * like the others), or NULL. */
uint8_t *ch_bufcache_fresh(uint32_t size);
/* The size of a buffer ch_bufcache_get or ch_bufcache_fresh gave. */
uint32_t ch_bufcache_size(const uint8_t *buf);
/* Keep the buffer for the next message, or free it. */
void ch_bufcache_put(ch_bufcache_t *c, uint8_t *buf);
/* A buffer the application took is done with (any thread): kept in the
 * process's pool while some node's cache is open in this process (a
 * child forked from it frees them), else freed. */
void ch_bufcache_return(uint8_t *buf);
/* A timer tick: free what was kept if no big message came since the last
 * (the process's pool too, if nothing came back to it or left it). */
void ch_bufcache_tick(ch_bufcache_t *c);
/* Free what is kept and keep nothing from now on (the node closes); the
 * process's pool is emptied too.  A second call does nothing. */
void ch_bufcache_close(ch_bufcache_t *c);

#endif
