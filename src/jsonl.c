// JSONL readers and writers (see jsonl.h): one JSON object per line, read
// with getline (no line-length limit), checked for UTF-8 by hand before
// cJSON sees it, then mapped onto the example structs. Also the JSON writer
// and the two-level reader. The only cJSON user: no other file escapes or
// parses JSON.
#include "jsonl.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>
#include <threads.h>

#include <cJSON.h>

#include "common.h"

// cJSON allocates through mallocCheck, so running out of memory ends the
// process there (common.h's policy) and a NULL from cJSON means bad input.
static void *json_alloc(size_t n) { return mallocCheck(n); }

static void json_hooks_install(void) {
    cJSON_Hooks hooks = {json_alloc, free};
    cJSON_InitHooks(&hooks);
}

static once_flag json_hooks_once = ONCE_FLAG_INIT;

// Called by every function here before it touches cJSON.
static void json_init(void) { call_once(&json_hooks_once, json_hooks_install); }

// Where an error is: every message starts "FILE:LINE: ".
// `inner` names a nested object ("messages[2]") or is NULL.
typedef struct {
    const char *path;
    int line;
    const char *inner;
} Where;

// The deepest nesting of [ and { in text[0..n), strings skipped.
static long json_depth(const char *text, size_t n) {
    long depth = 0, most = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > most) most = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return most;
}

static int fail_at(const Where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_at(const Where *w, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->inner) return rlhf_fail("%s:%d: %s: %s", w->path, w->line, w->inner, msg);
    return rlhf_fail("%s:%d: %s", w->path, w->line, msg);
}

// ---------------------------------------------------------------------------
// Raw-byte checks, before parsing

// Offset of the first byte that does not start a valid UTF-8 sequence in
// s[0..n), or -1 if all is valid. Rejects stray continuation bytes,
// overlong forms (C0, C1, E0 80-9F, F0 80-8F), UTF-16 surrogates
// (ED A0-BF), code points above U+10FFFF (F4 90+, F5-FF) and sequences cut
// short by the end of the line.
long utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c == 0xE0) len = 3, lo = 0xA0;
        else if (c == 0xED) len = 3, hi = 0x9F;
        else if (c >= 0xE1 && c <= 0xEF) len = 3;
        else if (c == 0xF0) len = 4, lo = 0x90;
        else if (c == 0xF4) len = 4, hi = 0x8F;
        else if (c >= 0xF1 && c <= 0xF3) len = 4;
        else return (long)i;
        if (i + (size_t)len > n) return (long)i;
        if (s[i + 1] < lo || s[i + 1] > hi) return (long)i;
        for (int k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return (long)i;
        i += (size_t)len;
    }
    return -1;
}

// Offset of a "\u0000" escape in the line, or -1. cJSON would decode it to
// a NUL byte and so silently cut the string short there.
static long escaped_nul_at(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) return (long)i;
        i++;  // skip the escaped character, so "\\u0000" is not an escape
    }
    return -1;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// ---------------------------------------------------------------------------
// Field access with typed errors

static const char *type_name(const cJSON *it) {
    if (cJSON_IsString(it)) return "a string";
    if (cJSON_IsNumber(it)) return "a number";
    if (cJSON_IsBool(it)) return "a boolean";
    if (cJSON_IsNull(it)) return "null";
    if (cJSON_IsArray(it)) return "an array";
    if (cJSON_IsObject(it)) return "an object";
    return "an unknown value";
}

// The keys of obj as "a, b, c" (shortened with "..." if long), for messages.
static void key_list(const cJSON *obj, char *buf, size_t cap) {
    size_t used = 0;
    buf[0] = '\0';
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *k = c->string ? c->string : "?";
        size_t need = strlen(k) + (used ? 2 : 0);
        if (used + need + 4 >= cap) {
            snprintf(buf + used, cap - used, "%s...", used ? ", " : "");
            return;
        }
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", k);
    }
    if (!used) snprintf(buf, cap, "none");
}

// The member `key` of obj, NULL if absent; a key given twice is an error
// (-1 in *err), since which value wins would be a guess.
static const cJSON *member(const cJSON *obj, const char *key, const Where *w, int *err) {
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string || strcmp(c->string, key) != 0) continue;
        if (found) {
            *err = fail_at(w, "field \"%s\" appears twice; hint: keep one of them", key);
            return NULL;
        }
        found = c;
    }
    return found;
}

// A required string field: 0 with *out pointing into obj, or -1.
static int need_string(const cJSON *obj, const char *key, const char *what, const Where *w,
                       const char **out) {
    int err = 0;
    const cJSON *it = member(obj, key, w, &err);
    if (err) return -1;
    if (!it) {
        char keys[200];
        key_list(obj, keys, sizeof keys);
        return fail_at(w, "missing field \"%s\" (the object has: %s); hint: %s", key, keys, what);
    }
    if (!cJSON_IsString(it))
        return fail_at(w, "field \"%s\" is %s, expected a string; hint: write it in quotes, "
                          "e.g. \"%s\": \"...\"",
                       key, type_name(it), key);
    *out = it->valuestring;
    return 0;
}

// An optional string field: absent or null gives "".
static int opt_string(const cJSON *obj, const char *key, const Where *w, const char **out) {
    int err = 0;
    const cJSON *it = member(obj, key, w, &err);
    if (err) return -1;
    *out = "";
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsString(it))
        return fail_at(w, "field \"%s\" is %s, expected a string; hint: write it in quotes, "
                          "e.g. \"%s\": \"%s\"",
                       key, type_name(it), key, cJSON_IsNumber(it) ? "42" : "...");
    *out = it->valuestring;
    return 0;
}

// An optional boolean field: absent or null gives 0.
static int opt_bool(const cJSON *obj, const char *key, const Where *w, int *out) {
    int err = 0;
    const cJSON *it = member(obj, key, w, &err);
    if (err) return -1;
    *out = 0;
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsBool(it))
        return fail_at(w, "field \"%s\" is %s, expected true or false; hint: write "
                          "\"%s\": true (no quotes)",
                       key, type_name(it), key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

// An optional non-negative integer that fits a long and an int-sized
// count: absent or null gives -1.
static int opt_index(const cJSON *obj, const char *key, const Where *w, double max, double *out) {
    int err = 0;
    const cJSON *it = member(obj, key, w, &err);
    if (err) return -1;
    *out = -1;
    if (!it || cJSON_IsNull(it)) return 0;
    const double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
    if (!cJSON_IsNumber(it) || v < 0 || v > max || v != floor(v))
        return fail_at(w, "field \"%s\" must be an integer in [0, %.0f]; hint: write e.g. "
                          "\"%s\": 3",
                       key, max, key);
    *out = v;
    return 0;
}

static int has_key(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL;
}

// ---------------------------------------------------------------------------
// The line loop shared by the three readers

typedef int (*LineFn)(void *ctx, const cJSON *obj, const Where *w);

// Calls fn on the object of every non-blank line of path; stops at the first
// error. A file without any object is an error with hint_empty.
static int read_lines(const char *path, LineFn fn, void *ctx, const char *hint_empty) {
    json_init();
    FILE *f = fopen(path, "rb");
    if (!f)
        return rlhf_fail("%s: cannot open: %s; hint: check the path%s", path, strerror(errno),
                         strstr(path, "data/gen/") ? " (run 'make data' to generate it)" : "");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    Where w = {path, 0, NULL};
    long n_objects = 0;
    int rc = 0;
    errno = 0;
    while (rc == 0 && (got = getline(&buf, &cap, f)) != -1) {
        w.line++;
        size_t n = (size_t)got;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
        buf[n] = '\0';
        if (w.line == 1 && n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
            memmove(buf, buf + 3, n - 2);  // a UTF-8 byte order mark, as some editors write
            n -= 3;
        }
        size_t first = 0;
        while (first < n && is_json_space(buf[first])) first++;
        if (first == n) continue;  // blank line

        const char *nul = memchr(buf, '\0', n);
        if (nul) {
            rc = fail_at(&w, "NUL byte at column %ld; hint: the file looks binary, not JSONL",
                         (long)(nul - buf) + 1);
            break;
        }
        long bad = utf8_invalid_at((const unsigned char *)buf, n);
        if (bad >= 0) {
            rc = fail_at(&w, "invalid UTF-8 at column %ld (byte 0x%02X); hint: re-encode the "
                             "file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
                         bad + 1, (unsigned char)buf[bad]);
            break;
        }
        long esc = escaped_nul_at(buf, n);
        if (esc >= 0) {
            rc = fail_at(&w, "\\u0000 escape at column %ld would cut the text short; hint: "
                             "remove NUL characters from the data",
                         esc + 1);
            break;
        }

        const char *end = NULL;
        cJSON *root = cJSON_ParseWithLengthOpts(buf, n + 1, &end, 1);
        if (!root) {
            long col = end ? (long)(end - buf) : (long)n;
            if (col < 0 || (size_t)col > n) col = (long)n;
            // a short printable excerpt around the error
            char near[40];
            long from = col > 12 ? col - 12 : 0;
            int k = 0;
            for (long i = from; i < (long)n && k < (int)sizeof near - 1; i++, k++)
                near[k] = isprint((unsigned char)buf[i]) ? buf[i] : '?';
            near[k] = '\0';
            if (json_depth(buf, n) > CJSON_NESTING_LIMIT)
                rc = fail_at(&w, "JSON nested deeper than %d levels (cJSON's limit); hint: each "
                                 "line is one flat object, e.g. {\"prompt\": \"...\"}",
                             CJSON_NESTING_LIMIT);
            else
                rc = fail_at(&w, "bad JSON near column %ld (at '%s'); hint: each line must be "
                                 "one complete JSON object, e.g. {\"prompt\": \"...\"}",
                             col + 1, near);
            break;
        }
        if (!cJSON_IsObject(root)) {
            rc = fail_at(&w, "the line is %s, expected a JSON object; hint: write one {...} "
                             "object per line",
                         type_name(root));
        } else {
            rc = fn(ctx, root, &w);
            if (rc == 0) n_objects++;
        }
        cJSON_Delete(root);
    }
    if (rc == 0 && ferror(f))
        rc = rlhf_fail("%s:%d: read error: %s; hint: is it a regular, readable file?", path,
                       w.line + 1, strerror(errno ? errno : EIO));
    if (rc == 0 && n_objects == 0)
        rc = rlhf_fail("%s:%d: no examples (%s); hint: %s", path, w.line ? w.line : 1,
                       w.line ? "only blank lines" : "the file is empty", hint_empty);
    free(buf);
    fclose(f);
    return rc;
}

// Grows an array of elem-sized items to hold at least n + 1.
static void *grow(void *arr, long n, long *cap, size_t elem) {
    if (n < *cap) return arr;
    *cap = *cap ? *cap * 2 : 64;
    return reallocCheck(arr, (size_t)*cap * elem);
}

// ---------------------------------------------------------------------------
// SFT

static const char *const SFT_SHAPES =
    "use {\"prompt\",\"response\"}, {\"instruction\",\"input\",\"output\"} or "
    "{\"messages\":[{\"role\",\"content\"},...]}";

typedef struct {
    SftSet *set;
    long cap;
} SftCtx;

static void turn_set(Turn *t, int role, const char *text) {
    t->role = role;
    t->text = strdup_check(text);
    t->family = strdup_check("");
}

static void turns_free(Turn *turns, int n) {
    for (int i = 0; i < n; i++) {
        free(turns[i].text);
        free(turns[i].family);
    }
    free(turns);
}

static void sft_example_free(SftExample *ex) {
    turns_free(ex->turns, ex->n_turns);
    free(ex->family);
    free(ex->answer);
    memset(ex, 0, sizeof *ex);
}

// A "messages" array -> turns alternating user, assistant, starting with
// user and ending with role `last` (a system message is folded into the
// first user turn; a message's optional "family" is kept). `field` names
// the array in messages. On failure *turns is freed.
static int parse_messages(const cJSON *msgs, const char *field, int last, const Where *w,
                          Turn **turns, int *n_turns) {
    *turns = NULL;
    *n_turns = 0;
    if (!cJSON_IsArray(msgs))
        return fail_at(w, "field \"%s\" is %s, expected an array; hint: "
                          "\"%s\": [{\"role\": \"user\", \"content\": \"...\"}, ...]",
                       field, type_name(msgs), field);
    int n = cJSON_GetArraySize(msgs);
    if (n == 0)
        return fail_at(w, "\"%s\" is empty; hint: give at least a user%s message", field,
                       last == TURN_ASSISTANT ? " and an assistant" : "");
    Turn *t = callocCheck((size_t)n, sizeof(Turn));
    int nt = 0, rc = 0;
    const char *system = NULL;
    int i = 0;
    for (const cJSON *m = msgs->child; m && rc == 0; m = m->next, i++) {
        if (!cJSON_IsObject(m)) {
            rc = fail_at(w, "%s[%d] is %s, expected an object; hint: "
                            "{\"role\": \"user\", \"content\": \"...\"}",
                         field, i, type_name(m));
            break;
        }
        char inner[48];
        snprintf(inner, sizeof inner, "%s[%d]", field, i);
        Where wm = {w->path, w->line, inner};
        const char *what = "each message needs \"role\" and \"content\"";
        const char *role, *content, *family;
        if (need_string(m, "role", what, &wm, &role) ||
            need_string(m, "content", what, &wm, &content) ||
            opt_string(m, "family", &wm, &family)) {
            rc = -1;
            break;
        }
        int want = nt % 2 == 0 ? TURN_USER : TURN_ASSISTANT;
        if (strcmp(role, "system") == 0) {
            if (i != 0) {
                rc = fail_at(w, "%s[%d] has role \"system\" after the first message; "
                                "hint: only %s[0] may be a system message",
                             field, i, field);
                break;
            }
            system = content;
            continue;
        }
        int role_id;
        if (strcmp(role, "user") == 0) role_id = TURN_USER;
        else if (strcmp(role, "assistant") == 0) role_id = TURN_ASSISTANT;
        else {
            rc = fail_at(w, "%s[%d] has unknown role \"%.40s\"; hint: roles are "
                            "\"system\", \"user\" and \"assistant\"",
                         field, i, role);
            break;
        }
        if (role_id != want) {
            rc = fail_at(w, "%s[%d] has role \"%s\" but a%s turn is expected; hint: "
                            "after an optional system message, roles must alternate user, "
                            "assistant, user, ... starting with user",
                         field, i, role, want == TURN_USER ? " user" : "n assistant");
            break;
        }
        if (role_id == TURN_USER && nt == 0 && system && system[0]) {
            size_t ls = strlen(system), lc = strlen(content);
            char *text = mallocCheck(ls + 2 + lc + 1);
            memcpy(text, system, ls);
            memcpy(text + ls, "\n\n", 2);
            memcpy(text + ls + 2, content, lc + 1);
            t[nt].role = role_id;
            t[nt].text = text;
            t[nt].family = strdup_check(family);
        } else {
            turn_set(&t[nt], role_id, content);
            free(t[nt].family);
            t[nt].family = strdup_check(family);
        }
        nt++;
    }
    if (rc == 0 && nt == 0)
        rc = fail_at(w, "\"%s\" has no user message; hint: add a user%s message", field,
                     last == TURN_ASSISTANT ? " and an assistant" : "");
    if (rc == 0 && t[nt - 1].role != last)
        rc = last == TURN_ASSISTANT
                 ? fail_at(w, "the last message has role \"user\"; hint: an SFT conversation "
                              "must end with the assistant's response")
                 : fail_at(w, "the last message of \"%s\" has role \"assistant\"; hint: a "
                              "prompt's messages end with the user message to answer", field);
    if (rc != 0) {
        turns_free(t, nt);
        return -1;
    }
    *turns = t;
    *n_turns = nt;
    return 0;
}

static int sft_line(void *vctx, const cJSON *obj, const Where *w) {
    SftCtx *ctx = vctx;
    int pr = has_key(obj, "prompt") || has_key(obj, "response");
    int al = has_key(obj, "instruction") || has_key(obj, "output") || has_key(obj, "input");
    int ch = has_key(obj, "messages");
    if (pr + al + ch == 0) {
        char keys[200];
        key_list(obj, keys, sizeof keys);
        return fail_at(w, "unknown structure (keys: %s); hint: %s", keys, SFT_SHAPES);
    }
    if (pr + al + ch > 1) {
        char shapes[80] = "";
        if (pr) strcat(shapes, "prompt/response");
        if (al) strcat(strcat(shapes, pr ? " and " : ""), "instruction/output");
        if (ch) strcat(shapes, " and messages");
        return fail_at(w, "the line mixes formats (%s); hint: %s", shapes, SFT_SHAPES);
    }

    SftExample ex = {0};
    ex.line = w->line;
    int rc = 0;
    if (pr) {
        const char *p, *r;
        const char *what = "a prompt/response line needs both \"prompt\" and \"response\"";
        rc = need_string(obj, "prompt", what, w, &p);
        if (!rc) rc = need_string(obj, "response", what, w, &r);
        if (!rc) {
            ex.turns = callocCheck(2, sizeof(Turn));
            turn_set(&ex.turns[0], TURN_USER, p);
            turn_set(&ex.turns[1], TURN_ASSISTANT, r);
            ex.n_turns = 2;
        }
    } else if (al) {
        const char *ins, *input, *out;
        const char *what = "an Alpaca line needs \"instruction\" and \"output\"";
        rc = need_string(obj, "instruction", what, w, &ins);
        if (!rc) rc = opt_string(obj, "input", w, &input);
        if (!rc) rc = need_string(obj, "output", what, w, &out);
        if (!rc) {
            ex.turns = callocCheck(2, sizeof(Turn));
            if (input[0]) {
                size_t li = strlen(ins), ln = strlen(input);
                char *text = mallocCheck(li + 2 + ln + 1);
                memcpy(text, ins, li);
                memcpy(text + li, "\n\n", 2);
                memcpy(text + li + 2, input, ln + 1);
                ex.turns[0].role = TURN_USER;
                ex.turns[0].text = text;
                ex.turns[0].family = strdup_check("");
            } else {
                turn_set(&ex.turns[0], TURN_USER, ins);
            }
            turn_set(&ex.turns[1], TURN_ASSISTANT, out);
            ex.n_turns = 2;
        }
    } else {
        rc = parse_messages(cJSON_GetObjectItemCaseSensitive(obj, "messages"), "messages",
                            TURN_ASSISTANT, w, &ex.turns, &ex.n_turns);
    }
    const char *family = "", *answer = "";
    if (!rc) rc = opt_string(obj, "family", w, &family);
    if (!rc) rc = opt_string(obj, "answer", w, &answer);
    if (rc) {
        sft_example_free(&ex);
        return -1;
    }
    ex.family = strdup_check(family);
    ex.answer = strdup_check(answer);
    ctx->set->ex = grow(ctx->set->ex, ctx->set->n, &ctx->cap, sizeof(SftExample));
    ctx->set->ex[ctx->set->n++] = ex;
    return 0;
}

int jsonl_read_sft(const char *path, SftSet *set) {
    memset(set, 0, sizeof *set);
    SftCtx ctx = {set, 0};
    if (read_lines(path, sft_line, &ctx, "an SFT file needs at least one example line")) {
        jsonl_free_sft(set);
        return -1;
    }
    set->path = strdup_check(path);
    return 0;
}

void jsonl_free_sft(SftSet *set) {
    for (long i = 0; i < set->n; i++) sft_example_free(&set->ex[i]);
    free(set->ex);
    free(set->path);
    memset(set, 0, sizeof *set);
}

// A prompt given as messages (ending with a user message): the turns before
// it become *history (NULL when none), the last one's text *prompt; its
// "family" goes to *family unless one was given.
static int conversation_prompt(const cJSON *msgs, const char *field, const Where *w,
                               Turn **history, int *n_history, char **prompt,
                               char **last_family) {
    Turn *t;
    int n;
    if (parse_messages(msgs, field, TURN_USER, w, &t, &n)) return -1;
    *prompt = t[n - 1].text;
    *last_family = t[n - 1].family;
    if (n == 1) {
        free(t);
        t = NULL;
    }
    *history = t;
    *n_history = n - 1;
    return 0;
}

// ---------------------------------------------------------------------------
// Preferences

typedef struct {
    PrefSet *set;
    long cap;
} PrefCtx;

// A response side of a pair: a string, or one assistant message in an
// array (TRL's conversational form). *out points into obj.
static int pref_side(const cJSON *obj, const char *key, const char *what, const Where *w,
                     const char **out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || !cJSON_IsArray(it)) return need_string(obj, key, what, w, out);
    const cJSON *m = it->child;
    const cJSON *role = m && cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "role") : NULL;
    const cJSON *content =
        m && cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "content") : NULL;
    if (cJSON_GetArraySize(it) != 1 || !cJSON_IsString(role) || !cJSON_IsString(content) ||
        strcmp(role->valuestring, "assistant") != 0)
        return fail_at(w, "field \"%s\" is an array but not one assistant message; hint: "
                          "\"%s\": \"...\" or \"%s\": [{\"role\": \"assistant\", "
                          "\"content\": \"...\"}]",
                       key, key, key);
    *out = content->valuestring;
    return 0;
}

static int pref_line(void *vctx, const cJSON *obj, const Where *w) {
    PrefCtx *ctx = vctx;
    const char *what = "a preference line is {\"prompt\", \"chosen\", \"rejected\"} with the "
                       "shared prompt split out of the two responses";
    const char *p = NULL, *c, *r, *family, *kind;
    int no_eot;
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    int conv = pm && cJSON_IsArray(pm);
    if ((!conv && need_string(obj, "prompt", what, w, &p)) ||
        pref_side(obj, "chosen", what, w, &c) || pref_side(obj, "rejected", what, w, &r) ||
        opt_string(obj, "family", w, &family) || opt_string(obj, "rejected_kind", w, &kind) ||
        opt_bool(obj, "rejected_no_eot", w, &no_eot))
        return -1;
    // grouped comparisons: "group" and "ranks" come together
    double group;
    int ranks[2] = {-1, -1};
    if (opt_index(obj, "group", w, 9007199254740991.0, &group)) return -1;
    int err = 0;
    const cJSON *rk = member(obj, "ranks", w, &err);
    if (err) return -1;
    if ((group >= 0) != (rk != NULL))
        return fail_at(w, "\"group\" and \"ranks\" go together (grouped comparisons, as "
                          "'rlhf rank' writes them); hint: give both or neither");
    if (rk) {
        if (!cJSON_IsArray(rk) || cJSON_GetArraySize(rk) != 2)
            return fail_at(w, "field \"ranks\" must be [chosen's rank, rejected's rank]; hint: "
                              "write e.g. \"ranks\": [0, 2]");
        for (int i = 0; i < 2; i++) {
            const cJSON *v = cJSON_GetArrayItem(rk, i);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 ||
                v->valuedouble != floor(v->valuedouble))
                return fail_at(w, "field \"ranks\" must hold two integers in [0, 1000000]; "
                                  "hint: write e.g. \"ranks\": [0, 2]");
            ranks[i] = (int)v->valuedouble;
        }
        if (ranks[0] == ranks[1])
            return fail_at(w, "\"ranks\" [%d, %d]: equal ranks make no comparison; hint: "
                              "leave the pair out",
                           ranks[0], ranks[1]);
    }
    if (ctx->set->n > 0 && (ctx->set->ex[0].group >= 0) != (group >= 0))
        return fail_at(w, "this line %s \"group\" but line %d %s; hint: a file holds either "
                          "grouped comparisons ('rlhf rank') or plain pairs, not both",
                       group >= 0 ? "has" : "has no", ctx->set->ex[0].line,
                       group >= 0 ? "has none" : "has one");
    // (the same text with rejected_no_eot differs by the end-of-text token)
    if (!strcmp(c, r) && !no_eot)
        return fail_at(w, "\"chosen\" and \"rejected\" are the same text, which teaches "
                          "nothing; hint: drop the line or fix the pair");
    PrefExample ex = {
        .chosen = strdup_check(c),
        .rejected = strdup_check(r),
        .rejected_kind = strdup_check(kind),
        .rejected_no_eot = no_eot,
        .group = (long)group,
        .ranks = {ranks[0], ranks[1]},
        .line = w->line,
    };
    if (conv) {
        char *last_family;
        if (conversation_prompt(pm, "prompt", w, &ex.history, &ex.n_history, &ex.prompt,
                                &last_family)) {
            free(ex.chosen);
            free(ex.rejected);
            free(ex.rejected_kind);
            return -1;
        }
        ex.family = strdup_check(family[0] ? family : last_family);
        free(last_family);
    } else {
        ex.prompt = strdup_check(p);
        ex.family = strdup_check(family);
    }
    ctx->set->ex = grow(ctx->set->ex, ctx->set->n, &ctx->cap, sizeof(PrefExample));
    ctx->set->ex[ctx->set->n++] = ex;
    return 0;
}

int jsonl_read_prefs(const char *path, PrefSet *set) {
    memset(set, 0, sizeof *set);
    PrefCtx ctx = {set, 0};
    if (read_lines(path, pref_line, &ctx, "a preference file needs at least one pair")) {
        jsonl_free_prefs(set);
        return -1;
    }
    set->path = strdup_check(path);
    return 0;
}

void jsonl_free_prefs(PrefSet *set) {
    for (long i = 0; i < set->n; i++) {
        PrefExample *ex = &set->ex[i];
        free(ex->prompt);
        free(ex->chosen);
        free(ex->rejected);
        free(ex->family);
        free(ex->rejected_kind);
        turns_free(ex->history, ex->n_history);
    }
    free(set->ex);
    free(set->path);
    memset(set, 0, sizeof *set);
}

// ---------------------------------------------------------------------------
// PPO prompts

typedef struct {
    PromptSet *set;
    long cap;
} PromptCtx;

static int prompt_line(void *vctx, const cJSON *obj, const Where *w) {
    PromptCtx *ctx = vctx;
    const char *what = "a prompt line is {\"prompt\": \"...\"} (optional \"answer\", "
                       "\"family\"), or {\"messages\": [...]} ending with a user message";
    const char *p = NULL, *answer, *family;
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (pm && msgs)
        return fail_at(w, "the line has both \"prompt\" and \"messages\"; hint: %s", what);
    const cJSON *conv = msgs ? msgs : (pm && cJSON_IsArray(pm) ? pm : NULL);
    if ((!conv && need_string(obj, "prompt", what, w, &p)) ||
        opt_string(obj, "answer", w, &answer) || opt_string(obj, "family", w, &family))
        return -1;
    PromptExample ex = {.answer = strdup_check(answer), .line = w->line};
    if (conv) {
        char *last_family;
        if (conversation_prompt(conv, msgs ? "messages" : "prompt", w, &ex.history,
                                &ex.n_history, &ex.prompt, &last_family)) {
            free(ex.answer);
            return -1;
        }
        ex.family = strdup_check(family[0] ? family : last_family);
        free(last_family);
    } else {
        ex.prompt = strdup_check(p);
        ex.family = strdup_check(family);
    }
    ctx->set->ex = grow(ctx->set->ex, ctx->set->n, &ctx->cap, sizeof(PromptExample));
    ctx->set->ex[ctx->set->n++] = ex;
    return 0;
}

int jsonl_read_prompts(const char *path, PromptSet *set) {
    memset(set, 0, sizeof *set);
    PromptCtx ctx = {set, 0};
    if (read_lines(path, prompt_line, &ctx, "a prompt file needs at least one prompt")) {
        jsonl_free_prompts(set);
        return -1;
    }
    set->path = strdup_check(path);
    return 0;
}

void jsonl_free_prompts(PromptSet *set) {
    for (long i = 0; i < set->n; i++) {
        free(set->ex[i].prompt);
        free(set->ex[i].answer);
        free(set->ex[i].family);
        turns_free(set->ex[i].history, set->ex[i].n_history);
    }
    free(set->ex);
    free(set->path);
    memset(set, 0, sizeof *set);
}

// ---------------------------------------------------------------------------
// Writing

int jsonl_writer_open(JsonlWriter *w, const char *path) {
    w->n = 0;
    return atomic_open(&w->file, path);
}

void jsonl_writer_abort(JsonlWriter *w) {
    atomic_abort(&w->file);
    w->n = 0;
}

int jsonl_writer_commit(JsonlWriter *w) {
    int rc = atomic_commit(&w->file);
    w->n = 0;
    return rc;
}

// cJSON's builders and printer fail only when an allocation does, and
// json_alloc never returns NULL: a NULL here is a broken invariant.
static void add_string(cJSON *obj, const char *key, const char *value) {
    const cJSON *item = cJSON_AddStringToObject(obj, key, value);
    ASSERT(item);
}

// Prints obj as one line and deletes it.
static int write_object(JsonlWriter *w, cJSON *obj) {
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    ASSERT(text);
    int ok = fputs(text, w->file.f) >= 0 && fputc('\n', w->file.f) != EOF;
    free(text);
    if (!ok)
        return rlhf_fail("%s: write failed: %s; hint: check free disk space", w->file.tmp,
                         strerror(errno));
    w->n++;
    return 0;
}

static cJSON *new_object(void) {
    json_init();
    cJSON *obj = cJSON_CreateObject();
    ASSERT(obj);
    return obj;
}

int jsonl_write_sft(JsonlWriter *w, const SftExample *ex) {
    ASSERT(ex->n_turns >= 2 && ex->n_turns % 2 == 0);
    cJSON *obj = new_object();
    if (ex->n_turns == 2) {
        add_string(obj, "prompt", ex->turns[0].text);
        add_string(obj, "response", ex->turns[1].text);
    } else {
        cJSON *msgs = cJSON_AddArrayToObject(obj, "messages");
        ASSERT(msgs);
        for (int i = 0; i < ex->n_turns; i++) {
            cJSON *m = new_object();
            add_string(m, "role", ex->turns[i].role == TURN_USER ? "user" : "assistant");
            add_string(m, "content", ex->turns[i].text);
            if (ex->turns[i].family && ex->turns[i].family[0])
                add_string(m, "family", ex->turns[i].family);
            cJSON_AddItemToArray(msgs, m);
        }
    }
    if (ex->family && ex->family[0]) add_string(obj, "family", ex->family);
    if (ex->answer && ex->answer[0]) add_string(obj, "answer", ex->answer);
    return write_object(w, obj);
}

// "prompt": the text, or with a history the messages ending with it.
static void add_prompt(cJSON *obj, const Turn *history, int n_history, const char *prompt) {
    if (n_history == 0) {
        add_string(obj, "prompt", prompt);
        return;
    }
    cJSON *msgs = cJSON_AddArrayToObject(obj, "prompt");
    ASSERT(msgs);
    for (int i = 0; i <= n_history; i++) {
        cJSON *m = new_object();
        const int user = i == n_history || history[i].role == TURN_USER;
        add_string(m, "role", user ? "user" : "assistant");
        add_string(m, "content", i == n_history ? prompt : history[i].text);
        if (i < n_history && history[i].family && history[i].family[0])
            add_string(m, "family", history[i].family);
        cJSON_AddItemToArray(msgs, m);
    }
}

int jsonl_write_pref(JsonlWriter *w, const PrefExample *ex) {
    cJSON *obj = new_object();
    add_prompt(obj, ex->history, ex->n_history, ex->prompt);
    add_string(obj, "chosen", ex->chosen);
    add_string(obj, "rejected", ex->rejected);
    if (ex->family && ex->family[0]) add_string(obj, "family", ex->family);
    const cJSON *no_eot = cJSON_AddBoolToObject(obj, "rejected_no_eot", ex->rejected_no_eot != 0);
    ASSERT(no_eot);
    if (ex->rejected_kind && ex->rejected_kind[0])
        add_string(obj, "rejected_kind", ex->rejected_kind);
    if (ex->group >= 0) {
        ASSERT(cJSON_AddNumberToObject(obj, "group", (double)ex->group));
        cJSON *rk = cJSON_CreateIntArray(ex->ranks, 2);
        ASSERT(rk && cJSON_AddItemToObject(obj, "ranks", rk));
    }
    return write_object(w, obj);
}

int jsonl_write_prompt(JsonlWriter *w, const PromptExample *ex) {
    cJSON *obj = new_object();
    add_prompt(obj, ex->history, ex->n_history, ex->prompt);
    if (ex->answer && ex->answer[0]) add_string(obj, "answer", ex->answer);
    if (ex->family && ex->family[0]) add_string(obj, "family", ex->family);
    return write_object(w, obj);
}

// ---------------------------------------------------------------------------
// Writing one JSON document: a JsonOut is a cJSON item under another name,
// so that no other file sees cJSON.

static cJSON *out_item(const JsonOut *o) { return (cJSON *)(void *)o; }
static JsonOut *out_handle(cJSON *item) { return (JsonOut *)(void *)item; }

// Adds item to parent: under key in an object, appended (key NULL) to an array.
static void out_attach(JsonOut *parent, const char *key, cJSON *item) {
    ASSERT(item);
    cJSON *p = out_item(parent);
    cJSON_bool ok;
    if (cJSON_IsArray(p)) {
        ASSERT(!key);
        ok = cJSON_AddItemToArray(p, item);
    } else {
        ASSERT(cJSON_IsObject(p) && key);
        ok = cJSON_AddItemToObject(p, key, item);
    }
    ASSERT(ok);
}

JsonOut *json_out_object(void) {
    json_init();
    cJSON *obj = cJSON_CreateObject();
    ASSERT(obj);
    return out_handle(obj);
}

JsonOut *json_out_add_object(JsonOut *parent, const char *key) {
    cJSON *obj = cJSON_CreateObject();
    out_attach(parent, key, obj);
    return out_handle(obj);
}

JsonOut *json_out_add_array(JsonOut *parent, const char *key) {
    cJSON *arr = cJSON_CreateArray();
    out_attach(parent, key, arr);
    return out_handle(arr);
}

void json_out_add_string(JsonOut *parent, const char *key, const char *s) {
    out_attach(parent, key, cJSON_CreateString(s));
}

void json_out_add_bool(JsonOut *parent, const char *key, int b) {
    out_attach(parent, key, cJSON_CreateBool(b != 0));
}

void json_out_add_null(JsonOut *parent, const char *key) {
    out_attach(parent, key, cJSON_CreateNull());
}

void json_out_add_number_text(JsonOut *parent, const char *key, const char *text) {
    // cJSON keeps numbers as doubles; raw text keeps every digit (an int64,
    // a chosen precision) exactly as formatted
    char *end;
    double v = strtod(text, &end);
    ASSERT((text[0] == '-' || isdigit((unsigned char)text[0])) && end != text && !*end &&
           isfinite(v));
    out_attach(parent, key, cJSON_CreateRaw(text));
}

void json_out_add_int(JsonOut *parent, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    json_out_add_number_text(parent, key, buf);
}

void json_out_add_number(JsonOut *parent, const char *key, double v, int digits) {
    if (!isfinite(v)) {
        json_out_add_null(parent, key);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.*g", digits, v);
    json_out_add_number_text(parent, key, buf);
}

char *json_out_print(const JsonOut *root) {
    char *text = cJSON_PrintUnformatted(out_item(root));
    ASSERT(text);
    return text;
}

void json_out_free(JsonOut *root) { cJSON_Delete(out_item(root)); }

// --- a two-level JSON object --------------------------------------------

int json_entries_parse(const char *json, JsonEntries *out) {
    json_init();
    out->e = NULL;
    out->n = 0;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rlhf_fail("not a JSON object of sections; hint: the text was not written by "
                         "rlhf.c");
    }
    int n = 0;
    const cJSON *sec, *kv;
    cJSON_ArrayForEach(sec, root) {
        if (!cJSON_IsObject(sec)) {
            cJSON_Delete(root);
            return rlhf_fail("JSON member \"%s\" is not an object of keys; hint: the text was "
                             "not written by rlhf.c", sec->string ? sec->string : "?");
        }
        n += cJSON_GetArraySize(sec);
    }
    out->e = callocCheck((size_t)(n ? n : 1), sizeof *out->e);
    cJSON_ArrayForEach(sec, root) {
        cJSON_ArrayForEach(kv, sec) {
            JsonEntry *e = &out->e[out->n++];
            e->section = strdup_check(sec->string);
            e->key = strdup_check(kv->string);
            if (cJSON_IsString(kv)) {
                e->value = strdup_check(kv->valuestring);
            } else {
                char *text = cJSON_PrintUnformatted(kv);
                ASSERT(text);
                e->value = strdup_check(text);
                cJSON_free(text);
            }
        }
    }
    cJSON_Delete(root);
    return 0;
}

const JsonEntry *json_entries_find(const JsonEntries *es, const char *section, const char *key) {
    for (int i = 0; i < es->n; i++)
        if (!strcmp(es->e[i].section, section) && !strcmp(es->e[i].key, key)) return &es->e[i];
    return NULL;
}

void json_entries_free(JsonEntries *es) {
    for (int i = 0; i < es->n; i++) {
        free(es->e[i].section);
        free(es->e[i].key);
        free(es->e[i].value);
    }
    free(es->e);
    es->e = NULL;
    es->n = 0;
}
