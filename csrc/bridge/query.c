/* bridge/query.c - the node's stats and peers for another thread: a
 * command the loop thread fills in (loop.c, run_query) while the caller
 * waits.  The query lives on the caller's stack; if the loop finished
 * before taking it, the caller unlinks it from the queue itself. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include "bridge/bridge_int.h"

int ch_bridge_query(ch_bridge_t *b, ch_stats_t *stats, ch_peer_info_t *peers,
                    int max, int *npeers)
{
    ch_query_t q;
    int rc = CH_OK;
    if (max < 0 || (peers == NULL && max > 0))
        return CH_EINVAL;
    memset(&q, 0, sizeof(q));
    q.cmd.kind = CH_CMD_QUERY;
    q.stats = stats;
    q.peers = peers;
    q.max = max;
    uv_mutex_lock(&b->mu);
    if (b->closed) {
        uv_mutex_unlock(&b->mu);
        return CH_ECLOSED;
    }
    ch_cmds_queue(b, &q.cmd);
    /* Taken commands all run before the loop ends: once it has ended
     * without filling this one in, it is still queued. */
    if (!ch_wait_for(b, &b->reqs.cv, &q.done, -1, 1)) {
        ch_list_remove(&b->cmds.queue, &q.cmd.link);
        rc = CH_ECLOSED;
    }
    uv_mutex_unlock(&b->mu);
    if (rc == CH_OK && npeers != NULL)
        *npeers = q.npeers;
    return rc;
}
