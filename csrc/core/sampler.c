/*
 * sampler.c - gauge sampler thread; see sampler.h for the contract.
 */
#include "sampler.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pgs_error.h"
#include "pgs_fork.h"
#include "pgs_sync.h"
#include "pgs_time.h"

#define DEFAULT_MAX_GAUGES 4096

typedef struct gauge_slot {
    int family;
    char label[PGS_SAMPLER_LABEL_MAX];
    int64_t current;
    int64_t max;
    uint64_t tick; /* the tick that last recorded it */
} gauge_slot;

typedef struct source {
    pgs_sampler_source_fn fn;
    void *arg;
} source;

struct pgs_sampler {
    unsigned long fork_generation;
    pgs_read_stat_fn read_rss;
    pgs_read_stat_fn read_threads;
    size_t max_gauges;

    pthread_mutex_t lock;
    pthread_cond_t wake;   /* stop requested or interval changed */
    pthread_cond_t ticked; /* a tick finished */
    int64_t interval_ns;
    gauge_slot *gauges;
    size_t ngauges, gauges_cap;
    source *sources;
    size_t nsources, sources_cap;
    uint64_t ticks;
    int running;  /* a thread was started and not joined */
    int stopping; /* the thread must exit */
    pthread_t thread;
};


int
pgs_sampler_is_inherited(const pgs_sampler *sampler)
{
    return sampler->fork_generation != pgs_fork_generation();
}


int
pgs_sampler_create(pgs_sampler **out, const pgs_sampler_options *options)
{
    pgs_sampler *sampler;

    *out = NULL;
    if (options->interval_ns <= 0)
        return PGS_EINVAL;
    pgs_fork_install();
    sampler = calloc(1, sizeof(*sampler));
    if (sampler == NULL)
        return PGS_ENOMEM;
    sampler->fork_generation = pgs_fork_generation();
    sampler->read_rss = options->read_rss ? options->read_rss : pgs_read_rss_bytes;
    sampler->read_threads =
        options->read_threads ? options->read_threads : pgs_read_os_threads;
    sampler->max_gauges =
        options->max_gauges ? options->max_gauges : DEFAULT_MAX_GAUGES;
    sampler->interval_ns = options->interval_ns;
    if (pthread_mutex_init(&sampler->lock, NULL) != 0)
        goto error;
    if (pgs_cond_init(&sampler->wake) != PGS_OK)
        goto error_lock;
    if (pgs_cond_init(&sampler->ticked) != PGS_OK)
        goto error_wake;
    *out = sampler;
    return PGS_OK;

error_wake:
    pthread_cond_destroy(&sampler->wake);
error_lock:
    pthread_mutex_destroy(&sampler->lock);
error:
    free(sampler);
    return PGS_ENOMEM;
}


void
pgs_sampler_free(pgs_sampler *sampler)
{
    if (sampler == NULL)
        return;
    pgs_sampler_stop(sampler);
    pthread_cond_destroy(&sampler->ticked);
    pthread_cond_destroy(&sampler->wake);
    pthread_mutex_destroy(&sampler->lock);
    free(sampler->gauges);
    free(sampler->sources);
    free(sampler);
}


int
pgs_sampler_add_source(pgs_sampler *sampler, pgs_sampler_source_fn fn,
                       void *arg)
{
    int rc = PGS_OK;

    if (pgs_sampler_is_inherited(sampler))
        return PGS_ECLOSED;
    pthread_mutex_lock(&sampler->lock);
    if (sampler->nsources == sampler->sources_cap) {
        size_t cap = sampler->sources_cap ? sampler->sources_cap * 2 : 4;
        source *grown = realloc(sampler->sources, cap * sizeof(*grown));

        if (grown == NULL)
            rc = PGS_ENOMEM;
        else {
            sampler->sources = grown;
            sampler->sources_cap = cap;
        }
    }
    if (rc == PGS_OK) {
        sampler->sources[sampler->nsources].fn = fn;
        sampler->sources[sampler->nsources].arg = arg;
        sampler->nsources++;
    }
    pthread_mutex_unlock(&sampler->lock);
    return rc;
}


size_t
pgs_sampler_label_length(const char *label)
{
    size_t n = strlen(label);

    if (n >= PGS_SAMPLER_LABEL_MAX) {
        n = PGS_SAMPLER_LABEL_MAX - 1;
        /* Step back over continuation bytes (10xxxxxx) of a cut character. */
        while (n > 0 && ((unsigned char)label[n] & 0xC0) == 0x80)
            n--;
    }
    return n;
}


/* Copy label into a slot-sized buffer, cutting at a UTF-8 boundary. */
static void
copy_label(char *dest, const char *label)
{
    size_t n = pgs_sampler_label_length(label);

    memcpy(dest, label, n);
    dest[n] = '\0';
}


static gauge_slot *
find_or_add_slot_locked(pgs_sampler *sampler, int family, const char *label)
{
    char key[PGS_SAMPLER_LABEL_MAX];
    gauge_slot *slot;
    size_t i;

    copy_label(key, label);
    /* A linear scan: the table holds a few gauges per pool and cache. */
    for (i = 0; i < sampler->ngauges; i++) {
        slot = &sampler->gauges[i];
        if (slot->family == family && strcmp(slot->label, key) == 0)
            return slot;
    }
    if (sampler->ngauges == sampler->max_gauges)
        return NULL;
    if (sampler->ngauges == sampler->gauges_cap) {
        size_t cap = sampler->gauges_cap ? sampler->gauges_cap * 2 : 16;
        gauge_slot *grown = realloc(sampler->gauges, cap * sizeof(*grown));

        if (grown == NULL)
            return NULL;
        sampler->gauges = grown;
        sampler->gauges_cap = cap;
    }
    slot = &sampler->gauges[sampler->ngauges++];
    slot->family = family;
    memcpy(slot->label, key, sizeof(key));
    slot->tick = 0;
    return slot;
}


void
pgs_sampler_record(pgs_sampler *sampler, int family, const char *label,
                   int64_t value)
{
    gauge_slot *slot = find_or_add_slot_locked(sampler, family, label);

    if (slot == NULL)
        return;
    /* Two records of one gauge in a tick (two pools with one name) add up,
       because both contribute to the one exported series. */
    if (slot->tick == sampler->ticks) {
        slot->current += value;
    }
    else {
        if (slot->tick == 0)
            slot->max = value; /* a new gauge */
        slot->current = value;
        slot->tick = sampler->ticks;
    }
    if (slot->current > slot->max)
        slot->max = slot->current;
}


static void
drop_stale_gauges_locked(pgs_sampler *sampler)
{
    size_t i = 0;

    while (i < sampler->ngauges) {
        if (sampler->gauges[i].tick != sampler->ticks)
            sampler->gauges[i] = sampler->gauges[--sampler->ngauges];
        else
            i++;
    }
}


static void
tick_locked(pgs_sampler *sampler)
{
    int64_t value;
    size_t i;

    sampler->ticks++;
    if (sampler->read_rss(&value) == PGS_OK)
        pgs_sampler_record(sampler, PGS_GAUGE_RSS_BYTES, "", value);
    if (sampler->read_threads(&value) == PGS_OK)
        pgs_sampler_record(sampler, PGS_GAUGE_OS_THREADS, "", value);
    for (i = 0; i < sampler->nsources; i++)
        sampler->sources[i].fn(sampler->sources[i].arg, sampler);
    drop_stale_gauges_locked(sampler);
    pthread_cond_broadcast(&sampler->ticked);
}


int
pgs_sampler_tick(pgs_sampler *sampler)
{
    if (pgs_sampler_is_inherited(sampler))
        return PGS_ECLOSED;
    pthread_mutex_lock(&sampler->lock);
    tick_locked(sampler);
    pthread_mutex_unlock(&sampler->lock);
    return PGS_OK;
}


static void *
sampler_main(void *arg)
{
    pgs_sampler *sampler = arg;
    int64_t scheduled, now;

#if defined(__linux__)
    pthread_setname_np(pthread_self(), "pgs:sampler");
#endif
    pthread_mutex_lock(&sampler->lock);
    tick_locked(sampler);
    scheduled = pgs_monotonic_ns();
    while (!sampler->stopping) {
        /* Read the interval on every pass, so that a change applies to the
           wait in progress. */
        pgs_cond_wait_until(&sampler->wake, &sampler->lock,
                            scheduled + sampler->interval_ns);
        now = pgs_monotonic_ns();
        if (sampler->stopping || now < scheduled + sampler->interval_ns)
            continue;
        tick_locked(sampler);
        /* Keep a fixed schedule, but skip ticks missed while the process
           was stopped by a debugger or a suspended machine. */
        scheduled += sampler->interval_ns;
        if (scheduled + sampler->interval_ns < now)
            scheduled = now;
    }
    pthread_mutex_unlock(&sampler->lock);
    return NULL;
}


int
pgs_sampler_start(pgs_sampler *sampler)
{
    int rc = PGS_OK;

    if (pgs_sampler_is_inherited(sampler))
        return PGS_ECLOSED;
    pthread_mutex_lock(&sampler->lock);
    if (!sampler->running) {
        sampler->stopping = 0;
        if (pthread_create(&sampler->thread, NULL, sampler_main, sampler) == 0)
            sampler->running = 1;
        else
            rc = PGS_ETHREAD;
    }
    pthread_mutex_unlock(&sampler->lock);
    return rc;
}


void
pgs_sampler_stop(pgs_sampler *sampler)
{
    pthread_t thread;
    int must_join = 0;

    if (pgs_sampler_is_inherited(sampler))
        return;
    pthread_mutex_lock(&sampler->lock);
    if (sampler->running && !sampler->stopping) {
        sampler->stopping = 1;
        thread = sampler->thread;
        must_join = 1;
        pthread_cond_broadcast(&sampler->wake);
    }
    pthread_mutex_unlock(&sampler->lock);
    if (!must_join)
        return;
    pthread_join(thread, NULL);
    pthread_mutex_lock(&sampler->lock);
    sampler->running = 0;
    pthread_mutex_unlock(&sampler->lock);
}


int
pgs_sampler_is_running(pgs_sampler *sampler)
{
    int running;

    if (pgs_sampler_is_inherited(sampler))
        return 0;
    pthread_mutex_lock(&sampler->lock);
    running = sampler->running && !sampler->stopping;
    pthread_mutex_unlock(&sampler->lock);
    return running;
}


int
pgs_sampler_set_interval(pgs_sampler *sampler, int64_t interval_ns)
{
    if (interval_ns <= 0)
        return PGS_EINVAL;
    if (pgs_sampler_is_inherited(sampler))
        return PGS_ECLOSED;
    pthread_mutex_lock(&sampler->lock);
    sampler->interval_ns = interval_ns;
    pthread_cond_broadcast(&sampler->wake);
    pthread_mutex_unlock(&sampler->lock);
    return PGS_OK;
}


int
pgs_sampler_read(pgs_sampler *sampler, pgs_gauge_reading **out,
                 size_t *count, int reset_max)
{
    pgs_gauge_reading *readings;
    gauge_slot *slot;
    size_t i, n;

    *out = NULL;
    *count = 0;
    if (pgs_sampler_is_inherited(sampler))
        return PGS_ECLOSED;
    pthread_mutex_lock(&sampler->lock);
    n = sampler->ngauges;
    readings = malloc((n ? n : 1) * sizeof(*readings));
    if (readings == NULL) {
        pthread_mutex_unlock(&sampler->lock);
        return PGS_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        slot = &sampler->gauges[i];
        readings[i].family = slot->family;
        memcpy(readings[i].label, slot->label, sizeof(slot->label));
        readings[i].current = slot->current;
        readings[i].max = slot->max;
        if (reset_max)
            slot->max = slot->current;
    }
    pthread_mutex_unlock(&sampler->lock);
    *out = readings;
    *count = n;
    return PGS_OK;
}


uint64_t
pgs_sampler_ticks(pgs_sampler *sampler)
{
    uint64_t ticks;

    if (pgs_sampler_is_inherited(sampler))
        return 0;
    pthread_mutex_lock(&sampler->lock);
    ticks = sampler->ticks;
    pthread_mutex_unlock(&sampler->lock);
    return ticks;
}


int
pgs_sampler_wait_ticks(pgs_sampler *sampler, uint64_t ticks,
                       int64_t deadline_ns)
{
    int rc = PGS_OK;

    if (pgs_sampler_is_inherited(sampler))
        return PGS_ECLOSED;
    pthread_mutex_lock(&sampler->lock);
    while (sampler->ticks < ticks) {
        if (deadline_ns == 0) {
            rc = PGS_ETIMEDOUT;
            break;
        }
        rc = pgs_cond_wait_until(&sampler->ticked, &sampler->lock, deadline_ns);
        if (rc == PGS_ETIMEDOUT) {
            if (sampler->ticks >= ticks)
                rc = PGS_OK;
            break;
        }
    }
    pthread_mutex_unlock(&sampler->lock);
    return rc;
}
