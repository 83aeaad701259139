/* util/htable.c - a hash table of intrusive lists (htable.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "util/alloc.h"
#include "util/htable.h"

static ch_list_t *new_buckets(size_t n)
{
    ch_list_t *b = ch_malloc(n * sizeof(*b));
    size_t i;
    if (b != NULL)
        for (i = 0; i < n; i++)
            ch_list_init(&b[i]);
    return b;
}

int ch_htable_init(ch_htable_t *t, size_t nbuckets, ch_hash_fn hash)
{
    t->buckets = new_buckets(nbuckets);
    t->nbuckets = t->buckets != NULL ? nbuckets : 0;
    t->count = 0;
    t->hash = hash;
    t->walking = 0;
    return t->buckets != NULL ? CH_OK : CH_ENOMEM;
}

void ch_htable_free(ch_htable_t *t, void (*free_elem)(ch_link_t *))
{
    size_t i;
    ch_link_t *l;
    for (i = 0; i < t->nbuckets; i++)
        while ((l = ch_list_pop(&t->buckets[i])) != NULL)
            if (free_elem != NULL)
                free_elem(l);
    ch_free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = t->count = 0;
}

static void grow(ch_htable_t *t)
{
    size_t n = t->nbuckets * 2, i;
    ch_list_t *old = t->buckets, *nb = new_buckets(n);
    ch_link_t *l;
    if (nb == NULL)
        return;
    t->buckets = nb;
    t->nbuckets = n;
    for (i = 0; i < n / 2; i++)
        while ((l = ch_list_pop(&old[i])) != NULL)
            ch_list_push(ch_htable_bucket(t, t->hash(l)), l);
    ch_free(old);
}

void ch_htable_add(ch_htable_t *t, ch_link_t *link)
{
    ch_list_push(ch_htable_bucket(t, t->hash(link)), link);
    t->count++;
    if (t->count > 2 * t->nbuckets && !t->walking)
        grow(t);
}

void ch_htable_remove(ch_htable_t *t, ch_link_t *link)
{
    ch_list_remove(ch_htable_bucket(t, t->hash(link)), link);
    t->count--;
}

void ch_htable_each(ch_htable_t *t, void (*fn)(ch_link_t *, void *),
                    void *arg)
{
    size_t i;
    t->walking++;
    for (i = 0; i < t->nbuckets; i++) {
        ch_list_t *bucket = &t->buckets[i];
        ch_link_t *l, *next;
        for (l = ch_list_first(bucket); l != NULL; l = next) {
            next = ch_list_next(bucket, l);
            fn(l, arg);
        }
    }
    t->walking--;
}
