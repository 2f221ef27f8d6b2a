/*
 * pgs_time.h - monotonic clock and deadline helpers shared by the core.
 */
#ifndef PGS_TIME_H
#define PGS_TIME_H

#include <stdint.h>
#include <time.h>

#define PGS_NS_PER_SEC INT64_C(1000000000)

/* Nanoseconds on CLOCK_MONOTONIC; never goes back, unaffected by settimeofday.
 */
static inline int64_t
pgs_monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * PGS_NS_PER_SEC + ts.tv_nsec;
}

/* Convert an absolute CLOCK_MONOTONIC time in ns to a timespec. */
static inline struct timespec
pgs_timespec_from_ns(int64_t ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ns / PGS_NS_PER_SEC);
    ts.tv_nsec = (long)(ns % PGS_NS_PER_SEC);
    return ts;
}

#endif
