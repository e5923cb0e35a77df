// The command line of every rlhf command, read one way. It knows argument
// syntax, not what a value means: the caller checks its own values and
// applies config overrides (options_apply) when its config is loaded.
//
// An argument that starts with '-' (other than "-" alone) is an option:
//   --name                a flag the command declares (--resume, --help)
//   -c                    the one-letter alias of a declared flag or option
//   --name VALUE          an option the command declares (--text FILE), also
//   --name=VALUE            written this way
//   --section.key=value   a config override, for commands that take them
//   --key VALUE           for a command bound to a config section (sample,
//   --key=VALUE             chat): the override section.key=VALUE
// Every other argument is positional (CKPT, CONFIG). A value is taken as
// it is, even when it starts with '-' (--temperature -1 is caught later).
// A key set twice takes the later value, the command-line convention that
// scripts building argument lists rely on (an INI file, edited by hand,
// refuses a key twice instead: there it is a mistake).
//
// --help or -h (as an option, anywhere) prints the usage line on stdout and
// ends the process with status 0 (unless the command declares a help option
// of its own): the one place every command answers them.
//
// Errors are one line, -1 via rlhf_fail, with the command's usage as hint:
// "unknown option '--x'; hint: usage: ...", "unexpected argument 'x'; ...",
// "option '--text' needs a value; ...", "no CONFIG given; ...".
#ifndef RLHF_OPTIONS_H
#define RLHF_OPTIONS_H

#include "config.h"

enum { OPTIONS_MAX_POSITIONAL = 4, OPTIONS_MAX = 8 };

typedef struct {
    const char *name;  // without the dashes; NULL ends the list
    int takes_value;   // 1: --name VALUE | --name=VALUE; 0: a flag
    char alias;        // -alias means the same (0: none)
} OptionDef;

typedef struct {
    const char *usage;  // the command's usage line: the hint of every error
    // what the positional arguments are, in order (NULL after the last), for
    // "no NAME given"; the first `required` of them must be given
    const char *positional[OPTIONS_MAX_POSITIONAL];
    int required;
    OptionDef options[OPTIONS_MAX];  // the command's own options
    int overrides;        // takes --section.key=value
    const char *section;  // not NULL: --key VALUE sets section.key (implies overrides)
} OptionSpec;

// What a command line said. Strings point into argv unless noted.
typedef struct {
    const OptionSpec *spec;
    const char *positional[OPTIONS_MAX_POSITIONAL];
    int n_positional;
    const char *value[OPTIONS_MAX];  // of spec->options[i]: NULL when absent, "" for a
                                     // flag given; the last one given wins
    char **overrides;                // "section.key=value" texts in command-line order (owned)
    int n_overrides;
} Options;

// Reads argv[1..argc) (argv[0] is the command) against spec. Returns 0, or
// -1 with a reason; o needs options_free either way.
int options_parse(Options *o, const OptionSpec *spec, int argc, char **argv);

// The value of the declared option `name` (see Options.value), or NULL.
const char *options_get(const Options *o, const char *name);

// Applies the overrides to cfg in command-line order (config_set). Returns
// -1 with config_set's reason at the first bad one.
int options_apply(const Options *o, Config *cfg);

void options_free(Options *o);

// Flushes stdout and says whether everything written to it arrived: 0, or
// 1 after printing one error line (a full disk, a closed stdout). Every
// command's exit status goes through it.
int options_stdout_status(void);

// Whether an override text ("--section.key=value" or "section.key=value")
// sets key[0..n) ("section.key").
int options_override_is(const char *text, const char *key, size_t n);

#endif
