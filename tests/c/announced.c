/* announced.c - the bridge's announced waits (ch_bridge_start,
 * ch_bridge_done_fd, ch_bridge_done), as an event loop uses them: nobody
 * blocks; the done fd says when results are in.  Between two bridges:
 *  1. requests whose replies come back through the done fd, in order of
 *     completion, each taken once with ch_bridge_wait(.., 0, ..);
 *  2. a send (request 0) done once written;
 *  3. an abandoned request: its late reply is dropped, never received;
 *     abandoned after the reply came: no longer listed, the reply freed;
 *  4. the fd is readable exactly while results wait;
 *  5. a request pending at close fails with CH_ECLOSED through the fd;
 *  6. a result never taken is freed with its bridge (valgrind's leak
 *     check runs this program).
 * Exit 0 on success. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "chirp_bridge.h"
#include "testkit.h"

#define N 20

static int readable(int fd, int ms)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static ch_bridge_t *open_bridge(void)
{
    ch_config_t cfg;
    ch_bridge_t *b = NULL;
    char err[256];
    kit_config(&cfg, 0, 5.0);
    if (ch_bridge_open(&cfg, &b, err, sizeof(err)) != CH_OK) {
        printf("open: %s\n", err);
        return NULL;
    }
    return b;
}

static void dest_of(ch_bridge_t *to, ch_dest_t *d)
{
    memset(d, 0, sizeof(*d));
    ch_parse_address("127.0.0.1", &d->ip_protocol, d->address);
    d->port = ch_bridge_port(to);
}

/* Receive n messages at b; answer each with its data if answer. */
static int serve(ch_bridge_t *b, int n, int answer)
{
    ch_message_t *msgs[N];
    int got = 0;
    while (got < n) {
        int i, k = ch_bridge_recv(b, msgs, n - got > N ? N : n - got, 5000);
        if (k <= 0)
            break;
        for (i = 0; i < k && answer; i++) {
            ch_dest_t d;
            memset(&d, 0, sizeof(d));
            d.ip_protocol = msgs[i]->ip_protocol;
            memcpy(d.address, msgs[i]->address, 16);
            d.port = msgs[i]->port;
            ch_bridge_send(b, 0, &d, (const char *)msgs[i]->data,
                           msgs[i]->data_len, "", 0, msgs[i]->identity, 0);
        }
        ch_bridge_release(b, msgs, k);
        got += k;
    }
    return got;
}

/* Take results as an event loop would, until want are in (or 5 s). */
static int take(ch_bridge_t *b, int fd, ch_wait_t **waits, int *status,
                char (*data)[16], int want)
{
    int taken = 0, rounds = 0;
    while (taken < want && rounds++ < 100 && readable(fd, 50) >= 0) {
        ch_wait_t *done[N];
        int i, k = ch_bridge_done(b, done, N);
        for (i = 0; i < k; i++) {
            int j;
            ch_message_t *reply = NULL;
            char detail[256];
            for (j = 0; j < N && waits[j] != done[i]; j++)
                ;
            CHECK(j < N, "a done wait that was not started");
            if (j == N)
                continue;
            status[j] = ch_bridge_wait(b, &done[i], 0, &reply, detail,
                                       sizeof(detail));
            CHECK(done[i] == NULL, "the wait was not cleared once taken");
            if (reply != NULL) {
                snprintf(data[j], 16, "%.*s", (int)reply->data_len,
                         (const char *)reply->data);
                ch_bridge_release(b, &reply, 1);
            }
            waits[j] = NULL;
            taken++;
        }
    }
    return taken;
}

int main(void)
{
    ch_bridge_t *a = open_bridge(), *e = open_bridge();
    ch_wait_t *waits[N], *late = NULL, *kept = NULL, *closing = NULL;
    int status[N], i, fd, rc;
    char data[N][16];
    char payload[16];
    ch_message_t *stray[4];
    ch_dest_t to_e;
    if (a == NULL || e == NULL)
        return 1;
    dest_of(e, &to_e);
    fd = ch_bridge_done_fd(a);
    CHECK(fd >= 0, "no done fd");
    CHECK(ch_bridge_done_fd(a) == fd, "a second call made another fd");
    CHECK(!readable(fd, 0), "readable before anything was done");

    /* 1. requests */
    for (i = 0; i < N; i++) {
        snprintf(payload, sizeof(payload), "req %d", i);
        status[i] = -1;
        data[i][0] = '\0';
        rc = ch_bridge_start(a, &to_e, payload, strlen(payload), "", 0, 1,
                             &waits[i]);
        CHECK(rc == CH_OK && waits[i] != NULL, "start %d: %d", i, rc);
    }
    CHECK(serve(e, N, 1) == N, "the echo did not get %d requests", N);
    CHECK(take(a, fd, waits, status, data, N) == N, "not all replies came");
    for (i = 0; i < N; i++) {
        snprintf(payload, sizeof(payload), "req %d", i);
        CHECK(status[i] == CH_OK, "request %d: %s", i, ch_errname(status[i]));
        CHECK(strcmp(data[i], payload) == 0, "reply %d: '%s'", i, data[i]);
    }
    CHECK(!readable(fd, 0), "readable with nothing left to take");

    /* 2. a send */
    rc = ch_bridge_start(a, &to_e, "plain", 5, "h", 1, 0, &waits[0]);
    CHECK(rc == CH_OK, "start a send: %d", rc);
    status[0] = -1;
    CHECK(take(a, fd, waits, status, data, 1) == 1, "the send's result");
    CHECK(status[0] == CH_OK, "send: %s", ch_errname(status[0]));
    CHECK(serve(e, 1, 0) == 1, "the send did not arrive");

    /* 3. abandoned: the late reply is dropped */
    rc = ch_bridge_start(a, &to_e, "late", 4, "", 0, 1, &late);
    CHECK(rc == CH_OK, "start: %d", rc);
    ch_bridge_abandon(a, late);
    CHECK(serve(e, 1, 1) == 1, "the abandoned request did not arrive");
    rc = ch_bridge_recv(a, stray, 4, 300);
    CHECK(rc == CH_ETIMEDOUT, "the late reply was received (%d)", rc);
    if (rc > 0)
        ch_bridge_release(a, stray, rc);
    CHECK(!readable(fd, 0), "readable after an abandoned request");

    /* 3b. abandoned after its reply came: unlisted, the reply freed */
    rc = ch_bridge_start(a, &to_e, "listed", 6, "", 0, 1, &late);
    CHECK(rc == CH_OK, "start: %d", rc);
    CHECK(serve(e, 1, 1) == 1, "the listed request did not arrive");
    CHECK(readable(fd, 5000), "not readable with a result in");
    ch_bridge_abandon(a, late);
    CHECK(!readable(fd, 0), "readable after its one result was abandoned");
    {
        ch_wait_t *done[2];
        CHECK(ch_bridge_done(a, done, 2) == 0, "an abandoned wait listed");
    }

    /* 4. a result left untaken keeps the fd readable */
    rc = ch_bridge_start(a, &to_e, "kept", 4, "", 0, 1, &waits[0]);
    CHECK(rc == CH_OK, "start: %d", rc);
    CHECK(serve(e, 1, 1) == 1, "the kept request did not arrive");
    CHECK(readable(fd, 5000), "not readable with a result in");
    CHECK(readable(fd, 0), "no longer readable though nothing was taken");
    status[0] = -1;
    CHECK(take(a, fd, waits, status, data, 1) == 1, "the kept result");
    CHECK(status[0] == CH_OK && strcmp(data[0], "kept") == 0, "kept: %s",
          data[0]);

    /* 5. pending at close: CH_ECLOSED; the echo bridge never answers */
    rc = ch_bridge_start(a, &to_e, "unanswered", 10, "", 0, 1, &closing);
    CHECK(rc == CH_OK, "start: %d", rc);
    CHECK(ch_bridge_recv(e, stray, 1, 5000) == 1, "unanswered did not arrive");
    ch_bridge_release(e, stray, 1);
    ch_bridge_shutdown(a, 0);
    CHECK(readable(fd, 0), "not readable after the close failed a request");
    {
        ch_wait_t *done[4];
        char detail[256];
        int k = ch_bridge_done(a, done, 4);
        CHECK(k == 1 && done[0] == closing, "listed at close: %d", k);
        if (k == 1) {
            rc = ch_bridge_wait(a, &done[0], 0, NULL, detail, sizeof(detail));
            CHECK(rc == CH_ECLOSED, "closing: %s", ch_errname(rc));
            CHECK(strstr(detail, "closed") != NULL, "detail: %s", detail);
        }
    }
    CHECK(ch_bridge_start(a, &to_e, "x", 1, "", 0, 1, &waits[0]) ==
              CH_ECLOSED,
          "a start after close was taken");
    ch_bridge_free(a);

    /* 6. e sends to itself; the result, never taken, goes with e */
    rc = ch_bridge_start(e, &to_e, "self", 4, "", 0, 0, &kept);
    CHECK(rc == CH_OK, "start to self: %d", rc);
    CHECK(readable(ch_bridge_done_fd(e), 5000), "the send to self");
    ch_bridge_free(e);
    if (!kit_failed())
        printf("announced waits: ok\n");
    return kit_failed();
}
