/* util/alloc.c - the core's allocator: malloc and friends, made to fail on
 * demand (after N calls, or every Nth call) for tests that check that
 * each failure becomes an error on one operation, never a crash.  Any
 * thread may allocate: the counters are atomic. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdlib.h>

#include "chirp_testing.h"
#include "util/alloc.h"

static long inject_after = -1; /* fail calls after this many; -1: off */
static long inject_every = 0;  /* fail every Nth call; 0: off */
static long inject_calls = 0;
static long inject_failures = 0;
static int inject_on = 0;

void ch_alloc_inject(long fail_after, long fail_every)
{
    __atomic_store_n(&inject_calls, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&inject_failures, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&inject_after, fail_after, __ATOMIC_SEQ_CST);
    __atomic_store_n(&inject_every, fail_every, __ATOMIC_SEQ_CST);
    __atomic_store_n(&inject_on, fail_after >= 0 || fail_every > 0,
                     __ATOMIC_SEQ_CST);
}

long ch_alloc_failures(void)
{
    return __atomic_load_n(&inject_failures, __ATOMIC_SEQ_CST);
}

static int should_fail(void)
{
    long n, after, every;
    if (!__atomic_load_n(&inject_on, __ATOMIC_RELAXED))
        return 0;
    n = __atomic_add_fetch(&inject_calls, 1, __ATOMIC_SEQ_CST);
    after = __atomic_load_n(&inject_after, __ATOMIC_RELAXED);
    every = __atomic_load_n(&inject_every, __ATOMIC_RELAXED);
    if ((after >= 0 && n > after) || (every > 0 && n % every == 0)) {
        __atomic_add_fetch(&inject_failures, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    return 0;
}

void *ch_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size);
}

void *ch_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *ch_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size);
}

void ch_free(void *p)
{
    free(p);
}
