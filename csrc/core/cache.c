/*
 * cache.c - lock-striped expiring cache; see cache.h for the design.
 *
 * Lock rules: each stripe's mutex protects everything in that stripe (hash
 * chains, eviction queues, sketch, sweep cursor, version) and the fields of
 * its entries except key, which never changes while an entry exists.
 * Functions named *_locked expect the stripe's mutex to be held.  No
 * function takes two stripe locks at once, except pgs_cache_lock_all, which
 * takes them in index order.  The counters are relaxed atomics, written
 * under the lock and read without it.
 */
#include "cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MIN_BUCKETS 8
/* Bounded stripes allocate buckets for their capacity up to this many at
   creation, so that filling a stripe rarely rehashes. */
#define PREALLOC_BUCKETS_MAX ((size_t)1 << 16)
#define SKETCH_MIN_WORDS 8
#define SKETCH_MAX_WORDS ((size_t)1 << 22)
/* The sketch halves every counter after this many increments per entry of
   capacity, so old popularity fades. */
#define SKETCH_PERIOD_PER_ENTRY 10
/* Share of a stripe given to the window LRU.  On the cache2k web traces
   (e-commerce object accesses), 20% beat exact LRU at every size tried
   from 137 to 5,121 entries, while 1% fell behind it below ~200 entries. */
#define WINDOW_PERCENT 20

typedef struct queue_link {
    struct queue_link *prev, *next;
} queue_link;

enum where {
    IN_NONE = 0, /* unlinked: in a garbage list or only pinned */
    IN_WINDOW,
    IN_PROBATION,
    IN_PROTECTED,
};

struct pgs_cache_entry {
    pgs_cache_entry *chain; /* next in the bucket, or in a garbage list */
    queue_link link;        /* position in the stripe's queue */
    void *key;
    void *value;
    uint64_t hash; /* the caller's hash, mixed */
    int64_t expires_ns;
    uint32_t pins;
    uint8_t where; /* enum where */
};

typedef struct stripe {
    _Alignas(64) pthread_mutex_t lock;
    pgs_cache_entry **buckets;
    size_t mask; /* number of buckets - 1 */
    atomic_size_t count;
    size_t capacity; /* PGS_CACHE_UNBOUNDED: no queues, no sketch */
    size_t window_cap, protected_cap;
    size_t window_len, protected_len;
    queue_link window, probation, protected;
    uint64_t *sketch; /* 16 four-bit counters per word */
    size_t sketch_mask;
    size_t sketch_additions, sketch_period;
    size_t sweep_cursor;
    uint64_t version; /* bumped on every insert and unlink */
    atomic_uint_least64_t hits, misses, expirations, evictions;
} stripe;

struct pgs_cache {
    pgs_cache_ops ops;
    size_t maxsize;
    size_t nstripes;
    unsigned stripe_shift; /* 64 - log2(nstripes); unused for 1 stripe */
    stripe *stripes;
};


/* ---------------------------------------------------------------------
 * Small helpers
 */

/* The splitmix64 finalizer: callers' hashes may be weak (CPython hashes
 * small ints to themselves), and stripe, bucket and sketch all need
 * well-spread bits. */
static inline uint64_t
mix_hash(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}


static inline stripe *
stripe_for(pgs_cache *cache, uint64_t mixed)
{
    if (cache->nstripes == 1)
        return cache->stripes;
    return &cache->stripes[mixed >> cache->stripe_shift];
}


static inline void
bump(atomic_uint_least64_t *counter)
{
    /* Only the stripe's lock holder writes, so load + store is enough. */
    atomic_store_explicit(counter,
                          atomic_load_explicit(counter, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}


static inline void
set_count(stripe *s, size_t value)
{
    atomic_store_explicit(&s->count, value, memory_order_relaxed);
}


static inline size_t
get_count(stripe *s)
{
    return atomic_load_explicit(&s->count, memory_order_relaxed);
}


/* Take a stripe lock, dropping the caller's outer lock (through the hooks)
   while it waits; see "Locking hooks" in cache.h. */
static void
stripe_lock(pgs_cache *cache, stripe *s)
{
    void *token;

    while (pthread_mutex_trylock(&s->lock) != 0) {
        if (cache->ops.before_block == NULL) {
            pthread_mutex_lock(&s->lock);
            return;
        }
        token = cache->ops.before_block(cache->ops.ctx);
        pthread_mutex_lock(&s->lock);
        pthread_mutex_unlock(&s->lock);
        cache->ops.after_block(cache->ops.ctx, token);
    }
}


static inline void
stripe_unlock(stripe *s)
{
    pthread_mutex_unlock(&s->lock);
}


static void *
entry_alloc(pgs_cache *cache)
{
    if (cache->ops.alloc != NULL)
        return cache->ops.alloc(cache->ops.ctx, sizeof(pgs_cache_entry));
    return malloc(sizeof(pgs_cache_entry));
}


static size_t
next_pow2(size_t n)
{
    size_t p = 1;

    while (p < n && p < ((size_t)1 << (sizeof(size_t) * 8 - 2)))
        p <<= 1;
    return p;
}


/* ---------------------------------------------------------------------
 * Queues (doubly linked, circular, with the stripe's node as sentinel)
 */

static inline void
queue_init(queue_link *head)
{
    head->prev = head->next = head;
}


static inline void
queue_push_front(queue_link *head, queue_link *node)
{
    node->prev = head;
    node->next = head->next;
    head->next->prev = node;
    head->next = node;
}


static inline void
queue_remove(queue_link *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
}


static inline pgs_cache_entry *
queue_back(queue_link *head)
{
    if (head->prev == head)
        return NULL;
    return (pgs_cache_entry *)((char *)head->prev -
                               offsetof(pgs_cache_entry, link));
}


/* ---------------------------------------------------------------------
 * Frequency sketch: a count-min sketch of 4-bit counters, 4 per key
 */

static const uint64_t sketch_seeds[4] = {
    UINT64_C(0x97cb3127e8e6b1a5), UINT64_C(0xc2b2ae3d27d4eb4f),
    UINT64_C(0x165667b19e3779f9), UINT64_C(0x9e3779b97f4a7c15),
};


static unsigned
sketch_frequency_locked(const stripe *s, uint64_t mixed)
{
    unsigned minimum = 15, counter;
    uint64_t k;
    int i;

    for (i = 0; i < 4; i++) {
        k = (mixed ^ sketch_seeds[i]) * sketch_seeds[(i + 1) & 3];
        counter = (unsigned)(s->sketch[(k >> 28) & s->sketch_mask] >>
                             ((k >> 60) * 4)) & 15;
        if (counter < minimum)
            minimum = counter;
    }
    return minimum;
}


static void
sketch_increment_locked(stripe *s, uint64_t mixed)
{
    uint64_t k, *word;
    unsigned shift;
    size_t i;

    if (s->sketch == NULL)
        return;
    for (i = 0; i < 4; i++) {
        k = (mixed ^ sketch_seeds[i]) * sketch_seeds[(i + 1) & 3];
        word = &s->sketch[(k >> 28) & s->sketch_mask];
        shift = (unsigned)(k >> 60) * 4;
        if (((*word >> shift) & 15) != 15)
            *word += (uint64_t)1 << shift;
    }
    if (++s->sketch_additions >= s->sketch_period) {
        for (i = 0; i <= s->sketch_mask; i++)
            s->sketch[i] = (s->sketch[i] >> 1) & UINT64_C(0x7777777777777777);
        s->sketch_additions /= 2;
    }
}


/* ---------------------------------------------------------------------
 * Table and policy, all under the stripe lock
 */

/* Find the slot that points at e in its bucket. */
static pgs_cache_entry **
slot_of_locked(stripe *s, pgs_cache_entry *e)
{
    pgs_cache_entry **slot = &s->buckets[e->hash & s->mask];

    while (*slot != e) {
        assert(*slot != NULL);
        slot = &(*slot)->chain;
    }
    return slot;
}


static void
policy_remove_locked(stripe *s, pgs_cache_entry *e)
{
    if (s->capacity == PGS_CACHE_UNBOUNDED)
        return;
    queue_remove(&e->link);
    if (e->where == IN_WINDOW)
        s->window_len--;
    else if (e->where == IN_PROTECTED)
        s->protected_len--;
}


/* Unlink the entry at *slot; it goes to garbage unless pinned.  The counter
   (expirations or evictions) is bumped if given. */
static void
unlink_locked(stripe *s, pgs_cache_entry **slot, atomic_uint_least64_t *counter,
              pgs_cache_garbage *garbage)
{
    pgs_cache_entry *e = *slot;

    *slot = e->chain;
    policy_remove_locked(s, e);
    e->where = IN_NONE;
    set_count(s, get_count(s) - 1);
    s->version++;
    if (counter != NULL)
        bump(counter);
    if (e->pins == 0) {
        e->chain = garbage->entries;
        garbage->entries = e;
    }
}


/* Move an entry that was just read or written to the front of its queue;
   a second hit in probation promotes it to protected. */
static void
policy_touch_locked(stripe *s, pgs_cache_entry *e)
{
    pgs_cache_entry *demoted;

    if (s->capacity == PGS_CACHE_UNBOUNDED)
        return;
    queue_remove(&e->link);
    switch (e->where) {
    case IN_WINDOW:
        queue_push_front(&s->window, &e->link);
        break;
    case IN_PROBATION:
        e->where = IN_PROTECTED;
        s->protected_len++;
        queue_push_front(&s->protected, &e->link);
        if (s->protected_len > s->protected_cap) {
            demoted = queue_back(&s->protected);
            queue_remove(&demoted->link);
            s->protected_len--;
            demoted->where = IN_PROBATION;
            queue_push_front(&s->probation, &demoted->link);
        }
        break;
    default:
        queue_push_front(&s->protected, &e->link);
        break;
    }
}


static void
evict_locked(stripe *s, pgs_cache_entry *e, int64_t now,
             pgs_cache_garbage *garbage)
{
    unlink_locked(s, slot_of_locked(s, e),
                  e->expires_ns <= now ? &s->expirations : &s->evictions,
                  garbage);
}


/*
 * Bring the stripe back within its capacity after an insert.  Entries that
 * overflow the window are candidates for the main queues: while the stripe
 * is over capacity, the candidate and the probation victim (or the
 * protected one when probation is empty) compete, and the one the sketch
 * has seen less often is evicted; ties evict the candidate.
 */
static void
enforce_capacity_locked(stripe *s, int64_t now, pgs_cache_garbage *garbage)
{
    pgs_cache_entry *candidate, *victim;

    while (s->window_len > s->window_cap) {
        candidate = queue_back(&s->window);
        queue_remove(&candidate->link);
        s->window_len--;
        candidate->where = IN_PROBATION;
        queue_push_front(&s->probation, &candidate->link);
        if (get_count(s) <= s->capacity)
            continue;
        victim = queue_back(&s->probation);
        if (victim == candidate) /* probation held only the candidate */
            victim = queue_back(&s->protected);
        if (victim == NULL ||
            candidate->expires_ns <= now ||
            (victim->expires_ns > now &&
             sketch_frequency_locked(s, candidate->hash) <=
                 sketch_frequency_locked(s, victim->hash)))
            evict_locked(s, candidate, now, garbage);
        else
            evict_locked(s, victim, now, garbage);
    }
    while (get_count(s) > s->capacity) {
        victim = queue_back(&s->probation);
        if (victim == NULL)
            victim = queue_back(&s->protected);
        if (victim == NULL)
            victim = queue_back(&s->window);
        evict_locked(s, victim, now, garbage);
    }
}


/* Double the bucket array; on allocation failure keep the old one, which
   only makes chains longer. */
static void
grow_locked(stripe *s)
{
    size_t old_n = s->mask + 1, new_n = old_n * 2, i;
    pgs_cache_entry **buckets = calloc(new_n, sizeof(*buckets));
    pgs_cache_entry *e, *next;

    if (buckets == NULL)
        return;
    /* TODO: rehash incrementally; this pass is proportional to the
       stripe's size, a latency spike while an unbounded cache grows. */
    for (i = 0; i < old_n; i++) {
        for (e = s->buckets[i]; e != NULL; e = next) {
            next = e->chain;
            e->chain = buckets[e->hash & (new_n - 1)];
            buckets[e->hash & (new_n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = buckets;
    s->mask = new_n - 1;
    s->sweep_cursor = 0;
}


/*
 * Find the live entry whose key equals key.  Returns it, or NULL with *rc
 * set to PGS_ENOTFOUND or PGS_EAGAIN (key_eq could not decide for some
 * entry).  An equal entry that expired is unlinked on the way.
 */
static pgs_cache_entry *
find_locked(pgs_cache *cache, stripe *s, const void *key, uint64_t mixed,
            int64_t now, int *rc, pgs_cache_garbage *garbage)
{
    pgs_cache_entry **slot = &s->buckets[mixed & s->mask], *e;
    int undecided = 0, equal;

    while ((e = *slot) != NULL) {
        if (e->hash == mixed) {
            equal = e->key == key ? 1
                                  : cache->ops.key_eq(cache->ops.ctx, e->key, key);
            if (equal == 1) {
                if (e->expires_ns > now)
                    return e;
                unlink_locked(s, slot, &s->expirations, garbage);
                *rc = PGS_ENOTFOUND;
                return NULL;
            }
            if (equal != 0)
                undecided = 1;
        }
        slot = &e->chain;
    }
    *rc = undecided ? PGS_EAGAIN : PGS_ENOTFOUND;
    return NULL;
}


static int
insert_locked(pgs_cache *cache, stripe *s, void *key, uint64_t mixed,
              void *value, int64_t expires_ns, int64_t now,
              pgs_cache_garbage *garbage)
{
    pgs_cache_entry *e, **bucket;

    if (s->capacity == 0)
        return PGS_OK;
    e = entry_alloc(cache);
    if (e == NULL)
        return PGS_ENOMEM;
    cache->ops.retain(cache->ops.ctx, key);
    cache->ops.retain(cache->ops.ctx, value);
    e->key = key;
    e->value = value;
    e->hash = mixed;
    e->expires_ns = expires_ns;
    e->pins = 0;
    e->where = IN_WINDOW;
    bucket = &s->buckets[mixed & s->mask];
    e->chain = *bucket;
    *bucket = e;
    set_count(s, get_count(s) + 1);
    s->version++;
    if (s->capacity == PGS_CACHE_UNBOUNDED) {
        if (get_count(s) > s->mask + 1)
            grow_locked(s);
        return PGS_OK;
    }
    queue_push_front(&s->window, &e->link);
    s->window_len++;
    enforce_capacity_locked(s, now, garbage);
    if (get_count(s) > s->mask + 1)
        grow_locked(s);
    return PGS_OK;
}


static void
replace_value_locked(pgs_cache *cache, pgs_cache_entry *e, void *value,
                     int64_t expires_ns, pgs_cache_garbage *garbage)
{
    cache->ops.retain(cache->ops.ctx, value);
    assert(garbage->nvalues < sizeof(garbage->values) / sizeof(void *));
    garbage->values[garbage->nvalues++] = e->value;
    e->value = value;
    e->expires_ns = expires_ns;
}


/* ---------------------------------------------------------------------
 * Creation and teardown
 */

static int
stripe_init(stripe *s, size_t capacity)
{
    size_t buckets = MIN_BUCKETS, words, main_cap;

    memset(s, 0, sizeof(*s));
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return PGS_ENOMEM;
    s->capacity = capacity;
    queue_init(&s->window);
    queue_init(&s->probation);
    queue_init(&s->protected);
    if (capacity != PGS_CACHE_UNBOUNDED && capacity > 0) {
        buckets = next_pow2(capacity);
        if (buckets > PREALLOC_BUCKETS_MAX)
            buckets = PREALLOC_BUCKETS_MAX;
        if (buckets < MIN_BUCKETS)
            buckets = MIN_BUCKETS;
        s->window_cap = capacity * WINDOW_PERCENT / 100;
        if (s->window_cap == 0)
            s->window_cap = 1;
        main_cap = capacity - s->window_cap;
        s->protected_cap = main_cap - main_cap / 5;
        /* About eight counters per entry of capacity. */
        words = next_pow2(capacity) / 2;
        if (words < SKETCH_MIN_WORDS)
            words = SKETCH_MIN_WORDS;
        if (words > SKETCH_MAX_WORDS)
            words = SKETCH_MAX_WORDS;
        s->sketch = calloc(words, sizeof(uint64_t));
        if (s->sketch == NULL)
            goto nomem;
        s->sketch_mask = words - 1;
        s->sketch_period = capacity * SKETCH_PERIOD_PER_ENTRY;
        if (s->sketch_period < 64)
            s->sketch_period = 64;
    }
    s->buckets = calloc(buckets, sizeof(*s->buckets));
    if (s->buckets == NULL)
        goto nomem;
    s->mask = buckets - 1;
    return PGS_OK;

nomem:
    free(s->sketch);
    pthread_mutex_destroy(&s->lock);
    return PGS_ENOMEM;
}


static void
stripe_fini(stripe *s)
{
    free(s->buckets);
    free(s->sketch);
    pthread_mutex_destroy(&s->lock);
}


int
pgs_cache_create(pgs_cache **out, const pgs_cache_options *options)
{
    size_t n = options->stripes, i, share, capacity;
    pgs_cache *cache;
    unsigned bits = 0;

    if (n == 0 || n > PGS_CACHE_MAX_STRIPES || (n & (n - 1)) != 0)
        return PGS_EINVAL;
    if (options->ops.key_eq == NULL || options->ops.retain == NULL ||
        options->ops.release == NULL ||
        (options->ops.alloc == NULL) != (options->ops.free == NULL) ||
        (options->ops.before_block == NULL) != (options->ops.after_block == NULL))
        return PGS_EINVAL;
    cache = calloc(1, sizeof(*cache));
    if (cache == NULL)
        return PGS_ENOMEM;
    cache->stripes = aligned_alloc(_Alignof(stripe), n * sizeof(stripe));
    if (cache->stripes == NULL) {
        free(cache);
        return PGS_ENOMEM;
    }
    cache->ops = options->ops;
    cache->maxsize = options->maxsize;
    cache->nstripes = n;
    while (((size_t)1 << bits) < n)
        bits++;
    cache->stripe_shift = 64 - bits;

    share = options->maxsize / n;
    for (i = 0; i < n; i++) {
        capacity = PGS_CACHE_UNBOUNDED;
        if (options->maxsize != PGS_CACHE_UNBOUNDED)
            capacity = share + (i < options->maxsize % n ? 1 : 0);
        if (stripe_init(&cache->stripes[i], capacity) != PGS_OK) {
            while (i-- > 0)
                stripe_fini(&cache->stripes[i]);
            free(cache->stripes);
            free(cache);
            return PGS_ENOMEM;
        }
    }
    *out = cache;
    return PGS_OK;
}


void
pgs_cache_destroy(pgs_cache *cache)
{
    pgs_cache_garbage garbage = PGS_CACHE_GARBAGE_INIT;
    size_t i;

    pgs_cache_clear(cache, &garbage);
    pgs_cache_garbage_release(cache, &garbage);
    for (i = 0; i < cache->nstripes; i++)
        stripe_fini(&cache->stripes[i]);
    free(cache->stripes);
    free(cache);
}


void
pgs_cache_garbage_release(pgs_cache *cache, pgs_cache_garbage *garbage)
{
    /* A release callback may free the cache itself: use copies. */
    pgs_cache_ops ops = cache->ops;
    pgs_cache_entry *e = garbage->entries, *next;
    size_t nvalues = garbage->nvalues, i;
    void *values[sizeof(garbage->values) / sizeof(void *)];

    memcpy(values, garbage->values, sizeof(values));
    garbage->entries = NULL;
    garbage->nvalues = 0;
    for (; e != NULL; e = next) {
        next = e->chain;
        ops.release(ops.ctx, e->key);
        if (e->value != NULL)
            ops.release(ops.ctx, e->value);
        if (ops.free != NULL)
            ops.free(ops.ctx, e);
        else
            free(e);
    }
    for (i = 0; i < nvalues; i++)
        ops.release(ops.ctx, values[i]);
}


/* ---------------------------------------------------------------------
 * Fast path
 */

int
pgs_cache_get(pgs_cache *cache, const void *key, uint64_t hash, int64_t now,
              void **value, int64_t *expires_ns, pgs_cache_garbage *garbage)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    pgs_cache_entry *e;
    int rc = PGS_OK;

    stripe_lock(cache, s);
    e = find_locked(cache, s, key, mixed, now, &rc, garbage);
    if (e != NULL) {
        policy_touch_locked(s, e);
        bump(&s->hits);
        if (value != NULL) {
            cache->ops.retain(cache->ops.ctx, e->value);
            *value = e->value;
        }
        if (expires_ns != NULL)
            *expires_ns = e->expires_ns;
    }
    else if (rc == PGS_ENOTFOUND) {
        bump(&s->misses);
    }
    if (rc != PGS_EAGAIN)
        sketch_increment_locked(s, mixed);
    stripe_unlock(s);
    return rc;
}


int
pgs_cache_set(pgs_cache *cache, void *key, uint64_t hash, void *value,
              int64_t expires_ns, int64_t now, int only_if_absent,
              void **existing, pgs_cache_garbage *garbage)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    pgs_cache_entry *e;
    int rc = PGS_OK;

    if (existing != NULL)
        *existing = NULL;
    stripe_lock(cache, s);
    e = find_locked(cache, s, key, mixed, now, &rc, garbage);
    if (e != NULL) {
        if (only_if_absent) {
            cache->ops.retain(cache->ops.ctx, e->value);
            *existing = e->value;
        }
        else {
            replace_value_locked(cache, e, value, expires_ns, garbage);
        }
        policy_touch_locked(s, e);
        rc = PGS_OK;
    }
    else if (rc == PGS_ENOTFOUND) {
        rc = insert_locked(cache, s, key, mixed, value, expires_ns, now,
                           garbage);
    }
    if (rc != PGS_EAGAIN)
        sketch_increment_locked(s, mixed);
    stripe_unlock(s);
    return rc;
}


int
pgs_cache_delete(pgs_cache *cache, const void *key, uint64_t hash,
                 int64_t now, void **value, pgs_cache_garbage *garbage)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    pgs_cache_entry *e;
    int rc = PGS_OK;

    stripe_lock(cache, s);
    e = find_locked(cache, s, key, mixed, now, &rc, garbage);
    if (e != NULL) {
        if (value != NULL) {
            *value = e->value;
            e->value = NULL;
        }
        unlink_locked(s, slot_of_locked(s, e), NULL, garbage);
    }
    stripe_unlock(s);
    return rc;
}


/* ---------------------------------------------------------------------
 * Slow path: compare keys with no lock held
 */

size_t
pgs_cache_find_pinned(pgs_cache *cache, uint64_t hash, int64_t now,
                      pgs_cache_entry **out, size_t max, uint64_t *version,
                      pgs_cache_garbage *garbage)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    pgs_cache_entry **slot, *e;
    size_t n = 0;

    stripe_lock(cache, s);
    slot = &s->buckets[mixed & s->mask];
    while ((e = *slot) != NULL) {
        if (e->hash == mixed && e->expires_ns <= now) {
            unlink_locked(s, slot, &s->expirations, garbage);
            continue;
        }
        if (e->hash == mixed) {
            if (n < max)
                out[n] = e;
            n++;
        }
        slot = &e->chain;
    }
    if (n <= max) {
        for (size_t i = 0; i < n; i++)
            out[i]->pins++;
    }
    *version = s->version;
    stripe_unlock(s);
    return n;
}


void *
pgs_cache_entry_key(const pgs_cache_entry *entry)
{
    return entry->key;
}


void
pgs_cache_unpin(pgs_cache *cache, pgs_cache_entry **entries, size_t n,
                pgs_cache_garbage *garbage)
{
    pgs_cache_entry *e;
    stripe *s;
    size_t i;

    for (i = 0; i < n; i++) {
        e = entries[i];
        s = stripe_for(cache, e->hash);
        stripe_lock(cache, s);
        if (--e->pins == 0 && e->where == IN_NONE) {
            e->chain = garbage->entries;
            garbage->entries = e;
        }
        stripe_unlock(s);
    }
}


int
pgs_cache_entry_get(pgs_cache *cache, pgs_cache_entry *e, int64_t now,
                    void **value, int64_t *expires_ns,
                    pgs_cache_garbage *garbage)
{
    stripe *s = stripe_for(cache, e->hash);
    int rc = PGS_OK;

    stripe_lock(cache, s);
    if (e->where == IN_NONE) {
        rc = PGS_EAGAIN;
    }
    else if (e->expires_ns <= now) {
        unlink_locked(s, slot_of_locked(s, e), &s->expirations, garbage);
        bump(&s->misses);
        rc = PGS_ENOTFOUND;
    }
    else {
        policy_touch_locked(s, e);
        bump(&s->hits);
        if (value != NULL) {
            cache->ops.retain(cache->ops.ctx, e->value);
            *value = e->value;
        }
        if (expires_ns != NULL)
            *expires_ns = e->expires_ns;
    }
    if (rc != PGS_EAGAIN)
        sketch_increment_locked(s, e->hash);
    stripe_unlock(s);
    return rc;
}


int
pgs_cache_entry_set(pgs_cache *cache, pgs_cache_entry *e, void *value,
                    int64_t expires_ns, int64_t now, int only_if_absent,
                    void **existing, pgs_cache_garbage *garbage)
{
    stripe *s = stripe_for(cache, e->hash);
    int rc = PGS_OK;

    if (existing != NULL)
        *existing = NULL;
    stripe_lock(cache, s);
    if (e->where == IN_NONE) {
        rc = PGS_EAGAIN;
    }
    else {
        if (only_if_absent && e->expires_ns > now) {
            cache->ops.retain(cache->ops.ctx, e->value);
            *existing = e->value;
        }
        else {
            replace_value_locked(cache, e, value, expires_ns, garbage);
        }
        policy_touch_locked(s, e);
        sketch_increment_locked(s, e->hash);
    }
    stripe_unlock(s);
    return rc;
}


int
pgs_cache_entry_delete(pgs_cache *cache, pgs_cache_entry *e, int64_t now,
                       void **value, pgs_cache_garbage *garbage)
{
    stripe *s = stripe_for(cache, e->hash);
    int rc = PGS_OK;

    stripe_lock(cache, s);
    if (e->where == IN_NONE) {
        rc = PGS_EAGAIN;
    }
    else if (e->expires_ns <= now) {
        unlink_locked(s, slot_of_locked(s, e), &s->expirations, garbage);
        rc = PGS_ENOTFOUND;
    }
    else {
        if (value != NULL) {
            *value = e->value;
            e->value = NULL;
        }
        unlink_locked(s, slot_of_locked(s, e), NULL, garbage);
    }
    stripe_unlock(s);
    return rc;
}


int
pgs_cache_insert_checked(pgs_cache *cache, void *key, uint64_t hash,
                         void *value, int64_t expires_ns, int64_t now,
                         uint64_t version, pgs_cache_garbage *garbage)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    int rc;

    stripe_lock(cache, s);
    if (s->version != version) {
        rc = PGS_EAGAIN;
    }
    else {
        rc = insert_locked(cache, s, key, mixed, value, expires_ns, now,
                           garbage);
        sketch_increment_locked(s, mixed);
    }
    stripe_unlock(s);
    return rc;
}


void
pgs_cache_note_miss(pgs_cache *cache, uint64_t hash)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);

    stripe_lock(cache, s);
    bump(&s->misses);
    sketch_increment_locked(s, mixed);
    stripe_unlock(s);
}


/* ---------------------------------------------------------------------
 * Whole-cache operations
 */

/* Unlink the expired entries of one bucket; returns how many it visited. */
static size_t
expire_bucket_locked(stripe *s, size_t bucket, int64_t now, size_t *expired,
                     pgs_cache_garbage *garbage)
{
    pgs_cache_entry **slot = &s->buckets[bucket], *e;
    size_t visited = 0;

    while ((e = *slot) != NULL) {
        visited++;
        if (e->expires_ns <= now) {
            unlink_locked(s, slot, &s->expirations, garbage);
            (*expired)++;
        }
        else {
            slot = &e->chain;
        }
    }
    return visited;
}


size_t
pgs_cache_sweep(pgs_cache *cache, int64_t now, size_t budget,
                pgs_cache_garbage *garbage)
{
    size_t expired = 0, visited, scanned, i;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        pthread_mutex_lock(&s->lock);
        /* An empty bucket costs one unit of budget, so a sparse table
           cannot make a tick scan more than `budget` buckets. */
        visited = 0;
        for (scanned = 0; scanned <= s->mask && visited < budget; scanned++) {
            s->sweep_cursor = (s->sweep_cursor + 1) & s->mask;
            visited += 1 + expire_bucket_locked(s, s->sweep_cursor, now,
                                                &expired, garbage);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return expired;
}


size_t
pgs_cache_expire_all(pgs_cache *cache, int64_t now, pgs_cache_garbage *garbage)
{
    size_t expired = 0, i, b;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        stripe_lock(cache, s);
        for (b = 0; b <= s->mask; b++)
            expire_bucket_locked(s, b, now, &expired, garbage);
        stripe_unlock(s);
    }
    return expired;
}


void
pgs_cache_clear(pgs_cache *cache, pgs_cache_garbage *garbage)
{
    size_t i, b;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        stripe_lock(cache, s);
        for (b = 0; b <= s->mask; b++) {
            while (s->buckets[b] != NULL)
                unlink_locked(s, &s->buckets[b], NULL, garbage);
        }
        stripe_unlock(s);
    }
}


int
pgs_cache_collect(pgs_cache *cache, size_t index, int64_t now,
                  pgs_cache_item **items, size_t *n, size_t *capacity)
{
    stripe *s = &cache->stripes[index];
    pgs_cache_item *grown;
    pgs_cache_entry *e;
    size_t needed, b;

    for (;;) {
        stripe_lock(cache, s);
        needed = *n + get_count(s);
        if (needed <= *capacity)
            break;
        stripe_unlock(s);
        grown = realloc(*items, needed * sizeof(**items));
        if (grown == NULL)
            return PGS_ENOMEM;
        *items = grown;
        *capacity = needed;
    }
    for (b = 0; b <= s->mask; b++) {
        for (e = s->buckets[b]; e != NULL; e = e->chain) {
            if (e->expires_ns <= now)
                continue;
            cache->ops.retain(cache->ops.ctx, e->key);
            cache->ops.retain(cache->ops.ctx, e->value);
            (*items)[*n].key = e->key;
            (*items)[*n].value = e->value;
            (*items)[*n].expires_ns = e->expires_ns;
            (*n)++;
        }
    }
    stripe_unlock(s);
    return PGS_OK;
}


int
pgs_cache_visit(pgs_cache *cache,
                int (*visit)(void *key, void *value, void *arg), void *arg)
{
    pgs_cache_entry *e;
    size_t i, b;
    stripe *s;
    int rc = 0;

    for (i = 0; i < cache->nstripes && rc == 0; i++) {
        s = &cache->stripes[i];
        pthread_mutex_lock(&s->lock);
        for (b = 0; b <= s->mask && rc == 0; b++) {
            for (e = s->buckets[b]; e != NULL && rc == 0; e = e->chain)
                rc = visit(e->key, e->value, arg);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return rc;
}


size_t
pgs_cache_size(pgs_cache *cache)
{
    size_t total = 0, i;

    for (i = 0; i < cache->nstripes; i++)
        total += get_count(&cache->stripes[i]);
    return total;
}


size_t
pgs_cache_stripes(const pgs_cache *cache)
{
    return cache->nstripes;
}


size_t
pgs_cache_maxsize(const pgs_cache *cache)
{
    return cache->maxsize;
}


void
pgs_cache_get_stats(pgs_cache *cache, pgs_cache_stats *out)
{
    size_t i;
    stripe *s;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        out->hits += atomic_load_explicit(&s->hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&s->misses, memory_order_relaxed);
        out->expirations +=
            atomic_load_explicit(&s->expirations, memory_order_relaxed);
        out->evictions +=
            atomic_load_explicit(&s->evictions, memory_order_relaxed);
        out->entries += get_count(s);
    }
    out->maxsize = cache->maxsize;
}


void
pgs_cache_lock_all(pgs_cache *cache)
{
    size_t i;

    for (i = 0; i < cache->nstripes; i++)
        pthread_mutex_lock(&cache->stripes[i].lock);
}


void
pgs_cache_unlock_all(pgs_cache *cache)
{
    size_t i;

    for (i = cache->nstripes; i-- > 0;)
        pthread_mutex_unlock(&cache->stripes[i].lock);
}
