// Command-line parsing shared by every command (see options.h). It sorts
// arguments into positional ones, declared options and config overrides;
// what the values mean is the caller's business.
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int n_positional_max(const OptionSpec *spec) {
    int n = 0;
    while (n < OPTIONS_MAX_POSITIONAL && spec->positional[n]) n++;
    return n;
}

// The declared option named name[0..len), or -1.
static int option_find(const OptionSpec *spec, const char *name, size_t len) {
    for (int i = 0; i < OPTIONS_MAX && spec->options[i].name; i++)
        if (strlen(spec->options[i].name) == len && !strncmp(spec->options[i].name, name, len))
            return i;
    return -1;
}

static int option_find_alias(const OptionSpec *spec, char c) {
    for (int i = 0; i < OPTIONS_MAX && spec->options[i].name; i++)
        if (spec->options[i].alias && spec->options[i].alias == c) return i;
    return -1;
}

int options_stdout_status(void) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
    fprintf(stderr, "rlhf: error: cannot write to standard output (%s); hint: check where "
            "the output goes (a full disk, a closed pipe)\n", errno ? strerror(errno) : "write error");
    return 1;
}

int options_override_is(const char *text, const char *key, size_t n) {
    text += strspn(text, "-");
    return !strncmp(text, key, n) && text[n] == '=';
}

static void override_add(Options *o, char *text) {
    o->overrides = reallocCheck(o->overrides, (size_t)(o->n_overrides + 1) * sizeof *o->overrides);
    o->overrides[o->n_overrides++] = text;
}

int options_parse(Options *o, const OptionSpec *spec, int argc, char **argv) {
    memset(o, 0, sizeof *o);
    o->spec = spec;
    const char *usage = spec->usage;
    const int max_pos = n_positional_max(spec);
    ASSERT(spec->required <= max_pos);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (o->n_positional >= max_pos)
                return rlhf_fail("unexpected argument '%s'; hint: %s", a, usage);
            o->positional[o->n_positional++] = a;
            continue;
        }
        int k = -1;
        const char *value = NULL;
        if ((!strcmp(a, "--help") || !strcmp(a, "-h")) && option_find(spec, "help", 4) < 0 &&
            option_find_alias(spec, 'h') < 0) {
            printf("%s\n", usage);  // the answer, not an error: stdout, exit 0
            exit(options_stdout_status());
        }
        if (a[1] != '-') {  // -c: a one-letter alias
            if (a[2] == '\0') k = option_find_alias(spec, a[1]);
            if (k < 0) return rlhf_fail("unknown option '%s'; hint: %s", a, usage);
        } else {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            if (len == 0) return rlhf_fail("unknown option '%s'; hint: %s", a, usage);
            value = eq ? eq + 1 : NULL;
            k = option_find(spec, name, len);
            if (k < 0) {
                int dotted = memchr(name, '.', len) != NULL;
                if ((spec->overrides || spec->section) && dotted && eq) {  // --section.key=value
                    override_add(o, strdup_check(a));
                    continue;
                }
                if (!spec->section || dotted)
                    return rlhf_fail("unknown option '%s'; hint: %s", a, usage);
                // --key VALUE or --key=VALUE: section.key=VALUE
                if (!value) {
                    if (i + 1 >= argc)
                        return rlhf_fail("option '%s' needs a value; hint: %s", a, usage);
                    value = argv[++i];
                }
                size_t n = strlen(spec->section) + len + strlen(value) + 3;
                char *text = mallocCheck(n);
                snprintf(text, n, "%s.%.*s=%s", spec->section, (int)len, name, value);
                override_add(o, text);
                continue;
            }
        }
        const OptionDef *d = &spec->options[k];
        if (!d->takes_value) {
            if (value) return rlhf_fail("option '--%s' takes no value; hint: %s", d->name, usage);
            value = "";
        } else if (!value) {
            if (i + 1 >= argc) return rlhf_fail("option '%s' needs a value; hint: %s", a, usage);
            value = argv[++i];
        }
        o->value[k] = value;
    }
    if (o->n_positional < spec->required)
        return rlhf_fail("no %s given; hint: %s", spec->positional[o->n_positional], usage);
    return 0;
}

const char *options_get(const Options *o, const char *name) {
    int k = option_find(o->spec, name, strlen(name));
    ASSERT(k >= 0 && "not an option of this command");
    return o->value[k];
}

int options_apply(const Options *o, Config *cfg) {
    for (int i = 0; i < o->n_overrides; i++)
        if (config_set(cfg, o->overrides[i]) != 0) return -1;
    return 0;
}

void options_free(Options *o) {
    for (int i = 0; i < o->n_overrides; i++) free(o->overrides[i]);
    free(o->overrides);
    memset(o, 0, sizeof *o);
}
