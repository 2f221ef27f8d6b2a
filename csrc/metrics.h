/*
 * metrics.h - declarations shared by the metrics binding files
 * (metrics_labels.c, metrics_histogram.c, metrics_counter.c,
 * metrics_sampler.c, metrics_cache.c, metrics_gc.c).
 */
#ifndef PGS_METRICS_H
#define PGS_METRICS_H

#include "module.h"

#include "histogram.h"
#include "sampler.h"

/* Gauge families the library records through the sampler, after the
   sampler's own PGS_GAUGE_RSS_BYTES and PGS_GAUGE_OS_THREADS. */
enum {
    PGS_GAUGE_POOL_QUEUED = 8, /* PGS_GAUGE_FIRST_SOURCE */
    PGS_GAUGE_POOL_RUNNING,
    PGS_GAUGE_POOL_WORKERS,
    PGS_GAUGE_CACHE_ENTRIES,
};

/*
 * The label part of a Histogram or Counter object: which label names it
 * has and which series belongs to each combination of values.
 */
typedef struct pgs_label_table {
    PyObject *labelnames; /* tuple of str */
    PyObject *children;   /* dict: tuple of label values -> child object */
    PyObject *keys;       /* list of those tuples, in series-index order */
    Py_ssize_t max_series;
} pgs_label_table;

/* Check labelnames (a tuple of str) and max_series, then fill the table.
   Returns 0, or -1 with an exception set. */
int pgs_label_table_init(pgs_label_table *table, PyObject *labelnames,
                         Py_ssize_t max_series);
int pgs_label_table_traverse(pgs_label_table *table, visitproc visit,
                             void *arg);
void pgs_label_table_clear(pgs_label_table *table);

/*
 * Build the key tuple for labels(*values, **named_values) from a vectorcall
 * argument list; every value must be a str.  Returns a new reference, or
 * NULL with an exception set.  `metric` names the metric kind in messages.
 */
PyObject *pgs_label_key(pgs_label_table *table, PyObject *const *args,
                        Py_ssize_t nargs, PyObject *kwnames,
                        const char *metric);

/*
 * A labelled child of a Counter or Histogram, as labels() returns it: a
 * strong reference to its metric and the core series it records into.
 */
typedef struct {
    PyObject_HEAD PyObject *parent;
    void *series; /* pgs_counter_series or pgs_histogram_series */
} pgs_metric_child;

/* Slots for a child type whose objects are pgs_metric_child. */
int pgs_metric_child_traverse(PyObject *op, visitproc visit, void *arg);
int pgs_metric_child_clear(PyObject *op);
void pgs_metric_child_dealloc(PyObject *op);

/* Add a series to the core object of metric and store its address in
 *series.  Returns PGS_OK or a negative code from pgs_error.h. */
typedef int (*pgs_add_series_fn)(PyObject *metric, void **series);

/* What labels() needs to know about one metric type. */
typedef struct {
    const char *name;        /* "Counter", in messages */
    const char *labels_name; /* "Counter.labels", for pgs_raise_error */
    const char *direct_call; /* "inc()", the call without labelnames */
    pgs_add_series_fn add_series;
} pgs_metric_kind;

/*
 * Implement labels(*values, **named_values) for metric: return the child of
 * child_type (a new reference) for that combination of values, and make it,
 * with a new series, the first time the combination is seen.  Returns NULL
 * with an exception set when the values are invalid, when the metric has no
 * labelnames, or when table->max_series combinations already exist.
 */
PyObject *pgs_label_child(PyObject *metric, pgs_label_table *table,
                          PyTypeObject *child_type, const pgs_metric_kind *kind,
                          PyObject *const *args, size_t nargsf,
                          PyObject *kwnames);

/*
 * A growable array of readings that a registry visitor fills while the
 * registry's mutex is held, so without the GIL.  Every item type must begin
 * with a `char *name` member, which the array owns.
 */
typedef struct {
    void *items;
    size_t item_size;
    size_t n, cap;
    int failed; /* an allocation failed, so the readings are incomplete */
} pgs_readings;

/* Append an item whose name is a copy of name, cut to the sampler's label
   length, and return it with its other members unset.  Returns NULL and
   sets readings->failed when an allocation fails now or failed before. */
void *pgs_readings_add(pgs_readings *readings, const char *name);
/* Free every item's name and the array. */
void pgs_readings_free(pgs_readings *readings);
/*
 * Build a list with one dict per item, made by to_dict (a new reference or
 * NULL with an exception set), then free the readings.  Returns the list, or
 * NULL with an exception set (MemoryError if the readings are incomplete).
 * Needs the GIL.
 */
PyObject *pgs_readings_to_list(pgs_readings *readings,
                               PyObject *(*to_dict)(const void *item));

/* Bucket bounds in seconds for task and GC durations, finer than the
   Prometheus defaults at the low end because most tasks and collections
   finish well under 5 ms. */
extern const double pgs_short_seconds_bounds[];
extern const size_t pgs_short_seconds_nbounds;

/* Turn a snapshot into a list of cumulative bucket counts. */
PyObject *pgs_snapshot_buckets(const pgs_histogram_snapshot *snapshot,
                               size_t nbounds);

int pgs_histogram_register(PyObject *module, pgs_state *state);
int pgs_counter_register(PyObject *module, pgs_state *state);
int pgs_sampler_register(PyObject *module, pgs_state *state);
int pgs_gc_register(PyObject *module, pgs_state *state);
int pgs_cache_metrics_register(PyObject *module, pgs_state *state);

/* Record the entries gauge of every live TTLCache, labelled by the cache's
   name.  A pgs_sampler_source_fn that needs no GIL and ignores arg. */
void pgs_cache_gauge_source(void *arg, pgs_sampler *sampler);

#endif
