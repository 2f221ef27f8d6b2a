/*
 * metrics_histogram.c - pygamesvc._core.Histogram, the Python face of
 * histogram.c.
 *
 * A Histogram owns a core histogram and a label table.  labels() returns a
 * HistogramChild bound to one series; the child's observe() and the
 * unlabelled Histogram.observe() go straight to the core's atomics.  The
 * Python-level pygamesvc.metrics.Histogram adds the name, the help text and
 * the prometheus_client collector protocol.
 */
#include "metrics.h"

#include <math.h>

#include "pgs_error.h"

#define DEFAULT_MAX_SERIES 1000

typedef struct {
    PyObject_HEAD pgs_histogram *histogram;
    pgs_histogram_series *unlabelled; /* series 0 without labelnames */
    pgs_label_table labels;
    PyTypeObject *child_type;
} HistogramObject;


static int
value_as_double(PyObject *value, double *out)
{
    if (PyFloat_CheckExact(value)) {
        *out = PyFloat_AS_DOUBLE(value);
        return 0;
    }
    if (PyBool_Check(value) || !(PyFloat_Check(value) || PyLong_Check(value))) {
        PyErr_Format(PyExc_TypeError, "value must be a number, got %.100s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    *out = PyFloat_AsDouble(value);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}


static PyObject *
child_observe(PyObject *op, PyObject *value)
{
    pgs_metric_child *self = (pgs_metric_child *)op;
    double amount;

    if (value_as_double(value, &amount) < 0)
        return NULL;
    pgs_histogram_observe(((HistogramObject *)self->parent)->histogram,
                          self->series, amount);
    Py_RETURN_NONE;
}


static PyMethodDef child_methods[] = {
    {"observe", child_observe, METH_O,
     "observe(value, /)\n--\n\nCount value (seconds, bytes, ...) in its "
     "bucket."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot child_slots[] = {
    {Py_tp_dealloc, pgs_metric_child_dealloc},
    {Py_tp_traverse, pgs_metric_child_traverse},
    {Py_tp_clear, pgs_metric_child_clear},
    {Py_tp_methods, child_methods},
    {Py_tp_doc, "One label combination of a Histogram; made by labels()."},
    {0, NULL},
};

static PyType_Spec child_spec = {
    .name = "pygamesvc._core.HistogramChild",
    .basicsize = sizeof(pgs_metric_child),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = child_slots,
};


/* Parse buckets (None or an iterable of increasing finite numbers, with an
   optional trailing +Inf) into bounds; returns the count or -1. */
static Py_ssize_t
parse_bounds(PyObject *buckets, double *bounds)
{
    PyObject *sequence, *item;
    Py_ssize_t n, i;
    double bound;

    if (buckets == Py_None) {
        for (i = 0; i < (Py_ssize_t)pgs_histogram_default_nbounds; i++)
            bounds[i] = pgs_histogram_default_bounds[i];
        return (Py_ssize_t)pgs_histogram_default_nbounds;
    }
    sequence =
        PySequence_Fast(buckets, "buckets must be an iterable of numbers");
    if (sequence == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(sequence);
    for (i = 0; i < n; i++) {
        item = PySequence_Fast_GET_ITEM(sequence, i);
        if (value_as_double(item, &bound) < 0)
            goto error;
        if (i == n - 1 && isinf(bound) && bound > 0) {
            n--; /* the +Inf bucket is always there */
            break;
        }
        if (i >= PGS_HISTOGRAM_MAX_BOUNDS) {
            PyErr_Format(PyExc_ValueError,
                         "buckets must have at most %d finite bounds, got %zd",
                         PGS_HISTOGRAM_MAX_BOUNDS, n);
            goto error;
        }
        if (!isfinite(bound) || (i > 0 && !(bound > bounds[i - 1]))) {
            PyErr_Format(PyExc_ValueError,
                         "buckets must be finite and strictly increasing, got "
                         "%R at index %zd",
                         item, i);
            goto error;
        }
        bounds[i] = bound;
    }
    Py_DECREF(sequence);
    return n;

error:
    Py_DECREF(sequence);
    return -1;
}


/* A pgs_add_series_fn for a HistogramObject. */
static int
add_series(PyObject *op, void **series)
{
    pgs_histogram *histogram = ((HistogramObject *)op)->histogram;
    size_t index;
    int rc;

    rc = pgs_histogram_add_series(histogram, &index);
    if (rc == PGS_OK)
        *series = pgs_histogram_series_at(histogram, index);
    return rc;
}

static const pgs_metric_kind histogram_kind = {
    .name = "Histogram",
    .labels_name = "Histogram.labels",
    .direct_call = "observe()",
    .add_series = add_series,
};


static PyObject *
histogram_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"labelnames", "buckets", "max_series", NULL};
    PyObject *labelnames = NULL, *buckets = Py_None;
    Py_ssize_t max_series = DEFAULT_MAX_SERIES, nbounds;
    double bounds[PGS_HISTOGRAM_MAX_BOUNDS];
    HistogramObject *self;
    pgs_state *state;
    void *series;
    int rc;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOn:Histogram", keywords,
                                     &labelnames, &buckets, &max_series))
        return NULL;
    state = pgs_state_from_type(type);
    if (state == NULL)
        return NULL;
    nbounds = parse_bounds(buckets, bounds);
    if (nbounds < 0)
        return NULL;
    self = (HistogramObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->child_type = (PyTypeObject *)Py_NewRef(state->histogram_child_type);
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

    rc = pgs_histogram_create(&self->histogram, bounds, (size_t)nbounds,
                              (size_t)self->labels.max_series);
    if (rc == PGS_OK && PyTuple_GET_SIZE(self->labels.labelnames) == 0) {
        rc = add_series((PyObject *)self, &series);
        if (rc == PGS_OK) {
            self->unlabelled = series;
            if (PyList_Append(self->labels.keys, self->labels.labelnames) < 0)
                goto error;
        }
    }
    if (rc != PGS_OK) {
        pgs_raise_error(state, rc, "Histogram");
        goto error;
    }
    return (PyObject *)self;

error:
    Py_DECREF(self);
    return NULL;
}


static PyObject *
histogram_observe(PyObject *op, PyObject *value)
{
    HistogramObject *self = (HistogramObject *)op;
    double amount;

    if (self->unlabelled == NULL) {
        PyErr_Format(PyExc_ValueError,
                     "this Histogram has labels %R; call "
                     "labels(...).observe(value)",
                     self->labels.labelnames);
        return NULL;
    }
    if (value_as_double(value, &amount) < 0)
        return NULL;
    pgs_histogram_observe(self->histogram, self->unlabelled, amount);
    Py_RETURN_NONE;
}


static PyObject *
histogram_labels(PyObject *op, PyObject *const *args, size_t nargsf,
                 PyObject *kwnames)
{
    HistogramObject *self = (HistogramObject *)op;

    return pgs_label_child(op, &self->labels, self->child_type, &histogram_kind,
                           args, nargsf, kwnames);
}


static PyObject *
histogram_collect_series(PyObject *op, PyObject *unused)
{
    HistogramObject *self = (HistogramObject *)op;
    size_t nbounds = pgs_histogram_nbounds(self->histogram);
    pgs_histogram_snapshot snapshot;
    pgs_histogram_series *series;
    PyObject *result, *item;
    Py_ssize_t i, n;

    (void)unused;
    /* Series i belongs to keys[i]; keys grow only with the GIL held. */
    n = PyList_GET_SIZE(self->labels.keys);
    result = PyList_New(0);
    if (result == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        series = pgs_histogram_series_at(self->histogram, (size_t)i);
        if (series == NULL)
            continue;
        pgs_histogram_read(self->histogram, series, &snapshot);
        item = Py_BuildValue("(ONd)", PyList_GET_ITEM(self->labels.keys, i),
                             pgs_snapshot_buckets(&snapshot, nbounds),
                             snapshot.sum);
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
histogram_get_bounds(PyObject *op, void *closure)
{
    HistogramObject *self = (HistogramObject *)op;
    size_t n = pgs_histogram_nbounds(self->histogram), i;
    const double *bounds = pgs_histogram_bounds(self->histogram);
    PyObject *tuple = PyTuple_New((Py_ssize_t)n), *value;

    (void)closure;
    if (tuple == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        value = PyFloat_FromDouble(bounds[i]);
        if (value == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, (Py_ssize_t)i, value);
    }
    return tuple;
}


static PyObject *
histogram_get_labelnames(PyObject *op, void *closure)
{
    (void)closure;
    return Py_NewRef(((HistogramObject *)op)->labels.labelnames);
}


static PyObject *
histogram_get_max_series(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((HistogramObject *)op)->labels.max_series);
}


static int
histogram_traverse(PyObject *op, visitproc visit, void *arg)
{
    HistogramObject *self = (HistogramObject *)op;

    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->child_type);
    return pgs_label_table_traverse(&self->labels, visit, arg);
}


static int
histogram_clear(PyObject *op)
{
    HistogramObject *self = (HistogramObject *)op;

    Py_CLEAR(self->child_type);
    pgs_label_table_clear(&self->labels);
    return 0;
}


static void
histogram_dealloc(PyObject *op)
{
    HistogramObject *self = (HistogramObject *)op;
    PyTypeObject *type = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    histogram_clear(op);
    /* Children hold a reference to this object, so none can observe now. */
    pgs_histogram_free(self->histogram);
    type->tp_free(op);
    Py_DECREF(type);
}


static PyMethodDef histogram_methods[] = {
    {"observe", histogram_observe, METH_O,
     "observe(value, /)\n--\n\n"
     "Count value in its bucket; only for a Histogram without labelnames."},
    {"labels", (PyCFunction)(void (*)(void))histogram_labels,
     METH_FASTCALL | METH_KEYWORDS,
     "labels(*values, **named_values)\n--\n\n"
     "Return the child for one combination of label values (all str)."},
    {"_collect_series", histogram_collect_series, METH_NOARGS,
     "Return [(label_values, cumulative_bucket_counts, sum), ...]."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef histogram_getset[] = {
    {"bounds", histogram_get_bounds, NULL,
     "Upper bucket bounds, without the implied +Inf.", NULL},
    {"labelnames", histogram_get_labelnames, NULL, "Label names.", NULL},
    {"max_series", histogram_get_max_series, NULL,
     "Most label combinations that labels() accepts.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot histogram_slots[] = {
    {Py_tp_new, histogram_new},
    {Py_tp_dealloc, histogram_dealloc},
    {Py_tp_traverse, histogram_traverse},
    {Py_tp_clear, histogram_clear},
    {Py_tp_methods, histogram_methods},
    {Py_tp_getset, histogram_getset},
    {Py_tp_doc,
     "Histogram(*, labelnames=(), buckets=None, max_series=1000)\n--\n\n"
     "Bucket counts and a sum kept in C atomics; see "
     "pygamesvc.metrics.Histogram."},
    {0, NULL},
};

static PyType_Spec histogram_spec = {
    .name = "pygamesvc._core.Histogram",
    .basicsize = sizeof(HistogramObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = histogram_slots,
};


int
pgs_histogram_register(PyObject *module, pgs_state *state)
{
    state->histogram_child_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &child_spec, NULL);
    if (state->histogram_child_type == NULL)
        return -1;
    state->histogram_type =
        (PyTypeObject *)PyType_FromModuleAndSpec(module, &histogram_spec, NULL);
    if (state->histogram_type == NULL)
        return -1;
    if (PyModule_AddType(module, state->histogram_child_type) < 0)
        return -1;
    return PyModule_AddType(module, state->histogram_type);
}
