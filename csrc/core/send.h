/* core/send.h - the core's side of a ch_send_t (chirp.h): its states and
 * its one completion.  Every accepted send ends in exactly one
 * ch_send_complete(). */
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

/* Run the callback (once): status and a detail ("" on success; the
 * error's meaning when none is given). */
static inline void ch_send_complete(ch_send_t *s, int status,
                                    const char *detail)
{
    s->state_ = CH_SS_DONE;
    s->remote_ = NULL;
    s->conn_ = NULL;
    if (detail == NULL || (status != CH_OK && detail[0] == '\0'))
        detail = status == CH_OK ? "" : ch_strerror(status);
    s->cb(s, status, detail);
}

/* The send whose link_ this is. */
static inline ch_send_t *ch_send_of(ch_link_t *link)
{
    return link != NULL ? CH_CONTAINER_OF(link, ch_send_t, link_) : NULL;
}

#endif
