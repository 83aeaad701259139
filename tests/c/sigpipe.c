/* sigpipe.c - a peer that resets the connection while a node is writing
 * big messages to it costs those sends an error, never the process.
 *
 * A write to a socket the peer has reset raises SIGPIPE, which by default
 * kills the process (seen once in alloc_fail, as signal 13).  So
 * ch_node_new sets SIGPIPE to be ignored when the program left it at its
 * default, and keeps a disposition the program chose.  Checked here: the
 * disposition before and after ch_node_new (with "handler", a handler
 * installed first must stay), then a live reset: the peer, a raw socket in
 * a child process, answers the handshake, fills every receive slot of the
 * node (which holds those messages, so it stops reading), reads a little
 * and closes with unread data, so the kernel resets the connection while
 * 4 x 4 MiB are being written.  Exit 0 when every send failed with an
 * error and the process lives.
 *
 * Usage: sigpipe [handler]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testkit.h"
#include "wire/wire.h"

#define NSENDS 4
#define SLOTS 4
#define BIG (4u * 1024u * 1024u)

static uv_loop_t loop;
static ch_node_t *A;
static ch_send_t reqs[NSENDS];
static uint8_t *big;
static int completed, failed;
static uv_timer_t watchdog;

static void on_closed(ch_node_t *n)
{
    (void)n;
}

static ch_message_t *held[CH_MAX_SLOTS];
static int nheld;

static void on_msg(ch_node_t *node, ch_message_t *msg)
{
    (void)node;
    held[nheld++] = msg; /* released only when the node is freed */
}

static void on_sent(ch_send_t *s, int status, const char *detail)
{
    (void)s;
    completed++;
    if (status != CH_OK)
        failed++;
    printf("send completed: %s (%s)\n", ch_errname(status), detail);
    if (completed == NSENDS) {
        uv_close((uv_handle_t *)&watchdog, NULL);
        ch_node_close(A, on_closed);
    }
}

/* The raw peer (child process): accept, answer the handshake, read a
 * little, reset. */
static void peer(int listen_fd)
{
    uint8_t hs[CH_HANDSHAKE_SIZE], id[CH_ID_SIZE], buf[4096];
    uint8_t frame[CH_HEADER_SIZE + 8];
    ch_wire_header_t h;
    struct linger lg = {1, 0};
    int i, fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        _exit(1);
    memset(id, 0x5a, sizeof(id));
    ch_wire_encode_handshake(hs, 1, id);
    if (write(fd, hs, sizeof(hs)) != (ssize_t)sizeof(hs))
        _exit(1);
    for (i = 0; i < SLOTS + 1; i++) { /* one more than the node has slots */
        memset(&h, 0, sizeof(h));
        h.identity[0] = (uint8_t)i;
        h.serial = (uint32_t)i + 1;
        h.data_len = 8;
        ch_wire_encode_header(frame, &h);
        memset(frame + CH_HEADER_SIZE, 'm', 8);
        if (write(fd, frame, sizeof(frame)) != (ssize_t)sizeof(frame))
            _exit(1);
    }
    usleep(100000); /* let the node start writing its big messages */
    if (read(fd, buf, sizeof(buf)) < 0)
        _exit(1);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd); /* unread data and linger 0: the kernel sends a reset */
    _exit(0);
}

static void own_handler(int sig)
{
    (void)sig;
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    printf("watchdog: %d of %d sends completed\n", completed, NSENDS);
    exit(2);
}

int main(int argc, char **argv)
{
    int keep_own = argc > 1 && strcmp(argv[1], "handler") == 0;
    struct sigaction sa;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    ch_config_t cfg;
    char err[256];
    int i, listen_fd, child_status = 0;
    pid_t child;
    if (sigaction(SIGPIPE, NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) {
        printf("SIGPIPE is not at its default: the test tests nothing\n");
        return 3;
    }
    if (keep_own) {
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = own_handler;
        sigaction(SIGPIPE, &sa, NULL);
    }
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(listen_fd, 4) != 0 ||
        getsockname(listen_fd, (struct sockaddr *)&sin, &len) != 0) {
        printf("cannot listen\n");
        return 1;
    }
    child = fork();
    if (child == 0)
        peer(listen_fd);
    close(listen_fd);
    uv_loop_init(&loop);
    kit_config(&cfg, 0, 3.0);
    cfg.max_slots = SLOTS;
    if (ch_node_new(&loop, &cfg, on_msg, NULL, &A, err, sizeof(err)) != 0) {
        printf("node: %s\n", err);
        return 1;
    }
    sigaction(SIGPIPE, NULL, &sa);
    if (sa.sa_handler != (keep_own ? own_handler : SIG_IGN)) {
        printf("SIGPIPE disposition after ch_node_new is wrong\n");
        return 4;
    }
    printf("SIGPIPE after ch_node_new: %s\n",
           keep_own ? "the program's handler" : "ignored");
    big = calloc(1, BIG);
    for (i = 0; i < NSENDS; i++) {
        ch_send_init(&reqs[i]);
        ch_parse_address("127.0.0.1", &reqs[i].ip_protocol, reqs[i].address);
        reqs[i].port = ntohs(sin.sin_port);
        reqs[i].data = big;
        reqs[i].data_len = BIG;
        reqs[i].cb = on_sent;
        if (ch_node_send(A, &reqs[i]) != CH_OK) {
            printf("send %d refused\n", i);
            return 1;
        }
    }
    uv_timer_init(&loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 20000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ch_node_free(A);
    uv_loop_close(&loop);
    printf("held %d messages\n", nheld);
    free(big);
    waitpid(child, &child_status, 0);
    printf("alive: %d sends completed, %d failed\n", completed, failed);
    return completed == NSENDS && failed > 0 ? 0 : 1;
}
