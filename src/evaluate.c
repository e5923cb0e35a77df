// Task accuracy, reward scoring, pairwise reward-model accuracy and a
// policy's reward and KL over held-out data; see evaluate.h. No printing,
// no files: the callers read the data and report.
#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "common.h"
#include "losses.h"
#include "sampling.h"

void evaluate_tasks(GPT *m, const Tokenizer *tok, const char *const *prompts,
                    const char *const *families, long n, int max_new, int batch,
                    TasksTally *tally, char **responses, int *ended) {
    const int T = m->config.block_size;
    if (max_new > T - 2) max_new = T - 2;
    KVCache kv;
    kvcache_build(&kv, &m->config, batch, T);
    Sampler smp;
    sampler_build(&smp, m->config.vocab_size);
    SamplerParams greedy = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 0);  // unused by greedy decoding
    int *ids = mallocCheck((size_t)batch * T * sizeof(int));
    const int **rows = mallocCheck((size_t)batch * sizeof(int *));
    int *lens = mallocCheck((size_t)batch * sizeof(int));
    long *which = mallocCheck((size_t)batch * sizeof(long));
    int *out = mallocCheck((size_t)batch * max_new * sizeof(int));
    int *out_len = mallocCheck((size_t)batch * sizeof(int));
    long i = 0;
    while (i < n) {
        int b = 0, longest = 0;
        // fill a batch with prompts that leave room for max_new tokens
        for (; i < n && b < batch; i++) {
            long len = chat_encode_prompt(tok, prompts[i], ids + (size_t)b * T, T);
            if (responses) responses[i] = NULL;
            if (ended) ended[i] = 0;
            if (len < 0 || len + max_new > T) {
                tally->ungraded++;
                continue;
            }
            rows[b] = ids + (size_t)b * T;
            lens[b] = (int)len;
            which[b] = i;
            longest = len > longest ? (int)len : longest;
            b++;
        }
        if (b == 0) break;
        int room = T - longest + 1 < max_new ? T - longest + 1 : max_new;
        generate(m, &kv, &smp, rows, lens, b, room, tok->eot, &greedy, &rng, out, out_len);
        for (int r = 0; r < b; r++) {
            int k = out_len[r];
            int has_eot = k > 0 && out[r * room + k - 1] == tok->eot;
            if (has_eot) k--;  // graded text excludes it
            if (ended) ended[which[r]] = has_eot;
            char *text = tokenizer_decode(tok, out + (size_t)r * room, k, 0);
            tasks_tally_add(tally, families[which[r]], prompts[which[r]], text);
            if (responses) responses[which[r]] = text;
            else free(text);
        }
    }
    free(ids);
    free(rows);
    free(lens);
    free(which);
    free(out);
    free(out_len);
    sampler_free(&smp);
    kvcache_free(&kv);
}

void values_at(const GPT *m, const int *last, float *out) {
    for (int b = 0; b < m->B; b++) out[b] = m->acts.values[(size_t)b * m->T + last[b]];
}

// Scores n (prompt, response) pairs in right-padded batches: by the value
// head at the last token (a reward model), or by the sum of the response
// tokens' log-probabilities (a language model; the response starts after
// the prompt's plen[r] template tokens). m keeps no activations for a
// backward pass, even when it is being trained.
static void pair_scores(GPT *m, const Tokenizer *tok, const char *const *prompts,
                        const char *const *responses, const int *no_eot, long n, int batch,
                        float *scores, long *n_truncated) {
    const int T = m->config.block_size, V = m->config.vocab_size;
    const int by_value = m->config.value_head;
    int *ids = mallocCheck((size_t)batch * T * sizeof(int));
    int *inputs = mallocCheck((size_t)batch * T * sizeof(int));
    int *last = mallocCheck((size_t)batch * sizeof(int));
    int *plen = mallocCheck((size_t)batch * sizeof(int));
    int *scratch = mallocCheck((size_t)T * sizeof(int));
    float *logp = mallocCheck((size_t)T * sizeof(float));
    if (n_truncated) *n_truncated = 0;
    for (long i0 = 0; i0 < n; i0 += batch) {
        int b = (int)(n - i0 < batch ? n - i0 : batch), longest = 1;
        for (int r = 0; r < b; r++) {
            int *row = ids + (size_t)r * T;
            long len = chat_encode_pair(tok, prompts[i0 + r], responses[i0 + r],
                                        no_eot ? no_eot[i0 + r] : 0, row, T);
            long pl = chat_encode_prompt(tok, prompts[i0 + r], scratch, T);  // its length
            if (len < 0 || pl < 0) len = pl = 1;  // unencodable text: score a stub, never crash
            if (len > T) {
                len = T;
                if (n_truncated) (*n_truncated)++;
            }
            last[r] = (int)len - 1;
            plen[r] = (int)(pl < len ? pl : len);
            longest = len > longest ? (int)len : longest;
        }
        // right-pad every row to the longest in this batch
        for (int r = 0; r < b; r++)
            for (int t = 0; t < longest; t++)
                inputs[r * longest + t] = t <= last[r] ? ids[(size_t)r * T + t] : tok->pad;
        gpt_forward_nograd(m, inputs, b, longest, !by_value);
        if (by_value) {
            values_at(m, last, scores + i0);
            continue;
        }
        for (int r = 0; r < b; r++) {
            // logits at t - 1 predict the token at t, for t in [plen, last]
            const int n_resp = last[r] - plen[r] + 1, row = r * longest + plen[r];
            logprobs_from_logits(logp, NULL, m->acts.logits + (size_t)(row - 1) * V,
                                 inputs + row, NULL, n_resp, V, 1.0f);
            double sum = 0.0;
            for (int t = 0; t < n_resp; t++) sum += logp[t];
            scores[i0 + r] = (float)sum;
        }
    }
    free(ids);
    free(inputs);
    free(last);
    free(plen);
    free(scratch);
    free(logp);
}

void reward_scores(GPT *rm, const Tokenizer *tok, const char *const *prompts,
                   const char *const *responses, const int *no_eot, long n, int batch,
                   float *scores, long *n_truncated) {
    ASSERT(rm->config.value_head);
    pair_scores(rm, tok, prompts, responses, no_eot, n, batch, scores, n_truncated);
}

// --- preference pairs ----------------------------------------------------------

void pair_scores_free(PairScores *s) {
    free(s->example);
    free(s->chosen);
    free(s->rejected);
    memset(s, 0, sizeof *s);
}

int evaluate_pairs(GPT *m, const Tokenizer *tok, const PrefSet *set, long max_pairs, int batch,
                   PairResult *out, PairScores *scores) {
    const int T = m->config.block_size;
    *out = (PairResult){0, 0, NAN, NAN, NAN, NAN};
    if (scores) memset(scores, 0, sizeof *scores);
    const size_t cap = (size_t)(set->n > 0 ? set->n : 1);
    const char **prompts = mallocCheck(cap * sizeof(char *));
    const char **chosen = mallocCheck(cap * sizeof(char *));
    const char **rejected = mallocCheck(cap * sizeof(char *));
    int *no_eot = mallocCheck(cap * sizeof(int));
    long *example = mallocCheck(cap * sizeof(long));
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    long n = 0, skipped = 0;
    int err = 0;
    for (long i = 0; i < set->n && (max_pairs <= 0 || n < max_pairs); i++) {
        const PrefExample *e = &set->ex[i];
        long a = chat_encode_pair(tok, e->prompt, e->chosen, 0, ids, T + 1);
        long b = chat_encode_pair(tok, e->prompt, e->rejected, e->rejected_no_eot, ids, T + 1);
        if (a < 0 || b < 0) {
            err = rlhf_fail("%s:%d: %s", set->path, e->line, rlhf_errmsg);
            break;
        }
        if (a > T || b > T) {  // the score must be read inside the context
            skipped++;
            continue;
        }
        prompts[n] = e->prompt;
        chosen[n] = e->chosen;
        rejected[n] = e->rejected;
        no_eot[n] = e->rejected_no_eot;
        example[n] = i;
        n++;
    }
    free(ids);
    float *r_chosen = NULL, *r_rejected = NULL;
    if (err == 0) {
        out->pairs = n;
        out->skipped = skipped;
    }
    if (err == 0 && n > 0) {
        r_chosen = mallocCheck((size_t)n * sizeof(float));
        r_rejected = mallocCheck((size_t)n * sizeof(float));
        pair_scores(m, tok, prompts, chosen, NULL, n, batch, r_chosen, NULL);
        pair_scores(m, tok, prompts, rejected, no_eot, n, batch, r_rejected, NULL);
        double right = 0, margin = 0, sum = 0, sq = 0;
        for (long i = 0; i < n; i++) {
            right += r_chosen[i] > r_rejected[i];
            margin += (double)r_chosen[i] - r_rejected[i];
            sum += (double)r_chosen[i] + r_rejected[i];
        }
        double mean = sum / (2.0 * n);
        for (long i = 0; i < n; i++)
            sq += (r_chosen[i] - mean) * (r_chosen[i] - mean) +
                  (r_rejected[i] - mean) * (r_rejected[i] - mean);
        out->accuracy = right / n;
        out->margin = margin / n;
        out->mean = mean;
        out->std = sqrt(sq / (2.0 * n));
    }
    if (err == 0 && scores) {
        scores->n = n;
        scores->example = example;
        scores->chosen = r_chosen ? r_chosen : mallocCheck(sizeof(float));
        scores->rejected = r_rejected ? r_rejected : mallocCheck(sizeof(float));
    } else {
        free(example);
        free(r_chosen);
        free(r_rejected);
    }
    free(prompts);
    free(chosen);
    free(rejected);
    free(no_eot);
    return err;
}

// --- policy prompts --------------------------------------------------------------

void prompts_free(EncodedPrompts *p) {
    for (long i = 0; i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->lens);
    free(p->ex);
    memset(p, 0, sizeof *p);
}

int prompts_encode(const PromptSet *set, const Tokenizer *tok, int T, int max_new, long cap,
                   EncodedPrompts *p) {
    memset(p, 0, sizeof *p);
    const size_t room = (size_t)(set->n > 0 ? set->n : 1);
    p->ids = mallocCheck(room * sizeof(int *));
    p->lens = mallocCheck(room * sizeof(int));
    p->ex = mallocCheck(room * sizeof(PromptExample *));
    int *buf = mallocCheck((size_t)T * sizeof(int));
    int rc = 0;
    for (long i = 0; i < set->n && (cap <= 0 || p->n < cap); i++) {
        long len = chat_encode_prompt(tok, set->ex[i].prompt, buf, T);
        if (len < 0) {
            rc = rlhf_fail("%s:%d: %s", set->path, set->ex[i].line, rlhf_errmsg);
            break;
        }
        if (len + max_new > T) {  // the reward model reads prompt + response
            p->skipped++;
            continue;
        }
        p->ids[p->n] = mallocCheck((size_t)len * sizeof(int));
        memcpy(p->ids[p->n], buf, (size_t)len * sizeof(int));
        p->lens[p->n] = (int)len;
        p->ex[p->n] = &set->ex[i];
        p->n++;
    }
    free(buf);
    if (rc == 0 && p->n == 0)
        rc = rlhf_fail("%s: no prompt leaves room for ppo.max_new_tokens=%d in the context of %d; "
                       "hint: lower ppo.max_new_tokens", set->path, max_new, T);
    if (rc != 0) prompts_free(p);
    return rc;
}

double reward_auc(const float *score, const int *grade, const int *group, long n) {
    double wins = 0.0, pairs = 0.0;
    for (long i = 0; i < n; i++) {
        if (grade[i] != 1) continue;
        for (long j = 0; j < n; j++) {
            if (grade[j] != 0 || group[j] != group[i]) continue;
            wins += score[i] > score[j] ? 1.0 : (score[i] == score[j] ? 0.5 : 0.0);
            pairs += 1.0;
        }
    }
    return pairs > 0 ? wins / pairs : NAN;
}

// --- policy reward and KL -----------------------------------------------------------

// Greedy answers to prompts[0..n), graded into tally and scored by rm.
static void policy_reward(GPT *policy, GPT *rm, const Tokenizer *tok, const EncodedPrompts *pp,
                          long n, int max_new, int batch, const double *norm,
                          EvalPolicyResult *out, TasksTally *tally) {
    const size_t room = (size_t)(n > 0 ? n : 1);
    const char **text = mallocCheck(room * sizeof(char *));
    const char **families = mallocCheck(room * sizeof(char *));
    char **responses = mallocCheck(room * sizeof(char *));
    int *ended = mallocCheck(room * sizeof(int)), *no_eot = mallocCheck(room * sizeof(int));
    float *scores = mallocCheck(room * sizeof(float));
    for (long i = 0; i < n; i++) {
        text[i] = pp->ex[i]->prompt;
        families[i] = pp->ex[i]->family;
    }
    tasks_tally_init(tally);
    evaluate_tasks(policy, tok, text, families, n, max_new, batch, tally, responses, ended);
    out->accuracy = tasks_tally_accuracy(tally, -1);
    long scored = 0;  // a prompt without room for the answer has no response
    for (long i = 0; i < n; i++) {
        if (!responses[i]) continue;
        text[scored] = text[i];
        responses[scored] = responses[i];
        no_eot[scored] = !ended[i];
        scored++;
    }
    reward_scores(rm, tok, text, (const char *const *)responses, no_eot, scored, batch, scores,
                  NULL);
    const double mean = norm ? norm[0] : 0.0, std = norm ? norm[1] : 1.0;
    double raw = 0.0, normed = 0.0;
    for (long i = 0; i < scored; i++) {
        raw += scores[i];
        normed += (scores[i] - mean) / std;
        free(responses[i]);
    }
    out->scored = scored;
    out->reward_raw = scored ? raw / scored : NAN;
    out->reward = scored ? normed / scored : NAN;
    free(text);
    free(families);
    free(responses);
    free(ended);
    free(no_eot);
    free(scores);
}

// Sequence-level KL to ref on responses sampled at params->sampling, in
// batches of P rows, each scored in one minibatch.
static void policy_kl(GPT *policy, GPT *ref, GPT *rm, const Tokenizer *tok,
                      const EncodedPrompts *pp, long n, const PPOParams *params, int P,
                      uint64_t seed, const double *norm, EvalPolicyResult *out) {
    const int T = policy->config.block_size, V = policy->config.vocab_size;
    Rollout ro;
    rollout_build(&ro, P, T, V, tok->eot, tok->pad);
    KVCache kv;
    kvcache_build(&kv, &policy->config, P, T);
    Sampler smp;
    sampler_build(&smp, V);
    Rng rng;
    rng_init(&rng, seed);
    long *order = mallocCheck((size_t)P * sizeof(long));
    float *k1 = mallocCheck((size_t)P * sizeof(float)), *k3 = mallocCheck((size_t)P * sizeof(float));
    // scores normalised here, not by ppo_score: no penalty for a missing end
    PPOParams sp = *params;
    sp.reward_mean = 0.0f;
    sp.reward_std = 1.0f;
    sp.no_eot_penalty = 0.0f;
    const double mean = norm ? norm[0] : 0.0, std = norm ? norm[1] : 1.0;
    TasksTally tally;
    tasks_tally_init(&tally);
    double s1 = 0, s3 = 0, len = 0, reward = 0;
    for (long i0 = 0; i0 < n; i0 += P) {
        int b = (int)(n - i0 < P ? n - i0 : P);
        ppo_generate(&ro, policy, &kv, &smp, (const int *const *)pp->ids + i0, pp->lens + i0, b,
                     &sp, &rng);
        for (int r = 0; r < b; r++) order[r] = r;
        ppo_score(&ro, policy, ref, NULL, rm, &sp, order, b);
        rollout_kl(&ro, k1, k3);
        for (int r = 0; r < b; r++) {
            s1 += k1[r];
            s3 += k3[r];
            len += ro.rlen[r];
            if (rm) reward += (ro.score_raw[r] - mean) / std;
            const int *resp = ro.tokens + (size_t)r * (ro.L + 1) + ro.qlen[r];
            char *text = tokenizer_decode(tok, resp, ro.rlen[r] - ro.ended[r], 0);
            tasks_tally_add(&tally, pp->ex[i0 + r]->family, pp->ex[i0 + r]->prompt, text);
            free(text);
        }
    }
    out->kl_k1 = n ? s1 / n : NAN;
    out->kl_k3 = n ? s3 / n : NAN;
    out->length = n ? len / n : NAN;
    out->sample_accuracy = tasks_tally_accuracy(&tally, -1);
    out->sample_reward = rm && n ? reward / n : NAN;
    free(order);
    free(k1);
    free(k3);
    sampler_free(&smp);
    kvcache_free(&kv);
    rollout_free(&ro);
}

void evaluate_policy(GPT *policy, GPT *ref, GPT *rm, const Tokenizer *tok,
                     const EncodedPrompts *prompts, long n, const PPOParams *params, int batch,
                     uint64_t seed, const double *reward_norm, EvalPolicyResult *out,
                     TasksTally *tally) {
    ASSERT(n >= 0 && n <= prompts->n && batch > 0);
    *out = (EvalPolicyResult){NAN, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    TasksTally local;
    if (rm)
        policy_reward(policy, rm, tok, prompts, n, params->max_new, batch, reward_norm, out,
                      tally ? tally : &local);
    if (ref) policy_kl(policy, ref, rm, tok, prompts, n, params, batch, seed, reward_norm, out);
}
