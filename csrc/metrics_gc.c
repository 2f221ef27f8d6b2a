/*
 * metrics_gc.c - garbage collection pauses, timed from gc.callbacks.
 *
 * _gc_callback is the function that pygamesvc.metrics appends to
 * gc.callbacks.  It writes only C atomics and never touches a Python metric
 * object or takes a lock.  A collection can start inside any allocation,
 * including one made by a thread that holds a scrape's lock, and a callback
 * that waited for that lock would deadlock.
 *
 * The histograms are process-wide (the interpreter's collector is too) and
 * live until the process exits.
 */
#include "metrics.h"

#include <stdatomic.h>

#include "counter.h"
#include "pgs_error.h"
#include "pgs_time.h"

#define GENERATIONS 3

static pgs_histogram *pause_seconds; /* one series per generation */
static pgs_counter *collected;       /* objects collected, per generation */
static pgs_counter *uncollectable;   /* objects found uncollectable */
static _Atomic int64_t started_ns;   /* 0: no collection in progress */


/* Read an int item of the callback's info dict; -1 if absent or not an int. */
static long
info_item(PyObject *info, const char *key)
{
    PyObject *value;
    long result;

    if (!PyDict_Check(info))
        return -1;
    value = PyDict_GetItemString(info, key); /* borrowed; this call suppresses errors */
    if (value == NULL || !PyLong_Check(value))
        return -1;
    result = PyLong_AsLong(value);
    if (result == -1 && PyErr_Occurred())
        PyErr_Clear();
    return result;
}


static PyObject *
gc_callback(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *phase;
    long generation, count;
    int64_t start, now;

    (void)module;
    if (nargs != 2 || !PyUnicode_Check(args[0]))
        Py_RETURN_NONE; /* not called by the collector; ignore */
    phase = PyUnicode_AsUTF8(args[0]);
    if (phase == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    now = pgs_monotonic_ns();
    if (phase[0] == 's' && phase[1] == 't' && phase[2] == 'a') { /* start */
        atomic_store_explicit(&started_ns, now, memory_order_relaxed);
        Py_RETURN_NONE;
    }
    /* "stop": a collection that began before the callback was installed
       has no start time and is skipped. */
    start = atomic_exchange_explicit(&started_ns, 0, memory_order_relaxed);
    generation = info_item(args[1], "generation");
    if (start == 0 || generation < 0 || generation >= GENERATIONS)
        Py_RETURN_NONE;
    pgs_histogram_observe(pause_seconds,
                          pgs_histogram_series_at(pause_seconds, (size_t)generation),
                          (double)(now - start) * 1e-9);
    count = info_item(args[1], "collected");
    if (count > 0)
        pgs_counter_inc(pgs_counter_series_at(collected, (size_t)generation),
                        (uint64_t)count);
    count = info_item(args[1], "uncollectable");
    if (count > 0)
        pgs_counter_inc(pgs_counter_series_at(uncollectable, (size_t)generation),
                        (uint64_t)count);
    Py_RETURN_NONE;
}


static PyObject *
gc_series(PyObject *module, PyObject *unused)
{
    pgs_histogram_snapshot snapshot;
    PyObject *result, *item;
    size_t generation;

    (void)module;
    (void)unused;
    result = PyList_New(GENERATIONS);
    for (generation = 0; result != NULL && generation < GENERATIONS;
         generation++) {
        pgs_histogram_read(pause_seconds,
                           pgs_histogram_series_at(pause_seconds, generation),
                           &snapshot);
        item = Py_BuildValue(
            "(nNddd)", (Py_ssize_t)generation,
            pgs_snapshot_buckets(&snapshot, pgs_short_seconds_nbounds),
            snapshot.sum,
            pgs_counter_value(pgs_counter_series_at(collected, generation)),
            pgs_counter_value(pgs_counter_series_at(uncollectable, generation)));
        if (item == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, (Py_ssize_t)generation, item);
    }
    return result;
}


static PyMethodDef gc_functions[] = {
    {"_gc_callback", (PyCFunction)(void (*)(void))gc_callback, METH_FASTCALL,
     "Time a collection; meant for gc.callbacks."},
    {"_gc_series", gc_series, METH_NOARGS,
     "Return [(generation, cumulative_bucket_counts, pause_sum,\n"
     "collected, uncollectable), ...] for generations 0 to 2."},
    {NULL, NULL, 0, NULL},
};


/* Create the process-wide histograms once; the GIL serializes callers. */
static int
create_series(void)
{
    size_t index;
    int i, rc;

    if (pause_seconds != NULL)
        return PGS_OK;
    rc = pgs_histogram_create(&pause_seconds, pgs_short_seconds_bounds,
                              pgs_short_seconds_nbounds, GENERATIONS);
    if (rc == PGS_OK)
        rc = pgs_counter_create(&collected, GENERATIONS);
    if (rc == PGS_OK)
        rc = pgs_counter_create(&uncollectable, GENERATIONS);
    for (i = 0; rc == PGS_OK && i < GENERATIONS; i++) {
        rc = pgs_histogram_add_series(pause_seconds, &index);
        if (rc == PGS_OK)
            rc = pgs_counter_add_series(collected, &index);
        if (rc == PGS_OK)
            rc = pgs_counter_add_series(uncollectable, &index);
    }
    if (rc != PGS_OK) {
        pgs_histogram_free(pause_seconds);
        pgs_counter_free(collected);
        pgs_counter_free(uncollectable);
        pause_seconds = NULL;
        collected = uncollectable = NULL;
    }
    return rc;
}


int
pgs_gc_register(PyObject *module, pgs_state *state)
{
    int rc = create_series();

    if (rc != PGS_OK) {
        pgs_raise_error(state, rc, "GC pause metrics");
        return -1;
    }
    return PyModule_AddFunctions(module, gc_functions);
}
