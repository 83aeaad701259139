/* core/listener.c - listening and accepting (listener.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>

#include "core/listener.h"

static void on_handle_closed(uv_handle_t *h)
{
    ch_listener_t *l = h->data;
    l->open_handles--;
    l->on_handle_closed(l);
}

static void on_drop_closed(uv_handle_t *h);

/* Accept a connection we have no memory for and close it at once. */
static void drop_connection(ch_listener_t *l, uv_stream_t *server)
{
    if (l->drop_busy || uv_tcp_init(server->loop, &l->drop) != 0) {
        l->drop_pending[server == (uv_stream_t *)&l->v4 ? 0 : 1] = server;
        return;
    }
    l->drop.data = l;
    l->drop_busy = 1;
    l->open_handles++;
    uv_accept(server, (uv_stream_t *)&l->drop);
    uv_close((uv_handle_t *)&l->drop, on_drop_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    ch_listener_t *l = server->data;
    if (status < 0 || l->closing)
        return;
    if (ch_conn_accept(l->cs, server) != CH_OK)
        drop_connection(l, server);
}

static void on_drop_closed(uv_handle_t *h)
{
    ch_listener_t *l = h->data;
    int i;
    l->drop_busy = 0;
    for (i = 0; i < 2; i++) {
        uv_stream_t *server = l->drop_pending[i];
        l->drop_pending[i] = NULL;
        if (server != NULL && !l->closing)
            on_connection(server, 0); /* memory may be back */
    }
    on_handle_closed(h);
}

/* CH_OK; 1 when this address family is not available here; CH_EADDR. */
static int listen_on(ch_listener_t *l, uv_loop_t *loop, int v6,
                     const char *addr, int backlog, uint16_t *port,
                     char *err, size_t errlen)
{
    uv_tcp_t *h = v6 ? &l->v6 : &l->v4;
    struct sockaddr_storage ss;
    int rc, len;
    rc = uv_tcp_init(loop, h);
    if (rc < 0) {
        snprintf(err, errlen, "tcp init: %s", uv_strerror(rc));
        return CH_EADDR;
    }
    h->data = l;
    l->open_handles++;
    if (v6)
        l->has6 = 1; /* open: ch_listener_close closes it */
    else
        l->has4 = 1;
    if (v6)
        rc = uv_ip6_addr(addr, *port, (struct sockaddr_in6 *)&ss);
    else
        rc = uv_ip4_addr(addr, *port, (struct sockaddr_in *)&ss);
    if (rc == 0)
        rc = uv_tcp_bind(h, (struct sockaddr *)&ss, v6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, backlog, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s port %u: %s",
                 v6 ? "[" : "", addr, v6 ? "]" : "", *port, uv_strerror(rc));
        return rc == UV_EAFNOSUPPORT || rc == UV_EADDRNOTAVAIL ? 1 : CH_EADDR;
    }
    if (*port == 0) {
        len = sizeof(ss);
        rc = uv_tcp_getsockname(h, (struct sockaddr *)&ss, &len);
        if (rc < 0) {
            snprintf(err, errlen, "getsockname: %s", uv_strerror(rc));
            return CH_EADDR;
        }
        *port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                         : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return CH_OK;
}

int ch_listener_open(ch_listener_t *l, uv_loop_t *loop,
                     const ch_config_t *cfg, uint16_t *port, char *err,
                     size_t errlen)
{
    int rc;
    *port = (uint16_t)cfg->port;
    if (cfg->bind_v4 != NULL && cfg->bind_v4[0] != '\0') {
        rc = listen_on(l, loop, 0, cfg->bind_v4, cfg->backlog, port, err,
                       errlen);
        if (rc != CH_OK)
            return CH_EADDR;
    }
    if (cfg->bind_v6 != NULL && cfg->bind_v6[0] != '\0') {
        char err6[CH_DETAIL_SIZE];
        rc = listen_on(l, loop, 1, cfg->bind_v6, cfg->backlog, port, err6,
                       sizeof(err6));
        /* A host without IPv6 still serves IPv4. */
        if (rc != CH_OK && !(rc == 1 && l->has4)) {
            snprintf(err, errlen, "%s", err6);
            return CH_EADDR;
        }
    }
    return CH_OK;
}

static void close_handle(uv_tcp_t *h)
{
    if (!uv_is_closing((uv_handle_t *)h))
        uv_close((uv_handle_t *)h, on_handle_closed);
}

void ch_listener_close(ch_listener_t *l)
{
    l->closing = 1;
    if (l->has4)
        close_handle(&l->v4);
    if (l->has6)
        close_handle(&l->v6);
}
