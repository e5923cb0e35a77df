// Error reporting and checked allocation; see common.h for the contract.
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dist.h"

char rlhf_errmsg[1024];

int rlhf_fail(const char *fmt, ...) {
    // format into a copy: callers often pass rlhf_errmsg itself as an
    // argument to add context ("FILE:LINE: %s")
    char buf[sizeof rlhf_errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    // one line whatever text it quotes (a JSON key with an escaped newline,
    // a file name): control characters become '?'
    for (char *c = buf; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    memcpy(rlhf_errmsg, buf, sizeof buf);
    return -1;
}

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("rlhf: error: ", stderr);
    if (dist_size() > 1) fprintf(stderr, "rank %d of %d: ", dist_rank(), dist_size());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    dist_exit(1);  // a job's other ranks end with this one
}

void die_last(void) {
    die("%s", rlhf_errmsg[0] ? rlhf_errmsg : "unknown failure");
}

static void oom(size_t size, const char *file, int line) {
    die("out of memory allocating %zu bytes (%s:%d); "
        "hint: a smaller model (n_layer, n_embd, block_size, or a smaller BPE vocab_size) "
        "or batch_size",
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
    if (!path[0])
        return rlhf_fail("cannot create a directory with an empty name; hint: give a path");
    char *p = strdup_check(path);
    int rc = 0;
    // every prefix ending at a '/', then the whole path
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char keep = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = rlhf_fail("cannot create directory '%s': %s; hint: check the path and its "
                           "permissions", path, strerror(errno));
            break;
        }
        *s = keep;
        if (!keep) break;
    }
    free(p);
    struct stat st;
    if (rc == 0 && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = rlhf_fail("cannot create directory '%s': a file of that name is in the way; hint: "
                       "give a directory path", path);
    return rc;
}

// ---------------------------------------------------------------------------
// Crash-safe file replacement

int fsync_parent_dir(const char *path) {
    size_t n = strlen(path);
    char *dir = mallocCheck(n + 2);
    const char *slash = strrchr(path, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else snprintf(dir, n + 2, "%.*s", (int)(slash - path), path);
    int rc = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        rc = rlhf_fail("%s: cannot open its directory %s to sync it: %s; hint: check the "
                       "directory's permissions", path, dir, strerror(errno));
    } else {
        if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
            rc = rlhf_fail("%s: in place, but its directory %s cannot be synced: %s; hint: "
                           "check the disk", path, dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

int atomic_rename(const char *tmp, const char *path) {
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rlhf_fail("%s: cannot rename %s into place: %s; hint: check the path and the "
                         "permissions of its directory", path, tmp, strerror(e));
    }
    return fsync_parent_dir(path);
}

// The no-replace form of atomic_rename: link(2) fails with EEXIST where
// rename(2) would replace.
static int atomic_link(const char *tmp, const char *path) {
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST)
            return rlhf_fail("%s: appeared while it was being written, and is kept; hint: move "
                             "it away or pass --force", path);
        return rlhf_fail("%s: cannot put %s in place: %s; hint: check the path and the "
                         "permissions of its directory", path, tmp, strerror(e));
    }
    unlink(tmp);
    return fsync_parent_dir(path);
}

// Puts the finished tmp in place as path: replacing what is there, or (an
// output named without --force) only if nothing has appeared there since
// output_check.
static int atomic_place(const char *tmp, const char *path, int no_replace) {
    return no_replace ? atomic_link(tmp, path) : atomic_rename(tmp, path);
}

int atomic_install(const char *tmp, const char *path, int no_replace) {
    // fsync through a read-only descriptor syncs the file's data all the same
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) close(fd);
        unlink(tmp);
        return rlhf_fail("%s: cannot sync %s to disk: %s; hint: check the disk and free space",
                         path, tmp, strerror(e));
    }
    close(fd);
    return atomic_place(tmp, path, no_replace);
}

int atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    char *tmp = mallocCheck(n + 5);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    // a stale PATH.tmp (even a link) is removed, so nothing is written through it
    int fd = -1;
    if (unlink(tmp) == 0 || errno == ENOENT) fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        int rc = rlhf_fail("%s: cannot create: %s; hint: check that the directory exists and is "
                           "writable", tmp, strerror(e));
        free(tmp);
        return rc;
    }
    af->f = f;
    af->path = strdup_check(path);
    af->tmp = tmp;
    return 0;
}

static void atomic_release(AtomicFile *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

// Flushes, fsyncs and closes PATH.tmp; on failure removes it.
static int atomic_finish(AtomicFile *af) {
    ASSERT(af->f);
    errno = 0;
    int ok = fflush(af->f) == 0 && !ferror(af->f);
    int e = ok ? 0 : (errno ? errno : EIO);
    if (ok && fsync(fileno(af->f)) != 0) ok = 0, e = errno;
    if (fclose(af->f) != 0 && ok) ok = 0, e = errno;
    af->f = NULL;
    if (ok) return 0;
    unlink(af->tmp);
    return rlhf_fail("%s: write failed: %s; hint: check free disk space", af->tmp, strerror(e));
}

int atomic_commit_set(AtomicFile *af, int n) {
    int rc = 0, placed = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = atomic_finish(&af[i]);
    for (int i = 0; i < n && rc == 0; i++) {
        if (atomic_place(af[i].tmp, af[i].path, af[i].no_replace) != 0) {
            if (placed > 0) {
                char why[sizeof rlhf_errmsg];
                snprintf(why, sizeof why, "%s", rlhf_errmsg);
                rlhf_fail("%s (the first %d of the set's %d files, from %s on, were already "
                          "replaced)", why, placed, n, af[0].path);
            }
            rc = -1;
        } else {
            placed++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (rc != 0 && !af[i].f && af[i].tmp) unlink(af[i].tmp);  // written, not placed
        atomic_abort(&af[i]);  // closes and removes what was never finished
    }
    return rc;
}

int atomic_commit(AtomicFile *af) { return atomic_commit_set(af, 1); }

void atomic_abort(AtomicFile *af) {
    if (af->f) {
        fclose(af->f);
        unlink(af->tmp);
    }
    atomic_release(af);
}

int output_check(const char *path, const char *option, int force, const char *const *inputs,
                 int n_inputs) {
    if (!path[0]) return rlhf_fail("%s needs a file name; hint: %s FILE", option, option);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return rlhf_fail("%s %s: is a directory; hint: give a file name", option, path);
        for (int i = 0; i < n_inputs; i++) {
            struct stat in;
            if (inputs[i] && stat(inputs[i], &in) == 0 && in.st_dev == st.st_dev &&
                in.st_ino == st.st_ino)
                return rlhf_fail("%s %s: is the input %s itself, which it would overwrite; "
                                 "hint: give a new file name", option, path, inputs[i]);
        }
        if (!force)
            return rlhf_fail("%s %s: already exists; hint: give a new file name, or pass "
                             "--force to replace it", option, path);
    }
    return 0;
}

int output_open(AtomicFile *af, const char *path, const char *option, int force,
                const char *const *inputs, int n_inputs) {
    memset(af, 0, sizeof *af);
    if (output_check(path, option, force, inputs, n_inputs) != 0) return -1;
    if (atomic_open(af, path) != 0) return rlhf_fail("%s %s", option, rlhf_errmsg);
    af->no_replace = !force;
    return 0;
}
