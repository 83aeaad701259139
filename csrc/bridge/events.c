/* bridge/events.c - the event ring: completions and replies from the loop
 * thread to the thread that polls (a binding's pump), and beside it the
 * bounded ring of peer events (ch_bridge_peer_events).  Space is reserved
 * when a send is accepted, so a completion is never lost for lack of
 * memory; consecutive successes are merged into one event.  Everything
 * here runs with b->mu held, but ch_bridge_poll and ch_bridge_hurry,
 * which take it.
 *
 * ch_bridge_poll, called again within CH_EV_GATHER_NS of its last return,
 * lets successful completions gather for the rest of that time or until
 * there are CH_EV_BATCH of them (anything else ends the wait): in a
 * stream the pump thread then wakes about once a millisecond.  For
 * CH_EV_HURRY_NS after ch_bridge_hurry (somebody waits on a Future) it
 * does not gather. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <stdio.h>
#include <string.h>

#include "bridge/bridge_int.h"
#include "util/alloc.h"

#define CH_EV_BATCH 2048
#define CH_EV_GATHER_NS 1000000u
#define CH_EV_HURRY_NS 5000000u

int ch_events_init(ch_bridge_t *b)
{
    if (uv_cond_init(&b->ev.cv) != 0)
        return CH_ENOMEM;
    if (ch_events_reserve(b, 1) != CH_OK) { /* for the CH_EV_CLOSED event */
        uv_cond_destroy(&b->ev.cv);
        return CH_ENOMEM;
    }
    return CH_OK;
}

void ch_events_free(ch_bridge_t *b)
{
    uv_cond_destroy(&b->ev.cv);
    ch_free(b->ev.ring);
    b->ev.ring = NULL;
    ch_free(b->pring); /* peer events never taken */
    b->pring = NULL;
}

int ch_events_reserve(ch_bridge_t *b, size_t more)
{
    ch_events_t *ev = &b->ev;
    size_t need = ev->len + ev->reserved + more, cap, i;
    ch_event_t *n;
    if (need <= ev->cap) {
        ev->reserved += more;
        return CH_OK;
    }
    cap = ev->cap ? ev->cap : 64;
    while (cap < need)
        cap *= 2;
    n = ch_malloc(cap * sizeof(*n));
    if (n == NULL)
        return CH_ENOMEM;
    for (i = 0; i < ev->len; i++)
        n[i] = ev->ring[(ev->head + i) % ev->cap];
    ch_free(ev->ring);
    ev->ring = n;
    ev->cap = cap;
    ev->head = 0;
    ev->reserved += more;
    return CH_OK;
}

void ch_events_unreserve(ch_bridge_t *b, size_t n)
{
    b->ev.reserved -= n;
}

static ch_event_t *tail(ch_events_t *ev, size_t back)
{
    return &ev->ring[(ev->head + ev->len - back) % ev->cap];
}

void ch_events_push_ok(ch_bridge_t *b, uint64_t token, uint64_t count)
{
    ch_events_t *ev = &b->ev;
    ch_event_t *e;
    ev->reserved -= count; /* each had a place; one event takes one */
    ev->done += count;
    b->sig_ev = 1; /* the poller is woken once per turn of the loop */
    if (ev->len > 0) {
        e = tail(ev, 1);
        if (e->type == CH_EV_SEND && e->status == CH_OK &&
            e->token + e->count == token) {
            e->count += count;
            return;
        }
    }
    e = tail(ev, 0);
    e->type = CH_EV_SEND;
    e->status = CH_OK;
    e->token = token;
    e->count = count;
    e->msg = NULL;
    e->detail[0] = '\0';
    ev->len++;
}

void ch_events_push(ch_bridge_t *b, int type, int status, uint64_t token,
                    ch_message_t *msg, const char *detail)
{
    ch_events_t *ev = &b->ev;
    ch_event_t *e;
    /* Successes the loop thread staged go first: events keep their order. */
    if (b->st_count > 0) {
        ch_events_push_ok(b, b->st_token, b->st_count);
        b->st_count = 0;
    }
    if (type == CH_EV_SEND && status == CH_OK) {
        ch_events_push_ok(b, token, 1);
        return;
    }
    ev->urgent = 1;
    e = tail(ev, 0);
    e->type = type;
    e->status = status;
    e->token = token;
    e->count = 1;
    e->msg = msg;
    if (detail != NULL && detail[0] != '\0')
        snprintf(e->detail, sizeof(e->detail), "%s", detail);
    else
        e->detail[0] = '\0';
    ev->len++;
    ev->done++;
    ev->reserved--;
    b->sig_ev = 1;
}

void ch_events_signal(ch_bridge_t *b)
{
    ch_events_t *ev = &b->ev;
    if (b->sig_ev &&
        (!ev->gathering || ev->done >= CH_EV_BATCH || ev->urgent)) {
        uv_cond_signal(&ev->cv);
        b->sig_ev = 0;
    }
}

int ch_bridge_poll(ch_bridge_t *b, ch_event_t *out, int max, int timeout_ms)
{
    ch_events_t *ev = &b->ev;
    int n = 0;
    uv_mutex_lock(&b->mu);
    /* Called again soon (completions keep coming): let them gather, so
     * that the caller handles many per call instead of one per wake-up. */
    if (timeout_ms != 0) {
        uint64_t end = ev->last_poll + CH_EV_GATHER_NS, now;
        ev->gathering = 1;
        while (ev->done < CH_EV_BATCH && !ev->urgent && !b->closed &&
               (now = uv_hrtime()) < end && now >= ev->hurry_until)
            uv_cond_timedwait(&ev->cv, &b->mu, end - now);
        ev->gathering = 0;
    }
    /* No spinning here: Futures are not the low-latency path (the
     * blocking calls are), and a spinning pump thread would take CPU from
     * the threads doing the work. */
    if (!ch_wait_for(b, &ev->cv, &ev->len, timeout_ms, 0)) {
        int rc = b->closed ? CH_ECLOSED : CH_ETIMEDOUT;
        uv_mutex_unlock(&b->mu);
        return rc;
    }
    while (n < max && ev->len > 0) {
        ev->done -= ev->ring[ev->head].count;
        out[n++] = ev->ring[ev->head];
        ev->head = (ev->head + 1) % ev->cap;
        ev->len--;
    }
    if (ev->len == 0)
        ev->urgent = 0;
    ev->last_poll = uv_hrtime();
    uv_mutex_unlock(&b->mu);
    return n;
}

void ch_bridge_hurry(ch_bridge_t *b)
{
    uv_mutex_lock(&b->mu);
    b->ev.hurry_until = uv_hrtime() + CH_EV_HURRY_NS;
    if (b->ev.gathering)
        uv_cond_signal(&b->ev.cv);
    uv_mutex_unlock(&b->mu);
}

int ch_bridge_peer_events(ch_bridge_t *b, ch_peer_report_t *out, int max)
{
    int n = 0;
    uv_mutex_lock(&b->mu);
    while (n < max && b->plen > 0) {
        out[n++] = b->pring[b->phead];
        b->phead = (b->phead + 1) % b->pcap;
        b->plen--;
    }
    if (b->plen == 0) {
        /* The next one comes with a new CH_EV_PEER; a burst's ring is not
         * kept. */
        b->peer_marked = 0;
        ch_free(b->pring);
        b->pring = NULL;
        b->pcap = b->phead = 0;
    }
    uv_mutex_unlock(&b->mu);
    return n;
}
