/* nested_flush.c - a send callback that sends again while the writer is
 * building a write.  A message too big for what the peer announced fails
 * inside the flush that finds it (ch_conn_flush); its callback sends one
 * message to the same peer and one to a third node.  The writes are built
 * in one vector the node shares between its connections, so a flush asked
 * for meanwhile must wait for the one being built: every message arrives
 * whole, in order, and the big one fails with CH_EMSGSIZE.  Exit 0 on
 * success.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "testkit.h"

static ch_node_t *A, *B, *C;
static ch_send_t warm_b, warm_c, before, big, after, third;
static uv_timer_t watchdog;
static uint8_t big_data[200];
static int b_got, c_got, b_in_order = 1, big_status = 1, ok_sends, done;

static void finish(void)
{
    kit_close_once(&done, &watchdog, A, B, C);
}

static void maybe_finish(void)
{
    if (b_got == 3 && c_got == 2 && big_status != 1 && ok_sends == 5)
        finish();
}

/* B: the warm-up, then "before" and "after", in that order. */
static void on_msg_b(ch_node_t *node, ch_message_t *msg)
{
    static const char *want[] = {"warm-up", "before", "after"};
    if (b_got < 3 && (msg->data_len != strlen(want[b_got]) ||
                      memcmp(msg->data, want[b_got], msg->data_len) != 0))
        b_in_order = 0;
    b_got++;
    ch_node_release(node, msg);
    maybe_finish();
}

/* C: its warm-up, then "third". */
static void on_msg_c(ch_node_t *node, ch_message_t *msg)
{
    const char *want = c_got == 0 ? "warm-up" : "third";
    CHECK(msg->data_len == strlen(want) &&
              memcmp(msg->data, want, msg->data_len) == 0,
          "C got %.*s, wanted %s", (int)msg->data_len, msg->data, want);
    c_got++;
    ch_node_release(node, msg);
    maybe_finish();
}

static void on_sent(ch_send_t *s, int status, const char *detail)
{
    (void)s;
    CHECK(status == CH_OK, "a send failed: %s", detail);
    ok_sends += status == CH_OK;
    maybe_finish();
}

/* Called inside the flush that found the big message too big. */
static void on_big(ch_send_t *s, int status, const char *detail)
{
    (void)s;
    big_status = status;
    printf("big: %s (%s)\n", ch_strerror(status), detail);
    kit_send_to(&after, B, "after", 5, on_sent);
    kit_send_to(&third, C, "third", 5, on_sent);
    CHECK(ch_node_send(A, &after) == CH_OK, "after refused");
    CHECK(ch_node_send(A, &third) == CH_OK, "third refused");
}

static void on_warm(ch_send_t *s, int status, const char *detail)
{
    static int warmed;
    (void)s;
    CHECK(status == CH_OK, "warm-up failed: %s", detail);
    ok_sends += status == CH_OK;
    if (++warmed < 2)
        return;
    /* Both connections idle, B's max_msg_size known: one write with
     * "before" in it, then the big one that fails while it is built. */
    kit_send_to(&before, B, "before", 6, on_sent);
    kit_send_to(&big, B, big_data, sizeof(big_data), on_sent);
    big.cb = on_big;
    ch_node_cork(A);
    CHECK(ch_node_send(A, &before) == CH_OK, "before refused");
    CHECK(ch_node_send(A, &big) == CH_OK, "big refused");
    ch_node_uncork(A);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    CHECK(0, "watchdog: B got %d, C got %d, %d sends ok", b_got, c_got,
          ok_sends);
    finish();
}

int main(void)
{
    ch_config_t cfg, small;
    uv_loop_t loop;
    char err[256];
    uv_loop_init(&loop);
    kit_config(&cfg, 1, 5.0);
    small = cfg;
    small.max_msg_size = 100; /* announced to A in B's capability frame */
    if (ch_node_new(&loop, &cfg, on_msg_c, NULL, &A, err, sizeof(err)) ||
        ch_node_new(&loop, &small, on_msg_b, NULL, &B, err, sizeof(err)) ||
        ch_node_new(&loop, &cfg, on_msg_c, NULL, &C, err, sizeof(err))) {
        printf("node: %s\n", err);
        return 1;
    }
    kit_send_to(&warm_b, B, "warm-up", 7, on_warm);
    kit_send_to(&warm_c, C, "warm-up", 7, on_warm);
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 10000, 0);
    ch_node_send(A, &warm_b);
    ch_node_send(A, &warm_c);
    uv_run(&loop, UV_RUN_DEFAULT);
    ch_node_free(A);
    ch_node_free(B);
    ch_node_free(C);
    uv_loop_close(&loop);
    CHECK(big_status == CH_EMSGSIZE, "big: %s", ch_strerror(big_status));
    CHECK(b_in_order && b_got == 3, "B got %d, in order: %d", b_got,
          b_in_order);
    CHECK(c_got == 2, "C got %d", c_got);
    if (!kit_failed())
        printf("nested flush: ok\n");
    return kit_failed();
}
