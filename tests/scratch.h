// A scratch directory for one test binary: made in a group setup, removed
// with everything in it in the group teardown.
#ifndef RLHF_TESTS_SCRATCH_H
#define RLHF_TESTS_SCRATCH_H

// Makes /tmp/rlhf_test_NAME_XXXXXX; 0, or -1 if it cannot.
int scratch_make(const char *name);
// Removes it and all it holds; 0, or -1 if that failed.
int scratch_remove(void);
// The directory itself.
const char *scratch_dir(void);
// DIR/FILE, in one of four rotating buffers (four may be alive at once).
const char *scratch_path(const char *file);

#endif
