// libFuzzer harness: the safetensors reader on mutated files (seeds in
// fuzz/corpus/fuzz_safetensors, small files in the layout rlhf export
// writes). Whatever the bytes, opening returns 0 or -1 with a one-line
// reason; an opened file's tensors lie inside it, tile its data exactly, and
// read as float32 (or are refused, for other dtypes) without a read out of
// bounds or a leak.
#include "common.h"
#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    const char *path = fuzz_file("model.safetensors", data, n);
    SafeTensors st;
    if (safetensors_open(&st, path) != 0) {
        FUZZ_CHECK(!strchr(rlhf_errmsg, '\n'));
        safetensors_close(&st);
        return 0;
    }
    uint64_t total = 0;
    for (int i = 0; i < st.n; i++) {
        const SafeTensor *t = &st.t[i];
        FUZZ_CHECK(t->begin <= t->end && st.data_start + t->end <= st.file_size);
        total += t->end - t->begin;
        FUZZ_CHECK(safetensors_find(&st, t->name) == t);
        if (t->numel > (1u << 20)) continue;  // a real size, not the fuzzer's allocation
        float *out = malloc((size_t)t->numel * sizeof(float) + 1);
        int rc = safetensors_read_f32(&st, t, out, (size_t)t->numel);
        FUZZ_CHECK(rc == 0 || t->dtype == ST_OTHER);
        free(out);
    }
    FUZZ_CHECK(st.data_start + total == st.file_size);
    safetensors_close(&st);
    return 0;
}
