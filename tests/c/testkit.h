/* testkit.h - what the C tests share: a plaintext loopback config, the two
 * nodes most of them talk between, and a send addressed to a node.  Static
 * inline functions: each test is one program built with the whole core,
 * and uses what it needs. */
#ifndef CH_TESTKIT_H
#define CH_TESTKIT_H

#include <stdio.h>
#include <string.h>

#include "chirp.h"
#include "chirp_testing.h"

/* The failed checks of the program so far. */
static inline int *kit_failures(void)
{
    static int n;
    return &n;
}

/* Check cond; if false, say where and why (printf arguments), and count
 * it: the program then exits non-zero (return kit_failed()). */
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            printf("FAIL line %d: ", __LINE__);                             \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
            (*kit_failures())++;                                            \
        }                                                                   \
    } while (0)

static inline int kit_failed(void)
{
    return *kit_failures() != 0;
}

/* Plaintext, IPv4 loopback only, an ephemeral port. */
static inline void kit_config(ch_config_t *cfg, int synchronous,
                              double timeout)
{
    ch_config_init(cfg);
    cfg->port = 0;
    cfg->timeout = timeout;
    cfg->synchronous = synchronous;
    cfg->disable_encryption = 1;
    cfg->bind_v6 = "";
    cfg->bind_v4 = "127.0.0.1";
}

/* Nodes *a and *b on loop, both calling on_msg: 0, or 1 after saying why. */
static inline int kit_two_nodes(uv_loop_t *loop, const ch_config_t *cfg,
                                ch_recv_cb on_msg, ch_node_t **a,
                                ch_node_t **b)
{
    char err[256];
    if (ch_node_new(loop, cfg, on_msg, NULL, a, err, sizeof(err)) != 0 ||
        ch_node_new(loop, cfg, on_msg, NULL, b, err, sizeof(err)) != 0) {
        fprintf(stderr, "node: %s\n", err);
        return 1;
    }
    return 0;
}

/* A send of len bytes at data to node `to` over loopback. */
static inline void kit_send_to(ch_send_t *s, ch_node_t *to,
                               const void *data, uint32_t len, ch_send_cb cb)
{
    ch_send_init(s);
    ch_parse_address("127.0.0.1", &s->ip_protocol, s->address);
    s->port = ch_node_port(to);
    s->data = data;
    s->data_len = len;
    s->cb = cb;
}

static inline void kit_on_closed(ch_node_t *n)
{
    (void)n;
}

/* The first call stops the watchdog and closes the nodes (c may be NULL);
 * later ones do nothing. */
static inline void kit_close_once(int *done, uv_timer_t *watchdog,
                                  ch_node_t *a, ch_node_t *b, ch_node_t *c)
{
    if ((*done)++)
        return;
    uv_close((uv_handle_t *)watchdog, NULL);
    ch_node_close(a, kit_on_closed);
    ch_node_close(b, kit_on_closed);
    if (c != NULL)
        ch_node_close(c, kit_on_closed);
}

/* Send first from a (with a watchdog timer of ms milliseconds), run the
 * loop until the test closed both nodes, then free them and the loop. */
static inline void kit_run(uv_loop_t *loop, uv_timer_t *watchdog,
                           uv_timer_cb on_watchdog, uint64_t ms,
                           ch_node_t *a, ch_node_t *b, ch_send_t *first)
{
    uv_timer_init(loop, watchdog);
    uv_timer_start(watchdog, on_watchdog, ms, 0);
    ch_node_send(a, first);
    uv_run(loop, UV_RUN_DEFAULT);
    ch_node_free(a);
    ch_node_free(b);
    uv_loop_close(loop);
}

#endif
