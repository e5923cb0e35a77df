// rlhf tokenize (CKPT | --tokenizer gpt2) [FILE] [--decode]
// The token ids of FILE (or standard input) on standard output, separated by
// spaces, exactly as training sees raw text: the whole input encoded in one
// go, no document splitting, no special tokens added. --decode reads
// whitespace-separated ids and writes their bytes back (special tokens by
// name), so `tokenize --decode` undoes `tokenize` byte for byte.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"
#include "options.h"
#include "run.h"
#include "tokenizer.h"

#define USAGE "usage: rlhf tokenize (CKPT | --tokenizer gpt2) [FILE] [--decode]"

// The whole of FILE ("-" or NULL: standard input).
static uint8_t *read_all(const char *path, size_t *len) {
    FILE *f = path && strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        rlhf_fail("cannot open %s: %s; hint: check the path", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = mallocCheck(cap + 1);
    for (;;) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        buf = reallocCheck(buf, cap + 1);
    }
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        free(buf);
        rlhf_fail("cannot read %s; hint: check the file", path ? path : "standard input");
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int encode(const Tokenizer *tok, const uint8_t *text, size_t n) {
    int *ids = mallocCheck((n + 1) * sizeof *ids);  // every token holds a byte at least
    long k = tokenizer_encode(tok, text, n, ids, (long)n + 1);
    if (k < 0) {
        free(ids);
        return -1;
    }
    ASSERT(k <= (long)n + 1);
    for (long i = 0; i < k; i++) printf(i + 1 < k ? "%d " : "%d\n", ids[i]);
    free(ids);
    return 0;
}

// Checks every id before writing anything, so a bad one leaves no output.
static int decode(const Tokenizer *tok, const char *text, const char *name) {
    const char *p = text;
    long count = 0, cap = 1024;
    int *ids = mallocCheck((size_t)cap * sizeof *ids);
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f') p++;
        if (!*p) break;
        const char *start = p;
        while (*p && !(*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f'))
            p++;
        count++;
        char *end;
        errno = 0;
        long id = strtol(start, &end, 10);
        if (end != p || errno || id < 0 || id >= tok->vocab_size || start[0] == '+' || start[0] == '-') {
            free(ids);
            return rlhf_fail("%s: item %ld '%.*s' is not a token id of this tokenizer (0..%d); hint: "
                             "give the whitespace-separated ids that 'rlhf tokenize' prints",
                             name, count, (int)(p - start > 24 ? 24 : p - start), start,
                             tok->vocab_size - 1);
        }
        if (count > cap) {
            cap *= 2;
            ids = reallocCheck(ids, (size_t)cap * sizeof *ids);
        }
        ids[count - 1] = (int)id;
    }
    for (long i = 0; i < count; i++) {
        int len;
        const uint8_t *b = tokenizer_token_bytes(tok, ids[i], &len);
        fwrite(b, 1, (size_t)len, stdout);
    }
    free(ids);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    static const OptionSpec spec = {
        .usage = USAGE,
        .positional = {"CKPT", "FILE"},
        .required = 0,
        .options = {{"tokenizer", 1, 0}, {"decode", 0, 'd'}},
    };
    Options opts;
    if (options_parse(&opts, &spec, argc, argv) != 0) die_last();
    const char *named = options_get(&opts, "tokenizer");
    const int dec = options_get(&opts, "decode") != NULL;
    const char *ckpt = NULL, *file = NULL;
    if (named) {
        if (strcmp(named, "gpt2") != 0)
            die("--tokenizer '%s' is unknown; hint: the one named tokenizer is gpt2 (a trained one "
                "is read from its checkpoint: rlhf tokenize CKPT)", named);
        if (opts.n_positional > 1)
            die("unexpected argument '%s' (with --tokenizer gpt2 the one argument is FILE); hint: %s",
                opts.positional[1], USAGE);
        file = opts.n_positional ? opts.positional[0] : NULL;
    } else {
        if (opts.n_positional == 0) die("no CKPT or --tokenizer given; hint: %s", USAGE);
        ckpt = opts.positional[0];
        file = opts.n_positional > 1 ? opts.positional[1] : NULL;
    }
    options_free(&opts);

    Tokenizer tok = {0};
    if ((named ? tokenizer_gpt2_load_default(&tok) : load_tokenizer_file(ckpt, &tok)) != 0)
        die_last();
    size_t n;
    uint8_t *text = read_all(file, &n);
    if (!text) die_last();
    const char *name = file && strcmp(file, "-") ? file : "standard input";
    int rc;
    if (dec) {
        if (strlen((const char *)text) != n)
            die("%s holds a NUL byte, so it is not a list of token ids; hint: give the ids that "
                "'rlhf tokenize' prints", name);
        rc = decode(&tok, (const char *)text, name);
    } else {
        rc = encode(&tok, text, n);
    }
    if (rc != 0) die_last();
    free(text);
    tokenizer_free(&tok);
    return options_stdout_status();
}
