#include "pgs_error.h"

const char *
pgs_strerror(int code)
{
    switch (code) {
    case PGS_OK:
        return "success";
    case PGS_ENOMEM:
        return "out of memory";
    case PGS_EINVAL:
        return "invalid argument";
    case PGS_ECLOSED:
        return "closed";
    case PGS_EFULL:
        return "full";
    case PGS_ETIMEDOUT:
        return "timed out";
    case PGS_ENOTFOUND:
        return "not found";
    case PGS_EDEADLK:
        return "would deadlock";
    case PGS_ETHREAD:
        return "cannot start thread";
    case PGS_EEMPTY:
        return "empty";
    case PGS_EAGAIN:
        return "try again";
    case PGS_EIO:
        return "process statistic unavailable";
    }
    return "unknown error";
}
