/*
 * module.c - pygamesvc._core: multi-phase init and module state.
 */
#include "module.h"

#include <stddef.h>

#include "metrics.h"
#include "pgs_fork.h"


pgs_state *
pgs_state_from_type(PyTypeObject *type)
{
    PyObject *module = PyType_GetModuleByDef(type, &pgs_module_def);

    if (module == NULL)
        return NULL;
    return PyModule_GetState(module);
}


static int
module_exec(PyObject *module)
{
    pgs_state *state = PyModule_GetState(module);

    pgs_fork_install();
    if (pgs_errors_register(module, state) < 0)
        return -1;
    if (pgs_pool_register(module, state) < 0)
        return -1;
    if (pgs_cache_register(module, state) < 0)
        return -1;
    if (pgs_histogram_register(module, state) < 0)
        return -1;
    if (pgs_counter_register(module, state) < 0)
        return -1;
    if (pgs_sampler_register(module, state) < 0)
        return -1;
    if (pgs_gc_register(module, state) < 0)
        return -1;
    if (pgs_cache_metrics_register(module, state) < 0)
        return -1;
    if (pgs_allochook_register(module, state) < 0)
        return -1;
    return 0;
}


static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    pgs_state *state = PyModule_GetState(module);

    Py_VISIT(state->queue_full_error);
    Py_VISIT(state->pool_type);
    Py_VISIT(state->future_type);
    Py_VISIT(state->logger);
    Py_VISIT(state->histogram_type);
    Py_VISIT(state->histogram_child_type);
    Py_VISIT(state->counter_type);
    Py_VISIT(state->counter_child_type);
    Py_VISIT(state->str_cond);
    Py_VISIT(state->str_state);
    Py_VISIT(state->str_result);
    Py_VISIT(state->str_exception);
    Py_VISIT(state->state_running);
    Py_VISIT(state->state_finished);
    Py_VISIT(state->cache_type);
    Py_VISIT(state->cache_miss_method);
    return 0;
}


static int
module_clear(PyObject *module)
{
    pgs_state *state = PyModule_GetState(module);

    Py_CLEAR(state->queue_full_error);
    Py_CLEAR(state->pool_type);
    Py_CLEAR(state->future_type);
    Py_CLEAR(state->logger);
    Py_CLEAR(state->histogram_type);
    Py_CLEAR(state->histogram_child_type);
    Py_CLEAR(state->counter_type);
    Py_CLEAR(state->counter_child_type);
    Py_CLEAR(state->str_cond);
    Py_CLEAR(state->str_state);
    Py_CLEAR(state->str_result);
    Py_CLEAR(state->str_exception);
    Py_CLEAR(state->state_running);
    Py_CLEAR(state->state_finished);
    Py_CLEAR(state->cache_type);
    Py_CLEAR(state->cache_miss_method);
    return 0;
}


static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}


static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

PyModuleDef pgs_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pygamesvc._core",
    .m_doc = "C engine of pygamesvc: worker pool, cache and metrics.",
    .m_size = sizeof(pgs_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__core(void)
{
    return PyModuleDef_Init(&pgs_module_def);
}
