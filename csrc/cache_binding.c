/*
 * cache_binding.c - pygamesvc._core.TTLCache, the Python face of cache.c.
 *
 * Every key and value stored in the core is a strong reference.  The core
 * calls key_eq_locked, retain (Py_INCREF) and the entry allocator under a
 * stripe lock, with the GIL held; none of them runs Python code.  Python
 * code (a key's __eq__, a value's __del__ through Py_DECREF, the timer)
 * runs only with no stripe lock held:
 * - keys whose equality key_eq_locked cannot decide (anything but exact
 *   str, int and bytes against the same type) go through slow_path(), which
 *   pins candidate entries, compares with every lock released and then
 *   re-checks the entry;
 * - everything unlinked under a lock is released by release_garbage() after
 *   the lock is dropped.
 *
 * The cache lives on after close() only as an empty, closed object; the
 * core is freed in tp_dealloc, when no method can be running on it.
 */
#include "module.h"

#include <math.h>
#include <string.h>

#include "structmember.h"
#include "cache.h"
#include "cache_registry.h"
#include "cache_sweeper.h"
#include "pgs_error.h"

#define DEFAULT_STRIPES_MAX 16
#define ENTRIES_PER_DEFAULT_STRIPE 256
#define SWEEP_BUDGET 256
#define SWEEP_INTERVAL_MIN 0.05
#define SWEEP_INTERVAL_MAX 5.0
#define PINNED_ON_STACK 8
/* After this many lost races against concurrent writers, a slow-path
   operation gives up instead of looping forever. */
#define SLOW_PATH_ATTEMPTS 100
/* TTLs are capped at about 146 years so that now + ttl cannot overflow. */
#define TTL_MAX_NS (INT64_MAX / 2)

typedef struct {
    PyObject_HEAD pgs_cache *cache;
    pgs_state *state;
    PyObject *timer; /* NULL: pgs_cache_clock_ns */
    PyObject *name;  /* str */
    PyObject *ttl;   /* float, seconds */
    int64_t ttl_ns;
    Py_ssize_t maxsize;    /* -1: unbounded */
    double sweep_interval; /* seconds; 0: no sweeper */
    cache_sweeper *sweeper;
    cache_registry_node *registry_node;
    int closed;
    PyObject *weakreflist;
} CacheObject;

/* GIL-protected: set once the interpreter starts to exit. */
static int sweepers_disabled;
static unsigned long cache_counter;


/* ---------------------------------------------------------------------
 * Callbacks for the core (GIL held, stripe lock possibly held)
 */

static int
unicode_equal(PyObject *a, PyObject *b)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(a);

    if (length != PyUnicode_GET_LENGTH(b) ||
        PyUnicode_KIND(a) != PyUnicode_KIND(b))
        return 0;
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
                  (size_t)length * PyUnicode_KIND(a)) == 0;
}


/* The exact types whose equality needs no Python code. */
static inline int
is_fast_key_type(PyTypeObject *type)
{
    return type == &PyUnicode_Type || type == &PyLong_Type ||
           type == &PyBytes_Type;
}


static int
key_eq_locked(void *ctx, const void *stored_p, const void *probe_p)
{
    PyObject *stored = (PyObject *)stored_p, *probe = (PyObject *)probe_p;
    PyTypeObject *type = Py_TYPE(stored);

    (void)ctx;
    if (type != Py_TYPE(probe)) {
        /* Exact str, int and bytes never equal each other. */
        if (is_fast_key_type(type) && is_fast_key_type(Py_TYPE(probe)))
            return 0;
        return PGS_EAGAIN;
    }
    if (type == &PyUnicode_Type)
        return unicode_equal(stored, probe);
    if (type == &PyBytes_Type)
        return PyBytes_GET_SIZE(stored) == PyBytes_GET_SIZE(probe) &&
               memcmp(PyBytes_AS_STRING(stored), PyBytes_AS_STRING(probe),
                      (size_t)PyBytes_GET_SIZE(stored)) == 0;
    if (type == &PyLong_Type) {
        /* int == int runs no Python code and cannot fail. */
        return PyObject_RichCompareBool(stored, probe, Py_EQ);
    }
    return PGS_EAGAIN;
}


static void
retain_object(void *ctx, void *object)
{
    (void)ctx;
    Py_INCREF((PyObject *)object);
}


static void
release_object(void *ctx, void *object)
{
    (void)ctx;
    Py_DECREF((PyObject *)object);
}


/* Entries are allocated and freed only with the GIL held, so pymalloc
   serves them: a 64-byte block without malloc's header. */
static void *
alloc_entry(void *ctx, size_t size)
{
    (void)ctx;
    return PyMem_Malloc(size);
}


static void
free_entry(void *ctx, void *block)
{
    (void)ctx;
    PyMem_Free(block);
}


static void *
drop_gil(void *ctx)
{
    (void)ctx;
    return PyEval_SaveThread();
}


static void
take_gil(void *ctx, void *token)
{
    (void)ctx;
    PyEval_RestoreThread((PyThreadState *)token);
}


static inline void
release_garbage(CacheObject *self, pgs_cache_garbage *garbage)
{
    if (!pgs_cache_garbage_empty(garbage))
        pgs_cache_garbage_release(self->cache, garbage);
}


/* ---------------------------------------------------------------------
 * Keys, time and TTLs
 */

static inline int
hash_key(PyObject *key, uint64_t *hash)
{
    Py_hash_t h;

    /* A str caches its hash; reading it directly skips a call through
       tp_hash on the lookup path. */
    if (PyUnicode_CheckExact(key) && ((PyASCIIObject *)key)->hash != -1) {
        *hash = (uint64_t)((PyASCIIObject *)key)->hash;
        return 0;
    }
    h = PyObject_Hash(key);

    if (h == -1 && PyErr_Occurred())
        return -1;
    *hash = (uint64_t)h;
    return 0;
}


static inline int
current_time(CacheObject *self, int64_t *now)
{
    PyObject *result;
    double seconds;

    if (self->timer == NULL) {
        *now = pgs_cache_clock_ns();
        return 0;
    }
    result = PyObject_CallNoArgs(self->timer);
    if (result == NULL)
        return -1;
    if (PyBool_Check(result) ||
        !(PyFloat_Check(result) || PyLong_Check(result))) {
        PyErr_Format(PyExc_TypeError,
                     "timer must return a number of seconds, got %.100s",
                     Py_TYPE(result)->tp_name);
        Py_DECREF(result);
        return -1;
    }
    seconds = PyFloat_AsDouble(result);
    if (seconds == -1.0 && PyErr_Occurred()) {
        Py_DECREF(result);
        return -1;
    }
    if (!isfinite(seconds) || fabs(seconds) > 9.0e9) {
        PyErr_Format(PyExc_ValueError,
                     "timer must return a finite number of seconds below "
                     "9e9 in magnitude, got %R",
                     result);
        Py_DECREF(result);
        return -1;
    }
    Py_DECREF(result);
    *now = (int64_t)(seconds * 1e9);
    return 0;
}


/* Convert a TTL in seconds to ns; name is the argument's name for errors. */
static int
parse_ttl(PyObject *value, const char *name, int64_t *ns, double *seconds_out)
{
    double seconds;

    if (PyBool_Check(value) || !(PyFloat_Check(value) || PyLong_Check(value))) {
        PyErr_Format(PyExc_TypeError,
                     "%s must be a positive number of seconds, got %.100s",
                     name, Py_TYPE(value)->tp_name);
        return -1;
    }
    seconds = PyFloat_AsDouble(value);
    if (seconds == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        seconds = INFINITY;
    }
    if (!isfinite(seconds) || seconds <= 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s must be a finite positive number of seconds, got %R",
                     name, value);
        return -1;
    }
    *ns = seconds * 1e9 >= (double)TTL_MAX_NS ? TTL_MAX_NS
                                              : (int64_t)(seconds * 1e9);
    if (*ns == 0)
        *ns = 1;
    if (seconds_out != NULL)
        *seconds_out = seconds;
    return 0;
}


static inline int64_t
expiry_time(int64_t now, int64_t ttl_ns)
{
    return now > INT64_MAX - ttl_ns ? INT64_MAX : now + ttl_ns;
}


static int
check_open(CacheObject *self)
{
    if (self->closed) {
        PyErr_Format(PyExc_RuntimeError,
                     "TTLCache %R is closed; create a new cache", self->name);
        return -1;
    }
    return 0;
}


/* ---------------------------------------------------------------------
 * Slow path: keys whose equality may run Python code
 */

enum slow_op { SLOW_GET, SLOW_SET, SLOW_SETDEFAULT, SLOW_DELETE };

typedef struct {
    enum slow_op op;
    PyObject *value;    /* SLOW_SET, SLOW_SETDEFAULT: the value to store */
    int64_t expires_ns; /* SLOW_SET, SLOW_SETDEFAULT */
    PyObject *result;   /* out: new reference (get, delete, setdefault) */
    int64_t result_expires_ns;
} slow_request;


/* Find the pinned entry whose key equals key; *found is NULL if none.
   Returns 0, or -1 if an __eq__ raised. */
static int
find_equal(PyObject *key, pgs_cache_entry **pinned, size_t n,
           pgs_cache_entry **found)
{
    PyObject *stored;
    size_t i;
    int equal;

    *found = NULL;
    for (i = 0; i < n; i++) {
        stored = pgs_cache_entry_key(pinned[i]);
        if (stored == key) {
            *found = pinned[i];
            return 0;
        }
        /* No stripe lock is held here: __eq__ may do anything, including
           using this cache.  The pins keep the candidates' memory and keys
           alive meanwhile. */
        equal = PyObject_RichCompareBool(stored, key, Py_EQ);
        if (equal < 0)
            return -1;
        if (equal) {
            *found = pinned[i];
            return 0;
        }
    }
    return 0;
}


static int
apply_to_entry(CacheObject *self, pgs_cache_entry *entry, int64_t now,
               slow_request *request, pgs_cache_garbage *garbage)
{
    void *out = NULL;
    int rc;

    switch (request->op) {
    case SLOW_GET:
        rc = pgs_cache_entry_get(self->cache, entry, now, &out,
                                 &request->result_expires_ns, garbage);
        break;
    case SLOW_DELETE:
        rc = pgs_cache_entry_delete(self->cache, entry, now, &out, garbage);
        break;
    default:
        rc = pgs_cache_entry_set(self->cache, entry, request->value,
                                 request->expires_ns, now,
                                 request->op == SLOW_SETDEFAULT, &out, garbage);
        break;
    }
    request->result = out;
    return rc;
}


/*
 * Run one operation for a key that key_eq_locked could not decide.  Returns
 * PGS_OK, PGS_ENOTFOUND (get and delete only), or -1 with an exception set
 * (MemoryError for PGS_ENOMEM).  Garbage is released before returning.
 */
static int
slow_path(CacheObject *self, PyObject *key, uint64_t hash, int64_t now,
          slow_request *request)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    pgs_cache_entry *on_stack[PINNED_ON_STACK], **pinned = on_stack, *found;
    size_t n, room = PINNED_ON_STACK;
    uint64_t version;
    int attempt, rc;

    request->result = NULL;
    for (attempt = 0; attempt < SLOW_PATH_ATTEMPTS; attempt++) {
        n = pgs_cache_find_pinned(self->cache, hash, now, pinned, room,
                                  &version, &garbage);
        if (n > room) {
            /* Many keys share this hash: make room and look again. */
            if (pinned != on_stack)
                PyMem_Free(pinned);
            pinned = PyMem_New(pgs_cache_entry *, n);
            room = n;
            if (pinned == NULL) {
                release_garbage(self, &garbage);
                PyErr_NoMemory();
                return -1;
            }
            continue;
        }
        if (find_equal(key, pinned, n, &found) < 0) {
            pgs_cache_unpin(self->cache, pinned, n, &garbage);
            release_garbage(self, &garbage);
            if (pinned != on_stack)
                PyMem_Free(pinned);
            return -1;
        }
        if (found != NULL)
            rc = apply_to_entry(self, found, now, request, &garbage);
        else if (request->op == SLOW_GET || request->op == SLOW_DELETE)
            rc = PGS_ENOTFOUND;
        else
            rc = pgs_cache_insert_checked(self->cache, key, hash,
                                          request->value, request->expires_ns,
                                          now, version, &garbage);
        if (found == NULL && request->op == SLOW_GET)
            pgs_cache_note_miss(self->cache, hash);
        pgs_cache_unpin(self->cache, pinned, n, &garbage);
        release_garbage(self, &garbage);
        if (rc != PGS_EAGAIN)
            break;
    }
    release_garbage(self, &garbage);
    if (pinned != on_stack)
        PyMem_Free(pinned);
    if (rc == PGS_EAGAIN) {
        PyErr_Format(PyExc_RuntimeError,
                     "TTLCache %R: key %R kept changing under concurrent "
                     "writes while its __eq__ ran (%d attempts)",
                     self->name, key, SLOW_PATH_ATTEMPTS);
        return -1;
    }
    if (rc == PGS_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    return rc;
}


/* ---------------------------------------------------------------------
 * Core operations with Python errors
 */

/*
 * Look key up.  Returns 1 with *value a new reference (if value is not
 * NULL) and *expires_ns set (if not NULL), 0 if there is no live entry, or
 * -1 with an exception set.
 *
 * Without expires_ns, the lookup first tries pgs_cache_get_optimistic,
 * which takes no lock.  Its contract holds because every garbage release
 * (here and on the sweeper thread) runs with the GIL held, as does this
 * call, and nothing before the Py_NewRef releases the GIL.
 */
static inline int
cache_lookup(CacheObject *self, PyObject *key, PyObject **value,
             int64_t *expires_ns)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    slow_request request = {.op = SLOW_GET};
    PyObject *found;
    uint64_t hash;
    int64_t now = PGS_CACHE_NOW_FROM_CLOCK;
    int rc;

    if (check_open(self) < 0 || hash_key(key, &hash) < 0)
        return -1;
    if (self->timer != NULL && current_time(self, &now) < 0)
        return -1;
    /* TODO: free-threaded builds have no GIL to keep garbage alive during
       an optimistic read; they need another reclamation scheme first. */
    if (expires_ns == NULL) {
        rc = pgs_cache_get_optimistic(self->cache, key, hash, now,
                                      (void **)&found);
        if (rc == PGS_OK) {
            if (value != NULL)
                *value = Py_NewRef(found);
            return 1;
        }
        if (rc == PGS_ENOTFOUND)
            return 0;
    }
    if (now == PGS_CACHE_NOW_FROM_CLOCK)
        now = pgs_cache_clock_ns();
    rc = pgs_cache_get(self->cache, key, hash, now, (void **)value, expires_ns,
                       &garbage);
    release_garbage(self, &garbage);
    if (rc == PGS_OK)
        return 1;
    if (rc != PGS_EAGAIN)
        return 0;
    rc = slow_path(self, key, hash, now, &request);
    if (rc != PGS_OK)
        return rc == PGS_ENOTFOUND ? 0 : -1;
    if (value != NULL)
        *value = request.result;
    else
        Py_DECREF(request.result);
    if (expires_ns != NULL)
        *expires_ns = request.result_expires_ns;
    return 1;
}


/*
 * cache_lookup's first step, small enough to inline into get and
 * __getitem__: an optimistic read for an exact str key whose hash is
 * cached, in an open cache with the default clock.  Returns PGS_OK with
 * *found borrowed, PGS_ENOTFOUND, or PGS_EAGAIN to go on with
 * cache_lookup.
 */
static inline int
lookup_str_key(CacheObject *self, PyObject *key, PyObject **found)
{
    Py_hash_t hash;

    if (!PyUnicode_CheckExact(key) || self->timer != NULL || self->closed)
        return PGS_EAGAIN;
    hash = ((PyASCIIObject *)key)->hash;
    if (hash == -1)
        return PGS_EAGAIN;
    return pgs_cache_get_optimistic(self->cache, key, (uint64_t)hash,
                                    PGS_CACHE_NOW_FROM_CLOCK, (void **)found);
}


static void restart_sweeper_after_fork(CacheObject *self);


/*
 * Store value under key until now + ttl_ns.  With only_if_absent, a live
 * value is left in place and returned in *existing (new reference).
 * Returns 0, or -1 with an exception set.
 */
static int
cache_store(CacheObject *self, PyObject *key, PyObject *value, int64_t ttl_ns,
            int only_if_absent, PyObject **existing)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    slow_request request;
    PyObject *present = NULL;
    uint64_t hash;
    int64_t now, expires;
    int rc;

    if (check_open(self) < 0 || hash_key(key, &hash) < 0 ||
        current_time(self, &now) < 0)
        return -1;
    if (self->sweeper != NULL && pgs_sweeper_is_inherited(self->sweeper))
        restart_sweeper_after_fork(self);
    expires = expiry_time(now, ttl_ns);
    rc = pgs_cache_set(self->cache, key, hash, value, expires, now,
                       only_if_absent, (void **)&present, &garbage);
    release_garbage(self, &garbage);
    if (rc == PGS_EAGAIN) {
        request = (slow_request){
            .op = only_if_absent ? SLOW_SETDEFAULT : SLOW_SET,
            .value = value,
            .expires_ns = expires,
        };
        rc = slow_path(self, key, hash, now, &request);
        if (rc < 0)
            return -1;
        present = request.result;
    }
    if (self->closed) {
        /* close() ran while this store waited without the GIL (for a key's
           __eq__ or a busy stripe lock), so its clear may have come before
           the insert: clear again, so that a closed cache keeps nothing. */
        Py_XDECREF(present);
        pgs_cache_clear(self->cache, &garbage);
        release_garbage(self, &garbage);
        return check_open(self);
    }
    if (rc == PGS_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    if (existing != NULL)
        *existing = present;
    else
        Py_XDECREF(present);
    return 0;
}


/* Remove key.  Returns 1 with *value a new reference (or released if value
   is NULL), 0 if there is no live entry, or -1 with an exception set. */
static int
cache_remove(CacheObject *self, PyObject *key, PyObject **value)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    slow_request request = {.op = SLOW_DELETE};
    PyObject *removed = NULL;
    uint64_t hash;
    int64_t now;
    int rc;

    if (check_open(self) < 0 || hash_key(key, &hash) < 0 ||
        current_time(self, &now) < 0)
        return -1;
    rc = pgs_cache_delete(self->cache, key, hash, now, (void **)&removed,
                          &garbage);
    release_garbage(self, &garbage);
    if (rc == PGS_EAGAIN) {
        rc = slow_path(self, key, hash, now, &request);
        removed = request.result;
    }
    if (rc != PGS_OK)
        return rc == PGS_ENOTFOUND ? 0 : -1;
    if (value != NULL)
        *value = removed;
    else
        Py_DECREF(removed);
    return 1;
}


static PyObject *
raise_key_error(PyObject *key)
{
    PyObject *args = PyTuple_Pack(1, key);

    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
    return NULL;
}


/* ---------------------------------------------------------------------
 * Mapping protocol
 */

static PyObject *
cache_subscript(PyObject *op, PyObject *key)
{
    PyObject *value;
    int rc = lookup_str_key((CacheObject *)op, key, &value);

    if (rc == PGS_OK)
        return Py_NewRef(value);
    if (rc == PGS_ENOTFOUND)
        return raise_key_error(key);
    rc = cache_lookup((CacheObject *)op, key, &value, NULL);

    if (rc > 0)
        return value;
    if (rc == 0)
        return raise_key_error(key);
    return NULL;
}


static int
cache_ass_subscript(PyObject *op, PyObject *key, PyObject *value)
{
    CacheObject *self = (CacheObject *)op;
    int rc;

    if (value != NULL)
        return cache_store(self, key, value, self->ttl_ns, 0, NULL);
    rc = cache_remove(self, key, NULL);
    if (rc == 0)
        raise_key_error(key);
    return rc > 0 ? 0 : -1;
}


/*
 * Count the live entries; expired entries that len() finds are removed.
 * Returns -1 with an exception set if the timer fails.
 */
static Py_ssize_t
live_size(CacheObject *self)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    int64_t now;
    size_t n;

    if (current_time(self, &now) < 0)
        return -1;
    n = pgs_cache_count_live(self->cache, now, &garbage);
    release_garbage(self, &garbage);
    return (Py_ssize_t)n;
}


static Py_ssize_t
cache_length(PyObject *op)
{
    return live_size((CacheObject *)op);
}


static int
cache_contains(PyObject *op, PyObject *key)
{
    return cache_lookup((CacheObject *)op, key, NULL, NULL);
}


/* ---------------------------------------------------------------------
 * Methods
 */

static PyObject *
cache_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *value;
    int rc;

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd",
                     nargs);
        return NULL;
    }
    rc = lookup_str_key((CacheObject *)op, args[0], &value);
    if (rc == PGS_OK)
        return Py_NewRef(value);
    if (rc == PGS_ENOTFOUND)
        return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    rc = cache_lookup((CacheObject *)op, args[0], &value, NULL);
    if (rc > 0)
        return value;
    if (rc == 0)
        return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    return NULL;
}


/* _get_uncounted(key, default): get() that leaves the miss count alone. */
static PyObject *
cache_get_uncounted(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    CacheObject *self = (CacheObject *)op;
    PyObject *value;
    uint64_t hash;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "_get_uncounted expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    value = cache_get(op, args, nargs);
    if (value != args[1] || self->cache == NULL)
        return value;
    if (hash_key(args[0], &hash) < 0) {
        Py_DECREF(value);
        return NULL;
    }
    pgs_cache_forget_miss(self->cache, hash);
    return value;
}


/* Parse (key, value_or_factory, ttl=None) from a vectorcall; *ttl_ns is the
   cache's TTL when ttl is None. */
static int
parse_key_value_ttl(CacheObject *self, const char *method, const char *second,
                    PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                    int64_t *ttl_ns)
{
    PyObject *ttl = nargs == 3 ? args[2] : Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);

    if (nargs + nkw < 2 || nargs + nkw > 3 || nargs < 2) {
        PyErr_Format(PyExc_TypeError,
                     "%s() takes key, %s and an optional ttl, got %zd "
                     "positional and %zd keyword arguments",
                     method, second, nargs, nkw);
        return -1;
    }
    if (nkw == 1) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
            PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0),
                                             "ttl") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument %R", method,
                         PyTuple_GET_ITEM(kwnames, 0));
            return -1;
        }
        ttl = args[nargs];
    }
    if (ttl == Py_None) {
        *ttl_ns = self->ttl_ns;
        return 0;
    }
    return parse_ttl(ttl, "ttl", ttl_ns, NULL);
}


static PyObject *
cache_set(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    CacheObject *self = (CacheObject *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int64_t ttl_ns;

    if (parse_key_value_ttl(self, "set", "value", args, nargs, kwnames,
                            &ttl_ns) < 0)
        return NULL;
    if (cache_store(self, args[0], args[1], ttl_ns, 0, NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}


static PyObject *
cache_get_or_set(PyObject *op, PyObject *const *args, size_t nargsf,
                 PyObject *kwnames)
{
    CacheObject *self = (CacheObject *)op;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *value, *ttl;
    int64_t ttl_ns;
    int rc;

    if (parse_key_value_ttl(self, "get_or_set", "factory", args, nargs, kwnames,
                            &ttl_ns) < 0)
        return NULL;
    if (!PyCallable_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "factory must be callable, got %.100s",
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    rc = cache_lookup(self, args[0], &value, NULL);
    if (rc > 0)
        return value;
    if (rc < 0)
        return NULL;
    /* A miss: the Python layer runs the factory once for all callers. */
    ttl = nargs == 3 ? args[2] : (kwnames != NULL ? args[nargs] : Py_None);
    return PyObject_CallMethodObjArgs(op, self->state->cache_miss_method,
                                      args[0], args[1], ttl, NULL);
}


static PyObject *
cache_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *value;
    int rc;

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "pop expected 1 or 2 arguments, got %zd",
                     nargs);
        return NULL;
    }
    rc = cache_remove((CacheObject *)op, args[0], &value);
    if (rc > 0)
        return value;
    if (rc == 0) {
        if (nargs == 2)
            return Py_NewRef(args[1]);
        return raise_key_error(args[0]);
    }
    return NULL;
}


static PyObject *
cache_setdefault(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    CacheObject *self = (CacheObject *)op;
    PyObject *value = nargs == 2 ? args[1] : Py_None, *existing = NULL;

    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "setdefault expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    if (cache_store(self, args[0], value, self->ttl_ns, 1, &existing) < 0)
        return NULL;
    return existing != NULL ? existing : Py_NewRef(value);
}


static PyObject *
cache_ttl_of(PyObject *op, PyObject *key)
{
    CacheObject *self = (CacheObject *)op;
    int64_t expires, now;
    int rc;

    rc = cache_lookup(self, key, NULL, &expires);
    if (rc == 0)
        return raise_key_error(key);
    if (rc < 0 || current_time(self, &now) < 0)
        return NULL;
    return PyFloat_FromDouble(expires > now ? (double)(expires - now) / 1e9
                                            : 0.0);
}


static PyObject *
cache_clear_method(PyObject *op, PyObject *unused)
{
    CacheObject *self = (CacheObject *)op;
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;

    (void)unused;
    pgs_cache_clear(self->cache, &garbage);
    release_garbage(self, &garbage);
    Py_RETURN_NONE;
}


static PyObject *
cache_expire(PyObject *op, PyObject *unused)
{
    CacheObject *self = (CacheObject *)op;
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    int64_t now;
    size_t expired;

    (void)unused;
    if (current_time(self, &now) < 0)
        return NULL;
    expired = pgs_cache_expire_all(self->cache, now, &garbage);
    release_garbage(self, &garbage);
    return PyLong_FromSize_t(expired);
}


static PyObject *
cache_stats(PyObject *op, PyObject *unused)
{
    CacheObject *self = (CacheObject *)op;
    pgs_cache_stats stats;

    (void)unused;
    pgs_cache_get_stats(self->cache, &stats);
    return Py_BuildValue("{sKsKsKsKsn}", "hits", (unsigned long long)stats.hits,
                         "misses", (unsigned long long)stats.misses,
                         "expirations", (unsigned long long)stats.expirations,
                         "evictions", (unsigned long long)stats.evictions,
                         "entries", (Py_ssize_t)stats.entries);
}


/*
 * Copy the live entries into a list: of keys if with_values is 0, else of
 * (key, value, remaining seconds) tuples.  Stripes are copied one at a time,
 * so the snapshot is consistent per stripe, not across stripes.
 */
static PyObject *
snapshot(CacheObject *self, int with_values)
{
    pgs_cache_item *items = NULL;
    size_t n = 0, capacity = 0, i;
    PyObject *list = NULL, *item;
    int64_t now;
    int rc = PGS_OK;

    if (current_time(self, &now) < 0)
        return NULL;
    for (i = 0; i < pgs_cache_stripes(self->cache) && rc == PGS_OK; i++)
        rc = pgs_cache_collect(self->cache, i, now, &items, &n, &capacity);
    if (rc == PGS_OK)
        list = PyList_New((Py_ssize_t)n);
    for (i = 0; i < n; i++) {
        item = NULL;
        if (list != NULL && with_values)
            item = Py_BuildValue("(OOd)", items[i].key, items[i].value,
                                 (double)(items[i].expires_ns - now) / 1e9);
        else if (list != NULL)
            item = Py_NewRef(items[i].key);
        Py_DECREF((PyObject *)items[i].key);
        Py_DECREF((PyObject *)items[i].value);
        if (list == NULL)
            continue;
        if (item == NULL) {
            Py_CLEAR(list);
            continue;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    free(items);
    if (rc != PGS_OK)
        return PyErr_NoMemory();
    return list;
}


static PyObject *
cache_iter(PyObject *op)
{
    PyObject *keys = snapshot((CacheObject *)op, 0), *iterator;

    if (keys == NULL)
        return NULL;
    iterator = PyObject_GetIter(keys);
    Py_DECREF(keys);
    return iterator;
}


static PyObject *
cache_items_snapshot(PyObject *op, PyObject *unused)
{
    (void)unused;
    return snapshot((CacheObject *)op, 1);
}


static void
stop_sweeper(CacheObject *self)
{
    cache_sweeper *sweeper = self->sweeper;

    if (sweeper == NULL)
        return;
    self->sweeper = NULL;
    if (self->registry_node != NULL)
        pgs_cache_registry_set_sweeper(self->registry_node, NULL);
    pgs_sweeper_stop(sweeper);
}


static int
start_sweeper(CacheObject *self)
{
    int rc;

    if (self->sweep_interval <= 0 || sweepers_disabled)
        return 0;
    rc = pgs_sweeper_start(&self->sweeper, self->cache,
                           (int64_t)(self->sweep_interval * 1e9), SWEEP_BUDGET);
    if (rc != PGS_OK) {
        self->sweeper = NULL;
        if (rc == PGS_ETHREAD)
            PyErr_Format(PyExc_RuntimeError,
                         "TTLCache %R: the OS refused to start the sweeper "
                         "thread; pass sweep_interval=0 to run without one",
                         self->name);
        else
            PyErr_NoMemory();
        return -1;
    }
    if (self->registry_node != NULL)
        pgs_cache_registry_set_sweeper(self->registry_node, self->sweeper);
    return 0;
}


static void
restart_sweeper_after_fork(CacheObject *self)
{
    stop_sweeper(self); /* frees it: its thread stayed in the parent */
    if (start_sweeper(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
}


static PyObject *
cache_stop_sweeper(PyObject *op, PyObject *unused)
{
    (void)unused;
    stop_sweeper((CacheObject *)op);
    Py_RETURN_NONE;
}


static PyObject *
cache_close(PyObject *op, PyObject *unused)
{
    CacheObject *self = (CacheObject *)op;
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;

    (void)unused;
    if (self->closed)
        Py_RETURN_NONE;
    self->closed = 1;
    stop_sweeper(self);
    if (self->registry_node != NULL) {
        pgs_cache_registry_remove(self->registry_node);
        self->registry_node = NULL;
    }
    pgs_cache_clear(self->cache, &garbage);
    release_garbage(self, &garbage);
    Py_RETURN_NONE;
}


/* ---------------------------------------------------------------------
 * Construction and teardown
 */

static int
parse_maxsize(CacheObject *self, PyObject *maxsize)
{
    if (maxsize == Py_None) {
        self->maxsize = -1;
        return 0;
    }
    if (PyBool_Check(maxsize) || !PyLong_Check(maxsize)) {
        PyErr_Format(PyExc_TypeError,
                     "maxsize must be a non-negative int or None, got %.100s",
                     Py_TYPE(maxsize)->tp_name);
        return -1;
    }
    self->maxsize = PyLong_AsSsize_t(maxsize);
    if (self->maxsize == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "maxsize must be a non-negative int that fits in "
                     "memory, got %R",
                     maxsize);
        return -1;
    }
    if (self->maxsize < 0) {
        PyErr_Format(PyExc_ValueError,
                     "maxsize must be a non-negative int or None, got %R",
                     maxsize);
        return -1;
    }
    return 0;
}


static int
parse_stripes(CacheObject *self, PyObject *stripes, size_t *out)
{
    Py_ssize_t n;

    if (stripes == Py_None) {
        /* About 256 entries per stripe for small caches, at most 16. */
        *out = 1;
        while (*out < DEFAULT_STRIPES_MAX &&
               (self->maxsize < 0 ||
                (size_t)self->maxsize >= *out * 2 * ENTRIES_PER_DEFAULT_STRIPE))
            *out *= 2;
        return 0;
    }
    if (PyBool_Check(stripes) || !PyLong_Check(stripes)) {
        PyErr_Format(PyExc_TypeError,
                     "stripes must be a power of two from 1 to %d or None, "
                     "got %.100s",
                     PGS_CACHE_MAX_STRIPES, Py_TYPE(stripes)->tp_name);
        return -1;
    }
    n = PyLong_AsSsize_t(stripes);
    if (n == -1 && PyErr_Occurred())
        PyErr_Clear();
    if (n < 1 || n > PGS_CACHE_MAX_STRIPES || (n & (n - 1)) != 0) {
        PyErr_Format(PyExc_ValueError,
                     "stripes must be a power of two from 1 to %d, got %R",
                     PGS_CACHE_MAX_STRIPES, stripes);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}


static int
parse_sweep_interval(CacheObject *self, PyObject *interval, double ttl)
{
    if (interval == Py_None) {
        /* Custom timers are Python code, which the sweeper thread must not
           run on its own; such caches expire lazily and on expire(). */
        if (self->timer != NULL)
            self->sweep_interval = 0;
        else
            self->sweep_interval =
                fmin(fmax(ttl / 4, SWEEP_INTERVAL_MIN), SWEEP_INTERVAL_MAX);
        return 0;
    }
    if (PyBool_Check(interval) ||
        !(PyFloat_Check(interval) || PyLong_Check(interval))) {
        PyErr_Format(PyExc_TypeError,
                     "sweep_interval must be a non-negative number of "
                     "seconds or None, got %.100s",
                     Py_TYPE(interval)->tp_name);
        return -1;
    }
    self->sweep_interval = PyFloat_AsDouble(interval);
    if (self->sweep_interval == -1.0 && PyErr_Occurred())
        return -1;
    if (!isfinite(self->sweep_interval) || self->sweep_interval < 0 ||
        (self->sweep_interval > 0 && self->sweep_interval < 0.001)) {
        PyErr_Format(PyExc_ValueError,
                     "sweep_interval must be 0 (no sweeper) or a finite "
                     "number of seconds of at least 0.001, got %R",
                     interval);
        return -1;
    }
    if (self->sweep_interval > 0 && self->timer != NULL) {
        PyErr_SetString(PyExc_ValueError,
                        "sweep_interval cannot be combined with a custom "
                        "timer: the sweeper uses the monotonic clock; call "
                        "expire() to remove expired entries instead");
        return -1;
    }
    return 0;
}


static int
parse_cache_args(CacheObject *self, PyObject *maxsize, PyObject *ttl,
                 PyObject *stripes, PyObject *sweep_interval, PyObject *timer,
                 PyObject *name, size_t *nstripes)
{
    double ttl_seconds;

    if (parse_maxsize(self, maxsize) < 0)
        return -1;
    if (parse_ttl(ttl, "ttl", &self->ttl_ns, &ttl_seconds) < 0)
        return -1;
    self->ttl = PyFloat_FromDouble(ttl_seconds);
    if (self->ttl == NULL)
        return -1;
    if (parse_stripes(self, stripes, nstripes) < 0)
        return -1;
    if (timer != Py_None) {
        if (!PyCallable_Check(timer)) {
            PyErr_Format(PyExc_TypeError,
                         "timer must be callable or None, got %.100s",
                         Py_TYPE(timer)->tp_name);
            return -1;
        }
        self->timer = Py_NewRef(timer);
    }
    if (parse_sweep_interval(self, sweep_interval, ttl_seconds) < 0)
        return -1;
    if (name == Py_None)
        self->name = PyUnicode_FromFormat("cache-%lu", ++cache_counter);
    else if (PyUnicode_Check(name))
        self->name = Py_NewRef(name);
    else {
        PyErr_Format(PyExc_TypeError, "name must be a str or None, got %.100s",
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    return self->name == NULL ? -1 : 0;
}


static PyObject *
cache_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"maxsize", "ttl",  "stripes", "sweep_interval",
                               "timer",   "name", NULL};
    PyObject *maxsize, *ttl, *stripes = Py_None, *sweep_interval = Py_None;
    PyObject *timer = Py_None, *name = Py_None;
    pgs_cache_options options = {0};
    const char *utf8_name;
    CacheObject *self;
    size_t nstripes;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$OOOO:TTLCache",
                                     keywords, &maxsize, &ttl, &stripes,
                                     &sweep_interval, &timer, &name))
        return NULL;
    self = (CacheObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->state = pgs_state_from_type(type);
    if (self->state == NULL)
        goto error;
    if (parse_cache_args(self, maxsize, ttl, stripes, sweep_interval, timer,
                         name, &nstripes) < 0)
        goto error;

    options.maxsize =
        self->maxsize < 0 ? PGS_CACHE_UNBOUNDED : (size_t)self->maxsize;
    options.stripes = nstripes;
    options.ops = (pgs_cache_ops){
        .key_eq = key_eq_locked,
        .retain = retain_object,
        .release = release_object,
        .alloc = alloc_entry,
        .free = free_entry,
        .before_block = drop_gil,
        .after_block = take_gil,
    };
    rc = pgs_cache_create(&self->cache, &options);
    if (rc != PGS_OK) {
        pgs_raise_error(self->state, rc, "TTLCache");
        goto error;
    }
    utf8_name = PyUnicode_AsUTF8(self->name);
    if (utf8_name == NULL)
        goto error;
    self->registry_node = pgs_cache_registry_add(utf8_name, self->cache);
    if (self->registry_node == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    if (start_sweeper(self) < 0)
        goto error;
    return (PyObject *)self;

error:
    Py_DECREF(self);
    return NULL;
}


static int
visit_entry(void *key, void *value, void *arg)
{
    void **visit_arg = arg;
    visitproc visit = (visitproc)visit_arg[0];
    int rc;

    rc = visit((PyObject *)key, visit_arg[1]);
    if (rc == 0)
        rc = visit((PyObject *)value, visit_arg[1]);
    return rc;
}


static int
cache_traverse(PyObject *op, visitproc visit, void *arg)
{
    CacheObject *self = (CacheObject *)op;
    void *visit_arg[2] = {(void *)visit, arg};

    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->timer);
    if (self->cache != NULL)
        return pgs_cache_visit(self->cache, visit_entry, visit_arg);
    return 0;
}


static int
cache_clear_slot(PyObject *op)
{
    CacheObject *self = (CacheObject *)op;
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;

    if (self->cache != NULL) {
        pgs_cache_clear(self->cache, &garbage);
        release_garbage(self, &garbage);
    }
    Py_CLEAR(self->timer);
    return 0;
}


static void
cache_dealloc(PyObject *op)
{
    CacheObject *self = (CacheObject *)op;
    PyTypeObject *type = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs(op);
    stop_sweeper(self);
    if (self->registry_node != NULL) {
        pgs_cache_registry_remove(self->registry_node);
        self->registry_node = NULL;
    }
    if (self->cache != NULL) {
        pgs_cache_destroy(self->cache);
        self->cache = NULL;
    }
    Py_CLEAR(self->timer);
    Py_CLEAR(self->name);
    Py_CLEAR(self->ttl);
    type->tp_free(op);
    Py_DECREF(type);
}


static PyObject *
cache_repr(PyObject *op)
{
    CacheObject *self = (CacheObject *)op;

    if (self->maxsize < 0)
        return PyUnicode_FromFormat("<%s name=%R maxsize=None ttl=%R "
                                    "currsize=%zu%s>",
                                    Py_TYPE(op)->tp_name, self->name, self->ttl,
                                    pgs_cache_size(self->cache),
                                    self->closed ? " closed" : "");
    return PyUnicode_FromFormat(
        "<%s name=%R maxsize=%zd ttl=%R currsize=%zu%s>", Py_TYPE(op)->tp_name,
        self->name, self->maxsize, self->ttl, pgs_cache_size(self->cache),
        self->closed ? " closed" : "");
}


/* ---------------------------------------------------------------------
 * Attributes and type
 */

static PyObject *
cache_get_maxsize(PyObject *op, void *closure)
{
    CacheObject *self = (CacheObject *)op;

    (void)closure;
    if (self->maxsize < 0)
        Py_RETURN_NONE;
    return PyLong_FromSsize_t(self->maxsize);
}


static PyObject *
cache_get_currsize(PyObject *op, void *closure)
{
    Py_ssize_t n = live_size((CacheObject *)op);

    (void)closure;
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}


static PyObject *
cache_get_ttl(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((CacheObject *)op)->ttl);
}


static PyObject *
cache_get_name(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((CacheObject *)op)->name);
}


static PyObject *
cache_get_timer(PyObject *op, void *closure)
{
    CacheObject *self = (CacheObject *)op;

    (void)closure;
    return Py_NewRef(self->timer != NULL ? self->timer : Py_None);
}


static PyObject *
cache_get_stripes(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(pgs_cache_stripes(((CacheObject *)op)->cache));
}


static PyObject *
cache_get_sweep_interval(PyObject *op, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(((CacheObject *)op)->sweep_interval);
}


static PyObject *
cache_get_closed(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((CacheObject *)op)->closed);
}


static PyObject *
cache_get_sweeper_running(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((CacheObject *)op)->sweeper != NULL);
}


static PyMethodDef cache_methods[] = {
    {"get", (PyCFunction)(void (*)(void))cache_get, METH_FASTCALL,
     "get(key, default=None, /)\n--\n\n"
     "Return the live value under key, or default."},
    {"_get_uncounted", (PyCFunction)(void (*)(void))cache_get_uncounted,
     METH_FASTCALL,
     "_get_uncounted(key, default)\n--\n\n"
     "get() for a repeated lookup: a miss is not counted again."},
    {"set", (PyCFunction)(void (*)(void))cache_set,
     METH_FASTCALL | METH_KEYWORDS,
     "set(key, value, ttl=None)\n--\n\n"
     "Store value under key for ttl seconds (default: the cache's ttl)."},
    {"get_or_set", (PyCFunction)(void (*)(void))cache_get_or_set,
     METH_FASTCALL | METH_KEYWORDS,
     "get_or_set(key, factory, ttl=None)\n--\n\n"
     "Return the live value under key; on a miss, call factory() once for\n"
     "all concurrent callers and store its result."},
    {"pop", (PyCFunction)(void (*)(void))cache_pop, METH_FASTCALL,
     "pop(key, default=<unrepresentable>, /)\n--\n\n"
     "Remove key and return its value, or default; KeyError without one."},
    {"setdefault", (PyCFunction)(void (*)(void))cache_setdefault, METH_FASTCALL,
     "setdefault(key, default=None, /)\n--\n\n"
     "Return the live value under key; if there is none, store default."},
    {"ttl_of", cache_ttl_of, METH_O,
     "ttl_of(key, /)\n--\n\n"
     "Return the seconds left before the entry under key expires."},
    {"clear", cache_clear_method, METH_NOARGS,
     "clear()\n--\n\nRemove every entry."},
    {"expire", cache_expire, METH_NOARGS,
     "expire()\n--\n\nRemove expired entries now; return how many."},
    {"stats", cache_stats, METH_NOARGS,
     "stats()\n--\n\n"
     "Return a dict of hits, misses, expirations, evictions and entries."},
    {"close", cache_close, METH_NOARGS,
     "close()\n--\n\n"
     "Stop the sweeper and remove every entry; later use raises\n"
     "RuntimeError.  Calling it again does nothing."},
    {"_snapshot", cache_items_snapshot, METH_NOARGS,
     "Return a list of (key, value, remaining seconds) for live entries."},
    {"_stop_sweeper", cache_stop_sweeper, METH_NOARGS,
     "Stop the sweeper thread; entries then expire only lazily."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cache_getset[] = {
    {"maxsize", cache_get_maxsize, NULL,
     "Bound on the number of entries; None for no bound.", NULL},
    {"currsize", cache_get_currsize, NULL,
     "Live entries, the same as len(); expired entries it finds are "
     "removed.",
     NULL},
    {"ttl", cache_get_ttl, NULL, "Default time to live in seconds.", NULL},
    {"name", cache_get_name, NULL, "Name used in metrics.", NULL},
    {"timer", cache_get_timer, NULL,
     "The clock given at creation, or None for the monotonic clock.", NULL},
    {"stripes", cache_get_stripes, NULL, "Number of lock stripes.", NULL},
    {"sweep_interval", cache_get_sweep_interval, NULL,
     "Seconds between sweeps; 0 when no sweeper runs.", NULL},
    {"closed", cache_get_closed, NULL, "True after close().", NULL},
    {"_sweeper_running", cache_get_sweeper_running, NULL,
     "True while a sweeper thread belongs to this cache.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef cache_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(CacheObject, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot cache_slots[] = {
    {Py_tp_new, cache_new},
    {Py_tp_dealloc, cache_dealloc},
    {Py_tp_traverse, cache_traverse},
    {Py_tp_clear, cache_clear_slot},
    {Py_tp_repr, cache_repr},
    {Py_tp_iter, cache_iter},
    {Py_tp_methods, cache_methods},
    {Py_tp_getset, cache_getset},
    {Py_tp_members, cache_members},
    {Py_mp_subscript, cache_subscript},
    {Py_mp_ass_subscript, cache_ass_subscript},
    {Py_mp_length, cache_length},
    {Py_sq_contains, cache_contains},
    {Py_tp_doc, "TTLCache(maxsize, ttl, *, stripes=None, sweep_interval=None, "
                "timer=None, name=None)\n--\n\n"
                "A thread-safe, lock-striped mapping whose entries expire."},
    {0, NULL},
};

static PyType_Spec cache_spec = {
    .name = "pygamesvc._core.TTLCache",
    .basicsize = sizeof(CacheObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = cache_slots,
};


static PyObject *
disable_sweepers(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    sweepers_disabled = 1;
    Py_RETURN_NONE;
}


static PyMethodDef cache_functions[] = {
    {"_disable_cache_sweepers", disable_sweepers, METH_NOARGS,
     "Start no more sweeper threads (the interpreter is exiting)."},
    {NULL, NULL, 0, NULL},
};


int
pgs_cache_register(PyObject *module, pgs_state *state)
{
    state->cache_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &cache_spec, NULL);
    if (state->cache_type == NULL)
        return -1;
    if (PyModule_AddType(module, state->cache_type) < 0)
        return -1;
    if (PyModule_AddFunctions(module, cache_functions) < 0)
        return -1;
    state->cache_miss_method = PyUnicode_InternFromString("_get_or_set_miss");
    return state->cache_miss_method == NULL ? -1 : 0;
}
