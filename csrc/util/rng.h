/* util/rng.h - identities for nodes and messages: xoroshiro128+, seeded
 * from the system.  Identities need to be unique, not secret.  Not
 * thread-safe: each thread that makes identities has its own. */
#ifndef CH_RNG_H
#define CH_RNG_H

#include <stdint.h>

#include "chirp_common.h"

typedef struct ch_rng {
    uint64_t s[2];
} ch_rng_t;

/* Seed from the system's randomness (or the clock, if that fails). */
void ch_rng_seed(ch_rng_t *rng);
uint64_t ch_rng_next(ch_rng_t *rng);
/* CH_ID_SIZE random bytes. */
void ch_rng_id(ch_rng_t *rng, uint8_t out[CH_ID_SIZE]);

#endif
