// rlhf inspect CKPT
// Describes one checkpoint (or a tokenizer file) without changing it: root
// attributes, lineage (parents followed while their files exist, sha256
// re-checked), the stored config as INI sections, a parameter table with
// value statistics, tokenizer, metrics and known /state entries. It only
// reads; the one computation is the statistics of the stored values.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "commands.h"
#include "common.h"
#include "config.h"
#include "gpt.h"
#include "jsonl.h"
#include "metrics.h"
#include "optim.h"
#include "options.h"
#include "run.h"
#include "tokenizer.h"

#define LINEAGE_MAX_DEPTH 32
#define MERGES_SHOWN 12
#define CHARS_SHOWN 128

// --- printing helpers ----------------------------------------------------------

// Writes bytes as a quoted string: printable ASCII as is, the rest escaped.
static void print_bytes(FILE *out, const uint8_t *b, int n) {
    fputc('\'', out);
    for (int i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (c == '\n') fputs("\\n", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c == '\\' || c == '\'') fprintf(out, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f) fputc(c, out);
        else fprintf(out, "\\x%02x", c);
    }
    fputc('\'', out);
}

static void print_token(FILE *out, const Tokenizer *tok, int id) {
    int len;
    const uint8_t *b = tokenizer_token_bytes(tok, id, &len);
    print_bytes(out, b, len);
}

// "1,234,567": parameter counts are easier to read with separators.
static const char *group_digits(char *buf, size_t n, unsigned long long v) {
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%llu", v), o = 0;
    for (int i = 0; i < len && (size_t)o + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

// --- the stored config: JSON {"section": {"key": scalar}} as INI -----------------
// Read with json_entries_parse; any other shape falls back to the raw JSON.

// Numbers written by two builds may differ in form only ("1e-3" vs "0.001").
static int values_equal(const char *a, const char *b) {
    if (!strcmp(a, b)) return 1;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    return ea != a && eb != b && !*ea && !*eb && x == y;
}

// INI sections with every stored key; keys that differ from this build's
// defaults are marked with the default.
static void print_config(const char *json) {
    JsonEntries stored = {0}, defaults = {0};
    Config def;
    config_init(&def);
    char *def_json = config_to_json(&def);
    config_free(&def);
    if (!json || !json[0]) {
        printf("config     (none stored)\n");
    } else if (json_entries_parse(json, &stored) != 0 ||
               json_entries_parse(def_json, &defaults) != 0) {
        printf("config     (not in the expected shape; raw JSON)\n  %s\n", json);
    } else {
        int changed = 0;
        for (int i = 0; i < stored.n; i++) {
            const JsonEntry *d = json_entries_find(&defaults, stored.e[i].section, stored.e[i].key);
            changed += !d || !values_equal(d->value, stored.e[i].value);
        }
        printf("config     %d keys, %d differ from the defaults (marked with ';')\n", stored.n,
               changed);
        const char *section = "";
        for (int i = 0; i < stored.n; i++) {
            const JsonEntry *e = &stored.e[i];
            if (strcmp(section, e->section) != 0) {
                printf("  [%s]\n", e->section);
                section = e->section;
            }
            char line[1200];
            snprintf(line, sizeof line, "    %s =%s%s", e->key, e->value[0] ? " " : "", e->value);
            const JsonEntry *d = json_entries_find(&defaults, e->section, e->key);
            if (!d) printf("%-44s ; not a key of this build\n", line);
            else if (!values_equal(d->value, e->value)) printf("%-44s ; default %s\n", line, d->value[0] ? d->value : "\"\"");
            else printf("%s\n", line);
        }
    }
    json_entries_free(&stored);
    json_entries_free(&defaults);
    free(def_json);
}

// --- lineage -------------------------------------------------------------------

// What an "import" checkpoint was made from: /state/import/weights, the
// record "PATH sha256:HEX" of the Hugging Face weights (train/import.c), in
// *text (NULL for any other file). -1 with a reason if it cannot be read.
static int import_record(Ckpt *ck, const char *stage, char **text) {
    *text = NULL;
    if (strcmp(stage, "import") != 0 || !ckpt_has_state(ck, "import/weights")) return 0;
    return ckpt_read_str(ck, "import/weights", text);
}

// The end of a lineage: a run from scratch, or an import, whose source file
// is checked like a parent.
static void print_lineage_root(const char *import) {
    if (!import) {
        printf("  (no parent recorded: started from scratch)\n");
        return;
    }
    char src[4096], want[65], have[65];
    struct stat st;
    if (lineage_split(import, src, sizeof src, want) != 0)
        printf("  <- imported from an unrecognised record '%s'\n", import);
    else if (stat(src, &st) != 0)
        printf("  <- imported from %s  (missing now)\n", src);
    else if (file_sha256(src, have) != 0)
        printf("  <- imported from %s  (unreadable: %s)\n", src, rlhf_errmsg);
    else
        printf("  <- imported from %s  %s\n", src,
               strcmp(want, have) == 0 ? "sha256 matches" : "sha256 DIFFERS: the file changed since");
}

static void print_lineage(const char *path, const CkptMeta *meta, char *import) {
    printf("lineage    newest first\n");
    printf("     %-9s step %-7lld %s  (this file)\n", meta->stage, (long long)meta->step, path);
    char *parent = strdup_check(meta->parent);
    for (int depth = 0;; depth++) {
        if (!parent[0]) {
            print_lineage_root(import);
            break;
        }
        if (depth == LINEAGE_MAX_DEPTH) {
            printf("  ... (stopped after %d ancestors)\n", LINEAGE_MAX_DEPTH);
            break;
        }
        char ppath[4096], want[65], have[65];
        if (lineage_split(parent, ppath, sizeof ppath, want) != 0) {
            printf("  <- unrecognised parent record '%s'\n", parent);
            break;
        }
        struct stat st;
        if (stat(ppath, &st) != 0) {
            printf("  <- %s  (missing: the lineage cannot be followed further)\n", ppath);
            break;
        }
        if (file_sha256(ppath, have) != 0) {
            printf("  <- %s  (unreadable: %s)\n", ppath, rlhf_errmsg);
            break;
        }
        CkptMeta pm = {0};
        Ckpt *pck = ckpt_open(ppath, &pm);
        if (!pck) {
            printf("  <- %s  (not a readable checkpoint: %s)\n", ppath, rlhf_errmsg);
            break;
        }
        free(import);
        if (import_record(pck, pm.stage, &import) != 0) import = strdup_check(rlhf_errmsg);
        ckpt_close(pck);
        int same = strcmp(want, have) == 0;
        printf("  <- %-9s step %-7lld %s  %s\n", pm.stage, (long long)pm.step, ppath,
               same ? "sha256 matches" : "sha256 DIFFERS: the file changed since (e.g. "
                                         "latest.h5 moved on); what follows is its lineage");
        free(parent);
        parent = strdup_check(pm.parent);
        ckpt_meta_free(&pm);
    }
    free(parent);
    free(import);
}

// --- model -----------------------------------------------------------------------

typedef struct {
    double mean, std, maxabs;
} Stats;

static Stats tensor_stats(const float *x, size_t n) {
    double sum = 0.0, sq = 0.0, mx = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    double mean = n ? sum / (double)n : 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        sq += d * d;
        if (fabs(x[i]) > mx) mx = fabs(x[i]);
    }
    return (Stats){mean, n ? sqrt(sq / (double)n) : 0.0, mx};
}

// One row of the parameter table: copy l of tensor p. Returns 1 when its
// values are not all finite.
static int print_param_row(const GPT *m, int p, int l) {
    const ParamInfo *pi = &m->info[p];
    size_t each = pi->size / (size_t)(pi->per_layer ? m->config.n_layer : 1);
    char name[128], shape[32];
    int k = 0;
    if (strcmp(pi->group, "model") != 0) k = snprintf(name, sizeof name, "%s/", pi->group);
    if (pi->per_layer) snprintf(name + k, sizeof name - (size_t)k, pi->name, l);
    else snprintf(name + k, sizeof name - (size_t)k, "%s", pi->name);
    if (pi->ndim == 2) snprintf(shape, sizeof shape, "[%d, %d]", pi->rows, pi->cols);
    else snprintf(shape, sizeof shape, "[%d]", pi->cols);
    Stats s = tensor_stats(m->params_memory + pi->offset + (size_t)l * each, each);
    printf("  %-40s %-12s %10zu %11.4g %11.4g %11.4g\n", name, shape, each, s.mean, s.std,
           s.maxabs);
    return !isfinite(s.mean) || !isfinite(s.std);
}

static void print_model(const char *title, const GPT *m) {
    const GPTConfig *c = &m->config;
    char a[32], b[32];
    printf("%-10s L=%d H=%d C=%d T=%d V=%d, value head: %s\n", title, c->n_layer, c->n_head,
           c->n_embd, c->block_size, c->vocab_size, c->value_head ? "yes" : "no");
    printf("  %-40s %-12s %10s %11s %11s %11s\n", "tensor", "shape", "elements", "mean", "std",
           "max|x|");
    // state_dict order: the tensors before the blocks, block by block, the rest
    int nonfinite = 0, blocks_done = 0;
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        if (m->info[p].size == 0) continue;
        if (!m->info[p].per_layer) {
            nonfinite += print_param_row(m, p, 0);
        } else if (!blocks_done) {
            for (int l = 0; l < c->n_layer; l++)
                for (int q = p; q < NUM_PARAM_TENSORS; q++)
                    if (m->info[q].per_layer && m->info[q].size) nonfinite += print_param_row(m, q, l);
            blocks_done = 1;
        }
    }
    Stats all = tensor_stats(m->params_memory, m->num_params);
    printf("  %-40s %-12s %10s %11.4g %11.4g %11.4g\n", "all", "",
           group_digits(a, sizeof a, m->num_params), all.mean, all.std, all.maxabs);
    printf("  total %s parameters (%s without wpe and heads), %.2f MB as float32\n",
           group_digits(a, sizeof a, m->num_params),
           group_digits(b, sizeof b, gpt_num_flop_params(m)), m->num_params * 4.0 / 1e6);
    if (nonfinite) printf("  WARNING: %d tensors hold NaN or Inf values\n", nonfinite);
}

// Loads the model under prefix; returns -1 with a reason.
static int read_model(Ckpt *ck, const char *prefix, GPT *m) {
    GPTConfig c;
    if (ckpt_read_model_config(ck, prefix, &c) != 0) return -1;
    gpt_build(m, &c);
    if (ckpt_read_model(ck, prefix, m, 0) != 0) {
        gpt_free(m);
        return -1;
    }
    return 0;
}

// The AdamW state under prefix, read with the model: *stored is 0 when the
// file has none (not an error; opt is then built and zero), and the
// function returns -1 when it is there but unreadable.
static int read_optimizer(Ckpt *ck, const char *prefix, const GPT *m, AdamW *opt, int *stored) {
    adamw_build(opt, m->num_params, 0, 0, 0, 0);
    *stored = ckpt_has_optimizer(ck, prefix);
    if (!*stored || ckpt_read_optimizer(ck, prefix, opt, m) == 0) return 0;
    adamw_free(opt);
    return -1;
}

static void print_optimizer(const char *title, const AdamW *opt, int stored) {
    if (stored)
        printf("%-10s AdamW t=%lld, last lr %.4g, betas (%g, %g), eps %g, weight decay %g\n",
               title, (long long)opt->t, opt->lr, opt->beta1, opt->beta2, opt->eps,
               opt->weight_decay);
    else
        printf("%-10s none stored\n", title);
}

// --- tokenizer, metrics, state ---------------------------------------------------

static void print_tokenizer(const Tokenizer *tok) {
    int plain = tok->vocab_size - 4;
    if (tok->type == TOKENIZER_BPE || tok->type == TOKENIZER_GPT2)
        printf("tokenizer  %s, %d tokens: 256 bytes + %d merges + 4 specials; hash %016llx\n",
               tokenizer_type_name(tok->type), tok->vocab_size, tok->n_merges,
               (unsigned long long)tokenizer_hash(tok));
    else
        printf("tokenizer  char, %d tokens: %d characters + 4 specials; hash %016llx\n",
               tok->vocab_size, plain, (unsigned long long)tokenizer_hash(tok));
    printf("  special ids: endoftext %d, user %d, assistant %d, pad %d\n", tok->eot, tok->user,
           tok->assistant, tok->pad);
    if (tok->type == TOKENIZER_BPE || tok->type == TOKENIZER_GPT2) {
        int n = tok->n_merges < MERGES_SHOWN ? tok->n_merges : MERGES_SHOWN;
        printf("  first %d merges (of %d):\n", n, tok->n_merges);
        for (int r = 0; r < n; r++) {
            printf("    %3d: ", r);
            print_token(stdout, tok, tok->merges[2 * r]);
            printf(" + ");
            print_token(stdout, tok, tok->merges[2 * r + 1]);
            printf(" -> ");
            print_token(stdout, tok, 256 + r);
            printf("\n");
        }
    } else {
        // the characters, in id order (specials excluded)
        uint8_t chars[CHARS_SHOWN];
        int n = 0;
        for (int id = 0; id < tok->vocab_size && n < CHARS_SHOWN; id++) {
            if (id == tok->eot || id == tok->user || id == tok->assistant || id == tok->pad)
                continue;
            int len;
            const uint8_t *b = tokenizer_token_bytes(tok, id, &len);
            if (len == 1) chars[n++] = b[0];
        }
        printf("  characters: ");
        print_bytes(stdout, chars, n);
        printf("%s\n", plain > CHARS_SHOWN ? " ..." : "");
    }
}

static void print_metrics(const Metrics *mt) {
    if (mt->ncols == 0 || mt->nrows == 0) {
        printf("metrics    none stored\n");
        return;
    }
    int step_col = metrics_col(mt, "step");
    size_t last = mt->nrows - 1;
    printf("metrics    %d columns, %zu rows", mt->ncols, mt->nrows);
    if (step_col >= 0) printf(" (steps %g .. %g)", mt->cols[step_col][0], mt->cols[step_col][last]);
    printf("; last row, and the last value of columns empty there:\n");
    for (int c = 0; c < mt->ncols; c++) {
        if (c == step_col) continue;
        double v = mt->cols[c][last];
        if (!isnan(v)) {
            printf("  %-28s %.6g\n", mt->names[c], v);
            continue;
        }
        size_t r = last;
        while (r > 0 && isnan(mt->cols[c][r])) r--;
        if (isnan(mt->cols[c][r])) printf("  %-28s -\n", mt->names[c]);
        else if (step_col >= 0)
            printf("  %-28s -   (%.6g at step %g)\n", mt->names[c], mt->cols[c][r],
                   mt->cols[step_col][r]);
        else printf("  %-28s -   (%.6g at row %zu)\n", mt->names[c], mt->cols[c][r], r);
    }
}

// The /state entries the stages write; what the data cursor counts depends
// on the stage.
static int print_state(Ckpt *ck, const char *stage) {
    int any = 0;
    if (ckpt_has_state(ck, "data")) {
        DataState d;
        if (ckpt_read_data_state(ck, &d) != 0) return -1;
        const char *what = !strcmp(stage, "pretrain") ? "sequential offset or batches drawn"
                           : !strcmp(stage, "ppo")    ? "prompts drawn"
                           : !strcmp(stage, "reward") ? "pairs drawn"
                           : !strcmp(stage, "dpo")    ? "batches of pairs drawn"
                                                      : "examples drawn";
        printf("  data cursor     %llu (%s)", (unsigned long long)d.cursor, what);
        if (d.rng[0] | d.rng[1] | d.rng[2] | d.rng[3])
            printf("; rng %016llx %016llx %016llx %016llx", (unsigned long long)d.rng[0],
                   (unsigned long long)d.rng[1], (unsigned long long)d.rng[2],
                   (unsigned long long)d.rng[3]);
        printf("\n");
        any = 1;
    }
    if (ckpt_has_state(ck, "threads")) {
        int64_t t;
        if (ckpt_read_i64(ck, "threads", &t, 1) != 0) return -1;
        printf("  threads         %lld (bit-identical resume needs the same)\n", (long long)t);
        any = 1;
    }
    if (ckpt_has_state(ck, "world_size")) {
        int64_t n;
        if (ckpt_read_i64(ck, "world_size", &n, 1) != 0) return -1;
        printf("  world_size      %lld process%s (a resume with another number is allowed)\n",
               (long long)n, n == 1 ? "" : "es");
        any = 1;
    }
    if (ckpt_has_state(ck, "kl_coef")) {
        double k;
        if (ckpt_read_f64(ck, "kl_coef", &k, 1) != 0) return -1;
        printf("  kl_coef         %.6g\n", k);
        any = 1;
    }
    if (ckpt_has_state(ck, "reward_norm")) {
        double r[2];
        if (ckpt_read_f64(ck, "reward_norm", r, 2) != 0) return -1;
        printf("  reward_norm     mean %.6g, std %.6g\n", r[0], r[1]);
        any = 1;
    }
    if (ckpt_has_state(ck, "sft_data")) {  // what the SFT data held (train/sft.c)
        char *text;
        if (ckpt_read_str(ck, "sft_data", &text) != 0) return -1;
        printf("  sft_data        %s\n", text);
        free(text);
        any = 1;
    }
    static const char *const import_keys[] = {"import/weights", "import/tokenizer"};
    for (int i = 0; i < 2; i++) {
        if (!ckpt_has_state(ck, import_keys[i])) continue;
        char *text;
        if (ckpt_read_str(ck, import_keys[i], &text) != 0) return -1;
        printf("  %-15s %s %s\n", i ? "" : "import", import_keys[i] + 7, text);
        free(text);
        any = 1;
    }
    if (!any) printf("  (none)\n");
    return 0;
}

// --- the command -----------------------------------------------------------------

int cmd_inspect(int argc, char **argv) {
    static const OptionSpec spec = {
        .usage = "usage: rlhf inspect CKPT (e.g. checkpoints/run/latest.h5)",
        .positional = {"checkpoint"},
        .required = 1,
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0) die_last();
    const char *path = opts.positional[0];  // points into argv: outlives opts
    options_free(&opts);

    // read everything first, so a damaged file gives one error line only
    CkptMeta meta = {0};
    Ckpt *ck = ckpt_open(path, &meta);
    if (!ck) die_last();
    GPT model, critic;
    AdamW opt, copt;
    int has_model = ckpt_has_model(ck, ""), has_critic = ckpt_has_model(ck, "critic");
    int has_opt = 0, has_copt = 0;
    if (has_model && (read_model(ck, "", &model) != 0 ||
                      read_optimizer(ck, "", &model, &opt, &has_opt) != 0))
        die_last();
    if (has_critic && (read_model(ck, "critic", &critic) != 0 ||
                       read_optimizer(ck, "critic", &critic, &copt, &has_copt) != 0))
        die_last();
    Tokenizer tok = {0};
    if (ckpt_read_tokenizer(ck, &tok) != 0) die_last();
    Metrics mt;
    metrics_init(&mt);
    if (ckpt_read_metrics(ck, &mt) != 0) die_last();
    char sha[65], *import;
    if (file_sha256(path, sha) != 0 || import_record(ck, meta.stage, &import) != 0) die_last();

    struct stat st;
    stat(path, &st);
    char target[4096], a[32];
    ssize_t tl = readlink(path, target, sizeof target - 1);
    printf("checkpoint %s", path);
    if (tl > 0) printf(" -> %.*s", (int)tl, target);
    printf("\n  stage %s, step %lld, created %s\n", meta.stage, (long long)meta.step, meta.created);
    printf("  format %s, format_version %d; %s bytes, sha256 %s\n", CKPT_FORMAT,
           CKPT_FORMAT_VERSION, group_digits(a, sizeof a, (unsigned long long)st.st_size), sha);
    printf("  attributes %s\n", meta.sealed ? "sealed: their sha256 checksum verified"
                                            : "not sealed (written before attribute "
                                              "checksums): read unverified");
    print_lineage(path, &meta, import);
    print_config(meta.config_json);
    if (has_model) {
        print_model("model", &model);
        print_optimizer("optimizer", &opt, has_opt);
    } else {
        printf("model      none (a %s file holds no parameters)\n", meta.stage);
    }
    if (has_critic) {
        print_model("critic", &critic);
        print_optimizer("critic optimizer", &copt, has_copt);
    }
    print_tokenizer(&tok);
    print_metrics(&mt);
    printf("state\n");
    if (print_state(ck, meta.stage) != 0) die_last();

    metrics_free(&mt);
    tokenizer_free(&tok);
    if (has_model) {
        gpt_free(&model);
        adamw_free(&opt);
    }
    if (has_critic) {
        gpt_free(&critic);
        adamw_free(&copt);
    }
    ckpt_close(ck);
    ckpt_meta_free(&meta);
    return 0;
}
