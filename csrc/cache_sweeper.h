/*
 * cache_sweeper.h - the background thread that removes expired entries of
 * one TTLCache, and the clock that the cache binding and its sweeper share.
 */
#ifndef PGS_CACHE_SWEEPER_H
#define PGS_CACHE_SWEEPER_H

#include <stdint.h>
#include <time.h>

#include "cache.h"
#include "pgs_time.h"

typedef struct cache_sweeper cache_sweeper;

/*
 * The default clock of TTLCache, in nanoseconds.  On Linux this is
 * CLOCK_MONOTONIC_COARSE: about 5 ns a call instead of about 20, at the
 * price of the kernel tick as resolution (1-4 ms), so an entry may outlive
 * its TTL by up to one tick.
 */
static inline int64_t
pgs_cache_clock_ns(void)
{
#if defined(CLOCK_MONOTONIC_COARSE)
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * PGS_NS_PER_SEC + ts.tv_nsec;
#else
    return pgs_monotonic_ns();
#endif
}

/*
 * Start a thread that calls pgs_cache_sweep(cache, now, budget) every
 * interval_ns and releases what it unlinked with the GIL held.  The thread
 * holds no reference to any Python object.  Returns PGS_OK and stores the
 * sweeper in *out, PGS_ENOMEM or PGS_ETHREAD.  Call with the GIL held.
 */
int pgs_sweeper_start(cache_sweeper **out, pgs_cache *cache,
                      int64_t interval_ns, size_t budget);

/*
 * Stop the thread and free the sweeper.  Afterwards the thread no longer
 * touches the cache, so the caller may destroy it.  Call with the GIL held:
 * it is released during the wait, which lasts at most one sweep.  When
 * called on the sweeper thread itself (a value released by the sweep freed
 * the cache), the thread is detached and exits once the release returns.
 * In a forked child the sweeper's thread does not exist; it is just freed.
 */
void pgs_sweeper_stop(cache_sweeper *sweeper);

/* Nonzero if the sweeper was started before a fork() that led here. */
int pgs_sweeper_is_inherited(const cache_sweeper *sweeper);

/* For fork handlers: take and release the sweeper's own mutex. */
void pgs_sweeper_lock(cache_sweeper *sweeper);
void pgs_sweeper_unlock(cache_sweeper *sweeper);

#endif
