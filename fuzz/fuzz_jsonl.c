// libFuzzer harness: the three JSONL readers (SFT, preferences, prompts)
// on the same bytes. Each returns 0 or -1 with a one-line FILE:LINE reason;
// nothing may crash, leak or read out of bounds.
#include "common.h"
#include "fuzz_util.h"
#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file("data.jsonl", data, n);
    SftSet sft = {0};
    PrefSet prefs = {0};
    PromptSet prompts = {0};
    int rc = jsonl_read_sft(path, &sft);
    FUZZ_CHECK(rc == 0 || (rc == -1 && !strchr(rlhf_errmsg, '\n')));
    rc = jsonl_read_prefs(path, &prefs);
    FUZZ_CHECK(rc == 0 || (rc == -1 && !strchr(rlhf_errmsg, '\n')));
    rc = jsonl_read_prompts(path, &prompts);
    FUZZ_CHECK(rc == 0 || (rc == -1 && !strchr(rlhf_errmsg, '\n')));
    jsonl_free_sft(&sft);
    jsonl_free_prefs(&prefs);
    jsonl_free_prompts(&prompts);
    return 0;
}
