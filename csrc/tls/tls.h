/* tls/tls.h - TLS for connections, kept apart from the message core: the
 * connection feeds received ciphertext in and takes plaintext out; the
 * writer hands plaintext buffers over and gets one ciphertext buffer
 * back.  Nothing here blocks, touches a socket or knows a connection; the
 * implementation (tls_openssl.c) is the only file that sees OpenSSL.
 * Loop thread only. */
#ifndef CH_TLS_H
#define CH_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* The writer stops adding messages to a TLS batch at this size, so that
 * encrypting the next batch overlaps sending this one. */
#define CH_TLS_BATCH (256u * 1024u)

typedef struct ch_tls_ctx ch_tls_ctx_t; /* a node's certificates and rules */
typedef struct ch_tls ch_tls_t;         /* one connection's TLS state */

/* Mutual TLS >= 1.2 from libchirp's certificate file (own certificate,
 * CA certificate(s), private key; also the trust store) and optional DH
 * parameters.  Certificate and key problems: CH_ETLS with a message. */
int ch_tls_ctx_new(const char *cert_chain_pem, const char *dh_params_pem,
                   ch_tls_ctx_t **out, char *err, size_t errlen);
void ch_tls_ctx_free(ch_tls_ctx_t *ctx);

/* The bytes a connection sets aside for its TLS state: it lives in the
 * connection's one allocation. */
size_t ch_tls_size(void);
/* TLS for one connection (server: the accepting side) in t (ch_tls_size
 * bytes, zeroed).  cbuf, cbuf_size bytes of the connection's memory,
 * holds received ciphertext until OpenSSL takes it.  CH_OK or CH_ENOMEM
 * (then nothing is left to clean up). */
int ch_tls_init(ch_tls_t *t, ch_tls_ctx_t *ctx, int server, uint8_t *cbuf,
                size_t cbuf_size);
/* Free what ch_tls_init made (t's own memory is the connection's). */
void ch_tls_cleanup(ch_tls_t *t);

/* Where to read ciphertext to: cbuf, after what OpenSSL has not taken. */
void ch_tls_read_buffer(ch_tls_t *t, uv_buf_t *buf);
/* Ciphertext just read into the buffer ch_tls_read_buffer gave.  CH_OK,
 * or CH_ETLS with the reason in why: a server's first byte in is not a
 * TLS handshake record (the peer does not speak TLS). */
int ch_tls_feed(ch_tls_t *t, const uint8_t *data, size_t len, char *why,
                size_t whylen);
/* 1: the handshake is done; 0: it needs more input (and may have output
 * to write, see ch_tls_pending); CH_ETLS with the reason in why. */
int ch_tls_handshake(ch_tls_t *t, char *why, size_t whylen);
/* Plaintext into out: bytes (> 0), 0 when more ciphertext is needed,
 * CH_ECONN (the peer's close_notify) or CH_ETLS, with why. */
int ch_tls_read(ch_tls_t *t, uint8_t *out, size_t cap, char *why,
                size_t whylen);
/* Ciphertext waiting to be written (handshake, alerts, tickets). */
size_t ch_tls_pending(const ch_tls_t *t);
/* Encrypt buffers into the pending ciphertext: CH_OK, CH_ENOMEM, CH_ETLS. */
int ch_tls_write(ch_tls_t *t, const uv_buf_t *bufs, int n);
/* Encrypt buffers (n may be 0) and take all pending ciphertext as one
 * buffer to write, valid until the next call: the caller writes one at a
 * time.  CH_OK, CH_ENOMEM, CH_ETLS. */
int ch_tls_encrypt(ch_tls_t *t, const uv_buf_t *bufs, int n, uv_buf_t *out);
/* Not writing, quiet for a while: let go of ciphertext buffers grown by a
 * big message. */
void ch_tls_trim(ch_tls_t *t);
/* The connection closes: *out gets the close_notify record for a
 * best-effort write (len 0 if there is none to send: no handshake yet, a
 * write in progress, or too much output); pending output is dropped. */
void ch_tls_close(ch_tls_t *t, int writing, uv_buf_t *out);

#endif
