/*
 * errors.c - core error codes to Python exceptions, timeouts and polite
 * blocking waits, shared by every binding file.
 */
#include "module.h"

#include <math.h>

#include "pgs_error.h"
#include "pgs_time.h"

/* Maximum time without the GIL before signal handlers get a chance to run. */
#define WAIT_SLICE_NS (50 * 1000 * 1000)


PyObject *
pgs_raise_error(pgs_state *state, int code, const char *what)
{
    const char *reason = pgs_strerror(code);

    switch (code) {
    case PGS_ENOMEM:
        return PyErr_NoMemory();
    case PGS_EFULL:
    case PGS_EDEADLK:
        PyErr_Format(state->queue_full_error, "%s: %s", what, reason);
        return NULL;
    case PGS_ETIMEDOUT:
        PyErr_Format(PyExc_TimeoutError, "%s: %s", what, reason);
        return NULL;
    case PGS_ENOTFOUND:
        PyErr_Format(PyExc_KeyError, "%s: %s", what, reason);
        return NULL;
    case PGS_EINVAL:
        PyErr_Format(PyExc_ValueError, "%s: %s", what, reason);
        return NULL;
    default:
        PyErr_Format(PyExc_RuntimeError, "%s: %s", what, reason);
        return NULL;
    }
}


int
pgs_deadline_from_timeout(PyObject *timeout, const char *name,
                          int64_t *deadline_ns)
{
    double seconds;

    if (timeout == NULL || timeout == Py_None) {
        *deadline_ns = -1;
        return 0;
    }
    if (PyBool_Check(timeout) ||
        !(PyFloat_Check(timeout) || PyLong_Check(timeout))) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a number of seconds or None, got %.100s", name,
                     Py_TYPE(timeout)->tp_name);
        return -1;
    }
    seconds = PyFloat_AsDouble(timeout);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(seconds) || seconds < 0) {
        PyErr_Format(
            PyExc_ValueError,
            "%s must be a non-negative number of seconds or None, got %R", name,
            timeout);
        return -1;
    }
    /* int64 ns overflows at ~292 years, so anything above 9e9 s (~285
       years) counts as no timeout. */
    if (seconds > 9.0e9) {
        *deadline_ns = -1;
        return 0;
    }
    *deadline_ns = pgs_monotonic_ns() + (int64_t)(seconds * 1e9);
    if (*deadline_ns == 0)
        *deadline_ns = 1; /* 0 means "do not wait" to the core */
    return 0;
}


int
pgs_wait_released(pgs_wait_fn wait_fn, void *arg, int64_t deadline_ns)
{
    int64_t until;
    int rc;

    for (;;) {
        until = pgs_monotonic_ns() + WAIT_SLICE_NS;
        if (deadline_ns >= 0 && deadline_ns < until)
            until = deadline_ns;
        Py_BEGIN_ALLOW_THREADS
        rc = wait_fn(arg, until);
        Py_END_ALLOW_THREADS
        if (rc != PGS_ETIMEDOUT)
            return rc;
        if (deadline_ns >= 0 && pgs_monotonic_ns() >= deadline_ns)
            return PGS_ETIMEDOUT;
        if (PyErr_CheckSignals() < 0)
            return PGS_WAIT_INTERRUPTED;
    }
}


int
pgs_errors_register(PyObject *module, pgs_state *state)
{
    state->queue_full_error = PyErr_NewExceptionWithDoc(
        "pygamesvc.QueueFullError",
        "Raised when a WorkerPool queue stays full: the submit timeout ran "
        "out,\n"
        "or a worker submitted to its own full pool, where waiting could\n"
        "deadlock.",
        PyExc_RuntimeError, NULL);
    if (state->queue_full_error == NULL)
        return -1;
    return PyModule_AddObjectRef(module, "QueueFullError",
                                 state->queue_full_error);
}
