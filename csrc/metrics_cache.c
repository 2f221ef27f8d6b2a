/*
 * metrics_cache.c - the TTLCache series: the entries gauge source for the
 * sampler and the counters a scrape copies, as private functions of
 * pygamesvc._core for pygamesvc.metrics.
 *
 * Both walk the cache registry, which by its contract in cache_registry.h
 * needs no GIL and never waits for a stripe lock.  A cache leaves the
 * registry when it is closed or freed, so its series leave the next scrape.
 */
#include "metrics.h"

#include "cache_registry.h"
#include "sampler.h"


static void
visit_cache_gauges(void *arg, const char *name, const pgs_cache_stats *stats)
{
    pgs_sampler_record(arg, PGS_GAUGE_CACHE_ENTRIES, name,
                       (int64_t)stats->entries);
}


void
pgs_cache_gauge_source(void *arg, pgs_sampler *sampler)
{
    (void)arg;
    pgs_cache_registry_foreach(visit_cache_gauges, sampler);
}


/* An item of a pgs_readings array, so name comes first. */
typedef struct cache_reading {
    char *name;
    pgs_cache_stats stats;
} cache_reading;


/* Copy one cache's name and counters.  It runs with the registry's mutex
   held, so it only copies and allocates. */
static void
visit_cache_series(void *arg, const char *name, const pgs_cache_stats *stats)
{
    cache_reading *item = pgs_readings_add(arg, name);

    if (item != NULL)
        item->stats = *stats;
}


static PyObject *
cache_reading_dict(const void *item)
{
    const cache_reading *reading = item;

    return Py_BuildValue(
        "{sssKsKsKsK}", "name", reading->name, "hits",
        (unsigned long long)reading->stats.hits, "misses",
        (unsigned long long)reading->stats.misses, "expirations",
        (unsigned long long)reading->stats.expirations, "evictions",
        (unsigned long long)reading->stats.evictions);
}


static PyObject *
cache_series(PyObject *module, PyObject *unused)
{
    pgs_readings readings = {.item_size = sizeof(cache_reading)};

    (void)module;
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    pgs_cache_registry_foreach(visit_cache_series, &readings);
    Py_END_ALLOW_THREADS
    return pgs_readings_to_list(&readings, cache_reading_dict);
}


static PyMethodDef cache_metrics_functions[] = {
    {"_cache_series", cache_series, METH_NOARGS,
     "Return the hit, miss, expiration and eviction counters of every live\n"
     "TTLCache."},
    {NULL, NULL, 0, NULL},
};


int
pgs_cache_metrics_register(PyObject *module, pgs_state *state)
{
    (void)state;
    return PyModule_AddFunctions(module, cache_metrics_functions);
}
