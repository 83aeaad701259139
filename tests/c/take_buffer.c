/* take_buffer.c - ch_message_take_buffer through the loop API: a message
 * that fits its slot's own buffer gives nothing to take; a big one's
 * buffer is taken once, stays the caller's past the release and the
 * nodes' end, and, freed, is the buffer the next big message arrives in.
 * Exit 0 on success.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "testkit.h"

#define BIG 100000

static ch_node_t *A, *B;
static ch_send_t reqs[3];
static uv_timer_t watchdog;
static uint8_t small[CH_INLINE_SIZE], big[2][BIG];
static int received, done;
static void *first, *kept;
static const uint8_t *kept_data;

static void on_sent(ch_send_t *s, int status, const char *detail)
{
    (void)s;
    CHECK(status == CH_OK, "send failed: %s", detail);
}

static void send_next(void)
{
    static const uint32_t sizes[3] = {CH_INLINE_SIZE, BIG, BIG};
    const uint8_t *data[3] = {small, big[0], big[1]};
    kit_send_to(&reqs[received], B, data[received], sizes[received],
                on_sent);
    CHECK(ch_node_send(A, &reqs[received]) == CH_OK, "send %d", received);
}

static void on_msg(ch_node_t *node, ch_message_t *msg)
{
    void *buf = ch_message_take_buffer(msg);
    switch (received++) {
    case 0: /* header and data within CH_INLINE_SIZE: in the slot */
        CHECK(buf == NULL, "a slot's own buffer was handed out");
        break;
    case 1:
        CHECK(buf != NULL, "no buffer to take");
        CHECK(ch_message_take_buffer(msg) == NULL, "taken twice");
        CHECK(memcmp(msg->data, big[0], BIG) == 0, "first data");
        first = buf;
        break;
    default:
        CHECK(buf == first, "the freed buffer was not used again");
        kept = buf;
        kept_data = msg->data;
        break;
    }
    ch_node_release(node, msg);
    CHECK(ch_message_take_buffer(msg) == NULL, "taken after the release");
    if (received == 2) {
        CHECK(ch_testing_taken_buffers() == 1, "taken: %ld",
              ch_testing_taken_buffers());
        ch_message_buffer_free(first); /* into the pool: the next takes it */
    }
    if (received < 3)
        send_next();
    else
        kit_close_once(&done, &watchdog, A, B, NULL);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    printf("watchdog: received %d of 3\n", received);
    kit_close_once(&done, &watchdog, A, B, NULL);
}

int main(void)
{
    ch_config_t cfg;
    uv_loop_t loop;
    int i;
    memset(small, 's', sizeof(small));
    for (i = 0; i < BIG; i++) {
        big[0][i] = (uint8_t)(i * 7);
        big[1][i] = (uint8_t)(i * 13 + 1);
    }
    uv_loop_init(&loop);
    kit_config(&cfg, 1, 5.0);
    if (kit_two_nodes(&loop, &cfg, on_msg, &A, &B) != 0)
        return 1;
    kit_send_to(&reqs[0], B, small, CH_INLINE_SIZE, on_sent);
    kit_run(&loop, &watchdog, on_watchdog, 10000, A, B, &reqs[0]);
    /* The nodes are freed: the taken buffer is still the caller's. */
    CHECK(received == 3, "received %d of 3", received);
    CHECK(kept != NULL && memcmp(kept_data, big[1], BIG) == 0,
          "the kept data changed");
    ch_message_buffer_free(kept);
    CHECK(ch_testing_taken_buffers() == 0, "not freed: %ld",
          ch_testing_taken_buffers());
    if (!kit_failed())
        printf("take buffer: ok\n");
    return kit_failed();
}
