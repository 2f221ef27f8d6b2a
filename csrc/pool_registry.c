/*
 * pool_registry.c - process-wide list of live pools; see pool_registry.h.
 *
 * Lock rules: registry_lock protects the list links only.  It is never held
 * while waiting for a pool or while Python code runs, and fork() handlers
 * take it so that a child never inherits it locked.
 */
#include "pool_registry.h"

#include <pthread.h>
#include <stdlib.h>

#include "pgs_error.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static pool_ctx *registry_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;


static void
before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}


static void
after_fork_in_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}


static void
after_fork_in_child(void)
{
    /* The parent's pools have no threads here; forget them. */
    pthread_mutex_init(&registry_lock, NULL);
    registry_head = NULL;
}


static void
install_fork_handlers(void)
{
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}


void
pgs_registry_add(pool_ctx *ctx)
{
    pthread_once(&atfork_once, install_fork_handlers);
    pthread_mutex_lock(&registry_lock);
    ctx->prev = NULL;
    ctx->next = registry_head;
    if (registry_head != NULL)
        registry_head->prev = ctx;
    registry_head = ctx;
    pthread_mutex_unlock(&registry_lock);
}


void
pgs_registry_remove(pool_ctx *ctx)
{
    pthread_mutex_lock(&registry_lock);
    if (ctx->prev != NULL)
        ctx->prev->next = ctx->next;
    else if (registry_head == ctx)
        registry_head = ctx->next;
    if (ctx->next != NULL)
        ctx->next->prev = ctx->prev;
    ctx->prev = ctx->next = NULL;
    pthread_mutex_unlock(&registry_lock);
}


static int
join_one(void *pool, int64_t deadline_ns)
{
    return pgs_pool_join(pool, deadline_ns);
}


int
pgs_registry_shutdown_all(void)
{
    pgs_pool **pools = NULL;
    size_t n = 0, cap = 0, i;
    int rc = 0;
    pool_ctx *ctx;

    /* Take a reference to each pool so none is freed while we wait. */
    pthread_mutex_lock(&registry_lock);
    for (ctx = registry_head; ctx != NULL; ctx = ctx->next) {
        if (n == cap) {
            size_t new_cap = cap ? cap * 2 : 8;
            pgs_pool **grown = realloc(pools, new_cap * sizeof(*pools));

            if (grown == NULL)
                break;
            pools = grown;
            cap = new_cap;
        }
        pgs_pool_retain(ctx->pool);
        pools[n++] = ctx->pool;
    }
    pthread_mutex_unlock(&registry_lock);

    for (i = 0; i < n; i++) {
        pgs_pool_close(pools[i]);
        if (rc == 0 &&
            pgs_wait_released(join_one, pools[i], PGS_WAIT_FOREVER) ==
                PGS_WAIT_INTERRUPTED)
            rc = -1;
    }
    /* Releasing may free a pool, which takes registry_lock: do it last. */
    for (i = 0; i < n; i++)
        pgs_pool_release(pools[i]);
    free(pools);
    return rc;
}
