// Tests for tasks.c: every family's grader accepts its generator's answer
// and rejects the wrong-answer maker's output, graders reject near misses
// and foreign prompts, generation and the written files are deterministic,
// no test prompt occurs in train, and the per-family tallies add up. Data
// files go to a mkdtemp directory.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "jsonl.h"
#include "rng.h"
#include "tasks.h"

static char tmpdir[64];

static int group_setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_tasks_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

// Removes dir and everything below it (so a failed test leaves nothing).
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) remove_dir(path);
        else remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static int group_teardown(void **state) {
    remove_dir(tmpdir);
    return 0;
}

static void assert_msg_has(const char *want) {
    if (!strstr(rlhf_errmsg, want)) fail_msg("message \"%s\" lacks \"%s\"", rlhf_errmsg, want);
}

// Examples per family in the generator checks.
#define N_PER_FAMILY 1000

// --- the family table ------------------------------------------------------

static void test_family_table(void **state) {
    assert_true(tasks_n_families >= 6);
    assert_true(tasks_n_families <= TASKS_MAX_FAMILIES);
    for (int f = 0; f < tasks_n_families; f++) {
        assert_int_equal(tasks_family_by_name(tasks_families[f].name), f);
        assert_non_null(tasks_families[f].example);
        // the rejected-answer maker always has a kind besides rambling
        assert_true(tasks_families[f].reject_kinds & ~(1u << TASKS_REJ_RAMBLING));
    }
    assert_int_equal(tasks_family_by_name("nosuch"), -1);
    assert_msg_has("unknown task family \"nosuch\"; hint: families are reverse");
}

static void test_parse_families(void **state) {
    int idx[TASKS_MAX_FAMILIES];
    assert_int_equal(tasks_parse_families(NULL, idx), tasks_n_families);
    assert_int_equal(tasks_parse_families("", idx), tasks_n_families);
    for (int f = 0; f < tasks_n_families; f++) assert_int_equal(idx[f], f);
    assert_int_equal(tasks_parse_families("add, reverse", idx), 2);
    assert_int_equal(idx[0], tasks_family_by_name("add"));
    assert_int_equal(idx[1], tasks_family_by_name("reverse"));
    assert_int_equal(tasks_parse_families("add,,reverse", idx), -1);
    assert_msg_has("bad family list");
    assert_int_equal(tasks_parse_families("add,", idx), -1);
    assert_int_equal(tasks_parse_families("add,nosuch", idx), -1);
    assert_msg_has("\"nosuch\"");
    assert_int_equal(tasks_parse_families("add,add", idx), -1);
    assert_msg_has("listed twice");
}

// --- generators and graders --------------------------------------------------

static int printable_ascii(const char *s) {
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e) return 0;
    return 1;
}

static void test_generated_answers_grade_correct(void **state) {
    Rng rng;
    rng_init(&rng, 7);
    for (int f = 0; f < tasks_n_families; f++) {
        for (int i = 0; i < N_PER_FAMILY; i++) {
            TaskExample ex;
            tasks_generate(&rng, f, &ex);
            assert_int_equal(ex.family, f);
            // short and printable, as a small char-level model needs
            assert_true(strlen(ex.prompt) > 0 && strlen(ex.prompt) < 64);
            assert_true(strlen(ex.answer) > 0 && strlen(ex.answer) <= 20);
            assert_true(printable_ascii(ex.prompt) && printable_ascii(ex.answer));
            if (tasks_grade_index(f, ex.prompt, ex.answer) != 1)
                fail_msg("%s: \"%s\" -> \"%s\" graded wrong (%s)", tasks_families[f].name,
                         ex.prompt, ex.answer, rlhf_errmsg);
            // surrounding whitespace does not matter
            char padded[TASKS_TEXT_MAX + 8];
            snprintf(padded, sizeof padded, "  %s \n", ex.answer);
            assert_int_equal(tasks_grade(tasks_families[f].name, ex.prompt, padded), 1);
        }
    }
}

static void test_rejected_grade_wrong(void **state) {
    Rng rng;
    rng_init(&rng, 11);
    for (int f = 0; f < tasks_n_families; f++) {
        int seen[TASKS_REJ_COUNT] = {0};
        for (int i = 0; i < N_PER_FAMILY; i++) {
            TaskExample ex;
            tasks_generate(&rng, f, &ex);
            char rej[TASKS_TEXT_MAX];
            int no_eot = -1;
            int kind = tasks_make_rejected(&rng, &ex, rej, &no_eot);
            assert_true(kind >= 0 && kind < TASKS_REJ_COUNT);
            assert_true(tasks_families[f].reject_kinds & (1u << kind));
            seen[kind]++;
            if (tasks_grade_index(f, ex.prompt, rej) != 0)
                fail_msg("%s: rejected \"%s\" for \"%s\" (%s) not graded wrong",
                         tasks_families[f].name, rej, ex.prompt, tasks_reject_kind_name(kind));
            assert_int_equal(no_eot, kind == TASKS_REJ_RAMBLING);
            assert_true(printable_ascii(rej));
            if (kind == TASKS_REJ_RAMBLING) {
                // the correct answer, then more
                assert_memory_equal(rej, ex.answer, strlen(ex.answer));
                assert_true(strlen(rej) > strlen(ex.answer) + 1);
            }
        }
        // rambling is drawn about one time in four: 250 expected of 1000,
        // 150 is more than 7 standard deviations below
        assert_true(seen[TASKS_REJ_RAMBLING] > 150);
        // every other kind the family allows shows up
        for (int k = 0; k < TASKS_REJ_COUNT; k++)
            if (tasks_families[f].reject_kinds & (1u << k))
                if (seen[k] == 0)
                    fail_msg("%s: kind %s never produced", tasks_families[f].name,
                             tasks_reject_kind_name(k));
    }
}

typedef struct {
    const char *family, *prompt, *response;
    int want;
} GradeCase;

static void test_graders_near_misses(void **state) {
    static const GradeCase cases[] = {
        {"reverse", "reverse: cat", "tac", 1},
        {"reverse", "reverse the word: cat", "\ttac\n", 1},
        {"reverse", "spell backwards: level", "level", 1},
        {"reverse", "reverse: cat", "tca", 0},
        {"reverse", "reverse: cat", "TAC", 0},
        {"reverse", "reverse: cat", "ta c", 0},
        {"reverse", "reverse: cat", "tac.", 0},
        {"reverse", "reverse: cat", "tacc", 0},
        {"reverse", "reverse: cat", "", 0},
        {"reverse", "reverse:   cat ", "tac", 1},  // spaces around the argument do not count
        {"upper", "uppercase: big dog", "BIG DOG", 1},
        {"upper", "in capitals: big dog", "BIG  DOG", 0},
        {"upper", "shout: big dog", "BIG DOg", 0},
        {"upper", "shout: big dog", "big dog", 0},
        {"add", "add: 23 + 58", "81", 1},
        {"add", "what is 23 + 58?", "81", 1},
        {"add", "sum: 0 + 0", "0", 1},
        {"add", "add: 23 + 58", "80", 0},
        {"add", "add: 23 + 58", "82", 0},
        {"add", "add: 23 + 58", "081", 0},
        {"add", "add: 23 + 58", "81.0", 0},
        {"add", "add: 23 + 58", "81 81", 0},
        {"sort", "sort the letters: cat", "act", 1},
        {"sort", "sort: banana", "aaabnn", 1},
        {"sort", "alphabetize: banana", "aabnn", 0},
        {"sort", "sort: cat", "tca", 0},
        {"sort", "sort: cat", "ACT", 0},
        {"sort", "sort: b a", "ab", 1},  // the sorted space leads and is trimmed
        {"count", "count a in: banana", "3", 1},
        {"count", "how many z in: banana", "0", 1},
        {"count", "number of n in: banana", "2", 1},
        {"count", "count a in: banana", "2", 0},
        {"count", "count a in: banana", "4", 0},
        {"count", "count a in: banana", "three", 0},
        {"sequence", "continue: 3 7 11 15", "19", 1},
        {"sequence", "what comes next: 3, 7, 11, 15", "19", 1},
        {"sequence", "next number: 10 8 6", "4", 1},  // the grader takes any step
        {"sequence", "continue: 3 7 11 15", "18", 0},
        {"sequence", "continue: 3 7 11 15", "20", 0},
        {"sequence", "continue: 3 7 11 15", "15", 0},
        {"repeat", "repeat 3 times: cat", "cat cat cat", 1},
        {"repeat", "say 2 times: ab", "ab ab", 1},
        {"repeat", "repeat 3 times: cat", "cat cat", 0},
        {"repeat", "repeat 3 times: cat", "cat cat cat cat", 0},
        {"repeat", "repeat 3 times: cat", "catcatcat", 0},
        {"repeat", "write 3 times: cat", "cat cta cat", 0},
        {"initials", "first letters: big red dog", "brd", 1},
        {"initials", "initials of: big  red dog", "brd", 1},
        {"initials", "first letter of each word: big red dog", "BRD", 0},
        {"initials", "first letters: big red dog", "b r d", 0},
        {"initials", "first letters: big red dog", "br", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const GradeCase *c = &cases[i];
        int g = tasks_grade(c->family, c->prompt, c->response);
        if (g != c->want)
            fail_msg("%s: \"%s\" -> \"%s\" graded %d, want %d (%s)", c->family, c->prompt,
                     c->response, g, c->want, g < 0 ? rlhf_errmsg : "");
    }
}

// A prompt its family cannot parse is an error (-1 with a reason), never a
// silent 0 or 1.
static void test_graders_reject_foreign_prompts(void **state) {
    static const GradeCase cases[] = {
        {"reverse", "add: 1 + 2", "3", -1},
        {"reverse", "reverse: ", "", -1},
        {"upper", "", "", -1},
        {"add", "add: 1 + x", "1", -1},
        {"add", "add: 1 + 2 + 3", "6", -1},
        {"add", "add: 1234567890 + 1", "1", -1},  // more digits than the grader reads
        {"sort", "reverse: cat", "act", -1},
        {"count", "count ab in: x", "0", -1},
        {"count", "count a in: ", "0", -1},
        {"sequence", "continue: 1 2 4", "8", -1},
        {"sequence", "continue: 5", "6", -1},
        {"sequence", "continue: 1 2 x", "3", -1},
        {"repeat", "repeat x times: a", "a", -1},
        {"repeat", "repeat 0 times: a", "", -1},
        {"repeat", "repeat 1000 times: abc", "abc", -1},
        {"initials", "reverse: cat", "c", -1},
        {"nosuch", "reverse: cat", "tac", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const GradeCase *c = &cases[i];
        rlhf_errmsg[0] = '\0';
        int g = tasks_grade(c->family, c->prompt, c->response);
        if (g != -1) fail_msg("%s: \"%s\" graded %d, want -1", c->family, c->prompt, g);
        assert_msg_has("; hint: ");
    }
    TaskExample ex = {tasks_family_by_name("add"), "reverse: cat", "tac"};
    char rej[TASKS_TEXT_MAX];
    int no_eot;
    Rng rng;
    rng_init(&rng, 1);
    assert_int_equal(tasks_make_rejected(&rng, &ex, rej, &no_eot), -1);
}

static void test_generator_deterministic(void **state) {
    Rng a, b, c;
    rng_init(&a, 42);
    rng_init(&b, 42);
    rng_init(&c, 43);
    int differ = 0;
    for (int i = 0; i < 400; i++) {
        int f = i % tasks_n_families;
        TaskExample x, y, z;
        tasks_generate(&a, f, &x);
        tasks_generate(&b, f, &y);
        tasks_generate(&c, f, &z);
        assert_string_equal(x.prompt, y.prompt);
        assert_string_equal(x.answer, y.answer);
        char rx[TASKS_TEXT_MAX], ry[TASKS_TEXT_MAX];
        int nx, ny;
        assert_int_equal(tasks_make_rejected(&a, &x, rx, &nx), tasks_make_rejected(&b, &y, ry, &ny));
        assert_string_equal(rx, ry);
        differ += strcmp(x.prompt, z.prompt) != 0;
    }
    // another seed gives other prompts (a few may coincide by chance)
    assert_true(differ > 300);
}

// --- data files -------------------------------------------------------------

static char *read_all(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = mallocCheck((size_t)*n + 1);
    assert_int_equal(fread(buf, 1, (size_t)*n, f), (size_t)*n);
    fclose(f);
    return buf;
}

static void spec_all(TasksSpec *spec, const char *dir, uint64_t seed, long n_train, long n_test) {
    memset(spec, 0, sizeof *spec);
    spec->out_dir = dir;
    spec->seed = seed;
    spec->n_train = n_train;
    spec->n_test = n_test;
    spec->n_families = tasks_parse_families(NULL, spec->families);
}

// Whether file k of dirs a and b hold the same bytes.
static int same_file(const char *a, const char *b, int k) {
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/%s", a, tasks_file_names[k]);
    snprintf(pb, sizeof pb, "%s/%s", b, tasks_file_names[k]);
    long na, nb;
    char *x = read_all(pa, &na), *y = read_all(pb, &nb);
    int same = na == nb && memcmp(x, y, (size_t)na) == 0;
    free(x);
    free(y);
    return same;
}

static void test_write_data_deterministic(void **state) {
    char d1[128], d2[128], d3[128], d4[128];
    snprintf(d1, sizeof d1, "%s/run1", tmpdir);
    snprintf(d2, sizeof d2, "%s/run2/nested", tmpdir);  // parents are created
    snprintf(d3, sizeof d3, "%s/seed2", tmpdir);
    snprintf(d4, sizeof d4, "%s/moretest", tmpdir);
    TasksSpec spec;
    TasksReport rep;
    spec_all(&spec, d1, 5, 1000, 100);
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    spec.out_dir = d2;
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    spec_all(&spec, d3, 6, 1000, 100);
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    spec_all(&spec, d4, 5, 1000, 150);
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    for (int k = 0; k < TASKS_N_FILES; k++) {
        assert_true(same_file(d1, d2, k));   // same seed: same bytes
        assert_false(same_file(d1, d3, k));  // another seed: other data
        // each file has its own stream: more test examples leave train as it was
        if (k == TASKS_SFT_TRAIN || k == TASKS_PREF_TRAIN || k == TASKS_PPO_TRAIN)
            assert_true(same_file(d1, d4, k));
    }
    remove_dir(d1);
    char parent[128];
    snprintf(parent, sizeof parent, "%s/run2", tmpdir);
    remove_dir(parent);
    remove_dir(d3);
    remove_dir(d4);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Reads back all six files: the counts, the families in rotation, answers
// that grade correct, rejected responses that grade wrong, and no test
// prompt that also occurs in any train file.
static void test_files_read_back_without_leaks(void **state) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s/leak", tmpdir);
    TasksSpec spec;
    TasksReport rep;
    spec_all(&spec, dir, 1, 3000, 300);
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    char path[TASKS_N_FILES][256];
    for (int k = 0; k < TASKS_N_FILES; k++) {
        snprintf(path[k], sizeof path[k], "%s/%s", dir, tasks_file_names[k]);
        struct stat st;
        char tmp[270];
        snprintf(tmp, sizeof tmp, "%.255s.tmp", path[k]);
        assert_int_equal(stat(tmp, &st), -1);  // no temporaries left
    }
    SftSet sft[2];
    PrefSet pref[2];
    PromptSet ppo[2];
    for (int s = 0; s < 2; s++) {  // 0 train, 1 test
        long want = s ? spec.n_test : spec.n_train;
        assert_int_equal(jsonl_read_sft(path[TASKS_SFT_TRAIN + s], &sft[s]), 0);
        assert_int_equal(jsonl_read_prefs(path[TASKS_PREF_TRAIN + s], &pref[s]), 0);
        assert_int_equal(jsonl_read_prompts(path[TASKS_PPO_TRAIN + s], &ppo[s]), 0);
        assert_int_equal(sft[s].n, want);
        assert_int_equal(pref[s].n, want);
        assert_int_equal(ppo[s].n, want);
        assert_int_equal(rep.written[TASKS_SFT_TRAIN + s], want);
        for (long i = 0; i < want; i++) {
            const char *fam = tasks_families[i % tasks_n_families].name;
            const SftExample *e = &sft[s].ex[i];
            assert_string_equal(e->family, fam);
            assert_int_equal(e->n_turns, 2);
            assert_int_equal(tasks_grade(fam, e->turns[0].text, e->turns[1].text), 1);
            const PrefExample *p = &pref[s].ex[i];
            assert_string_equal(p->family, fam);
            assert_int_equal(tasks_grade(fam, p->prompt, p->chosen), 1);
            assert_int_equal(tasks_grade(fam, p->prompt, p->rejected), 0);
            assert_int_equal(p->rejected_no_eot, strcmp(p->rejected_kind, "rambling") == 0);
            const PromptExample *q = &ppo[s].ex[i];
            assert_string_equal(q->family, fam);
            assert_int_equal(tasks_grade(fam, q->prompt, q->answer), 1);
        }
    }
    // the split does not leak: sort all train prompts, look up each test prompt
    long n_train = 3 * spec.n_train, m = 0;
    const char **train = mallocCheck((size_t)n_train * sizeof *train);
    for (long i = 0; i < spec.n_train; i++) {
        train[m++] = sft[0].ex[i].turns[0].text;
        train[m++] = pref[0].ex[i].prompt;
        train[m++] = ppo[0].ex[i].prompt;
    }
    qsort(train, (size_t)n_train, sizeof *train, cmp_str);
    long leaks = 0, dropped = 0;
    for (long i = 0; i < spec.n_test; i++) {
        const char *tests[3] = {sft[1].ex[i].turns[0].text, pref[1].ex[i].prompt,
                                ppo[1].ex[i].prompt};
        for (int j = 0; j < 3; j++)
            leaks += bsearch(&tests[j], train, (size_t)n_train, sizeof *train, cmp_str) != NULL;
    }
    for (int k = 0; k < TASKS_N_FILES; k++) dropped += rep.dropped[k];
    assert_int_equal(leaks, 0);
    // the check had something to catch: the generator did meet train prompts
    assert_true(dropped > 0);
    free(train);
    for (int s = 0; s < 2; s++) {
        jsonl_free_sft(&sft[s]);
        jsonl_free_prefs(&pref[s]);
        jsonl_free_prompts(&ppo[s]);
    }
    remove_dir(dir);
}

static void test_write_data_errors(void **state) {
    TasksSpec spec;
    TasksReport rep;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/errs", tmpdir);
    spec_all(&spec, dir, 1, 10, 0);
    assert_int_equal(tasks_write_data(&spec, &rep), -1);
    assert_msg_has("n_test (0)");

    // --out below a plain file
    char file[160], below[200];
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    snprintf(below, sizeof below, "%s/sub", file);
    spec_all(&spec, below, 1, 10, 10);
    assert_int_equal(tasks_write_data(&spec, &rep), -1);
    assert_msg_has("cannot create directory");
    remove(file);

    // one family with a small space of prompts (add: 3 phrasings x 100 x 100)
    // and a train split that covers nearly all of them: the test split
    // cannot be filled without leaking, which is an error, and no file is
    // left behind
    spec_all(&spec, dir, 1, 60000, 200);
    spec.families[0] = tasks_family_by_name("add");
    spec.n_families = 1;
    assert_int_equal(tasks_write_data(&spec, &rep), -1);
    assert_msg_has("family add ran out of prompts");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 0);
    rmdir(dir);
}

// Conversations: with chat_share 0.2, sft_train holds its n_train
// single-turn lines byte for byte as with no share (so do the other
// single-turn files), then n_train / 4
// conversations of 2-4 turns whose every answer grades right by the family
// its user message names. chat_test holds n_test conversations, the turn
// count cycling 2, 3, 4 and turn k of conversation i asking family
// (i + k) % 8. No chat_test prompt occurs in any train file (single-turn
// or conversation), no train conversation prompt in a single-turn test
// file, and no chat_test prompt twice; a share above 0.5 is refused.
static void test_conversations(void **state) {
    char d0[128], d1[128];
    snprintf(d0, sizeof d0, "%s/chat0", tmpdir);
    snprintf(d1, sizeof d1, "%s/chat1", tmpdir);
    TasksSpec spec;
    TasksReport rep;
    spec_all(&spec, d0, 2, 1000, 64);
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    assert_int_equal(rep.written_chat, 0);
    spec_all(&spec, d1, 2, 1000, 64);
    spec.chat_share = 0.2;
    assert_int_equal(tasks_write_data(&spec, &rep), 0);
    assert_int_equal(rep.written_chat, 250);
    assert_int_equal(rep.written[TASKS_SFT_TRAIN], 1000);
    assert_int_equal(rep.written[TASKS_CHAT_TEST], 64);
    for (int k = 0; k < TASKS_N_FILES; k++)  // chat_test avoids the train conversations
        if (k != TASKS_SFT_TRAIN && k != TASKS_CHAT_TEST) assert_true(same_file(d0, d1, k));
    char p0[256], p1[256];
    snprintf(p0, sizeof p0, "%s/%s", d0, tasks_file_names[TASKS_SFT_TRAIN]);
    snprintf(p1, sizeof p1, "%s/%s", d1, tasks_file_names[TASKS_SFT_TRAIN]);
    long n0, n1;
    char *a = read_all(p0, &n0), *b = read_all(p1, &n1);
    assert_true(n1 > n0 && memcmp(a, b, (size_t)n0) == 0);  // the single-turn lines first
    free(a);
    free(b);

    SftSet train, test, sft_test;
    PrefSet pref_train;
    PromptSet ppo_train;
    char path[256];
    assert_int_equal(jsonl_read_sft(p1, &train), 0);
    snprintf(path, sizeof path, "%s/%s", d1, tasks_file_names[TASKS_CHAT_TEST]);
    assert_int_equal(jsonl_read_sft(path, &test), 0);
    snprintf(path, sizeof path, "%s/%s", d1, tasks_file_names[TASKS_SFT_TEST]);
    assert_int_equal(jsonl_read_sft(path, &sft_test), 0);
    snprintf(path, sizeof path, "%s/%s", d1, tasks_file_names[TASKS_PREF_TRAIN]);
    assert_int_equal(jsonl_read_prefs(path, &pref_train), 0);
    snprintf(path, sizeof path, "%s/%s", d1, tasks_file_names[TASKS_PPO_TRAIN]);
    assert_int_equal(jsonl_read_prompts(path, &ppo_train), 0);
    assert_int_equal(train.n, 1250);
    assert_int_equal(test.n, 64);
    int turn_counts[5] = {0};
    for (int s = 0; s < 2; s++) {
        const SftSet *set = s ? &test : &train;
        for (long i = s ? 0 : 1000; i < set->n; i++) {
            const SftExample *e = &set->ex[i];
            assert_true(e->n_turns >= 4 && e->n_turns <= 8 && e->n_turns % 2 == 0);
            assert_string_equal(e->family, "");
            if (s) {
                assert_int_equal(e->n_turns / 2, 2 + i % 3);
            } else {
                turn_counts[e->n_turns / 2]++;
            }
            for (int k = 0; k < e->n_turns; k += 2) {
                assert_int_equal(e->turns[k].role, TURN_USER);
                if (s) assert_string_equal(e->turns[k].family,
                                           tasks_families[(i + k / 2) % tasks_n_families].name);
                assert_int_equal(tasks_grade(e->turns[k].family, e->turns[k].text,
                                             e->turns[k + 1].text), 1);
            }
        }
    }
    for (int t = 2; t <= 4; t++) assert_true(turn_counts[t] > 50);  // all three lengths
    // no leaks either way: every train prompt and test prompt, sorted
    long nt = 0, ns = 0;
    const char **tr = mallocCheck(8000 * sizeof *tr), **te = mallocCheck(1000 * sizeof *te);
    for (long i = 0; i < train.n; i++)
        for (int k = 0; k < train.ex[i].n_turns; k += 2) tr[nt++] = train.ex[i].turns[k].text;
    for (long i = 0; i < pref_train.n; i++) tr[nt++] = pref_train.ex[i].prompt;
    for (long i = 0; i < ppo_train.n; i++) tr[nt++] = ppo_train.ex[i].prompt;
    qsort(tr, (size_t)nt, sizeof *tr, cmp_str);
    for (long i = 0; i < test.n; i++)
        for (int k = 0; k < test.ex[i].n_turns; k += 2) te[ns++] = test.ex[i].turns[k].text;
    qsort(te, (size_t)ns, sizeof *te, cmp_str);
    for (long i = 0; i < ns; i++) {
        assert_null(bsearch(&te[i], tr, (size_t)nt, sizeof *tr, cmp_str));
        if (i > 0) assert_int_not_equal(strcmp(te[i - 1], te[i]), 0);
    }
    for (long i = 1000; i < train.n; i++)
        for (int k = 0; k < train.ex[i].n_turns; k += 2)
            for (long j = 0; j < sft_test.n; j++)
                assert_int_not_equal(strcmp(train.ex[i].turns[k].text, sft_test.ex[j].turns[0].text), 0);
    free(tr);
    free(te);
    jsonl_free_sft(&train);
    jsonl_free_sft(&test);
    jsonl_free_sft(&sft_test);
    jsonl_free_prefs(&pref_train);
    jsonl_free_prompts(&ppo_train);
    remove_dir(d0);
    remove_dir(d1);
    spec.chat_share = 0.6;
    assert_int_equal(tasks_write_data(&spec, &rep), -1);
    assert_msg_has("chat share 0.6");
}

// --- tallies ------------------------------------------------------------------

// The labeler's ranks by hand: the right answer 0 (whitespace around it
// does not count), a wrong one its edit distance to the right answer, one
// that never ended TASKS_RANK_NO_END whatever its text; a prompt no family
// reads is -1.
static void test_rank_labels(void **state) {
    (void)state;
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "tenalp", 1), 0);
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "  tenalp ", 1), 0);
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "tenalp", 0), TASKS_RANK_NO_END);
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "tenapl", 1), 2);  // a swap
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "tenal", 1), 1);   // a drop
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "xtenalp", 1), 1); // an insert
    assert_int_equal(tasks_rank("reverse", "reverse: planet", "", 1), 6);
    assert_int_equal(tasks_rank("add", "what is 27 + 15?", "42", 1), 0);
    assert_int_equal(tasks_rank("add", "what is 27 + 15?", "43", 1), 1);
    assert_int_equal(tasks_rank("add", "what is 27 + 15?", "142", 1), 1);
    // far off: capped below the never-ending rank
    char longer[1200];
    memset(longer, 'z', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(tasks_rank("add", "what is 27 + 15?", longer, 1), TASKS_RANK_NO_END - 1);
    assert_int_equal(tasks_rank("add", "reverse: planet", "x", 1), -1);
    assert_int_equal(tasks_rank("nosuch", "what is 1 + 1?", "2", 1), -1);
}

// Comparisons from ranks: every differently ranked pair once, better
// chosen, in order; no noise, no flip and no random number drawn. With
// noise 0.3 over 20,000 comparisons of answers that all ended, the flipped
// share is within 4 standard deviations of 0.3 (binomial), the same seed
// flips the same pairs, and a pair with a never-ending answer is never
// flipped (its chosen side must end).
static void test_rank_pairs(void **state) {
    (void)state;
    const int ranks[5] = {3, 0, 3, 1000, 1};
    const int ended[5] = {1, 1, 1, 0, 1};
    int pairs[10][2];
    long flippable = 0, flipped = 0;
    Rng rng;
    rng_init(&rng, 7);
    const Rng before = rng;
    const int n = tasks_rank_pairs(ranks, ended, 5, 0.0, &rng, pairs, &flippable, &flipped);
    const int want[9][2] = {{1, 0}, {0, 3}, {4, 0}, {1, 2}, {1, 3}, {1, 4}, {2, 3}, {4, 2}, {4, 3}};
    assert_int_equal(n, 9);  // 10 pairs less the tie of answers 0 and 2
    for (int i = 0; i < n; i++) {
        assert_int_equal(pairs[i][0], want[i][0]);
        assert_int_equal(pairs[i][1], want[i][1]);
    }
    assert_int_equal(flippable, 5);  // the pairs without answer 3
    assert_int_equal(flipped, 0);
    assert_memory_equal(&rng, &before, sizeof rng);

    enum { K = 8, ROUNDS = 800 };  // 28 pairs each, ~25 differently ranked
    long fl = 0, fp = 0, fl2 = 0, fp2 = 0;
    Rng r1, r2, gen;
    rng_init(&r1, 11);
    rng_init(&r2, 11);
    rng_init(&gen, 12);
    int rk[K], all_ended[K], p1[K * (K - 1) / 2][2], p2[K * (K - 1) / 2][2];
    for (int j = 0; j < K; j++) all_ended[j] = 1;
    for (int round = 0; round < ROUNDS; round++) {
        for (int j = 0; j < K; j++) rk[j] = (int)rng_below(&gen, 20);
        const int m = tasks_rank_pairs(rk, all_ended, K, 0.3, &r1, p1, &fl, &fp);
        assert_int_equal(tasks_rank_pairs(rk, all_ended, K, 0.3, &r2, p2, &fl2, &fp2), m);
        assert_memory_equal(p1, p2, (size_t)m * sizeof p1[0]);
        for (int q = 0; q < m; q++) assert_true(rk[p1[q][0]] != rk[p1[q][1]]);
    }
    assert_int_equal(fl, fl2);
    assert_true(fl > 18000);
    const double sd = sqrt(fl * 0.3 * 0.7);
    if (getenv("RLHF_TEST_VERBOSE")) fprintf(stderr, "flipped %ld of %ld (sd %.1f)\n", fp, fl, sd);
    assert_true(fabs(fp - 0.3 * fl) <= 4 * sd);
    // with a never-ending answer in every pair nothing is flippable
    const int r3[2] = {0, 1000}, e3[2] = {1, 0};
    long f0 = 0, f1 = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(tasks_rank_pairs(r3, e3, 2, 0.49, &r1, p1, &f0, &f1), 1);
        assert_int_equal(p1[0][0], 0);
    }
    assert_int_equal(f0 + f1, 0);
}

static void test_tally(void **state) {
    TasksTally t;
    tasks_tally_init(&t);
    assert_int_equal(tasks_tally_add(&t, "reverse", "reverse: cat", "tac"), 1);
    assert_int_equal(tasks_tally_add(&t, "reverse", "reverse: dog", "dog"), 0);
    assert_int_equal(tasks_tally_add(&t, "add", "add: 1 + 2", "3"), 1);
    assert_int_equal(tasks_tally_add(&t, "nosuch", "x", "y"), -1);
    assert_int_equal(tasks_tally_add(&t, "add", "add: 1 + 2", "4"), 0);
    int rev = tasks_family_by_name("reverse"), add = tasks_family_by_name("add");
    assert_int_equal(t.total[rev], 2);
    assert_int_equal(t.correct[rev], 1);
    assert_int_equal(t.total[add], 2);
    assert_int_equal(t.ungraded, 1);
    assert_true(tasks_tally_accuracy(&t, rev) == 0.5);
    assert_true(tasks_tally_accuracy(&t, -1) == 0.5);
    assert_true(tasks_tally_accuracy(&t, tasks_family_by_name("sort")) == 0.0);

    char buf[1024] = "";
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    tasks_tally_print(&t, f);
    fclose(f);
    assert_non_null(strstr(buf, "  reverse     0.500  (1/2)\n"));
    assert_non_null(strstr(buf, "  add         0.500  (1/2)\n"));
    assert_non_null(strstr(buf, "  all         0.500  (2/4), 1 ungraded\n"));
    assert_null(strstr(buf, "sort"));  // families without responses are not listed
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_table),
        cmocka_unit_test(test_parse_families),
        cmocka_unit_test(test_generated_answers_grade_correct),
        cmocka_unit_test(test_rejected_grade_wrong),
        cmocka_unit_test(test_graders_near_misses),
        cmocka_unit_test(test_graders_reject_foreign_prompts),
        cmocka_unit_test(test_generator_deterministic),
        cmocka_unit_test(test_write_data_deterministic),
        cmocka_unit_test(test_files_read_back_without_leaks),
        cmocka_unit_test(test_write_data_errors),
        cmocka_unit_test(test_conversations),
        cmocka_unit_test(test_tally),
        cmocka_unit_test(test_rank_labels),
        cmocka_unit_test(test_rank_pairs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
