// Tests for common.c's file plumbing: mkdir_p, and crash-safe replacement
// (AtomicFile, atomic_install, atomic_rename) that leaves PATH old or
// complete and never a PATH.tmp; every failure is -1 with a one-line reason.
// Files go to mkdtemp.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "scratch.h"

static int group_setup(void **state) { return scratch_make("common"); }

static int group_teardown(void **state) { return scratch_remove(); }

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void assert_text(const char *path, const char *want) {
    char buf[256] = "";
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_string_equal(buf, want);
}

static void assert_msg_has(const char *want) {
    if (!strstr(rlhf_errmsg, want)) fail_msg("message \"%s\" lacks \"%s\"", rlhf_errmsg, want);
    if (!strstr(rlhf_errmsg, "; hint: ")) fail_msg("message \"%s\" has no hint", rlhf_errmsg);
    assert_null(strchr(rlhf_errmsg, '\n'));
}

static void test_mkdir_p(void **state) {
    assert_int_equal(mkdir_p(scratch_path("m/n/o")), 0);
    struct stat st;
    assert_int_equal(stat(scratch_path("m/n/o"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(mkdir_p(scratch_path("m/n/o")), 0);  // already there
    assert_int_equal(mkdir_p(scratch_path("m/n/")), 0);   // a trailing slash
    write_text(scratch_path("m/file"), "x");
    rlhf_errmsg[0] = '\0';
    assert_int_equal(mkdir_p(scratch_path("m/file")), -1);  // a file in the way
    assert_msg_has("m/file");
    rlhf_errmsg[0] = '\0';
    assert_int_equal(mkdir_p(scratch_path("m/file/sub")), -1);
    assert_msg_has("cannot create directory");
    assert_int_equal(mkdir_p(""), -1);
}

static void test_atomic_commit_replaces(void **state) {
    const char *path = scratch_path("a.txt"), *tmp = scratch_path("a.txt.tmp");
    write_text(path, "old\n");
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path), 0);
    fputs("new\n", af.f);
    assert_text(path, "old\n");  // untouched until the commit
    assert_true(exists(tmp));
    assert_int_equal(atomic_commit(&af), 0);
    assert_text(path, "new\n");
    assert_false(exists(tmp));
    assert_null(af.f);
    atomic_abort(&af);  // harmless after a commit
    assert_text(path, "new\n");
}

static void test_atomic_abort_keeps_old(void **state) {
    const char *path = scratch_path("b.txt"), *tmp = scratch_path("b.txt.tmp");
    write_text(path, "old\n");
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path), 0);
    fputs("half", af.f);
    atomic_abort(&af);
    assert_text(path, "old\n");
    assert_false(exists(tmp));
    AtomicFile zero = {0};
    atomic_abort(&zero);  // harmless on a zeroed one
}

// A stale PATH.tmp that is a link to another file is replaced, not written
// through.
static void test_atomic_stale_link(void **state) {
    const char *path = scratch_path("c.txt"), *tmp = scratch_path("c.txt.tmp"), *victim = scratch_path("victim");
    write_text(victim, "keep\n");
    assert_int_equal(symlink(victim, tmp), 0);
    AtomicFile af;
    assert_int_equal(atomic_open(&af, path), 0);
    fputs("data\n", af.f);
    assert_int_equal(atomic_commit(&af), 0);
    assert_text(victim, "keep\n");
    assert_text(path, "data\n");
    assert_false(exists(tmp));
}

static void test_atomic_open_fails(void **state) {
    AtomicFile af;
    rlhf_errmsg[0] = '\0';
    assert_int_equal(atomic_open(&af, scratch_path("no/such/dir/x")), -1);
    assert_msg_has("no/such/dir/x.tmp: cannot create: No such file or directory");
    assert_null(af.f);
    atomic_abort(&af);  // harmless after a failed open
}

// The rename fails (a non-empty directory sits at PATH): -1 naming PATH,
// the tmp removed, PATH as it was.
static void test_atomic_rename_fails(void **state) {
    const char *dir = scratch_path("adir"), *inner = scratch_path("adir/x"), *tmp = scratch_path("adir.tmp");
    assert_int_equal(mkdir(dir, 0755), 0);
    write_text(inner, "inside\n");
    AtomicFile af;
    assert_int_equal(atomic_open(&af, dir), 0);
    fputs("data\n", af.f);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(atomic_commit(&af), -1);
    assert_msg_has("cannot rename");
    assert_msg_has(dir);
    assert_false(exists(tmp));
    assert_text(inner, "inside\n");
}

// A set of three whose second file cannot be written (a file-size limit, as
// on a full disk): none of the three is replaced, no tmp is left.
static void test_atomic_set_write_fails(void **state) {
    const char *p[3] = {scratch_path("set_a"), scratch_path("set_b"), scratch_path("set_c")};
    char *path[3], tmp[3][4096];
    for (int i = 0; i < 3; i++) {
        path[i] = strdup(p[i]);
        write_text(path[i], "old\n");
        snprintf(tmp[i], sizeof tmp[i], "%s.tmp", path[i]);
    }
    AtomicFile af[3];
    for (int i = 0; i < 3; i++) assert_int_equal(atomic_open(&af[i], path[i]), 0);
    fputs("new\n", af[0].f);
    fputs("new\n", af[2].f);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {1024, old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int k = 0; k < 8192; k++) fputc('x', af[1].f);  // past the limit
    rlhf_errmsg[0] = '\0';
    int rc = atomic_commit_set(af, 3);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(rc, -1);
    assert_msg_has("write failed");
    for (int i = 0; i < 3; i++) {
        assert_text(path[i], "old\n");
        assert_false(exists(tmp[i]));
        free(path[i]);
    }
}

// A set whose second rename fails (a non-empty directory at its name): the
// first is in place, the third is not, the error says which, no tmp left.
static void test_atomic_set_rename_fails(void **state) {
    const char *p[3] = {scratch_path("rs_a"), scratch_path("rs_dir"), scratch_path("rs_c")};
    char *path[3];
    for (int i = 0; i < 3; i++) path[i] = strdup(p[i]);
    write_text(path[0], "old\n");
    write_text(path[2], "old\n");
    assert_int_equal(mkdir(path[1], 0755), 0);
    write_text(scratch_path("rs_dir/x"), "inside\n");
    AtomicFile af[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_open(&af[i], path[i]), 0);
        fputs("new\n", af[i].f);
    }
    rlhf_errmsg[0] = '\0';
    assert_int_equal(atomic_commit_set(af, 3), -1);
    assert_msg_has("cannot rename");
    assert_msg_has("the first 1 of the set's 3 files");
    assert_text(path[0], "new\n");
    assert_text(path[2], "old\n");
    assert_text(scratch_path("rs_dir/x"), "inside\n");
    for (int i = 0; i < 3; i++) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", path[i]);
        assert_false(exists(tmp));
        free(path[i]);
    }
}

// A file written and closed by other means, and a symbolic link.
static void test_atomic_install_and_rename(void **state) {
    const char *tmp = scratch_path("d.h5.tmp"), *path = scratch_path("d.h5");
    write_text(tmp, "payload\n");
    assert_int_equal(atomic_install(tmp, path, 0), 0);
    assert_text(path, "payload\n");
    assert_false(exists(tmp));
    rlhf_errmsg[0] = '\0';
    assert_int_equal(atomic_install(scratch_path("missing.tmp"), scratch_path("missing"), 0), -1);
    assert_msg_has("cannot sync");

    const char *link_tmp = scratch_path("latest.tmp"), *link = scratch_path("latest");
    assert_int_equal(symlink("d.h5", link_tmp), 0);
    assert_int_equal(atomic_rename(link_tmp, link), 0);
    char target[64];
    ssize_t n = readlink(link, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "d.h5");
    assert_false(exists(link_tmp));
}

// The no-replace forms (outputs named without --force): a file that appeared
// at PATH after output_check is kept; with nothing there the file is placed.
static void test_no_replace_keeps_newcomer(void **state) {
    const char *path = scratch_path("out.json");
    AtomicFile af;
    assert_int_equal(output_open(&af, path, "--json", 0, NULL, 0), 0);
    fputs("ours\n", af.f);
    write_text(path, "theirs\n");  // appears while ours is being written
    rlhf_errmsg[0] = '\0';
    assert_int_equal(atomic_commit(&af), -1);
    assert_msg_has("appeared while it was being written, and is kept");
    assert_text(path, "theirs\n");
    assert_false(exists(scratch_path("out.json.tmp")));

    const char *tmp = scratch_path("e.h5.tmp"), *dst = scratch_path("e.h5");
    write_text(dst, "theirs\n");
    write_text(tmp, "ours\n");
    rlhf_errmsg[0] = '\0';
    assert_int_equal(atomic_install(tmp, dst, 1), -1);
    assert_msg_has("appeared while it was being written, and is kept");
    assert_text(dst, "theirs\n");
    assert_false(exists(tmp));
    assert_int_equal(unlink(dst), 0);
    write_text(tmp, "ours\n");
    assert_int_equal(atomic_install(tmp, dst, 1), 0);  // nothing there: placed
    assert_text(dst, "ours\n");
    assert_false(exists(tmp));
}

static void test_fsync_parent_dir(void **state) {
    assert_int_equal(fsync_parent_dir(scratch_path("anything")), 0);
    assert_int_equal(fsync_parent_dir("relative_name"), 0);  // the current directory
    assert_int_equal(fsync_parent_dir("/top_level_name"), 0);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(fsync_parent_dir(scratch_path("no/such/x")), -1);
    assert_msg_has("no/such");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_atomic_commit_replaces),
        cmocka_unit_test(test_atomic_abort_keeps_old),
        cmocka_unit_test(test_atomic_stale_link),
        cmocka_unit_test(test_atomic_open_fails),
        cmocka_unit_test(test_atomic_rename_fails),
        cmocka_unit_test(test_atomic_set_write_fails),
        cmocka_unit_test(test_atomic_set_rename_fails),
        cmocka_unit_test(test_atomic_install_and_rename),
        cmocka_unit_test(test_no_replace_keeps_newcomer),
        cmocka_unit_test(test_fsync_parent_dir),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
