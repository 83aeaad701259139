/* util/alloc.h - every allocation of the core goes through these, so that
 * tests can make them fail on demand (chirp_testing.h). */
#ifndef CH_ALLOC_H
#define CH_ALLOC_H

#include <stddef.h>

void *ch_malloc(size_t size);
void *ch_calloc(size_t n, size_t size);
void *ch_realloc(void *p, size_t size);
void ch_free(void *p);

#endif
