/* bridge/wakefd.c - eventfd or pipe (wakefd.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* libuv's headers need POSIX types under -std=c99 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "bridge/wakefd.h"

int ch_wakefd_open(ch_wakefd_t *p)
{
    int fds[2];
    p->rd = p->wr = -1;
#ifdef __linux__
    p->rd = p->wr = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->rd >= 0)
        return 0;
#endif
    if (pipe(fds) != 0)
        return -1;
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    p->rd = fds[0];
    p->wr = fds[1];
    return 0;
}

void ch_wakefd_signal(ch_wakefd_t *p)
{
    uint64_t one = 1;
    ssize_t rc;
    do
        rc = write(p->wr, &one, p->wr == p->rd ? sizeof(one) : 1);
    while (rc < 0 && errno == EINTR);
}

void ch_wakefd_clear(ch_wakefd_t *p)
{
    uint64_t buf;
    ssize_t rc;
    do
        rc = read(p->rd, &buf, sizeof(buf));
    while ((rc < 0 && errno == EINTR) || (rc > 0 && p->wr != p->rd));
}

void ch_wakefd_close(ch_wakefd_t *p)
{
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0 && p->wr != p->rd)
        close(p->wr);
    p->rd = p->wr = -1;
}
