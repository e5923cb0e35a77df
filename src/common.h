// Shared plumbing for the whole library: error reporting, checked allocation,
// timing, directories and crash-safe file replacement. No numerics here.
//
// The error policy of the whole project, one mechanism per kind of failure:
//  - bad input or a failing environment (a file, a config value, a JSONL
//    line, a command-line argument, a full disk): library code (src/) calls
//    rlhf_fail(...) and returns -1 (or NULL); it never prints the error and
//    never exits. Callers pass the -1 up; only the drivers in train/ decide
//    to end the process, with die_last() (print the reason, exit 1).
//  - out of memory: only the *Check allocation wrappers below end the
//    process. Library code allocates through them (jsonl.c routes cJSON's
//    allocations there too); a third-party call that still reports running
//    out of memory is bad input like any other: -1 with a reason.
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
// write `return rlhf_fail("...")`. Control characters in it (from quoted
// input) become '?', so the reason is one line whatever it quotes.
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

// Creates a directory and its parents (mkdir -p); an existing directory is
// fine, an existing file of that name is not. Returns -1 with a reason.
int mkdir_p(const char *path);

// --- crash-safe file replacement -------------------------------------------
// Every file rlhf.c replaces is written as PATH.tmp and put in place in one
// step: the data is fsync'd, PATH.tmp renamed over PATH, and the directory
// fsync'd so that the rename itself survives a crash. PATH is always either
// the old file or the complete new one, and a failure leaves no PATH.tmp.
// Each function returns 0, or -1 with a reason (rlhf_fail).

// A file being written through stdio: write to af->f, then atomic_commit
// (or atomic_abort). af owns its strings until commit or abort.
typedef struct {
    FILE *f;         // PATH.tmp, open for writing
    char *path;      // the final name
    char *tmp;       // PATH.tmp
    int no_replace;  // commit refuses to replace an existing PATH (output_open)
} AtomicFile;

// Creates PATH.tmp, replacing a stale one (never writing through it). On
// failure af is left empty: atomic_abort on it is harmless.
int atomic_open(AtomicFile *af, const char *path);
// Flushes, fsyncs and closes PATH.tmp, renames it over PATH and fsyncs the
// directory. On failure PATH.tmp is removed and PATH left as it was (or, if
// only the directory sync failed, already replaced). Frees af either way.
int atomic_commit(AtomicFile *af);
// atomic_commit for files that belong together (an export's weights, config
// and tokenizer): every PATH.tmp is written out and synced before the first
// is put in place, so a failed write (a full disk) changes none of them;
// only a failed rename, between the first and the last, can leave some
// replaced (the error names them). Frees every af either way.
int atomic_commit_set(AtomicFile *af, int n);
// Closes and removes PATH.tmp and frees af. Safe on a zeroed af, after a
// failed atomic_open and after atomic_commit.
void atomic_abort(AtomicFile *af);

// An output file that a command-line option names (`--json FILE`): the one
// way every command opens one. `option` names it in errors ("--json").
// Refuses an empty name, a directory, and a file that is one of inputs[]
// (n_inputs paths the command reads, NULL ones skipped; the same file under
// any name),
// even with force. An existing file is refused unless force; without force,
// atomic_commit then puts PATH in place only if no file has appeared there
// meanwhile (link, not rename), so no run overwrites what another wrote.
int output_open(AtomicFile *af, const char *path, const char *option, int force,
                const char *const *inputs, int n_inputs);
// output_open's checks alone, creating nothing: a command calls it before
// its work so that a bad name fails at once, and output_open when it writes.
int output_check(const char *path, const char *option, int force, const char *const *inputs,
                 int n_inputs);

// The last steps of atomic_commit for a tmp file that was written and closed
// by other means (an HDF5 file): fsync tmp, rename it over path, fsync the
// directory. With no_replace (an output that output_check passed without
// force) tmp is linked to path instead, which fails if a file has appeared
// there meanwhile: that file is kept. tmp is removed on failure.
int atomic_install(const char *tmp, const char *path, int no_replace);
// rename + directory fsync only, for a tmp that cannot be fsync'd itself (a
// symbolic link). tmp is removed on failure.
int atomic_rename(const char *tmp, const char *path);
// fsyncs the directory that holds path. A filesystem that cannot sync a
// directory (EINVAL, ENOTSUP) counts as success: the rename is all it offers.
int fsync_parent_dir(const char *path);

// Monotonic wall clock in seconds.
double now_seconds(void);

#endif
