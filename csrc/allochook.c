/*
 * allochook.c - count the allocations that one thread makes (allocs/op).
 *
 * While a count runs, the RAW, MEM and OBJ domains point at hooks that
 * forward every call to the allocator that was current when the count
 * started (pymalloc, libc, tracemalloc's hooks or a debug hook) and, on the
 * counting thread only, count malloc, calloc and realloc calls.  free is
 * forwarded uncounted.  Blocks pass through unchanged (no header), so a
 * block allocated before the hooks went in may be freed while they are
 * installed, and the other way round.  Stopping puts back exactly the
 * allocators that were found.
 *
 * Other threads call the RAW hooks without the GIL, and one may still be
 * inside a hook just after the hooks were removed.  CPython copies an
 * allocator struct non-atomically, so such a thread may pair a hook with the
 * previous allocator's ctx.  The hooks therefore ignore ctx: each domain's
 * hooks read the wrapped allocator through an atomic pointer to an immutable
 * copy, and copies are never freed (there is one per distinct allocator
 * seen, so a handful per process).
 *
 * If the code being measured replaces an allocator (tracemalloc.start() or
 * stop()), stopping cannot know whether the hooks are still inside the new
 * allocator's chain, so it raises and leaves that domain alone.  The hooks
 * stay harmless there: they forward and count nothing.  Later counts are
 * refused while the hooks might be in such a chain, since pointing them at
 * a new target could make them call themselves.
 *
 * Starting, stopping and the bookkeeping below run with the GIL held.
 */
#include "module.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgs_time.h"

/* Iterations between two checks for a pending signal in _loop. */
#define SIGNAL_CHECK_INTERVAL 4096

enum { DOMAIN_RAW, DOMAIN_MEM, DOMAIN_OBJ, DOMAIN_COUNT };

static const PyMemAllocatorDomain python_domains[DOMAIN_COUNT] = {
    PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};

/* An allocator that a hook forwards to; immutable once published. */
typedef struct wrapped_allocator {
    PyMemAllocatorEx allocator;
    struct wrapped_allocator *next;
} wrapped_allocator;

/* Every copy ever made, so that equal allocators share one; GIL-protected. */
static wrapped_allocator *all_wrapped;

/* What each domain's hooks forward to; read by any thread, any time. */
static _Atomic(const wrapped_allocator *) forward_to[DOMAIN_COUNT];

/* The counting thread's tally; other threads keep depth at 0.  Counts
   nest on one thread: each reads calls at its start and at its stop. */
typedef struct {
    int depth;
    uint64_t calls;
} thread_tally;

static _Thread_local thread_tally tally;

/* Nonzero while the hooks are installed; GIL-protected. */
static int installed;

/* Per domain: a count ended while another allocator (tracemalloc's, say)
   sat on top of the hooks, so the hooks may still be in that allocator's
   chain and forward_to must not change.  Cleared once the hooks are on top
   again.  GIL-protected. */
static int buried[DOMAIN_COUNT];

/* The allocators found when the module was first loaded, if tracemalloc
   was not tracing then.  Such allocators call no hook, so when one of them
   is current again, the hooks are in no chain and buried can be cleared.
   GIL-protected. */
static PyMemAllocatorEx initial[DOMAIN_COUNT];
static int have_initial;


static inline const PyMemAllocatorEx *
wrapped(int domain)
{
    return &atomic_load_explicit(&forward_to[domain], memory_order_acquire)
                ->allocator;
}


static inline void
count_call(void)
{
    thread_tally *own = &tally;

    if (own->depth > 0)
        own->calls++;
}


/* Four hooks per domain; they differ only in which wrapped allocator they
   use, because ctx cannot be trusted (see the top of the file). */
#define DEFINE_DOMAIN_HOOKS(suffix, domain)                                    \
    static void *hook_malloc_##suffix(void *ctx, size_t size)                  \
    {                                                                          \
        const PyMemAllocatorEx *next = wrapped(domain);                        \
                                                                               \
        (void)ctx;                                                             \
        count_call();                                                          \
        return next->malloc(next->ctx, size);                                  \
    }                                                                          \
                                                                               \
    static void *hook_calloc_##suffix(void *ctx, size_t nelem, size_t elsize)  \
    {                                                                          \
        const PyMemAllocatorEx *next = wrapped(domain);                        \
                                                                               \
        (void)ctx;                                                             \
        count_call();                                                          \
        return next->calloc(next->ctx, nelem, elsize);                         \
    }                                                                          \
                                                                               \
    static void *hook_realloc_##suffix(void *ctx, void *ptr, size_t size)      \
    {                                                                          \
        const PyMemAllocatorEx *next = wrapped(domain);                        \
                                                                               \
        (void)ctx;                                                             \
        count_call();                                                          \
        return next->realloc(next->ctx, ptr, size);                            \
    }                                                                          \
                                                                               \
    static void hook_free_##suffix(void *ctx, void *ptr)                       \
    {                                                                          \
        const PyMemAllocatorEx *next = wrapped(domain);                        \
                                                                               \
        (void)ctx;                                                             \
        next->free(next->ctx, ptr);                                            \
    }

DEFINE_DOMAIN_HOOKS(raw, DOMAIN_RAW)
DEFINE_DOMAIN_HOOKS(mem, DOMAIN_MEM)
DEFINE_DOMAIN_HOOKS(obj, DOMAIN_OBJ)

#undef DEFINE_DOMAIN_HOOKS

static const PyMemAllocatorEx hooks[DOMAIN_COUNT] = {
    {NULL, hook_malloc_raw, hook_calloc_raw, hook_realloc_raw, hook_free_raw},
    {NULL, hook_malloc_mem, hook_calloc_mem, hook_realloc_mem, hook_free_mem},
    {NULL, hook_malloc_obj, hook_calloc_obj, hook_realloc_obj, hook_free_obj},
};


static int
same_allocator(const PyMemAllocatorEx *a, const PyMemAllocatorEx *b)
{
    return a->ctx == b->ctx && a->malloc == b->malloc &&
           a->calloc == b->calloc && a->realloc == b->realloc &&
           a->free == b->free;
}


/* Return the shared immutable copy of allocator, or NULL when libc malloc
   fails.  The copy comes from libc, not Python: Python's allocators are
   the thing being swapped.  GIL held. */
static const wrapped_allocator *
intern_allocator(const PyMemAllocatorEx *allocator)
{
    wrapped_allocator *copy;

    for (copy = all_wrapped; copy != NULL; copy = copy->next)
        if (same_allocator(&copy->allocator, allocator))
            return copy;
    copy = malloc(sizeof(*copy));
    if (copy == NULL)
        return NULL;
    copy->allocator = *allocator;
    copy->next = all_wrapped;
    all_wrapped = copy;
    return copy;
}


/*
 * Start a count for the calling thread: install the counting hooks on all
 * three domains, or, inside a count already running on this thread, just
 * open a nested one.  Stores the thread's call tally so far in *base for
 * stop_counting.  Returns 0, or -1 with an exception set (a count runs on
 * another thread, or out of memory); on failure nothing is installed.
 * GIL held.
 */
static int
start_counting(uint64_t *base)
{
    const wrapped_allocator *found[DOMAIN_COUNT];
    PyMemAllocatorEx current;
    int domain;

    if (installed && tally.depth > 0) {
        tally.depth++;
        *base = tally.calls;
        return 0;
    }
    if (installed) {
        PyErr_SetString(PyExc_RuntimeError,
                        "allocation counting is already running on another "
                        "thread; only one thread can count at a time");
        return -1;
    }
    for (domain = 0; domain < DOMAIN_COUNT; domain++) {
        PyMem_GetAllocator(python_domains[domain], &current);
        /* The hooks are still installed when an earlier count could not
           remove them, and tracemalloc.stop() has put them back since.
           Wrapping them again would make them call themselves. */
        if (same_allocator(&current, &hooks[domain])) {
            found[domain] =
                atomic_load_explicit(&forward_to[domain], memory_order_acquire);
            buried[domain] = 0;
            continue;
        }
        if (buried[domain] && have_initial &&
            same_allocator(&current, &initial[domain]))
            buried[domain] = 0;
        if (buried[domain]) {
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot count allocations: the allocator that "
                            "replaced the hooks of an earlier count is still "
                            "installed (stop tracemalloc if it was started "
                            "during that count)");
            return -1;
        }
        found[domain] = intern_allocator(&current);
        if (found[domain] == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    /* Publish the targets before any hook can run. */
    for (domain = 0; domain < DOMAIN_COUNT; domain++)
        atomic_store_explicit(&forward_to[domain], found[domain],
                              memory_order_release);
    tally.calls = 0;
    tally.depth = 1;
    *base = 0;
    installed = 1;
    for (domain = 0; domain < DOMAIN_COUNT; domain++)
        PyMem_SetAllocator(python_domains[domain],
                           (PyMemAllocatorEx *)&hooks[domain]);
    return 0;
}


/*
 * End the count that start_counting began with *base and store its number
 * of calls in *calls.  Ending the outermost count puts back the allocators
 * that start_counting found.  Returns 0, or -1 with an exception set when
 * the calling thread is not counting, or when some domain's allocator was
 * replaced while counting (tracemalloc started or stopped, for example).
 * In that case the replaced domains are left alone, since whatever is
 * installed now may forward to the hooks, which keep forwarding forever.
 * GIL held.
 */
static int
stop_counting(uint64_t base, uint64_t *calls)
{
    PyMemAllocatorEx current;
    int domain, replaced = 0;

    if (!installed || tally.depth == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "allocation counting is not running on this thread");
        return -1;
    }
    *calls = tally.calls - base;
    if (--tally.depth > 0)
        return 0;
    installed = 0;
    for (domain = 0; domain < DOMAIN_COUNT; domain++) {
        PyMem_GetAllocator(python_domains[domain], &current);
        if (!same_allocator(&current, &hooks[domain])) {
            buried[domain] = 1;
            replaced = 1;
            continue;
        }
        PyMem_SetAllocator(python_domains[domain],
                           (PyMemAllocatorEx *)&atomic_load_explicit(
                               &forward_to[domain], memory_order_acquire)
                               ->allocator);
    }
    if (replaced) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a memory allocator was replaced while allocations "
                        "were being counted (was tracemalloc started or "
                        "stopped?); the count is not valid");
        return -1;
    }
    return 0;
}


static PyObject *
alloc_count_start(PyObject *module, PyObject *unused)
{
    uint64_t base;

    (void)module;
    (void)unused;
    if (start_counting(&base) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(base);
}


static PyObject *
alloc_count_stop(PyObject *module, PyObject *token)
{
    unsigned long long base;
    uint64_t calls;

    (void)module;
    base = PyLong_AsUnsignedLongLong(token);
    if (base == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (stop_counting(base, &calls) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(calls);
}


/* Call fn() n times, checking for signals now and then; 0 or -1. */
static int
call_repeatedly(PyObject *fn, Py_ssize_t n)
{
    PyObject *result;
    Py_ssize_t i;

    for (i = 0; i < n; i++) {
        result = PyObject_CallNoArgs(fn);
        if (result == NULL)
            return -1;
        Py_DECREF(result);
        if (i % SIGNAL_CHECK_INTERVAL == SIGNAL_CHECK_INTERVAL - 1 &&
            PyErr_CheckSignals() < 0)
            return -1;
    }
    return 0;
}


/*
 * _loop(fn, n, count_allocs=False) -> (elapsed_ns, allocs)
 *
 * The loop runs in C so that it adds no allocations and little time per
 * iteration.  With count_allocs the hooks are installed around the loop
 * only, and allocs is the number of allocator calls made by this thread;
 * otherwise allocs is None.
 */
static PyObject *
loop(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"fn", "n", "count_allocs", NULL};
    PyObject *fn, *exc;
    Py_ssize_t n;
    int count_allocs = 0, rc;
    uint64_t base = 0, calls = 0;
    int64_t start, elapsed;

    (void)module;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "On|p:_loop", keywords, &fn,
                                     &n, &count_allocs))
        return NULL;
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, got %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (n < 0) {
        PyErr_Format(PyExc_ValueError, "n must be >= 0, got %zd", n);
        return NULL;
    }
    if (count_allocs && start_counting(&base) < 0)
        return NULL;
    start = pgs_monotonic_ns();
    rc = call_repeatedly(fn, n);
    elapsed = pgs_monotonic_ns() - start;
    if (count_allocs) {
        /* Keep fn's exception, if any, over an error from stopping. */
        exc = pgs_fetch_exception();
        if (stop_counting(base, &calls) < 0) {
            if (exc == NULL)
                return NULL;
            PyErr_Clear();
        }
        if (exc != NULL)
            pgs_restore_exception(exc);
    }
    if (rc < 0)
        return NULL;
    if (count_allocs)
        return Py_BuildValue("(LK)", (long long)elapsed,
                             (unsigned long long)calls);
    return Py_BuildValue("(LO)", (long long)elapsed, Py_None);
}


/*
 * _count_call(fn, args, kwargs) -> (result, allocs)
 *
 * Call fn(*args, **kwargs) once with the hooks installed around the call
 * only.  kwargs may be None.  If fn raises, the exception propagates and
 * the count is lost.
 */
static PyObject *
count_one_call(PyObject *module, PyObject *args)
{
    PyObject *fn, *call_args, *call_kwargs, *result, *exc;
    uint64_t base = 0, calls = 0;

    (void)module;
    if (!PyArg_ParseTuple(args, "OOO:_count_call", &fn, &call_args,
                          &call_kwargs))
        return NULL;
    if (!PyTuple_Check(call_args)) {
        PyErr_Format(PyExc_TypeError, "args must be a tuple, got %.100s",
                     Py_TYPE(call_args)->tp_name);
        return NULL;
    }
    if (call_kwargs == Py_None ||
        (PyDict_Check(call_kwargs) && PyDict_GET_SIZE(call_kwargs) == 0))
        call_kwargs = NULL;
    else if (!PyDict_Check(call_kwargs)) {
        PyErr_Format(PyExc_TypeError,
                     "kwargs must be a dict or None, got %.100s",
                     Py_TYPE(call_kwargs)->tp_name);
        return NULL;
    }
    if (start_counting(&base) < 0)
        return NULL;
    result = PyObject_Call(fn, call_args, call_kwargs);
    exc = result == NULL ? pgs_fetch_exception() : NULL;
    if (stop_counting(base, &calls) < 0) {
        if (exc == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyErr_Clear();
    }
    if (exc != NULL) {
        pgs_restore_exception(exc);
        return NULL;
    }
    return Py_BuildValue("(NK)", result, (unsigned long long)calls);
}


static PyMethodDef allochook_functions[] = {
    {"_alloc_count_start", alloc_count_start, METH_NOARGS,
     "Start counting the calling thread's allocations (RAW, MEM, OBJ); "
     "return the token for _alloc_count_stop."},
    {"_alloc_count_stop", alloc_count_stop, METH_O,
     "End the count that returned token; return its number of allocations."},
    {"_loop", (PyCFunction)(void (*)(void))loop, METH_VARARGS | METH_KEYWORDS,
     "_loop(fn, n, count_allocs=False)\n--\n\n"
     "Call fn() n times; return (elapsed_ns, allocs or None)."},
    {"_count_call", count_one_call, METH_VARARGS,
     "_count_call(fn, args, kwargs)\n--\n\n"
     "Call fn(*args, **kwargs) once; return (result, allocs)."},
    {NULL, NULL, 0, NULL},
};


/* Record the allocators in place now unless tracemalloc's hooks are among
   them; 0, or -1 with an exception set. */
static int
record_initial_allocators(void)
{
    PyObject *tracemalloc, *tracing;
    int domain, is_tracing;

    if (have_initial || installed)
        return 0;
    tracemalloc = PyImport_ImportModule("tracemalloc");
    if (tracemalloc == NULL)
        return -1;
    tracing = PyObject_CallMethod(tracemalloc, "is_tracing", NULL);
    Py_DECREF(tracemalloc);
    if (tracing == NULL)
        return -1;
    is_tracing = PyObject_IsTrue(tracing);
    Py_DECREF(tracing);
    if (is_tracing != 0)
        return is_tracing < 0 ? -1 : 0;
    for (domain = 0; domain < DOMAIN_COUNT; domain++)
        PyMem_GetAllocator(python_domains[domain], &initial[domain]);
    have_initial = 1;
    return 0;
}


int
pgs_allochook_register(PyObject *module, pgs_state *state)
{
    (void)state;
    if (record_initial_allocators() < 0)
        return -1;
    return PyModule_AddFunctions(module, allochook_functions);
}
