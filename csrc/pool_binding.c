/*
 * pool_binding.c - pygamesvc._core.WorkerPool, the Python face of pool.c.
 *
 * Tasks travel through the core queue as pgs_job values that own strong
 * references to their Python objects (see pool_task.h); pool_worker.c runs
 * them on the worker threads.
 */
#include <unistd.h>

#include "pool_task.h"
#include "structmember.h"
#include "pgs_error.h"
#include "pgs_time.h"

#define DEFAULT_QUEUE_PER_WORKER 256
/* Bounds that keep a typo from asking for millions of threads or a ring
   buffer of gigabytes. */
#define MAX_WORKERS 4096
#define MAX_QUEUE_SIZE ((Py_ssize_t)1 << 26)
#define DRAIN_CHUNK 64

typedef struct {
    PyObject_HEAD pgs_state *state;
    PyObject *module;
    pool_ctx *ctx;
    pgs_pool *pool; /* NULL once abandoned */
    PyObject *name;
    Py_ssize_t workers;
    Py_ssize_t queue_size;
    int64_t submit_timeout_ns; /* -1: wait for room without limit */
    PyObject *submit_timeout;  /* as given, for repr and the stub */
    long owner_pid;
    int shut_down;
    PyObject *weakreflist;
} PoolObject;

/* Set by _shutdown_all once the interpreter starts to exit; GIL-protected. */
static int interpreter_exiting;
static unsigned long pool_counter;

/* ---------------------------------------------------------------------
 * Submitter side
 */

static int
check_usable(PoolObject *self)
{
    if (self->pool != NULL && pgs_pool_is_inherited(self->pool)) {
        PyErr_Format(PyExc_RuntimeError,
                     "WorkerPool %R was created in process %ld before fork(); "
                     "its worker threads do not exist in this process, so "
                     "create a new WorkerPool here",
                     self->name, self->owner_pid);
        return -1;
    }
    if (self->shut_down || self->pool == NULL) {
        PyErr_Format(PyExc_RuntimeError,
                     "cannot submit to WorkerPool %R: it was shut down",
                     self->name);
        return -1;
    }
    if (interpreter_exiting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot submit to a WorkerPool after interpreter "
                        "shutdown has started");
        return -1;
    }
    return 0;
}


typedef struct {
    pgs_pool *pool;
    const pgs_job *job;
} push_request;


static int
push_wait(void *arg, int64_t deadline_ns)
{
    push_request *request = arg;

    return pgs_pool_push(request->pool, request->job, deadline_ns);
}


/* The deadline for waiting for room that the pool's submit timeout sets. */
static int64_t
submit_deadline(PoolObject *self)
{
    if (self->submit_timeout_ns < 0)
        return PGS_WAIT_FOREVER;
    return pgs_monotonic_ns() + self->submit_timeout_ns;
}


/*
 * Queue the job, waiting for room until deadline_ns (PGS_NO_WAIT: do not
 * wait).  from_map tells the error message which timeout ran out.
 * Returns 0, 1 when full and not waiting, or -1 with an exception set; on a
 * nonzero return the job still owns its references and the caller clears it.
 */
static int
push_job(PoolObject *self, const pgs_job *job, int64_t deadline_ns,
         int from_map)
{
    push_request request = {self->pool, job};
    int rc;

    rc = pgs_pool_push(self->pool, job, PGS_NO_WAIT);
    if (rc == PGS_EFULL && deadline_ns != PGS_NO_WAIT)
        rc = pgs_wait_released(push_wait, &request, deadline_ns);
    switch (rc) {
    case PGS_OK:
        return 0;
    case PGS_WAIT_INTERRUPTED:
        return -1;
    case PGS_EFULL:
    case PGS_ETIMEDOUT:
        pgs_pool_note_rejected(self->pool);
        if (rc == PGS_EFULL && !from_map)
            return 1;
        if (from_map)
            PyErr_Format(PyExc_TimeoutError,
                         "WorkerPool %R: the map() timeout ran out while "
                         "waiting for room in the queue",
                         self->name);
        else if (self->queue_size == 0)
            PyErr_Format(self->state->queue_full_error,
                         "WorkerPool %R: no worker became free within the "
                         "submit timeout of %R s (queue_size=0 hands each "
                         "task to an idle worker); raise submit_timeout or "
                         "queue_size, or use try_execute()",
                         self->name, self->submit_timeout);
        else
            PyErr_Format(self->state->queue_full_error,
                         "WorkerPool %R: the queue (queue_size=%zd) stayed "
                         "full for the submit timeout of %R s; raise "
                         "submit_timeout or queue_size, or use try_execute()",
                         self->name, self->queue_size, self->submit_timeout);
        return -1;
    case PGS_EDEADLK:
        pgs_pool_note_rejected(self->pool);
        PyErr_Format(self->state->queue_full_error,
                     "WorkerPool %R: a task submitted to its own pool while "
                     "the queue (queue_size=%zd) was full; waiting there could "
                     "block every worker forever, so the task was rejected",
                     self->name, self->queue_size);
        return -1;
    case PGS_ECLOSED:
        check_usable(self);
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_RuntimeError,
                         "cannot submit to WorkerPool %R: it was shut down",
                         self->name);
        return -1;
    default:
        pgs_raise_error(self->state, rc, "WorkerPool submit");
        return -1;
    }
}


/* Fill the payload from a vectorcall argument list whose first item is the
   callable.  Allocates nothing for a bare callable without arguments. */
static int
build_task(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           pgs_job *job, const char *method)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *tuple = NULL, *kwargs = NULL;
    Py_ssize_t i;

    if (nargs < 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s() missing required argument 'fn' (pos 1)", method);
        return -1;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, got %.100s",
                     Py_TYPE(args[0])->tp_name);
        return -1;
    }
    if (nargs == 1 && nkw == 0) {
        job->data[TASK_HEAD] = Py_NewRef(args[0]);
        return 0;
    }
    tuple = PyTuple_New(nargs);
    if (tuple == NULL)
        return -1;
    for (i = 0; i < nargs; i++)
        PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    if (nkw > 0) {
        kwargs = PyDict_New();
        if (kwargs == NULL)
            goto error;
        for (i = 0; i < nkw; i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i),
                               args[nargs + i]) < 0)
                goto error;
        }
    }
    job->data[TASK_ARGS] = tuple;
    job->data[TASK_KWARGS] = kwargs;
    return 0;

error:
    Py_XDECREF(tuple);
    Py_XDECREF(kwargs);
    return -1;
}


static PyObject *
pool_execute_common(PoolObject *self, PyObject *const *args, size_t nargsf,
                    PyObject *kwnames, int wait, const char *method)
{
    pgs_job job = {pgs_execute_kind, {NULL, NULL, NULL}};
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int rc;

    if (check_usable(self) < 0)
        return NULL;
    if (build_task(args, nargs, kwnames, &job, method) < 0)
        return NULL;
    rc = push_job(self, &job, wait ? submit_deadline(self) : PGS_NO_WAIT, 0);
    if (rc != 0) {
        pgs_clear_job(&job);
        if (rc < 0)
            return NULL;
        Py_RETURN_FALSE;
    }
    if (wait)
        Py_RETURN_NONE;
    Py_RETURN_TRUE;
}


static PyObject *
pool_execute(PyObject *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    return pool_execute_common((PoolObject *)self, args, nargsf, kwnames, 1,
                               "execute");
}


static PyObject *
pool_try_execute(PyObject *self, PyObject *const *args, size_t nargsf,
                 PyObject *kwnames)
{
    return pool_execute_common((PoolObject *)self, args, nargsf, kwnames, 0,
                               "try_execute");
}


static PyObject *
submit_until(PoolObject *self, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames, int64_t deadline_ns, int from_map)
{
    pgs_job job = {pgs_submit_kind, {NULL, NULL, NULL}};
    PyObject *future, *callable;

    if (check_usable(self) < 0)
        return NULL;
    if (build_task(args, nargs, kwnames, &job, "submit") < 0)
        return NULL;
    if (job.data[TASK_ARGS] == NULL) {
        /* Submitted tasks keep the callable in the args tuple. */
        callable = job.data[TASK_HEAD];
        job.data[TASK_ARGS] = PyTuple_Pack(1, callable);
        Py_DECREF(callable);
        job.data[TASK_HEAD] = NULL;
        if (job.data[TASK_ARGS] == NULL)
            return NULL;
    }
    future = PyObject_CallNoArgs(self->state->future_type);
    if (future == NULL) {
        pgs_clear_job(&job);
        return NULL;
    }
    job.data[TASK_HEAD] = Py_NewRef(future);
    if (push_job(self, &job, deadline_ns, from_map) != 0) {
        pgs_clear_job(&job);
        Py_DECREF(future);
        return NULL;
    }
    return future;
}


static PyObject *
pool_submit(PyObject *op, PyObject *const *args, size_t nargsf,
            PyObject *kwnames)
{
    PoolObject *self = (PoolObject *)op;

    return submit_until(self, args, PyVectorcall_NARGS(nargsf), kwnames,
                        submit_deadline(self), 0);
}


/* _submit_within(timeout, fn, /, *args, **kwargs): submit() for map(),
   waiting for room at most `timeout` seconds, then raising TimeoutError. */
static PyObject *
pool_submit_within(PyObject *op, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    PoolObject *self = (PoolObject *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    double seconds;
    int64_t deadline;

    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "_submit_within() missing required argument 'timeout'");
        return NULL;
    }
    seconds = PyFloat_AsDouble(args[0]);
    if (seconds == -1.0 && PyErr_Occurred())
        return NULL;
    deadline = PGS_NO_WAIT;
    if (seconds > 9.0e9)
        deadline = PGS_WAIT_FOREVER;
    else if (seconds > 0)
        deadline = pgs_monotonic_ns() + (int64_t)(seconds * 1e9);
    return submit_until(self, args + 1, nargs - 1, kwnames, deadline, 1);
}


static int
idle_wait(void *pool, int64_t deadline_ns)
{
    return pgs_pool_wait_idle(pool, deadline_ns);
}


static int
join_wait(void *pool, int64_t deadline_ns)
{
    return pgs_pool_join(pool, deadline_ns);
}


static PyObject *
pool_wait(PyObject *op, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"timeout", NULL};
    PoolObject *self = (PoolObject *)op;
    PyObject *timeout = Py_None;
    int64_t deadline;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:wait", keywords,
                                     &timeout))
        return NULL;
    if (pgs_deadline_from_timeout(timeout, "timeout", &deadline) < 0)
        return NULL;
    if (self->pool == NULL)
        Py_RETURN_TRUE;
    if (self->pool != NULL && pgs_pool_is_inherited(self->pool))
        return check_usable(self), NULL;
    rc = pgs_pool_wait_idle(self->pool, PGS_NO_WAIT);
    if (rc == PGS_ETIMEDOUT && deadline != PGS_NO_WAIT)
        rc = pgs_wait_released(idle_wait, self->pool, deadline);
    switch (rc) {
    case PGS_OK:
        Py_RETURN_TRUE;
    case PGS_ETIMEDOUT:
        Py_RETURN_FALSE;
    case PGS_WAIT_INTERRUPTED:
        return NULL;
    case PGS_EDEADLK:
        PyErr_Format(PyExc_RuntimeError,
                     "WorkerPool %R: wait() called from one of its own tasks "
                     "would never return, because that task is still running",
                     self->name);
        return NULL;
    default:
        return pgs_raise_error(self->state, rc, "WorkerPool.wait");
    }
}


/* Cancel the futures of queued submit() tasks and drop queued execute()
   tasks.  Called with the GIL held, after the pool was closed. */
static void
cancel_queued(PoolObject *self)
{
    pgs_job jobs[DRAIN_CHUNK];
    PyObject *outcome;
    size_t n, i;

    while ((n = pgs_pool_drain(self->pool, jobs, DRAIN_CHUNK)) > 0) {
        pgs_pool_note_cancelled(self->pool, n);
        for (i = 0; i < n; i++) {
            if (jobs[i].fn == pgs_submit_kind) {
                outcome = PyObject_CallMethod(jobs[i].data[TASK_HEAD], "cancel",
                                              NULL);
                if (outcome == NULL)
                    PyErr_WriteUnraisable(jobs[i].data[TASK_HEAD]);
                Py_XDECREF(outcome);
            }
            pgs_clear_job(&jobs[i]);
        }
    }
}


static PyObject *
pool_shutdown_impl(PoolObject *self, int wait, int cancel_futures)
{
    int rc;

    if (self->pool == NULL)
        Py_RETURN_NONE;
    if (pgs_pool_is_inherited(self->pool)) {
        self->shut_down = 1;
        Py_RETURN_NONE; /* nothing to stop in this process */
    }
    if (wait && pgs_pool_current() == self->pool) {
        /* Checked before closing, so a rejected call changes nothing. */
        PyErr_Format(PyExc_RuntimeError,
                     "WorkerPool %R: shutdown(wait=True) called from one of "
                     "its own tasks would wait for itself; use wait=False",
                     self->name);
        return NULL;
    }
    self->shut_down = 1;
    pgs_pool_close(self->pool);
    if (cancel_futures)
        cancel_queued(self);
    if (!wait)
        Py_RETURN_NONE;
    rc = pgs_wait_released(join_wait, self->pool, PGS_WAIT_FOREVER);
    if (rc == PGS_WAIT_INTERRUPTED)
        return NULL;
    if (rc != PGS_OK)
        return pgs_raise_error(self->state, rc, "WorkerPool.shutdown");
    Py_RETURN_NONE;
}


static PyObject *
pool_shutdown(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"wait", "cancel_futures", NULL};
    int wait = 1, cancel_futures = 0;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p$p:shutdown", keywords,
                                     &wait, &cancel_futures))
        return NULL;
    return pool_shutdown_impl((PoolObject *)self, wait, cancel_futures);
}


static PyObject *
pool_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    return pool_shutdown_impl((PoolObject *)self, 1, 0);
}


static PyObject *
pool_stats(PyObject *op, PyObject *unused)
{
    PoolObject *self = (PoolObject *)op;
    pgs_pool_stats stats = {0};

    (void)unused;
    if (self->pool != NULL)
        pgs_pool_get_stats(self->pool, &stats);
    return Py_BuildValue(
        "{snsnsnsKsKsKsKsK}", "workers", (Py_ssize_t)stats.workers, "queued",
        (Py_ssize_t)stats.queued, "running", (Py_ssize_t)stats.running,
        "submitted", (unsigned long long)stats.submitted, "completed",
        (unsigned long long)stats.completed, "failed",
        (unsigned long long)stats.failed, "cancelled",
        (unsigned long long)stats.cancelled, "rejected",
        (unsigned long long)stats.rejected);
}


/* ---------------------------------------------------------------------
 * Construction and teardown
 */

/* Parse an int argument in [minimum, maximum]; 0, or -1 with an error. */
static int
parse_count(PyObject *value, const char *name, Py_ssize_t minimum,
            Py_ssize_t maximum, Py_ssize_t *out)
{
    const char *what = minimum > 0 ? "a positive int" : "a non-negative int";
    int overflow;
    long long number;

    if (PyBool_Check(value) || !PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be %s, got %.100s", name, what,
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (number == -1 && PyErr_Occurred())
        return -1;
    if (overflow < 0 || (overflow == 0 && number < minimum)) {
        PyErr_Format(PyExc_ValueError, "%s must be %s, got %R", name, what,
                     value);
        return -1;
    }
    if (overflow > 0 || number > maximum) {
        PyErr_Format(PyExc_ValueError, "%s must be at most %zd, got %R", name,
                     maximum, value);
        return -1;
    }
    *out = (Py_ssize_t)number;
    return 0;
}


static int
parse_pool_args(PoolObject *self, PyObject *workers, PyObject *queue_size,
                PyObject *name, PyObject *on_error, PyObject *submit_timeout)
{
    int64_t deadline;

    if (parse_count(workers, "workers", 1, MAX_WORKERS, &self->workers) < 0)
        return -1;
    if (queue_size == Py_None)
        self->queue_size = self->workers * DEFAULT_QUEUE_PER_WORKER;
    else if (parse_count(queue_size, "queue_size", 0, MAX_QUEUE_SIZE,
                         &self->queue_size) < 0)
        return -1;
    if (on_error != Py_None && !PyCallable_Check(on_error)) {
        PyErr_Format(PyExc_TypeError,
                     "on_error must be callable or None, got %.100s",
                     Py_TYPE(on_error)->tp_name);
        return -1;
    }
    if (name == Py_None)
        self->name = PyUnicode_FromFormat("pool-%lu", ++pool_counter);
    else if (PyUnicode_Check(name))
        self->name = Py_NewRef(name);
    else {
        PyErr_Format(PyExc_TypeError, "name must be a str or None, got %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    if (self->name == NULL)
        return -1;
    if (pgs_deadline_from_timeout(submit_timeout, "submit_timeout", &deadline) <
        0)
        return -1;
    self->submit_timeout_ns =
        deadline < 0 ? -1 : (int64_t)(PyFloat_AsDouble(submit_timeout) * 1e9);
    self->submit_timeout = Py_NewRef(submit_timeout);
    return 0;
}


static pool_ctx *
new_ctx(PoolObject *self, PyObject *on_error)
{
    pool_ctx *ctx = PyMem_RawCalloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    ctx->on_error = on_error == Py_None ? NULL : Py_NewRef(on_error);
    ctx->logger = Py_NewRef(self->state->logger);
    ctx->name = Py_NewRef(self->name);
    ctx->module = Py_NewRef(self->module);
    ctx->state = self->state;
    if (pgs_pool_ctx_init_metrics(ctx, self->name) < 0) {
        pgs_release_ctx_objects(ctx);
        pgs_pool_ctx_free_metrics(ctx);
        PyMem_RawFree(ctx);
        return NULL;
    }
    return ctx;
}


static PyObject *
pool_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"workers",  "queue_size",     "name",
                               "on_error", "submit_timeout", NULL};
    PyObject *workers, *queue_size = Py_None, *name = Py_None;
    PyObject *on_error = Py_None, *submit_timeout = Py_None, *module;
    pgs_pool_options options = {0};
    char thread_name[16];
    PoolObject *self;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$OOO:WorkerPool",
                                     keywords, &workers, &queue_size, &name,
                                     &on_error, &submit_timeout))
        return NULL;
    if (interpreter_exiting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot create a WorkerPool after interpreter shutdown "
                        "has started");
        return NULL;
    }
    module = PyType_GetModuleByDef(type, &pgs_module_def);
    if (module == NULL)
        return NULL;
    self = (PoolObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->module = Py_NewRef(module);
    self->state = PyModule_GetState(module);
    self->owner_pid = (long)getpid();
    if (parse_pool_args(self, workers, queue_size, name, on_error,
                        submit_timeout) < 0)
        goto error;
    self->ctx = new_ctx(self, on_error);
    if (self->ctx == NULL)
        goto error;

    PyOS_snprintf(thread_name, sizeof(thread_name), "pgs:%s",
                  PyUnicode_AsUTF8(self->name) ? PyUnicode_AsUTF8(self->name)
                                               : "");
    PyErr_Clear();
    options.workers = (size_t)self->workers;
    options.capacity = (size_t)self->queue_size;
    options.thread_name = thread_name;
    options.hooks.ctx = self->ctx;
    options.hooks.thread_enter = pgs_ctx_thread_enter;
    options.hooks.thread_exit = pgs_ctx_thread_exit;
    options.hooks.run = pgs_ctx_run;
    options.hooks.destroy = pgs_ctx_destroy;
    /* Count the workers before they start: the objects they use must stay
       alive until the last one exits (see pgs_ctx_thread_exit). */
    self->ctx->live_threads = (int)self->workers;
    /* Workers take the GIL as they start; create without holding it. */
    Py_BEGIN_ALLOW_THREADS
    rc = pgs_pool_create(&self->pool, &options);
    Py_END_ALLOW_THREADS
    if (rc != PGS_OK) {
        pgs_release_ctx_objects(self->ctx);
        pgs_pool_ctx_free_metrics(self->ctx);
        PyMem_RawFree(self->ctx);
        self->ctx = NULL;
        if (rc == PGS_ETHREAD)
            PyErr_Format(PyExc_RuntimeError,
                         "WorkerPool %R: the OS did not let all %zd worker "
                         "threads start",
                         self->name, self->workers);
        else
            pgs_raise_error(self->state, rc, "WorkerPool");
        goto error;
    }
    self->ctx->pool = self->pool;
    pgs_registry_add(self->ctx);
    if (interpreter_exiting) {
        /* Shutdown began while the GIL was released above and may have
           missed this pool: stop its idle workers here, then refuse. */
        self->shut_down = 1;
        pgs_pool_close(self->pool);
        pgs_wait_released(join_wait, self->pool, PGS_WAIT_FOREVER);
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot create a WorkerPool after interpreter "
                        "shutdown has started");
        goto error;
    }
    return (PyObject *)self;

error:
    Py_DECREF(self);
    return NULL;
}


static int
pool_traverse(PyObject *op, visitproc visit, void *arg)
{
    PoolObject *self = (PoolObject *)op;

    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->module);
    /* The context's on_error often refers back to the pool's owner. */
    if (self->ctx != NULL && self->pool != NULL)
        Py_VISIT(self->ctx->on_error);
    return 0;
}


static int
pool_clear(PyObject *op)
{
    PoolObject *self = (PoolObject *)op;

    if (self->ctx != NULL && self->pool != NULL)
        Py_CLEAR(self->ctx->on_error);
    return 0;
}


static void
pool_dealloc(PyObject *op)
{
    PoolObject *self = (PoolObject *)op;
    PyTypeObject *type = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs(op);
    if (self->pool != NULL) {
        if (pgs_pool_is_inherited(self->pool)) {
            /* Leaked on purpose: see pgs_pool_abandon. */
        }
        else {
            /* Workers finish the queue on their own and free the pool. */
            self->ctx->abandoned = 1;
            if (self->ctx->live_threads == 0)
                pgs_release_ctx_objects(self->ctx);
            pgs_pool_abandon(self->pool);
        }
        self->pool = NULL;
    }
    Py_CLEAR(self->name);
    Py_CLEAR(self->submit_timeout);
    Py_CLEAR(self->module);
    type->tp_free(op);
    Py_DECREF(type);
}


static const char *
pool_state_word(PoolObject *self)
{
    if (self->pool != NULL && pgs_pool_is_inherited(self->pool))
        return "inherited by fork";
    return self->shut_down ? "shut down" : "open";
}


static PyObject *
pool_repr(PyObject *op)
{
    PoolObject *self = (PoolObject *)op;

    return PyUnicode_FromFormat("<%s name=%R workers=%zd queue_size=%zd %s>",
                                Py_TYPE(op)->tp_name, self->name, self->workers,
                                self->queue_size, pool_state_word(self));
}


static PyObject *
pool_get_name(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((PoolObject *)op)->name);
}


static PyObject *
pool_get_workers(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((PoolObject *)op)->workers);
}


static PyObject *
pool_get_queue_size(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((PoolObject *)op)->queue_size);
}


static PyObject *
pool_get_submit_timeout(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((PoolObject *)op)->submit_timeout);
}


static PyObject *
pool_get_closed(PyObject *op, void *closure)
{
    PoolObject *self = (PoolObject *)op;

    (void)closure;
    return PyBool_FromLong(self->shut_down || self->pool == NULL ||
                           pgs_pool_is_inherited(self->pool));
}


static PyMethodDef pool_methods[] = {
    {"execute", (PyCFunction)(void (*)(void))pool_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "execute(fn, /, *args, **kwargs)\n--\n\n"
     "Run fn(*args, **kwargs) on a worker; wait for room if the queue is "
     "full."},
    {"try_execute", (PyCFunction)(void (*)(void))pool_try_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "try_execute(fn, /, *args, **kwargs)\n--\n\n"
     "Queue fn(*args, **kwargs) if there is room; return False if not."},
    {"submit", (PyCFunction)(void (*)(void))pool_submit,
     METH_FASTCALL | METH_KEYWORDS,
     "submit(fn, /, *args, **kwargs)\n--\n\n"
     "Queue fn(*args, **kwargs) and return a concurrent.futures.Future."},
    {"_submit_within", (PyCFunction)(void (*)(void))pool_submit_within,
     METH_FASTCALL | METH_KEYWORDS,
     "_submit_within(timeout, fn, /, *args, **kwargs)\n--\n\n"
     "submit() that waits at most timeout seconds for room (for map())."},
    {"wait", (PyCFunction)(void (*)(void))pool_wait,
     METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None)\n--\n\n"
     "Block until every task submitted so far has finished; False on timeout."},
    {"shutdown", (PyCFunction)(void (*)(void))pool_shutdown,
     METH_VARARGS | METH_KEYWORDS,
     "shutdown(wait=True, *, cancel_futures=False)\n--\n\n"
     "Refuse new tasks; optionally cancel queued ones and wait for workers."},
    {"close", pool_close, METH_NOARGS,
     "close()\n--\n\nThe same as shutdown(wait=True)."},
    {"stats", pool_stats, METH_NOARGS,
     "stats()\n--\n\nReturn a dict of the pool's gauges and counters."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pool_getset[] = {
    {"name", pool_get_name, NULL,
     "Name used in thread names, logs and metrics.", NULL},
    {"workers", pool_get_workers, NULL, "Number of worker threads.", NULL},
    {"queue_size", pool_get_queue_size, NULL, "Bound of the task queue.", NULL},
    {"submit_timeout", pool_get_submit_timeout, NULL,
     "Seconds a submitter waits for room, or None for no limit.", NULL},
    {"closed", pool_get_closed, NULL, "True after shutdown() or close().",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef pool_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PoolObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_new, pool_new},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_clear},
    {Py_tp_repr, pool_repr},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_members, pool_members},
    {Py_tp_doc,
     "WorkerPool(workers, queue_size=None, *, name=None, on_error=None, "
     "submit_timeout=None)\n--\n\n"
     "Native worker threads behind a bounded task queue."},
    {0, NULL},
};

static PyType_Spec pool_spec = {
    .name = "pygamesvc._core.WorkerPool",
    .basicsize = sizeof(PoolObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = pool_slots,
};


static PyObject *
shutdown_all(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    interpreter_exiting = 1;
    if (pgs_registry_shutdown_all() < 0)
        return NULL;
    Py_RETURN_NONE;
}


static PyMethodDef pool_functions[] = {
    {"_shutdown_all_pools", shutdown_all, METH_NOARGS,
     "Refuse new pools and tasks, then close every pool and join its workers."},
    {NULL, NULL, 0, NULL},
};


static int
load_future_support(pgs_state *state)
{
    PyObject *future_module, *base;

    future_module = PyImport_ImportModule("pygamesvc._future");
    if (future_module == NULL)
        return -1;
    state->future_type = PyObject_GetAttrString(future_module, "PoolFuture");
    Py_DECREF(future_module);
    if (state->future_type == NULL)
        return -1;
    base = PyImport_ImportModule("concurrent.futures._base");
    if (base == NULL)
        return -1;
    state->state_running = PyObject_GetAttrString(base, "RUNNING");
    state->state_finished = PyObject_GetAttrString(base, "FINISHED");
    Py_DECREF(base);
    if (state->state_running == NULL || state->state_finished == NULL)
        return -1;
    state->str_cond = PyUnicode_InternFromString("_cond");
    state->str_state = PyUnicode_InternFromString("_state");
    state->str_result = PyUnicode_InternFromString("_result");
    state->str_exception = PyUnicode_InternFromString("_exception");
    if (!state->str_cond || !state->str_state || !state->str_result ||
        !state->str_exception)
        return -1;
    return 0;
}


int
pgs_pool_register(PyObject *module, pgs_state *state)
{
    PyObject *logging;

    state->pool_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &pool_spec, NULL);
    if (state->pool_type == NULL)
        return -1;
    if (PyModule_AddType(module, state->pool_type) < 0)
        return -1;
    if (PyModule_AddFunctions(module, pool_functions) < 0)
        return -1;

    if (load_future_support(state) < 0)
        return -1;

    logging = PyImport_ImportModule("logging");
    if (logging == NULL)
        return -1;
    state->logger = PyObject_CallMethod(logging, "getLogger", "s", "pygamesvc");
    Py_DECREF(logging);
    return state->logger == NULL ? -1 : 0;
}
