// Test helper: logits CKPT IDS OUT
// Runs the checkpoint's model forward over the token ids in the text file IDS
// (whitespace-separated) as one sequence and writes every position's logits
// to OUT as raw little-endian float32, (T, V) row-major. The shell tests
// compare them with an independent numpy forward (tests/cli_import.sh).
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "gpt.h"
#include "run.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CKPT IDS OUT\n", argv[0]);
        return 2;
    }
    GPT m;
    if (load_model_file(argv[1], &m, 0, NULL, NULL) != 0) die_last();
    FILE *f = fopen(argv[2], "r");
    if (!f) die("%s: cannot open", argv[2]);
    int T = m.config.block_size, n = 0, id;
    int *ids = mallocCheck((size_t)T * sizeof(int));
    while (fscanf(f, "%d", &id) == 1) {
        if (n == T) die("%s: more than block_size %d ids", argv[2], T);
        if (id < 0 || id >= m.config.vocab_size) die("%s: id %d out of range", argv[2], id);
        ids[n++] = id;
    }
    fclose(f);
    if (n == 0) die("%s: no ids", argv[2]);
    gpt_forward(&m, ids, 1, n, 1);
    FILE *o = fopen(argv[3], "wb");
    size_t count = (size_t)n * m.config.vocab_size;
    if (!o || fwrite(m.acts.logits, sizeof(float), count, o) != count || fclose(o) != 0)
        die("%s: write failed", argv[3]);
    free(ids);
    gpt_free(&m);
    return 0;
}
