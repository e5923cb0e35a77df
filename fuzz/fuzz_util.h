// Shared by the libFuzzer harnesses (fuzz/fuzz_*.c): the library reads
// files by path, so each input is written to a file first.
#ifndef RLHF_FUZZ_UTIL_H
#define RLHF_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// PATH of a scratch file named NAME in this process's scratch directory
// (under TMPDIR, /dev/shm when it exists), written with data[0..n).
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t n) {
    static char dir[256];
    static char path[512];
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof dir, "%s/rlhf_fuzz_%d", base, (int)getpid());
        char cmd[300];
        snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
        if (system(cmd) != 0) abort();
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    if (fclose(f) != 0) abort();
    return path;
}

// An invariant of the code under test: a failure is a crash the fuzzer keeps.
#define FUZZ_CHECK(cond)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz check failed at %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                       \
            abort();                                                              \
        }                                                                         \
    } while (0)

#endif
