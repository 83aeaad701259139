/* util/error.c - names and meanings of the error codes and of the
 * reasons a connection closed, from their tables in chirp_common.h
 * (CH_ERRNO_MAP, CH_REASON_MAP). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include "chirp_common.h"

const char *ch_errname(int err)
{
    switch (err) {
#define CH_ERRNAME_(name, code, text)                                       \
    case CH_##name:                                                         \
        return "CH_" #name;
        CH_ERRNO_MAP(CH_ERRNAME_)
#undef CH_ERRNAME_
    default:
        return "CH_EUNKNOWN";
    }
}

const char *ch_strerror(int err)
{
    switch (err) {
#define CH_STRERROR_(name, code, text)                                      \
    case CH_##name:                                                         \
        return text;
        CH_ERRNO_MAP(CH_STRERROR_)
#undef CH_STRERROR_
    default:
        return "unknown error";
    }
}

const char *ch_reasonname(int reason)
{
    switch (reason) {
#define CH_REASONNAME_(name, code, text)                                    \
    case CH_REASON_##name:                                                  \
        return text;
        CH_REASON_MAP(CH_REASONNAME_)
#undef CH_REASONNAME_
    default:
        return "unknown";
    }
}
