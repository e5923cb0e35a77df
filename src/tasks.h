// Task families for instruction tuning: tiny string and number puzzles with
// exactly one correct answer ("reverse: cat" -> "tac"), small enough for a
// char-level GPT with a 128-token context. Each family can generate an
// example from a seeded Rng, grade a response by re-deriving the answer from
// the prompt alone, and make a plausible wrong answer for preference pairs.
// tasks_write_data writes the train/test JSONL files `rlhf tasks` produces.
// Nothing here knows about models or tokenizers.
#ifndef RLHF_TASKS_H
#define RLHF_TASKS_H

#include <stdint.h>
#include <stdio.h>

#include "rng.h"

// Longest prompt, answer or rejected response, NUL included. Generated
// prompts stay under 64 bytes and answers under 24.
#define TASKS_TEXT_MAX 128
#define TASKS_MAX_FAMILIES 16

typedef struct {
    int family;  // index into tasks_families
    char prompt[TASKS_TEXT_MAX];
    char answer[TASKS_TEXT_MAX];
} TaskExample;

// How a rejected answer is wrong. RAMBLING is the correct answer followed
// by more words and no end-of-text token: the response a model gives when
// it does not know when to stop. The preference record marks it with
// "rejected_no_eot": true, because the missing end-of-text is a token, not
// text, and a string convention could collide with real responses.
typedef enum {
    TASKS_REJ_OFF_BY_ONE = 0,  // a number +-1, or one word too many/few
    TASKS_REJ_HALF_REVERSED,   // one half of the answer reversed
    TASKS_REJ_WRONG_CASE,      // letters in the wrong case
    TASKS_REJ_DROP_DUP,        // one character dropped or doubled
    TASKS_REJ_SWAP,            // two neighbouring characters swapped
    TASKS_REJ_RAMBLING,        // correct answer + extra words, no end-of-text
    TASKS_REJ_COUNT
} TaskRejectKind;

typedef struct {
    const char *name;     // "reverse"
    const char *example;  // "reverse: cat -> tac", for help texts
    // Fills prompt and answer (TASKS_TEXT_MAX bytes each).
    void (*generate)(Rng *rng, char *prompt, char *answer);
    // Writes the one correct answer for prompt into answer (TASKS_TEXT_MAX);
    // returns -1 with a reason if prompt is not a prompt of this family.
    int (*solve)(const char *prompt, char *answer);
    unsigned reject_kinds;  // bit (1u << kind) for each kind that fits
} TaskFamily;

extern const TaskFamily tasks_families[];
extern const int tasks_n_families;

// Index of the family called name, or -1 with a reason listing the names.
int tasks_family_by_name(const char *name);

// Parses "a,b,c" into family indices (no duplicates); an empty or NULL list
// means all families. Returns the count, or -1 with a reason.
int tasks_parse_families(const char *list, int idx[TASKS_MAX_FAMILIES]);

// One example of family f; consumes random numbers from rng only.
void tasks_generate(Rng *rng, int f, TaskExample *ex);

// Grades a response: the text the model produced up to, not including, the
// end-of-text token. Exact match after trimming surrounding whitespace.
// Returns 1 correct, 0 wrong, -1 with a reason if the family is unknown or
// the prompt is not one of its prompts.
int tasks_grade(const char *family, const char *prompt, const char *response);
int tasks_grade_index(int f, const char *prompt, const char *response);

// The labeler of `rlhf rank`: a response's rank among answers to the same
// prompt, smaller is better. 0 for the right answer; for a wrong one that
// ended (with end-of-text) its edit distance to the right answer (the
// Levenshtein distance over bytes, surrounding whitespace trimmed), capped
// at TASKS_RANK_NO_END - 1; TASKS_RANK_NO_END for one that never ended.
// -1 with a reason as tasks_grade.
#define TASKS_RANK_NO_END 1000
int tasks_rank(const char *family, const char *prompt, const char *response, int ended);

// The comparisons of k ranked answers to one prompt: every pair a < b with
// different ranks, the better ranked (smaller) one chosen, in order of
// (a, b). With noise > 0 a comparison of two answers that both ended is
// flipped with probability noise (one rng_float per such pair; a chosen
// answer must end). Writes (chosen, rejected) into pairs (room for
// k(k-1)/2) and returns their count; adds to *flippable and *flipped.
int tasks_rank_pairs(const int *ranks, const int *ended, int k, double noise, Rng *rng,
                     int (*pairs)[2], long *flippable, long *flipped);

// A plausible wrong response to ex, written to out (TASKS_TEXT_MAX). Picks a
// kind that fits the family (rambling about one time in four) and returns
// it; *no_eot is 1 for rambling, else 0. The result always grades 0.
int tasks_make_rejected(Rng *rng, const TaskExample *ex, char *out, int *no_eot);
const char *tasks_reject_kind_name(int kind);

// Per-family accuracy, for `rlhf eval` and the stages' held-out checks.
typedef struct {
    long correct[TASKS_MAX_FAMILIES];
    long total[TASKS_MAX_FAMILIES];
    long ungraded;  // unknown family or a prompt its grader cannot parse
} TasksTally;

void tasks_tally_init(TasksTally *t);
// Grades one response and counts it; returns the grade (1, 0 or -1).
int tasks_tally_add(TasksTally *t, const char *family, const char *prompt,
                    const char *response);
// Accuracy of family f, or of all graded responses when f < 0; 0 if none.
double tasks_tally_accuracy(const TasksTally *t, int f);
// One line per family that has responses, then the total.
void tasks_tally_print(const TasksTally *t, FILE *out);

// --- data files ------------------------------------------------------------
enum {
    TASKS_SFT_TRAIN,
    TASKS_SFT_TEST,
    TASKS_PREF_TRAIN,
    TASKS_PREF_TEST,
    TASKS_PPO_TRAIN,
    TASKS_PPO_TEST,
    TASKS_CHAT_TEST,
    TASKS_N_FILES
};
extern const char *const tasks_file_names[TASKS_N_FILES];  // "sft_train.jsonl", ...

// Conversations: 2 to 4 user turns, each a task question of its own (the
// turns do not refer to each other), answered correctly by the assistant.
// A user message carries its family ("family" in the JSONL), so that each
// turn can be graded.
#define TASKS_CHAT_MIN_TURNS 2
#define TASKS_CHAT_MAX_TURNS 4

typedef struct {
    const char *out_dir;  // created (with parents) if missing
    uint64_t seed;
    long n_train;  // examples in each *_train file
    long n_test;   // examples in each *_test file (conversations in chat_test)
    // Share of sft_train lines that are conversations, in [0, 0.5]: after
    // the n_train single-turn lines (the same bytes whatever the share)
    // come round(n_train * share / (1 - share)) conversations. 0: none, the
    // file is single-turn only.
    double chat_share;
    int families[TASKS_MAX_FAMILIES];
    int n_families;  // families cycle in this order: example i is families[i % n]
} TasksSpec;

// Conversations mixed into sft_train for a spec.
long tasks_chat_train_count(const TasksSpec *spec);

typedef struct {
    long written[TASKS_N_FILES];  // lines per file (sft_train: single-turn ones)
    long written_chat;            // conversations mixed into sft_train
    long dropped[TASKS_N_FILES];  // test candidates dropped: prompt already in train
} TasksReport;

// Writes the files of tasks_file_names into spec->out_dir. Each file has
// its own random stream derived from the seed (the conversations of
// sft_train one more), so the same spec gives byte-identical files, and
// the single-turn files do not depend on chat_share. No prompt of a test
// file occurs in any train file (conversations included). chat_test holds n_test
// conversations, the turn count cycling 2, 3, 4 and turn k of conversation
// i asking family families[(i + k) % n], so that each turn index sees the
// families in equal shares; train conversations draw both at random.
// All files are written to .tmp first and renamed only when all succeeded.
// Returns -1 with a reason (bad spec, I/O error, a family whose prompts run
// out before the test split is full).
int tasks_write_data(const TasksSpec *spec, TasksReport *report);

#endif
