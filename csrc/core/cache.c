/*
 * cache.c - lock-striped expiring cache; see cache.h for the design.
 *
 * Lock rules: each stripe's mutex protects everything in that stripe (hash
 * chains, eviction queues, sketch, sweep cursor, version) and the fields of
 * its entries.  The exceptions are key and hash, which never change while
 * an entry exists, and hits, which optimistic readers bump.  Functions named
 * *_locked expect the stripe's mutex to be held.  No function takes two
 * stripe locks at once, except pgs_cache_lock_all, which takes them in
 * index order.  The counters are relaxed atomics, read without the lock.
 *
 * Seqlock rules: whoever takes a stripe's mutex to change it makes the
 * stripe's seq odd (write_begin) before the first change and even again
 * (write_end) after the last.  Every field that pgs_cache_get_optimistic
 * reads (bucket array, mask, chain links, value, expiry) is an atomic,
 * stored with release and loaded with acquire.  So a reader that sees a
 * changed field also sees the odd seq stored before it, when it reads seq
 * again, and a reader that reaches an entry sees its key and hash.  (This
 * form needs no fences, which ThreadSanitizer does not model; on x86 these
 * are plain loads and stores.)
 */
#include "cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Stripes start with this many buckets and double them as entries come,
   so a large, mostly empty cache stays small in memory and in the CPU's
   caches (a lookup touches one random bucket). */
#define MIN_BUCKETS 8
#define SKETCH_MIN_WORDS 8
#define SKETCH_MAX_WORDS ((size_t)1 << 22)
/* The sketch halves every counter after this many increments per entry of
   capacity, so old popularity fades. */
#define SKETCH_PERIOD_PER_ENTRY 10
/* Share of a stripe given to the window LRU.  On the cache2k web traces
   (e-commerce object accesses), 20% beat exact LRU at every size tried
   from 137 to 5,121 entries, while 1% fell behind it below ~200 entries. */
#define WINDOW_PERCENT 20
/* Pending hits per entry saturate here, as the sketch's counters do. */
#define HITS_MAX 15
/* Entries with pending hits that one insert may move instead of evicting,
   per queue; it bounds the insert's work when every entry was hit. */
#define SECOND_CHANCES_MAX 16
/* A chain longer than this (many keys in one bucket, or links changing
   under the reader) is left to the locked path. */
#define OPTIMISTIC_MAX_STEPS 64

typedef struct queue_link {
    struct queue_link *prev, *next;
} queue_link;

enum where {
    IN_NONE = 0, /* unlinked: in a garbage list or only pinned */
    IN_WINDOW,
    IN_PROBATION,
    IN_PROTECTED,
};

/* A link that optimistic readers follow: a bucket head or an entry's chain. */
typedef _Atomic(pgs_cache_entry *) entry_link;

/* The fields a lookup reads come last.  The binding allocates entries from
   pymalloc, whose 64-byte blocks start 48 bytes into a cache line (after
   the 48-byte pool header in CPython 3.11), so those 48 bytes share one
   line. */
struct pgs_cache_entry {
    queue_link link;  /* position in the stripe's queue */
    entry_link chain; /* next in the bucket, or in a garbage list */
    uint64_t hash;    /* the caller's hash, mixed; constant like key */
    void *key;        /* set before the entry is published, then constant */
    _Atomic(void *) value;
    atomic_int_least64_t expires_ns;
    uint32_t pins;
    uint8_t where;     /* enum where */
    atomic_uchar hits; /* hits not yet given to the policy, up to HITS_MAX */
};

typedef struct stripe {
    _Alignas(64) pthread_mutex_t lock;
    atomic_uint seq; /* odd while a writer changes the stripe */
    _Atomic(entry_link *) buckets;
    atomic_size_t mask; /* number of buckets - 1 */
    atomic_size_t count;
    /* No entry expires before this time (a lower bound; INT64_MAX when
       the stripe is empty), so len() can skip stripes with nothing
       expired. */
    atomic_int_least64_t next_expiry;
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
    /* Writers are the stripe's lock holder and optimistic readers, which
       the caller serializes (see pgs_cache_get_optimistic), so load +
       store is enough and costs no locked instruction. */
    atomic_store_explicit(
        counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
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


static inline int64_t
load_expiry(atomic_int_least64_t *time)
{
    return atomic_load_explicit(time, memory_order_acquire);
}


/* Lower the stripe's next_expiry bound to cover an entry expiring then. */
static inline void
note_expiry_locked(stripe *s, int64_t expires_ns)
{
    if (expires_ns < load_expiry(&s->next_expiry))
        atomic_store_explicit(&s->next_expiry, expires_ns,
                              memory_order_relaxed);
}


static inline pgs_cache_entry *
link_get(entry_link *link)
{
    return atomic_load_explicit(link, memory_order_acquire);
}


static inline void
link_set(entry_link *link, pgs_cache_entry *e)
{
    atomic_store_explicit(link, e, memory_order_release);
}


static inline void *
entry_value(pgs_cache_entry *e)
{
    return atomic_load_explicit(&e->value, memory_order_acquire);
}


static inline void
entry_set_value(pgs_cache_entry *e, void *value)
{
    atomic_store_explicit(&e->value, value, memory_order_release);
}


static inline entry_link *
buckets_locked(stripe *s)
{
    return atomic_load_explicit(&s->buckets, memory_order_relaxed);
}


static inline size_t
mask_locked(stripe *s)
{
    return atomic_load_explicit(&s->mask, memory_order_relaxed);
}


static inline entry_link *
bucket_locked(stripe *s, uint64_t mixed)
{
    return &buckets_locked(s)[mixed & mask_locked(s)];
}


/* The seqlock's writer side; see "Seqlock rules" at the top. */
static inline void
write_begin(stripe *s)
{
    unsigned seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

    /* The release stores of the changes that follow order this one
       before them. */
    atomic_store_explicit(&s->seq, seq + 1, memory_order_relaxed);
}


static inline void
write_end(stripe *s)
{
    unsigned seq = atomic_load_explicit(&s->seq, memory_order_relaxed);

    atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
}


/* Take a stripe lock, dropping the caller's outer lock (through the hooks)
   while it waits; see "Locking hooks" in cache.h.  The stripe is then open
   for writing (seq odd) until stripe_unlock. */
static void
stripe_lock(pgs_cache *cache, stripe *s)
{
    void *token;

    while (pthread_mutex_trylock(&s->lock) != 0) {
        if (cache->ops.before_block == NULL) {
            pthread_mutex_lock(&s->lock);
            break;
        }
        token = cache->ops.before_block(cache->ops.ctx);
        pthread_mutex_lock(&s->lock);
        pthread_mutex_unlock(&s->lock);
        cache->ops.after_block(cache->ops.ctx, token);
    }
    write_begin(s);
}


/* stripe_lock for callers with no outer lock to drop (the sweeper). */
static void
stripe_lock_waiting(stripe *s)
{
    pthread_mutex_lock(&s->lock);
    write_begin(s);
}


static inline void
stripe_unlock(stripe *s)
{
    write_end(s);
    pthread_mutex_unlock(&s->lock);
}


static void *
entry_alloc(pgs_cache *cache)
{
    if (cache->ops.alloc != NULL)
        return cache->ops.alloc(cache->ops.ctx, sizeof(pgs_cache_entry));
    return malloc(sizeof(pgs_cache_entry));
}


/*
 * Bucket arrays carry one hidden slot before the first bucket, so that a
 * replaced array can be chained into a garbage list without writing to a
 * slot that an optimistic reader may still load.
 */
static entry_link *
buckets_alloc(size_t n)
{
    entry_link *block = calloc(n + 1, sizeof(entry_link));

    /* The caller frees the array from one slot before what it gets. */
    /* cppcheck-suppress memleak */
    return block == NULL ? NULL : block + 1;
}


static void
buckets_free(entry_link *buckets)
{
    free(buckets - 1);
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
    UINT64_C(0x97cb3127e8e6b1a5),
    UINT64_C(0xc2b2ae3d27d4eb4f),
    UINT64_C(0x165667b19e3779f9),
    UINT64_C(0x9e3779b97f4a7c15),
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
                             ((k >> 60) * 4)) &
                  15;
        if (counter < minimum)
            minimum = counter;
    }
    return minimum;
}


/* Count n more requests of the key whose mixed hash is given. */
static void
sketch_add_locked(stripe *s, uint64_t mixed, unsigned n)
{
    uint64_t k, *word;
    unsigned shift, counter, added;
    size_t i;

    if (s->sketch == NULL)
        return;
    for (i = 0; i < 4; i++) {
        k = (mixed ^ sketch_seeds[i]) * sketch_seeds[(i + 1) & 3];
        word = &s->sketch[(k >> 28) & s->sketch_mask];
        shift = (unsigned)(k >> 60) * 4;
        counter = (unsigned)(*word >> shift) & 15;
        added = counter + n > 15 ? 15 - counter : n;
        *word += (uint64_t)added << shift;
    }
    s->sketch_additions += n;
    if (s->sketch_additions >= s->sketch_period) {
        for (i = 0; i <= s->sketch_mask; i++)
            s->sketch[i] = (s->sketch[i] >> 1) & UINT64_C(0x7777777777777777);
        s->sketch_additions /= 2;
    }
}


/* Record a hit on e without moving it; readers call this with no lock. */
static inline void
note_hit(pgs_cache_entry *e)
{
    unsigned char hits = atomic_load_explicit(&e->hits, memory_order_relaxed);

    if (hits < HITS_MAX)
        atomic_store_explicit(&e->hits, (unsigned char)(hits + 1),
                              memory_order_relaxed);
}


/* Move e's pending hits into the sketch; returns how many there were. */
static unsigned
take_hits_locked(stripe *s, pgs_cache_entry *e)
{
    unsigned hits = atomic_load_explicit(&e->hits, memory_order_relaxed);

    if (hits != 0) {
        atomic_store_explicit(&e->hits, 0, memory_order_relaxed);
        sketch_add_locked(s, e->hash, hits);
    }
    return hits;
}


/* ---------------------------------------------------------------------
 * Table and policy, all under the stripe lock
 */

/* Find the link that points at e in its bucket. */
static entry_link *
slot_of_locked(stripe *s, pgs_cache_entry *e)
{
    entry_link *slot = bucket_locked(s, e->hash);

    while (link_get(slot) != e) {
        assert(link_get(slot) != NULL);
        slot = &link_get(slot)->chain;
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
   (expirations or evictions) is bumped if given.  Its pending hits go to
   the sketch, which remembers keys after they leave. */
static void
unlink_locked(stripe *s, entry_link *slot, atomic_uint_least64_t *counter,
              pgs_cache_garbage *garbage)
{
    pgs_cache_entry *e = link_get(slot);

    link_set(slot, link_get(&e->chain));
    policy_remove_locked(s, e);
    take_hits_locked(s, e);
    e->where = IN_NONE;
    set_count(s, get_count(s) - 1);
    s->version++;
    if (counter != NULL)
        bump(counter);
    if (e->pins == 0) {
        link_set(&e->chain, garbage->entries);
        garbage->entries = e;
    }
}


/* Bring protected back within its share.  Entries leaving its back go to
   the front of probation, except that one with pending hits goes to the
   front of protected again (a deferred hit). */
static void
demote_protected_locked(stripe *s)
{
    pgs_cache_entry *e;
    unsigned chances = 0;

    while (s->protected_len > s->protected_cap) {
        e = queue_back(&s->protected);
        queue_remove(&e->link);
        if (chances < SECOND_CHANCES_MAX && take_hits_locked(s, e) > 0) {
            chances++;
            queue_push_front(&s->protected, &e->link);
            continue;
        }
        s->protected_len--;
        e->where = IN_PROBATION;
        queue_push_front(&s->probation, &e->link);
    }
}


static void
promote_locked(stripe *s, pgs_cache_entry *e)
{
    queue_remove(&e->link);
    e->where = IN_PROTECTED;
    s->protected_len++;
    queue_push_front(&s->protected, &e->link);
    demote_protected_locked(s);
}


/* Move an entry that was just written to the front of its queue; a
   write to an entry in probation promotes it to protected. */
static void
policy_touch_locked(stripe *s, pgs_cache_entry *e)
{
    if (s->capacity == PGS_CACHE_UNBOUNDED)
        return;
    switch (e->where) {
    case IN_WINDOW:
        queue_remove(&e->link);
        queue_push_front(&s->window, &e->link);
        break;
    case IN_PROBATION:
        promote_locked(s, e);
        break;
    default:
        queue_remove(&e->link);
        queue_push_front(&s->protected, &e->link);
        break;
    }
}


/* The back of probation, after entries there with pending hits were
   promoted to protected as their first hit would have done. */
static pgs_cache_entry *
probation_victim_locked(stripe *s)
{
    pgs_cache_entry *victim;
    unsigned chances = 0;

    for (;;) {
        victim = queue_back(&s->probation);
        if (victim == NULL || chances >= SECOND_CHANCES_MAX ||
            take_hits_locked(s, victim) == 0)
            return victim;
        chances++;
        promote_locked(s, victim);
    }
}


static void
evict_locked(stripe *s, pgs_cache_entry *e, int64_t now,
             pgs_cache_garbage *garbage)
{
    unlink_locked(s, slot_of_locked(s, e),
                  load_expiry(&e->expires_ns) <= now ? &s->expirations
                                                     : &s->evictions,
                  garbage);
}


/*
 * Bring the stripe back within its capacity after an insert.  Entries that
 * overflow the window are candidates for the main queues, except that a
 * window entry with pending hits goes back to the window's front.  While
 * the stripe is over capacity, the candidate and the probation victim (or
 * the protected one when probation is empty) compete.  The one the sketch
 * has seen less often is evicted, and ties evict the candidate.
 */
static void
enforce_capacity_locked(stripe *s, int64_t now, pgs_cache_garbage *garbage)
{
    pgs_cache_entry *candidate, *victim;
    unsigned chances = 0;

    while (s->window_len > s->window_cap) {
        candidate = queue_back(&s->window);
        queue_remove(&candidate->link);
        if (chances < SECOND_CHANCES_MAX &&
            take_hits_locked(s, candidate) > 0) {
            chances++;
            queue_push_front(&s->window, &candidate->link);
            continue;
        }
        s->window_len--;
        if (get_count(s) <= s->capacity) {
            candidate->where = IN_PROBATION;
            queue_push_front(&s->probation, &candidate->link);
            continue;
        }
        victim = probation_victim_locked(s);
        if (victim == NULL)
            victim = queue_back(&s->protected);
        candidate->where = IN_PROBATION;
        queue_push_front(&s->probation, &candidate->link);
        /* Hits still pending after the second chances ran out count. */
        take_hits_locked(s, candidate);
        if (victim != NULL)
            take_hits_locked(s, victim);
        if (victim == NULL || load_expiry(&candidate->expires_ns) <= now ||
            (load_expiry(&victim->expires_ns) > now &&
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
   only makes chains longer.  The old array goes to *garbage, because an
   optimistic reader may still be walking it. */
static void
grow_locked(stripe *s, pgs_cache_garbage *garbage)
{
    size_t old_n = mask_locked(s) + 1, new_n = old_n * 2, i;
    entry_link *old = buckets_locked(s), *buckets, *bucket;
    pgs_cache_entry *e, *next;

    buckets = buckets_alloc(new_n);
    if (buckets == NULL)
        return;
    /* TODO: rehash incrementally; this pass is proportional to the
       stripe's size, a latency spike while an unbounded cache grows. */
    for (i = 0; i < old_n; i++) {
        for (e = link_get(&old[i]); e != NULL; e = next) {
            next = link_get(&e->chain);
            bucket = &buckets[e->hash & (new_n - 1)];
            link_set(&e->chain, link_get(bucket));
            link_set(bucket, e);
        }
    }
    /* Readers load mask before buckets, so a reader that sees the new mask
       also sees the new, larger array. */
    atomic_store_explicit(&s->buckets, buckets, memory_order_release);
    atomic_store_explicit(&s->mask, new_n - 1, memory_order_release);
    s->sweep_cursor = 0;
    /* Readers never load the hidden slot; it links the garbage list. */
    atomic_store_explicit(&old[-1], (pgs_cache_entry *)garbage->blocks,
                          memory_order_relaxed);
    garbage->blocks = &old[-1];
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
    entry_link *slot = bucket_locked(s, mixed);
    pgs_cache_entry *e;
    int undecided = 0, equal;

    while ((e = link_get(slot)) != NULL) {
        if (e->hash == mixed) {
            equal = e->key == key
                        ? 1
                        : cache->ops.key_eq(cache->ops.ctx, e->key, key);
            if (equal == 1) {
                if (load_expiry(&e->expires_ns) > now)
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
    pgs_cache_entry *e;
    entry_link *bucket;

    if (s->capacity == 0)
        return PGS_OK;
    e = entry_alloc(cache);
    if (e == NULL)
        return PGS_ENOMEM;
    cache->ops.retain(cache->ops.ctx, key);
    cache->ops.retain(cache->ops.ctx, value);
    e->key = key;
    atomic_init(&e->value, value);
    e->hash = mixed;
    atomic_init(&e->expires_ns, expires_ns);
    atomic_init(&e->hits, 0);
    e->pins = 0;
    e->where = IN_WINDOW;
    bucket = bucket_locked(s, mixed);
    atomic_init(&e->chain, link_get(bucket));
    link_set(bucket, e); /* publishes the fields set above */
    set_count(s, get_count(s) + 1);
    note_expiry_locked(s, expires_ns);
    s->version++;
    if (s->capacity != PGS_CACHE_UNBOUNDED) {
        queue_push_front(&s->window, &e->link);
        s->window_len++;
        enforce_capacity_locked(s, now, garbage);
    }
    if (get_count(s) > (mask_locked(s) + 1) / 2)
        grow_locked(s, garbage);
    return PGS_OK;
}


static void
replace_value_locked(pgs_cache *cache, stripe *s, pgs_cache_entry *e,
                     void *value, int64_t expires_ns,
                     pgs_cache_garbage *garbage)
{
    cache->ops.retain(cache->ops.ctx, value);
    assert(garbage->nvalues < sizeof(garbage->values) / sizeof(void *));
    garbage->values[garbage->nvalues++] = entry_value(e);
    entry_set_value(e, value);
    atomic_store_explicit(&e->expires_ns, expires_ns, memory_order_release);
    note_expiry_locked(s, expires_ns);
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
    atomic_init(&s->next_expiry, INT64_MAX);
    queue_init(&s->window);
    queue_init(&s->probation);
    queue_init(&s->protected);
    if (capacity != PGS_CACHE_UNBOUNDED && capacity > 0) {
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
    s->buckets = buckets_alloc(buckets);
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
    buckets_free(buckets_locked(s));
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
        (options->ops.before_block == NULL) !=
            (options->ops.after_block == NULL))
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
    void *block, *next_block;

    memcpy(values, garbage->values, sizeof(values));
    for (block = garbage->blocks; block != NULL; block = next_block) {
        next_block = (void *)atomic_load_explicit((entry_link *)block,
                                                  memory_order_relaxed);
        free(block);
    }
    garbage->entries = NULL;
    garbage->nvalues = 0;
    garbage->blocks = NULL;
    for (; e != NULL; e = next) {
        next = link_get(&e->chain);
        ops.release(ops.ctx, e->key);
        if (entry_value(e) != NULL)
            ops.release(ops.ctx, entry_value(e));
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
        note_hit(e);
        bump(&s->hits);
        if (value != NULL) {
            *value = entry_value(e);
            cache->ops.retain(cache->ops.ctx, *value);
        }
        if (expires_ns != NULL)
            *expires_ns = load_expiry(&e->expires_ns);
    }
    else if (rc == PGS_ENOTFOUND) {
        bump(&s->misses);
    }
    stripe_unlock(s);
    return rc;
}


int
pgs_cache_get_optimistic(pgs_cache *cache, const void *key, uint64_t hash,
                         int64_t now, void **value)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    unsigned seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    pgs_cache_entry *e;
    entry_link *buckets;
    unsigned steps = 0;
    int64_t expires;
    size_t mask;
    void *found;
    int equal;

    if (seq & 1)
        return PGS_EAGAIN;
    /* mask before buckets: see grow_locked. */
    mask = atomic_load_explicit(&s->mask, memory_order_acquire);
    buckets = atomic_load_explicit(&s->buckets, memory_order_acquire);
    for (e = link_get(&buckets[mixed & mask]); e != NULL;
         e = link_get(&e->chain)) {
        if (++steps > OPTIMISTIC_MAX_STEPS)
            return PGS_EAGAIN;
        if (e->hash != mixed)
            continue;
        equal =
            e->key == key ? 1 : cache->ops.key_eq(cache->ops.ctx, e->key, key);
        if (equal == 1)
            break;
        if (equal != 0)
            return PGS_EAGAIN;
    }
    found = e != NULL ? entry_value(e) : NULL;
    expires = e != NULL ? load_expiry(&e->expires_ns) : 0;
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != seq)
        return PGS_EAGAIN;
    if (e == NULL) {
        bump(&s->misses);
        return PGS_ENOTFOUND;
    }
    if (now == PGS_CACHE_NOW_FROM_CLOCK)
        now = pgs_cache_clock_ns();
    if (expires <= now)
        return PGS_EAGAIN;
    note_hit(e);
    bump(&s->hits);
    /* A writer may have replaced or removed the value since seq was
       checked, but it was live then and the caller keeps it from being
       released. */
    *value = found;
    return PGS_OK;
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
            *existing = entry_value(e);
            cache->ops.retain(cache->ops.ctx, *existing);
        }
        else {
            replace_value_locked(cache, s, e, value, expires_ns, garbage);
        }
        policy_touch_locked(s, e);
        rc = PGS_OK;
    }
    else if (rc == PGS_ENOTFOUND) {
        rc = insert_locked(cache, s, key, mixed, value, expires_ns, now,
                           garbage);
    }
    if (rc != PGS_EAGAIN)
        sketch_add_locked(s, mixed, 1);
    stripe_unlock(s);
    return rc;
}


/* Unlink e for a delete, handing its value to *value when value is not
   NULL, so the caller releases it outside the lock. */
static void
delete_locked(stripe *s, pgs_cache_entry *e, void **value,
              pgs_cache_garbage *garbage)
{
    if (value != NULL) {
        *value = entry_value(e);
        entry_set_value(e, NULL);
    }
    unlink_locked(s, slot_of_locked(s, e), NULL, garbage);
}


int
pgs_cache_delete(pgs_cache *cache, const void *key, uint64_t hash, int64_t now,
                 void **value, pgs_cache_garbage *garbage)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    pgs_cache_entry *e;
    int rc = PGS_OK;

    stripe_lock(cache, s);
    e = find_locked(cache, s, key, mixed, now, &rc, garbage);
    if (e != NULL)
        delete_locked(s, e, value, garbage);
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
    entry_link *slot;
    pgs_cache_entry *e;
    size_t n = 0;

    stripe_lock(cache, s);
    slot = bucket_locked(s, mixed);
    while ((e = link_get(slot)) != NULL) {
        if (e->hash == mixed && load_expiry(&e->expires_ns) <= now) {
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
            link_set(&e->chain, garbage->entries);
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
    else if (load_expiry(&e->expires_ns) <= now) {
        unlink_locked(s, slot_of_locked(s, e), &s->expirations, garbage);
        bump(&s->misses);
        rc = PGS_ENOTFOUND;
    }
    else {
        note_hit(e);
        bump(&s->hits);
        if (value != NULL) {
            *value = entry_value(e);
            cache->ops.retain(cache->ops.ctx, *value);
        }
        if (expires_ns != NULL)
            *expires_ns = load_expiry(&e->expires_ns);
    }
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
        if (only_if_absent && load_expiry(&e->expires_ns) > now) {
            *existing = entry_value(e);
            cache->ops.retain(cache->ops.ctx, *existing);
        }
        else {
            replace_value_locked(cache, s, e, value, expires_ns, garbage);
        }
        policy_touch_locked(s, e);
        sketch_add_locked(s, e->hash, 1);
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
    else if (load_expiry(&e->expires_ns) <= now) {
        unlink_locked(s, slot_of_locked(s, e), &s->expirations, garbage);
        rc = PGS_ENOTFOUND;
    }
    else {
        delete_locked(s, e, value, garbage);
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
        sketch_add_locked(s, mixed, 1);
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
    stripe_unlock(s);
}


void
pgs_cache_forget_miss(pgs_cache *cache, uint64_t hash)
{
    uint64_t mixed = mix_hash(hash);
    stripe *s = stripe_for(cache, mixed);
    uint64_t misses;

    stripe_lock(cache, s);
    misses = atomic_load_explicit(&s->misses, memory_order_relaxed);
    if (misses > 0)
        atomic_store_explicit(&s->misses, misses - 1, memory_order_relaxed);
    stripe_unlock(s);
}


/* ---------------------------------------------------------------------
 * Whole-cache operations
 */

/* Unlink the expired entries of one bucket and return how many entries it
   visited.  *earliest is lowered to the expiry of every entry that stays. */
static size_t
expire_bucket_locked(stripe *s, size_t bucket, int64_t now, size_t *expired,
                     int64_t *earliest, pgs_cache_garbage *garbage)
{
    entry_link *slot = &buckets_locked(s)[bucket];
    pgs_cache_entry *e;
    size_t visited = 0;
    int64_t expires;

    while ((e = link_get(slot)) != NULL) {
        visited++;
        expires = load_expiry(&e->expires_ns);
        if (expires <= now) {
            unlink_locked(s, slot, &s->expirations, garbage);
            (*expired)++;
        }
        else {
            if (expires < *earliest)
                *earliest = expires;
            slot = &e->chain;
        }
    }
    return visited;
}


/* Unlink every expired entry of the stripe and make next_expiry exact. */
static size_t
expire_stripe_locked(stripe *s, int64_t now, pgs_cache_garbage *garbage)
{
    size_t expired = 0, b, mask = mask_locked(s);
    int64_t earliest = INT64_MAX;

    for (b = 0; b <= mask; b++)
        expire_bucket_locked(s, b, now, &expired, &earliest, garbage);
    atomic_store_explicit(&s->next_expiry, earliest, memory_order_relaxed);
    return expired;
}


size_t
pgs_cache_sweep(pgs_cache *cache, int64_t now, size_t budget,
                pgs_cache_garbage *garbage)
{
    size_t expired = 0, visited, scanned, mask, i;
    int64_t unused = INT64_MAX;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        stripe_lock_waiting(s);
        mask = mask_locked(s);
        /* An empty bucket costs one unit of budget, so a sparse table
           cannot make a tick scan more than `budget` buckets. */
        visited = 0;
        for (scanned = 0; scanned <= mask && visited < budget; scanned++) {
            s->sweep_cursor = (s->sweep_cursor + 1) & mask;
            visited += 1 + expire_bucket_locked(s, s->sweep_cursor, now,
                                                &expired, &unused, garbage);
        }
        stripe_unlock(s);
    }
    return expired;
}


size_t
pgs_cache_expire_all(pgs_cache *cache, int64_t now, pgs_cache_garbage *garbage)
{
    size_t expired = 0, i;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        stripe_lock(cache, s);
        expired += expire_stripe_locked(s, now, garbage);
        stripe_unlock(s);
    }
    return expired;
}


size_t
pgs_cache_count_live(pgs_cache *cache, int64_t now, pgs_cache_garbage *garbage)
{
    size_t total = 0, i;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        if (load_expiry(&s->next_expiry) <= now) {
            stripe_lock(cache, s);
            if (load_expiry(&s->next_expiry) <= now)
                expire_stripe_locked(s, now, garbage);
            stripe_unlock(s);
        }
        total += get_count(s);
    }
    return total;
}


void
pgs_cache_clear(pgs_cache *cache, pgs_cache_garbage *garbage)
{
    size_t i, b, mask;
    entry_link *buckets;
    stripe *s;

    for (i = 0; i < cache->nstripes; i++) {
        s = &cache->stripes[i];
        stripe_lock(cache, s);
        buckets = buckets_locked(s);
        mask = mask_locked(s);
        for (b = 0; b <= mask; b++) {
            while (link_get(&buckets[b]) != NULL)
                unlink_locked(s, &buckets[b], NULL, garbage);
        }
        atomic_store_explicit(&s->next_expiry, INT64_MAX, memory_order_relaxed);
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
    size_t needed, b, mask;
    entry_link *buckets;
    int64_t expires;

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
    buckets = buckets_locked(s);
    mask = mask_locked(s);
    for (b = 0; b <= mask; b++) {
        for (e = link_get(&buckets[b]); e != NULL; e = link_get(&e->chain)) {
            expires = load_expiry(&e->expires_ns);
            if (expires <= now)
                continue;
            cache->ops.retain(cache->ops.ctx, e->key);
            cache->ops.retain(cache->ops.ctx, entry_value(e));
            (*items)[*n].key = e->key;
            (*items)[*n].value = entry_value(e);
            (*items)[*n].expires_ns = expires;
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
        /* Read-only, so the stripe's seq stays even. */
        pthread_mutex_lock(&s->lock);
        for (b = 0; b <= mask_locked(s) && rc == 0; b++) {
            for (e = link_get(&buckets_locked(s)[b]); e != NULL && rc == 0;
                 e = link_get(&e->chain))
                rc = visit(e->key, entry_value(e), arg);
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
