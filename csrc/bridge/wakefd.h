/* bridge/wakefd.h - a file descriptor other threads or event loops can
 * wait on: an eventfd, or a pipe where there is none.  Both ends are
 * non-blocking and close on exec.  No locking of its own. */
#ifndef CH_WAKEFD_H
#define CH_WAKEFD_H

typedef struct ch_wakefd {
    int rd;
    int wr;
} ch_wakefd_t;

/* 0, or -1 with errno set. */
int ch_wakefd_open(ch_wakefd_t *p);
/* Make it readable (a full pipe is readable already). */
void ch_wakefd_signal(ch_wakefd_t *p);
/* Make it unreadable again. */
void ch_wakefd_clear(ch_wakefd_t *p);
void ch_wakefd_close(ch_wakefd_t *p);

#endif
