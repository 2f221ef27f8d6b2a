/*
 * module.h - state shared by the binding files of pygamesvc._core.
 *
 * The module uses multi-phase initialization: every type is a heap type
 * created in module_exec and stored in the module state, and each binding
 * file contributes one pgs_*_register function that fills its part.
 */
#ifndef PGS_MODULE_H
#define PGS_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct pgs_state {
    /* errors.c */
    PyObject *queue_full_error; /* pygamesvc.QueueFullError */

    /* pool_binding.c */
    PyTypeObject *pool_type;
    PyObject *future_type; /* pygamesvc._future.PoolFuture */
    PyObject *logger;      /* logging.getLogger("pygamesvc") */
    /* Attribute names and states used to settle a PoolFuture directly. */
    PyObject *str_cond, *str_state, *str_result, *str_exception;
    PyObject *state_running, *state_finished;

    /* cache_binding.c */
    PyTypeObject *cache_type;
    PyObject *cache_miss_method; /* interned "_get_or_set_miss" */
    /* metrics_histogram.c, metrics_counter.c */
    PyTypeObject *histogram_type;
    PyTypeObject *histogram_child_type;
    PyTypeObject *counter_type;
    PyTypeObject *counter_child_type;
} pgs_state;

extern PyModuleDef pgs_module_def;

/* The state of the module that defined `type` or one of its bases. */
pgs_state *pgs_state_from_type(PyTypeObject *type);

/* Turn a core error code into a Python exception; always returns NULL. */
PyObject *pgs_raise_error(pgs_state *state, int code, const char *what);

/* Convert an optional timeout in seconds (None: no limit) to an absolute
   monotonic deadline in ns; name is the argument's name for messages.
   Returns 0 on success and -1 with an exception set. */
int pgs_deadline_from_timeout(PyObject *timeout, const char *name,
                              int64_t *deadline_ns);

/*
 * Wait for a core condition with the GIL released, in slices of at most
 * 50 ms, so that Ctrl-C in the main thread interrupts the wait.  wait_fn runs
 * without the GIL and returns a core code; PGS_ETIMEDOUT before the caller's
 * deadline means "wait another slice".  Returns the last core code, or
 * PGS_WAIT_INTERRUPTED with an exception set when a signal handler raised.
 */
#define PGS_WAIT_INTERRUPTED (-1000)
typedef int (*pgs_wait_fn)(void *arg, int64_t deadline_ns);
int pgs_wait_released(pgs_wait_fn wait_fn, void *arg, int64_t deadline_ns);

/* Take the raised exception as one object (NULL if none); 3.10+ spelling of
   PyErr_GetRaisedException. */
static inline PyObject *
pgs_fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;

    PyErr_Fetch(&type, &value, &traceback);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

/* Raise exc (a reference taken by pgs_fetch_exception) again; steals it. */
static inline void
pgs_restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef(Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* Each binding file adds its types and objects to the module; 0 or -1. */
int pgs_errors_register(PyObject *module, pgs_state *state);
int pgs_pool_register(PyObject *module, pgs_state *state);
int pgs_cache_register(PyObject *module, pgs_state *state);
int pgs_allochook_register(PyObject *module, pgs_state *state);
/* The metrics binding files declare theirs in metrics.h. */

#endif
