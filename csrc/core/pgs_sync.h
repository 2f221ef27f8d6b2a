/*
 * pgs_sync.h - condition variables that time out on the monotonic clock.
 *
 * Linux and the BSDs let a condition variable use CLOCK_MONOTONIC; macOS
 * does not, so there the absolute deadline is turned into a relative wait.
 */
#ifndef PGS_SYNC_H
#define PGS_SYNC_H

#include <errno.h>
#include <pthread.h>

#include "pgs_error.h"
#include "pgs_time.h"

static inline int
pgs_cond_init(pthread_cond_t *cond)
{
#if defined(__APPLE__)
    return pthread_cond_init(cond, NULL) == 0 ? PGS_OK : PGS_ENOMEM;
#else
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return PGS_ENOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? PGS_OK : PGS_ENOMEM;
#endif
}

/*
 * Wait on cond until it is signalled or the monotonic clock reaches
 * deadline_ns; a negative deadline waits without a limit.  Returns PGS_OK
 * when woken (possibly spuriously) and PGS_ETIMEDOUT when the deadline passed.
 * The caller holds mutex, as for pthread_cond_wait.
 */
static inline int
pgs_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mutex,
                    int64_t deadline_ns)
{
    int rc;

    if (deadline_ns < 0) {
        pthread_cond_wait(cond, mutex);
        return PGS_OK;
    }
#if defined(__APPLE__)
    {
        int64_t left = deadline_ns - pgs_monotonic_ns();
        struct timespec rel;

        if (left <= 0)
            return PGS_ETIMEDOUT;
        rel = pgs_timespec_from_ns(left);
        rc = pthread_cond_timedwait_relative_np(cond, mutex, &rel);
    }
#else
    {
        struct timespec abs = pgs_timespec_from_ns(deadline_ns);

        rc = pthread_cond_timedwait(cond, mutex, &abs);
    }
#endif
    return rc == ETIMEDOUT ? PGS_ETIMEDOUT : PGS_OK;
}

#endif
