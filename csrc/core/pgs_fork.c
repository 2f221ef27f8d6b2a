#include "pgs_fork.h"

#include <pthread.h>
#include <stdatomic.h>

static atomic_ulong generation;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void
after_fork_in_child(void)
{
    atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
}

static void
install(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

void
pgs_fork_install(void)
{
    pthread_once(&install_once, install);
}

unsigned long
pgs_fork_generation(void)
{
    return atomic_load_explicit(&generation, memory_order_relaxed);
}
