/*
 * histogram.c - lock-free fixed-bucket histograms; see histogram.h.
 */
#include "histogram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pgs_error.h"

struct pgs_histogram {
    size_t nbounds;
    size_t max_series;
    double bounds[PGS_HISTOGRAM_MAX_BOUNDS];
    atomic_size_t reserved; /* slots handed out by add_series */
    _Atomic(pgs_histogram_series *) *series;
};

const double pgs_histogram_default_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0,
};
const size_t pgs_histogram_default_nbounds =
    sizeof(pgs_histogram_default_bounds) / sizeof(double);


int
pgs_histogram_create(pgs_histogram **out, const double *bounds,
                     size_t nbounds, size_t max_series)
{
    pgs_histogram *histogram;
    size_t i;

    *out = NULL;
    if (nbounds > PGS_HISTOGRAM_MAX_BOUNDS || max_series == 0 ||
        max_series > SIZE_MAX / sizeof(void *))
        return PGS_EINVAL;
    for (i = 0; i < nbounds; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return PGS_EINVAL;
    }
    histogram = calloc(1, sizeof(*histogram));
    if (histogram == NULL)
        return PGS_ENOMEM;
    histogram->series = calloc(max_series, sizeof(*histogram->series));
    if (histogram->series == NULL) {
        free(histogram);
        return PGS_ENOMEM;
    }
    histogram->nbounds = nbounds;
    histogram->max_series = max_series;
    if (nbounds > 0)
        memcpy(histogram->bounds, bounds, nbounds * sizeof(double));
    *out = histogram;
    return PGS_OK;
}


void
pgs_histogram_free(pgs_histogram *histogram)
{
    size_t i, n;

    if (histogram == NULL)
        return;
    n = atomic_load(&histogram->reserved);
    if (n > histogram->max_series)
        n = histogram->max_series;
    for (i = 0; i < n; i++)
        free(atomic_load(&histogram->series[i]));
    free(histogram->series);
    free(histogram);
}


int
pgs_histogram_add_series(pgs_histogram *histogram, size_t *index)
{
    size_t nbuckets = histogram->nbounds + 1;
    pgs_histogram_series *series;
    size_t slot;

    /* Reserve a slot first so that concurrent callers never share one; a
       failed reservation leaves `reserved` past max_series, which only
       makes later calls fail the same way. */
    slot = atomic_fetch_add(&histogram->reserved, 1);
    if (slot >= histogram->max_series)
        return PGS_EFULL;
    series = calloc(1, sizeof(*series) + nbuckets * sizeof(series->buckets[0]));
    if (series == NULL) {
        /* NOTE: the reserved slot stays empty; readers skip NULL slots. */
        return PGS_ENOMEM;
    }
    atomic_store_explicit(&series->sum_bits, 0, memory_order_relaxed);
    atomic_store_explicit(&histogram->series[slot], series, memory_order_release);
    *index = slot;
    return PGS_OK;
}


pgs_histogram_series *
pgs_histogram_series_at(const pgs_histogram *histogram, size_t index)
{
    if (index >= histogram->max_series)
        return NULL;
    return atomic_load_explicit(&histogram->series[index], memory_order_acquire);
}


size_t
pgs_histogram_series_count(const pgs_histogram *histogram)
{
    size_t n = atomic_load_explicit(&histogram->reserved, memory_order_acquire);

    return n < histogram->max_series ? n : histogram->max_series;
}


size_t
pgs_histogram_nbounds(const pgs_histogram *histogram)
{
    return histogram->nbounds;
}


const double *
pgs_histogram_bounds(const pgs_histogram *histogram)
{
    return histogram->bounds;
}


static inline uint64_t
bits_from_double(double value)
{
    uint64_t bits;

    memcpy(&bits, &value, sizeof(bits));
    return bits;
}


static inline double
double_from_bits(uint64_t bits)
{
    double value;

    memcpy(&value, &bits, sizeof(value));
    return value;
}


/* Index of the first bucket whose upper bound is >= value (Prometheus "le"). */
static inline size_t
find_bucket(const pgs_histogram *histogram, double value)
{
    size_t low = 0, high = histogram->nbounds, mid;

    if (isnan(value))
        return histogram->nbounds;
    while (low < high) {
        mid = (low + high) / 2;
        if (value <= histogram->bounds[mid])
            high = mid;
        else
            low = mid + 1;
    }
    return low;
}


void
pgs_histogram_observe(const pgs_histogram *histogram,
                      pgs_histogram_series *series, double value)
{
    size_t bucket = find_bucket(histogram, value);
    uint64_t old_bits, new_bits;

    atomic_fetch_add_explicit(&series->buckets[bucket], 1, memory_order_relaxed);
    old_bits = atomic_load_explicit(&series->sum_bits, memory_order_relaxed);
    do {
        new_bits = bits_from_double(double_from_bits(old_bits) + value);
    } while (!atomic_compare_exchange_weak_explicit(
        &series->sum_bits, &old_bits, new_bits, memory_order_relaxed,
        memory_order_relaxed));
}


void
pgs_histogram_read(const pgs_histogram *histogram,
                   pgs_histogram_series *series,
                   pgs_histogram_snapshot *out)
{
    uint64_t total = 0;
    size_t i;

    for (i = 0; i <= histogram->nbounds; i++) {
        total += atomic_load_explicit(&series->buckets[i], memory_order_relaxed);
        out->cumulative[i] = total;
    }
    out->count = total;
    out->sum = double_from_bits(
        atomic_load_explicit(&series->sum_bits, memory_order_relaxed));
}
