/* bridge/wake.c - when to wake the loop thread.  Other threads queue
 * commands and releases under mu; one write to the wake fd wakes the loop
 * for all of them (not uv_async_send: its loop side busy-waits while a
 * sending thread is inside it, which showed as a tenth of a receiver's
 * CPU).  No wake-up is needed while the loop thread spins (awake) or is
 * busy and drains the queues before it sleeps (running).  Every function
 * here runs with b->mu held. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "bridge/bridge_int.h"

int ch_wake_open(ch_bridge_t *b)
{
    return ch_wakefd_open(&b->wake.fd);
}

static int loop_sleeps(const ch_bridge_t *b)
{
    return !b->wake.awake && !b->wake.running;
}

void ch_wake_queued(ch_bridge_t *b, int was_empty)
{
    if (was_empty && loop_sleeps(b))
        ch_wakefd_signal(&b->wake.fd);
}

void ch_wake_expect_answer(ch_bridge_t *b)
{
    if (b->spin_ns > 0 && loop_sleeps(b) && !b->wake.poked && !b->closing &&
        ch_cmds_queues_empty(b)) {
        b->wake.poked = 1;
        ch_wakefd_signal(&b->wake.fd);
    }
}

void ch_wake_now(ch_bridge_t *b)
{
    ch_wakefd_signal(&b->wake.fd);
}
