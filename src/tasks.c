// Task families (see tasks.h): generators, graders that re-derive the answer
// from the prompt text alone, wrong-answer makers for preference pairs, and
// the writer of the train/test JSONL files. Words come from a built-in list
// of common English words or are random lowercase strings.
#include "tasks.h"

#include <ctype.h>
#include <string.h>

#include "common.h"
#include "jsonl.h"

static const char *const WORDS[] = {
    "able", "acid", "age", "air", "all", "also", "and", "ant", "any", "apple", "arm", "art",
    "ask", "aunt", "away", "baby", "back", "bad", "bag", "bake", "ball", "band", "bank",
    "bark", "barn", "base", "bat", "bath", "bay", "beach", "bean", "bear", "beard", "bed",
    "bee", "beef", "bell", "belt", "bench", "berry", "big", "bike", "bird", "bit", "black",
    "blade", "blank", "blow", "blue", "boat", "body", "bone", "book", "boot", "born", "box",
    "boy", "bread", "brick", "bride", "bring", "brown", "brush", "bus", "busy", "cake",
    "calm", "camp", "can", "cap", "car", "card", "care", "cart", "case", "cat", "chair",
    "chalk", "cheap", "check", "chest", "chin", "city", "clay", "clean", "clock", "cloud",
    "coat", "coin", "cold", "cook", "cool", "corn", "cow", "crab", "crow", "cup", "cut",
    "dad", "dance", "dark", "day", "deep", "deer", "desk", "dig", "dinner", "dish", "dog",
    "doll", "door", "dot", "down", "draw", "dream", "dress", "drink", "drum", "duck",
    "dust", "eagle", "ear", "early", "earth", "east", "easy", "eat", "egg", "end", "enjoy",
    "even", "eye", "face", "fact", "fair", "fall", "farm", "fast", "fat", "feet", "fence",
    "field", "fig", "fill", "find", "fine", "fire", "fish", "five", "flag", "flat", "floor",
    "flour", "flower", "fly", "fog", "food", "foot", "fork", "fox", "free", "fresh", "frog",
    "fruit", "full", "fun", "game", "garden", "gate", "gift", "girl", "glad", "glass",
    "goat", "gold", "good", "grape", "grass", "gray", "green", "grow", "gum", "hair",
    "half", "hand", "happy", "hard", "hat", "head", "heart", "heat", "hen", "hill", "hole",
    "home", "honey", "hope", "horse", "hot", "house", "ice", "idea", "ink", "iron", "jam",
    "jar", "job", "joke", "juice", "jump", "key", "kick", "kind", "king", "kite", "knee",
    "knife", "lake", "lamp", "land", "large", "late", "leaf", "left", "leg", "lemon",
    "light", "lime", "line", "lion", "lip", "list", "little", "long", "loud", "love", "low",
    "lucky", "map", "mark", "meal", "meat", "milk", "mind", "mint", "moon", "mother",
    "mouse", "mouth", "mud", "music", "nail", "name", "near", "neck", "nest", "net", "new",
    "nice", "night", "nose", "note", "nut", "oak", "ocean", "odd", "oil", "old", "onion",
    "open", "orange", "owl", "page", "pail", "paint", "pan", "paper", "park", "party",
    "pea", "peach", "pear", "pen", "pencil", "pig", "pin", "pink", "pipe", "plan", "plant",
    "plate", "play", "plum", "pocket", "pond", "pool", "pot", "queen", "quick", "quiet",
    "rabbit", "rain", "red", "rice", "rich", "ring", "river", "road", "rock", "roof",
    "room", "rope", "rose", "round", "rug", "run", "sad", "safe", "salt", "sand", "seed",
    "shape", "sheep", "shell", "ship", "shirt", "shoe", "shop", "short", "sing", "sink",
    "sister", "sky", "sleep", "slow", "small", "smile", "snake", "snow", "soap", "sock",
    "soft", "song", "soup", "south", "spoon", "star", "stone", "storm", "story", "sugar",
    "summer", "sun", "sweet", "table", "tail", "tall", "tea", "teeth", "tent", "thin",
    "tiger", "time", "toast", "toe", "tooth", "town", "toy", "train", "tree", "truck",
    "true", "turtle", "uncle", "under", "vase", "warm", "wash", "water", "wave", "west",
    "wet", "whale", "wheel", "white", "wide", "wind", "window", "wing", "winter", "wolf",
    "wood", "wool", "word", "world", "yard", "year", "yellow", "young", "zebra", "zoo",
};
static const int N_WORDS = (int)(sizeof WORDS / sizeof WORDS[0]);

// ---------------------------------------------------------------------------
// Small string helpers

// Copies s without surrounding whitespace into out (TASKS_TEXT_MAX bytes);
// -1 if it does not fit.
static int trim_copy(const char *s, char *out) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n >= TASKS_TEXT_MAX) return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

// s past the first of the NULL-terminated prefixes it starts with and any
// spaces after it, or NULL.
static const char *after_prefix(const char *s, const char *const *prefixes) {
    for (int i = 0; prefixes[i]; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(s, prefixes[i], n) != 0) continue;
        s += n;
        while (*s == ' ') s++;
        return s;
    }
    return NULL;
}

static int count_strings(const char *const *list) {
    int n = 0;
    while (list[n]) n++;
    return n;
}

// An optionally negative decimal of 1..9 digits at *p; advances *p.
static int parse_int(const char **p, long *v) {
    const char *s = *p;
    int neg = 0;
    if (*s == '-') neg = 1, s++;
    int digits = 0;
    long x = 0;
    while (isdigit((unsigned char)*s) && digits < 10) x = x * 10 + (*s++ - '0'), digits++;
    if (digits == 0 || digits > 9) return -1;
    *v = neg ? -x : x;
    *p = s;
    return 0;
}

static int is_number(const char *s) {
    long v;
    const char *p = s;
    return parse_int(&p, &v) == 0 && *p == '\0';
}

static void reverse_range(char *s, size_t from, size_t to) {  // [from, to)
    while (from + 1 < to) {
        char t = s[from];
        s[from++] = s[--to];
        s[to] = t;
    }
}

// A word of minlen..maxlen letters: half the time from the list, otherwise
// random lowercase letters (so the space of prompts is large enough for a
// test split that does not overlap train).
static void pick_word(Rng *rng, char *out, int minlen, int maxlen) {
    ASSERT(minlen >= 1 && minlen <= maxlen && maxlen < 32);
    if (rng_below(rng, 2) == 0) {
        for (;;) {
            const char *w = WORDS[rng_below(rng, (uint64_t)N_WORDS)];
            int n = (int)strlen(w);
            if (n >= minlen && n <= maxlen) {
                strcpy(out, w);
                return;
            }
        }
    }
    int n = minlen + (int)rng_below(rng, (uint64_t)(maxlen - minlen + 1));
    for (int i = 0; i < n; i++) out[i] = (char)('a' + rng_below(rng, 26));
    out[n] = '\0';
}

// n list words joined by single spaces, at most maxlen bytes in all.
static void pick_phrase(Rng *rng, char *out, int n, int maxlen) {
    for (;;) {
        int len = 0;
        out[0] = '\0';
        for (int i = 0; i < n; i++) {
            const char *w = WORDS[rng_below(rng, (uint64_t)N_WORDS)];
            len += (i ? 1 : 0) + (int)strlen(w);
            if (len > maxlen) break;
            if (i) strcat(out, " ");
            strcat(out, w);
        }
        if (len <= maxlen) return;
    }
}

static int bad_prompt(const char *family, const char *prompt, const char *example);

// ---------------------------------------------------------------------------
// The families. Each has a NULL-terminated list of phrasings; a prompt is a
// phrasing followed by the argument.

// reverse: "reverse: cat" -> "tac"
static const char *const REVERSE_P[] = {"reverse: ", "reverse the word: ", "spell backwards: ",
                                        NULL};

static void reverse_generate(Rng *rng, char *prompt, char *answer) {
    char w[32];
    int t = (int)rng_below(rng, (uint64_t)count_strings(REVERSE_P));
    pick_word(rng, w, 3, 7);
    snprintf(prompt, TASKS_TEXT_MAX, "%s%s", REVERSE_P[t], w);
    size_t n = strlen(w);
    for (size_t i = 0; i < n; i++) answer[i] = w[n - 1 - i];
    answer[n] = '\0';
}

static int reverse_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *arg;
    if (trim_copy(prompt, p) || !(arg = after_prefix(p, REVERSE_P)) || !*arg)
        return bad_prompt("reverse", prompt, "reverse: cat");
    size_t n = strlen(arg);
    for (size_t i = 0; i < n; i++) answer[i] = arg[n - 1 - i];
    answer[n] = '\0';
    return 0;
}

// upper: "uppercase: big dog" -> "BIG DOG"
static const char *const UPPER_P[] = {"uppercase: ", "in capitals: ", "shout: ", NULL};

static void upper_generate(Rng *rng, char *prompt, char *answer) {
    char phrase[32];
    int t = (int)rng_below(rng, (uint64_t)count_strings(UPPER_P));
    pick_phrase(rng, phrase, 2 + (int)rng_below(rng, 2), 20);
    snprintf(prompt, TASKS_TEXT_MAX, "%s%s", UPPER_P[t], phrase);
    size_t n = strlen(phrase);
    for (size_t i = 0; i <= n; i++) answer[i] = (char)toupper((unsigned char)phrase[i]);
}

static int upper_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *arg;
    if (trim_copy(prompt, p) || !(arg = after_prefix(p, UPPER_P)) || !*arg)
        return bad_prompt("upper", prompt, "uppercase: big dog");
    size_t n = strlen(arg);
    for (size_t i = 0; i <= n; i++) answer[i] = (char)toupper((unsigned char)arg[i]);
    return 0;
}

// add: "add: 23 + 58" -> "81"
static const char *const ADD_P[] = {"add: ", "what is ", "sum: ", NULL};

static void add_generate(Rng *rng, char *prompt, char *answer) {
    int t = (int)rng_below(rng, (uint64_t)count_strings(ADD_P));
    // operands below 50: two-digit sums with and without carries
    int a = (int)rng_below(rng, 50), b = (int)rng_below(rng, 50);
    snprintf(prompt, TASKS_TEXT_MAX, "%s%d + %d%s", ADD_P[t], a, b, t == 1 ? "?" : "");
    snprintf(answer, TASKS_TEXT_MAX, "%d", a + b);
}

static int add_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *s;
    long a, b;
    if (trim_copy(prompt, p) || !(s = after_prefix(p, ADD_P)) || parse_int(&s, &a))
        return bad_prompt("add", prompt, "add: 23 + 58");
    while (*s == ' ') s++;
    if (*s++ != '+') return bad_prompt("add", prompt, "add: 23 + 58");
    while (*s == ' ') s++;
    if (parse_int(&s, &b)) return bad_prompt("add", prompt, "add: 23 + 58");
    if (*s == '?') s++;
    if (*s) return bad_prompt("add", prompt, "add: 23 + 58");
    snprintf(answer, TASKS_TEXT_MAX, "%ld", a + b);
    return 0;
}

// sort: "sort the letters: cat" -> "act"
static const char *const SORT_P[] = {"sort the letters: ", "sort: ", "alphabetize: ", NULL};

static void sort_chars(char *s) {  // insertion sort by byte value
    size_t n = strlen(s);
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        size_t j = i;
        while (j > 0 && (unsigned char)s[j - 1] > (unsigned char)c) s[j] = s[j - 1], j--;
        s[j] = c;
    }
}

static void sort_generate(Rng *rng, char *prompt, char *answer) {
    char w[32];
    int t = (int)rng_below(rng, (uint64_t)count_strings(SORT_P));
    pick_word(rng, w, 3, 7);
    snprintf(prompt, TASKS_TEXT_MAX, "%s%s", SORT_P[t], w);
    strcpy(answer, w);
    sort_chars(answer);
}

static int sort_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *arg;
    if (trim_copy(prompt, p) || !(arg = after_prefix(p, SORT_P)) || !*arg)
        return bad_prompt("sort", prompt, "sort the letters: cat");
    strcpy(answer, arg);
    sort_chars(answer);
    return 0;
}

// count: "count a in: banana" -> "3"
static const char *const COUNT_P[] = {"count ", "how many ", "number of ", NULL};

static void count_generate(Rng *rng, char *prompt, char *answer) {
    char w[32];
    int t = (int)rng_below(rng, (uint64_t)count_strings(COUNT_P));
    pick_word(rng, w, 3, 8);
    // mostly a letter of the word; sometimes any letter, so 0 occurs
    char c = rng_below(rng, 4) ? w[rng_below(rng, strlen(w))] : (char)('a' + rng_below(rng, 26));
    int k = 0;
    for (const char *q = w; *q; q++) k += *q == c;
    snprintf(prompt, TASKS_TEXT_MAX, "%s%c in: %s", COUNT_P[t], c, w);
    snprintf(answer, TASKS_TEXT_MAX, "%d", k);
}

static int count_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *s;
    if (trim_copy(prompt, p) || !(s = after_prefix(p, COUNT_P)) || !*s || *s == ' ' ||
        strncmp(s + 1, " in: ", 5) != 0 || !s[6])
        return bad_prompt("count", prompt, "count a in: banana");
    char c = s[0];
    int k = 0;
    for (const char *q = s + 6; *q; q++) k += *q == c;
    snprintf(answer, TASKS_TEXT_MAX, "%d", k);
    return 0;
}

// sequence: "continue: 3 7 11 15" -> "19"
static const char *const SEQUENCE_P[] = {"continue: ", "next number: ", "what comes next: ",
                                         NULL};

static void sequence_generate(Rng *rng, char *prompt, char *answer) {
    int t = (int)rng_below(rng, (uint64_t)count_strings(SEQUENCE_P));
    // terms and answer stay below 100: start < 50, step 1..9, at most 5 shown
    int start = (int)rng_below(rng, 50), step = 1 + (int)rng_below(rng, 9);
    int shown = 3 + (int)rng_below(rng, 3);
    const char *sep = rng_below(rng, 2) ? ", " : " ";
    int len = snprintf(prompt, TASKS_TEXT_MAX, "%s", SEQUENCE_P[t]);
    for (int i = 0; i < shown; i++)
        len += snprintf(prompt + len, (size_t)(TASKS_TEXT_MAX - len), "%s%d", i ? sep : "",
                        start + i * step);
    snprintf(answer, TASKS_TEXT_MAX, "%d", start + shown * step);
}

static int sequence_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *s;
    const char *ex = "continue: 3 7 11 15";
    if (trim_copy(prompt, p) || !(s = after_prefix(p, SEQUENCE_P)))
        return bad_prompt("sequence", prompt, ex);
    long prev = 0, step = 0, x;
    int n = 0;
    while (*s) {
        if (parse_int(&s, &x)) return bad_prompt("sequence", prompt, ex);
        if (n >= 2 && x - prev != step)
            return rlhf_fail("prompt \"%.60s\" is not an arithmetic sequence; hint: sequence "
                             "prompts look like \"%s\"",
                             prompt, ex);
        if (n >= 1) step = x - prev;
        prev = x;
        n++;
        while (*s == ' ') s++;
        if (*s == ',') s++;
        while (*s == ' ') s++;
    }
    if (n < 2) return bad_prompt("sequence", prompt, ex);
    snprintf(answer, TASKS_TEXT_MAX, "%ld", prev + step);
    return 0;
}

// repeat: "repeat 3 times: cat" -> "cat cat cat"
static const char *const REPEAT_P[] = {"repeat ", "write ", "say ", NULL};

static void repeat_build(char *answer, const char *w, long n) {
    answer[0] = '\0';
    for (long i = 0; i < n; i++) {
        if (i) strcat(answer, " ");
        strcat(answer, w);
    }
}

static void repeat_generate(Rng *rng, char *prompt, char *answer) {
    char w[32];
    int t = (int)rng_below(rng, (uint64_t)count_strings(REPEAT_P));
    int n = 2 + (int)rng_below(rng, 3);
    int maxlen = (20 - (n - 1)) / n;  // the answer stays within 20 characters
    pick_word(rng, w, 2, maxlen < 7 ? maxlen : 7);
    snprintf(prompt, TASKS_TEXT_MAX, "%s%d times: %s", REPEAT_P[t], n, w);
    repeat_build(answer, w, n);
}

static int repeat_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *s;
    long n;
    const char *ex = "repeat 3 times: cat";
    if (trim_copy(prompt, p) || !(s = after_prefix(p, REPEAT_P)) || parse_int(&s, &n) ||
        strncmp(s, " times: ", 8) != 0 || !s[8] || n < 1)
        return bad_prompt("repeat", prompt, ex);
    const char *w = s + 8;
    if ((size_t)n * (strlen(w) + 1) > TASKS_TEXT_MAX)
        return rlhf_fail("prompt \"%.60s\" asks for an answer longer than %d bytes; hint: "
                         "repeat prompts look like \"%s\"",
                         prompt, TASKS_TEXT_MAX - 1, ex);
    repeat_build(answer, w, n);
    return 0;
}

// initials: "first letters: big red dog" -> "brd"
static const char *const INITIALS_P[] = {"first letters: ", "initials of: ",
                                         "first letter of each word: ", NULL};

static void initials_of(const char *s, char *answer) {
    int k = 0;
    for (size_t i = 0; s[i]; i++)
        if (s[i] != ' ' && (i == 0 || s[i - 1] == ' ')) answer[k++] = s[i];
    answer[k] = '\0';
}

static void initials_generate(Rng *rng, char *prompt, char *answer) {
    char phrase[40];
    int t = (int)rng_below(rng, (uint64_t)count_strings(INITIALS_P));
    pick_phrase(rng, phrase, 2 + (int)rng_below(rng, 3), 30);
    snprintf(prompt, TASKS_TEXT_MAX, "%s%s", INITIALS_P[t], phrase);
    initials_of(phrase, answer);
}

static int initials_solve(const char *prompt, char *answer) {
    char p[TASKS_TEXT_MAX];
    const char *arg;
    if (trim_copy(prompt, p) || !(arg = after_prefix(p, INITIALS_P)) || !*arg)
        return bad_prompt("initials", prompt, "first letters: big red dog");
    initials_of(arg, answer);
    return 0;
}

#define K(kind) (1u << TASKS_REJ_##kind)
const TaskFamily tasks_families[] = {
    {"reverse", "reverse: cat -> tac", reverse_generate, reverse_solve,
     K(HALF_REVERSED) | K(WRONG_CASE) | K(DROP_DUP) | K(SWAP) | K(RAMBLING)},
    {"upper", "uppercase: big dog -> BIG DOG", upper_generate, upper_solve,
     K(WRONG_CASE) | K(DROP_DUP) | K(RAMBLING)},
    {"add", "add: 23 + 58 -> 81", add_generate, add_solve, K(OFF_BY_ONE) | K(RAMBLING)},
    {"sort", "sort the letters: cat -> act", sort_generate, sort_solve,
     K(HALF_REVERSED) | K(WRONG_CASE) | K(DROP_DUP) | K(SWAP) | K(RAMBLING)},
    {"count", "count a in: banana -> 3", count_generate, count_solve,
     K(OFF_BY_ONE) | K(RAMBLING)},
    {"sequence", "continue: 3 7 11 15 -> 19", sequence_generate, sequence_solve,
     K(OFF_BY_ONE) | K(RAMBLING)},
    {"repeat", "repeat 3 times: cat -> cat cat cat", repeat_generate, repeat_solve,
     K(OFF_BY_ONE) | K(DROP_DUP) | K(RAMBLING)},
    {"initials", "first letters: big red dog -> brd", initials_generate, initials_solve,
     K(HALF_REVERSED) | K(WRONG_CASE) | K(DROP_DUP) | K(SWAP) | K(RAMBLING)},
};
#undef K
const int tasks_n_families = (int)(sizeof tasks_families / sizeof tasks_families[0]);

static int bad_prompt(const char *family, const char *prompt, const char *example) {
    return rlhf_fail("prompt \"%.60s%s\" is not a %s prompt; hint: %s prompts look like \"%s\"",
                     prompt, strlen(prompt) > 60 ? "..." : "", family, family, example);
}

// ---------------------------------------------------------------------------
// Lookup, generation, grading

int tasks_family_by_name(const char *name) {
    for (int f = 0; f < tasks_n_families; f++)
        if (strcmp(tasks_families[f].name, name) == 0) return f;
    char names[256] = "";
    for (int f = 0; f < tasks_n_families; f++) {
        if (f) strcat(names, ", ");
        strcat(names, tasks_families[f].name);
    }
    return rlhf_fail("unknown task family \"%.40s\"; hint: families are %s", name, names);
}

int tasks_parse_families(const char *list, int idx[TASKS_MAX_FAMILIES]) {
    _Static_assert(sizeof tasks_families / sizeof tasks_families[0] <= TASKS_MAX_FAMILIES,
                   "raise TASKS_MAX_FAMILIES");
    if (!list || !*list) {
        for (int f = 0; f < tasks_n_families; f++) idx[f] = f;
        return tasks_n_families;
    }
    int n = 0;
    const char *s = list;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        while (len > 0 && *s == ' ') s++, len--;
        while (len > 0 && s[len - 1] == ' ') len--;
        char name[64];
        if (len == 0 || len >= sizeof name)
            return rlhf_fail("bad family list \"%.80s\"; hint: give names separated by commas, "
                             "e.g. reverse,add,sort",
                             list);
        memcpy(name, s, len);
        name[len] = '\0';
        int f = tasks_family_by_name(name);
        if (f < 0) return -1;
        for (int i = 0; i < n; i++)
            if (idx[i] == f)
                return rlhf_fail("family \"%s\" listed twice in \"%.80s\"; hint: name each "
                                 "family once",
                                 name, list);
        idx[n++] = f;
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

void tasks_generate(Rng *rng, int f, TaskExample *ex) {
    ASSERT(f >= 0 && f < tasks_n_families);
    ex->family = f;
    tasks_families[f].generate(rng, ex->prompt, ex->answer);
}

// The right answer to prompt (trimmed) into want, and response without its
// surrounding whitespace as (*start, *len). -1 when prompt is not f's.
static int answer_and_response(int f, const char *prompt, const char *response, char *want,
                               const char **start, size_t *len) {
    if (f < 0 || f >= tasks_n_families)
        return rlhf_fail("task family index %d out of range; hint: use tasks_family_by_name", f);
    char solved[TASKS_TEXT_MAX];
    if (tasks_families[f].solve(prompt, solved)) return -1;
    trim_copy(solved, want);  // e.g. sorting "a b" puts the space first
    while (isspace((unsigned char)*response)) response++;
    size_t n = strlen(response);
    while (n > 0 && isspace((unsigned char)response[n - 1])) n--;
    *start = response;
    *len = n;
    return 0;
}

int tasks_grade_index(int f, const char *prompt, const char *response) {
    char want[TASKS_TEXT_MAX];
    const char *r;
    size_t n;
    if (answer_and_response(f, prompt, response, want, &r, &n)) return -1;
    return n == strlen(want) && memcmp(r, want, n) == 0;
}

int tasks_grade(const char *family, const char *prompt, const char *response) {
    int f = tasks_family_by_name(family);
    return f < 0 ? -1 : tasks_grade_index(f, prompt, response);
}

// Levenshtein distance between a (n bytes) and b (m < TASKS_TEXT_MAX bytes):
// insertions, deletions and substitutions of single bytes, each costing 1.
static int edit_distance(const char *a, size_t n, const char *b, size_t m) {
    int row[TASKS_TEXT_MAX + 1];
    ASSERT(m <= TASKS_TEXT_MAX);
    for (size_t j = 0; j <= m; j++) row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0];  // row[i-1][j-1]
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            const int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

int tasks_rank(const char *family, const char *prompt, const char *response, int ended) {
    const int f = tasks_family_by_name(family);
    char want[TASKS_TEXT_MAX];
    const char *r;
    size_t n;
    if (f < 0 || answer_and_response(f, prompt, response, want, &r, &n)) return -1;
    if (!ended) return TASKS_RANK_NO_END;
    const int d = edit_distance(r, n, want, strlen(want));
    return d < TASKS_RANK_NO_END - 1 ? d : TASKS_RANK_NO_END - 1;
}

int tasks_rank_pairs(const int *ranks, const int *ended, int k, double noise, Rng *rng,
                     int (*pairs)[2], long *flippable, long *flipped) {
    int n = 0;
    for (int a = 0; a < k; a++)
        for (int b = a + 1; b < k; b++) {
            if (ranks[a] == ranks[b]) continue;
            int c = ranks[a] < ranks[b] ? a : b;
            if (ended[a] && ended[b]) {
                (*flippable)++;
                if (noise > 0 && rng_float(rng) < noise) {
                    c = a + b - c;
                    (*flipped)++;
                }
            }
            pairs[n][0] = c;
            pairs[n][1] = a + b - c;
            n++;
        }
    return n;
}

// ---------------------------------------------------------------------------
// Wrong answers. Each maker reads the correct answer a and writes out; it
// may leave out equal to a when the kind does not apply (the caller then
// falls back to a kind that always changes the text).

static const char *const KIND_NAMES[TASKS_REJ_COUNT] = {
    "off_by_one", "half_reversed", "wrong_case", "drop_dup", "swap", "rambling"};

const char *tasks_reject_kind_name(int kind) {
    ASSERT(kind >= 0 && kind < TASKS_REJ_COUNT);
    return KIND_NAMES[kind];
}

static void rej_off_by_one(Rng *rng, const char *a, char *out) {
    strcpy(out, a);
    if (is_number(a)) {
        long v = atol(a);
        long d = (v <= 0 || rng_below(rng, 2)) ? 1 : -1;
        snprintf(out, TASKS_TEXT_MAX, "%ld", v + d);
        return;
    }
    char *last = strrchr(out, ' ');
    if (!last) return;
    if (rng_below(rng, 2)) {
        *last = '\0';  // one word too few
    } else if (strlen(a) + strlen(last) < TASKS_TEXT_MAX) {
        strcat(out, strrchr(a, ' '));  // one word too many
    }
}

static void rej_half_reversed(Rng *rng, const char *a, char *out) {
    strcpy(out, a);
    size_t n = strlen(out), h = (n + 1) / 2;
    if (rng_below(rng, 2)) reverse_range(out, 0, h);
    else reverse_range(out, n - h, n);
}

static void rej_wrong_case(Rng *rng, const char *a, char *out) {
    strcpy(out, a);
    int has_lower = 0, words = 0;
    for (size_t i = 0; out[i]; i++) {
        has_lower |= islower((unsigned char)out[i]) != 0;
        words += out[i] != ' ' && (i == 0 || out[i - 1] == ' ');
    }
    if (has_lower) {
        for (size_t i = 0; out[i]; i++) out[i] = (char)toupper((unsigned char)out[i]);
        return;
    }
    if (words == 0) return;
    int pick = (int)rng_below(rng, (uint64_t)words), w = -1;
    for (size_t i = 0; out[i]; i++) {
        if (out[i] != ' ' && (i == 0 || out[i - 1] == ' ')) w++;
        if (w == pick && out[i] != ' ') out[i] = (char)tolower((unsigned char)out[i]);
    }
}

// Drops (drop = 1) or doubles one non-space character.
static void drop_dup_at(Rng *rng, const char *a, char *out, int drop) {
    strcpy(out, a);
    size_t n = strlen(a), k = 0;
    for (size_t i = 0; i < n; i++) k += a[i] != ' ';
    if (k == 0) return;
    size_t pick = rng_below(rng, k), i = 0;
    for (size_t seen = 0;; i++)
        if (a[i] != ' ' && seen++ == pick) break;
    if (drop) {
        memmove(out + i, a + i + 1, n - i);
    } else if (n + 1 < TASKS_TEXT_MAX) {
        out[i + 1] = a[i];
        memcpy(out + i + 2, a + i + 1, n - i);
    }
}

static void rej_drop_dup(Rng *rng, const char *a, char *out) {
    int drop = strlen(a) > 2 && rng_below(rng, 2);
    drop_dup_at(rng, a, out, drop);
}

// Swaps two neighbouring non-space characters that differ (the slip a
// model makes when it sorts or reverses almost right); out == a if none do.
static void rej_swap(Rng *rng, const char *a, char *out) {
    strcpy(out, a);
    size_t n = strlen(a), k = 0;
    for (size_t i = 0; i + 1 < n; i++) k += a[i] != ' ' && a[i + 1] != ' ' && a[i] != a[i + 1];
    if (k == 0) return;
    size_t pick = rng_below(rng, k), i = 0;
    for (size_t seen = 0;; i++)
        if (a[i] != ' ' && a[i + 1] != ' ' && a[i] != a[i + 1] && seen++ == pick) break;
    out[i] = a[i + 1];
    out[i + 1] = a[i];
}

static void rej_rambling(Rng *rng, const char *a, char *out) {
    int len = snprintf(out, TASKS_TEXT_MAX, "%s", a);
    if (rng_below(rng, 2)) {  // says it again
        int times = 1 + (int)rng_below(rng, 2);
        for (int i = 0; i < times && len < TASKS_TEXT_MAX; i++)
            len += snprintf(out + len, (size_t)(TASKS_TEXT_MAX - len), " %s", a);
    } else {  // wanders off
        int words = 1 + (int)rng_below(rng, 3);
        for (int i = 0; i < words && len < TASKS_TEXT_MAX; i++)
            len += snprintf(out + len, (size_t)(TASKS_TEXT_MAX - len), " %s",
                            WORDS[rng_below(rng, (uint64_t)N_WORDS)]);
    }
}

int tasks_make_rejected(Rng *rng, const TaskExample *ex, char *out, int *no_eot) {
    ASSERT(ex->family >= 0 && ex->family < tasks_n_families);
    const TaskFamily *fam = &tasks_families[ex->family];
    char a[TASKS_TEXT_MAX];
    if (fam->solve(ex->prompt, a)) return -1;

    unsigned kinds = fam->reject_kinds;
    int kind;
    if ((kinds & (1u << TASKS_REJ_RAMBLING)) && rng_below(rng, 4) == 0) {
        kind = TASKS_REJ_RAMBLING;
    } else {
        kinds &= ~(1u << TASKS_REJ_RAMBLING);
        int n = __builtin_popcount(kinds);
        ASSERT(n > 0);
        int pick = (int)rng_below(rng, (uint64_t)n);
        for (kind = 0; kind < TASKS_REJ_COUNT; kind++)
            if ((kinds & (1u << kind)) && pick-- == 0) break;
    }
    switch (kind) {
    case TASKS_REJ_OFF_BY_ONE: rej_off_by_one(rng, a, out); break;
    case TASKS_REJ_HALF_REVERSED: rej_half_reversed(rng, a, out); break;
    case TASKS_REJ_WRONG_CASE: rej_wrong_case(rng, a, out); break;
    case TASKS_REJ_DROP_DUP: rej_drop_dup(rng, a, out); break;
    case TASKS_REJ_SWAP: rej_swap(rng, a, out); break;
    default: rej_rambling(rng, a, out); break;
    }
    if (tasks_grade_index(ex->family, ex->prompt, out) != 0) {
        // the kind left the answer intact (a palindrome, a digit-only
        // answer's case...): a number moves by one, text loses or gains a
        // character, which always changes it
        if (is_number(a)) {
            kind = TASKS_REJ_OFF_BY_ONE;
            rej_off_by_one(rng, a, out);
        } else {
            kind = TASKS_REJ_DROP_DUP;
            drop_dup_at(rng, a, out, strlen(a) + 1 >= TASKS_TEXT_MAX);
        }
    }
    ASSERT(tasks_grade_index(ex->family, ex->prompt, out) == 0);
    *no_eot = kind == TASKS_REJ_RAMBLING;
    return kind;
}

// ---------------------------------------------------------------------------
// Tallies

void tasks_tally_init(TasksTally *t) { memset(t, 0, sizeof *t); }

int tasks_tally_add(TasksTally *t, const char *family, const char *prompt,
                    const char *response) {
    int f = tasks_family_by_name(family);
    int g = f < 0 ? -1 : tasks_grade_index(f, prompt, response);
    if (g < 0) {
        t->ungraded++;
        return -1;
    }
    t->total[f]++;
    t->correct[f] += g;
    return g;
}

double tasks_tally_accuracy(const TasksTally *t, int f) {
    long c = 0, n = 0;
    for (int i = 0; i < tasks_n_families; i++) {
        if (f >= 0 && i != f) continue;
        c += t->correct[i];
        n += t->total[i];
    }
    return n ? (double)c / (double)n : 0.0;
}

void tasks_tally_print(const TasksTally *t, FILE *out) {
    long c = 0, n = 0;
    for (int f = 0; f < tasks_n_families; f++) {
        if (!t->total[f]) continue;
        fprintf(out, "  %-10s %6.3f  (%ld/%ld)\n", tasks_families[f].name,
                tasks_tally_accuracy(t, f), t->correct[f], t->total[f]);
        c += t->correct[f];
        n += t->total[f];
    }
    fprintf(out, "  %-10s %6.3f  (%ld/%ld)", "all", tasks_tally_accuracy(t, -1), c, n);
    if (t->ungraded) fprintf(out, ", %ld ungraded", t->ungraded);
    fputc('\n', out);
}

// ---------------------------------------------------------------------------
// Data files

const char *const tasks_file_names[TASKS_N_FILES] = {
    "sft_train.jsonl", "sft_test.jsonl",  "pref_train.jsonl", "pref_test.jsonl",
    "ppo_train.jsonl", "ppo_test.jsonl", "chat_test.jsonl"};

// A set of strings (open addressing, FNV-1a), owning copies of its keys.
typedef struct {
    char **keys;
    size_t cap, n;
} StrSet;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static size_t strset_slot(const StrSet *set, const char *s) {
    size_t i = (size_t)fnv1a(s) & (set->cap - 1);
    while (set->keys[i] && strcmp(set->keys[i], s) != 0) i = (i + 1) & (set->cap - 1);
    return i;
}

static int strset_has(const StrSet *set, const char *s) {
    return set->cap && set->keys[strset_slot(set, s)] != NULL;
}

static void strset_add(StrSet *set, const char *s) {
    if (2 * (set->n + 1) > set->cap) {
        StrSet big = {callocCheck(set->cap ? 2 * set->cap : 1024, sizeof(char *)),
                      set->cap ? 2 * set->cap : 1024, set->n};
        for (size_t i = 0; i < set->cap; i++)
            if (set->keys[i]) big.keys[strset_slot(&big, set->keys[i])] = set->keys[i];
        free(set->keys);
        *set = big;
    }
    size_t i = strset_slot(set, s);
    if (set->keys[i]) return;
    set->keys[i] = strdup_check(s);
    set->n++;
}

static void strset_free(StrSet *set) {
    for (size_t i = 0; i < set->cap; i++) free(set->keys[i]);
    free(set->keys);
    memset(set, 0, sizeof *set);
}

// Each file draws from its own stream, so changing n_test leaves the train
// files as they were.
static uint64_t stream_seed(uint64_t seed, int file) {
    return seed * 0x9E3779B97F4A7C15ULL + 0xD1B54A32D192ED03ULL * (uint64_t)(file + 1);
}

static int is_test_file(int file) {
    return file == TASKS_SFT_TEST || file == TASKS_PREF_TEST || file == TASKS_PPO_TEST ||
           file == TASKS_CHAT_TEST;
}

long tasks_chat_train_count(const TasksSpec *spec) {
    if (!(spec->chat_share > 0.0)) return 0;
    return (long)((double)spec->n_train * spec->chat_share / (1.0 - spec->chat_share) + 0.5);
}

// Tries per test example before giving up on a family whose prompts are
// (nearly) all in train already.
#define TASKS_MAX_TRIES 1000

// One example of family f into ex whose prompt is in neither forbid nor
// unique (either may be NULL); the prompt then joins unique and record
// (when given). Redraws are counted as dropped for the file.
static int draw_example(Rng *rng, int f, int file, const StrSet *forbid, StrSet *unique,
                        StrSet *record, TasksReport *report, TaskExample *ex) {
    for (int tries = 0;; tries++) {
        tasks_generate(rng, f, ex);
        if (!(forbid && strset_has(forbid, ex->prompt)) &&
            !(unique && strset_has(unique, ex->prompt))) {
            if (unique) strset_add(unique, ex->prompt);
            if (record) strset_add(record, ex->prompt);
            return 0;
        }
        report->dropped[file]++;
        if (tries + 1 >= TASKS_MAX_TRIES)
            return rlhf_fail("%s: family %s ran out of prompts unseen in %s after %d tries; "
                             "hint: lower --n_train or --n_test",
                             tasks_file_names[file], tasks_families[f].name,
                             is_test_file(file) ? "train" : "the test files", TASKS_MAX_TRIES);
    }
}

// The prompt sets the files are checked against.
typedef struct {
    StrSet train;  // every train prompt, conversations' included
    StrSet test;   // every prompt of the single-turn test files
} PromptSets;

// Conversation i of a file: its turns' families, then the conversation. A
// test conversation's prompts avoid train and repeat no prompt of the file
// (seen); a train conversation's avoid the test files.
static int write_conversation(const TasksSpec *spec, int file, long i, Rng *rng,
                              JsonlWriter *w, PromptSets *ps, StrSet *seen, TasksReport *report) {
    const int nf = spec->n_families;
    int fam[TASKS_CHAT_MAX_TURNS], n;
    const int spread = TASKS_CHAT_MAX_TURNS - TASKS_CHAT_MIN_TURNS + 1;
    if (file == TASKS_CHAT_TEST) {  // balanced: every turn index sees every family alike
        n = TASKS_CHAT_MIN_TURNS + (int)(i % spread);
        for (int k = 0; k < n; k++) fam[k] = spec->families[(i + k) % nf];
    } else {
        n = TASKS_CHAT_MIN_TURNS + (int)rng_below(rng, (uint64_t)spread);
        for (int k = 0; k < n; k++) fam[k] = spec->families[rng_below(rng, (uint64_t)nf)];
    }
    TaskExample ex[TASKS_CHAT_MAX_TURNS];
    Turn turns[2 * TASKS_CHAT_MAX_TURNS];
    for (int k = 0; k < n; k++) {
        int rc = file == TASKS_CHAT_TEST
                     ? draw_example(rng, fam[k], file, &ps->train, seen, NULL, report, &ex[k])
                     : draw_example(rng, fam[k], file, &ps->test, NULL, &ps->train, report,
                                    &ex[k]);
        if (rc) return -1;
        turns[2 * k] = (Turn){TURN_USER, ex[k].prompt, (char *)tasks_families[fam[k]].name};
        turns[2 * k + 1] = (Turn){TURN_ASSISTANT, ex[k].answer, NULL};
    }
    SftExample s = {turns, 2 * n, "", "", 0};
    return jsonl_write_sft(w, &s);
}

// The single-turn lines of a file (or chat_test's conversations).
static int write_file(const TasksSpec *spec, int file, JsonlWriter *w, PromptSets *ps,
                      TasksReport *report) {
    Rng rng;
    rng_init(&rng, stream_seed(spec->seed, file));
    int test = is_test_file(file);
    long n = test ? spec->n_test : spec->n_train;
    StrSet seen = {0};  // test prompts already written: each test prompt once
    int rc = 0;
    TaskExample ex;
    for (long i = 0; i < n && rc == 0; i++) {
        if (file == TASKS_CHAT_TEST) {
            rc = write_conversation(spec, file, i, &rng, w, ps, &seen, report);
            if (rc == 0) report->written[file]++;
            continue;
        }
        int f = spec->families[i % spec->n_families];
        rc = test ? draw_example(&rng, f, file, &ps->train, &seen, &ps->test, report, &ex)
                  : draw_example(&rng, f, file, NULL, NULL, &ps->train, report, &ex);
        if (rc) break;
        const char *family = tasks_families[f].name;
        if (file == TASKS_SFT_TRAIN || file == TASKS_SFT_TEST) {
            Turn turns[2] = {{TURN_USER, ex.prompt, NULL}, {TURN_ASSISTANT, ex.answer, NULL}};
            SftExample s = {turns, 2, (char *)family, "", 0};
            rc = jsonl_write_sft(w, &s);
        } else if (file == TASKS_PREF_TRAIN || file == TASKS_PREF_TEST) {
            char rejected[TASKS_TEXT_MAX];
            int no_eot;
            int kind = tasks_make_rejected(&rng, &ex, rejected, &no_eot);
            ASSERT(kind >= 0);
            PrefExample p = {.prompt = ex.prompt,
                             .chosen = ex.answer,
                             .rejected = rejected,
                             .family = (char *)family,
                             .rejected_kind = (char *)tasks_reject_kind_name(kind),
                             .rejected_no_eot = no_eot,
                             .group = -1,
                             .ranks = {-1, -1}};
            rc = jsonl_write_pref(w, &p);
        } else {
            PromptExample p = {ex.prompt, ex.answer, (char *)family, 0, NULL, 0};
            rc = jsonl_write_prompt(w, &p);
        }
        if (rc == 0) report->written[file]++;
    }
    strset_free(&seen);
    return rc;
}

// sft_train's conversations, after its single-turn lines and after the
// single-turn test files (whose prompts they avoid), from a stream of their
// own: the single-turn lines of every file stay the same bytes whatever
// the share.
static int write_train_conversations(const TasksSpec *spec, JsonlWriter *w, PromptSets *ps,
                                     TasksReport *report) {
    Rng rng;
    rng_init(&rng, stream_seed(spec->seed, TASKS_N_FILES));
    const long n = tasks_chat_train_count(spec);
    for (long i = 0; i < n; i++) {
        if (write_conversation(spec, TASKS_SFT_TRAIN, i, &rng, w, ps, NULL, report)) return -1;
        report->written_chat++;
    }
    return 0;
}

int tasks_write_data(const TasksSpec *spec, TasksReport *report) {
    memset(report, 0, sizeof *report);
    if (spec->n_train < 1 || spec->n_test < 1)
        return rlhf_fail("n_train (%ld) and n_test (%ld) must be at least 1; hint: pass "
                         "--n_train N --n_test N with N >= 1",
                         spec->n_train, spec->n_test);
    if (!(spec->chat_share >= 0.0 && spec->chat_share <= 0.5))
        return rlhf_fail("chat share %g is outside [0, 0.5]; hint: --chat_share 0.2 makes a "
                         "fifth of the SFT lines conversations, 0 none", spec->chat_share);
    if (spec->n_families < 1 || spec->n_families > TASKS_MAX_FAMILIES)
        return rlhf_fail("no task families selected; hint: --families reverse,add,...");
    for (int i = 0; i < spec->n_families; i++)
        ASSERT(spec->families[i] >= 0 && spec->families[i] < tasks_n_families);
    if (mkdir_p(spec->out_dir)) return -1;

    JsonlWriter w[TASKS_N_FILES];
    memset(w, 0, sizeof w);
    int rc = 0;
    for (int k = 0; k < TASKS_N_FILES && rc == 0; k++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", spec->out_dir, tasks_file_names[k]) >=
            (int)sizeof path)
            rc = rlhf_fail("output directory path too long; hint: use a shorter --out");
        else
            rc = jsonl_writer_open(&w[k], path);
    }
    // train files first: the test files check their prompts against them
    static const int order[TASKS_N_FILES] = {TASKS_SFT_TRAIN, TASKS_PREF_TRAIN,
                                             TASKS_PPO_TRAIN, TASKS_SFT_TEST,
                                             TASKS_PREF_TEST, TASKS_PPO_TEST,
                                             TASKS_CHAT_TEST};
    PromptSets ps = {{0}, {0}};
    for (int i = 0; i < TASKS_N_FILES && rc == 0; i++) {
        if (order[i] == TASKS_CHAT_TEST && rc == 0)  // after every single-turn test prompt
            rc = write_train_conversations(spec, &w[TASKS_SFT_TRAIN], &ps, report);
        if (rc == 0) rc = write_file(spec, order[i], &w[order[i]], &ps, report);
    }
    strset_free(&ps.train);
    strset_free(&ps.test);
    for (int k = 0; k < TASKS_N_FILES; k++) {
        if (rc == 0) rc = jsonl_writer_commit(&w[k]);
        else jsonl_writer_abort(&w[k]);
    }
    return rc;
}
