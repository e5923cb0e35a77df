// The run configuration: defaults, INI files (read with inih),
// `--section.key=value` overrides, cross-key checks, and the INI, JSON and
// help printouts (the JSON is built with jsonl.c's writer). Every key comes
// from the X-macro tables in config.h; only config_validate names keys, for
// its rules. No other file knows INI.
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "tokenizer.h"
#include <strings.h>
#include <sys/stat.h>
#include <threads.h>

#include <ini.h>

#include "common.h"
#include "gpt.h"
#include "jsonl.h"

// ---------------------------------------------------------------------------
// The key table, generated from config.h

typedef enum { TYPE_INT, TYPE_FLOAT, TYPE_BOOL, TYPE_STR } KeyType;
static const char *const type_names[] = {"INT", "FLOAT", "BOOL", "STR"};

typedef struct {
    const char *section, *key, *help;
    KeyType type;
    size_t offset;        // of the value inside Config
    int64_t def_int;      // INT and BOOL defaults
    double def_float;
    const char *def_str;
} KeyDesc;

#define COUNT_KEY(key, type, def, help) +1
#define COUNT_SECTION_KEYS(name, KEYS) KEYS(COUNT_KEY)
#define COUNT_SECTION(name, KEYS) +1
enum {
    NKEYS = 0 CONFIG_SECTIONS(COUNT_SECTION_KEYS),
    NSECTIONS = 0 CONFIG_SECTIONS(COUNT_SECTION),
};
_Static_assert((int)NKEYS == (int)CONFIG_NKEYS, "config.h counts the keys as config.c does");

#define SECTION_NAME(name, KEYS) #name,
static const char *const section_names[NSECTIONS] = {CONFIG_SECTIONS(SECTION_NAME)};

static KeyDesc key_table[NKEYS];
static once_flag key_table_once = ONCE_FLAG_INIT;

#define DEF_INT(d) .def_int = (d)
#define DEF_BOOL(d) .def_int = (d)
#define DEF_FLOAT(d) .def_float = (d)
#define DEF_STR(d) .def_str = (d)
// X(key, ...) does not see its section, so each section fills its rows in a
// block where `Sec` is that section's struct type and `base` its offset.
#define KEY_ROW(key_, type_, def_, help_)                                         \
    key_table[n++] = (KeyDesc){.section = sec_name, .key = #key_, .help = help_, \
                               .type = TYPE_##type_,                              \
                               .offset = base + offsetof(Sec, key_), DEF_##type_(def_)};
#define SECTION_ROWS(name, KEYS)                         \
    {                                                    \
        typedef __typeof__(((Config *)0)->name) Sec;     \
        const char *sec_name = #name;                    \
        const size_t base = offsetof(Config, name);      \
        KEYS(KEY_ROW)                                    \
    }

static void key_table_build(void) {
    int n = 0;
    CONFIG_SECTIONS(SECTION_ROWS)
    ASSERT(n == NKEYS);
}

static const KeyDesc *keys(void) {
    call_once(&key_table_once, key_table_build);
    return key_table;
}

static void *key_field(Config *cfg, const KeyDesc *d) { return (char *)cfg + d->offset; }
static const void *key_cfield(const Config *cfg, const KeyDesc *d) {
    return (const char *)cfg + d->offset;
}

static int section_find(const char *section) {
    for (int s = 0; s < NSECTIONS; s++)
        if (strcmp(section_names[s], section) == 0) return s;
    return -1;
}

static int key_find(const char *section, const char *key) {
    const KeyDesc *k = keys();
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(k[i].section, section) == 0 && strcmp(k[i].key, key) == 0) return i;
    return -1;
}

// ---------------------------------------------------------------------------
// Lifetime

void config_init(Config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    const KeyDesc *k = keys();
    for (int i = 0; i < NKEYS; i++) {
        void *f = key_field(cfg, &k[i]);
        switch (k[i].type) {
        case TYPE_INT: *(config_INT *)f = k[i].def_int; break;
        case TYPE_BOOL: *(config_BOOL *)f = (config_BOOL)k[i].def_int; break;
        case TYPE_FLOAT: *(config_FLOAT *)f = k[i].def_float; break;
        case TYPE_STR: *(config_STR *)f = strdup_check(k[i].def_str); break;
        }
    }
}

void config_free(Config *cfg) {
    const KeyDesc *k = keys();
    for (int i = 0; i < NKEYS; i++) {
        if (k[i].type != TYPE_STR) continue;
        config_STR *f = key_field(cfg, &k[i]);
        free(*f);
        *f = NULL;
    }
}

// Deep copy into an uninitialised dst (free with config_free).
static void config_copy(Config *dst, const Config *src) {
    memcpy(dst, src, sizeof *dst);
    const KeyDesc *k = keys();
    for (int i = 0; i < NKEYS; i++) {
        if (k[i].type != TYPE_STR) continue;
        config_STR *f = key_field(dst, &k[i]);
        *f = strdup_check(*f);
    }
}

// ---------------------------------------------------------------------------
// Messages: "did you mean" and "valid keys are"

// Levenshtein distance, case-insensitive; long strings count as far apart.
static int edit_distance(const char *a, const char *b) {
    enum { MAXLEN = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la >= MAXLEN || lb >= MAXLEN) return MAXLEN;
    int prev[MAXLEN + 1], cur[MAXLEN + 1];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
                                     tolower((unsigned char)b[j - 1]));
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

// Appends printf output to buf (size n), truncating quietly.
static void msg_append(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msg_append(char *buf, size_t n, const char *fmt, ...) {
    size_t len = strlen(buf);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

static void msg_unknown_section(char *why, size_t n, const char *section) {
    snprintf(why, n, "unknown section [%s]; hint: ", section);
    int best = -1, best_d = 3;
    for (int s = 0; s < NSECTIONS; s++) {
        int d = edit_distance(section, section_names[s]);
        if (d < best_d) best_d = d, best = s;
    }
    if (best >= 0) msg_append(why, n, "did you mean [%s]? ", section_names[best]);
    msg_append(why, n, "valid sections are");
    for (int s = 0; s < NSECTIONS; s++)
        msg_append(why, n, "%s [%s]", s ? "," : "", section_names[s]);
}

static void msg_unknown_key(char *why, size_t n, const char *section, const char *key) {
    const KeyDesc *k = keys();
    snprintf(why, n, "unknown key '%s' in [%s]; hint: ", key, section);
    int best = -1, best_d = 3;
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(k[i].section, section) != 0) continue;
        int d = edit_distance(key, k[i].key);
        if (d < best_d) best_d = d, best = i;
    }
    if (best >= 0) {
        msg_append(why, n, "did you mean '%s'?", k[best].key);
        return;
    }
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(k[i].key, key) == 0) {
            msg_append(why, n, "'%s' belongs in [%s]; ", key, k[i].section);
            break;
        }
    }
    msg_append(why, n, "[%s] has", section);
    bool first = true;
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(k[i].section, section) != 0) continue;
        msg_append(why, n, "%s %s", first ? "" : ",", k[i].key);
        first = false;
    }
}

// ---------------------------------------------------------------------------
// Values

static const char *trim_copy(const char *s, char *buf, size_t n) {
    while (isspace((unsigned char)*s)) s++;
    size_t len = strlen(s);
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len >= n) len = n - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static int value_parse(Config *cfg, const KeyDesc *d, const char *text, char *why, size_t n);

// Parses text as the key's type and stores it in cfg, marking the key as
// given. On failure returns -1 with the reason in why (cfg unchanged).
static int value_store(Config *cfg, const KeyDesc *d, const char *text, char *why, size_t n) {
    if (value_parse(cfg, d, text, why, n) != 0) return -1;
    cfg->given[d - keys()] = 1;
    return 0;
}

static int value_parse(Config *cfg, const KeyDesc *d, const char *text, char *why, size_t n) {
    char num[128];
    void *f = key_field(cfg, d);
    switch (d->type) {
    case TYPE_INT: {
        const char *s = trim_copy(text, num, sizeof num);
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || strlen(text) >= sizeof num) {
            snprintf(why, n, "[%s] %s = '%s' is not an integer; hint: write a whole number "
                     "such as %" PRId64,
                     d->section, d->key, text, d->def_int);
            return -1;
        }
        if (errno == ERANGE) {
            snprintf(why, n, "[%s] %s = '%s' is out of range; hint: use a value between "
                     "%lld and %lld",
                     d->section, d->key, text, LLONG_MIN, LLONG_MAX);
            return -1;
        }
        *(config_INT *)f = (config_INT)v;
        return 0;
    }
    case TYPE_FLOAT: {
        const char *s = trim_copy(text, num, sizeof num);
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (!*s || *end || strlen(text) >= sizeof num) {
            snprintf(why, n, "[%s] %s = '%s' is not a number; hint: write a decimal such as %g",
                     d->section, d->key, text, d->def_float);
            return -1;
        }
        if (!isfinite(v)) {
            snprintf(why, n, "[%s] %s = '%s' is not a finite number; hint: write a decimal "
                     "such as %g",
                     d->section, d->key, text, d->def_float);
            return -1;
        }
        *(config_FLOAT *)f = v;
        return 0;
    }
    case TYPE_BOOL: {
        static const char *const yes[] = {"true", "1", "yes", "on"};
        static const char *const no[] = {"false", "0", "no", "off"};
        const char *s = trim_copy(text, num, sizeof num);
        for (int i = 0; i < 4; i++) {
            if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
                *(config_BOOL *)f = strcasecmp(s, yes[i]) == 0;
                return 0;
            }
        }
        snprintf(why, n, "[%s] %s = '%s' is not a boolean; hint: use true/false, yes/no, "
                 "on/off or 1/0",
                 d->section, d->key, text);
        return -1;
    }
    case TYPE_STR: {
        config_STR *sf = f;
        free(*sf);
        *sf = strdup_check(text);
        return 0;
    }
    }
    ASSERT(0 && "unknown key type");
    return -1;
}

// A value as written in a file (inih has trimmed it and may or may not have
// cut a ';' comment, depending on how it was built): a quoted value loses its
// quotes; otherwise '#' or ';' at the start or after a blank starts a comment.
// Writes the result into out (at least strlen(raw) + 1 bytes).
static int value_from_file(const char *raw, char *out, char *why, size_t n) {
    if (raw[0] == '"' || raw[0] == '\'') {
        const char *close = strchr(raw + 1, raw[0]);
        if (!close) {
            snprintf(why, n, "value %s has no closing quote; hint: close it with %c "
                     "(' ;' starts a comment, even inside quotes)", raw, raw[0]);
            return -1;
        }
        const char *rest = close + 1;
        while (isspace((unsigned char)*rest)) rest++;
        if (*rest && *rest != '#' && *rest != ';') {
            snprintf(why, n, "unexpected text '%s' after the quoted value; hint: put a comment "
                     "after '#', or quote the whole value", rest);
            return -1;
        }
        size_t len = (size_t)(close - raw - 1);
        memcpy(out, raw + 1, len);
        out[len] = '\0';
        return 0;
    }
    size_t len = 0;
    for (const char *p = raw; *p; p++) {
        if ((*p == '#' || *p == ';') && (p == raw || isspace((unsigned char)p[-1]))) break;
        len++;
    }
    while (len && isspace((unsigned char)raw[len - 1])) len--;
    memcpy(out, raw, len);
    out[len] = '\0';
    return 0;
}

// ---------------------------------------------------------------------------
// Loading a file

typedef struct {
    Config *cfg;           // a copy; committed only when the whole file is good
    FILE *fp;
    int lineno;            // lines handed to inih so far
    int err_line;          // first error found here (0 = none)
    char err[900];
    int seen_line[NKEYS];  // where each key was set in this file (0 = not yet)
} LoadCtx;

// A config is a few kB; a file past this is not one (or a pipe that never
// ends), and reading stops there.
#define CONFIG_MAX_BYTES ((size_t)1 << 20)

static void load_error(LoadCtx *ctx, const char *why) {
    if (ctx->err_line) return;  // the first error is the one reported
    ctx->err_line = ctx->lineno;
    snprintf(ctx->err, sizeof ctx->err, "%s", why);
}

// inih's line reader. We read lines ourselves to know line numbers whatever
// inih's build options, to refuse lines longer than its buffer (inih would
// cut them silently), to drop leading blanks (so an indented line is never
// taken as a continuation of the previous value), and to check section
// names even for a section with no keys.
static char *load_read_line(char *buf, int size, void *stream) {
    LoadCtx *ctx = stream;
    if (!fgets(buf, size, ctx->fp)) return NULL;
    ctx->lineno++;
    size_t len = strlen(buf);
    if (len + 1 == (size_t)size && buf[len - 1] != '\n') {
        int c = fgetc(ctx->fp);
        if (c != EOF && c != '\n') {
            while (c != EOF && c != '\n') c = fgetc(ctx->fp);
            char why[200];
            snprintf(why, sizeof why, "line is longer than %d characters; hint: shorten it, "
                     "or pass the value as --section.key=value", size - 3);
            load_error(ctx, why);
            buf[0] = '\0';
            return buf;
        }
    }
    size_t skip = 0;
    while (buf[skip] == ' ' || buf[skip] == '\t') skip++;
    memmove(buf, buf + skip, len - skip + 1);
    if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        if (end) {
            char name[128];
            size_t nlen = (size_t)(end - buf - 1);
            if (nlen >= sizeof name) nlen = sizeof name - 1;
            memcpy(name, buf + 1, nlen);
            name[nlen] = '\0';
            if (section_find(name) < 0) {
                char why[600];
                msg_unknown_section(why, sizeof why, name);
                load_error(ctx, why);
            }
        }
    }
    return buf;
}

static int load_handle(void *user, const char *section, const char *name, const char *value) {
    LoadCtx *ctx = user;
    char why[600];
    if (ctx->err_line) return 1;  // already failed; inih keeps reading, we don't
    if (!name) return 1;          // a new section (builds that report them), checked already
    if (!value) {                 // builds that allow a bare name
        snprintf(why, sizeof why, "'%s' has no value; hint: write %s = value", name, name);
        load_error(ctx, why);
        return 0;
    }
    if (!section[0]) {
        snprintf(why, sizeof why, "key '%s' comes before any [section]; hint: put it under "
                 "its section, e.g. [model]", name);
        for (int i = 0; i < NKEYS; i++)
            if (strcmp(keys()[i].key, name) == 0) {
                snprintf(why, sizeof why, "key '%s' comes before any [section]; hint: put it "
                         "under [%s]", name, keys()[i].section);
                break;
            }
        load_error(ctx, why);
        return 0;
    }
    if (section_find(section) < 0) {
        msg_unknown_section(why, sizeof why, section);
        load_error(ctx, why);
        return 0;
    }
    int k = key_find(section, name);
    if (k < 0) {
        msg_unknown_key(why, sizeof why, section, name);
        load_error(ctx, why);
        return 0;
    }
    if (ctx->seen_line[k]) {
        snprintf(why, sizeof why, "[%s] %s is set twice (first on line %d); hint: keep one of "
                 "the two lines", section, name, ctx->seen_line[k]);
        load_error(ctx, why);
        return 0;
    }
    ctx->seen_line[k] = ctx->lineno;
    char *text = mallocCheck(strlen(value) + 1);
    int rc = value_from_file(value, text, why, sizeof why);
    if (rc == 0) rc = value_store(ctx->cfg, &keys()[k], text, why, sizeof why);
    free(text);
    if (rc) {
        load_error(ctx, why);
        return 0;
    }
    return 1;
}

// Copies line `lineno` of fp (from the start) into buf, for error messages.
static void load_quote_line(FILE *fp, int lineno, char *buf, size_t n) {
    buf[0] = '\0';
    if (fseek(fp, 0, SEEK_SET) != 0) return;
    char line[256];
    int at = 0;
    while (fgets(line, sizeof line, fp)) {
        size_t len = strlen(line);
        bool whole = len && line[len - 1] == '\n';
        if (++at == lineno) {
            trim_copy(line, buf, n);
            return;
        }
        while (!whole && fgets(line, sizeof line, fp)) {  // rest of a long line
            len = strlen(line);
            whole = len && line[len - 1] == '\n';
        }
    }
}

// The whole text of a config file, read once with a bound: a regular file
// or a pipe (<(...)), not a device such as /dev/zero that never ends; at
// most CONFIG_MAX_BYTES, no NUL byte. Returns a stream over *text (the
// caller fcloses it, then frees *text), or NULL with a reason.
static FILE *config_read(const char *path, char **text) {
    *text = NULL;
    FILE *in = fopen(path, "r");
    if (!in) {
        rlhf_fail("%s: cannot open config file (%s); hint: check the path, or start from a "
                  "file in configs/", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    const char *bad = NULL;
    if (fstat(fileno(in), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode)))
        bad = S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file";
    char *buf = mallocCheck(CONFIG_MAX_BYTES + 2);
    size_t n = bad ? 0 : fread(buf, 1, CONFIG_MAX_BYTES + 1, in);
    if (!bad && ferror(in)) bad = strerror(errno);
    else if (!bad && n > CONFIG_MAX_BYTES) bad = "it is larger than 1 MiB, not a config";
    else if (!bad && memchr(buf, '\0', n)) bad = "it holds a NUL byte (a binary file?)";
    fclose(in);
    FILE *fp = NULL;
    if (!bad) {
        buf[n] = '\n';  // a stream of at least one byte (an empty file is a valid config)
        fp = fmemopen(buf, n + 1, "r");
        if (!fp) bad = strerror(errno);
    }
    if (bad) {
        free(buf);
        rlhf_fail("%s: cannot read config file: %s; hint: give an INI file (configs/ has "
                  "examples)", path, bad);
        return NULL;
    }
    *text = buf;
    return fp;
}

int config_load(Config *cfg, const char *path) {
    char *text;
    FILE *fp = config_read(path, &text);
    if (!fp) return -1;
    LoadCtx *ctx = callocCheck(1, sizeof *ctx);
    Config work;
    config_copy(&work, cfg);
    ctx->cfg = &work;
    ctx->fp = fp;
    int rc = ini_parse_stream(load_read_line, ctx, load_handle, ctx);
    int result = 0;
    if (ferror(fp)) {
        result = rlhf_fail("%s: cannot read config file (%s); hint: is it a regular, readable "
                           "file?", path, strerror(errno));
    } else if (rc == -2) {
        result = rlhf_fail("%s: out of memory while reading the config file; hint: free some "
                           "memory and try again", path);
    } else if (rc > 0 && (!ctx->err_line || rc < ctx->err_line)) {
        char quoted[64];
        load_quote_line(fp, rc, quoted, sizeof quoted);
        result = rlhf_fail("%s:%d: cannot parse '%s'; hint: lines are [section], "
                           "key = value, or a comment starting with # or ;", path, rc, quoted);
    } else if (ctx->err_line) {
        result = rlhf_fail("%s:%d: %s", path, ctx->err_line, ctx->err);
    }
    fclose(fp);
    free(text);
    if (result == 0) {
        config_free(cfg);
        *cfg = work;
    } else {
        config_free(&work);
    }
    free(ctx);
    return result;
}

// ---------------------------------------------------------------------------
// Overrides

int config_set(Config *cfg, const char *assignment) {
    const char *a = assignment;
    if (strncmp(a, "--", 2) == 0) a += 2;
    const char *eq = strchr(a, '=');
    const char *dot = strchr(a, '.');
    if (!eq || !dot || dot > eq)
        return rlhf_fail("override '%s' is not of the form --section.key=value; hint: e.g. "
                         "--optim.lr=3e-4", assignment);
    char section[64], key[64], why[600];
    size_t slen = (size_t)(dot - a), klen = (size_t)(eq - dot - 1);
    if (slen >= sizeof section || klen >= sizeof key)
        return rlhf_fail("override '%s': section or key name too long; hint: e.g. "
                         "--optim.lr=3e-4", assignment);
    memcpy(section, a, slen);
    section[slen] = '\0';
    memcpy(key, dot + 1, klen);
    key[klen] = '\0';
    if (section_find(section) < 0) {
        msg_unknown_section(why, sizeof why, section);
        return rlhf_fail("override '%s': %s", assignment, why);
    }
    int k = key_find(section, key);
    if (k < 0) {
        msg_unknown_key(why, sizeof why, section, key);
        return rlhf_fail("override '%s': %s", assignment, why);
    }
    // The shell has already removed quoting; strip one more matching pair so
    // --sample.prompt='"x"' and a value copied from an INI file both work.
    const char *value = eq + 1;
    size_t vlen = strlen(value);
    char *text = mallocCheck(vlen + 1);
    if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0]) {
        memcpy(text, value + 1, vlen - 2);
        text[vlen - 2] = '\0';
    } else {
        memcpy(text, value, vlen + 1);
    }
    int rc = value_store(cfg, &keys()[k], text, why, sizeof why);
    free(text);
    if (rc) return rlhf_fail("override '%s': %s", assignment, why);
    return 0;
}

int config_is_set(const Config *cfg, const char *section, const char *key) {
    int k = key_find(section, key);
    return k >= 0 && cfg->given[k];
}

static int64_t default_int(const char *section, const char *key) {
    int k = key_find(section, key);
    ASSERT(k >= 0);
    return keys()[k].def_int;
}

// data.vocab_size as it takes effect: gpt2's fixed size when the tokenizer
// is gpt2 and the key was left at its default (that default is bpe's).
static int64_t effective_vocab_size(const Config *cfg) {
    if (strcmp(cfg->data.tokenizer, "gpt2") == 0 && !config_is_set(cfg, "data", "vocab_size") &&
        cfg->data.vocab_size == default_int("data", "vocab_size"))
        return GPT2_VOCAB_SIZE;
    return cfg->data.vocab_size;
}

// ---------------------------------------------------------------------------
// Cross-key checks

static int check_int(const char *name, int64_t v, int64_t lo, int64_t hi) {
    if (v >= lo && v <= hi) return 0;
    if (hi == INT64_MAX)
        return rlhf_fail("config: %s = %" PRId64 " must be at least %" PRId64 "; hint: set it in "
                         "the config file or with --%s=...", name, v, lo, name);
    return rlhf_fail("config: %s = %" PRId64 " must be between %" PRId64 " and %" PRId64 "; hint: "
                     "set it in the config file or with --%s=...", name, v, lo, hi, name);
}

// lo < v (or lo <= v when lo_incl) and v < hi (or v <= hi when hi_incl).
static int check_float(const char *name, double v, double lo, bool lo_incl, double hi,
                       bool hi_incl) {
    bool ok = (lo_incl ? v >= lo : v > lo) && (hi_incl ? v <= hi : v < hi);
    if (ok) return 0;
    if (isinf(hi))
        return rlhf_fail("config: %s = %g must be %s %g; hint: set it in the config file or with "
                         "--%s=...", name, v, lo_incl ? ">=" : ">", lo, name);
    return rlhf_fail("config: %s = %g must be in %c%g, %g%c; hint: set it in the config file or "
                     "with --%s=...", name, v, lo_incl ? '[' : '(', lo, hi, hi_incl ? ']' : ')',
                     name);
}

// choices: "a|b|c"
static int check_choice(const char *name, const char *v, const char *choices) {
    size_t n = strlen(v);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && strncmp(c, v, n) == 0) return 0;
        if (!bar) break;
        c = bar + 1;
    }
    return rlhf_fail("config: %s = '%s' is not one of %s; hint: set it in the config file or with "
                     "--%s=...", name, v, choices, name);
}

#define POS_INT(sec, key) \
    if (check_int(#sec "." #key, cfg->sec.key, 1, INT32_MAX)) return -1
#define NONNEG_INT(sec, key) \
    if (check_int(#sec "." #key, cfg->sec.key, 0, INT32_MAX)) return -1
#define FLOAT_IN(sec, key, lo, lo_incl, hi, hi_incl) \
    if (check_float(#sec "." #key, cfg->sec.key, lo, lo_incl, hi, hi_incl)) return -1
#define CHOICE(sec, key, choices) \
    if (check_choice(#sec "." #key, cfg->sec.key, choices)) return -1

#define INT_IN(sec, key, lo, hi) \
    if (check_int(#sec "." #key, cfg->sec.key, lo, hi)) return -1

int config_validate(const Config *cfg) {
    // the largest shapes a checkpoint may hold (checkpoint.c checks the same)
    INT_IN(model, n_layer, 1, GPT_MAX_N_LAYER);
    INT_IN(model, n_head, 1, GPT_MAX_N_HEAD);
    INT_IN(model, n_embd, 1, GPT_MAX_N_EMBD);
    INT_IN(model, block_size, 1, GPT_MAX_BLOCK_SIZE);
    if (cfg->model.n_embd % cfg->model.n_head != 0)
        return rlhf_fail("config: model.n_embd = %" PRId64 " is not a multiple of model.n_head = "
                         "%" PRId64 "; hint: pick n_embd = n_head * head size",
                         cfg->model.n_embd, cfg->model.n_head);

    CHOICE(data, tokenizer, "char|bpe|gpt2");
    CHOICE(data, doc_split, "auto|blank|percent|none");
    FLOAT_IN(data, val_fraction, 0.0, true, 1.0, false);
    NONNEG_INT(data, vocab_size);
    if (strcmp(cfg->data.tokenizer, "bpe") == 0 && cfg->data.vocab_size < 260)
        return rlhf_fail("config: data.vocab_size = %" PRId64 " is too small for bpe; hint: it "
                         "needs 256 byte tokens + 4 special tokens, so at least 260",
                         cfg->data.vocab_size);
    // gpt2's vocabulary is fixed: the key left at its default, or set to that
    if (strcmp(cfg->data.tokenizer, "gpt2") == 0 && effective_vocab_size(cfg) != GPT2_VOCAB_SIZE)
        return rlhf_fail("config: data.vocab_size = %" PRId64 " disagrees with data.tokenizer = gpt2, "
                         "whose vocabulary is fixed at %d (50257 + 3 chat specials); hint: remove "
                         "data.vocab_size or set it to %d", cfg->data.vocab_size, GPT2_VOCAB_SIZE,
                         GPT2_VOCAB_SIZE);

    POS_INT(train, batch_size);
    POS_INT(train, max_steps);
    POS_INT(train, grad_accum);
    FLOAT_IN(train, epochs, 0.0, true, INFINITY, false);
    NONNEG_INT(train, eval_interval);
    POS_INT(train, eval_steps);
    POS_INT(train, log_interval);
    NONNEG_INT(train, threads);
    CHOICE(train, precision, "fp32|bf16");

    FLOAT_IN(optim, lr, 0.0, false, INFINITY, false);
    FLOAT_IN(optim, min_lr, 0.0, true, INFINITY, false);
    if (cfg->optim.min_lr > cfg->optim.lr)
        return rlhf_fail("config: optim.min_lr = %g is above optim.lr = %g; hint: the cosine "
                         "decay goes from lr down to min_lr", cfg->optim.min_lr, cfg->optim.lr);
    NONNEG_INT(optim, warmup_steps);
    FLOAT_IN(optim, weight_decay, 0.0, true, INFINITY, false);
    FLOAT_IN(optim, beta1, 0.0, true, 1.0, false);
    FLOAT_IN(optim, beta2, 0.0, true, 1.0, false);
    FLOAT_IN(optim, eps, 0.0, false, INFINITY, false);
    FLOAT_IN(optim, grad_clip, 0.0, true, INFINITY, false);

    CHOICE(sft, overlong, "skip|truncate");
    NONNEG_INT(sft, eval_examples);
    POS_INT(sft, max_new_tokens);
    FLOAT_IN(reward, center_coef, 0.0, true, INFINITY, false);
    FLOAT_IN(sft, pretrain_mix, 0.0, true, 1.0, false);
    FLOAT_IN(sft, shift_positions, 0.0, true, 1.0, true);
    NONNEG_INT(sft, chat_eval_examples);

    FLOAT_IN(dpo, beta, 0.0, false, INFINITY, false);
    CHOICE(dpo, loss, "sigmoid|ipo");
    FLOAT_IN(dpo, label_smoothing, 0.0, true, 0.5, false);
    if (cfg->dpo.label_smoothing > 0 && strcmp(cfg->dpo.loss, "sigmoid") != 0)
        return rlhf_fail("config: dpo.label_smoothing = %g applies to dpo.loss = sigmoid only "
                         "(cDPO), not '%s'; hint: set dpo.label_smoothing = 0 or dpo.loss = "
                         "sigmoid", cfg->dpo.label_smoothing, cfg->dpo.loss);
    FLOAT_IN(dpo, rpo_alpha, 0.0, true, INFINITY, false);
    POS_INT(dpo, eval_pairs);

    INT_IN(rank, k, 2, 64);
    NONNEG_INT(rank, n_prompts);
    FLOAT_IN(rank, noise, 0.0, true, 0.5, false);
    FLOAT_IN(rank, temperature, 0.0, false, INFINITY, false);
    POS_INT(rank, max_new_tokens);
    if (cfg->rank.batch < cfg->rank.k)
        return rlhf_fail("config: rank.batch = %" PRId64 " is below rank.k = %" PRId64 "; hint: "
                         "a batch holds batch / k prompts' k responses each, so raise rank.batch",
                         cfg->rank.batch, cfg->rank.k);

    CHOICE(ppo, reward, "model|grader|model+grader");
    CHOICE(ppo, advantage, "gae|grpo|rloo|reinforce");
    CHOICE(ppo, scale_rewards, "group|batch|none");
    CHOICE(ppo, loss_norm, "token|sequence");
    POS_INT(ppo, rollout_batch);
    POS_INT(ppo, group_size);
    if (cfg->ppo.rollout_batch % cfg->ppo.group_size != 0)
        return rlhf_fail("config: ppo.rollout_batch = %" PRId64 " is not a multiple of "
                         "ppo.group_size = %" PRId64 "; hint: rollout_batch counts responses, "
                         "group_size of them per prompt", cfg->ppo.rollout_batch,
                         cfg->ppo.group_size);
    const bool grpo = !strcmp(cfg->ppo.advantage, "grpo");
    const bool rloo = !strcmp(cfg->ppo.advantage, "rloo");
    if ((grpo || rloo) && cfg->ppo.group_size < 2)
        return rlhf_fail("config: ppo.advantage = %s compares the responses to one prompt, but "
                         "ppo.group_size = %" PRId64 "; hint: --ppo.group_size=4 (at least 2)",
                         cfg->ppo.advantage, cfg->ppo.group_size);
    if (!grpo && strcmp(cfg->ppo.scale_rewards, "group") != 0)
        return rlhf_fail("config: ppo.scale_rewards = %s applies to ppo.advantage = grpo only, "
                         "not %s; hint: drop it or use --ppo.advantage=grpo",
                         cfg->ppo.scale_rewards, cfg->ppo.advantage);
    POS_INT(ppo, max_sample_batches);
    if (cfg->ppo.dynamic_sampling && cfg->ppo.group_size < 2)
        return rlhf_fail("config: ppo.dynamic_sampling keeps the groups whose scores differ, so "
                         "it needs groups of answers to one prompt, not ppo.group_size = %" PRId64
                         "; hint: --ppo.group_size=8, or --ppo.dynamic_sampling=false",
                         cfg->ppo.group_size);
    if (cfg->ppo.adaptive_kl && cfg->ppo.kl_in_loss)
        return rlhf_fail("config: ppo.adaptive_kl adapts the KL penalty in the reward, but "
                         "ppo.kl_in_loss puts it in the loss; hint: --ppo.adaptive_kl=false");
    if (cfg->ppo.adaptive_kl && cfg->ppo.kl_coef == 0)
        return rlhf_fail("config: ppo.adaptive_kl scales ppo.kl_coef, which is 0 and would stay "
                         "0; hint: start from --ppo.kl_coef=0.05, or --ppo.adaptive_kl=false");
    NONNEG_INT(ppo, eval_prompts);
    POS_INT(ppo, max_new_tokens);
    FLOAT_IN(ppo, temperature, 0.0, true, INFINITY, false);
    NONNEG_INT(ppo, top_k);
    FLOAT_IN(ppo, top_p, 0.0, false, 1.0, true);
    POS_INT(ppo, ppo_epochs);
    POS_INT(ppo, minibatches);
    if (cfg->ppo.rollout_batch % cfg->ppo.minibatches != 0)
        return rlhf_fail("config: ppo.rollout_batch = %" PRId64 " is not a multiple of "
                         "ppo.minibatches = %" PRId64 "; hint: minibatches must split the "
                         "rollout batch evenly", cfg->ppo.rollout_batch, cfg->ppo.minibatches);
    FLOAT_IN(ppo, gamma, 0.0, false, 1.0, true);
    FLOAT_IN(ppo, lam, 0.0, true, 1.0, true);
    FLOAT_IN(ppo, cliprange, 0.0, false, INFINITY, false);
    FLOAT_IN(ppo, cliprange_value, 0.0, false, INFINITY, false);
    FLOAT_IN(ppo, vf_coef, 0.0, true, INFINITY, false);
    FLOAT_IN(ppo, ent_coef, 0.0, true, INFINITY, false);
    FLOAT_IN(ppo, kl_coef, 0.0, true, INFINITY, false);
    FLOAT_IN(ppo, kl_target, 0.0, false, INFINITY, false);
    POS_INT(ppo, kl_horizon);
    FLOAT_IN(ppo, critic_lr, 0.0, true, INFINITY, false);
    FLOAT_IN(ppo, ptx_coef, 0.0, true, INFINITY, false);
    POS_INT(ppo, ptx_batch);

    POS_INT(sample, max_new_tokens);
    FLOAT_IN(sample, temperature, 0.0, true, INFINITY, false);
    NONNEG_INT(sample, top_k);
    FLOAT_IN(sample, top_p, 0.0, false, 1.0, true);
    POS_INT(sample, num_samples);

    NONNEG_INT(checkpoint, every);
    POS_INT(checkpoint, keep);
    return 0;
}

// ---------------------------------------------------------------------------
// Printing

// A string as an INI value that load reads back unchanged: quoted when it
// has blanks at either end, comment characters, or starts with a quote.
// (A string holding a newline, or both quote characters and a reason to
// quote, cannot be written as INI.)
static void print_ini_string(FILE *out, const char *s) {
    size_t n = strlen(s);
    bool quote = !n || (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]) ||
                       s[0] == '"' || s[0] == '\'' || strpbrk(s, "#;"));
    if (!quote) {
        fputs(s, out);
        return;
    }
    char q = strchr(s, '"') ? '\'' : '"';
    fprintf(out, "%c%s%c", q, s, q);
}

// The shortest of %.15g, %.16g, %.17g that reads back as the same double
// (%.17g always does): 0.1 prints as 0.1, not 0.10000000000000001.
static void format_double(char *buf, size_t n, double v) {
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) return;
    }
}

// An INT, FLOAT or BOOL value as text (STR is quoted differently for INI
// and JSON, so callers handle it).
static void format_scalar(char *buf, size_t n, const void *f, KeyType type) {
    switch (type) {
    case TYPE_INT: snprintf(buf, n, "%" PRId64, *(const config_INT *)f); break;
    case TYPE_FLOAT: format_double(buf, n, *(const config_FLOAT *)f); break;
    case TYPE_BOOL: snprintf(buf, n, "%s", *(const config_BOOL *)f ? "true" : "false"); break;
    case TYPE_STR: ASSERT(0 && "strings are not scalars"); break;
    }
}

void config_print(const Config *cfg, FILE *out) {
    const KeyDesc *k = keys();
    fprintf(out, "# rlhf.c configuration, every key (defaults included)\n");
    const char *section = NULL;
    for (int i = 0; i < NKEYS; i++) {
        if (section != k[i].section) {
            section = k[i].section;
            fprintf(out, "\n[%s]\n", section);
        }
        // "key = value", the help as a trailing comment in a column
        char *line = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&line, &len);
        fprintf(mem, "%s = ", k[i].key);
        const void *f = key_cfield(cfg, &k[i]);
        if (k[i].type == TYPE_STR) {
            print_ini_string(mem, *(const config_STR *)f);
        } else {
            char num[64];
            // gpt2's size for an unset vocab_size, so that the printout
            // loads back as a valid config
            int64_t vocab = effective_vocab_size(cfg);
            if (f == (const void *)&cfg->data.vocab_size) f = &vocab;
            format_scalar(num, sizeof num, f, k[i].type);
            fputs(num, mem);
        }
        fclose(mem);
        fprintf(out, "%-40s ; %s\n", line, k[i].help);
        free(line);
    }
}

void config_print_help(FILE *out) {
    const KeyDesc *k = keys();
    Config def;
    config_init(&def);
    fprintf(out, "Config keys, by [section]: key, type, default, meaning. Set them in the INI "
                 "file or with --section.key=value.\n");
    const char *section = NULL;
    for (int i = 0; i < NKEYS; i++) {
        if (section != k[i].section) {
            section = k[i].section;
            fprintf(out, "\n[%s]\n", section);
        }
        char dflt[96];
        if (k[i].type == TYPE_STR)
            snprintf(dflt, sizeof dflt, "\"%s\"", k[i].def_str);
        else
            format_scalar(dflt, sizeof dflt, key_cfield(&def, &k[i]), k[i].type);
        fprintf(out, "  %-16s %-5s %-32s %s\n", k[i].key, type_names[k[i].type], dflt, k[i].help);
    }
    config_free(&def);
}

char *config_to_json(const Config *cfg) {
    const KeyDesc *k = keys();
    JsonOut *root = json_out_object(), *sec = NULL;
    const char *section = NULL;
    for (int i = 0; i < NKEYS; i++) {
        if (section != k[i].section) {
            section = k[i].section;
            sec = json_out_add_object(root, section);
        }
        const void *f = key_cfield(cfg, &k[i]);
        switch (k[i].type) {
        case TYPE_STR: json_out_add_string(sec, k[i].key, *(const config_STR *)f); break;
        case TYPE_BOOL: json_out_add_bool(sec, k[i].key, *(const config_BOOL *)f); break;
        case TYPE_INT: json_out_add_int(sec, k[i].key, *(const config_INT *)f); break;
        case TYPE_FLOAT: {
            double v = *(const config_FLOAT *)f;
            if (!isfinite(v)) {  // JSON has no inf/nan; load and set refuse them anyway
                json_out_add_null(sec, k[i].key);
                break;
            }
            char num[64];
            format_double(num, sizeof num, v);  // every digit a double needs, not cJSON's
            json_out_add_number_text(sec, k[i].key, num);
            break;
        }
        }
    }
    char *json = json_out_print(root);
    json_out_free(root);
    return json;
}
