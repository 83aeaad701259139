/* util/addr.c - address parsing, formatting and conversion (addr.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "util/addr.h"

int ch_parse_address(const char *text, uint8_t *ip_protocol,
                     uint8_t address[16])
{
    memset(address, 0, 16);
    if (text == NULL)
        return CH_EINVAL;
    if (uv_inet_pton(AF_INET, text, address) == 0) {
        *ip_protocol = 4;
        return CH_OK;
    }
    if (uv_inet_pton(AF_INET6, text, address) == 0) {
        *ip_protocol = 6;
        return CH_OK;
    }
    return CH_EINVAL;
}

void ch_format_address(uint8_t ip_protocol, const uint8_t address[16],
                       char *out, size_t outlen)
{
    if (uv_inet_ntop(ip_protocol == 6 ? AF_INET6 : AF_INET, address, out,
                     outlen) != 0)
        snprintf(out, outlen, "?");
}

int ch_addr_is_loopback(uint8_t ip_protocol, const uint8_t a[16])
{
    static const uint8_t v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                     0, 0, 0, 0, 0, 0, 0, 1};
    if (ip_protocol == 4)
        return a[0] == 127 && a[1] == 0 && a[2] == 0 && a[3] == 1;
    return memcmp(a, v6lo, 16) == 0;
}

void ch_addr_to_sockaddr(uint8_t ip_protocol, const uint8_t address[16],
                         uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (ip_protocol == 6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)out;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, address, 16);
        a->sin6_port = htons(port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)out;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, address, 4);
        a->sin_port = htons(port);
    }
}

void ch_addr_from_sockaddr(const struct sockaddr_storage *ss,
                           uint8_t *ip_protocol, uint8_t address[16],
                           uint16_t *port)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0xff, 0xff};
    memset(address, 0, 16);
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (memcmp(&a->sin6_addr, mapped, 12) == 0) {
            *ip_protocol = 4;
            memcpy(address, (const uint8_t *)&a->sin6_addr + 12, 4);
        } else {
            *ip_protocol = 6;
            memcpy(address, &a->sin6_addr, 16);
        }
        *port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        *ip_protocol = 4;
        memcpy(address, &a->sin_addr, 4);
        *port = ntohs(a->sin_port);
    }
}

void ch_addr_describe(uint8_t ip_protocol, const uint8_t address[16],
                      uint16_t port, char *out, size_t outlen)
{
    char a[64];
    ch_format_address(ip_protocol, address, a, sizeof(a));
    snprintf(out, outlen, ip_protocol == 6 ? "[%s]:%u" : "%s:%u", a,
             (unsigned)port);
}
