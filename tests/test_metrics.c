// Tests for metrics.c: NaN fill of late columns, the CSV mirror (content,
// header rewrite when a column appears, rows flushed as committed), whole
// columns from a checkpoint, truncation on resume, and names with '/'
// (grouped columns). CSVs go to mkdtemp.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "metrics.h"

static char tmpdir[64];
static char csv_path[128], tmp_path[140];

static int group_setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_metrics_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(csv_path, sizeof csv_path, "%s/metrics.csv", tmpdir);
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp", csv_path);
    return 0;
}

static int group_teardown(void **state) {
    remove(csv_path);
    remove(tmp_path);
    return rmdir(tmpdir);
}

// The whole file as a string (caller frees), read while the writer may
// still hold it open: what is there is what a killed run leaves behind.
static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void assert_file_equal(const char *path, const char *want) {
    char *got = read_file(path);
    assert_string_equal(got, want);
    free(got);
}

static void test_nan_fill(void **state) {
    Metrics mt;
    metrics_init(&mt);
    metrics_set(&mt, "step", 1);
    metrics_set(&mt, "loss", 2.5);
    metrics_commit(&mt);
    metrics_set(&mt, "step", 2);
    metrics_set(&mt, "val_loss", 3.0);  // new column: row 0 gets NaN
    metrics_commit(&mt);
    assert_int_equal(mt.ncols, 3);
    assert_int_equal(mt.nrows, 2);
    int step = metrics_col(&mt, "step"), loss = metrics_col(&mt, "loss"),
        val = metrics_col(&mt, "val_loss");
    assert_int_equal(step, 0);
    assert_int_equal(loss, 1);
    assert_int_equal(val, 2);
    assert_int_equal(metrics_col(&mt, "lr"), -1);
    assert_true(mt.cols[step][0] == 1 && mt.cols[step][1] == 2);
    assert_true(mt.cols[loss][0] == 2.5);
    assert_true(isnan(mt.cols[loss][1]));  // not set in row 1
    assert_true(isnan(mt.cols[val][0]));   // column did not exist in row 0
    assert_true(mt.cols[val][1] == 3.0);
    // the pending row was cleared by commit
    for (int c = 0; c < mt.ncols; c++) assert_true(isnan(mt.pending[c]));
    metrics_free(&mt);
}

static void test_empty_commit_and_overwrite(void **state) {
    Metrics mt;
    metrics_init(&mt);
    metrics_commit(&mt);  // nothing set: no row
    assert_int_equal(mt.nrows, 0);
    metrics_set(&mt, "step", 1);
    metrics_set(&mt, "step", 5);  // the last value set wins
    metrics_commit(&mt);
    metrics_commit(&mt);  // pending is all NaN again: no row
    assert_int_equal(mt.nrows, 1);
    assert_true(mt.cols[0][0] == 5);
    metrics_free(&mt);
}

static void test_many_rows(void **state) {
    Metrics mt;
    metrics_init(&mt);
    for (int i = 0; i < 1000; i++) {  // well past the first allocation
        metrics_set(&mt, "step", i);
        if (i % 3 == 0) metrics_set(&mt, "loss", 1.0 / (i + 1));
        metrics_commit(&mt);
    }
    assert_int_equal(mt.nrows, 1000);
    int loss = metrics_col(&mt, "loss");
    for (int i = 0; i < 1000; i++) {
        assert_true(mt.cols[0][i] == i);
        if (i % 3 == 0)
            assert_true(mt.cols[loss][i] == 1.0 / (i + 1));
        else
            assert_true(isnan(mt.cols[loss][i]));
    }
    metrics_free(&mt);
}

static void test_csv_content(void **state) {
    Metrics mt;
    metrics_init(&mt);
    assert_int_equal(metrics_open_csv(&mt, csv_path), 0);
    assert_file_equal(csv_path, "");  // no columns yet
    metrics_set(&mt, "step", 1);
    metrics_set(&mt, "loss", 2.5);
    metrics_commit(&mt);
    metrics_set(&mt, "step", 2);
    metrics_set(&mt, "loss", 1.0 / 3.0);
    metrics_commit(&mt);
    metrics_set(&mt, "step", 3);  // loss unset: empty cell
    metrics_commit(&mt);
    metrics_set(&mt, "loss", 1e-12);
    metrics_set(&mt, "step", 1234567);
    metrics_commit(&mt);
    // read while still open: every committed row is already on disk
    assert_file_equal(csv_path, "step,loss\n1,2.5\n2,0.333333333\n3,\n1234567,1e-12\n");
    metrics_free(&mt);
    assert_int_equal(access(tmp_path, F_OK), -1);  // no leftover PATH.tmp
}

static void test_csv_late_column_rewrites_header(void **state) {
    Metrics mt;
    metrics_init(&mt);
    assert_int_equal(metrics_open_csv(&mt, csv_path), 0);
    metrics_set(&mt, "step", 1);
    metrics_set(&mt, "loss", 4);
    metrics_commit(&mt);
    metrics_set(&mt, "step", 2);
    metrics_set(&mt, "loss", 3);
    metrics_commit(&mt);
    assert_file_equal(csv_path, "step,loss\n1,4\n2,3\n");
    metrics_set(&mt, "step", 3);
    metrics_set(&mt, "val_loss", 3.5);
    metrics_commit(&mt);
    assert_file_equal(csv_path, "step,loss,val_loss\n1,4,\n2,3,\n3,,3.5\n");
    metrics_set(&mt, "step", 4);  // and appending goes on after the rewrite
    metrics_set(&mt, "loss", 2);
    metrics_commit(&mt);
    assert_file_equal(csv_path, "step,loss,val_loss\n1,4,\n2,3,\n3,,3.5\n4,2,\n");
    assert_int_equal(access(tmp_path, F_OK), -1);
    metrics_free(&mt);
}

static void test_open_csv_writes_existing_rows(void **state) {
    Metrics mt;
    metrics_init(&mt);
    metrics_set(&mt, "step", 10);
    metrics_set(&mt, "lr", 0.5);
    metrics_commit(&mt);
    // an old, longer CSV from an earlier run is replaced, not appended to
    FILE *f = fopen(csv_path, "w");
    assert_non_null(f);
    fputs("step,lr\n10,0.5\n20,0.25\n30,0.125\n", f);
    fclose(f);
    assert_int_equal(metrics_open_csv(&mt, csv_path), 0);
    assert_file_equal(csv_path, "step,lr\n10,0.5\n");
    metrics_free(&mt);
}

static void test_open_csv_error(void **state) {
    Metrics mt;
    metrics_init(&mt);
    char path[200];
    snprintf(path, sizeof path, "%s/no_such_dir/metrics.csv", tmpdir);
    rlhf_errmsg[0] = '\0';
    assert_int_equal(metrics_open_csv(&mt, path), -1);
    assert_non_null(strstr(rlhf_errmsg, path));
    assert_non_null(strstr(rlhf_errmsg, "hint"));
    metrics_set(&mt, "step", 1);  // the table still works without a CSV
    metrics_commit(&mt);
    assert_int_equal(mt.nrows, 1);
    metrics_free(&mt);
}

static void test_add_column(void **state) {
    Metrics mt;
    metrics_init(&mt);
    const double step[3] = {100, 200, 300}, loss[3] = {5, NAN, 4};
    metrics_add_column(&mt, "step", step, 3);
    assert_int_equal(mt.nrows, 3);  // the first column sets nrows
    metrics_add_column(&mt, "loss", loss, 3);
    assert_int_equal(mt.ncols, 2);
    assert_true(mt.cols[1][0] == 5 && isnan(mt.cols[1][1]) && mt.cols[1][2] == 4);
    metrics_set(&mt, "step", 400);
    metrics_set(&mt, "loss", 3);
    metrics_commit(&mt);
    assert_int_equal(mt.nrows, 4);
    assert_int_equal(metrics_open_csv(&mt, csv_path), 0);
    assert_file_equal(csv_path, "step,loss\n100,5\n200,\n300,4\n400,3\n");
    metrics_free(&mt);
}

static void test_truncate_after(void **state) {
    Metrics mt;
    metrics_init(&mt);
    for (int s = 1; s <= 5; s++) {
        metrics_set(&mt, "step", 10 * s);
        metrics_set(&mt, "loss", 6 - s);
        metrics_commit(&mt);
    }
    metrics_truncate_after(&mt, 30);  // resume from the checkpoint at step 30
    assert_int_equal(mt.nrows, 3);
    assert_true(mt.cols[0][2] == 30 && mt.cols[1][2] == 3);
    metrics_truncate_after(&mt, 1000);  // nothing later: unchanged
    assert_int_equal(mt.nrows, 3);
    assert_int_equal(metrics_open_csv(&mt, csv_path), 0);
    metrics_set(&mt, "step", 40);  // the resumed run logs step 40 again
    metrics_set(&mt, "loss", 2.5);
    metrics_commit(&mt);
    assert_file_equal(csv_path, "step,loss\n10,5\n20,4\n30,3\n40,2.5\n");
    // with the CSV open, truncation rewrites it too
    metrics_truncate_after(&mt, 15);
    assert_int_equal(mt.nrows, 1);
    assert_file_equal(csv_path, "step,loss\n10,5\n");
    metrics_free(&mt);
}

// Names with '/' (TRL's "rewards/chosen"): valid where every part is a
// name; a new column joins the columns of its group (longest shared group
// first), the order a checkpoint's nested /metrics groups list them in; the
// CSV header keeps the names as they are.
static void test_group_names(void **state) {
    assert_true(metrics_name_valid("rewards/chosen") && metrics_name_valid("a/b/c"));
    assert_true(metrics_name_valid("loss") && metrics_name_valid("x.y"));
    const char *bad[] = {"", "/a", "a/", "a//b", "./a", "a/..", "a,b", "a\"b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(metrics_name_valid(bad[i]));
    Metrics mt;
    metrics_init(&mt);
    assert_int_equal(metrics_open_csv(&mt, csv_path), 0);
    metrics_set(&mt, "step", 1);
    metrics_set(&mt, "rewards/chosen", 0.5);
    metrics_set(&mt, "loss", 0.25);
    metrics_set(&mt, "logps/chosen", -3);
    metrics_set(&mt, "rewards/rejected", -0.5);  // after rewards/chosen, not at the end
    metrics_commit(&mt);
    metrics_set(&mt, "step", 2);
    metrics_set(&mt, "a/b/x", 1);
    metrics_set(&mt, "rewards/margins", 1);
    metrics_set(&mt, "a/y", 2);    // after a/b/x: the group a
    metrics_set(&mt, "a/b/z", 3);  // after a/b/x, before a/y: the group a/b
    metrics_commit(&mt);
    const char *want[] = {"step", "rewards/chosen", "rewards/rejected", "rewards/margins", "loss",
                          "logps/chosen", "a/b/x", "a/b/z", "a/y"};
    assert_int_equal(mt.ncols, 9);
    for (int c = 0; c < 9; c++) assert_string_equal(mt.names[c], want[c]);
    assert_true(mt.cols[2][0] == -0.5 && isnan(mt.cols[2][1]));
    assert_true(isnan(mt.cols[3][0]) && mt.cols[3][1] == 1);
    assert_file_equal(csv_path,
                      "step,rewards/chosen,rewards/rejected,rewards/margins,loss,logps/chosen,"
                      "a/b/x,a/b/z,a/y\n1,0.5,-0.5,,0.25,-3,,,\n2,,,1,,,1,3,2\n");
    metrics_free(&mt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_fill),
        cmocka_unit_test(test_empty_commit_and_overwrite),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_csv_content),
        cmocka_unit_test(test_csv_late_column_rewrites_header),
        cmocka_unit_test(test_open_csv_writes_existing_rows),
        cmocka_unit_test(test_open_csv_error),
        cmocka_unit_test(test_add_column),
        cmocka_unit_test(test_truncate_after),
        cmocka_unit_test(test_group_names),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
