// Training curves: a table with one row per logged step and named float64
// columns (step, loss, lr, tokens_per_s, val_loss, ...). A value not measured
// at a row is NaN. Checkpoints store the table under /metrics; a CSV beside
// the checkpoints mirrors it as rows are added.
//
// A name may hold '/' (TRL's "rewards/chosen"): the CSV header keeps it as
// it is, a checkpoint stores it as the nested dataset /metrics/rewards/chosen
// (h5py: f["metrics/rewards/chosen"]). Columns that share a group prefix
// stay next to each other (a new "rewards/x" goes after the last
// "rewards/..." column), so the order of the table is the order in which a
// checkpoint's nested groups list them, and a resumed run's columns are the
// uninterrupted run's.
#ifndef RLHF_METRICS_H
#define RLHF_METRICS_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    int ncols;
    char **names;      // owned
    size_t nrows, cap;
    double **cols;     // cols[c][row]
    double *pending;   // the row being filled (ncols values, NaN = unset)
    FILE *csv;         // optional mirror, NULL if none
    char *csv_path;    // owned; where the mirror lives (rewrites go via PATH.tmp)
    int csv_ncols;     // columns in the CSV header written so far
} Metrics;

void metrics_init(Metrics *mt);
void metrics_free(Metrics *mt);  // closes the CSV

// Whether NAME can be a column: not empty, no comma, quote or line break,
// and '/' only between non-empty parts other than "." and "..".
int metrics_name_valid(const char *name);

// Sets a value of the row being filled, adding the column if it is new
// (earlier rows get NaN for it). NAME must be valid and must not be a group
// of another column ("rewards" beside "rewards/chosen").
void metrics_set(Metrics *mt, const char *name, double value);
// Appends the pending row (and writes it to the CSV), then clears it. A row
// with nothing set is not appended. When the row brings a column the CSV
// header lacks, the whole CSV is rewritten so the header stays right.
void metrics_commit(Metrics *mt);
// Index of a column or -1.
int metrics_col(const Metrics *mt, const char *name);
// Adds a whole column of nrows values (used by checkpoint loading): the
// first column of an empty table sets nrows, later ones must match it. An
// existing column of that name is overwritten. values are copied.
void metrics_add_column(Metrics *mt, const char *name, const double *values, size_t nrows);
// Drops rows whose `step` is greater than `step` (resuming from a
// checkpoint older than the CSV).
void metrics_truncate_after(Metrics *mt, double step);
// Opens PATH for the CSV mirror, rewriting it from the table so far (via
// PATH.tmp and a rename). Header "step,loss,..." in column order, numbers
// as %.9g, NaN as an empty cell; each row is flushed as it is committed.
// Returns -1 with a reason if it cannot be written.
int metrics_open_csv(Metrics *mt, const char *path);
// Keeps the first nrows rows only, in the table and in the CSV: a run whose
// checkpoint could not be saved takes back the rows logged since the last
// one it saved, so metrics.csv never runs ahead of latest.h5. The CSV is
// cut with ftruncate, which needs no free space (a full disk is the usual
// reason). Returns -1 with a reason if the CSV cannot be cut.
int metrics_keep_rows(Metrics *mt, size_t nrows);

#endif
