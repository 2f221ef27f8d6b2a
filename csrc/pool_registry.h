/*
 * pool_registry.h - the worker-side context of every WorkerPool in this
 * process, so that pools left open are shut down before finalization.
 */
#ifndef PGS_POOL_REGISTRY_H
#define PGS_POOL_REGISTRY_H

#include "histogram.h"
#include "module.h"
#include "pool.h"

/*
 * What the worker threads of one pool need from Python.  The Python
 * objects are released, with the GIL held, by whichever comes last: the
 * owner abandoning the pool or the last worker exiting.  The struct itself
 * is freed by the core's destroy hook.
 */
typedef struct pool_ctx {
    PyObject *on_error; /* strong reference or NULL */
    PyObject *logger;   /* strong reference */
    PyObject *name;     /* strong reference, a str */
    PyObject *module;   /* strong reference: keeps `state` alive */
    pgs_state *state;
    pgs_pool *pool;     /* borrowed: the pool whose hooks point here */
    int live_threads;   /* workers that entered; changed with the GIL held */
    int abandoned;      /* owner gave up its object; set with the GIL held */
    struct pool_ctx *prev, *next;

    /* Metrics, readable without the GIL; see pgs_pool_ctx_init_metrics. */
    char *c_name;                  /* UTF-8 copy of name */
    pgs_histogram *wait_seconds;   /* from queueing to start, one series */
    pgs_histogram *run_seconds;    /* from start to finish, one series */
} pool_ctx;

void pgs_registry_add(pool_ctx *ctx);
void pgs_registry_remove(pool_ctx *ctx);

/*
 * Copy the pool's name and create its task wait and run histograms.
 * Returns 0, or -1 with an exception set; on -1 the caller still calls
 * pgs_pool_ctx_free_metrics.  Needs the GIL.
 */
int pgs_pool_ctx_init_metrics(pool_ctx *ctx, PyObject *name);

/* Free what pgs_pool_ctx_init_metrics made; no GIL needed. */
void pgs_pool_ctx_free_metrics(pool_ctx *ctx);

/* Record one task's queueing and running durations in nanoseconds. */
static inline void
pgs_pool_ctx_observe_wait(pool_ctx *ctx, int64_t ns)
{
    pgs_histogram_observe(ctx->wait_seconds,
                          pgs_histogram_series_at(ctx->wait_seconds, 0),
                          (double)ns * 1e-9);
}

static inline void
pgs_pool_ctx_observe_run(pool_ctx *ctx, int64_t ns)
{
    pgs_histogram_observe(ctx->run_seconds,
                          pgs_histogram_series_at(ctx->run_seconds, 0),
                          (double)ns * 1e-9);
}

/*
 * Call visit(arg, ctx) for every live pool, with the registry lock held.
 * Needs no GIL.  The visitor must not take the GIL or call pgs_registry_*
 * functions; it may read ctx->c_name, the histograms and
 * pgs_pool_get_stats(ctx->pool), which stays valid for the call.
 */
typedef void (*pgs_pool_visit_fn)(void *arg, pool_ctx *ctx);
void pgs_registry_foreach(pgs_pool_visit_fn visit, void *arg);

/*
 * Close every pool in the registry and wait, with the GIL released, until
 * their workers exit.  Returns 0, or -1 with an exception set when a signal
 * handler raised during the wait.
 */
int pgs_registry_shutdown_all(void);

#endif
