/* core/listener.h - a node's listening sockets (IPv4 and IPv6) and what
 * accepting needs when memory runs out: a connection the node has no
 * memory for is accepted and closed at once with a handle of the
 * listener's own (a listener whose connection is never accepted stops
 * accepting altogether), and accepting resumes once that handle closed.
 * The node owns one; loop thread only. */
#ifndef CH_LISTENER_H
#define CH_LISTENER_H

#include <uv.h>

#include "core/conn.h"

typedef struct ch_listener ch_listener_t;

struct ch_listener {
    ch_conns_t *cs; /* accepted connections go there */
    uv_tcp_t v4;
    uv_tcp_t v6;
    int has4;
    int has6;
    uv_tcp_t drop; /* accepts and closes a connection with no memory */
    int drop_busy;
    uv_stream_t *drop_pending[2];
    int closing;
    int open_handles;
    /* One of the listener's handles closed (open_handles went down). */
    void (*on_handle_closed)(ch_listener_t *l);
};

/* Listen on config's addresses at *port (0: the system picks one, stored
 * in *port).  An error with a message in err: what was opened is closing
 * (wait for open_handles to reach 0). */
int ch_listener_open(ch_listener_t *l, uv_loop_t *loop,
                     const ch_config_t *config, uint16_t *port, char *err,
                     size_t errlen);
/* Stop listening (the handles close). */
void ch_listener_close(ch_listener_t *l);

#endif
