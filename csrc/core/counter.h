/*
 * counter.h - monotonic counters whose increment takes no lock.
 *
 * A counter has up to max_series series, one per label-value combination
 * chosen by the caller, added and never removed, like histogram.h.  Each
 * series keeps whole increments in an integer atomic (one fetch-add) and
 * fractional ones in a double updated with compare-exchange, so the common
 * inc-by-one path costs a single relaxed atomic add.
 */
#ifndef PGS_COUNTER_H
#define PGS_COUNTER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pgs_counter pgs_counter;

/* One label-value combination.  Fields are private to counter.c. */
typedef struct pgs_counter_series {
    atomic_uint_fast64_t whole;
    _Atomic uint64_t fraction_bits; /* a double */
} pgs_counter_series;

/* Create a counter with room for max_series series.  Returns PGS_OK,
   PGS_EINVAL for zero series, or PGS_ENOMEM. */
int pgs_counter_create(pgs_counter **out, size_t max_series);

void pgs_counter_free(pgs_counter *counter);

/* Add a zeroed series; PGS_OK, PGS_EFULL or PGS_ENOMEM. */
int pgs_counter_add_series(pgs_counter *counter, size_t *index);

/* The series at index, or NULL if it was not added (yet). */
pgs_counter_series *pgs_counter_series_at(const pgs_counter *counter,
                                          size_t index);

size_t pgs_counter_series_count(const pgs_counter *counter);

/* Add a whole number. */
static inline void
pgs_counter_inc(pgs_counter_series *series, uint64_t amount)
{
    atomic_fetch_add_explicit(&series->whole, amount, memory_order_relaxed);
}

/* Add a non-negative amount that need not be whole; the caller checks the
   sign. */
void pgs_counter_add(pgs_counter_series *series, double amount);

/* The current total. */
double pgs_counter_value(pgs_counter_series *series);

#endif
