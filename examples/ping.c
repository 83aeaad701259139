/* ping.c - the chirp core from C alone, no Python: two nodes on one libuv
 * loop; node A sends COUNT messages of SIZE bytes to node B, B releases
 * each one; prints the rate.  Synchronous mode with -s.
 *
 * Build (from the repository root):
 *   cc -std=c99 -O2 -Icsrc/include -Icsrc examples/ping.c \
 *      $(find csrc -name '*.c') -luv -lssl -lcrypto -o examples/c_ping
 * Run:    ./examples/c_ping [-s] [COUNT] [SIZE]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chirp.h"

typedef struct demo {
    ch_node_t *a, *b;
    ch_send_t *sends;
    uint8_t *payload;
    long count, size, sent, done, failed, received;
    int closing;
    uint64_t t0;
} demo_t;

static demo_t D;

static void on_closed(ch_node_t *node)
{
    (void)node;
}

static void finish(void)
{
    double secs = (double)(uv_hrtime() - D.t0) / 1e9;
    if (D.closing)
        return;
    D.closing = 1;
    printf("sent %ld, acknowledged/written %ld, failed %ld, received %ld "
           "in %.3f s: %.0f msg/s\n",
           D.sent, D.done, D.failed, D.received, secs,
           secs > 0 ? (double)D.received / secs : 0.0);
    ch_node_close(D.a, on_closed);
    ch_node_close(D.b, on_closed);
}

static void maybe_finish(void)
{
    if (D.done + D.failed == D.count && D.received + D.failed >= D.count)
        finish();
}

static void on_sent(ch_send_t *req, int status, const char *detail)
{
    (void)req;
    if (status == CH_OK) {
        D.done++;
    } else {
        D.failed++;
        if (D.failed == 1)
            fprintf(stderr, "send failed: %s: %s\n", ch_strerror(status),
                    detail);
    }
    maybe_finish();
}

static void on_msg_b(ch_node_t *node, ch_message_t *msg)
{
    D.received++;
    ch_node_release(node, msg);
    maybe_finish();
}

static void on_msg_a(ch_node_t *node, ch_message_t *msg)
{
    ch_node_release(node, msg);
}

int main(int argc, char **argv)
{
    ch_config_t cfg;
    char err[256];
    int argi = 1, sync = 0, rc;
    long i;
    uv_loop_t *loop = uv_default_loop();
    if (argi < argc && strcmp(argv[argi], "-s") == 0) {
        sync = 1;
        argi++;
    }
    D.count = argi < argc ? atol(argv[argi++]) : 100000;
    D.size = argi < argc ? atol(argv[argi++]) : 64;
    if (D.count < 1 || D.size < 0) {
        fprintf(stderr, "usage: %s [-s] [COUNT>0] [SIZE>=0]\n", argv[0]);
        return 2;
    }
    ch_config_init(&cfg);
    cfg.port = 0;
    cfg.synchronous = sync;
    cfg.disable_encryption = 1;
    cfg.bind_v6 = "";
    cfg.bind_v4 = "127.0.0.1";
    rc = ch_node_new(loop, &cfg, on_msg_a, NULL, &D.a, err, sizeof(err));
    if (rc == CH_OK)
        rc = ch_node_new(loop, &cfg, on_msg_b, NULL, &D.b, err, sizeof(err));
    if (rc != CH_OK) {
        fprintf(stderr, "cannot start a node: %s: %s\n", ch_strerror(rc), err);
        return 1;
    }
    D.sends = calloc((size_t)D.count, sizeof(ch_send_t));
    D.payload = calloc(1, (size_t)D.size + 1);
    if (D.sends == NULL || D.payload == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    memset(D.payload, 'x', (size_t)D.size);
    printf("node A port %u -> node B port %u, %ld x %ld B, %s\n",
           ch_node_port(D.a), ch_node_port(D.b), D.count, D.size,
           sync ? "synchronous" : "asynchronous");
    D.t0 = uv_hrtime();
    for (i = 0; i < D.count; i++) {
        ch_send_t *s = &D.sends[i];
        ch_send_init(s);
        ch_parse_address("127.0.0.1", &s->ip_protocol, s->address);
        s->port = ch_node_port(D.b);
        s->data = D.payload;
        s->data_len = (uint32_t)D.size;
        s->cb = on_sent;
        rc = ch_node_send(D.a, s);
        if (rc != CH_OK) {
            fprintf(stderr, "send refused: %s\n", ch_strerror(rc));
            D.failed++;
        } else {
            D.sent++;
        }
    }
    uv_run(loop, UV_RUN_DEFAULT);
    ch_node_free(D.a);
    ch_node_free(D.b);
    free(D.sends);
    free(D.payload);
    uv_loop_close(loop);
    return D.received == D.count && D.failed == 0 ? 0 : 1;
}
