/*
 * metrics_counter.c - pygamesvc._core.Counter, the Python face of
 * counter.c, laid out like metrics_histogram.c.
 */
#include "metrics.h"

#include <math.h>

#include "counter.h"
#include "pgs_error.h"

#define DEFAULT_MAX_SERIES 1000

typedef struct {
    PyObject_HEAD pgs_counter *counter;
    pgs_counter_series *unlabelled; /* series 0 without labelnames */
    pgs_label_table labels;
    PyTypeObject *child_type;
} CounterObject;


/* Add inc()'s optional amount (default 1) to series; 0 or -1. */
static int
increment(pgs_counter_series *series, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *amount;
    long long whole;
    double value;
    int overflow;

    if (nargs == 0) {
        pgs_counter_inc(series, 1);
        return 0;
    }
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "inc() takes at most 1 argument, got %zd",
                     nargs);
        return -1;
    }
    amount = args[0];
    if (PyLong_CheckExact(amount)) {
        whole = PyLong_AsLongLongAndOverflow(amount, &overflow);
        if (overflow == 0 && whole >= 0) {
            pgs_counter_inc(series, (uint64_t)whole);
            return 0;
        }
        if (whole == -1 && PyErr_Occurred())
            return -1;
    }
    if (PyBool_Check(amount) ||
        !(PyFloat_Check(amount) || PyLong_Check(amount))) {
        PyErr_Format(PyExc_TypeError, "amount must be a number, got %.100s",
                     Py_TYPE(amount)->tp_name);
        return -1;
    }
    value = PyFloat_AsDouble(amount);
    if (value == -1.0 && PyErr_Occurred())
        return -1;
    if (!(value >= 0) || isinf(value)) {
        PyErr_Format(PyExc_ValueError,
                     "amount must be a finite non-negative number, because a "
                     "counter only goes up; got %R",
                     amount);
        return -1;
    }
    pgs_counter_add(series, value);
    return 0;
}


static PyObject *
child_inc(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    if (increment(((pgs_metric_child *)op)->series, args, nargs) < 0)
        return NULL;
    Py_RETURN_NONE;
}


static PyObject *
child_get_value(PyObject *op, void *closure)
{
    (void)closure;
    return PyFloat_FromDouble(
        pgs_counter_value(((pgs_metric_child *)op)->series));
}


static PyMethodDef child_methods[] = {
    {"inc", (PyCFunction)(void (*)(void))child_inc, METH_FASTCALL,
     "inc(amount=1, /)\n--\n\nAdd a non-negative amount."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef child_getset[] = {
    {"value", child_get_value, NULL, "The current total.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot child_slots[] = {
    {Py_tp_dealloc, pgs_metric_child_dealloc},
    {Py_tp_traverse, pgs_metric_child_traverse},
    {Py_tp_clear, pgs_metric_child_clear},
    {Py_tp_methods, child_methods},
    {Py_tp_getset, child_getset},
    {Py_tp_doc, "One label combination of a Counter; made by labels()."},
    {0, NULL},
};

static PyType_Spec child_spec = {
    .name = "pygamesvc._core.CounterChild",
    .basicsize = sizeof(pgs_metric_child),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = child_slots,
};


/* A pgs_add_series_fn for a CounterObject. */
static int
add_series(PyObject *op, void **series)
{
    pgs_counter *counter = ((CounterObject *)op)->counter;
    size_t index;
    int rc;

    rc = pgs_counter_add_series(counter, &index);
    if (rc == PGS_OK)
        *series = pgs_counter_series_at(counter, index);
    return rc;
}

static const pgs_metric_kind counter_kind = {
    .name = "Counter",
    .labels_name = "Counter.labels",
    .direct_call = "inc()",
    .add_series = add_series,
};


static PyObject *
counter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"labelnames", "max_series", NULL};
    PyObject *labelnames = NULL;
    Py_ssize_t max_series = DEFAULT_MAX_SERIES;
    CounterObject *self;
    pgs_state *state;
    void *series;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$On:Counter", keywords,
                                     &labelnames, &max_series))
        return NULL;
    state = pgs_state_from_type(type);
    if (state == NULL)
        return NULL;
    self = (CounterObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->child_type = (PyTypeObject *)Py_NewRef(state->counter_child_type);
    if (labelnames == NULL)
        labelnames = PyTuple_New(0);
    else
        Py_INCREF(labelnames);
    if (labelnames == NULL)
        goto error;
    rc = pgs_label_table_init(&self->labels, labelnames, max_series);
    Py_DECREF(labelnames);
    if (rc < 0)
        goto error;

    rc = pgs_counter_create(&self->counter, (size_t)self->labels.max_series);
    if (rc == PGS_OK && PyTuple_GET_SIZE(self->labels.labelnames) == 0) {
        rc = add_series((PyObject *)self, &series);
        if (rc == PGS_OK) {
            self->unlabelled = series;
            if (PyList_Append(self->labels.keys, self->labels.labelnames) < 0)
                goto error;
        }
    }
    if (rc != PGS_OK) {
        pgs_raise_error(state, rc, "Counter");
        goto error;
    }
    return (PyObject *)self;

error:
    Py_DECREF(self);
    return NULL;
}


static PyObject *
counter_inc(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    CounterObject *self = (CounterObject *)op;

    if (self->unlabelled == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "this Counter has labels %R; call labels(...).inc()",
                     self->labels.labelnames);
        return NULL;
    }
    if (increment(self->unlabelled, args, nargs) < 0)
        return NULL;
    Py_RETURN_NONE;
}


static PyObject *
counter_labels(PyObject *op, PyObject *const *args, size_t nargsf,
               PyObject *kwnames)
{
    CounterObject *self = (CounterObject *)op;

    return pgs_label_child(op, &self->labels, self->child_type, &counter_kind,
                           args, nargsf, kwnames);
}


static PyObject *
counter_collect_series(PyObject *op, PyObject *unused)
{
    CounterObject *self = (CounterObject *)op;
    pgs_counter_series *series;
    PyObject *result, *item;
    Py_ssize_t i, n;

    (void)unused;
    n = PyList_GET_SIZE(self->labels.keys);
    result = PyList_New(0);
    if (result == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        series = pgs_counter_series_at(self->counter, (size_t)i);
        if (series == NULL)
            continue;
        item = Py_BuildValue("(Od)", PyList_GET_ITEM(self->labels.keys, i),
                             pgs_counter_value(series));
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(item);
    }
    return result;
}


static PyObject *
counter_get_labelnames(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((CounterObject *)op)->labels.labelnames);
}


static PyObject *
counter_get_max_series(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((CounterObject *)op)->labels.max_series);
}


static int
counter_traverse(PyObject *op, visitproc visit, void *arg)
{
    CounterObject *self = (CounterObject *)op;

    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->child_type);
    return pgs_label_table_traverse(&self->labels, visit, arg);
}


static int
counter_clear(PyObject *op)
{
    CounterObject *self = (CounterObject *)op;

    Py_CLEAR(self->child_type);
    pgs_label_table_clear(&self->labels);
    return 0;
}


static void
counter_dealloc(PyObject *op)
{
    CounterObject *self = (CounterObject *)op;
    PyTypeObject *type = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    counter_clear(op);
    pgs_counter_free(self->counter);
    type->tp_free(op);
    Py_DECREF(type);
}


static PyMethodDef counter_methods[] = {
    {"inc", (PyCFunction)(void (*)(void))counter_inc, METH_FASTCALL,
     "inc(amount=1, /)\n--\n\n"
     "Add a non-negative amount; only for a Counter without labelnames."},
    {"labels", (PyCFunction)(void (*)(void))counter_labels,
     METH_FASTCALL | METH_KEYWORDS,
     "labels(*values, **named_values)\n--\n\n"
     "Return the child for one combination of label values (all str)."},
    {"_collect_series", counter_collect_series, METH_NOARGS,
     "Return [(label_values, value), ...]."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef counter_getset[] = {
    {"labelnames", counter_get_labelnames, NULL, "Label names.", NULL},
    {"max_series", counter_get_max_series, NULL,
     "Most label combinations that labels() accepts.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot counter_slots[] = {
    {Py_tp_new, counter_new},
    {Py_tp_dealloc, counter_dealloc},
    {Py_tp_traverse, counter_traverse},
    {Py_tp_clear, counter_clear},
    {Py_tp_methods, counter_methods},
    {Py_tp_getset, counter_getset},
    {Py_tp_doc,
     "Counter(*, labelnames=(), max_series=1000)\n--\n\n"
     "A monotonic total kept in C atomics; see pygamesvc.metrics.Counter."},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    .name = "pygamesvc._core.Counter",
    .basicsize = sizeof(CounterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = counter_slots,
};


int
pgs_counter_register(PyObject *module, pgs_state *state)
{
    state->counter_child_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &child_spec, NULL);
    if (state->counter_child_type == NULL)
        return -1;
    state->counter_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &counter_spec, NULL);
    if (state->counter_type == NULL)
        return -1;
    if (PyModule_AddType(module, state->counter_child_type) < 0)
        return -1;
    return PyModule_AddType(module, state->counter_type);
}
