/*
 * pool_worker.c - the worker side of WorkerPool: hooks that the core pool
 * calls on its threads to run Python tasks.
 *
 * A worker takes the GIL once per batch: after one task it pops further
 * tasks without waiting, up to BATCH_MAX, so a stream of small tasks costs
 * one GIL hand-off per batch, not per task.  Python's own switch interval
 * still preempts a long batch at bytecode boundaries.  The worker releases
 * each task's references with the GIL held.
 */
#include "pool_task.h"

#include "pgs_error.h"
#include "pgs_time.h"

static _Thread_local PyThreadState *worker_tstate;
static _Thread_local PyGILState_STATE worker_gilstate;


void
pgs_execute_kind(pgs_job *job)
{
    (void)job;
}


void
pgs_submit_kind(pgs_job *job)
{
    (void)job;
    pgs_execute_kind(job);
}


void
pgs_clear_job(pgs_job *job)
{
    Py_XDECREF((PyObject *)job->data[TASK_HEAD]);
    Py_XDECREF((PyObject *)job->data[TASK_ARGS]);
    Py_XDECREF((PyObject *)job->data[TASK_KWARGS]);
}


/* ---------------------------------------------------------------------
 * Worker side: these run on pool threads.
 */

void
pgs_release_ctx_objects(pool_ctx *ctx)
{
    Py_CLEAR(ctx->on_error);
    Py_CLEAR(ctx->logger);
    Py_CLEAR(ctx->name);
    Py_CLEAR(ctx->module);
}


void
pgs_ctx_thread_enter(void *arg)
{
    pool_ctx *ctx = arg;

    worker_gilstate = PyGILState_Ensure();
    ctx->live_threads++;
    worker_tstate = PyEval_SaveThread();
}


void
pgs_ctx_thread_exit(void *arg)
{
    pool_ctx *ctx = arg;

    PyEval_RestoreThread(worker_tstate);
    ctx->live_threads--;
    if (ctx->live_threads == 0 && ctx->abandoned)
        pgs_release_ctx_objects(ctx);
    PyGILState_Release(worker_gilstate);
    worker_tstate = NULL;
}


void
pgs_ctx_destroy(void *arg)
{
    pool_ctx *ctx = arg;

    pgs_registry_remove(ctx);
    pgs_pool_ctx_free_metrics(ctx);
    PyMem_RawFree(ctx);
}


/* Log `message % (subject, pool name)` with exc's traceback; never raises. */
static void
log_exception(pool_ctx *ctx, const char *message, PyObject *subject,
              PyObject *exc)
{
    PyObject *method, *args = NULL, *kwargs = NULL, *result = NULL;

    method = PyObject_GetAttrString(ctx->logger, "error");
    if (method != NULL) {
        args = Py_BuildValue("(sOO)", message, subject, ctx->name);
        kwargs = Py_BuildValue("{sO}", "exc_info", exc);
    }
    if (args != NULL && kwargs != NULL)
        result = PyObject_Call(method, args, kwargs);
    if (result == NULL)
        PyErr_WriteUnraisable(subject);
    Py_XDECREF(result);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(method);
}


/* Hand a fire-and-forget task's exception (the current one) to on_error, or
   log it when there is no handler or the handler raised. */
static void
report_task_error(pool_ctx *ctx, PyObject *callable)
{
    PyObject *exc = pgs_fetch_exception();
    PyObject *result, *handler_exc;

    if (ctx->on_error == NULL) {
        log_exception(ctx, "task %r in WorkerPool %r raised", callable, exc);
        Py_DECREF(exc);
        return;
    }
    result = PyObject_CallOneArg(ctx->on_error, exc);
    if (result == NULL) {
        handler_exc = pgs_fetch_exception();
        log_exception(ctx, "task %r in WorkerPool %r raised", callable, exc);
        log_exception(ctx, "on_error handler %r of WorkerPool %r raised",
                      ctx->on_error, handler_exc);
        Py_DECREF(handler_exc);
    }
    Py_XDECREF(result);
    Py_DECREF(exc);
}


/* Call the task's callable; returns a new reference or NULL with an error. */
static PyObject *
call_task(pgs_job *job, PyObject **callable)
{
    PyObject *args = job->data[TASK_ARGS];
    PyObject *kwargs = job->data[TASK_KWARGS];

    if (args == NULL) {
        *callable = job->data[TASK_HEAD];
        return PyObject_CallNoArgs(*callable);
    }
    *callable = PyTuple_GET_ITEM(args, 0);
    return PyObject_VectorcallDict(*callable, &PyTuple_GET_ITEM(args, 1),
                                   (size_t)PyTuple_GET_SIZE(args) - 1, kwargs);
}


/*
 * Move a PoolFuture into `state` directly when no thread has created its
 * condition: then nobody waits on it or has added a callback (see
 * pygamesvc/_future.py).  Returns 1 if it did, 0 if the caller must use the
 * locked Future methods, -1 with an exception set.  No Python code runs
 * between the check and the stores, so the GIL makes the pair atomic.
 */
static int
settle_directly(pgs_state *state, PyObject *future, PyObject *field,
                PyObject *value, PyObject *new_state)
{
    PyObject *cond = PyObject_GetAttr(future, state->str_cond);
    int untouched;

    if (cond == NULL)
        return -1;
    untouched = cond == Py_None;
    Py_DECREF(cond);
    if (!untouched)
        return 0;
    if (field != NULL && PyObject_SetAttr(future, field, value) < 0)
        return -1;
    if (PyObject_SetAttr(future, state->str_state, new_state) < 0)
        return -1;
    return 1;
}


/* Run a submit() task and settle its future; returns 1 if the task raised. */
static int
run_submitted(pgs_state *state, pgs_job *job)
{
    PyObject *future = job->data[TASK_HEAD];
    PyObject *callable, *result, *outcome = NULL, *exc;
    int failed = 0, done, running;

    done = settle_directly(state, future, NULL, NULL, state->state_running);
    if (done == 0) {
        outcome = PyObject_CallMethod(future, "set_running_or_notify_cancel",
                                      NULL);
        if (outcome == NULL)
            goto unraisable;
        running = PyObject_IsTrue(outcome);
        Py_CLEAR(outcome);
        if (running <= 0)
            return 0; /* cancelled before it started */
    }
    else if (done < 0)
        goto unraisable;

    result = call_task(job, &callable);
    if (result != NULL) {
        done = settle_directly(state, future, state->str_result, result,
                               state->state_finished);
        if (done == 0)
            outcome = PyObject_CallMethod(future, "set_result", "O", result);
        Py_DECREF(result);
    }
    else {
        failed = 1;
        exc = pgs_fetch_exception();
        done = settle_directly(state, future, state->str_exception, exc,
                               state->state_finished);
        if (done == 0)
            outcome = PyObject_CallMethod(future, "set_exception", "O", exc);
        Py_DECREF(exc);
    }
    if (done < 0 || (done == 0 && outcome == NULL))
        goto unraisable;
    Py_XDECREF(outcome);
    return failed;

unraisable:
    PyErr_WriteUnraisable(future);
    return 1;
}


/* Run one task with the GIL held; returns 1 if it raised. */
static int
run_task(pool_ctx *ctx, pgs_job *job)
{
    PyObject *callable, *result;
    int failed = 0;

    if (job->fn == pgs_submit_kind) {
        failed = run_submitted(ctx->state, job);
    }
    else {
        result = call_task(job, &callable);
        if (result == NULL) {
            failed = 1;
            report_task_error(ctx, callable);
        }
        Py_XDECREF(result);
    }
    pgs_clear_job(job);
    return failed;
}


void
pgs_ctx_run(void *arg, pgs_pool *pool, pgs_job *job)
{
    pool_ctx *ctx = arg;
    int n = 0, failed;
    int64_t started, finished;

    PyEval_RestoreThread(worker_tstate);
    started = pgs_monotonic_ns();
    for (;;) {
        /* The wait includes the time this worker waited for the GIL. */
        pgs_pool_ctx_observe_wait(ctx, started - pgs_pool_last_enqueued_ns());
        failed = run_task(ctx, job);
        finished = pgs_monotonic_ns();
        pgs_pool_ctx_observe_run(ctx, finished - started);
        pgs_pool_task_done(pool, failed);
        if (++n >= BATCH_MAX || pgs_pool_try_pop(pool, job) != PGS_OK)
            break;
        started = finished;
    }
    worker_tstate = PyEval_SaveThread();
}


