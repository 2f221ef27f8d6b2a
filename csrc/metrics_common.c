/*
 * metrics_common.c - label tables and helpers shared by the metric types.
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "pgs_error.h"

const double pgs_short_seconds_bounds[] = {
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
    0.0025,  0.005,    0.01,    0.025,  0.05,    0.1,    0.25,
    0.5,     1.0,      2.5,     5.0,    10.0,
};
const size_t pgs_short_seconds_nbounds =
    sizeof(pgs_short_seconds_bounds) / sizeof(double);


int
pgs_label_table_init(pgs_label_table *table, PyObject *labelnames,
                     Py_ssize_t max_series)
{
    Py_ssize_t i;

    if (!PyTuple_Check(labelnames)) {
        PyErr_Format(PyExc_TypeError,
                     "labelnames must be a tuple of str, got %.100s",
                     Py_TYPE(labelnames)->tp_name);
        return -1;
    }
    for (i = 0; i < PyTuple_GET_SIZE(labelnames); i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(labelnames, i))) {
            PyErr_Format(PyExc_TypeError,
                         "labelnames must contain only str, got %.100s at "
                         "index %zd",
                         Py_TYPE(PyTuple_GET_ITEM(labelnames, i))->tp_name, i);
            return -1;
        }
    }
    if (max_series < 1) {
        PyErr_Format(PyExc_ValueError,
                     "max_series must be a positive int, got %zd", max_series);
        return -1;
    }
    table->labelnames = Py_NewRef(labelnames);
    table->children = PyDict_New();
    table->keys = PyList_New(0);
    table->max_series = PyTuple_GET_SIZE(labelnames) == 0 ? 1 : max_series;
    if (table->children == NULL || table->keys == NULL)
        return -1;
    return 0;
}


int
pgs_label_table_traverse(pgs_label_table *table, visitproc visit, void *arg)
{
    Py_VISIT(table->labelnames);
    Py_VISIT(table->children);
    Py_VISIT(table->keys);
    return 0;
}


void
pgs_label_table_clear(pgs_label_table *table)
{
    Py_CLEAR(table->labelnames);
    Py_CLEAR(table->children);
    Py_CLEAR(table->keys);
}


static int
check_label_value(PyObject *value, PyObject *name, const char *metric)
{
    if (PyUnicode_Check(value))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s label %R must be a str, got %.100s",
                 metric, name, Py_TYPE(value)->tp_name);
    return -1;
}


PyObject *
pgs_label_key(pgs_label_table *table, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames, const char *metric)
{
    Py_ssize_t nnames = PyTuple_GET_SIZE(table->labelnames);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *key, *name;
    Py_ssize_t i, j;

    if (nargs + nkw != nnames || (nargs > 0 && nkw > 0)) {
        PyErr_Format(PyExc_ValueError,
                     "%s labels() takes values for %R, either all by "
                     "position or all by name; got %zd positional and %zd "
                     "named values",
                     metric, table->labelnames, nargs, nkw);
        return NULL;
    }
    key = PyTuple_New(nnames);
    if (key == NULL)
        return NULL;
    for (i = 0; i < nargs; i++) {
        if (check_label_value(args[i], PyTuple_GET_ITEM(table->labelnames, i),
                              metric) < 0)
            goto error;
        PyTuple_SET_ITEM(key, i, Py_NewRef(args[i]));
    }
    /* Named values: place each at the position of its label name. */
    for (j = 0; j < nkw; j++) {
        name = PyTuple_GET_ITEM(kwnames, j);
        for (i = 0; i < nnames; i++) {
            if (PyUnicode_Compare(name,
                                  PyTuple_GET_ITEM(table->labelnames, i)) == 0)
                break;
        }
        if (i == nnames || PyTuple_GET_ITEM(key, i) != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "%s labels() got an unknown or repeated label %R; "
                         "expected the names %R",
                         metric, name, table->labelnames);
            goto error;
        }
        if (check_label_value(args[j], name, metric) < 0)
            goto error;
        PyTuple_SET_ITEM(key, i, Py_NewRef(args[j]));
    }
    return key;

error:
    Py_DECREF(key);
    return NULL;
}


int
pgs_metric_child_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((pgs_metric_child *)op)->parent);
    return 0;
}


int
pgs_metric_child_clear(PyObject *op)
{
    Py_CLEAR(((pgs_metric_child *)op)->parent);
    return 0;
}


void
pgs_metric_child_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);

    PyObject_GC_UnTrack(op);
    pgs_metric_child_clear(op);
    type->tp_free(op);
    Py_DECREF(type);
}


/* Make the child for a key not seen before; returns a new reference. */
static PyObject *
add_child(PyObject *metric, pgs_label_table *table, PyTypeObject *child_type,
          const pgs_metric_kind *kind, PyObject *key)
{
    pgs_metric_child *child;
    void *series;
    int rc;

    if (PyList_GET_SIZE(table->keys) >= table->max_series) {
        PyErr_Format(PyExc_ValueError,
                     "%s already has max_series=%zd label combinations, so "
                     "%R was rejected; map unbounded values (paths, ids) to "
                     "a fixed set first",
                     kind->name, table->max_series, key);
        return NULL;
    }
    rc = kind->add_series(metric, &series);
    if (rc != PGS_OK)
        return pgs_raise_error(pgs_state_from_type(Py_TYPE(metric)), rc,
                               kind->labels_name);
    child = PyObject_GC_New(pgs_metric_child, child_type);
    if (child == NULL)
        return NULL;
    child->parent = Py_NewRef(metric);
    child->series = series;
    PyObject_GC_Track(child);
    if (PyDict_SetItem(table->children, key, (PyObject *)child) < 0 ||
        PyList_Append(table->keys, key) < 0) {
        Py_DECREF(child);
        return NULL;
    }
    return (PyObject *)child;
}


PyObject *
pgs_label_child(PyObject *metric, pgs_label_table *table,
                PyTypeObject *child_type, const pgs_metric_kind *kind,
                PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *key, *child;

    key = pgs_label_key(table, args, PyVectorcall_NARGS(nargsf), kwnames,
                        kind->name);
    if (key == NULL)
        return NULL;
    if (PyTuple_GET_SIZE(key) == 0) {
        Py_DECREF(key);
        PyErr_Format(PyExc_ValueError,
                     "this %s has no labelnames; call %s on it directly",
                     kind->name, kind->direct_call);
        return NULL;
    }
    child = PyDict_GetItemWithError(table->children, key);
    if (child != NULL)
        Py_INCREF(child);
    else if (!PyErr_Occurred())
        child = add_child(metric, table, child_type, kind, key);
    Py_DECREF(key);
    return child;
}


void *
pgs_readings_add(pgs_readings *readings, const char *name)
{
    char *item;

    if (readings->failed)
        return NULL;
    if (readings->n == readings->cap) {
        size_t cap = readings->cap ? readings->cap * 2 : 8;
        void *grown = realloc(readings->items, cap * readings->item_size);

        if (grown == NULL) {
            readings->failed = 1;
            return NULL;
        }
        readings->items = grown;
        readings->cap = cap;
    }
    item = (char *)readings->items + readings->n * readings->item_size;
    /* Cut the name as the sampler cuts its gauge labels, so that a long
       name labels the counters and the gauges alike.  The item's first
       member is its name, so item converts to a pointer to it. */
    *(char **)item = strndup(name, pgs_sampler_label_length(name));
    if (*(char **)item == NULL) {
        readings->failed = 1;
        return NULL;
    }
    readings->n++;
    return item;
}


void
pgs_readings_free(pgs_readings *readings)
{
    size_t i;

    for (i = 0; i < readings->n; i++)
        free(*(char **)((char *)readings->items + i * readings->item_size));
    free(readings->items);
}


PyObject *
pgs_readings_to_list(pgs_readings *readings,
                     PyObject *(*to_dict)(const void *item))
{
    PyObject *result = NULL, *item;
    size_t i;

    if (readings->failed)
        PyErr_NoMemory();
    else
        result = PyList_New(0);
    for (i = 0; result != NULL && i < readings->n; i++) {
        item = to_dict((const char *)readings->items + i * readings->item_size);
        if (item == NULL || PyList_Append(result, item) < 0)
            Py_CLEAR(result);
        Py_XDECREF(item);
    }
    pgs_readings_free(readings);
    return result;
}


PyObject *
pgs_snapshot_buckets(const pgs_histogram_snapshot *snapshot, size_t nbounds)
{
    PyObject *list = PyList_New((Py_ssize_t)nbounds + 1), *count;
    size_t i;

    if (list == NULL)
        return NULL;
    for (i = 0; i <= nbounds; i++) {
        count = PyLong_FromUnsignedLongLong(snapshot->cumulative[i]);
        if (count == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, count);
    }
    return list;
}
