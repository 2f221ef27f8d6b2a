/*
 * histogram.h - fixed-bucket histograms whose observe path takes no lock.
 *
 * DESIGN
 * A histogram has one list of upper bucket bounds, fixed at creation, and up
 * to max_series series (one per label-value combination, chosen by the
 * caller).  A series is an array of per-bucket counts plus a sum, all relaxed
 * atomics, so observing is a bounds search and two atomic updates.  Buckets
 * store non-cumulative counts; a snapshot makes them cumulative, and the
 * total count is the sum of all buckets, so the count always equals the
 * +Inf bucket in a snapshot.  The sum is read separately and may trail the
 * counts by observations in flight.
 *
 * Series are added, never removed, until the histogram is freed.  Adding a
 * series and observing are safe from any number of threads; freeing is not
 * (the owner frees when no thread can observe any more).
 */
#ifndef PGS_HISTOGRAM_H
#define PGS_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bounds at most; the +Inf bucket comes on top of them. */
#define PGS_HISTOGRAM_MAX_BOUNDS 64

typedef struct pgs_histogram pgs_histogram;

/* One label-value combination.  Fields are private to histogram.c. */
typedef struct pgs_histogram_series {
    _Atomic uint64_t sum_bits; /* a double, updated with compare-exchange */
    atomic_uint_fast64_t buckets[];
} pgs_histogram_series;

/* A copy of one series; cumulative[i] counts values <= bounds[i], and
   cumulative[nbounds] is the +Inf bucket, equal to count. */
typedef struct pgs_histogram_snapshot {
    uint64_t cumulative[PGS_HISTOGRAM_MAX_BOUNDS + 1];
    double sum;
    uint64_t count;
} pgs_histogram_snapshot;

/* The Prometheus client libraries' default bounds, in seconds. */
extern const double pgs_histogram_default_bounds[];
extern const size_t pgs_histogram_default_nbounds;

/*
 * Create a histogram with the given upper bounds (strictly increasing,
 * finite; the +Inf bucket is implied) and room for max_series series.
 * Returns PGS_OK and stores it in *out, PGS_EINVAL for bad bounds, zero or
 * too many series, or PGS_ENOMEM.
 */
int pgs_histogram_create(pgs_histogram **out, const double *bounds,
                         size_t nbounds, size_t max_series);

void pgs_histogram_free(pgs_histogram *histogram);

/*
 * Add a zeroed series and store its index in *index.  Returns PGS_OK,
 * PGS_EFULL when max_series series exist, or PGS_ENOMEM.
 */
int pgs_histogram_add_series(pgs_histogram *histogram, size_t *index);

/* The series at index, or NULL if it was not added (yet). */
pgs_histogram_series *pgs_histogram_series_at(const pgs_histogram *histogram,
                                              size_t index);

/* Number of series added so far; indexes below it may still be NULL for
   the moment between reserving a slot and publishing the series. */
size_t pgs_histogram_series_count(const pgs_histogram *histogram);

size_t pgs_histogram_nbounds(const pgs_histogram *histogram);
const double *pgs_histogram_bounds(const pgs_histogram *histogram);

/* Count value in its bucket and add it to the sum.  NaN lands in +Inf. */
void pgs_histogram_observe(const pgs_histogram *histogram,
                           pgs_histogram_series *series, double value);

/* Copy one series into *out. */
void pgs_histogram_read(const pgs_histogram *histogram,
                        pgs_histogram_series *series,
                        pgs_histogram_snapshot *out);

#endif
