/*
 * sampler.h - a thread that samples process and library gauges.
 *
 * DESIGN
 * A sampler keeps a table of gauges, each identified by a family number and
 * a label string (a pool's or cache's name, or "" for process gauges).  At
 * every tick it records the process's resident memory and OS thread count
 * and calls each registered source, which records its own gauges with
 * pgs_sampler_record.  For every gauge the table keeps the value of the last
 * tick and the maximum seen since the last pgs_sampler_read that asked to
 * reset it.  A gauge that a tick does not record (its pool was closed) is
 * dropped at the end of that tick.
 *
 * Ticks run on the sampler's own thread every interval, or on the calling
 * thread with pgs_sampler_tick.  Neither needs the Python interpreter.
 *
 * Lock rules: sampler->lock protects the table, the source list and the
 * thread state.  Sources run with it held, so a source must not call any
 * pgs_sampler_* function but pgs_sampler_record, and may take only locks
 * that are never held while waiting for the sampler.
 *
 * Fork: a child process has no sampler thread and may have inherited the
 * lock held.  Every function except pgs_sampler_is_inherited returns
 * PGS_ECLOSED or does nothing on a sampler created before a fork(); the
 * owner leaks it and creates a new one.
 */
#ifndef PGS_SAMPLER_H
#define PGS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* Longest label kept; longer labels are cut to PGS_SAMPLER_LABEL_MAX - 1
   bytes at a UTF-8 character boundary. */
#define PGS_SAMPLER_LABEL_MAX 128

/* Length in bytes of the part of label that the sampler keeps: all of it,
   or at most PGS_SAMPLER_LABEL_MAX - 1 bytes cut at a UTF-8 character
   boundary.  Series read elsewhere under the same label cut it with this
   so that they match the gauges. */
size_t pgs_sampler_label_length(const char *label);

/* Families the sampler records itself; sources use numbers from
   PGS_GAUGE_FIRST_SOURCE up. */
enum {
    PGS_GAUGE_RSS_BYTES = 0,
    PGS_GAUGE_OS_THREADS = 1,
    PGS_GAUGE_FIRST_SOURCE = 8,
};

typedef struct pgs_sampler pgs_sampler;

/* Read one process statistic; PGS_OK or PGS_EIO. */
typedef int (*pgs_read_stat_fn)(int64_t *out);

/* The platform readers: /proc on Linux, Mach calls on macOS, PGS_EIO
   elsewhere. */
int pgs_read_rss_bytes(int64_t *out);
int pgs_read_os_threads(int64_t *out);

/* Record gauges for one tick; runs with the sampler's lock held. */
typedef void (*pgs_sampler_source_fn)(void *arg, pgs_sampler *sampler);

typedef struct pgs_sampler_options {
    int64_t interval_ns;           /* > 0 */
    pgs_read_stat_fn read_rss;     /* NULL: pgs_read_rss_bytes */
    pgs_read_stat_fn read_threads; /* NULL: pgs_read_os_threads */
    size_t max_gauges;             /* 0: 4096; records past it are dropped */
} pgs_sampler_options;

typedef struct pgs_gauge_reading {
    int family;
    char label[PGS_SAMPLER_LABEL_MAX];
    int64_t current; /* value at the last tick */
    int64_t max;     /* maximum since the last read with reset_max */
} pgs_gauge_reading;

/* Create a stopped sampler.  PGS_OK, PGS_EINVAL for a non-positive
   interval, or PGS_ENOMEM. */
int pgs_sampler_create(pgs_sampler **out, const pgs_sampler_options *options);

/* Stop the thread if it runs, then free the sampler.  Not for inherited
   samplers (leak those). */
void pgs_sampler_free(pgs_sampler *sampler);

/* Register fn(arg) to run at every tick.  PGS_OK, PGS_ENOMEM or
   PGS_ECLOSED. */
int pgs_sampler_add_source(pgs_sampler *sampler, pgs_sampler_source_fn fn,
                           void *arg);

/*
 * Start the thread; it ticks at once, then every interval.  Returns PGS_OK
 * (also when it already runs), PGS_ETHREAD, or PGS_ECLOSED when inherited.
 */
int pgs_sampler_start(pgs_sampler *sampler);

/* Stop the thread and join it; returns at once if it does not run.  Must
   not be called from a source.  Callers serialize start and stop with each
   other: a start during another thread's stop returns PGS_OK and leaves
   the sampler stopped. */
void pgs_sampler_stop(pgs_sampler *sampler);

/* Nonzero while the thread runs. */
int pgs_sampler_is_running(pgs_sampler *sampler);

/* Change the interval; a running thread uses it from its next wait. */
int pgs_sampler_set_interval(pgs_sampler *sampler, int64_t interval_ns);

/* Take one sample now on the calling thread.  PGS_OK or PGS_ECLOSED. */
int pgs_sampler_tick(pgs_sampler *sampler);

/* Record one gauge from inside a source. */
void pgs_sampler_record(pgs_sampler *sampler, int family, const char *label,
                        int64_t value);

/*
 * Copy every gauge into a new array stored in *out (free it with free())
 * and its length in *count.  With reset_max, each maximum restarts from the
 * current value.  PGS_OK, PGS_ENOMEM or PGS_ECLOSED.
 */
int pgs_sampler_read(pgs_sampler *sampler, pgs_gauge_reading **out,
                     size_t *count, int reset_max);

/* Ticks taken so far, by the thread and by pgs_sampler_tick. */
uint64_t pgs_sampler_ticks(pgs_sampler *sampler);

/* Wait until at least `ticks` ticks were taken.  PGS_OK, PGS_ETIMEDOUT or
   PGS_ECLOSED. */
int pgs_sampler_wait_ticks(pgs_sampler *sampler, uint64_t ticks,
                           int64_t deadline_ns);

/* Nonzero if the sampler was created before a fork() that led here. */
int pgs_sampler_is_inherited(const pgs_sampler *sampler);

#endif
