/*
 * pool_task.h - Python tasks as pool jobs, shared by the WorkerPool type
 * (pool_binding.c) and the worker-side hooks (pool_worker.c).
 */
#ifndef PGS_POOL_TASK_H
#define PGS_POOL_TASK_H

#include "module.h"
#include "pool.h"
#include "pool_registry.h"

/* Tasks a worker runs per GIL hold before it lets other threads in. */
#define BATCH_MAX 64

/*
 * Payload of a task job.  data[0] is the callable for execute() and the
 * Future for submit(); data[1] is NULL or a tuple whose first item is the
 * callable followed by its positional arguments; data[2] is NULL or a dict
 * of keyword arguments.  pgs_job.fn tells the two kinds apart.
 */
enum { TASK_HEAD = 0, TASK_ARGS = 1, TASK_KWARGS = 2 };

/* Job kind markers.  The worker calls neither; it compares pgs_job.fn. */
void pgs_execute_kind(pgs_job *job);
void pgs_submit_kind(pgs_job *job);

/* Drop the job's references; needs the GIL. */
void pgs_clear_job(pgs_job *job);

/* Release the Python objects of a pool context; needs the GIL. */
void pgs_release_ctx_objects(pool_ctx *ctx);

/* The core hooks of every WorkerPool; see pgs_pool_hooks in pool.h. */
void pgs_ctx_thread_enter(void *arg);
void pgs_ctx_thread_exit(void *arg);
void pgs_ctx_run(void *arg, pgs_pool *pool, pgs_job *job);
void pgs_ctx_destroy(void *arg);

#endif
