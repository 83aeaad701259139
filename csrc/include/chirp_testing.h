/* chirp_testing.h - hooks for tests: make the core's allocations fail on
 * demand, so that tests can check that each failure becomes an error on
 * one operation, never a crash or a leak; and reach into a node to
 * provoke a race the tests cannot time from outside. */
#ifndef CHIRP_TESTING_H
#define CHIRP_TESTING_H

#include "chirp_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Make the core's allocations fail: every call after fail_after calls
 * (-1: off) and every fail_every-th call (0: off); counters restart.
 * ch_alloc_inject(-1, 0) turns it off. */
void ch_alloc_inject(long fail_after, long fail_every);
/* Allocations failed on purpose since the last ch_alloc_inject(). */
long ch_alloc_failures(void);

/* Buffers ch_message_take_buffer handed out and not yet freed with
 * ch_message_buffer_free (all nodes of the process). */
long ch_testing_taken_buffers(void);

/* Loop API: close the current connection to dest as if it failed
 * (CH_ECONN), but only while a write on it is in progress: CH_OK,
 * CH_EAGAIN (no write in progress) or CH_EINVAL (no connection). */
struct ch_node;
int ch_testing_close_writing(struct ch_node *node, const ch_dest_t *dest);

/* Loop API: what a node holds for a remote. */
typedef struct ch_testing_remote {
    size_t queued;   /* sends not yet written */
    size_t inflight; /* written, waiting for their ACK */
    int connected;   /* it has a current connection ... */
    int writing;     /* ... with a write in progress ... */
    int in_write;    /* ... of this many messages ... */
    int window;      /* ... and this window (the peer's capability) */
} ch_testing_remote_t;
/* CH_OK, or CH_EINVAL when the node has no such remote. */
int ch_testing_remote(struct ch_node *node, const ch_dest_t *dest,
                      ch_testing_remote_t *out);

#ifdef __cplusplus
}
#endif
#endif
