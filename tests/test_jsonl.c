// Tests for jsonl.c: every fixture under tests/fixtures/jsonl/ parses to the
// right turns and fields; every malformed file fails naming the file and
// the line; UTF-8 edge cases, long lines, CRLF and writer round trips use
// files in a mkdtemp directory. Run from the repository root (make test).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "jsonl.h"

#define FIX "tests/fixtures/jsonl/"

static char tmpdir[64];
static char tmp_path[128];

static int group_setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rlhf_test_jsonl_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(tmp_path, sizeof tmp_path, "%s/data.jsonl", tmpdir);
    return 0;
}

static int group_teardown(void **state) {
    remove(tmp_path);
    return rmdir(tmpdir);
}

// Writes n bytes to tmp_path and returns the path.
static const char *write_tmp(const char *bytes, size_t n) {
    FILE *f = fopen(tmp_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return tmp_path;
}

static const char *write_tmp_str(const char *text) { return write_tmp(text, strlen(text)); }

static void assert_msg_has(const char *want) {
    if (!strstr(rlhf_errmsg, want)) fail_msg("message \"%s\" lacks \"%s\"", rlhf_errmsg, want);
}

// The message starts with "PATH:LINE: ", mentions `want`, has a hint, and
// is one line.
static void assert_error_at(const char *path, int line, const char *want) {
    char where[256];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    if (strncmp(rlhf_errmsg, where, strlen(where)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", rlhf_errmsg, where);
    assert_msg_has(want);
    assert_msg_has("; hint: ");
    assert_null(strchr(rlhf_errmsg, '\n'));
}

static void expect_sft_error(const char *path, int line, const char *want) {
    SftSet set;
    rlhf_errmsg[0] = '\0';
    assert_int_equal(jsonl_read_sft(path, &set), -1);
    assert_int_equal(set.n, 0);
    assert_null(set.ex);
    assert_error_at(path, line, want);
}

static void assert_turn(const SftExample *ex, int i, int role, const char *text) {
    assert_true(i < ex->n_turns);
    assert_int_equal(ex->turns[i].role, role);
    assert_string_equal(ex->turns[i].text, text);
}

// --- well-formed fixtures --------------------------------------------------

static void test_prompt_response(void **state) {
    SftSet set;
    assert_int_equal(jsonl_read_sft(FIX "sft_prompt_response.jsonl", &set), 0);
    assert_int_equal(set.n, 3);
    assert_string_equal(set.path, FIX "sft_prompt_response.jsonl");
    assert_int_equal(set.ex[0].n_turns, 2);
    assert_turn(&set.ex[0], 0, TURN_USER, "reverse: cat");
    assert_turn(&set.ex[0], 1, TURN_ASSISTANT, "tac");
    assert_string_equal(set.ex[0].family, "");
    assert_string_equal(set.ex[0].answer, "");
    assert_int_equal(set.ex[0].line, 1);
    // line 2 is blank: the second example is on line 3
    assert_int_equal(set.ex[1].line, 3);
    assert_string_equal(set.ex[1].family, "add");
    assert_string_equal(set.ex[1].answer, "5");
    // multi-byte UTF-8 passes through unchanged (2- and 4-byte sequences)
    assert_turn(&set.ex[2], 1, TURN_ASSISTANT, "Salut, \xc3\xa7" "a va ? \xf0\x9f\x98\x80");
    jsonl_free_sft(&set);
    assert_null(set.ex);
    jsonl_free_sft(&set);  // a second free is harmless
}

static void test_alpaca(void **state) {
    SftSet set;
    assert_int_equal(jsonl_read_sft(FIX "sft_alpaca.jsonl", &set), 0);
    assert_int_equal(set.n, 3);
    assert_turn(&set.ex[0], 0, TURN_USER, "Reverse the word.\n\ncat");
    assert_turn(&set.ex[0], 1, TURN_ASSISTANT, "tac");
    assert_turn(&set.ex[1], 0, TURN_USER, "Name a color.");  // empty input: no "\n\n"
    assert_turn(&set.ex[1], 1, TURN_ASSISTANT, "blue");
    assert_turn(&set.ex[2], 0, TURN_USER, "Name a fruit.");  // no input at all
    assert_turn(&set.ex[2], 1, TURN_ASSISTANT, "apple");
    jsonl_free_sft(&set);
}

static void test_chat(void **state) {
    SftSet set;
    assert_int_equal(jsonl_read_sft(FIX "sft_chat.jsonl", &set), 0);
    assert_int_equal(set.n, 2);
    // the system message is folded into the first user turn
    assert_int_equal(set.ex[0].n_turns, 2);
    assert_turn(&set.ex[0], 0, TURN_USER, "Be brief.\n\nreverse: cat");
    assert_turn(&set.ex[0], 1, TURN_ASSISTANT, "tac");
    assert_int_equal(set.ex[1].n_turns, 4);
    assert_turn(&set.ex[1], 0, TURN_USER, "hi");
    assert_turn(&set.ex[1], 1, TURN_ASSISTANT, "hello");
    assert_turn(&set.ex[1], 2, TURN_USER, "add: 1 + 1");
    assert_turn(&set.ex[1], 3, TURN_ASSISTANT, "2");
    assert_string_equal(set.ex[1].answer, "2");
    jsonl_free_sft(&set);
}

static void test_prefs(void **state) {
    PrefSet set;
    assert_int_equal(jsonl_read_prefs(FIX "prefs.jsonl", &set), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.ex[0].prompt, "reverse: cat");
    assert_string_equal(set.ex[0].chosen, "tac");
    assert_string_equal(set.ex[0].rejected, "cta");
    assert_string_equal(set.ex[0].family, "");
    assert_int_equal(set.ex[0].rejected_no_eot, 0);  // absent means it ends normally
    assert_string_equal(set.ex[1].family, "add");
    assert_string_equal(set.ex[1].rejected_kind, "rambling");
    assert_int_equal(set.ex[1].rejected_no_eot, 1);
    assert_int_equal(set.ex[1].line, 2);
    jsonl_free_prefs(&set);
}

static void test_prompts(void **state) {
    PromptSet set;
    assert_int_equal(jsonl_read_prompts(FIX "prompts.jsonl", &set), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.ex[0].prompt, "reverse: dog");
    assert_string_equal(set.ex[0].answer, "");
    assert_string_equal(set.ex[0].family, "");
    assert_string_equal(set.ex[1].answer, "5");
    assert_string_equal(set.ex[1].family, "add");
    jsonl_free_prompts(&set);
}

// An SFT file is also a valid prompt file (extra fields are ignored), so a
// PPO run can take its prompts from SFT data.
static void test_prompts_ignore_extra_fields(void **state) {
    PromptSet set;
    assert_int_equal(jsonl_read_prompts(FIX "sft_prompt_response.jsonl", &set), 0);
    assert_int_equal(set.n, 3);
    assert_string_equal(set.ex[1].prompt, "add: 2 + 3");
    assert_string_equal(set.ex[1].answer, "5");
    jsonl_free_prompts(&set);
}

// --- malformed fixtures ----------------------------------------------------

static void test_missing_file(void **state) {
    SftSet set;
    assert_int_equal(jsonl_read_sft(FIX "no_such_file.jsonl", &set), -1);
    assert_msg_has(FIX "no_such_file.jsonl: cannot open");
    assert_msg_has("hint:");
}

static void test_bad_json(void **state) {
    expect_sft_error(FIX "bad_json.jsonl", 3, "bad JSON near column");
}

static void test_missing_field(void **state) {
    expect_sft_error(FIX "missing_field.jsonl", 2, "missing field \"response\"");
}

static void test_wrong_type(void **state) {
    expect_sft_error(FIX "wrong_type.jsonl", 3, "\"prompt\" is a number, expected a string");
}

static void test_empty_file(void **state) {
    expect_sft_error(FIX "empty.jsonl", 1, "no examples (the file is empty)");
    expect_sft_error(FIX "blank_only.jsonl", 3, "no examples");
    PrefSet p;
    assert_int_equal(jsonl_read_prefs(FIX "empty.jsonl", &p), -1);
    PromptSet q;
    assert_int_equal(jsonl_read_prompts(FIX "blank_only.jsonl", &q), -1);
}

static void test_bad_utf8_fixture(void **state) {
    // "caf\xe9": latin-1 e-acute, byte 0xE9 at column 16
    expect_sft_error(FIX "bad_utf8.jsonl", 2, "invalid UTF-8 at column 16");
}

static void test_chat_bad_order(void **state) {
    expect_sft_error(FIX "chat_bad_order.jsonl", 2, "messages[0] has role \"assistant\"");
    expect_sft_error(FIX "chat_ends_user.jsonl", 1, "last message has role \"user\"");
}

static void test_mixed_and_unknown(void **state) {
    expect_sft_error(FIX "mixed_formats.jsonl", 1, "mixes formats");
    expect_sft_error(FIX "unknown_structure.jsonl", 1, "unknown structure (keys: question, reply)");
    expect_sft_error(FIX "not_object.jsonl", 2, "is an array, expected a JSON object");
}

static void test_pref_errors(void **state) {
    PrefSet set;
    assert_int_equal(jsonl_read_prefs(FIX "pref_missing_rejected.jsonl", &set), -1);
    assert_error_at(FIX "pref_missing_rejected.jsonl", 2, "missing field \"rejected\"");
    assert_int_equal(jsonl_read_prefs(FIX "pref_bad_no_eot.jsonl", &set), -1);
    assert_error_at(FIX "pref_bad_no_eot.jsonl", 1, "expected true or false");
    // an SFT line is not a preference pair
    assert_int_equal(jsonl_read_prefs(FIX "sft_alpaca.jsonl", &set), -1);
    assert_error_at(FIX "sft_alpaca.jsonl", 1, "missing field \"prompt\"");
}

static void test_prompt_errors(void **state) {
    PromptSet set;
    assert_int_equal(jsonl_read_prompts(FIX "prompts_answer_number.jsonl", &set), -1);
    assert_error_at(FIX "prompts_answer_number.jsonl", 2, "\"answer\" is a number");
    // an SFT conversation ends with the answer; a prompt's with the question
    assert_int_equal(jsonl_read_prompts(FIX "sft_chat.jsonl", &set), -1);
    assert_error_at(FIX "sft_chat.jsonl", 1, "the last message of \"messages\" has role "
                                             "\"assistant\"");
}

// --- in-memory cases -------------------------------------------------------

// Each bad byte sequence inside the prompt string fails at line 2, column 13
// (`{"prompt": "` is 12 bytes).
static void test_utf8_edge_cases(void **state) {
    static const char *const bad[] = {
        "\xc0\xaf",          // overlong '/'
        "\xc1\xbf",          // overlong 2-byte
        "\xe0\x80\xaf",      // overlong 3-byte
        "\xf0\x80\x80\xaf",  // overlong 4-byte
        "\xed\xa0\x80",      // UTF-16 surrogate U+D800
        "\xed\xbf\xbf",      // surrogate U+DFFF
        "\xf4\x90\x80\x80",  // U+110000, above the last code point
        "\xf5\x80\x80\x80",  // lead byte F5 can never start a sequence
        "\xff",              // never valid
        "\x80",              // stray continuation byte
        "\xe2\x82",          // truncated 3-byte sequence (followed by '"')
        "\xf0\x9f\x98",      // truncated 4-byte sequence
        "\xc3",              // truncated 2-byte sequence
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"prompt\": \"ok\", \"response\": \"ok\"}\n"
                 "{\"prompt\": \"%s\", \"response\": \"x\"}\n",
                 bad[i]);
        const char *path = write_tmp_str(text);
        expect_sft_error(path, 2, "invalid UTF-8 at column 13");
    }
    // truncated at the very end of the file (no newline, no closing quote)
    const char *path = write_tmp_str("{\"prompt\": \"\xe2\x82");
    expect_sft_error(path, 1, "invalid UTF-8 at column 13");

    // the boundary cases that are valid
    static const char *const good[] = {"\xc2\x80", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
                                       "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xe2\x82\xac"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"prompt\": \"%s\", \"response\": \"x\"}\n", good[i]);
        SftSet set;
        if (jsonl_read_sft(write_tmp_str(text), &set) != 0) fail_msg("%s", rlhf_errmsg);
        assert_string_equal(set.ex[0].turns[0].text, good[i]);
        jsonl_free_sft(&set);
    }
}

static void test_nul_bytes(void **state) {
    // a raw NUL byte in a line
    static const char raw[] = "{\"prompt\": \"a\0b\", \"response\": \"x\"}\n";
    expect_sft_error(write_tmp(raw, sizeof raw - 1), 1, "NUL byte at column 14");
    // a \u0000 escape would silently cut the text short
    expect_sft_error(write_tmp_str("{\"prompt\": \"a\\u0000b\", \"response\": \"x\"}\n"), 1,
                     "\\u0000 escape at column 14");
    // but an escaped backslash followed by u0000 is plain text
    SftSet set;
    assert_int_equal(
        jsonl_read_sft(write_tmp_str("{\"prompt\": \"a\\\\u0000\", \"response\": \"x\"}\n"), &set),
        0);
    assert_string_equal(set.ex[0].turns[0].text, "a\\u0000");
    jsonl_free_sft(&set);
}

static void test_crlf_and_escapes(void **state) {
    const char *text = "{\"prompt\": \"line1\\nline2 \\\"q\\\" \\u00e9\", \"response\": \"ok\"}\r\n"
                       "\r\n"
                       "{\"prompt\": \"b\", \"response\": \"c\"}\r\n";
    SftSet set;
    assert_int_equal(jsonl_read_sft(write_tmp_str(text), &set), 0);
    assert_int_equal(set.n, 2);
    assert_string_equal(set.ex[0].turns[0].text, "line1\nline2 \"q\" \xc3\xa9");
    assert_int_equal(set.ex[1].line, 3);
    jsonl_free_sft(&set);
    // a byte order mark before the first line is skipped
    assert_int_equal(
        jsonl_read_sft(write_tmp_str("\xef\xbb\xbf{\"prompt\": \"a\", \"response\": \"b\"}\n"), &set),
        0);
    assert_string_equal(set.ex[0].turns[0].text, "a");
    jsonl_free_sft(&set);
}

// No fixed line buffer: a 1 MiB response reads back whole.
static void test_long_line(void **state) {
    size_t n = 1 << 20;
    char *text = mallocCheck(n + 64);
    int k = sprintf(text, "{\"prompt\": \"p\", \"response\": \"");
    memset(text + k, 'x', n);
    strcpy(text + k + n, "\"}\n");
    SftSet set;
    assert_int_equal(jsonl_read_sft(write_tmp_str(text), &set), 0);
    assert_int_equal(strlen(set.ex[0].turns[1].text), n);
    jsonl_free_sft(&set);
    free(text);
}

static void test_more_line_errors(void **state) {
    // trailing garbage after the object
    expect_sft_error(write_tmp_str("{\"prompt\": \"a\", \"response\": \"b\"} x\n"), 1, "bad JSON");
    // a key given twice
    expect_sft_error(write_tmp_str("{\"prompt\": \"a\", \"prompt\": \"b\", \"response\": \"c\"}\n"),
                     1, "\"prompt\" appears twice");
    // a chat message without content, a bad role, a late system message
    expect_sft_error(write_tmp_str("{\"messages\": [{\"role\": \"user\"}]}\n"), 1,
                     "messages[0]: missing field \"content\"");
    expect_sft_error(write_tmp_str("{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n"),
                     1, "unknown role \"bot\"");
    expect_sft_error(write_tmp_str("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, "
                                   "{\"role\": \"system\", \"content\": \"b\"}]}\n"),
                     1, "messages[1] has role \"system\"");
    expect_sft_error(write_tmp_str("{\"messages\": []}\n"), 1, "\"messages\" is empty");
    expect_sft_error(write_tmp_str("{\"messages\": \"hi\"}\n"), 1, "is a string, expected an array");
    expect_sft_error(write_tmp_str("{\"instruction\": \"a\", \"input\": 3, \"output\": \"b\"}\n"), 1,
                     "\"input\" is a number");
    expect_sft_error(write_tmp_str("{\"prompt\": \"a\", \"response\": \"b\", \"family\": 1}\n"), 1,
                     "\"family\" is a number");
    expect_sft_error(write_tmp_str("\"just a string\"\n"), 1, "is a string, expected a JSON object");
}

// Writers: what the writers produce, the readers read back the same, and a
// committed file replaces the old one only at commit.
static void test_write_read_roundtrip(void **state) {
    JsonlWriter w;
    char path[160];
    snprintf(path, sizeof path, "%s/out.jsonl", tmpdir);
    assert_int_equal(jsonl_writer_open(&w, path), 0);
    Turn two[2] = {{TURN_USER, "reverse: \"cat\"\n\xc3\xa9", NULL}, {TURN_ASSISTANT, "tac", NULL}};
    SftExample a = {two, 2, "reverse", "", 0};
    Turn four[4] = {{TURN_USER, "hi", NULL}, {TURN_ASSISTANT, "hello", NULL}, {TURN_USER, "x", NULL},
                    {TURN_ASSISTANT, "y", NULL}};
    SftExample b = {four, 4, "", "y", 0};
    assert_int_equal(jsonl_write_sft(&w, &a), 0);
    assert_int_equal(jsonl_write_sft(&w, &b), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);  // nothing at PATH before commit
    assert_int_equal(jsonl_writer_commit(&w), 0);
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(stat(tmp, &st), -1);  // no .tmp left behind

    FILE *f = fopen(path, "rb");
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "{\"prompt\":\"reverse: \\\"cat\\\"\\n\xc3\xa9\",\"response\":\"tac\","
                              "\"family\":\"reverse\"}\n");
    fclose(f);

    SftSet set;
    assert_int_equal(jsonl_read_sft(path, &set), 0);
    assert_int_equal(set.n, 2);
    assert_turn(&set.ex[0], 0, TURN_USER, two[0].text);
    assert_string_equal(set.ex[0].family, "reverse");
    assert_int_equal(set.ex[1].n_turns, 4);
    assert_turn(&set.ex[1], 3, TURN_ASSISTANT, "y");
    assert_string_equal(set.ex[1].answer, "y");
    jsonl_free_sft(&set);

    assert_int_equal(jsonl_writer_open(&w, path), 0);
    PrefExample p = {"p", "c", "r", "fam", "rambling", 1, -1, {-1, -1}, 0, NULL, 0};
    assert_int_equal(jsonl_write_pref(&w, &p), 0);
    jsonl_writer_abort(&w);  // the SFT file stays as it was
    assert_int_equal(stat(tmp, &st), -1);
    assert_int_equal(jsonl_read_sft(path, &set), 0);
    assert_int_equal(set.n, 2);
    jsonl_free_sft(&set);

    assert_int_equal(jsonl_writer_open(&w, path), 0);
    assert_int_equal(jsonl_write_pref(&w, &p), 0);
    assert_int_equal(jsonl_writer_commit(&w), 0);
    f = fopen(path, "rb");
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "{\"prompt\":\"p\",\"chosen\":\"c\",\"rejected\":\"r\",\"family\":"
                              "\"fam\",\"rejected_no_eot\":true,\"rejected_kind\":\"rambling\"}\n");
    fclose(f);
    PrefSet ps;
    assert_int_equal(jsonl_read_prefs(path, &ps), 0);
    assert_int_equal(ps.ex[0].rejected_no_eot, 1);
    assert_string_equal(ps.ex[0].rejected_kind, "rambling");
    jsonl_free_prefs(&ps);

    assert_int_equal(jsonl_writer_open(&w, path), 0);
    PromptExample q = {"add: 1 + 2", "3", "add", 0, NULL, 0};
    assert_int_equal(jsonl_write_prompt(&w, &q), 0);
    assert_int_equal(jsonl_writer_commit(&w), 0);
    PromptSet qs;
    assert_int_equal(jsonl_read_prompts(path, &qs), 0);
    assert_string_equal(qs.ex[0].prompt, "add: 1 + 2");
    assert_string_equal(qs.ex[0].answer, "3");
    assert_string_equal(qs.ex[0].family, "add");
    jsonl_free_prompts(&qs);

    // multi-turn: the history goes out as messages ending with the prompt,
    // and reads back as it was
    Turn hist[2] = {{TURN_USER, "reverse: cat", "reverse"}, {TURN_ASSISTANT, "tac", NULL}};
    PromptExample mq = {"add: 1 + 2", "3", "add", 0, hist, 2};
    PrefExample mp = {"add: 1 + 2", "3", "4", "add", "off_by_one", 0, -1, {-1, -1}, 0, hist, 2};
    for (int kind = 0; kind < 2; kind++) {
        assert_int_equal(jsonl_writer_open(&w, path), 0);
        assert_int_equal(kind ? jsonl_write_pref(&w, &mp) : jsonl_write_prompt(&w, &mq), 0);
        assert_int_equal(jsonl_writer_commit(&w), 0);
        f = fopen(path, "rb");
        assert_non_null(fgets(line, sizeof line, f));
        fclose(f);
        assert_non_null(strstr(line, "{\"prompt\":[{\"role\":\"user\",\"content\":\"reverse: cat\","
                                     "\"family\":\"reverse\"},{\"role\":\"assistant\",\"content\":"
                                     "\"tac\"},{\"role\":\"user\",\"content\":\"add: 1 + 2\"}]"));
        const Turn *h;
        int nh;
        if (kind) {
            assert_int_equal(jsonl_read_prefs(path, &ps), 0);
            assert_string_equal(ps.ex[0].prompt, "add: 1 + 2");
            assert_string_equal(ps.ex[0].rejected, "4");
            h = ps.ex[0].history, nh = ps.ex[0].n_history;
        } else {
            assert_int_equal(jsonl_read_prompts(path, &qs), 0);
            assert_string_equal(qs.ex[0].prompt, "add: 1 + 2");
            assert_string_equal(qs.ex[0].family, "add");
            h = qs.ex[0].history, nh = qs.ex[0].n_history;
        }
        assert_int_equal(nh, 2);
        assert_true(h[0].role == TURN_USER && h[1].role == TURN_ASSISTANT);
        assert_string_equal(h[0].text, "reverse: cat");
        assert_string_equal(h[0].family, "reverse");
        assert_string_equal(h[1].text, "tac");
        if (kind) jsonl_free_prefs(&ps);
        else jsonl_free_prompts(&qs);
    }
    remove(path);
}

static void test_writer_bad_dir(void **state) {
    JsonlWriter w;
    assert_int_equal(jsonl_writer_open(&w, "/nonexistent_dir_rlhf/x.jsonl"), -1);
    assert_msg_has("/nonexistent_dir_rlhf/x.jsonl.tmp: cannot create");
    jsonl_writer_abort(&w);  // harmless after a failed open
}

// The JSON writer: key order, escapes, exact integers, chosen digits, null
// for what JSON cannot hold, nesting; the text reads back with
// json_entries_parse.
static void test_json_out(void **state) {
    JsonOut *root = json_out_object();
    JsonOut *a = json_out_add_object(root, "a");
    json_out_add_string(a, "s", "q\"b\\c\n\x01\xc3\xa9");
    json_out_add_int(a, "big", INT64_MIN);
    json_out_add_number(a, "x", 1.0 / 3.0, 9);
    json_out_add_number(a, "inf", INFINITY, 9);
    json_out_add_number_text(a, "exact", "0.30000000000000004");
    json_out_add_bool(a, "t", 1);
    json_out_add_null(a, "n");
    JsonOut *arr = json_out_add_array(root, "list");
    json_out_add_int(arr, NULL, 1);
    JsonOut *inner = json_out_add_object(arr, NULL);
    json_out_add_bool(inner, "f", 0);
    char *text = json_out_print(root);
    json_out_free(root);
    assert_string_equal(text,
                        "{\"a\":{\"s\":\"q\\\"b\\\\c\\n\\u0001\xc3\xa9\","
                        "\"big\":-9223372036854775808,\"x\":0.333333333,\"inf\":null,"
                        "\"exact\":0.30000000000000004,\"t\":true,\"n\":null},"
                        "\"list\":[1,{\"f\":false}]}");
    free(text);

    // a two-level document reads back, strings unescaped
    root = json_out_object();
    a = json_out_add_object(root, "sec");
    json_out_add_string(a, "k", "line\nbreak \"quoted\"");
    json_out_add_int(a, "i", 42);
    text = json_out_print(root);
    json_out_free(root);
    JsonEntries es;
    assert_int_equal(json_entries_parse(text, &es), 0);
    assert_int_equal(es.n, 2);
    assert_string_equal(json_entries_find(&es, "sec", "k")->value, "line\nbreak \"quoted\"");
    assert_string_equal(json_entries_find(&es, "sec", "i")->value, "42");
    json_entries_free(&es);
    free(text);
    json_out_free(NULL);  // safe
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_response),
        cmocka_unit_test(test_alpaca),
        cmocka_unit_test(test_chat),
        cmocka_unit_test(test_prefs),
        cmocka_unit_test(test_prompts),
        cmocka_unit_test(test_prompts_ignore_extra_fields),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_bad_utf8_fixture),
        cmocka_unit_test(test_chat_bad_order),
        cmocka_unit_test(test_mixed_and_unknown),
        cmocka_unit_test(test_pref_errors),
        cmocka_unit_test(test_prompt_errors),
        cmocka_unit_test(test_utf8_edge_cases),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_crlf_and_escapes),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_more_line_errors),
        cmocka_unit_test(test_write_read_roundtrip),
        cmocka_unit_test(test_writer_bad_dir),
        cmocka_unit_test(test_json_out),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
