/* core/config.c - the configuration: defaults and checks, both read from
 * the one option table (CH_CONFIG_MAP in chirp_common.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "chirp_common.h"

#define CH_OPTION_ENTRY_(name, kind, dflt, dtext, lo, hi, flags, doc)       \
    {#name, CH_OPT_##kind, flags, offsetof(ch_config_t, name), dflt, dtext,  \
     lo, hi, doc},
static const ch_option_t options[] = {CH_CONFIG_MAP(CH_OPTION_ENTRY_)};
#undef CH_OPTION_ENTRY_

#define NOPTIONS ((int)(sizeof(options) / sizeof(options[0])))

const ch_option_t *ch_config_options(int *count)
{
    *count = NOPTIONS;
    return options;
}

void ch_config_init(ch_config_t *c)
{
    int i;
    memset(c, 0, sizeof(*c));
    for (i = 0; i < NOPTIONS; i++) {
        const ch_option_t *o = &options[i];
        char *p = (char *)c + o->offset;
        switch (o->kind) {
        case CH_OPT_INT:
        case CH_OPT_BOOL:
            *(int *)(void *)p = (int)o->dflt;
            break;
        case CH_OPT_U32:
            *(uint32_t *)(void *)p = (uint32_t)o->dflt;
            break;
        case CH_OPT_SECONDS:
            *(double *)(void *)p = o->dflt;
            break;
        case CH_OPT_ID:
            *(const uint8_t **)(void *)p = NULL;
            break;
        default: /* addresses and paths */
            *(const char **)(void *)p = o->dflt_text;
            break;
        }
    }
}

#define FAIL(...)                                                           \
    do {                                                                    \
        if (err != NULL && errlen > 0)                                      \
            snprintf(err, errlen, __VA_ARGS__);                             \
        return CH_EINVAL;                                                   \
    } while (0)

/* One option's value against the table. */
static int check_option(const ch_config_t *c, const ch_option_t *o,
                        char *err, size_t errlen)
{
    const char *p = (const char *)c + o->offset;
    int zero_ok = (o->flags & CH_OPT_ZERO_OK) != 0;
    const char *zero = zero_ok ? "0 or " : "";
    switch (o->kind) {
    case CH_OPT_INT: {
        int v = *(const int *)(const void *)p;
        if (!(v == 0 && zero_ok) && (v < o->lo || v > o->hi))
            FAIL("%s must be %sin %.0f..%.0f, got %d", o->name, zero, o->lo,
                 o->hi, v);
        break;
    }
    case CH_OPT_U32: {
        uint32_t v = *(const uint32_t *)(const void *)p;
        if (!(v == 0 && zero_ok) && (v < o->lo || v > o->hi))
            FAIL("%s must be %sin %.0f..%.0f, got %u", o->name, zero, o->lo,
                 o->hi, (unsigned)v);
        break;
    }
    case CH_OPT_SECONDS: {
        double v = *(const double *)(const void *)p;
        if ((o->flags & CH_OPT_UNSET) && v < 0)
            break;
        if (!(v == 0 && zero_ok) && (!(v > o->lo) || v > o->hi))
            FAIL("%s must be %s %g and <= %g seconds, got %g", o->name,
                 zero_ok && o->lo == 0 ? ">=" : ">", o->lo, o->hi,
                 v); /* also refuses NaN */
        break;
    }
    case CH_OPT_BOOL: {
        int v = *(const int *)(const void *)p;
        if (v != 0 && v != 1)
            FAIL("%s must be 0 or 1, got %d", o->name, v);
        break;
    }
    case CH_OPT_IPV4:
    case CH_OPT_IPV6: {
        const char *text = *(const char *const *)(const void *)p;
        int want = o->kind == CH_OPT_IPV4 ? 4 : 6;
        uint8_t proto, addr[16];
        if (text != NULL && text[0] != '\0' &&
            (ch_parse_address(text, &proto, addr) != CH_OK || proto != want))
            FAIL("%s is not an IPv%d address: '%.64s'", o->name, want, text);
        break;
    }
    default: /* paths are checked when loaded, identities need none */
        break;
    }
    return CH_OK;
}

int ch_config_check(const ch_config_t *c, char *err, size_t errlen)
{
    int i, rc;
    for (i = 0; i < NOPTIONS; i++)
        if ((rc = check_option(c, &options[i], err, errlen)) != CH_OK)
            return rc;
    if ((c->bind_v4 == NULL || c->bind_v4[0] == '\0') &&
        (c->bind_v6 == NULL || c->bind_v6[0] == '\0'))
        FAIL("bind_v4 and bind_v6 are both empty: nothing to listen on");
    if (c->max_msg_size > c->max_memory)
        FAIL("max_msg_size (%lu) is more than max_memory (%lu): such a "
             "message could never be received",
             (unsigned long)c->max_msg_size, (unsigned long)c->max_memory);
    return CH_OK;
}
