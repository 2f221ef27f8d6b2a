/*
 * pool_registry.h - the worker-side context of every WorkerPool in this
 * process, so that pools left open are shut down before finalization.
 */
#ifndef PGS_POOL_REGISTRY_H
#define PGS_POOL_REGISTRY_H

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
} pool_ctx;

void pgs_registry_add(pool_ctx *ctx);
void pgs_registry_remove(pool_ctx *ctx);

/*
 * Close every pool in the registry and wait, with the GIL released, until
 * their workers exit.  Returns 0, or -1 with an exception set when a signal
 * handler raised during the wait.
 */
int pgs_registry_shutdown_all(void);

#endif
