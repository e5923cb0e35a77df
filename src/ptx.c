// Pretraining windows for PPO-ptx and SFT's pretrain_mix; see ptx.h.
#include "ptx.h"

#include <string.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "objectives.h"
#include "run.h"

// The stream's seed: train.seed, kept apart from the stage's own streams
// (which seed from train.seed itself).
static uint64_t ptx_seed(int64_t train_seed) { return (uint64_t)train_seed ^ 0x7074785f73656564ULL; }

static int read_shard(Ptx *p, const char *path, const Tokenizer *tok, const char *key) {
    int vocab;
    uint64_t hash;
    if (shard_read(path, &p->tokens, &p->n, &vocab, &hash) != 0)
        return rlhf_fail("%s: cannot read the pretraining shard: %s", key, rlhf_errmsg);
    if (vocab != tok->vocab_size || hash != tokenizer_hash(tok))
        return rlhf_fail("%s: the pretraining shard %s was made with another tokenizer than the "
                         "policy's (vocab %d vs %d); hint: set data.dir to the shards the policy "
                         "was pretrained on (the pretraining run's data.dir)", key, path, vocab,
                         tok->vocab_size);
    return 0;
}

static int setup(Ptx *p, int on, const Config *cfg, const Tokenizer *tok, int B, int T,
                 const char *key, Ckpt *resume) {
    const int had = resume && ckpt_has_state(resume, "ptx");
    if (resume && had != on)
        return rlhf_fail("%s: the run being resumed was trained %s pretraining windows, this "
                         "config %s; hint: resume with the %s the run started with", key,
                         had ? "with" : "without", on ? "adds them" : "has none", key);
    if (!on) return 0;
    char path[4096];
    if (resume) {
        if (ckpt_read_str(resume, "ptx_shard", &p->record) != 0 ||
            lineage_check(p->record, "the pretraining shard", path, sizeof path) != 0)
            return -1;
    } else {
        snprintf(path, sizeof path, "%s/train.h5", cfg->data.dir);
        if (access(path, R_OK) != 0)
            return rlhf_fail("%s needs the pretraining shard %s, which is missing; hint: set "
                             "data.dir to the directory 'rlhf prepare' wrote for the pretrained "
                             "model", key, path);
        if (!(p->record = lineage_record(path))) return -1;
    }
    if (read_shard(p, path, tok, key) != 0) return -1;
    if (dataloader_init(&p->dl, p->tokens, p->n, B, T, 1, ptx_seed(cfg->train.seed)) != 0)
        return rlhf_fail("%s: %s", key, rlhf_errmsg);
    if (resume) {
        uint64_t u[5];
        if (ckpt_read_u64(resume, "ptx", u, 5) != 0) return -1;
        DataState st;
        memcpy(st.rng, u, sizeof st.rng);
        st.cursor = u[4];
        dataloader_set_state(&p->dl, &st);
    }
    const size_t N = (size_t)B * T;
    p->x = mallocCheck(N * sizeof(int));
    p->y = mallocCheck(N * sizeof(int));
    p->w = mallocCheck(N * sizeof(float));
    p->on = 1;
    return 0;
}

int ptx_setup(Ptx *p, int on, const Config *cfg, const Tokenizer *tok, int B, int T,
              const char *key, Ckpt *resume) {
    memset(p, 0, sizeof *p);
    if (setup(p, on, cfg, tok, B, T, key, resume) == 0) return 0;
    ptx_free(p);  // keeps rlhf_errmsg
    return -1;
}

double ptx_accumulate(Ptx *p, GPT *m, float w_token) {
    ASSERT(p->on);
    const int B = p->dl.B, T = p->dl.T, N = B * T;
    dataloader_next(&p->dl, p->x, p->y);
    for (int i = 0; i < N; i++) p->w[i] = w_token;
    lm_accumulate(m, p->x, p->y, p->w, NULL, B, T);
    // the per-token losses gpt_lm_loss left behind, of this rank's windows
    long lo, hi;
    dist_share(B, &lo, &hi);
    double sum = 0.0;
    for (long i = 0; i < (hi - lo) * T; i++) sum += m->acts.losses[i];
    dist_sum_f64(&sum, 1);
    return sum / N;
}

int ptx_save(const Ptx *p, Ckpt *ck) {
    if (!p->on) return 0;
    DataState st;
    dataloader_get_state(&p->dl, &st);
    const uint64_t u[5] = {st.rng[0], st.rng[1], st.rng[2], st.rng[3], st.cursor};
    return ckpt_write_u64(ck, "ptx", u, 5) != 0 || ckpt_write_str(ck, "ptx_shard", p->record) != 0
               ? -1 : 0;
}

void ptx_free(Ptx *p) {
    free(p->tokens);
    free(p->x);
    free(p->y);
    free(p->w);
    free(p->record);
    memset(p, 0, sizeof *p);
}
