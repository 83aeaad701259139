/* tls/tls_openssl.c - tls.h with OpenSSL.
 *
 * OpenSSL talks to the connection through a BIO of our own instead of
 * memory BIOs: it reads ciphertext straight from the connection's read
 * buffer and appends records straight to the outgoing buffer.  Memory
 * BIOs cost two more copies of every byte, and growing and compacting
 * their buffers a few more (a fifth of a TLS stream's CPU went to
 * memmove). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "chirp_common.h"
#include "tls/tls.h"
#include "util/alloc.h"

/* A ch_tls_ctx_t is an SSL_CTX: nothing of its own to add. */
static SSL_CTX *ssl_ctx_of(ch_tls_ctx_t *ctx)
{
    return (SSL_CTX *)(void *)ctx;
}

struct ch_tls {
    SSL *ssl;
    uint8_t *cbuf; /* the connection's ciphertext read buffer */
    size_t cbuf_size;
    const uint8_t *tin; /* received ciphertext OpenSSL has not taken yet */
    size_t tin_len;
    /* Ciphertext out, two buffers: OpenSSL appends to out[cur] while the
     * other one may be being written. */
    uint8_t *out[2];
    size_t out_cap[2];
    size_t out_len;
    int cur;
    int nomem; /* the BIO could not grow out[cur]: CH_ENOMEM */
    int done;  /* the handshake is done */
    int server;
    int started; /* ciphertext has arrived */
};

#define CH_TLS_HANDSHAKE_RECORD 0x16 /* a TLS record's first byte */

/* The first queued OpenSSL error as text ("" if none); clears the queue. */
static void last_error(char *out, size_t len)
{
    unsigned long e = ERR_get_error();
    out[0] = '\0';
    if (e != 0) {
        const char *reason = ERR_reason_error_string(e);
        if (reason != NULL)
            snprintf(out, len, "%s", reason);
        else
            ERR_error_string_n(e, out, len);
    }
    ERR_clear_error();
}

#define CTX_FAIL(...)                                                       \
    do {                                                                    \
        char ossl_[160];                                                    \
        char what_[CH_DETAIL_SIZE];                                         \
        last_error(ossl_, sizeof(ossl_));                                   \
        snprintf(what_, sizeof(what_), __VA_ARGS__);                        \
        snprintf(err, errlen, "%s%s%s", what_, ossl_[0] ? ": " : "",       \
                 ossl_);                                                    \
        SSL_CTX_free(ctx);                                                  \
        return CH_ETLS;                                                     \
    } while (0)

/* Certificates and rules, in an SSL_CTX (freed by CTX_FAIL on failure). */
static int make_ctx(const char *chain, const char *dh_pem, SSL_CTX **out,
                    char *err, size_t errlen)
{
    SSL_CTX *ctx;
    *out = NULL;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create the TLS context");
        return CH_ETLS;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        CTX_FAIL("cannot require TLS 1.2");
    /* libchirp's layout: own certificate, CA certificate(s), private key;
     * the same file is the trust store. */
    if (SSL_CTX_use_certificate_chain_file(ctx, chain) != 1)
        CTX_FAIL("cert_chain_pem '%s': cannot load the certificate chain",
                 chain);
    if (SSL_CTX_use_PrivateKey_file(ctx, chain, SSL_FILETYPE_PEM) != 1)
        CTX_FAIL("cert_chain_pem '%s': cannot load the private key", chain);
    if (SSL_CTX_check_private_key(ctx) != 1)
        CTX_FAIL("cert_chain_pem '%s': the private key does not match the "
                 "certificate",
                 chain);
    if (SSL_CTX_load_verify_locations(ctx, chain, NULL) != 1)
        CTX_FAIL("cert_chain_pem '%s': cannot load the CA certificates",
                 chain);
    if (dh_pem != NULL) {
        BIO *bio = BIO_new_file(dh_pem, "r");
        EVP_PKEY *dh = NULL;
        if (bio != NULL) {
            dh = PEM_read_bio_Parameters(bio, NULL);
            BIO_free(bio);
        }
        if (dh == NULL)
            CTX_FAIL("dh_params_pem '%s': cannot load DH parameters",
                     dh_pem);
        if (SSL_CTX_set0_tmp_dh_pkey(ctx, dh) != 1) {
            EVP_PKEY_free(dh);
            CTX_FAIL("dh_params_pem '%s': DH parameters refused",
                     dh_pem);
        }
    } else {
        SSL_CTX_set_dh_auto(ctx, 1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    /* TLS 1.3: AES-128-GCM first (the fastest here with AES-NI; the
     * other two stay allowed for peers that prefer them). */
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
                                      "TLS_AES_256_GCM_SHA384:"
                                      "TLS_CHACHA20_POLY1305_SHA256") != 1)
        CTX_FAIL("cannot set the TLS 1.3 cipher suites");
    /* OpenSSL's record buffers stay with the connection (no
     * SSL_MODE_RELEASE_BUFFERS): a running connection allocates nothing
     * big for each write or read, as its slots do. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    *out = ctx;
    return CH_OK;
}

int ch_tls_ctx_new(const char *cert_chain_pem, const char *dh_params_pem,
                   ch_tls_ctx_t **out, char *err, size_t errlen)
{
    SSL_CTX *ctx;
    int rc = make_ctx(cert_chain_pem, dh_params_pem, &ctx, err, errlen);
    *out = rc == CH_OK ? (ch_tls_ctx_t *)(void *)ctx : NULL;
    return rc;
}

void ch_tls_ctx_free(ch_tls_ctx_t *ctx)
{
    SSL_CTX_free(ssl_ctx_of(ctx));
}

/* ----------------------------------------------------- the connection BIO */

static BIO_METHOD *conn_method;
static uv_once_t conn_method_once = UV_ONCE_INIT;

/* Make room for more bytes after tls_out_len in the buffer OpenSSL
 * appends to (never the one being written). */
static int out_reserve(ch_tls_t *t, size_t more)
{
    int i = t->cur;
    size_t need = t->out_len + more, cap;
    uint8_t *b;
    if (need <= t->out_cap[i])
        return CH_OK;
    cap = t->out_cap[i] ? t->out_cap[i] : 16384;
    while (cap < need)
        cap *= 2;
    b = ch_realloc(t->out[i], cap);
    if (b == NULL)
        return CH_ENOMEM;
    t->out[i] = b;
    t->out_cap[i] = cap;
    return CH_OK;
}

/* OpenSSL wants ciphertext: what the last read brought, or "retry". */
static int conn_bio_read(BIO *bio, char *out, int len)
{
    ch_tls_t *t = BIO_get_data(bio);
    size_t n = t->tin_len < (size_t)len ? t->tin_len : (size_t)len;
    BIO_clear_retry_flags(bio);
    if (n == 0) {
        BIO_set_retry_read(bio);
        return -1;
    }
    memcpy(out, t->tin, n);
    t->tin += n;
    t->tin_len -= n;
    return (int)n;
}

/* OpenSSL made a record (or part of one): append it. */
static int conn_bio_write(BIO *bio, const char *in, int len)
{
    ch_tls_t *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (len <= 0)
        return 0;
    if (out_reserve(t, (size_t)len) != CH_OK) {
        t->nomem = 1; /* SSL_write fails; write_all tells why */
        return -1;
    }
    memcpy(t->out[t->cur] + t->out_len, in, (size_t)len);
    t->out_len += (size_t)len;
    return len;
}

static long conn_bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    ch_tls_t *t = BIO_get_data(bio);
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t != NULL ? (long)t->tin_len : 0;
    case BIO_CTRL_WPENDING:
        return t != NULL ? (long)t->out_len : 0;
    default:
        return 0;
    }
}

static void make_conn_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                 "chirp connection");
    if (m != NULL && (BIO_meth_set_read(m, conn_bio_read) != 1 ||
                      BIO_meth_set_write(m, conn_bio_write) != 1 ||
                      BIO_meth_set_ctrl(m, conn_bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    conn_method = m;
}

size_t ch_tls_size(void)
{
    return sizeof(ch_tls_t);
}

int ch_tls_init(ch_tls_t *t, ch_tls_ctx_t *ctx, int server, uint8_t *cbuf,
                size_t cbuf_size)
{
    BIO *bio;
    uv_once(&conn_method_once, make_conn_method);
    if (conn_method == NULL)
        return CH_ENOMEM;
    t->ssl = SSL_new(ssl_ctx_of(ctx));
    if (t->ssl == NULL)
        return CH_ENOMEM;
    bio = BIO_new(conn_method);
    if (bio == NULL) {
        SSL_free(t->ssl);
        t->ssl = NULL;
        return CH_ENOMEM;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* one reference, for both directions */
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    t->cbuf = cbuf;
    t->cbuf_size = cbuf_size;
    t->server = server;
    return CH_OK;
}

void ch_tls_cleanup(ch_tls_t *t)
{
    int i;
    SSL_free(t->ssl); /* frees the BIO */
    t->ssl = NULL;
    for (i = 0; i < 2; i++) {
        ch_free(t->out[i]);
        t->out[i] = NULL;
        t->out_cap[i] = 0;
    }
    t->out_len = 0;
}

int ch_tls_feed(ch_tls_t *t, const uint8_t *data, size_t len, char *why,
                size_t whylen)
{
    if (len > 0 && !t->started) {
        t->started = 1;
        /* A client's first record is a handshake record.  Anything else
         * is not TLS (a plaintext node's handshake begins with its port,
         * which OpenSSL may take for an old-style record header announcing
         * up to 32 KiB, and wait for it): refuse it now. */
        if (t->server && data[0] != CH_TLS_HANDSHAKE_RECORD) {
            snprintf(why, whylen,
                     "TLS handshake failed: the peer did not start TLS "
                     "(first byte 0x%02x; a plaintext node?)",
                     data[0]);
            return CH_ETLS;
        }
    }
    /* data is right after what OpenSSL has not taken yet, if anything:
     * ch_tls_read_buffer put it there. */
    if (t->tin_len == 0)
        t->tin = data;
    t->tin_len += len;
    return CH_OK;
}

void ch_tls_read_buffer(ch_tls_t *t, uv_buf_t *buf)
{
    size_t keep = t->tin_len;
    if (keep > 0 && t->tin != t->cbuf) {
        memmove(t->cbuf, t->tin, keep);
        t->tin = t->cbuf;
    }
    buf->base = (char *)t->cbuf + keep;
    buf->len = keep < t->cbuf_size ? t->cbuf_size - keep : 0;
}

/* Why a handshake or read failed, as precise as OpenSSL lets us be. */
static void failure(ch_tls_t *t, const char *what, char *out, size_t len)
{
    char ossl[160];
    long vr = SSL_get_verify_result(t->ssl);
    last_error(ossl, sizeof(ossl));
    if (vr != X509_V_OK)
        snprintf(out, len, "%s: certificate verify failed: %s", what,
                 X509_verify_cert_error_string(vr));
    else if (ossl[0] != '\0')
        snprintf(out, len, "%s: %s", what, ossl);
    else
        snprintf(out, len, "%s: connection closed during TLS", what);
}

int ch_tls_handshake(ch_tls_t *t, char *why, size_t whylen)
{
    int rc, e;
    ERR_clear_error();
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->done = 1;
        return 1;
    }
    e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    failure(t, "TLS handshake failed", why, whylen);
    return CH_ETLS;
}

int ch_tls_read(ch_tls_t *t, uint8_t *out, size_t cap, char *why,
                size_t whylen)
{
    int n, e;
    ERR_clear_error();
    n = SSL_read(t->ssl, out, cap > 0x40000000 ? 0x40000000 : (int)cap);
    if (n > 0)
        return n;
    e = SSL_get_error(t->ssl, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    if (e == SSL_ERROR_ZERO_RETURN) {
        snprintf(why, whylen, "connection closed by peer (TLS close)");
        return CH_ECONN;
    }
    failure(t, "TLS error", why, whylen);
    return CH_ETLS;
}

size_t ch_tls_pending(const ch_tls_t *t)
{
    return t->out_len;
}

static int write_all(ch_tls_t *t, const char *p, size_t left)
{
    while (left > 0) {
        int chunk = left > 0x40000000 ? 0x40000000 : (int)left;
        int w = SSL_write(t->ssl, p, chunk);
        if (w <= 0) {
            int rc = t->nomem ? CH_ENOMEM : CH_ETLS;
            t->nomem = 0;
            return rc;
        }
        p += w;
        left -= (size_t)w;
    }
    return CH_OK;
}

/* Small pieces (message headers, small payloads, ACKs) are gathered into
 * whole TLS records instead of becoming a record each. */
#define CH_TLS_STAGE 16384

int ch_tls_write(ch_tls_t *t, const uv_buf_t *bufs, int n)
{
    char stage[CH_TLS_STAGE];
    size_t used = 0;
    int i, rc;
    ERR_clear_error();
    for (i = 0; i < n; i++) {
        size_t len = bufs[i].len;
        if (used + len > CH_TLS_STAGE) {
            if ((rc = write_all(t, stage, used)) != CH_OK)
                return rc;
            used = 0;
        }
        if (len >= CH_TLS_STAGE) {
            if ((rc = write_all(t, bufs[i].base, len)) != CH_OK)
                return rc;
        } else {
            memcpy(stage + used, bufs[i].base, len);
            used += len;
        }
    }
    return write_all(t, stage, used);
}

int ch_tls_encrypt(ch_tls_t *t, const uv_buf_t *bufs, int n, uv_buf_t *out)
{
    size_t plain = 0;
    int i, rc;
    for (i = 0; i < n; i++)
        plain += bufs[i].len;
    /* Room for the records at once (22 bytes per 16 KiB record, and
     * some), instead of growing record by record. */
    if (out_reserve(t, plain + plain / 512 + 256) != CH_OK)
        return CH_ENOMEM;
    rc = ch_tls_write(t, bufs, n);
    if (rc != CH_OK)
        return rc;
    /* Hand this buffer to the write; OpenSSL appends to the other one
     * meanwhile (the caller writes only when no write is in progress). */
    *out = uv_buf_init((char *)t->out[t->cur],
                       (unsigned)t->out_len);
    t->cur ^= 1;
    t->out_len = 0;
    return CH_OK;
}

void ch_tls_trim(ch_tls_t *t)
{
    /* A big message grew the ciphertext buffers: do not keep them for
     * the connection's lifetime (the timer calls this on quiet
     * connections, with no write in progress). */
    int i;
    for (i = 0; i < 2; i++) {
        if (t->out_cap[i] > 2 * CH_TLS_BATCH &&
            (i != t->cur || t->out_len == 0)) {
            ch_free(t->out[i]);
            t->out[i] = NULL;
            t->out_cap[i] = 0;
        }
    }
}

void ch_tls_close(ch_tls_t *t, int writing, uv_buf_t *out)
{
    size_t pending;
    *out = uv_buf_init(NULL, 0);
    if (!t->done)
        return;
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    pending = t->out_len;
    /* Best effort: the caller writes the close_notify if the socket takes
     * it right now; nobody waits for it. */
    if (pending > 0 && pending <= 4096 && !writing)
        *out = uv_buf_init((char *)t->out[t->cur], (unsigned)pending);
    t->out_len = 0;
    ERR_clear_error();
}
