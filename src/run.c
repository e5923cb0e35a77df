// Shared plumbing of the training commands; see run.h. Knows files,
// directories and terminals, not math.
#define _DEFAULT_SOURCE  // realpath
#include "run.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bf16.h"
#include "common.h"
#include "cpu.h"
#include "dist.h"
#include "options.h"

// Cores busy with other work right now: /proc/stat sampled 0.2 s apart
// (this process is idle meanwhile). -1 if it cannot tell.
static double busy_cores(void) {
    unsigned long long t[2][8] = {{0}};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen("/proc/stat", "r");
        if (!f) return -1;
        int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &t[k][0], &t[k][1],
                       &t[k][2], &t[k][3], &t[k][4], &t[k][5], &t[k][6], &t[k][7]);
        fclose(f);
        if (n != 8) return -1;
        if (k == 0) nanosleep(&(struct timespec){0, 200000000L}, NULL);
    }
    double total = 0, idle = 0;
    for (int i = 0; i < 8; i++) total += (double)(t[1][i] - t[0][i]);
    idle = (double)(t[1][3] - t[0][3]) + (double)(t[1][4] - t[0][4]);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return total > 0 ? (total - idle) / total * (double)cores : -1;
}

// OpenMP threads wait for each other by spinning first (libgomp's default,
// the fastest on an idle machine); when other processes hold the cores, a
// spinning thread burns the time its partner needs. bench/ measured, with
// one core busy elsewhere: 1.6x faster steps on the tiny shape with
// OMP_WAIT_POLICY=passive, 1.2x on the small one. Say so when it applies.
static void warn_if_busy(void) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    if (getenv("OMP_WAIT_POLICY") || threads < 2) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    double busy = busy_cores();
    if (busy > 0.5 && busy + threads > cores + 0.5)
        printf("# note: %.1f of %ld cores are busy with other work; OMP_WAIT_POLICY=passive "
               "(or fewer --train.threads) is faster then\n", busy, cores);
}

// Address space OpenBLAS reserves per thread for its GEMM buffers, as
// measured on Debian's build (one 129 MiB mmap per thread); a whole limit
// beyond 3/4 of which the threads' buffers would leave too little for the
// model itself.
#define OPENBLAS_BUFFER_BYTES (129.0 * (1 << 20))

int run_set_threads(const Config *cfg) {
    const int64_t threads = cfg->train.threads;
    if (threads <= 0) return 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (threads > RUN_THREADS_PER_CPU * cpus)
        return rlhf_fail("train.threads = %lld is more than %d per CPU (%ld online); hint: "
                         "at most %ld, or 0 for one thread per core", (long long)threads,
                         RUN_THREADS_PER_CPU, cpus, RUN_THREADS_PER_CPU * cpus);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (double)threads * OPENBLAS_BUFFER_BYTES > 0.75 * (double)rl.rlim_cur)
        return rlhf_fail("train.threads = %lld needs about %.1f GiB of address space for "
                         "OpenBLAS's buffers, more than 3/4 of the limit of %.1f GiB (ulimit -v); "
                         "hint: fewer threads, or raise the limit", (long long)threads,
                         (double)threads * OPENBLAS_BUFFER_BYTES / (1 << 30),
                         (double)rl.rlim_cur / (1 << 30));
#ifdef _OPENMP
    omp_set_num_threads((int)threads);
#endif
    openblas_set_num_threads((int)threads);
    return 0;
}

int run_set_precision(const Config *cfg) {
    Precision p = strcmp(cfg->train.precision, "bf16") == 0 ? PRECISION_BF16 : PRECISION_FP32;
    if (p == PRECISION_BF16 && !bf16_available())
        return rlhf_fail("train.precision = bf16 cannot run here (bf16 matmul %s); hint: use "
                         "--train.precision=fp32 on this CPU", bf16_backend());
    gpt_set_default_precision(p);
    gpt_set_default_lm_head_fp32((int)cfg->train.fp32_lm_head);
    return 0;
}

void run_print_machine(FILE *out, const char *prefix) {
    cpu_print_report(out, prefix);
    fprintf(out, "%smatmul: fp32 OpenBLAS sgemm (core %s); bf16 %s; train.precision %s\n",
            prefix, cpu_blas_core(), bf16_backend(),
            gpt_default_precision() == PRECISION_BF16 ? "bf16" : "fp32");
}

int run_init(Run *r, const char *stage, int argc, char **argv) {
    memset(r, 0, sizeof *r);
    r->stage = stage;
    r->lock_fd = -1;
    config_init(&r->cfg);
    metrics_init(&r->metrics);
    r->parent = strdup_check("");
    r->tty = isatty(STDERR_FILENO);
    char usage[128];
    snprintf(usage, sizeof usage, "usage: rlhf %s CONFIG [--resume] [--section.key=value ...]",
             stage);
    const OptionSpec spec = {
        .usage = usage,
        .positional = {"CONFIG"},
        .required = 1,
        .options = {{"resume", 0, 0}},
        .overrides = 1,
    };
    Options o;
    int rc = options_parse(&o, &spec, argc, argv);
    const char *path = o.positional[0];
    if (rc == 0) {
        r->resume = options_get(&o, "resume") != NULL;
        // the overrides go over the file
        rc = config_load(&r->cfg, path);
    }
    if (rc == 0) rc = options_apply(&o, &r->cfg);
    if (rc == 0) rc = config_validate(&r->cfg);
    if (rc == 0) rc = run_set_threads(&r->cfg);
    if (rc == 0) rc = run_set_precision(&r->cfg);
    if (rc != 0) {
        options_free(&o);
        return -1;
    }
    r->overrides = o.overrides;  // kept for run_overridden
    r->n_overrides = o.n_overrides;
    o.overrides = NULL;
    o.n_overrides = 0;

    warn_if_busy();
    printf("# rlhf %s, config %s%s\n", stage, path, r->resume ? " (resuming)" : "");
    run_print_machine(stdout, "# ");
    config_print(&r->cfg, stdout);
    fflush(stdout);
    options_free(&o);
    return 0;
}

int run_overridden(const Run *r, const char *key) {
    for (int i = 0; i < r->n_overrides; i++)
        if (options_override_is(r->overrides[i], key, strlen(key))) return 1;
    return 0;
}

void run_free(Run *r) {
    if (r->lock_fd >= 0) close(r->lock_fd);  // releases the lock
    for (int i = 0; i < r->n_overrides; i++) free(r->overrides[i]);
    free(r->overrides);
    config_free(&r->cfg);
    metrics_free(&r->metrics);
    free(r->parent);
    memset(r, 0, sizeof *r);
}

static char *join_path(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mallocCheck(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *run_latest_path(const Run *r) { return join_path(r->cfg.checkpoint.dir, "latest.h5"); }

int run_lock(Run *r) {
    const char *dir = r->cfg.checkpoint.dir;
    struct stat st;
    if (r->resume && stat(dir, &st) != 0) return 0;
    if (!r->resume && mkdir_p(dir) != 0) return -1;
    char *path = join_path(dir, ".lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        int rc = rlhf_fail("cannot open the run directory's lock %s: %s; hint: check that '%s' "
                           "is a writable directory", path, strerror(errno), dir);
        free(path);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        int rc;
        if (e == EWOULDBLOCK)
            rc = rlhf_fail("checkpoint.dir '%s' is in use by another run (pid %s); hint: wait "
                           "for it to end, or set checkpoint.dir to a new directory", dir,
                           pid[0] ? pid : "unknown");
        else
            rc = rlhf_fail("cannot lock %s: %s; hint: put checkpoint.dir on a filesystem that "
                           "supports flock", path, strerror(e));
        free(path);
        return rc;
    }
    free(path);
    r->lock_fd = fd;
    // the pid, for the message above; the lock itself is the flock
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        // a full disk: the lock holds all the same, the message lacks the pid
    }
    if (!r->resume) {
        char *latest = run_latest_path(r);
        int exists = lstat(latest, &st) == 0;
        free(latest);
        if (exists)
            return rlhf_fail("'%s' already holds a run (latest.h5); hint: pass --resume to "
                             "continue it, or set checkpoint.dir to a new directory", dir);
    }
    return 0;
}

int run_begin(Run *r, int64_t start_step) {
    const char *dir = r->cfg.checkpoint.dir;
    r->start_step = start_step;
    metrics_truncate_after(&r->metrics, (double)start_step);
    r->t_start = now_seconds();
    if (!dist_is_root()) return 0;  // rank 0 alone writes the run directory
    if (mkdir_p(dir) != 0) return -1;
    char *csv = join_path(dir, "metrics.csv");
    int rc = metrics_open_csv(&r->metrics, csv);
    free(csv);
    return rc;
}

char *lineage_record(const char *path) {
    // the file itself, not a name that moves (DIR/latest.h5 is a symlink
    // that a continuing run re-points)
    char *real = realpath(path, NULL);
    if (!real) {
        rlhf_fail("cannot resolve '%s': %s; hint: check the path", path, strerror(errno));
        return NULL;
    }
    char hex[65];
    if (file_sha256(real, hex) != 0) {
        free(real);
        return NULL;
    }
    size_t n = strlen(real) + 80;
    char *rec = mallocCheck(n);
    snprintf(rec, n, "%s sha256:%s", real, hex);
    free(real);
    return rec;
}

int lineage_split(const char *record, char *path, size_t n, char hex[65]) {
    const char *tag = NULL;
    for (const char *t = strstr(record, " sha256:"); t; t = strstr(t + 1, " sha256:")) tag = t;
    if (!tag || tag == record || strlen(tag + 8) != 64 || (size_t)(tag - record) + 1 > n)
        return -1;
    memcpy(path, record, (size_t)(tag - record));
    path[tag - record] = '\0';
    memcpy(hex, tag + 8, 65);
    return 0;
}

int lineage_check(const char *record, const char *what, char *path, size_t n) {
    char want[65], have[65];
    if (lineage_split(record, path, n, want) != 0)
        return rlhf_fail("%s is recorded as '%.80s', not 'PATH sha256:HEX'; hint: the "
                         "checkpoint was edited", what, record);
    if (file_sha256(path, have) != 0)
        return rlhf_fail("%s %s is gone (%s); hint: restore it to resume this run", what, path,
                         rlhf_errmsg);
    if (strcmp(have, want) != 0)
        return rlhf_fail("%s %s changed since this run started (sha256 differs); hint: "
                         "restore the original file to resume exactly", what, path);
    return 0;
}

int run_set_parent(Run *r, const char *path) {
    char *rec = lineage_record(path);
    if (!rec) return -1;
    free(r->parent);
    r->parent = rec;
    return 0;
}

static char *step_path(const Run *r, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "step_%06lld.h5", (long long)step);
    return join_path(r->cfg.checkpoint.dir, name);
}

Ckpt *run_ckpt_begin(Run *r, int64_t step) {
    CkptMeta meta = {0};
    snprintf(meta.stage, sizeof meta.stage, "%s", r->stage);
    meta.step = step;
    meta.config_json = config_to_json(&r->cfg);
    meta.parent = r->parent;
    char *path = step_path(r, step);
    Ckpt *ck = ckpt_create(path, &meta);
    free(path);
    free(meta.config_json);
    return ck;
}

static int is_step_file(const char *name) {
    size_t n = strlen(name);
    return n == 14 && !strncmp(name, "step_", 5) && !strcmp(name + 11, ".h5");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Removes step files older than the newest `keep` (names sort by step),
// never the one latest.h5 names (a crash may have left higher steps behind).
static void prune(const char *dir, int keep) {
    char *latest = join_path(dir, "latest.h5"), target[64] = "";
    ssize_t tn = readlink(latest, target, sizeof target - 1);
    target[tn > 0 ? tn : 0] = '\0';
    free(latest);
    DIR *d = opendir(dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_step_file(e->d_name)) continue;
        if (n == cap) names = reallocCheck(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
        names[n++] = strdup_check(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (i + (size_t)keep < n && strcmp(names[i], target) != 0) {
            char *p = join_path(dir, names[i]);
            unlink(p);
            free(p);
        }
        free(names[i]);
    }
    free(names);
}

int run_ckpt_end(Run *r, Ckpt *ck, int64_t step) {
    if (ckpt_write_metrics(ck, &r->metrics) != 0) {
        ckpt_abort(ck);
        return -1;
    }
    if (ckpt_commit(ck) != 0) return -1;  // it has removed the tmp and freed ck
    // latest.h5 -> step_NNNNNN.h5, swapped in by rename so it never dangles
    const char *dir = r->cfg.checkpoint.dir;
    char name[64];
    snprintf(name, sizeof name, "step_%06lld.h5", (long long)step);
    char *tmp = join_path(dir, "latest.h5.tmp"), *latest = join_path(dir, "latest.h5");
    unlink(tmp);
    int rc = 0;
    if (symlink(name, tmp) != 0)
        rc = rlhf_fail("cannot update '%s': %s; hint: check that the run directory is "
                       "writable", latest, strerror(errno));
    else
        rc = atomic_rename(tmp, latest);  // on failure it has removed the tmp
    free(tmp);
    free(latest);
    if (rc == 0) prune(dir, (int)r->cfg.checkpoint.keep);
    return rc;
}

int parse_options(Config *cfg, const char *section, int argc, char **argv,
                  const char **positional, int max_positional, const char *usage) {
    ASSERT(max_positional >= 0 && max_positional <= OPTIONS_MAX_POSITIONAL);
    OptionSpec spec = {.usage = usage, .section = section};
    for (int i = 0; i < max_positional; i++) spec.positional[i] = "argument";
    Options o;
    int rc = options_parse(&o, &spec, argc, argv);
    if (rc == 0) rc = options_apply(&o, cfg);
    if (rc == 0) {
        for (int i = 0; i < o.n_positional; i++) positional[i] = o.positional[i];
        rc = o.n_positional;
    }
    options_free(&o);
    return rc;
}

static void format_duration(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static int progress_shown;  // a progress line is on screen (tty only)

void run_progress(Run *r, int64_t step, int64_t max_steps, double loss, double lr,
                  double tokens_per_s, const char *extra) {
    if (!dist_is_root()) return;  // one job, one progress line
    double elapsed = now_seconds() - r->t_start;
    int64_t done = step + 1 - r->start_step;
    double eta = done > 0 ? elapsed / done * (double)(max_steps - step - 1) : -1;
    char eta_s[32];
    format_duration(eta_s, sizeof eta_s, eta);
    char line[512];
    snprintf(line, sizeof line, "step %6lld/%lld | loss %.4f | lr %.2e | %7.0f tok/s | ETA %s%s%s",
             (long long)step + 1, (long long)max_steps, loss, lr, tokens_per_s, eta_s,
             extra ? " | " : "", extra ? extra : "");
    if (r->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        progress_shown = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void run_print(Run *r, const char *fmt, ...) {
    if (!dist_is_root()) return;
    if (r->tty && progress_shown) fputs("\r\033[K", stderr);
    progress_shown = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

int save_tokenizer_file(const char *path, const Tokenizer *tok, const char *config_json) {
    CkptMeta meta = {0};
    snprintf(meta.stage, sizeof meta.stage, "tokenizer");
    meta.config_json = (char *)config_json;
    meta.parent = "";
    Ckpt *ck = ckpt_create(path, &meta);
    if (!ck) return -1;
    if (ckpt_write_tokenizer(ck, tok) != 0) {
        ckpt_abort(ck);
        return -1;
    }
    return ckpt_commit(ck);  // on failure it has removed the tmp and freed ck
}

int load_tokenizer_file(const char *path, Tokenizer *tok) {
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(path, &meta);
    if (!ck) return -1;
    int rc = ckpt_read_tokenizer(ck, tok);
    ckpt_close(ck);
    ckpt_meta_free(&meta);
    return rc;
}

int load_model_file(const char *path, GPT *m, int value_head, Tokenizer *tok, CkptMeta *meta) {
    CkptMeta local = {0};
    CkptMeta *mt = meta ? meta : &local;
    Ckpt *ck = ckpt_open(path, mt);
    if (!ck) return -1;
    GPTConfig c;
    int rc = ckpt_read_model_config(ck, "", &c);
    if (rc == 0) {
        c.value_head = value_head;
        gpt_build(m, &c);
        rc = ckpt_read_model(ck, "", m, 1);
        if (rc != 0) gpt_free(m);
    }
    if (rc == 0 && tok) rc = ckpt_read_tokenizer(ck, tok);
    ckpt_close(ck);
    if (!meta) ckpt_meta_free(&local);
    return rc;
}

int load_policy_file(const char *path, GPT *m, Tokenizer *tok, const char *what) {
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(path, &meta);
    if (!ck) return rlhf_fail("%s: %s", what, rlhf_errmsg);
    GPTConfig c;
    int rc = ckpt_read_model_config(ck, "", &c);
    ckpt_close(ck);
    if (rc == 0 && c.value_head)
        rc = rlhf_fail("%s %s is a reward model (stage '%s', with a value head), not a language "
                       "model; hint: give the SFT checkpoint (e.g. checkpoints/sft/latest.h5)",
                       what, path, meta.stage);
    ckpt_meta_free(&meta);
    if (rc == 0) rc = load_model_file(path, m, 0, tok, NULL);
    return rc;
}

int load_reward_model(const char *path, const Tokenizer *tok, int T, GPT *rm, double norm[2],
                      int *has_norm) {
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(path, &meta);
    if (!ck) return rlhf_fail("ppo.reward_model: %s", rlhf_errmsg);
    Tokenizer rtok = {0};
    GPTConfig c;
    int built = 0, rc = ckpt_read_model_config(ck, "", &c);
    if (rc == 0 && !c.value_head)
        rc = rlhf_fail("ppo.reward_model %s has no value head (stage '%s'); hint: give a "
                       "checkpoint written by 'rlhf reward'", path, meta.stage);
    if (rc == 0) {
        gpt_build(rm, &c);
        built = 1;
        rc = ckpt_read_model(ck, "", rm, 0);
    }
    if (rc == 0) rc = ckpt_read_tokenizer(ck, &rtok);
    *has_norm = rc == 0 && ckpt_has_state(ck, "reward_norm");
    if (*has_norm) rc = ckpt_read_f64(ck, "reward_norm", norm, 2);
    ckpt_close(ck);
    if (rc == 0 && tokenizer_hash(&rtok) != tokenizer_hash(tok))
        rc = rlhf_fail("ppo.reward_model %s uses another tokenizer than the policy; hint: use "
                       "a reward model of this lineage", path);
    else if (rc == 0 && rm->config.block_size != T)
        rc = rlhf_fail("ppo.reward_model %s has context %d, the policy %d; hint: use a reward "
                       "model of this lineage", path, rm->config.block_size, T);
    tokenizer_free(&rtok);
    ckpt_meta_free(&meta);
    if (rc != 0 && built) gpt_free(rm);
    return rc;
}

void print_model_summary(const GPT *m, const Tokenizer *tok) {
    const GPTConfig *c = &m->config;
    printf("# model: L=%d H=%d C=%d T=%d V=%d%s, %.3fM parameters (%.3fM without wpe)\n",
           c->n_layer, c->n_head, c->n_embd, c->block_size, c->vocab_size,
           c->value_head ? " + value head" : "", m->num_params / 1e6,
           gpt_num_flop_params(m) / 1e6);
    printf("# tokenizer: %s, %d tokens (eot %d, user %d, assistant %d, pad %d)\n",
           tokenizer_type_name(tok->type), tok->vocab_size, tok->eot, tok->user,
           tok->assistant, tok->pad);
    fflush(stdout);
}

void run_adopt_model(Run *r, const GPTConfig *c) {
    r->cfg.model.n_layer = c->n_layer;
    r->cfg.model.n_head = c->n_head;
    r->cfg.model.n_embd = c->n_embd;
    r->cfg.model.block_size = c->block_size;
}

void run_adopt_resume(Run *r, const CkptMeta *meta, const char *path, int64_t *step) {
    *step = meta->step;
    free(r->parent);
    r->parent = strdup_check(meta->parent);
    printf("# resuming %s at step %lld\n", path, (long long)meta->step);
}

Ckpt *run_open_resume(Run *r, CkptMeta *meta, char **path) {
    *path = run_latest_path(r);
    Ckpt *ck = ckpt_open(*path, meta);
    if (!ck) {
        rlhf_fail("cannot resume (to start fresh, run without --resume): %s", rlhf_errmsg);
        return NULL;
    }
    if (strcmp(meta->stage, r->stage) != 0) {
        rlhf_fail("cannot resume: %s holds a '%s' checkpoint, this is '%s'; hint: check "
                  "checkpoint.dir", *path, meta->stage, r->stage);
        ckpt_close(ck);
        return NULL;
    }
    int64_t threads = 0;
    if (ckpt_read_i64(ck, "threads", &threads, 1) == 0) {
        int now = 1;
#ifdef _OPENMP
        now = omp_get_max_threads();
#endif
        if (threads != now)
            printf("# note: saved with %lld threads, resuming with %d: results will not be "
                   "bit-identical to an uninterrupted run\n", (long long)threads, now);
    }
    int64_t world = 1;  // a checkpoint without /state/world_size: one process
    if (ckpt_has_state(ck, "world_size") && ckpt_read_i64(ck, "world_size", &world, 1) != 0) {
        ckpt_close(ck);
        return NULL;
    }
    if (world != dist_size())
        printf("# note: saved by %lld process(es), resuming with %d: the same batches, summed "
               "in another order (not bit-identical to an uninterrupted run)\n",
               (long long)world, dist_size());
    return ck;
}

StepPlan run_step_plan(const Run *r, int64_t step) {
    const Config *cfg = &r->cfg;
    const int64_t s1 = step + 1;
    StepPlan p;
    p.last = s1 == cfg->train.max_steps;
    p.eval = p.last || (cfg->train.eval_interval > 0 && s1 % cfg->train.eval_interval == 0);
    p.log = p.eval || s1 % cfg->train.log_interval == 0;
    p.save = p.last || (cfg->checkpoint.every > 0 && s1 % cfg->checkpoint.every == 0);
    return p;
}

void run_log_step(Run *r, int64_t step, double loss, double lr, double grad_norm,
                  double tokens_per_s) {
    metrics_set(&r->metrics, "step", (double)step);
    metrics_set(&r->metrics, "loss", loss);
    metrics_set(&r->metrics, "lr", lr);
    metrics_set(&r->metrics, "grad_norm", grad_norm);
    metrics_set(&r->metrics, "tokens_per_s", tokens_per_s);
    metrics_set(&r->metrics, "time_s", now_seconds() - r->t_start);
}
