// Training curves as a growable table of named double columns, mirrored to
// a CSV as rows are committed. Storing the table in a checkpoint is
// checkpoint.c's job; this file only keeps it in memory and on the CSV.
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

void metrics_init(Metrics *mt) { memset(mt, 0, sizeof *mt); }

void metrics_free(Metrics *mt) {
    if (mt->csv) fclose(mt->csv);
    for (int c = 0; c < mt->ncols; c++) {
        free(mt->names[c]);
        free(mt->cols[c]);
    }
    free(mt->names);
    free(mt->cols);
    free(mt->pending);
    free(mt->csv_path);
    memset(mt, 0, sizeof *mt);
}

int metrics_col(const Metrics *mt, const char *name) {
    for (int c = 0; c < mt->ncols; c++)
        if (strcmp(mt->names[c], name) == 0) return c;
    return -1;
}

// Room for at least `rows` rows in every column.
static void metrics_reserve(Metrics *mt, size_t rows) {
    if (rows <= mt->cap) return;
    size_t cap = mt->cap ? mt->cap : 64;
    while (cap < rows) cap *= 2;
    for (int c = 0; c < mt->ncols; c++)
        mt->cols[c] = reallocCheck(mt->cols[c], cap * sizeof(double));
    mt->cap = cap;
}

int metrics_name_valid(const char *name) {
    // names go into a CSV header and HDF5 paths unquoted
    if (!name[0] || strpbrk(name, ",\"\n\r")) return 0;
    for (const char *part = name;;) {
        size_t n = strcspn(part, "/");
        if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && !strncmp(part, "..", 2))) return 0;
        if (!part[n]) return 1;
        part += n + 1;
    }
}

// Whether one of a and b is a group of the other ("x" and "x/y"): HDF5
// cannot hold both.
static bool is_group_of(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    if (na > nb) return is_group_of(b, a);
    return na < nb && !strncmp(a, b, na) && b[na] == '/';
}

// Where a new column goes: after the last column that shares its longest
// group prefix ("a/b/x" after the last "a/b/..." column, else after the last
// "a/..." one), else at the end.
static int insert_position(const Metrics *mt, const char *name) {
    for (size_t len = strlen(name); len > 0; len--) {
        if (name[len - 1] != '/') continue;
        for (int c = mt->ncols - 1; c >= 0; c--)
            if (!strncmp(mt->names[c], name, len)) return c + 1;
    }
    return mt->ncols;
}

// Adds a column of NaN (nrows of them) and returns its index.
static int metrics_new_column(Metrics *mt, const char *name) {
    ASSERT(metrics_name_valid(name));
    for (int k = 0; k < mt->ncols; k++) ASSERT(!is_group_of(mt->names[k], name));
    const int c = insert_position(mt, name);
    mt->ncols++;
    mt->names = reallocCheck(mt->names, (size_t)mt->ncols * sizeof(char *));
    mt->cols = reallocCheck(mt->cols, (size_t)mt->ncols * sizeof(double *));
    mt->pending = reallocCheck(mt->pending, (size_t)mt->ncols * sizeof(double));
    const size_t after = (size_t)(mt->ncols - 1 - c);
    memmove(mt->names + c + 1, mt->names + c, after * sizeof(char *));
    memmove(mt->cols + c + 1, mt->cols + c, after * sizeof(double *));
    memmove(mt->pending + c + 1, mt->pending + c, after * sizeof(double));
    mt->names[c] = strdup_check(name);
    mt->cols[c] = mallocCheck((mt->cap ? mt->cap : 1) * sizeof(double));
    for (size_t r = 0; r < mt->nrows; r++) mt->cols[c][r] = NAN;
    mt->pending[c] = NAN;
    return c;
}

void metrics_set(Metrics *mt, const char *name, double value) {
    int c = metrics_col(mt, name);
    if (c < 0) c = metrics_new_column(mt, name);
    mt->pending[c] = value;
}

// ---------------------------------------------------------------------------
// CSV mirror

static void csv_write_row(FILE *f, const Metrics *mt, size_t r) {
    for (int c = 0; c < mt->ncols; c++) {
        if (c) fputc(',', f);
        double v = mt->cols[c][r];
        if (!isnan(v)) fprintf(f, "%.9g", v);
    }
    fputc('\n', f);
}

// Writes the whole table to csv_path (atomically, via csv_path.tmp), then
// keeps the file open for appending. Returns -1 with a reason on failure
// (the CSV mirror is then closed; the table itself is intact).
static int csv_rewrite(Metrics *mt) {
    if (mt->csv) fclose(mt->csv);
    mt->csv = NULL;
    const char *path = mt->csv_path;
    AtomicFile af;
    if (atomic_open(&af, path) != 0)
        return rlhf_fail("cannot write metrics CSV: %s", rlhf_errmsg);
    FILE *f = af.f;
    for (int c = 0; c < mt->ncols; c++) fprintf(f, "%s%s", c ? "," : "", mt->names[c]);
    if (mt->ncols) fputc('\n', f);
    for (size_t r = 0; r < mt->nrows; r++) csv_write_row(f, mt, r);
    if (atomic_commit(&af) != 0) return rlhf_fail("cannot write metrics CSV: %s", rlhf_errmsg);
    mt->csv = fopen(path, "a");
    if (!mt->csv)
        return rlhf_fail("cannot append to metrics CSV %s (%s); hint: check its permissions",
                         path, strerror(errno));
    mt->csv_ncols = mt->ncols;
    return 0;
}

// For updates that cannot return an error: warn once and stop mirroring.
// The table (and so the checkpoint) still has every row.
static void csv_rewrite_or_warn(Metrics *mt) {
    if (csv_rewrite(mt) == 0) return;
    fprintf(stderr, "rlhf: warning: %s; metrics are still saved in checkpoints\n", rlhf_errmsg);
    if (mt->csv) fclose(mt->csv);
    mt->csv = NULL;
}

int metrics_open_csv(Metrics *mt, const char *path) {
    if (mt->csv) fclose(mt->csv);
    mt->csv = NULL;
    free(mt->csv_path);
    mt->csv_path = strdup_check(path);
    return csv_rewrite(mt);
}

// ---------------------------------------------------------------------------
// Rows and columns

void metrics_commit(Metrics *mt) {
    bool any = false;
    for (int c = 0; c < mt->ncols; c++) any = any || !isnan(mt->pending[c]);
    if (!any) return;
    metrics_reserve(mt, mt->nrows + 1);
    for (int c = 0; c < mt->ncols; c++) {
        mt->cols[c][mt->nrows] = mt->pending[c];
        mt->pending[c] = NAN;
    }
    mt->nrows++;
    if (!mt->csv) return;
    if (mt->csv_ncols != mt->ncols) {
        csv_rewrite_or_warn(mt);  // a new column: the header must change
        return;
    }
    csv_write_row(mt->csv, mt, mt->nrows - 1);
    if (fflush(mt->csv) != 0) {
        rlhf_fail("cannot append to metrics CSV %s (%s); hint: is the disk full?",
                  mt->csv_path, strerror(errno));
        fprintf(stderr, "rlhf: warning: %s; metrics are still saved in checkpoints\n",
                rlhf_errmsg);
        fclose(mt->csv);
        mt->csv = NULL;
    }
}

void metrics_add_column(Metrics *mt, const char *name, const double *values, size_t nrows) {
    if (mt->ncols == 0) {
        ASSERT(mt->nrows == 0);
        mt->nrows = nrows;
    }
    ASSERT(nrows == mt->nrows);
    int c = metrics_col(mt, name);
    if (c < 0) {
        metrics_reserve(mt, nrows);
        c = metrics_new_column(mt, name);
    }
    if (nrows) memcpy(mt->cols[c], values, nrows * sizeof(double));
    if (mt->csv) csv_rewrite_or_warn(mt);
}

void metrics_truncate_after(Metrics *mt, double step) {
    int s = metrics_col(mt, "step");
    if (s < 0) return;  // no step column: nothing to compare against
    size_t kept = 0;
    for (size_t r = 0; r < mt->nrows; r++) {
        if (mt->cols[s][r] > step) continue;
        for (int c = 0; c < mt->ncols; c++) mt->cols[c][kept] = mt->cols[c][r];
        kept++;
    }
    bool changed = kept != mt->nrows;
    mt->nrows = kept;
    if (changed && mt->csv) csv_rewrite_or_warn(mt);
}

int metrics_keep_rows(Metrics *mt, size_t nrows) {
    if (nrows >= mt->nrows) return 0;
    mt->nrows = nrows;
    if (!mt->csv_path) return 0;
    // the CSV is the header line and one line per row: keep header + nrows
    // lines (also when mirroring stopped after a failed append)
    if (mt->csv) fflush(mt->csv);
    int rc = 0;
    FILE *f = fopen(mt->csv_path, "rb");
    if (!f) {
        rc = -1;
    } else {
        long pos = 0;
        size_t lines = 0;
        int c;
        while (lines < nrows + 1 && (c = fgetc(f)) != EOF) {
            pos++;
            if (c == '\n') lines++;
        }
        fclose(f);
        if (truncate(mt->csv_path, pos) != 0) rc = -1;
    }
    if (rc != 0)
        return rlhf_fail("cannot cut metrics CSV %s back to %zu rows (%s); hint: it holds rows "
                         "past the last checkpoint, which a --resume rewrites", mt->csv_path,
                         nrows, strerror(errno));
    return 0;
}
