/*
 * cache_registry.h - the process-wide list of live TTLCache objects.
 *
 * pgs_cache_registry_foreach is the interface for the metrics sampler: it
 * runs on any thread, needs no GIL, and never waits for a stripe lock.
 * The other functions are for the cache binding.
 */
#ifndef PGS_CACHE_REGISTRY_H
#define PGS_CACHE_REGISTRY_H

#include "cache.h"

typedef void (*pgs_cache_visit_fn)(void *arg, const char *name,
                                   const pgs_cache_stats *stats);

/*
 * Call fn once for every live cache with its name and a snapshot of its
 * counters.  The registry's mutex is held during the calls, so fn must be
 * quick and must not create or free a cache; name is valid only during the
 * call.
 */
void pgs_cache_registry_foreach(pgs_cache_visit_fn fn, void *arg);

typedef struct cache_registry_node cache_registry_node;
struct cache_sweeper;

/* Add a cache under a copy of name; returns the node or NULL when out of
   memory. */
cache_registry_node *pgs_cache_registry_add(const char *name,
                                            pgs_cache *cache);

/* Remove and free a node; the cache is no longer visited afterwards. */
void pgs_cache_registry_remove(cache_registry_node *node);

/* Record the node's sweeper (or NULL) so that fork() handlers lock it. */
void pgs_cache_registry_set_sweeper(cache_registry_node *node,
                                    struct cache_sweeper *sweeper);

#endif
