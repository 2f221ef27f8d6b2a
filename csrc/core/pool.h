/*
 * pool.h - a bounded pool of worker threads running C jobs.
 *
 * DESIGN
 * A pool owns `workers` threads and a ring buffer of at most `capacity`
 * queued jobs.  Submitters push jobs and may wait for room until a deadline;
 * workers pop jobs in FIFO order and run them through a hook, so that the
 * Python binding can take the GIL once and run several jobs before handing it
 * back (see pgs_pool_try_pop).  Every job pushed is reported finished exactly
 * once with pgs_pool_task_done, which is what pgs_pool_wait_idle waits for.
 *
 * Capacity 0 means a hand-off: a push succeeds only while a worker is idle
 * and waiting for work.
 *
 * Lifetime: the pool is reference counted.  The creator holds one reference
 * and every live worker holds one.  pgs_pool_join waits for the workers to
 * exit; pgs_pool_abandon closes the pool, lets the workers finish the queue
 * on their own and drops the creator's reference, so the last worker to exit
 * frees the pool.
 *
 * Deadlines are absolute CLOCK_MONOTONIC nanoseconds (pgs_monotonic_ns);
 * PGS_WAIT_FOREVER waits without limit and PGS_NO_WAIT does not wait.
 */
#ifndef PGS_POOL_H
#define PGS_POOL_H

#include <stddef.h>
#include <stdint.h>

#define PGS_WAIT_FOREVER INT64_C(-1)
#define PGS_NO_WAIT INT64_C(0)

typedef struct pgs_job pgs_job;
typedef struct pgs_pool pgs_pool;

/* A job is a function and three words of payload, copied into the queue. */
struct pgs_job {
    void (*fn)(pgs_job *job);
    void *data[3];
};

typedef struct pgs_pool_hooks {
    void *ctx;
    /* Called on each worker thread before its first job and as it exits. */
    void (*thread_enter)(void *ctx);
    void (*thread_exit)(void *ctx);
    /*
     * Run one popped job.  The hook calls pgs_pool_task_done once for it and
     * once for every extra job it pops with pgs_pool_try_pop.  NULL means:
     * call job->fn(job), then pgs_pool_task_done(pool, 0).
     */
    void (*run)(void *ctx, pgs_pool *pool, pgs_job *job);
    /* Called once, with no lock held, just before the pool is freed. */
    void (*destroy)(void *ctx);
} pgs_pool_hooks;

typedef struct pgs_pool_options {
    size_t workers;          /* at least 1 */
    size_t capacity;         /* queued jobs at most; 0 is a hand-off */
    const char *thread_name; /* OS thread name, cut to 15 bytes; may be NULL */
    pgs_pool_hooks hooks;
} pgs_pool_options;

typedef struct pgs_pool_stats {
    size_t workers;     /* threads started and not yet exited */
    size_t queued;      /* jobs waiting in the queue */
    size_t running;     /* jobs popped and not yet reported done */
    size_t capacity;    /* the queue bound given at creation */
    uint64_t submitted; /* jobs accepted by pgs_pool_push */
    uint64_t completed; /* jobs reported done without failure */
    uint64_t failed;    /* jobs reported done with failure */
    uint64_t rejected;  /* pushes counted by pgs_pool_note_rejected */
} pgs_pool_stats;

/*
 * Create a pool and start its workers.  Returns PGS_OK and stores the pool
 * in *out (the caller owns one reference), PGS_EINVAL for zero workers,
 * PGS_ENOMEM, or PGS_ETHREAD when a thread could not be started (the threads
 * that did start are stopped and joined first).
 */
int pgs_pool_create(pgs_pool **out, const pgs_pool_options *options);

/*
 * Queue a copy of *job, waiting for room until deadline_ns.  Returns PGS_OK,
 * PGS_EFULL when full and deadline_ns is PGS_NO_WAIT, PGS_ETIMEDOUT when the
 * deadline passed, PGS_ECLOSED after pgs_pool_close or in a forked child, and
 * PGS_EDEADLK when full and called from one of this pool's own workers
 * (waiting there could block every worker forever).
 */
int pgs_pool_push(pgs_pool *pool, const pgs_job *job, int64_t deadline_ns);

/*
 * Pop the next queued job without waiting, for use inside the run hook.
 * Returns PGS_OK and fills *out, or PGS_EEMPTY.  The job counts as running.
 */
int pgs_pool_try_pop(pgs_pool *pool, pgs_job *out);

/* Report one popped job finished; failed is nonzero if it failed. */
void pgs_pool_task_done(pgs_pool *pool, int failed);

/* Count one rejected submission in the stats. */
void pgs_pool_note_rejected(pgs_pool *pool);

/*
 * Wait until no job is queued or running.  Returns PGS_OK, PGS_ETIMEDOUT,
 * PGS_EDEADLK when called from one of the pool's workers (the calling job
 * itself is running), or PGS_ECLOSED in a forked child.
 */
int pgs_pool_wait_idle(pgs_pool *pool, int64_t deadline_ns);

/*
 * Remove up to max queued jobs without running them and copy them to out.
 * Returns how many were removed; the caller disposes of them.
 */
size_t pgs_pool_drain(pgs_pool *pool, pgs_job *out, size_t max);

/* Refuse new jobs from now on; workers finish the queue, then exit. */
void pgs_pool_close(pgs_pool *pool);

/*
 * Wait until every worker has exited, then join the threads.  Returns
 * PGS_OK, PGS_ETIMEDOUT, PGS_EDEADLK from a worker of this pool, or
 * PGS_ECLOSED in a forked child.  Call pgs_pool_close first, or this waits
 * until the deadline.
 */
int pgs_pool_join(pgs_pool *pool, int64_t deadline_ns);

/* Take and drop a reference; the last release frees the pool. */
void pgs_pool_retain(pgs_pool *pool);
void pgs_pool_release(pgs_pool *pool);

/*
 * Close the pool, detach workers that were not joined and drop the caller's
 * reference.  The workers finish the queue and the last one frees the pool.
 * In a forked child the pool's memory is leaked instead: its lock may be held
 * by a thread that no longer exists.
 */
void pgs_pool_abandon(pgs_pool *pool);

/* Copy a consistent snapshot of the counters into *out. */
void pgs_pool_get_stats(pgs_pool *pool, pgs_pool_stats *out);

/* Nonzero if the pool was created before a fork() that led to this process. */
int pgs_pool_is_inherited(const pgs_pool *pool);

/* The pool whose worker is the calling thread, or NULL. */
pgs_pool *pgs_pool_current(void);

/* When the job that the calling worker popped last was queued, in
   monotonic ns (pgs_monotonic_ns); 0 on a thread that popped nothing. */
int64_t pgs_pool_last_enqueued_ns(void);

#endif
