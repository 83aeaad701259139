/* core/conn_int.h - the connection, shared by the three files of the
 * connection module and nobody else: conn.c (lifecycle), conn_read.c
 * (read path and slots), conn_write.c (writer).  Loop thread only. */
#ifndef CH_CONN_INT_H
#define CH_CONN_INT_H

#include "core/conn.h"
#include "core/send.h"
#include "wire/reader.h"

#define CH_DIRECT_READ 16384 /* payloads this big are read in place */

/* ch_send_t.acked_: its ACK came (1), or a reject (CH_REJECTED), while it
 * was still being written. */
#define CH_REJECTED 2

/* ch_message_t.state_ */
#define CH_MS_FREE 0
#define CH_MS_FILLING 1
#define CH_MS_APP 2
#define CH_MS_ACKQ 3
#define CH_MS_ACKWRITE 4

/* ch_conn_t.state */
#define CH_CS_CONNECTING 0
#define CH_CS_HANDSHAKE 1
#define CH_CS_READY 2
#define CH_CS_CLOSING 3
#define CH_CS_TLS 4 /* TLS handshake before the chirp handshake */

struct ch_conn {
    ch_conns_t *cs;
    ch_link_t link;       /* cs->all */
    ch_link_t flush_link; /* cs->flush, while corked */
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    int state;
    int outgoing;
    int handle_closed;
    int encrypted;
    int draining; /* node closing: close once the queued ACKs are out */
    ch_remote_t *remote;
    uint8_t ip_protocol;
    uint8_t address[16];
    uint16_t peer_port; /* TCP port of the peer */
    uint8_t remote_identity[CH_ID_SIZE];
    uint8_t hs_out[CH_HANDSHAKE_SIZE];
    uint64_t last_activity;
    uint64_t deadline; /* of connecting or the handshakes */
    int close_status;
    int close_reason; /* CH_REASON_*, or -1: from close_status */
    uint64_t ready_at; /* uv_now when it became ready */
    char close_detail[CH_DETAIL_SIZE];
    ch_tls_t *tls;  /* NULL on plaintext connections (until TLS starts) */
    ch_tls_t *tls_mem; /* TLS state's place in the allocation, or NULL */
    uint8_t *cbuf;  /* TLS: ciphertext read buffer (rbuf_size bytes) */
    /* read path (conn_read.c) */
    ch_reader_t reader;
    ch_message_t *cur; /* the slot being filled */
    uint8_t *rbuf;
    size_t rbuf_size;
    size_t rpos;
    size_t rlen;
    int nslots;
    int slots_busy;
    ch_message_t *slots;
    int slots_used;       /* slots [0, slots_used) were ever taken: the
                           * others are untouched (not yet resident) */
    uint16_t *free_slots; /* freed slots, a stack: the one freed last is
                           * taken first (its buffer is in the cache) */
    int nfree;
    uint8_t *inline_bufs;
    ch_list_t acks; /* released slots whose ACK waits */
    int stalled;    /* every slot taken, or max_memory: not reading */
    ch_link_t mem_link; /* cs->mem_wait, while waiting for memory */
    uint32_t mem_need;  /* the buffer it waits for, in bytes */
    int pumping;    /* in pump(): a slot freed meanwhile is taken by it,
                     * so freeing a slot does not resume (no recursion) */
    /* write path (conn_write.c) */
    int writing;
    ch_send_t *whead; /* the messages of the write: a chain through */
    ch_send_t *wtail; /* their wnext_, in the order written */
    int wcount;
    ch_list_t wacks; /* the ACKs of the write (their slots' link) */
    int inflight;     /* synchronous sends written here, not acked */
    uint64_t written; /* messages this node wrote on the connection */
    int peer_window;  /* from the peer's capability frame; 1 until then */
    int peer_reject;  /* it announced CH_CAP_REJECT: it reads reject frames */
    int cap_due;      /* the capability frame goes out with the next write */
    uint8_t cap_hdr[CH_HEADER_SIZE];
    uint8_t noop_hdr[CH_HEADER_SIZE];
};

/* conn.c */
void ch_conn_close(ch_conn_t *c, int status, const char *detail);
/* The same, saying why when the status does not (CH_REASON_PEER_CLOSED). */
void ch_conn_close_why(ch_conn_t *c, int status, int reason,
                       const char *detail);
/* Free once the handle is closed and no slot is held. */
void ch_conn_maybe_free(ch_conn_t *c);
/* The peer's handshake arrived. */
void ch_conn_handshake_done(ch_conn_t *c);
/* The TLS handshake may go on (ciphertext came). */
void ch_conn_tls_step(ch_conn_t *c);

/* conn_read.c */
void ch_conn_slots_init(ch_conn_t *c);
int ch_conn_read_start(ch_conn_t *c);
/* Parse what was read; resume reading unless every slot is taken. */
void ch_conn_pump(ch_conn_t *c);
void ch_conn_slot_free(ch_conn_t *c, ch_message_t *m);
/* The handle closed: drop slots being filled or waiting for their ACK. */
void ch_conn_slots_closed(ch_conn_t *c);
/* Free the slots' big buffers (the connection is freed). */
void ch_conn_slots_free(ch_conn_t *c);

/* conn_write.c */
/* Write what can be written: ACKs, the capability frame, queued sends. */
void ch_conn_flush(ch_conn_t *c);
/* Write TLS output that no batch carried (handshake, alerts, tickets). */
void ch_conn_flush_tls(ch_conn_t *c);
/* Start a write of n buffers (encrypted first on TLS): 0 or a libuv
 * error. */
int ch_conn_write(ch_conn_t *c, uv_buf_t *bufs, int n);
void ch_conn_ack_received(ch_conn_t *c, const uint8_t id[CH_ID_SIZE]);
/* A reject frame for a message this node sent. */
void ch_conn_reject_received(ch_conn_t *c, const uint8_t id[CH_ID_SIZE],
                             const uint8_t *reason, uint32_t len);
/* The connection closes: fail what waits on its ACKs. */
void ch_conn_writer_closed(ch_conn_t *c);
/* Sends in flight to r past their deadline: close their connection. */
void ch_conn_expire_inflight(ch_remote_t *r, uint64_t now);

#endif
