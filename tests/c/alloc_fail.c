/* alloc_fail.c - the core under allocation failures, from C alone.
 *
 * Two nodes on one loop.  With every Nth allocation of the core failing,
 * node A sends small and large messages to B: every send must complete
 * exactly once (success or an error), the loop must not hang, and after
 * the failures stop both nodes must work again.  Run under valgrind to
 * show that nothing leaks.  Exit 0 on success.
 *
 * EVERY 0 means: warm the connection up first, then fail every allocation;
 * small messages must still be delivered on the established connection
 * (they use the preallocated slots), without a single failure.
 *
 * With tls, the nodes encrypt (run it in a network namespace where ADDR
 * is a local, non-loopback address); with tls+openssl, OpenSSL's own
 * allocations fail every Nth time as well, from a count of their own
 * (EVERY 0 fails only the core's: OpenSSL 3.0 allocates a little for each
 * record it writes, so no TLS connection writes when no allocation works).
 *
 * Usage: alloc_fail EVERY COUNT [sync|async] [tls|tls+openssl PEM DH_PEM ADDR]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "testkit.h"

static ch_node_t *A, *B;
static long sent, completed, ok, failed, received, phase_target;
static int phase; /* 0: warm-up, 1: failures injected, 2: recovery */
static long every;
static uv_timer_t watchdog;
static int timed_out;
static ch_send_t *reqs;
static uint8_t small[100], large[64000];
static const char *address = "127.0.0.1";

/* OpenSSL's allocations: every ssl_every-th fails while it is not 0. */
static long ssl_every, ssl_calls, ssl_failures;
static int ssl_inject;

static int ssl_should_fail(void)
{
    if (ssl_every == 0 || ++ssl_calls % ssl_every != 0)
        return 0;
    ssl_failures++;
    return 1;
}

static void *ssl_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return ssl_should_fail() ? NULL : malloc(n);
}

static void *ssl_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file, (void)line;
    return ssl_should_fail() ? NULL : realloc(p, n);
}

static void ssl_free(void *p, const char *file, int line)
{
    (void)file, (void)line;
    free(p);
}

static void on_closed(ch_node_t *n)
{
    (void)n;
}

static void on_msg(ch_node_t *node, ch_message_t *msg)
{
    received++;
    ch_node_release(node, msg);
}

static void start_phase2(void);
static void start_phase1(void);
static void next_round(void);
static long count;
static long next_index; /* phase 1 goes in rounds of ROUND sends */
static int sync_mode;
static void on_settled(uv_timer_t *t);
static uv_timer_t settle;

static void on_sent(ch_send_t *req, int status, const char *detail)
{
    (void)req;
    completed++;
    if (status != CH_OK && getenv("VERBOSE"))
        printf("  phase %d: %s: %s\n", phase, ch_errname(status), detail);
    if (status == CH_OK)
        ok++;
    else
        failed++;
    /* Let the receiver catch up (asynchronous sends complete when
     * written), then go on. */
    if (completed == phase_target)
        uv_timer_start(&settle, on_settled, phase == 1 ? 30 : 300, 0);
}

static void on_settled(uv_timer_t *t)
{
    (void)t;
    if (phase == 0) {
        start_phase1();
        return;
    }
    if (phase == 1) {
        if (next_index < count)
            next_round(); /* reconnects, refills slots, fails anew */
        else
            start_phase2();
        return;
    }
    uv_timer_stop(&watchdog);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_close((uv_handle_t *)&settle, NULL);
    ch_node_close(A, on_closed);
    ch_node_close(B, on_closed);
}

static void send_batch(long from, long count)
{
    long i;
    for (i = from; i < from + count; i++) {
        ch_send_t *s = &reqs[i];
        ch_send_init(s);
        ch_parse_address(address, &s->ip_protocol, s->address);
        s->port = ch_node_port(B);
        if (i % 3 == 0 && every != 0) {
            /* Sizes vary so that the node's spare big buffers fit only
             * some of them: the others are allocated (and may fail). */
            s->data = large;
            s->data_len = 1100 + (uint32_t)((i * 7919) % (sizeof(large) - 1100));
        } else {
            s->data = small;
            s->data_len = sizeof(small);
        }
        s->cb = on_sent;
        if (ch_node_send(A, s) == CH_OK)
            sent++;
        else
            completed++, failed++; /* refused up front: no callback */
    }
    if (completed == phase_target) /* all refused: no callback will */
        uv_timer_start(&settle, on_settled, phase == 1 ? 30 : 300, 0);
}

#define ROUND 25

static void next_round(void)
{
    long n = count - next_index < ROUND ? count - next_index : ROUND;
    phase_target = completed + n;
    next_index += n;
    send_batch(next_index - n, n);
}

static void start_phase1(void)
{
    phase = 1;
    ok = failed = received = completed = 0;
    next_index = 0;
    ch_alloc_inject(every == 0 ? 0 : -1, every);
    ssl_calls = ssl_failures = 0;
    ssl_every = ssl_inject ? every : 0;
    next_round();
}

static void start_phase2(void)
{
    long failures = ch_alloc_failures() + ssl_failures;
    ssl_every = 0;
    if (every == 0 && (ok != count || received != count)) {
        printf("established connection: %ld of %ld delivered, %ld failed\n",
               received, count, failed);
        exit(6);
    }
    ch_alloc_inject(-1, 0);
    printf("phase 1: %ld sends, %ld ok, %ld failed, %ld received, %ld "
           "allocations failed on purpose\n",
           count, ok, failed, received, failures);
    if (sync_mode && ok > received) {
        printf("%ld acknowledged but only %ld received\n", ok, received);
        exit(7);
    }
    if (failures == 0 && every != 0) {
        printf("no allocation failed: the test did not test anything\n");
        exit(3);
    }
    phase = 2;
    ok = failed = 0;
    received = 0;
    phase_target = completed + 20;
    send_batch(count, 20);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    timed_out = 1;
    printf("watchdog: stuck in phase %d with %ld/%ld completions\n", phase,
           completed, phase_target);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_close((uv_handle_t *)&settle, NULL);
    ch_alloc_inject(-1, 0);
    ssl_every = 0;
    ch_node_close(A, on_closed);
    ch_node_close(B, on_closed);
}

int main(int argc, char **argv)
{
    ch_config_t cfg;
    uv_loop_t loop;
    int tls = argc == 8 && (strcmp(argv[4], "tls") == 0 ||
                            strcmp(argv[4], "tls+openssl") == 0);
    if (argc < 3 || (argc > 4 && !tls)) {
        fprintf(stderr, "usage: %s EVERY COUNT [sync|async] "
                        "[tls|tls+openssl PEM DH_PEM ADDR]\n",
                argv[0]);
        return 2;
    }
    /* Before OpenSSL allocates anything. */
    if (CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free) != 1) {
        fprintf(stderr, "cannot set OpenSSL's allocation functions\n");
        return 1;
    }
    every = atol(argv[1]);
    count = atol(argv[2]);
    uv_loop_init(&loop);
    sync_mode = argc > 3 && strcmp(argv[3], "sync") == 0;
    kit_config(&cfg, sync_mode, 2.0);
    if (tls) {
        cfg.disable_encryption = 0;
        cfg.cert_chain_pem = argv[5];
        cfg.dh_params_pem = argv[6];
        address = argv[7];
        ssl_inject = strcmp(argv[4], "tls+openssl") == 0;
        cfg.bind_v4 = address;
    }
    if (kit_two_nodes(&loop, &cfg, on_msg, &A, &B) != 0)
        return 1;
    reqs = calloc((size_t)count + 30, sizeof(*reqs));
    if (reqs == NULL)
        return 1;
    memset(small, 's', sizeof(small));
    memset(large, 'L', sizeof(large));
    uv_timer_init(&loop, &watchdog);
    uv_timer_init(&loop, &settle);
    uv_timer_start(&watchdog, on_watchdog, 30000, 0);
    /* Phase 0 opens the connection: 10 small messages. */
    phase = 0;
    phase_target = 10;
    send_batch(count + 10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);
    printf("phase 2: 20 sends, %ld ok, %ld failed, %ld received\n", ok,
           failed, received);
    ch_node_free(A);
    ch_node_free(B);
    free(reqs);
    uv_loop_close(&loop);
    if (timed_out)
        return 4;
    return ok == 20 && received == 20 ? 0 : 5;
}
