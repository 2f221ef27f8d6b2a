/*
 * pgs_error.h - the one error vocabulary of the C core.
 *
 * Every core function that can fail returns 0 (PGS_OK) or one of the
 * negative codes below.  The binding turns a code into a Python exception in
 * one place (pgs_raise_error in csrc/errors.c); core tests compare codes.
 */
#ifndef PGS_ERROR_H
#define PGS_ERROR_H

typedef enum pgs_error {
    PGS_OK = 0,
    PGS_ENOMEM = -1,    /* an allocation failed */
    PGS_EINVAL = -2,    /* an argument is out of range */
    PGS_ECLOSED = -3,   /* the object is closed or was inherited by fork */
    PGS_EFULL = -4,     /* no room, and the caller asked not to wait */
    PGS_ETIMEDOUT = -5, /* the wait ran out before the condition held */
    PGS_ENOTFOUND = -6, /* no entry under that key */
    PGS_EDEADLK = -7,   /* waiting would deadlock the calling thread */
    PGS_ETHREAD = -8,   /* the OS refused to start a thread */
    PGS_EEMPTY = -9,    /* nothing is queued */
    PGS_EAGAIN = -10,   /* undecided or changed under the caller: retry */
    PGS_EIO = -11,      /* the OS did not report a process statistic */
} pgs_error;

/* Return a short, static, human-readable name for an error code. */
const char *pgs_strerror(int code);

#endif
