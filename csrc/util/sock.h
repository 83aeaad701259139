/* util/sock.h - what the kernel knows of a TCP peer that is not being
 * read: a connection that stopped reading (every slot held) never sees
 * the peer's FIN or RST through libuv. */
#ifndef CH_SOCK_H
#define CH_SOCK_H

#include <uv.h>

#define CH_SOCK_OPEN 0
#define CH_SOCK_PEER_DONE 1 /* the peer sent FIN: it writes no more */
#define CH_SOCK_GONE 2      /* reset, or an error: nothing more comes */

/* The state of tcp's socket, without reading from it (CH_SOCK_OPEN where
 * the system cannot tell). */
int ch_sock_peer_state(const uv_tcp_t *tcp);

#endif
