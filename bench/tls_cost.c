/* tls_cost.c - what OpenSSL's TLS layer alone costs per MiB on this
 * machine: a client and a server SSL in one thread, joined by a BIO pair
 * (no sockets, no chirp), TLS 1.3 with AES-128-GCM as chirp prefers it.
 * Encrypts 1 MiB, decrypts it, N times; prints the CPU per MiB of each.
 * Puts the TLS scenario's ceiling in numbers (see bench/README.md).
 *
 *   cc -std=c99 -O2 bench/tls_cost.c -lssl -lcrypto -o tls_cost
 *   ./tls_cost CERT_CHAIN_PEM [N]   (a chirp cert_chain_pem: cert + key)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MIB (1024 * 1024)

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(const char *what)
{
    fprintf(stderr, "tls_cost: %s\n", what);
    ERR_print_errors_fp(stderr);
    return 1;
}

int main(int argc, char **argv)
{
    SSL_CTX *sctx, *cctx;
    SSL *srv, *cli;
    BIO *bs, *bc;
    unsigned char *in, *out;
    double enc = 0, dec = 0;
    int i, n = argc > 2 ? atoi(argv[2]) : 1000;
    if (argc < 2 || n <= 0) {
        fprintf(stderr, "usage: %s CERT_CHAIN_PEM [N]\n", argv[0]);
        return 2;
    }
    sctx = SSL_CTX_new(TLS_server_method());
    cctx = SSL_CTX_new(TLS_client_method());
    if (sctx == NULL || cctx == NULL)
        return fail("cannot create the contexts");
    if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(sctx, argv[1], SSL_FILETYPE_PEM) != 1)
        return fail("cannot load the certificate chain and key");
    if (SSL_CTX_set_ciphersuites(sctx, "TLS_AES_128_GCM_SHA256") != 1 ||
        SSL_CTX_set_ciphersuites(cctx, "TLS_AES_128_GCM_SHA256") != 1)
        return fail("cannot set the cipher suite");
    srv = SSL_new(sctx);
    cli = SSL_new(cctx);
    if (srv == NULL || cli == NULL ||
        BIO_new_bio_pair(&bs, 4 * MIB, &bc, 4 * MIB) != 1)
        return fail("cannot create the connection");
    SSL_set_bio(srv, bs, bs);
    SSL_set_bio(cli, bc, bc);
    SSL_set_accept_state(srv);
    SSL_set_connect_state(cli);
    for (i = 0; i < 100 && !(SSL_is_init_finished(srv) &&
                             SSL_is_init_finished(cli));
         i++) {
        SSL_do_handshake(cli);
        SSL_do_handshake(srv);
    }
    if (!SSL_is_init_finished(srv) || !SSL_is_init_finished(cli))
        return fail("handshake did not finish");
    in = malloc(MIB);
    out = malloc(MIB);
    if (in == NULL || out == NULL)
        return fail("out of memory");
    memset(in, 0x5a, MIB);
    for (i = 0; i < n; i++) {
        size_t off;
        double t0 = thread_cpu(), t1;
        for (off = 0; off < MIB;) {
            int w = SSL_write(cli, in + off, (int)(MIB - off));
            if (w <= 0)
                return fail("SSL_write failed");
            off += (size_t)w;
        }
        t1 = thread_cpu();
        for (off = 0; off < MIB;) {
            int r = SSL_read(srv, out + off, (int)(MIB - off));
            if (r <= 0)
                return fail("SSL_read failed");
            off += (size_t)r;
        }
        enc += t1 - t0;
        dec += thread_cpu() - t1;
    }
    if (memcmp(in, out, MIB) != 0)
        return fail("the data came out different");
    printf("%d x 1 MiB, TLS 1.3 AES-128-GCM: encrypt %.3f ms/MiB, "
           "decrypt %.3f ms/MiB (CPU, one thread)\n",
           n, enc / n * 1e3, dec / n * 1e3);
    SSL_free(srv);
    SSL_free(cli);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    free(in);
    free(out);
    return 0;
}
