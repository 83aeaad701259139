/* c_pingpong.c - the floor for request/reply: a bare TCP ping-pong over
 * loopback between two processes, one message outstanding, blocking
 * sockets, TCP_NODELAY, no event loop, no framing, no chirp.  A round trip
 * of chirp's request() cannot be faster than this one on the same machine.
 *
 * Build:  cc -std=c99 -O2 bench/c_pingpong.c -o c_pingpong
 * Run:
 *   ./c_pingpong server [spin]
 *       prints "READY <port>", echoes what one client sends until it leaves.
 *   ./c_pingpong client PORT COUNT SIZE [spin]
 *       sends SIZE bytes and reads them back, COUNT times (after 100 warm-up
 *       round trips), then prints "RESULT count=N rate=R p50_us=A
 *       p99_us=B" (round trips per second, their median and 99th
 *       percentile).
 * spin: read without blocking, in a loop (both sides), as chirp's threads
 * poll for spin_us before they sleep: no wake-up in the round trip.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int spin; /* read with MSG_DONTWAIT in a loop */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* All of buf, or -1. */
static int full(int fd, char *buf, size_t len, int writing)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = writing ? write(fd, buf + done, len - done)
                            : recv(fd, buf + done, len - done,
                                   spin ? MSG_DONTWAIT : 0);
        if (n < 0 && spin && !writing &&
            (errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static int server(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    char buf[65536];
    int one = 1, lfd, fd;
    ssize_t n;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        return perror("socket"), 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        return perror("bind/listen"), 1;
    printf("READY %d\n", ntohs(a.sin_port));
    fflush(stdout);
    fd = accept(lfd, NULL, NULL);
    if (fd < 0 || nodelay(fd) != 0)
        return perror("accept"), 1;
    for (;;) {
        n = recv(fd, buf, sizeof(buf), spin ? MSG_DONTWAIT : 0);
        if (n < 0 && spin && (errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n <= 0)
            break;
        if (full(fd, buf, (size_t)n, 1) != 0)
            return perror("write"), 1;
    }
    close(fd);
    close(lfd);
    return 0;
}

static int cmp(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static int client(int port, long count, size_t size)
{
    struct sockaddr_in a;
    char *buf = calloc(1, size);
    double *lat = malloc(sizeof(double) * (size_t)count), t0, t1;
    long i;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (buf == NULL || lat == NULL || fd < 0)
        return perror("setup"), 1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || nodelay(fd) != 0)
        return perror("connect"), 1;
    for (i = 0; i < 100; i++)
        if (full(fd, buf, size, 1) != 0 || full(fd, buf, size, 0) != 0)
            return perror("warm-up"), 1;
    t0 = now_s();
    for (i = 0; i < count; i++) {
        double t = now_s();
        if (full(fd, buf, size, 1) != 0 || full(fd, buf, size, 0) != 0)
            return perror("round trip"), 1;
        lat[i] = now_s() - t;
    }
    t1 = now_s();
    qsort(lat, (size_t)count, sizeof(double), cmp);
    printf("RESULT count=%ld rate=%.0f p50_us=%.1f p99_us=%.1f\n", count,
           (double)count / (t1 - t0), lat[count / 2] * 1e6,
           lat[(long)((double)count * 0.99)] * 1e6);
    close(fd);
    free(buf);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    spin = argc > 2 && strcmp(argv[argc - 1], "spin") == 0;
    argc -= spin;
    if (argc == 2 && strcmp(argv[1], "server") == 0)
        return server();
    if (argc == 5 && strcmp(argv[1], "client") == 0 && atol(argv[3]) > 0 &&
        atol(argv[4]) > 0 && atol(argv[4]) <= 65536)
        return client(atoi(argv[2]), atol(argv[3]), (size_t)atol(argv[4]));
    fprintf(stderr,
            "usage: %s server [spin] | client PORT COUNT SIZE [spin]\n"
            "       (SIZE 1-65536)\n",
            argv[0]);
    return 2;
}
