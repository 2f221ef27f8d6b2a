/*
 * counter.c - lock-free monotonic counters; see counter.h.
 */
#include "counter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pgs_error.h"

struct pgs_counter {
    size_t max_series;
    atomic_size_t reserved; /* slots handed out by add_series */
    _Atomic(pgs_counter_series *) *series;
};


int
pgs_counter_create(pgs_counter **out, size_t max_series)
{
    pgs_counter *counter;

    *out = NULL;
    if (max_series == 0 || max_series > SIZE_MAX / sizeof(void *))
        return PGS_EINVAL;
    counter = calloc(1, sizeof(*counter));
    if (counter == NULL)
        return PGS_ENOMEM;
    counter->series = calloc(max_series, sizeof(*counter->series));
    if (counter->series == NULL) {
        free(counter);
        return PGS_ENOMEM;
    }
    counter->max_series = max_series;
    *out = counter;
    return PGS_OK;
}


void
pgs_counter_free(pgs_counter *counter)
{
    size_t i, n;

    if (counter == NULL)
        return;
    n = pgs_counter_series_count(counter);
    for (i = 0; i < n; i++)
        free(atomic_load(&counter->series[i]));
    free(counter->series);
    free(counter);
}


int
pgs_counter_add_series(pgs_counter *counter, size_t *index)
{
    pgs_counter_series *series;
    size_t slot;

    /* As in pgs_histogram_add_series: reserve, then publish. */
    slot = atomic_fetch_add(&counter->reserved, 1);
    if (slot >= counter->max_series)
        return PGS_EFULL;
    series = calloc(1, sizeof(*series));
    if (series == NULL)
        return PGS_ENOMEM;
    atomic_store_explicit(&counter->series[slot], series, memory_order_release);
    *index = slot;
    return PGS_OK;
}


pgs_counter_series *
pgs_counter_series_at(const pgs_counter *counter, size_t index)
{
    if (index >= counter->max_series)
        return NULL;
    return atomic_load_explicit(&counter->series[index], memory_order_acquire);
}


size_t
pgs_counter_series_count(const pgs_counter *counter)
{
    size_t n = atomic_load_explicit(&counter->reserved, memory_order_acquire);

    return n < counter->max_series ? n : counter->max_series;
}


void
pgs_counter_add(pgs_counter_series *series, double amount)
{
    uint64_t old_bits, new_bits;
    double whole = floor(amount), sum;

    /* Whole parts below 2^53 are exact in a double and go to the integer. */
    if (whole >= 1.0 && whole < 9007199254740992.0) {
        pgs_counter_inc(series, (uint64_t)whole);
        amount -= whole;
        if (amount == 0.0)
            return;
    }
    old_bits = atomic_load_explicit(&series->fraction_bits, memory_order_relaxed);
    do {
        memcpy(&sum, &old_bits, sizeof(sum));
        sum += amount;
        memcpy(&new_bits, &sum, sizeof(new_bits));
    } while (!atomic_compare_exchange_weak_explicit(
        &series->fraction_bits, &old_bits, new_bits, memory_order_relaxed,
        memory_order_relaxed));
}


double
pgs_counter_value(pgs_counter_series *series)
{
    uint64_t bits =
        atomic_load_explicit(&series->fraction_bits, memory_order_relaxed);
    double fraction;

    memcpy(&fraction, &bits, sizeof(fraction));
    return (double)atomic_load_explicit(&series->whole, memory_order_relaxed) +
           fraction;
}
