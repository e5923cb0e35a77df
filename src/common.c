// Error reporting and checked allocation; see common.h for the contract.
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

char rlhf_errmsg[1024];

int rlhf_fail(const char *fmt, ...) {
    // format into a copy: callers often pass rlhf_errmsg itself as an
    // argument to add context ("FILE:LINE: %s")
    char buf[sizeof rlhf_errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(rlhf_errmsg, buf, sizeof buf);
    return -1;
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rlhf: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

void die_last(void) {
    die("%s", rlhf_errmsg[0] ? rlhf_errmsg : "unknown failure");
}

static void oom(size_t size, const char *file, int line) {
    die("out of memory allocating %zu bytes (%s:%d); "
        "hint: use a smaller batch_size, block_size or model",
        size, file, line);
}

void *malloc_check_(size_t size, const char *file, int line) {
    void *p = malloc(size ? size : 1);
    if (!p) oom(size, file, line);
    return p;
}

void *calloc_check_(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size, file, line);
    return p;
}

void *aligned_check_(size_t size, const char *file, int line) {
    size_t rounded = (size + RLHF_ALIGN - 1) / RLHF_ALIGN * RLHF_ALIGN;
    void *p = aligned_alloc(RLHF_ALIGN, rounded ? rounded : RLHF_ALIGN);
    if (!p) oom(size, file, line);
    return p;
}

void *realloc_check_(void *old, size_t size, const char *file, int line) {
    void *p = realloc(old, size ? size : 1);
    if (!p) oom(size, file, line);
    return p;
}

char *strdup_check(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = mallocCheck(n);
    memcpy(d, s, n);
    return d;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int mkdir_p(const char *path) {
    char *p = strdup_check(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            free(p);
            return rlhf_fail("cannot create directory '%s': %s; hint: check the path and "
                             "its permissions", path, strerror(errno));
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        rc = rlhf_fail("cannot create directory '%s': %s; hint: check the path and its "
                       "permissions", path, strerror(errno));
    free(p);
    return rc;
}
