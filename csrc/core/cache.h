/*
 * cache.h - a lock-striped hash table with per-entry expiry and a size bound.
 *
 * DESIGN
 * Keys and values are opaque pointers.  The caller supplies the hash of each
 * key, and callbacks to compare keys and to retain and release keys and
 * values.  The cache is split into a power-of-two number of stripes; each
 * stripe has its own mutex, chained hash table, eviction queues and
 * frequency sketch, so operations on different stripes never contend.
 *
 * No callback that may run foreign code is called under a stripe lock:
 * - key_eq runs under the lock and must decide without running foreign code.
 *   It returns 1 (equal), 0 (not equal) or PGS_EAGAIN (cannot tell here).
 *   On PGS_EAGAIN the operation returns PGS_EAGAIN and the caller takes the
 *   slow path: pgs_cache_find_pinned pins the entries whose hash matches, the
 *   caller compares keys with no lock held, then calls an entry operation
 *   (pgs_cache_entry_get and friends), which re-checks that the entry is
 *   still in the table.
 * - retain runs under the lock (it must only take a reference).
 * - release never runs under a lock: operations unlink entries and old
 *   values into a pgs_cache_garbage, and the caller passes it to
 *   pgs_cache_garbage_release once it is ready to run release callbacks.
 *
 * Eviction: with a bound, each stripe holds at most its share of maxsize
 * (maxsize / stripes, the first maxsize % stripes stripes one more) and
 * follows a small W-TinyLFU: new entries enter a window LRU of 20% of the
 * stripe; entries leaving the window are admitted into a segmented LRU
 * (probation, protected) only if a 4-bit count-min sketch says they were
 * requested more often than the probation victim.
 *
 * Time: every call takes the current time `now` in nanoseconds from the
 * caller's clock, so tests can drive expiry without sleeping.  An entry is
 * live while now < its expiry time.
 *
 * Locking hooks: when a stripe lock is busy, the cache calls
 * hooks.before_block, waits for the lock to be free without taking it,
 * calls hooks.after_block and tries again.  So a caller that holds a global
 * interpreter lock can drop it for the wait, and never waits for it while
 * holding a stripe lock.
 */
#ifndef PGS_CACHE_H
#define PGS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "pgs_error.h"

#define PGS_CACHE_MAX_STRIPES 1024
#define PGS_CACHE_UNBOUNDED SIZE_MAX

typedef struct pgs_cache pgs_cache;
typedef struct pgs_cache_entry pgs_cache_entry;

typedef struct pgs_cache_ops {
    void *ctx;
    /* 1 if equal, 0 if not, PGS_EAGAIN if it cannot be decided under a lock.
       Identical pointers are equal without a call. */
    int (*key_eq)(void *ctx, const void *stored, const void *probe);
    void (*retain)(void *ctx, void *key_or_value);
    void (*release)(void *ctx, void *key_or_value);
    /* Entry memory; NULL for malloc/free.  free receives what alloc returned. */
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *block);
    /* See "Locking hooks" above; both NULL to wait with nothing released. */
    void *(*before_block)(void *ctx);
    void (*after_block)(void *ctx, void *token);
} pgs_cache_ops;

typedef struct pgs_cache_options {
    size_t maxsize; /* PGS_CACHE_UNBOUNDED for no bound; 0 stores nothing */
    size_t stripes; /* a power of two from 1 to PGS_CACHE_MAX_STRIPES */
    pgs_cache_ops ops;
} pgs_cache_options;

typedef struct pgs_cache_stats {
    uint64_t hits;        /* lookups that found a live entry */
    uint64_t misses;      /* lookups that found none */
    uint64_t expirations; /* entries removed because their time ran out */
    uint64_t evictions;   /* entries removed to respect maxsize */
    size_t entries;       /* entries stored, including expired ones not yet
                             removed */
    size_t maxsize;       /* the bound; PGS_CACHE_UNBOUNDED for none */
} pgs_cache_stats;

/*
 * Entries and values unlinked under a lock and not yet released.  Start
 * with PGS_CACHE_GARBAGE_INIT; one garbage may collect from several calls.
 */
typedef struct pgs_cache_garbage {
    pgs_cache_entry *entries; /* chained through the entry's hash link */
    void *values[4];          /* replaced values */
    size_t nvalues;
} pgs_cache_garbage;

#define PGS_CACHE_GARBAGE_INIT {NULL, {NULL, NULL, NULL, NULL}, 0}

/* A live entry copied out by pgs_cache_collect; key and value retained. */
typedef struct pgs_cache_item {
    void *key;
    void *value;
    int64_t expires_ns;
} pgs_cache_item;

/*
 * Create a cache.  Returns PGS_OK and stores it in *out, PGS_EINVAL for a
 * stripe count that is not a power of two in range, or PGS_ENOMEM.
 */
int pgs_cache_create(pgs_cache **out, const pgs_cache_options *options);

/*
 * Release every entry (calls release) and free the cache.  No other thread
 * may use the cache any more.
 */
void pgs_cache_destroy(pgs_cache *cache);

/* Run release on everything in *garbage and free unlinked entries; no lock
   is held.  *garbage is empty afterwards. */
void pgs_cache_garbage_release(pgs_cache *cache, pgs_cache_garbage *garbage);

/*
 * Look up a live entry.  Returns PGS_OK and stores the value in *value
 * (retained for the caller) and its expiry in *expires_ns if that is not
 * NULL; PGS_ENOTFOUND; or PGS_EAGAIN when key_eq could not decide.  Counts
 * a hit or a miss (not on PGS_EAGAIN).  An expired entry found on the way is
 * unlinked into *garbage.
 */
int pgs_cache_get(pgs_cache *cache, const void *key, uint64_t hash,
                  int64_t now, void **value, int64_t *expires_ns,
                  pgs_cache_garbage *garbage);

/*
 * Store value under key until expires_ns.  A live entry with an equal key
 * keeps its key and gets the new value (the old value goes to *garbage);
 * otherwise key and value are retained in a new entry, which may evict
 * another entry of the stripe into *garbage.  With only_if_absent, a live
 * entry is left alone and its value is stored in *existing (retained);
 * otherwise *existing, if not NULL, is set to NULL.  Returns PGS_OK,
 * PGS_ENOMEM or PGS_EAGAIN.  With maxsize 0 nothing is stored.
 */
int pgs_cache_set(pgs_cache *cache, void *key, uint64_t hash, void *value,
                  int64_t expires_ns, int64_t now, int only_if_absent,
                  void **existing, pgs_cache_garbage *garbage);

/*
 * Remove the live entry under key.  Returns PGS_OK and hands its value to
 * the caller through *value (which then owns that reference) or, if value
 * is NULL, to *garbage; PGS_ENOTFOUND; or PGS_EAGAIN.
 */
int pgs_cache_delete(pgs_cache *cache, const void *key, uint64_t hash,
                     int64_t now, void **value, pgs_cache_garbage *garbage);

/*
 * Slow path, step 1: pin up to max live entries whose hash matches and
 * store them in out.  Returns how many live entries match (which may be
 * more than max; then pin none, and call again with room for all).  Stores
 * the stripe's version in *version for pgs_cache_insert_checked.  Each
 * pinned entry stays valid until pgs_cache_unpin, and its key until then.
 */
size_t pgs_cache_find_pinned(pgs_cache *cache, uint64_t hash, int64_t now,
                             pgs_cache_entry **out, size_t max,
                             uint64_t *version, pgs_cache_garbage *garbage);

/* The key stored in a pinned entry; stays valid while the entry is pinned. */
void *pgs_cache_entry_key(const pgs_cache_entry *entry);

/* Drop the pins; entries unlinked meanwhile go to *garbage. */
void pgs_cache_unpin(pgs_cache *cache, pgs_cache_entry **entries, size_t n,
                     pgs_cache_garbage *garbage);

/*
 * Slow path, step 2: the same as pgs_cache_get, _set and _delete on one
 * pinned entry whose key the caller found equal.  They return PGS_EAGAIN if
 * the entry left the table since it was pinned; the caller then starts over.
 * pgs_cache_entry_get and _delete return PGS_ENOTFOUND if it expired;
 * pgs_cache_entry_set gives an expired entry the new value.
 */
int pgs_cache_entry_get(pgs_cache *cache, pgs_cache_entry *entry, int64_t now,
                        void **value, int64_t *expires_ns,
                        pgs_cache_garbage *garbage);
int pgs_cache_entry_set(pgs_cache *cache, pgs_cache_entry *entry, void *value,
                        int64_t expires_ns, int64_t now, int only_if_absent,
                        void **existing, pgs_cache_garbage *garbage);
int pgs_cache_entry_delete(pgs_cache *cache, pgs_cache_entry *entry,
                           int64_t now, void **value,
                           pgs_cache_garbage *garbage);

/*
 * Slow path, step 2 when no pinned key was equal: insert a new entry if the
 * stripe is unchanged since pgs_cache_find_pinned returned *version.
 * Returns PGS_OK, PGS_ENOMEM, or PGS_EAGAIN if the stripe changed.
 */
int pgs_cache_insert_checked(pgs_cache *cache, void *key, uint64_t hash,
                             void *value, int64_t expires_ns, int64_t now,
                             uint64_t version, pgs_cache_garbage *garbage);

/*
 * Count a hit or a miss found by the slow path (the fast path counts its
 * own).  pgs_cache_entry_get counts its hits and expirations itself.
 */
void pgs_cache_note_miss(pgs_cache *cache, uint64_t hash);

/*
 * Visit at most budget entries of each stripe, continuing where the last
 * sweep of that stripe stopped, and unlink expired ones into *garbage.
 * Returns how many expired.  Waits for busy stripe locks without calling
 * the locking hooks.
 */
size_t pgs_cache_sweep(pgs_cache *cache, int64_t now, size_t budget,
                       pgs_cache_garbage *garbage);

/* Unlink every expired entry into *garbage; returns how many. */
size_t pgs_cache_expire_all(pgs_cache *cache, int64_t now,
                            pgs_cache_garbage *garbage);

/* Unlink every entry into *garbage. */
void pgs_cache_clear(pgs_cache *cache, pgs_cache_garbage *garbage);

/*
 * Copy the live entries of one stripe into (*items)[0..*n), growing the
 * array with realloc as needed (*capacity is its size in items).  Keys and
 * values are retained.  Returns PGS_OK or PGS_ENOMEM (nothing retained).
 */
int pgs_cache_collect(pgs_cache *cache, size_t stripe, int64_t now,
                      pgs_cache_item **items, size_t *n, size_t *capacity);

/*
 * Call visit on every stored key and value, under each stripe's lock in
 * turn, until it returns nonzero; returns that value or 0.  visit must not
 * call back into the cache.
 */
int pgs_cache_visit(pgs_cache *cache,
                    int (*visit)(void *key, void *value, void *arg),
                    void *arg);

/* Entries stored, including expired ones not yet removed; takes no lock. */
size_t pgs_cache_size(pgs_cache *cache);

size_t pgs_cache_stripes(const pgs_cache *cache);
size_t pgs_cache_maxsize(const pgs_cache *cache);

/* Copy the counters; takes no lock, so the sum may be a moment stale. */
void pgs_cache_get_stats(pgs_cache *cache, pgs_cache_stats *out);

/*
 * Take, then release, every stripe lock (fork handlers: a child must not
 * inherit a lock held by a thread that does not exist there).  Waits
 * without calling the locking hooks.
 */
void pgs_cache_lock_all(pgs_cache *cache);
void pgs_cache_unlock_all(pgs_cache *cache);

#endif
