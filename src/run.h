// What every training command shares and none of them computes: reading
// `CONFIG [--resume] [--section.key=value ...]`, threads, the progress line,
// metrics, and the run directory (DIR/step_NNNNNN.h5, DIR/latest.h5 -> the
// newest complete one, at most `keep` step files). No math here.
#ifndef RLHF_RUN_H
#define RLHF_RUN_H

#include <stdint.h>

#include "checkpoint.h"
#include "config.h"
#include "gpt.h"
#include "metrics.h"
#include "tokenizer.h"

typedef struct {
    const char *stage;      // "pretrain", "sft", "reward", "ppo", "dpo"
    Config cfg;
    int resume;             // --resume was given
    Metrics metrics;
    char *parent;           // lineage written into checkpoints (owned, "" if none)
    int tty;                // stderr is a terminal: progress redraws one line
    double t_start;         // wall clock at run_begin
    int64_t start_step;     // first step of this process (after a resume)
    int lock_fd;            // DIR/.lock, held for the whole run (-1: none)
    char **overrides;       // the command line's "section.key=value" texts (owned)
    int n_overrides;
} Run;

// Parses the command line of a training command, loads the config and the
// overrides, validates, sets the thread count and prints the resolved config.
// Returns -1 with a reason on any bad input.
int run_init(Run *r, const char *stage, int argc, char **argv);
void run_free(Run *r);

// Sets the OpenMP and OpenBLAS thread count from train.threads (0: leave
// the defaults, all cores). Refuses (-1 with a reason) more than
// RUN_THREADS_PER_CPU threads per online CPU (oversubscription only slows a
// CPU-bound run; 4x still lets a run made on a larger machine be repeated
// bit for bit on a smaller one), and a count whose OpenBLAS buffers do not
// fit the address-space limit (ulimit -v): OpenBLAS retries a failed buffer
// allocation forever, so such a run would hang instead of failing.
int run_set_threads(const Config *cfg);
#define RUN_THREADS_PER_CPU 4

// Whether the command line set KEY ("section.key") with an override.
int run_overridden(const Run *r, const char *key);

// Takes the run directory for this process alone, before anything in it is
// read or written: creates DIR (fresh runs) and DIR/.lock, and holds an
// exclusive flock on it until the process ends (the kernel drops it on any
// exit, SIGKILL included, so a dead run never blocks the next). The
// holder's pid is written into the lock file for the message a second run
// gets: "in use by another run (pid N)". A fresh run is refused here when
// DIR already holds one (latest.h5). A --resume of a missing DIR takes no
// lock (there is nothing to resume; the resume says so).
int run_lock(Run *r);

// Sets the precision of the models built from now on from train.precision
// (gpt_set_default_precision). Returns -1 with a reason when it asks for
// bf16 and this CPU has no bf16 matmul (bf16_available).
int run_set_precision(const Config *cfg);

// The machine report of the run header and `rlhf env`: CPU, features,
// OpenBLAS core and where it came from, and the matmul backend of each
// precision, each line led by prefix.
void run_print_machine(FILE *out, const char *prefix);

// Path of the checkpoint to resume from (DIR/latest.h5); caller frees.
char *run_latest_path(const Run *r);

// Starts the metrics CSV (DIR/metrics.csv) and the clock. On resume, call
// after loading metrics from the checkpoint: later rows are dropped.
int run_begin(Run *r, int64_t start_step);

// Records the checkpoint this run started from (path + sha256) as lineage.
int run_set_parent(Run *r, const char *path);

// Lineage records "PATH sha256:HEX" name a file by its resolved path and
// content. lineage_record makes one for path (NULL with a reason on
// failure; caller frees). lineage_split takes one apart (-1 if malformed).
// lineage_check verifies that the file still exists with that content,
// writing its path to `path`; `what` names it in errors ("the reference").
char *lineage_record(const char *path);
int lineage_split(const char *record, char *path, size_t n, char hex[65]);
int lineage_check(const char *record, const char *what, char *path, size_t n);

// Begins DIR/step_NNNNNN.h5 with this run's stage, step, config and parent.
Ckpt *run_ckpt_begin(Run *r, int64_t step);
// Writes the metrics, commits, points DIR/latest.h5 at the new file and
// removes step files beyond `keep`. Returns -1 (keeping every old file) on
// failure.
int run_ckpt_end(Run *r, Ckpt *ck, int64_t step);

// Options of a command bound to one config section (chat), read with
// options.h: "--key value" or "--key=value" set key of `section`,
// "--section.key=value" any key. Up to max_positional (at most
// OPTIONS_MAX_POSITIONAL) other arguments go to positional[]. Returns how
// many positional arguments there were, or -1 with a one-line reason (whose
// hint is `usage`, the command's usage line, for a misplaced argument).
int parse_options(Config *cfg, const char *section, int argc, char **argv,
                  const char **positional, int max_positional, const char *usage);

// Progress: on a terminal, one line redrawn in place; otherwise a plain
// line every call. `extra` is appended (may be NULL).
void run_progress(Run *r, int64_t step, int64_t max_steps, double loss, double lr,
                  double tokens_per_s, const char *extra);
// A line that stays (evaluation results, messages); clears a progress line.
void run_print(Run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Saves a tokenizer alone as a checkpoint file (stage "tokenizer") at PATH,
// as `prepare` does for DIR/tokenizer.h5.
int save_tokenizer_file(const char *path, const Tokenizer *tok, const char *config_json);
int load_tokenizer_file(const char *path, Tokenizer *tok);

// Loads a model (and its tokenizer when tok != NULL) from a checkpoint,
// building m for the stored shape. value_head: 1 builds the model with a
// value head (from the file when present, else zero); 0 without one.
int load_model_file(const char *path, GPT *m, int value_head, Tokenizer *tok,
                    CkptMeta *meta);

// A language model (a policy) from a checkpoint: load_model_file without a
// value head, refusing a file whose model carries one (a reward model or
// critic) with a reason that names `what` (e.g. "checkpoint.init").
int load_policy_file(const char *path, GPT *m, Tokenizer *tok, const char *what);

// The reward model of a `rlhf reward` checkpoint (ppo.reward_model), for
// scoring: its model, which must carry a value head, and the normalisation
// {mean, std} its stage stored (*has_norm = 0, norm untouched, when the file
// has none). The file must use tok's tokenizer and a context of T tokens.
// Errors name the file; rm is built only on success.
int load_reward_model(const char *path, const Tokenizer *tok, int T, GPT *rm, double norm[2],
                      int *has_norm);

// The [model] keys follow the model actually trained (taken from a
// checkpoint), so that checkpoints store the config that was resolved.
void run_adopt_model(Run *r, const GPTConfig *c);

// Opens DIR/latest.h5 for --resume. Its stage must be this run's; a thread
// count other than the saved one is noted (the run will not be bit-exact).
// Returns the open checkpoint, with *meta and *path (the caller frees both,
// also on failure), or NULL with the error set.
Ckpt *run_open_resume(Run *r, CkptMeta *meta, char **path);

// Takes over a resumed checkpoint's step and lineage (and says so).
void run_adopt_resume(Run *r, const CkptMeta *meta, const char *path, int64_t *step);

// What to do after optimizer step `step` (0-based): log a metrics row
// (every log_interval steps and whenever evaluating), evaluate (every
// eval_interval steps), save (every checkpoint.every steps); all three at the
// last step.
typedef struct {
    int last, log, eval, save;
} StepPlan;
StepPlan run_step_plan(const Run *r, int64_t step);

// Sets the metrics every training stage logs for step (1-based): step,
// loss, lr, grad_norm, tokens_per_s, time_s.
void run_log_step(Run *r, int64_t step, double loss, double lr, double grad_norm,
                  double tokens_per_s);

// Prints the model shape, parameter count and tokenizer to stdout.
void print_model_summary(const GPT *m, const Tokenizer *tok);

#endif
