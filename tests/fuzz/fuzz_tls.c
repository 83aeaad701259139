/* tests/fuzz/fuzz_tls.c - libFuzzer: the TLS layer (csrc/tls), server
 * side, fed what a peer might send before and instead of a good
 * handshake.
 *
 * Input: byte 0 seeds the split of the rest into reads of 1 to 512
 * bytes, handed to the connection's TLS state as ciphertext the way the
 * read path does (ch_tls_read_buffer, ch_tls_feed), with ch_tls_handshake
 * and, once it is done, ch_tls_read after each; pending output is taken
 * as the writer would.  No crash, leak or sanitizer report; a failure
 * says why; after a failure nothing more is fed.  The certificate is
 * fuzz_tls.pem beside the harness (build.sh makes it). */
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chirp_common.h"
#include "tls/tls.h"

#define CBUF 16384

static ch_tls_ctx_t *ctx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[4096], err[256];
    char *dir;
    (void)argc;
    snprintf(path, sizeof(path), "%s", (*argv)[0]);
    dir = dirname(path);
    snprintf(err, sizeof(err), "%s/fuzz_tls.pem", dir);
    snprintf(path, sizeof(path), "%s", err);
    if (ch_tls_ctx_new(path, NULL, &ctx, err, sizeof(err)) != CH_OK) {
        fprintf(stderr, "fuzz_tls: %s: %s\n", path, err);
        abort();
    }
    return 0;
}

static int drain(ch_tls_t *t)
{
    uv_buf_t out;
    if (ch_tls_pending(t) == 0)
        return CH_OK;
    return ch_tls_encrypt(t, NULL, 0, &out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_tls_t *t;
    uint8_t *cbuf, plain[4096];
    char why[256];
    uint32_t seed;
    size_t pos = 1;
    int done = 0, rc = 0;
    uv_buf_t notify;
    if (size < 1)
        return 0;
    seed = data[0];
    t = calloc(1, ch_tls_size());
    cbuf = malloc(CBUF);
    if (t == NULL || cbuf == NULL)
        abort();
    if (ch_tls_init(t, ctx, 1, cbuf, CBUF) != CH_OK)
        abort();
    while (pos < size) {
        uv_buf_t buf;
        size_t n;
        seed = seed * 1103515245u + 12345u;
        n = 1 + (seed >> 16) % 512;
        if (n > size - pos)
            n = size - pos;
        ch_tls_read_buffer(t, &buf);
        if (buf.len == 0)
            break; /* a record bigger than the buffer: the real path closes */
        if (n > buf.len)
            n = buf.len;
        memcpy(buf.base, data + pos, n);
        pos += n;
        why[0] = '\0';
        if ((rc = ch_tls_feed(t, (const uint8_t *)buf.base, n, why, sizeof(why))) < 0)
            break;
        if (!done) {
            why[0] = '\0';
            if ((rc = ch_tls_handshake(t, why, sizeof(why))) < 0)
                break;
            done = rc == 1;
        }
        while (done) {
            why[0] = '\0';
            if ((rc = ch_tls_read(t, plain, sizeof(plain), why, sizeof(why))) <= 0)
                break;
        }
        if (rc < 0)
            break;
        if (drain(t) != CH_OK)
            break; /* no memory, or OpenSSL refused: the connection would close */
    }
    if (rc < 0 && why[0] == '\0')
        abort(); /* a failure that does not say why */
    ch_tls_close(t, 0, &notify);
    ch_tls_cleanup(t);
    free(cbuf);
    free(t);
    return 0;
}
