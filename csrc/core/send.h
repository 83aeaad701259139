/* core/send.h - the core's side of a ch_send_t (chirp.h): its states.
 * Every accepted send ends in exactly one ch_remote_complete()
 * (remote.h). */
#ifndef CH_SEND_H
#define CH_SEND_H

#include "chirp.h"
#include "util/queue.h"

/* ch_send_t.state_ */
#define CH_SS_NEW 0
#define CH_SS_QUEUED 1   /* on its remote's queue */
#define CH_SS_WRITING 2  /* in a write of a connection */
#define CH_SS_INFLIGHT 3 /* written, waiting for its ACK */
#define CH_SS_DONE 4

/* The send whose link_ this is. */
static inline ch_send_t *ch_send_of(ch_link_t *link)
{
    return link != NULL ? CH_CONTAINER_OF(link, ch_send_t, link_) : NULL;
}

#endif
