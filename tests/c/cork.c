/* cork.c - a white-box test of ch_node_cork/ch_node_uncork: sends queued
 * while corked are not written; uncorking starts one write that carries
 * all of them (not the first alone and the rest after it), and they
 * arrive in order.  Exit 0 on success.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "testkit.h"

#define N 50

static ch_node_t *A, *B;
static ch_send_t warm, reqs[N];
static uv_timer_t watchdog;
static uint8_t data[N][8];
static int received, in_order = 1, sent_ok, done, verdict = 1;

static void on_closed(ch_node_t *n)
{
    (void)n;
}

static void finish(int ok)
{
    if (done++)
        return;
    verdict = ok ? 0 : 1;
    uv_close((uv_handle_t *)&watchdog, NULL);
    ch_node_close(A, on_closed);
    ch_node_close(B, on_closed);
}

static void on_msg(ch_node_t *node, ch_message_t *msg)
{
    char want[16] = {0};
    if (msg->data_len == sizeof(data[0]) && received < N) {
        snprintf(want, sizeof(want), "m%05d", received % 100000);
        if (memcmp(msg->data, want, sizeof(data[0])) != 0)
            in_order = 0;
        received++;
    }
    ch_node_release(node, msg);
    if (received == N) {
        printf("received %d, in order: %s, sends ok: %d\n", received,
               in_order ? "yes" : "no", sent_ok);
        finish(in_order);
    }
}

static void on_sent(ch_send_t *s, int status, const char *detail)
{
    (void)s;
    if (status == CH_OK)
        sent_ok++;
    else
        printf("send failed: %s\n", detail);
}

/* What A holds for B. */
static ch_testing_remote_t state(void)
{
    ch_testing_remote_t st;
    ch_dest_t dest;
    dest.ip_protocol = warm.ip_protocol;
    memcpy(dest.address, warm.address, 16);
    dest.port = warm.port;
    if (ch_testing_remote(A, &dest, &st) != CH_OK)
        memset(&st, 0, sizeof(st));
    return st;
}

static void on_warm(ch_send_t *s, int status, const char *detail)
{
    ch_testing_remote_t st;
    int i;
    (void)s;
    if (status != CH_OK) {
        printf("warm-up failed: %s\n", detail);
        finish(0);
        return;
    }
    st = state();
    if (!st.connected || st.writing) {
        printf("the test needs an idle connection\n");
        finish(0);
        return;
    }
    ch_node_cork(A);
    ch_node_cork(A); /* nested: only the outer uncork writes */
    for (i = 0; i < N; i++) {
        char text[16] = {0};
        snprintf(text, sizeof(text), "m%05d", i % 100000);
        memcpy(data[i], text, sizeof(data[i]));
        kit_send_to(&reqs[i], B, data[i], sizeof(data[i]), on_sent);
        if (ch_node_send(A, &reqs[i]) != CH_OK) {
            printf("send refused\n");
            finish(0);
            return;
        }
    }
    ch_node_uncork(A);
    st = state();
    printf("corked: %zu queued, writing %d\n", st.queued, st.writing);
    if (st.queued != N || st.writing) {
        finish(0);
        return;
    }
    ch_node_uncork(A);
    st = state();
    printf("uncorked: writing %d, %d messages in the write, %zu queued\n",
           st.writing, st.in_write, st.queued);
    if (!st.writing || st.in_write != N || st.queued != 0)
        finish(0);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    printf("watchdog: received %d of %d\n", received, N);
    finish(0);
}

int main(void)
{
    ch_config_t cfg;
    uv_loop_t loop;
    uv_loop_init(&loop);
    kit_config(&cfg, 0, 5.0);
    if (kit_two_nodes(&loop, &cfg, on_msg, &A, &B) != 0)
        return 1;
    kit_send_to(&warm, B, "warm-up", 7, on_warm);
    kit_run(&loop, &watchdog, on_watchdog, 10000, A, B, &warm);
    return verdict;
}
