/* util/htable.h - a hash table of intrusive lists (queue.h): an element
 * carries a ch_link_t and the table a function that hashes it.  It grows
 * to twice the buckets when it holds twice as many elements as buckets;
 * without memory for that it stays as it is (slower, still correct).
 * The remotes of a node and the bridge's pending requests are such
 * tables.  The caller locks, if anybody must. */
#ifndef CH_HTABLE_H
#define CH_HTABLE_H

#include <stdint.h>

#include "util/queue.h"

typedef uint64_t (*ch_hash_fn)(const ch_link_t *link);

typedef struct ch_htable {
    ch_list_t *buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    ch_hash_fn hash;
    int walking; /* in ch_htable_each: no growing meanwhile */
} ch_htable_t;

/* CH_OK or CH_ENOMEM; nbuckets a power of two. */
int ch_htable_init(ch_htable_t *t, size_t nbuckets, ch_hash_fn hash);
/* Take every element out, calling free_elem (if not NULL) on each, and
 * free the buckets. */
void ch_htable_free(ch_htable_t *t, void (*free_elem)(ch_link_t *));
/* The bucket of a hash: walk it with ch_list_first/ch_list_next. */
static inline ch_list_t *ch_htable_bucket(const ch_htable_t *t, uint64_t h)
{
    return &t->buckets[h & (t->nbuckets - 1)];
}
void ch_htable_add(ch_htable_t *t, ch_link_t *link);
void ch_htable_remove(ch_htable_t *t, ch_link_t *link);
/* Call fn on every element; fn may remove (and free) the one it is given,
 * and add others (which it may or may not be called on). */
void ch_htable_each(ch_htable_t *t, void (*fn)(ch_link_t *, void *),
                    void *arg);

#endif
