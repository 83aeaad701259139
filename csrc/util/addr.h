/* util/addr.h - addresses as the core keeps them (IP version, 16 bytes,
 * port) and as sockets want them.  ch_parse_address and
 * ch_format_address are public (chirp_common.h). */
#ifndef CH_ADDR_H
#define CH_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "chirp_common.h"

/* Exactly 127.0.0.1 or ::1: the peers that need no encryption. */
int ch_addr_is_loopback(uint8_t ip_protocol, const uint8_t address[16]);
/* A socket address for (ip_protocol, address, port). */
void ch_addr_to_sockaddr(uint8_t ip_protocol, const uint8_t address[16],
                         uint16_t port, struct sockaddr_storage *out);
/* The other way round; an IPv4-mapped IPv6 address becomes IPv4. */
void ch_addr_from_sockaddr(const struct sockaddr_storage *ss,
                           uint8_t *ip_protocol, uint8_t address[16],
                           uint16_t *port);
/* "1.2.3.4:5" or "[::1]:5", for error messages. */
void ch_addr_describe(uint8_t ip_protocol, const uint8_t address[16],
                      uint16_t port, char *out, size_t outlen);

#endif
