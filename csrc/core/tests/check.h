/*
 * check.h - a minimal assertion harness for the C core tests.
 *
 * CHECK(cond) records a failure with file and line and goes on; each test
 * binary returns nonzero if any check failed, and prints
 * "N passed, N failed" as its last line.
 */
#ifndef PGS_CHECK_H
#define PGS_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

static atomic_int check_passed; /* CHECK may run on worker threads */
static atomic_int check_failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            check_passed++;                                                    \
        }                                                                      \
        else {                                                                 \
            check_failed++;                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define RUN_TEST(fn)                                                           \
    do {                                                                       \
        int before = check_failed;                                             \
        fn();                                                                  \
        printf("%s %s\n", check_failed == before ? "ok  " : "FAIL", #fn);      \
    } while (0)

static inline int
check_report(void)
{
    printf("%d passed, %d failed\n", atomic_load(&check_passed),
           atomic_load(&check_failed));
    return check_failed == 0 ? 0 : 1;
}

#endif
