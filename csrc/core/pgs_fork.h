/*
 * pgs_fork.h - fork detection for core objects.
 *
 * A forked child has only the thread that called fork(); worker and sweeper
 * threads of its parent are gone and their locks may be held forever.  Core
 * objects record the fork generation they were created in and refuse to
 * block on state inherited from another generation.
 */
#ifndef PGS_FORK_H
#define PGS_FORK_H

/* Install the pthread_atfork handler (idempotent, thread-safe). */
void pgs_fork_install(void);

/* Number of fork() calls that led from the first process to this one. */
unsigned long pgs_fork_generation(void);

#endif
