// libFuzzer harness: the corpus reader on one file (plain text or gzip,
// recognised by its magic bytes) under each document split.
#include "common.h"
#include "corpus.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file("corpus.txt", data, n);
    static const char *splits[] = {"auto", "blank", "percent", "none"};
    for (int s = 0; s < 4; s++) {
        Corpus c;
        memset(&c, 0, sizeof c);
        int rc = corpus_read(&c, path, splits[s]);
        FUZZ_CHECK(rc == 0 || (rc == -1 && !strchr(rlhf_errmsg, '\n')));
        corpus_free(&c);
    }
    return 0;
}
