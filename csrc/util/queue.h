/* util/queue.h - the core's one intrusive list: circular, doubly linked,
 * with a counted head (the shape of libuv's queue and nng's nni_list).
 * An element carries a ch_link_t (chirp_common.h); CH_CONTAINER_OF gives
 * the element back from its link.  Every list of the core and the bridge
 * is one of these: send queues, connections, ACK queues, the bridge's
 * command, release and message queues. */
#ifndef CH_QUEUE_H
#define CH_QUEUE_H

#include <stddef.h>

#include "chirp_common.h"

#define CH_CONTAINER_OF(ptr, type, field)                                   \
    ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

typedef struct ch_list {
    ch_link_t head;
    size_t len;
} ch_list_t;

/* A list must be initialised before use (a zeroed one is not valid), and
 * is never copied by value: ch_list_move hands its elements over. */
static inline void ch_list_init(ch_list_t *l)
{
    l->head.next = l->head.prev = &l->head;
    l->len = 0;
}

static inline int ch_list_empty(const ch_list_t *l)
{
    return l->len == 0;
}

/* Is x on a list?  (A link is cleared when it leaves one.) */
static inline int ch_link_listed(const ch_link_t *x)
{
    return x->next != NULL;
}

static inline void ch_list_push(ch_list_t *l, ch_link_t *x)
{
    x->next = &l->head;
    x->prev = l->head.prev;
    l->head.prev->next = x;
    l->head.prev = x;
    l->len++;
}

static inline void ch_list_push_front(ch_list_t *l, ch_link_t *x)
{
    x->prev = &l->head;
    x->next = l->head.next;
    l->head.next->prev = x;
    l->head.next = x;
    l->len++;
}

static inline void ch_list_remove(ch_list_t *l, ch_link_t *x)
{
    x->prev->next = x->next;
    x->next->prev = x->prev;
    x->next = x->prev = NULL;
    l->len--;
}

static inline ch_link_t *ch_list_first(const ch_list_t *l)
{
    return l->len > 0 ? l->head.next : NULL;
}

/* The element after x, or NULL at the end. */
static inline ch_link_t *ch_list_next(const ch_list_t *l, const ch_link_t *x)
{
    return x->next == &l->head ? NULL : x->next;
}

static inline ch_link_t *ch_list_pop(ch_list_t *l)
{
    ch_link_t *x = ch_list_first(l);
    if (x != NULL)
        ch_list_remove(l, x);
    return x;
}

/* Append every element of from to to; from is empty afterwards. */
static inline void ch_list_move(ch_list_t *to, ch_list_t *from)
{
    if (from->len == 0)
        return;
    from->head.next->prev = to->head.prev;
    to->head.prev->next = from->head.next;
    from->head.prev->next = &to->head;
    to->head.prev = from->head.prev;
    to->len += from->len;
    ch_list_init(from);
}

#endif
