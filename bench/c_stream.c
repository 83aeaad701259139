/* c_stream.c - a two-process stream benchmark on the chirp core's loop API
 * (no Python): a receiver process and a sender process on loopback.
 *
 * Build (from the repository root):
 *   cc -std=c99 -O2 -Icsrc/include -Icsrc bench/c_stream.c \
 *      $(find csrc -name '*.c') -luv -lssl -lcrypto -o c_stream
 * Run:
 *   ./c_stream recv [-s] COUNT [DEADLINE_S]
 *       prints "READY <port>", receives COUNT messages (each released at
 *       once, so acknowledged when the sender asked for it), then prints
 *       "RESULT received=N bytes=B first_ns=T0 last_ns=T1 rate=R msg/s".
 *   ./c_stream send [-s] PORT COUNT SIZE [WINDOW] [DEADLINE_S]
 *       sends one warm-up message (the connection is set up by it), then
 *       COUNT messages of SIZE bytes to 127.0.0.1:PORT with at most WINDOW
 *       (default 4096) of them queued in the core at once, and prints
 *       "RESULT sent=N ok=K failed=F start_ns=T0 end_ns=T1 rate=R msg/s".
 * -s: synchronous (a send completes when acknowledged), else asynchronous.
 * -w SLOTS (after -s, on both sides): max_slots and max_inflight (the
 * window of a synchronous stream; default 16).
 * Times are uv_hrtime() (CLOCK_MONOTONIC), comparable across processes.
 * Both sides give up after DEADLINE_S seconds (default 120) and report what
 * they have; exit code 0 only when everything arrived / succeeded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chirp.h"

static ch_node_t *node;
static uv_timer_t deadline_timer;
static uv_idle_t pump_idle;
static int closing;

/* receiver */
static long r_count, r_received;
static long long r_bytes;
static uint64_t r_first, r_last;

/* sender */
static ch_send_t *pool;      /* WINDOW sends */
static ch_send_t **free_list; /* sends ready for reuse */
static long free_n, window_n;
static long s_count, s_queued, s_ok, s_failed;
static uint8_t *payload;
static uint32_t payload_len;
static uint16_t dest_port;
static uint8_t dest_proto, dest_addr[16];
static uint64_t s_start, s_end;
static ch_send_t warmup;

static void on_closed(ch_node_t *n)
{
    (void)n;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void shut(void)
{
    if (closing)
        return;
    closing = 1;
    uv_timer_stop(&deadline_timer);
    uv_close((uv_handle_t *)&deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&pump_idle, on_handle_closed);
    ch_node_close(node, on_closed);
}

static void report_recv(void)
{
    double secs = (double)(r_last - r_first) / 1e9;
    printf("RESULT received=%ld bytes=%lld first_ns=%llu last_ns=%llu "
           "rate=%.0f msg/s\n",
           r_received, r_bytes, (unsigned long long)r_first,
           (unsigned long long)r_last,
           secs > 0 && r_received > 1 ? (double)(r_received - 1) / secs : 0.0);
    fflush(stdout);
}

static void report_send(void)
{
    double secs = (double)(s_end - s_start) / 1e9;
    printf("RESULT sent=%ld ok=%ld failed=%ld start_ns=%llu end_ns=%llu "
           "rate=%.0f msg/s\n",
           s_queued, s_ok, s_failed, (unsigned long long)s_start,
           (unsigned long long)s_end,
           secs > 0 ? (double)s_ok / secs : 0.0);
    fflush(stdout);
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    fprintf(stderr, "c_stream: deadline reached\n");
    if (pool != NULL) {
        s_end = uv_hrtime();
        report_send();
    } else {
        r_last = uv_hrtime(); /* not all came: the rate up to now */
        report_recv();
    }
    shut();
}

static void on_msg(ch_node_t *n, ch_message_t *msg)
{
    /* The clock only at the first and the last message: reading it for
     * each one cost a fifth of this process's time. */
    if (r_received == 0)
        r_first = r_last = uv_hrtime();
    r_received++;
    if (r_received == r_count)
        r_last = uv_hrtime();
    r_bytes += msg->data_len;
    ch_node_release(n, msg);
    if (pool == NULL && r_received == r_count && !closing) {
        report_recv();
        shut();
    }
}

static void pump(uv_idle_t *h);

static void on_sent(ch_send_t *req, int status, const char *detail)
{
    if (status == CH_OK) {
        s_ok++;
    } else {
        s_failed++;
        if (s_failed == 1)
            fprintf(stderr, "c_stream: send failed: %s: %s\n",
                    ch_strerror(status), detail);
    }
    free_list[free_n++] = req; /* reused from the idle handle, not here */
    if (s_ok + s_failed == s_count) {
        s_end = uv_hrtime();
        report_send();
        shut();
        return;
    }
    if (!closing && s_queued < s_count)
        uv_idle_start(&pump_idle, pump);
}

static int queue_one(ch_send_t *s, ch_send_cb cb)
{
    ch_send_init(s);
    s->ip_protocol = dest_proto;
    memcpy(s->address, dest_addr, sizeof(dest_addr));
    s->port = dest_port;
    s->data = payload;
    s->data_len = payload_len;
    s->cb = cb;
    return ch_node_send(node, s);
}

static void pump(uv_idle_t *h)
{
    while (free_n > 0 && s_queued < s_count && !closing) {
        ch_send_t *s = free_list[--free_n];
        int rc = queue_one(s, on_sent);
        s_queued++;
        if (rc != CH_OK) {
            fprintf(stderr, "c_stream: send refused: %s\n", ch_strerror(rc));
            s_failed++;
            free_list[free_n++] = s;
            if (s_ok + s_failed == s_count) {
                s_end = uv_hrtime();
                report_send();
                shut();
                return;
            }
        }
    }
    uv_idle_stop(h);
}

static void on_warmup(ch_send_t *req, int status, const char *detail)
{
    long i;
    (void)req;
    if (status != CH_OK) {
        fprintf(stderr, "c_stream: warm-up send failed: %s: %s\n",
                ch_strerror(status), detail);
        s_failed = s_count;
        report_send();
        shut();
        return;
    }
    s_start = uv_hrtime();
    for (i = 0; i < window_n; i++)
        free_list[free_n++] = &pool[i];
    uv_idle_start(&pump_idle, pump);
}

static int make_node(int sync, int slots, char *err, size_t errlen)
{
    ch_config_t cfg;
    ch_config_init(&cfg);
    cfg.port = 0;
    cfg.synchronous = sync;
    if (slots > 0)
        cfg.max_slots = cfg.max_inflight = slots;
    cfg.disable_encryption = 1;
    cfg.bind_v6 = "";
    cfg.bind_v4 = "127.0.0.1";
    return ch_node_new(uv_default_loop(), &cfg, on_msg, NULL, &node, err,
                       errlen);
}

static int usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s recv [-s] [-w SLOTS] COUNT [DEADLINE_S]\n"
            "       %s send [-s] [-w SLOTS] PORT COUNT SIZE [WINDOW] "
            "[DEADLINE_S]\n",
            prog, prog);
    return 2;
}

int main(int argc, char **argv)
{
    char err[256];
    int argi = 2, sync = 0, slots = 0, rc, sender;
    double deadline = 120.0;
    uv_loop_t *loop = uv_default_loop();
    if (argc < 3)
        return usage(argv[0]);
    if (strcmp(argv[1], "recv") == 0)
        sender = 0;
    else if (strcmp(argv[1], "send") == 0)
        sender = 1;
    else
        return usage(argv[0]);
    if (strcmp(argv[argi], "-s") == 0) {
        sync = 1;
        argi++;
    }
    if (argi + 1 < argc && strcmp(argv[argi], "-w") == 0) {
        slots = atoi(argv[argi + 1]);
        argi += 2;
        if (slots < 1)
            return usage(argv[0]);
    }
    if (!sender) {
        if (argi >= argc)
            return usage(argv[0]);
        r_count = atol(argv[argi++]);
        if (argi < argc)
            deadline = atof(argv[argi++]);
        if (r_count < 1)
            return usage(argv[0]);
    } else {
        long size;
        if (argi + 3 > argc)
            return usage(argv[0]);
        dest_port = (uint16_t)atol(argv[argi++]);
        s_count = atol(argv[argi++]);
        size = atol(argv[argi++]);
        window_n = argi < argc ? atol(argv[argi++]) : 4096;
        if (argi < argc)
            deadline = atof(argv[argi++]);
        if (s_count < 1 || size < 0 || window_n < 1 || dest_port == 0)
            return usage(argv[0]);
        if (window_n > s_count)
            window_n = s_count;
        payload_len = (uint32_t)size;
        payload = malloc((size_t)size + 1);
        pool = calloc((size_t)window_n, sizeof(ch_send_t));
        free_list = calloc((size_t)window_n, sizeof(ch_send_t *));
        if (payload == NULL || pool == NULL || free_list == NULL) {
            fprintf(stderr, "c_stream: out of memory\n");
            return 1;
        }
        memset(payload, 'x', (size_t)size + 1);
        ch_parse_address("127.0.0.1", &dest_proto, dest_addr);
    }
    rc = make_node(sync, slots, err, sizeof(err));
    if (rc != CH_OK) {
        fprintf(stderr, "c_stream: cannot start a node: %s: %s\n",
                ch_strerror(rc), err);
        return 1;
    }
    uv_timer_init(loop, &deadline_timer);
    uv_timer_start(&deadline_timer, on_deadline, (uint64_t)(deadline * 1000),
                   0);
    uv_idle_init(loop, &pump_idle);
    if (!sender) {
        printf("READY %u\n", ch_node_port(node));
        fflush(stdout);
    } else {
        rc = queue_one(&warmup, on_warmup);
        if (rc != CH_OK) {
            fprintf(stderr, "c_stream: warm-up refused: %s\n",
                    ch_strerror(rc));
            return 1;
        }
    }
    uv_run(loop, UV_RUN_DEFAULT);
    ch_node_free(node);
    uv_loop_close(loop);
    free(pool);
    free(free_list);
    free(payload);
    if (sender)
        return s_ok == s_count && s_failed == 0 ? 0 : 1;
    return r_received >= r_count ? 0 : 1;
}
