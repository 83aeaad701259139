/* util/rng.c - xoroshiro128+ (see rng.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <string.h>

#include <uv.h>

#include "util/rng.h"

void ch_rng_seed(ch_rng_t *rng)
{
    if (uv_random(NULL, NULL, rng->s, sizeof(rng->s), 0, NULL) != 0 ||
        (rng->s[0] | rng->s[1]) == 0) {
        rng->s[0] = uv_hrtime() ^ (uint64_t)(uintptr_t)rng;
        rng->s[1] = 0x9e3779b97f4a7c15ull ^ (uint64_t)uv_os_getpid();
    }
}

uint64_t ch_rng_next(ch_rng_t *rng)
{
    uint64_t s0 = rng->s[0], s1 = rng->s[1], r = s0 + s1;
    s1 ^= s0;
    rng->s[0] = ((s0 << 55) | (s0 >> 9)) ^ s1 ^ (s1 << 14);
    rng->s[1] = (s1 << 36) | (s1 >> 28);
    return r;
}

void ch_rng_id(ch_rng_t *rng, uint8_t out[CH_ID_SIZE])
{
    uint64_t a = ch_rng_next(rng), b = ch_rng_next(rng);
    memcpy(out, &a, 8);
    memcpy(out + 8, &b, 8);
}
