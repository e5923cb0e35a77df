// JSONL data files: reading SFT examples, preference pairs and PPO prompts,
// and writing them back one object per line; plus a writer for one-line
// JSON documents (the stored config, eval --json) and a reader for the
// two-level config object. jsonl.c is the only file that knows cJSON. It
// checks shape, types and UTF-8; it does not tokenize or check lengths
// against a context (the stages do, naming ex->line).
//
// Every reader returns 0, or -1 with one line "FILE:LINE: what; hint: ..."
// in rlhf_errmsg. Strings in the structs are NUL-terminated UTF-8 owned by
// the set; optional strings are "" when absent, never NULL.
#ifndef RLHF_JSONL_H
#define RLHF_JSONL_H

#include <stdint.h>
#include <stdio.h>

#include "common.h"

enum { TURN_USER = 0, TURN_ASSISTANT = 1 };

typedef struct {
    int role;      // TURN_USER | TURN_ASSISTANT
    char *text;    // owned
    char *family;  // a user turn's task family ("family" of its message), for
                   // grading turn by turn; "" (or NULL in a Turn built by
                   // hand) when none. Owned when read.
} Turn;

// One SFT example as a conversation: turns alternate user/assistant,
// starting with user and ending with assistant (n_turns even, >= 2). Every
// assistant turn is a response. A {"prompt","response"} or Alpaca line is
// two turns; a chat line's "system" message is folded into the first user
// turn as "SYSTEM\n\nUSER".
typedef struct {
    Turn *turns;
    int n_turns;
    char *family;  // task family for grading, "" if none
    char *answer;  // expected answer for grading, "" if none
    int line;      // 1-based line in the file, for later error messages
} SftExample;

typedef struct {
    SftExample *ex;
    long n;
    char *path;  // the file it came from
} SftSet;

// A multi-turn prompt (PPO prompts, preference pairs): the conversation so
// far, `history` (n_history turns alternating user, assistant, starting
// with user and ending with assistant; NULL and 0 for a single turn), then
// the last user turn `prompt`, which is the one answered and graded.
//
// {"prompt","chosen","rejected"} plus optional "family", "rejected_kind"
// and "rejected_no_eot". rejected_no_eot = true says the rejected response
// ends without an end-of-text token (a rambling answer cut off by the
// length limit); absent means false, so TRL / HH-style files need nothing.
// Grouped comparisons (`rlhf rank`) add "group" (an integer id shared by
// every pair of one prompt's ranked responses) and "ranks" ([chosen,
// rejected], the grader's ranks: 0 for a right answer, larger for worse
// ones, never equal; chosen's is the larger only where a noisy labeler
// flipped the pair). Either every line of a file has a group or none has.
// A multi-turn pair gives "prompt" as an array of messages ending with a
// user message (TRL's conversational form); "chosen" and "rejected" are then
// strings or one-message arrays [{"role":"assistant","content":"..."}].
typedef struct {
    char *prompt;         // the last user turn
    char *chosen;
    char *rejected;
    char *family;         // "" if none
    char *rejected_kind;  // how the rejected answer is wrong, "" if unknown
    int rejected_no_eot;  // 0 | 1
    long group;           // -1 if none
    int ranks[2];         // chosen's and rejected's rank; -1 if none
    int line;
    Turn *history;        // the turns before prompt, owned; NULL if none
    int n_history;
} PrefExample;

typedef struct {
    PrefExample *ex;
    long n;
    char *path;
} PrefSet;

// {"prompt"} plus optional "answer" and "family"; a multi-turn prompt is
// {"messages":[...]} or {"prompt":[...]}, messages ending with the user
// message to answer (answer and family are about that one; without a
// top-level "family" the last user message's "family" is taken).
typedef struct {
    char *prompt;  // the last user turn
    char *answer;  // "" if none
    char *family;  // "" if none
    int line;
    Turn *history; // the turns before prompt, owned; NULL if none
    int n_history;
} PromptExample;

typedef struct {
    PromptExample *ex;
    long n;
    char *path;
} PromptSet;

// Readers. On success *set owns everything (free with the matching
// jsonl_free_*); on failure *set is left empty and needs no free (freeing
// it anyway is harmless). Blank lines are skipped; a file without any
// example is an error.
int jsonl_read_sft(const char *path, SftSet *set);
// Offset of the first byte of s[0..n) that does not start a valid UTF-8
// sequence (the readers refuse such a line), or -1 if all is valid.
long utf8_invalid_at(const unsigned char *s, size_t n);
int jsonl_read_prefs(const char *path, PrefSet *set);
int jsonl_read_prompts(const char *path, PromptSet *set);

void jsonl_free_sft(SftSet *set);
void jsonl_free_prefs(PrefSet *set);
void jsonl_free_prompts(PromptSet *set);

// --- writing -------------------------------------------------------------
// A file written atomically (common.h's AtomicFile): lines go to PATH.tmp;
// commit fsyncs it, renames it over PATH and fsyncs the directory; abort
// removes PATH.tmp. So PATH is either the old file or the complete new one.
typedef struct {
    AtomicFile file;
    long n;  // lines written so far
} JsonlWriter;

int jsonl_writer_open(JsonlWriter *w, const char *path);
// Returns -1 with a reason if writing, syncing or renaming fails (PATH.tmp
// is then removed). Frees w's resources either way.
int jsonl_writer_commit(JsonlWriter *w);
// Safe on a writer that failed to open or was already committed.
void jsonl_writer_abort(JsonlWriter *w);

// One line each, fields in a fixed order, optional fields written only when
// non-empty. An SFT example of two turns is written as
// {"prompt","response"[,"family"][,"answer"]}, a longer one as
// {"messages":[...][,"family"][,"answer"]}, each message {"role","content"
// [,"family"]}. A preference line is
// {"prompt","chosen","rejected"[,"family"],"rejected_no_eot"[,"rejected_kind"]
// [,"group","ranks"]} (rejected_no_eot always, so every generated line has
// the same keys; group and ranks when group >= 0); a prompt line
// {"prompt"[,"answer"][,"family"]}. A prompt with a history is written as
// "prompt": [messages...] ending with it. Return -1 if writing fails.
int jsonl_write_sft(JsonlWriter *w, const SftExample *ex);
int jsonl_write_pref(JsonlWriter *w, const PrefExample *ex);
int jsonl_write_prompt(JsonlWriter *w, const PromptExample *ex);

// --- writing one JSON document ---------------------------------------------
// A JSON value built in memory and printed as one compact line (no blanks,
// keys in the order they were added, strings escaped by cJSON): what
// config_to_json and `rlhf eval --json` write. Building cannot fail: memory
// comes from mallocCheck. Every add takes the parent (an object or array
// made here) and a key: the member name in an object, NULL in an array.
typedef struct JsonOut JsonOut;

// A new, empty object; the root of a document. Free it with json_out_free.
JsonOut *json_out_object(void);
// A new, empty object or array inside parent, owned by it.
JsonOut *json_out_add_object(JsonOut *parent, const char *key);
JsonOut *json_out_add_array(JsonOut *parent, const char *key);
void json_out_add_string(JsonOut *parent, const char *key, const char *s);
void json_out_add_bool(JsonOut *parent, const char *key, int b);
void json_out_add_null(JsonOut *parent, const char *key);
void json_out_add_int(JsonOut *parent, const char *key, int64_t v);
// v as printf's "%.*g" with `digits` significant digits; null when v is not
// finite (JSON has no inf or nan).
void json_out_add_number(JsonOut *parent, const char *key, double v, int digits);
// A number the caller has formatted (e.g. the shortest text that reads back
// as the same double), written as is. It must be a finite JSON number.
void json_out_add_number_text(JsonOut *parent, const char *key, const char *text);
// The document as one line, without a newline; the caller frees it.
char *json_out_print(const JsonOut *root);
// Frees a root and everything in it. Safe on NULL.
void json_out_free(JsonOut *root);

// --- a two-level JSON object --------------------------------------------
// {"section":{"key":scalar,...},...} (what config_to_json writes),
// flattened in file order. value holds a string's text, or a number, true,
// false or null as cJSON prints it. Returns -1 with a reason when the text
// is not JSON of that shape. Free with json_entries_free.
typedef struct {
    char *section, *key, *value;
} JsonEntry;

typedef struct {
    JsonEntry *e;
    int n;
} JsonEntries;

int json_entries_parse(const char *json, JsonEntries *out);
// The entry section.key, or NULL.
const JsonEntry *json_entries_find(const JsonEntries *es, const char *section, const char *key);
void json_entries_free(JsonEntries *es);

#endif
