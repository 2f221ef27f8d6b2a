/*
 * cache_registry.c - process-wide list of live caches; see
 * cache_registry.h.
 *
 * Lock order: registry_lock, then a sweeper's lock, then stripe locks in
 * index order.  Only the fork() handlers take more than registry_lock; they
 * take every lock so that a child never inherits one held by a thread that
 * does not exist there.  No thread waits for the GIL while holding any of
 * these locks, so a thread that holds the GIL may wait for them.
 */
#include "cache_registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache_sweeper.h"

struct cache_registry_node {
    char *name;
    pgs_cache *cache;
    cache_sweeper *sweeper;
    cache_registry_node *prev, *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_registry_node *registry_head;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;


static void
before_fork(void)
{
    cache_registry_node *node;

    pthread_mutex_lock(&registry_lock);
    for (node = registry_head; node != NULL; node = node->next) {
        if (node->sweeper != NULL)
            pgs_sweeper_lock(node->sweeper);
        pgs_cache_lock_all(node->cache);
    }
}


static void
after_fork(void)
{
    cache_registry_node *node;

    for (node = registry_head; node != NULL; node = node->next) {
        pgs_cache_unlock_all(node->cache);
        if (node->sweeper != NULL)
            pgs_sweeper_unlock(node->sweeper);
    }
    pthread_mutex_unlock(&registry_lock);
}


static void
install_fork_handlers(void)
{
    /* The forking thread took every lock, so it may release them in the
       child as well as in the parent. */
    pthread_atfork(before_fork, after_fork, after_fork);
}


cache_registry_node *
pgs_cache_registry_add(const char *name, pgs_cache *cache)
{
    cache_registry_node *node = calloc(1, sizeof(*node));

    pthread_once(&atfork_once, install_fork_handlers);
    if (node == NULL)
        return NULL;
    node->name = strdup(name);
    if (node->name == NULL) {
        free(node);
        return NULL;
    }
    node->cache = cache;
    pthread_mutex_lock(&registry_lock);
    node->next = registry_head;
    if (registry_head != NULL)
        registry_head->prev = node;
    registry_head = node;
    pthread_mutex_unlock(&registry_lock);
    return node;
}


void
pgs_cache_registry_remove(cache_registry_node *node)
{
    pthread_mutex_lock(&registry_lock);
    if (node->prev != NULL)
        node->prev->next = node->next;
    else
        registry_head = node->next;
    if (node->next != NULL)
        node->next->prev = node->prev;
    pthread_mutex_unlock(&registry_lock);
    free(node->name);
    free(node);
}


void
pgs_cache_registry_set_sweeper(cache_registry_node *node,
                               cache_sweeper *sweeper)
{
    pthread_mutex_lock(&registry_lock);
    node->sweeper = sweeper;
    pthread_mutex_unlock(&registry_lock);
}


void
pgs_cache_registry_foreach(pgs_cache_visit_fn fn, void *arg)
{
    cache_registry_node *node;
    pgs_cache_stats stats;

    pthread_mutex_lock(&registry_lock);
    for (node = registry_head; node != NULL; node = node->next) {
        pgs_cache_get_stats(node->cache, &stats);
        fn(arg, node->name, &stats);
    }
    pthread_mutex_unlock(&registry_lock);
}
