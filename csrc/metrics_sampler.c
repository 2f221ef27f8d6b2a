/*
 * metrics_sampler.c - the process-wide sampler thread and the pool series,
 * as private functions of pygamesvc._core for pygamesvc.metrics.
 *
 * There is one sampler per process, created on first start.  Its pool
 * source walks the pool registry and its cache source (metrics_cache.c) the
 * cache registry, both without the GIL.  Start and stop run with
 * the GIL held, which serializes them as sampler.h requires; holding the
 * GIL while joining is safe because the sampler thread never takes it.
 * After fork() the parent's sampler is leaked (its lock may be held by a
 * thread that does not exist in the child) and the next start makes a new
 * one.
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pgs_error.h"
#include "pgs_time.h"
#include "pool_registry.h"
#include "sampler.h"

static pgs_sampler *sampler; /* changed with the GIL held */


/* Record the queued, running and workers gauges of every live pool. */
static void
visit_pool_gauges(void *arg, pool_ctx *ctx)
{
    pgs_sampler *target = arg;
    pgs_pool_stats stats;

    pgs_pool_get_stats(ctx->pool, &stats);
    pgs_sampler_record(target, PGS_GAUGE_POOL_QUEUED, ctx->c_name,
                       (int64_t)stats.queued);
    pgs_sampler_record(target, PGS_GAUGE_POOL_RUNNING, ctx->c_name,
                       (int64_t)stats.running);
    pgs_sampler_record(target, PGS_GAUGE_POOL_WORKERS, ctx->c_name,
                       (int64_t)stats.workers);
}


static void
pool_source(void *arg, pgs_sampler *target)
{
    (void)arg;
    pgs_registry_foreach(visit_pool_gauges, target);
}


/* The live sampler, created on first use; NULL with an exception set. */
static pgs_sampler *
get_sampler(pgs_state *state)
{
    pgs_sampler_options options = {0};
    int rc;

    if (sampler != NULL && pgs_sampler_is_inherited(sampler))
        sampler = NULL; /* leaked on purpose, see the file comment */
    if (sampler != NULL)
        return sampler;
    options.interval_ns = PGS_NS_PER_SEC;
    rc = pgs_sampler_create(&sampler, &options);
    if (rc == PGS_OK)
        rc = pgs_sampler_add_source(sampler, pool_source, NULL);
    if (rc == PGS_OK)
        rc = pgs_sampler_add_source(sampler, pgs_cache_gauge_source, NULL);
    if (rc != PGS_OK) {
        pgs_sampler_free(sampler);
        sampler = NULL;
        pgs_raise_error(state, rc, "metrics sampler");
        return NULL;
    }
    return sampler;
}


static int
parse_interval(PyObject *value, int64_t *interval_ns)
{
    double seconds;

    if (PyBool_Check(value) || !(PyFloat_Check(value) || PyLong_Check(value))) {
        PyErr_Format(PyExc_TypeError,
                     "interval must be a number of seconds, got %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    if (!(seconds >= 0.001 && seconds <= 86400.0)) {
        PyErr_Format(PyExc_ValueError,
                     "interval must be between 0.001 and 86400 seconds, got %R",
                     value);
        return -1;
    }
    *interval_ns = (int64_t)(seconds * 1e9);
    return 0;
}


static PyObject *
sampler_start(PyObject *module, PyObject *interval)
{
    pgs_state *state = PyModule_GetState(module);
    pgs_sampler *live;
    int64_t interval_ns;
    int rc;

    if (parse_interval(interval, &interval_ns) < 0)
        return NULL;
    live = get_sampler(state);
    if (live == NULL)
        return NULL;
    rc = pgs_sampler_set_interval(live, interval_ns);
    if (rc == PGS_OK)
        rc = pgs_sampler_start(live);
    if (rc == PGS_ETHREAD) {
        PyErr_SetString(PyExc_RuntimeError,
                        "metrics sampler: the OS refused to start a thread");
        return NULL;
    }
    if (rc != PGS_OK)
        return pgs_raise_error(state, rc, "metrics sampler");
    Py_RETURN_NONE;
}


static PyObject *
sampler_stop(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (sampler != NULL && !pgs_sampler_is_inherited(sampler))
        pgs_sampler_stop(sampler);
    Py_RETURN_NONE;
}


static PyObject *
sampler_is_running(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(sampler != NULL && pgs_sampler_is_running(sampler));
}


static PyObject *
sampler_tick(PyObject *module, PyObject *unused)
{
    pgs_sampler *live = get_sampler(PyModule_GetState(module));
    int rc;

    (void)unused;
    if (live == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = pgs_sampler_tick(live);
    Py_END_ALLOW_THREADS
    if (rc != PGS_OK)
        return pgs_raise_error(PyModule_GetState(module), rc,
                               "metrics sampler");
    Py_RETURN_NONE;
}


static PyObject *
sampler_ticks(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    if (sampler == NULL || pgs_sampler_is_inherited(sampler))
        return PyLong_FromLong(0);
    return PyLong_FromUnsignedLongLong(pgs_sampler_ticks(sampler));
}


typedef struct {
    pgs_sampler *sampler;
    uint64_t ticks;
} ticks_request;


static int
ticks_wait(void *arg, int64_t deadline_ns)
{
    ticks_request *request = arg;

    return pgs_sampler_wait_ticks(request->sampler, request->ticks,
                                  deadline_ns);
}


static PyObject *
sampler_wait_ticks(PyObject *module, PyObject *args)
{
    unsigned long long ticks;
    PyObject *timeout = Py_None;
    ticks_request request;
    int64_t deadline;
    int rc;

    if (!PyArg_ParseTuple(args, "K|O:_sampler_wait_ticks", &ticks, &timeout))
        return NULL;
    if (pgs_deadline_from_timeout(timeout, "timeout", &deadline) < 0)
        return NULL;
    request.sampler = get_sampler(PyModule_GetState(module));
    if (request.sampler == NULL)
        return NULL;
    request.ticks = ticks;
    rc = pgs_wait_released(ticks_wait, &request, deadline);
    if (rc == PGS_WAIT_INTERRUPTED)
        return NULL;
    return PyBool_FromLong(rc == PGS_OK);
}


static PyObject *
sampler_read(PyObject *module, PyObject *args)
{
    pgs_gauge_reading *readings;
    pgs_sampler *live;
    PyObject *result, *item;
    size_t n, i;
    int reset_max = 1, rc;

    if (!PyArg_ParseTuple(args, "|p:_sampler_read", &reset_max))
        return NULL;
    live = get_sampler(PyModule_GetState(module));
    if (live == NULL)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = pgs_sampler_read(live, &readings, &n, reset_max);
    Py_END_ALLOW_THREADS
    if (rc != PGS_OK)
        return pgs_raise_error(PyModule_GetState(module), rc,
                               "metrics sampler");
    result = PyList_New((Py_ssize_t)n);
    for (i = 0; result != NULL && i < n; i++) {
        item = Py_BuildValue("(isLL)", readings[i].family, readings[i].label,
                             (long long)readings[i].current,
                             (long long)readings[i].max);
        if (item == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, (Py_ssize_t)i, item);
    }
    free(readings);
    return result;
}


/* ---------------------------------------------------------------------
 * Pool counters and histograms, copied without the GIL for a scrape.
 */

/* An item of a pgs_readings array, so name comes first. */
typedef struct pool_reading {
    char *name;
    pgs_pool_stats stats;
    pgs_histogram_snapshot wait, run;
} pool_reading;


static void
visit_pool_series(void *arg, pool_ctx *ctx)
{
    pool_reading *item = pgs_readings_add(arg, ctx->c_name);

    if (item == NULL)
        return;
    pgs_pool_get_stats(ctx->pool, &item->stats);
    pgs_histogram_read(ctx->wait_seconds,
                       pgs_histogram_series_at(ctx->wait_seconds, 0),
                       &item->wait);
    pgs_histogram_read(ctx->run_seconds,
                       pgs_histogram_series_at(ctx->run_seconds, 0),
                       &item->run);
}


static PyObject *
snapshot_tuple(const pgs_histogram_snapshot *snapshot)
{
    return Py_BuildValue(
        "(Nd)", pgs_snapshot_buckets(snapshot, pgs_short_seconds_nbounds),
        snapshot->sum);
}


static PyObject *
pool_reading_dict(const void *item)
{
    const pool_reading *reading = item;

    return Py_BuildValue("{sssKsKsKsNsN}", "name", reading->name, "completed",
                         (unsigned long long)reading->stats.completed, "failed",
                         (unsigned long long)reading->stats.failed, "rejected",
                         (unsigned long long)reading->stats.rejected,
                         "wait_seconds", snapshot_tuple(&reading->wait),
                         "run_seconds", snapshot_tuple(&reading->run));
}


static PyObject *
pool_series(PyObject *module, PyObject *unused)
{
    pgs_readings readings = {.item_size = sizeof(pool_reading)};

    (void)module;
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    pgs_registry_foreach(visit_pool_series, &readings);
    Py_END_ALLOW_THREADS
    return pgs_readings_to_list(&readings, pool_reading_dict);
}


static PyObject *
short_seconds_bounds(PyObject *module, PyObject *unused)
{
    PyObject *tuple = PyTuple_New((Py_ssize_t)pgs_short_seconds_nbounds),
             *value;
    size_t i;

    (void)module;
    (void)unused;
    for (i = 0; tuple != NULL && i < pgs_short_seconds_nbounds; i++) {
        value = PyFloat_FromDouble(pgs_short_seconds_bounds[i]);
        if (value == NULL)
            Py_CLEAR(tuple);
        else
            PyTuple_SET_ITEM(tuple, (Py_ssize_t)i, value);
    }
    return tuple;
}


static PyMethodDef sampler_functions[] = {
    {"_sampler_start", sampler_start, METH_O,
     "Start the sampler thread (or change its interval) to tick every "
     "interval seconds."},
    {"_sampler_stop", sampler_stop, METH_NOARGS,
     "Stop the sampler thread and join it; does nothing if it is stopped."},
    {"_sampler_is_running", sampler_is_running, METH_NOARGS,
     "Return True while the sampler thread runs."},
    {"_sampler_tick", sampler_tick, METH_NOARGS,
     "Take one sample now on the calling thread."},
    {"_sampler_ticks", sampler_ticks, METH_NOARGS,
     "Return the number of ticks taken so far."},
    {"_sampler_wait_ticks", sampler_wait_ticks, METH_VARARGS,
     "Wait until the given number of ticks were taken; False on timeout."},
    {"_sampler_read", sampler_read, METH_VARARGS,
     "Return [(family, label, current, max), ...]; reset_max (default True)\n"
     "restarts each maximum from the current value."},
    {"_pool_series", pool_series, METH_NOARGS,
     "Return the counters and task histograms of every live pool."},
    {"_short_seconds_bounds", short_seconds_bounds, METH_NOARGS,
     "Return the bucket bounds of the task and GC pause histograms."},
    {NULL, NULL, 0, NULL},
};


int
pgs_sampler_register(PyObject *module, pgs_state *state)
{
    (void)state;
    if (PyModule_AddFunctions(module, sampler_functions) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "GAUGE_RSS_BYTES",
                                PGS_GAUGE_RSS_BYTES) < 0 ||
        PyModule_AddIntConstant(module, "GAUGE_OS_THREADS",
                                PGS_GAUGE_OS_THREADS) < 0 ||
        PyModule_AddIntConstant(module, "GAUGE_POOL_QUEUED",
                                PGS_GAUGE_POOL_QUEUED) < 0 ||
        PyModule_AddIntConstant(module, "GAUGE_POOL_RUNNING",
                                PGS_GAUGE_POOL_RUNNING) < 0 ||
        PyModule_AddIntConstant(module, "GAUGE_POOL_WORKERS",
                                PGS_GAUGE_POOL_WORKERS) < 0 ||
        PyModule_AddIntConstant(module, "GAUGE_CACHE_ENTRIES",
                                PGS_GAUGE_CACHE_ENTRIES) < 0)
        return -1;
    return 0;
}
