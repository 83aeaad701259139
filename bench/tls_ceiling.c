/* tls_ceiling.c - the fastest 1 MiB stream this machine gives over TCP
 * loopback, with TLS and without: two processes, blocking sockets, one
 * thread each, no event loop, no framing, no Python. The sender writes
 * N x 1 MiB (SSL_write, or write), the receiver reads them into one
 * buffer. TLS 1.3 with AES-128-GCM as chirp prefers it; the receiver reads
 * ahead into a 64 KiB buffer (fewer read calls); with tls-gather the
 * sender gathers records into 256 KiB writes. What the TLS stream
 * reaches here is an upper bound for any TLS stream on this machine, chirp's
 * included (see bench/README.md).
 *
 *   cc -std=c99 -O2 bench/tls_ceiling.c -lssl -lcrypto -o tls_ceiling
 *   ./tls_ceiling CERT_CHAIN_PEM tls|tls-gather|plain [N]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MIB (1024 * 1024)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double process_cpu(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static int fail(const char *what)
{
    fprintf(stderr, "tls_ceiling: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

/* Makes the TLS side of fd: server or client, TLS 1.3, AES-128-GCM. */
static SSL *tls_over(int fd, const char *pem, int server, int gather)
{
    SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method()
                                      : TLS_client_method());
    SSL *ssl;
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1)
        return NULL;
    if (server && (SSL_CTX_use_certificate_chain_file(ctx, pem) != 1 ||
                   SSL_CTX_use_PrivateKey_file(ctx, pem,
                                               SSL_FILETYPE_PEM) != 1))
        return NULL;
    if (server) {
        SSL_CTX_set_read_ahead(ctx, 1);
        SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
    }
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        return NULL;
    if (gather) {
        /* Records gathered into 256 KiB writes, as chirp's loop does. */
        BIO *b = BIO_new(BIO_f_buffer());
        if (b == NULL || BIO_set_write_buffer_size(b, 256 * 1024) != 1)
            return NULL;
        BIO_up_ref(SSL_get_rbio(ssl));
        BIO_push(b, SSL_get_rbio(ssl));
        SSL_set0_wbio(ssl, b);
    }
    if ((server ? SSL_accept(ssl) : SSL_connect(ssl)) != 1)
        return NULL;
    return ssl;
}

static int receiver(int lfd, const char *pem, int tls, int n)
{
    unsigned char *buf = malloc(MIB);
    SSL *ssl = NULL;
    long long left = (long long)n * MIB;
    double t0 = 0, c0 = 0;
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0 || buf == NULL)
        return fail("receiver: cannot accept");
    if (tls && (ssl = tls_over(fd, pem, 1, 0)) == NULL)
        return fail("receiver: TLS handshake failed");
    while (left > 0) {
        int want = left < MIB ? (int)left : MIB;
        long r = tls ? SSL_read(ssl, buf, want) : read(fd, buf, (size_t)want);
        if (r <= 0)
            return fail("receiver: read failed");
        if (t0 == 0) {
            t0 = now();
            c0 = process_cpu();
        }
        left -= r;
    }
    printf("%s receiver: %.0f MiB/s, %.3f ms CPU/MiB\n", tls ? "TLS" : "plain",
           (n - 1) / (now() - t0), (process_cpu() - c0) / (n - 1) * 1e3);
    fflush(stdout);
    SSL_free(ssl);
    close(fd);
    free(buf);
    return 0;
}

static int sender(int port, const char *pem, int tls, int gather, int n)
{
    struct sockaddr_in a;
    unsigned char *buf = malloc(MIB);
    SSL *ssl = NULL;
    double c0;
    int i, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || buf == NULL ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return fail("sender: cannot connect");
    if (tls && (ssl = tls_over(fd, pem, 0, gather)) == NULL)
        return fail("sender: TLS handshake failed");
    memset(buf, 0x5a, MIB);
    c0 = process_cpu();
    for (i = 0; i < n; i++) {
        size_t off;
        for (off = 0; off < MIB;) {
            long w = tls ? SSL_write(ssl, buf + off, (int)(MIB - off))
                         : write(fd, buf + off, MIB - off);
            if (w <= 0)
                return fail("sender: write failed");
            off += (size_t)w;
        }
        if (tls && BIO_flush(SSL_get_wbio(ssl)) != 1)
            return fail("sender: flush failed");
    }
    printf("%s sender: %.3f ms CPU/MiB\n", tls ? "TLS" : "plain",
           (process_cpu() - c0) / n * 1e3);
    /* Closing with unread data (a TLS 1.3 session ticket) would reset
     * the connection under the receiver: end the stream, wait for its end. */
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, MIB) > 0)
        ;
    SSL_free(ssl);
    close(fd);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int lfd, tls, gather, n = argc > 3 ? atoi(argv[3]) : 2000, status;
    pid_t pid;
    if (argc < 3 || n < 2 ||
        (strcmp(argv[2], "tls") != 0 && strcmp(argv[2], "tls-gather") != 0 &&
         strcmp(argv[2], "plain") != 0)) {
        fprintf(stderr,
                "usage: %s CERT_CHAIN_PEM tls|tls-gather|plain [N >= 2]\n",
                argv[0]);
        return 2;
    }
    gather = strcmp(argv[2], "tls-gather") == 0;
    tls = gather || strcmp(argv[2], "tls") == 0;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        return fail("cannot listen on loopback");
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        return fail("cannot fork");
    if (pid == 0)
        return receiver(lfd, argv[1], tls, n);
    close(lfd);
    if (sender(ntohs(a.sin_port), argv[1], tls, gather, n) != 0)
        return 1;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return fail("the receiver failed");
    return 0;
}
