/* closing_write.c - a white-box regression test: a synchronous message
 * whose write completes just before its connection closes (libuv reports
 * such a write as successful after the close began) must still complete,
 * with an error, instead of waiting forever for an ACK.  Exit 0 on success.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "testkit.h"

static ch_node_t *A, *B;
static ch_send_t warm, victim;
static uv_timer_t watchdog;
static int victim_status = 1, done;
static uint8_t data[64];

static void finish(void)
{
    kit_close_once(&done, &watchdog, A, B, NULL);
}

static void on_msg(ch_node_t *node, ch_message_t *msg)
{
    ch_node_release(node, msg);
}

static void on_victim(ch_send_t *s, int status, const char *detail)
{
    (void)s;
    victim_status = status;
    printf("victim completed: %s (%s)\n", ch_errname(status), detail);
    finish();
}

static void on_warm(ch_send_t *s, int status, const char *detail)
{
    ch_dest_t dest;
    int rc;
    (void)s;
    if (status != CH_OK) {
        printf("warm-up failed: %s\n", detail);
        finish();
        return;
    }
    /* The connection is up: send (written at once, callback deferred),
     * then close the connection in the same loop iteration. */
    kit_send_to(&victim, B, data, sizeof(data), on_victim);
    if (ch_node_send(A, &victim) != CH_OK) {
        printf("send refused\n");
        finish();
        return;
    }
    dest.ip_protocol = victim.ip_protocol;
    memcpy(dest.address, victim.address, 16);
    dest.port = victim.port;
    rc = ch_testing_close_writing(A, &dest);
    if (rc != CH_OK) {
        printf("the test needs a write in progress: %s\n", ch_errname(rc));
        finish();
    }
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    printf("watchdog: the victim never completed\n");
    finish();
}

int main(void)
{
    ch_config_t cfg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    kit_config(&cfg, 1, 0.5);
    if (kit_two_nodes(&loop, &cfg, on_msg, &A, &B) != 0)
        return 1;
    kit_send_to(&warm, B, data, sizeof(data), on_warm);
    kit_run(&loop, &watchdog, on_watchdog, 5000, A, B, &warm);
    return victim_status != CH_OK && victim_status != 1 ? 0 : 1;
}
