// The scratch directory of a test binary; see scratch.h.
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

int scratch_make(const char *name) {
    snprintf(dir, sizeof dir, "/tmp/rlhf_test_%s_XXXXXX", name);
    return mkdtemp(dir) ? 0 : -1;
}

int scratch_remove(void) {
    if (!dir[0]) return 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

const char *scratch_dir(void) { return dir; }

const char *scratch_path(const char *file) {
    static char bufs[4][256];
    static int k;
    char *b = bufs[k++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, file);
    return b;
}
