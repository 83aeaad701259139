/* util/sock.c - a TCP peer's state without reading (sock.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* POLLRDHUP */
#endif
#include <poll.h>

#include "util/sock.h"

int ch_sock_peer_state(const uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    struct pollfd p;
    if (uv_fileno((const uv_handle_t *)tcp, &fd) != 0)
        return CH_SOCK_OPEN;
    p.fd = fd;
    p.revents = 0;
#ifdef POLLRDHUP
    p.events = POLLRDHUP;
#else
    p.events = 0; /* errors and hang-ups only */
#endif
    if (poll(&p, 1, 0) <= 0)
        return CH_SOCK_OPEN;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        return CH_SOCK_GONE;
#ifdef POLLRDHUP
    if (p.revents & POLLRDHUP)
        return CH_SOCK_PEER_DONE;
#endif
    return CH_SOCK_OPEN;
}
