/*
 * process_stats.c - resident memory and OS thread count of this process,
 * the two platform-specific readers behind sampler.h.
 */
#include "sampler.h"

#include "pgs_error.h"

#if defined(__linux__)

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read up to size - 1 bytes of a small /proc file and NUL-terminate them;
   returns the byte count or -1. */
static ssize_t
read_small_file(const char *path, char *buffer, size_t size)
{
    ssize_t total = 0, n;
    int fd;

    do {
        fd = open(path, O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    while ((size_t)total < size - 1) {
        n = read(fd, buffer + total, size - 1 - (size_t)total);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        total += n;
    }
    close(fd);
    buffer[total] = '\0';
    return total;
}


int
pgs_read_rss_bytes(int64_t *out)
{
    char buffer[256];
    unsigned long long size_pages, resident_pages;
    long page_size = sysconf(_SC_PAGESIZE);

    /* statm: total program size, then resident set size, in pages. */
    if (read_small_file("/proc/self/statm", buffer, sizeof(buffer)) <= 0)
        return PGS_EIO;
    if (sscanf(buffer, "%llu %llu", &size_pages, &resident_pages) != 2 ||
        page_size <= 0)
        return PGS_EIO;
    *out = (int64_t)resident_pages * (int64_t)page_size;
    return PGS_OK;
}


static int
count_task_entries(int64_t *out)
{
    DIR *dir = opendir("/proc/self/task");
    struct dirent *entry;
    int64_t n = 0;

    if (dir == NULL)
        return PGS_EIO;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.')
            n++;
    }
    closedir(dir);
    *out = n;
    return PGS_OK;
}


int
pgs_read_os_threads(int64_t *out)
{
    char buffer[4096];
    const char *line;
    long long threads;

    /* The "Threads:" line of status is one read; listing task/ is the
       fallback for kernels or sandboxes that leave the line out. */
    if (read_small_file("/proc/self/status", buffer, sizeof(buffer)) > 0) {
        line = strstr(buffer, "\nThreads:");
        if (line != NULL && sscanf(line + 9, "%lld", &threads) == 1) {
            *out = threads;
            return PGS_OK;
        }
    }
    return count_task_entries(out);
}

#elif defined(__APPLE__)

#include <mach/mach.h>

int
pgs_read_rss_bytes(int64_t *out)
{
    mach_task_basic_info_data_t info;
    mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;

    if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, (task_info_t)&info,
                  &count) != KERN_SUCCESS)
        return PGS_EIO;
    *out = (int64_t)info.resident_size;
    return PGS_OK;
}


int
pgs_read_os_threads(int64_t *out)
{
    thread_act_array_t threads;
    mach_msg_type_number_t count, i;

    if (task_threads(mach_task_self(), &threads, &count) != KERN_SUCCESS)
        return PGS_EIO;
    for (i = 0; i < count; i++)
        mach_port_deallocate(mach_task_self(), threads[i]);
    vm_deallocate(mach_task_self(), (vm_address_t)threads,
                  count * sizeof(threads[0]));
    *out = (int64_t)count;
    return PGS_OK;
}

#else

/* TODO: other platforms report neither gauge until a reader is written. */
int
pgs_read_rss_bytes(int64_t *out)
{
    (void)out;
    return PGS_EIO;
}


int
pgs_read_os_threads(int64_t *out)
{
    (void)out;
    return PGS_EIO;
}

#endif
