// Shared plumbing for the whole library: error reporting, checked allocation,
// timing. No numerics here.
//
// Two kinds of failure, two mechanisms:
//  - bad user input (a file, a config value, a JSONL line): the function that
//    meets it calls rlhf_fail(...) and returns -1; the caller either passes
//    the -1 up or, in a driver, calls die_last() to print the reason and exit 1.
//  - a broken invariant (programmer error): ASSERT aborts with the condition.
#ifndef RLHF_COMMON_H
#define RLHF_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define RLHF_ALIGN 64

// The last input error, one line, set by rlhf_fail(). Includes the hint.
extern char rlhf_errmsg[1024];

// Formats a one-line reason into rlhf_errmsg and returns -1, so callers can
// write `return rlhf_fail("...")`.
int rlhf_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Prints "rlhf: error: <fmt>" to stderr and exits with status 1.
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

// Prints rlhf_errmsg (as set by the last rlhf_fail) and exits with status 1.
void die_last(void) __attribute__((noreturn));

// Invariant check that stays on in release builds; cheap conditions only.
#define ASSERT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "rlhf: internal error at %s:%d: %s\n", __FILE__, \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

// Allocation that never returns NULL: on failure it names file:line and exits.
// Memory from aligned_check is 64-byte aligned and freed with free().
void *malloc_check_(size_t size, const char *file, int line);
void *calloc_check_(size_t n, size_t size, const char *file, int line);
void *aligned_check_(size_t size, const char *file, int line);
void *realloc_check_(void *p, size_t size, const char *file, int line);
#define mallocCheck(n) malloc_check_((n), __FILE__, __LINE__)
#define callocCheck(n, s) calloc_check_((n), (s), __FILE__, __LINE__)
#define alignedCheck(n) aligned_check_((n), __FILE__, __LINE__)
#define reallocCheck(p, n) realloc_check_((p), (n), __FILE__, __LINE__)

// Duplicates a string with mallocCheck; the caller owns the result.
char *strdup_check(const char *s);

// Creates a directory and its parents (mkdir -p). Returns -1 with a reason.
int mkdir_p(const char *path);

// Monotonic wall clock in seconds.
double now_seconds(void);

#endif
