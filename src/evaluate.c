// Task accuracy, reward scoring, pairwise reward-model accuracy and a
// policy's reward and KL over held-out data; see evaluate.h. No printing,
// no files: the callers read the data and report.
#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "common.h"
#include "conversation.h"
#include "dist.h"
#include "losses.h"
#include "sampling.h"
#include "seqs.h"

double evaluate_lm_loss(GPT *m, const int *tokens, size_t n, int B, long max_windows, int end,
                        long *windows_out, size_t *predicted_out) {
    const int T = m->config.block_size;
    ASSERT(end != LM_WRAP || max_windows > 0);
    int *x = mallocCheck((size_t)B * T * sizeof(int)), *y = mallocCheck((size_t)B * T * sizeof(int));
    double sum = 0.0;  // of each pass's mean loss times its tokens
    size_t predicted = 0, o = 0;
    long windows = 0;
    while (o + 1 < n && (max_windows == 0 || windows < max_windows)) {
        int b = 0;
        while (b < B && (max_windows == 0 || windows < max_windows)) {
            if (o + (size_t)T >= n) {  // no full window left
                if (end != LM_WRAP) break;
                o = 0;
            }
            memcpy(x + (size_t)b * T, tokens + o, (size_t)T * sizeof(int));
            memcpy(y + (size_t)b * T, tokens + o + 1, (size_t)T * sizeof(int));
            b++;
            windows++;
            o += (size_t)T;
        }
        if (b > 0) {
            long lo, hi;  // this rank's windows of the pass
            dist_share(b, &lo, &hi);
            if (hi > lo) {
                const size_t off = (size_t)lo * T;
                gpt_forward_nograd(m, x + off, (int)(hi - lo), T, 1);
                sum += (double)gpt_lm_loss(m, y + off, NULL) * (double)(hi - lo) * T;
            }
            predicted += (size_t)b * T;
            continue;
        }
        if (end != LM_PARTIAL) break;
        // a last, shorter window: rank 0's
        const int len = (int)(n - 1 - o);
        predicted += (size_t)len;
        windows++;
        if (!dist_is_root()) break;
        memcpy(x, tokens + o, (size_t)len * sizeof(int));
        memcpy(y, tokens + o + 1, (size_t)len * sizeof(int));
        gpt_forward_nograd(m, x, 1, len, 1);
        sum += (double)gpt_lm_loss(m, y, NULL) * len;
        o += (size_t)len;
    }
    dist_sum_f64(&sum, 1);
    free(x);
    free(y);
    if (windows_out) *windows_out = windows;
    if (predicted_out) *predicted_out = predicted;
    return predicted ? sum / (double)predicted : NAN;
}

double evaluate_sft_loss(GPT *m, const SeqSet *s, int B, int pad) {
    const int T = m->config.block_size;
    int *x = mallocCheck((size_t)B * T * sizeof(int)), *y = mallocCheck((size_t)B * T * sizeof(int));
    unsigned char *mask = mallocCheck((size_t)B * T);
    float *w = mallocCheck((size_t)B * T * sizeof(float));
    long *rows = mallocCheck((size_t)B * sizeof(long));
    double sum = 0.0, count = 0.0;
    for (long i0 = 0; i0 < s->n; i0 += B) {
        int b = (int)(s->n - i0 < B ? s->n - i0 : B);
        for (int r = 0; r < b; r++) rows[r] = i0 + r;
        int Tb = seqs_batch(s, rows, b, pad, x, y, mask);
        for (int i = 0; i < b * Tb; i++) {
            w[i] = mask[i];
            count += mask[i];
        }
        long lo, hi;  // this rank's rows of the batch
        dist_share(b, &lo, &hi);
        if (hi == lo) continue;
        const size_t off = (size_t)lo * Tb;
        gpt_forward_nograd(m, x + off, (int)(hi - lo), Tb, 1);
        sum += gpt_lm_loss(m, y + off, w + off);
    }
    dist_sum_f64(&sum, 1);
    free(x);
    free(y);
    free(mask);
    free(w);
    free(rows);
    return count > 0 ? sum / count : 0.0;
}

// evaluate_tasks on prompts in their conversations: a prompt whose history
// leaves no room for max_new tokens loses its oldest exchanges first.
static void tasks_greedy(GPT *m, const Tokenizer *tok, const ChatPrompt *prompts,
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
            ChatPrompt p = prompts[i];
            long len = chat_prompt_fit(tok, &p, max_new, T) < 0
                           ? -1
                           : chat_encode_context(tok, &p, ids + (size_t)b * T, T);
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
        // this rank's rows of the batch; the others' are 0 here, so the
        // integer sums gather every row's tokens on every rank, which then
        // all grade the whole batch alike
        long lo, hi;
        dist_share(b, &lo, &hi);
        if (dist_size() > 1) {
            memset(out, 0, (size_t)b * room * sizeof(int));
            memset(out_len, 0, (size_t)b * sizeof(int));
        }
        if (hi > lo)
            generate(m, &kv, &smp, rows + lo, lens + lo, (int)(hi - lo), room, tok->eot, &greedy,
                     &rng, out + (size_t)lo * room, out_len + lo);
        dist_sum_i32(out, (size_t)b * room);
        dist_sum_i32(out_len, (size_t)b);
        for (int r = 0; r < b; r++) {
            int k = out_len[r];
            int has_eot = k > 0 && out[r * room + k - 1] == tok->eot;
            if (has_eot) k--;  // graded text excludes it
            if (ended) ended[which[r]] = has_eot;
            char *text = tokenizer_decode(tok, out + (size_t)r * room, k, 0);
            tasks_tally_add(tally, families[which[r]], prompts[which[r]].text, text);
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

void evaluate_tasks(GPT *m, const Tokenizer *tok, const char *const *prompts,
                    const char *const *families, long n, int max_new, int batch,
                    TasksTally *tally, char **responses, int *ended) {
    ChatPrompt *p = mallocCheck((size_t)(n > 0 ? n : 1) * sizeof(ChatPrompt));
    for (long i = 0; i < n; i++) p[i] = chat_prompt(prompts[i]);
    tasks_greedy(m, tok, p, families, n, max_new, batch, tally, responses, ended);
    free(p);
}

void evaluate_chat_turns(GPT *m, const Tokenizer *tok, const SftSet *set, long n, int max_new,
                         int batch, TasksTally tally[EVAL_MAX_TURNS], ChatEvalStats *out,
                         char **replies) {
    const int T = m->config.block_size;
    if (max_new > T - 2) max_new = T - 2;
    if (n > set->n) n = set->n;
    if (replies)
        for (long i = 0; i < n * EVAL_MAX_TURNS; i++) replies[i] = NULL;
    for (int k = 0; k < EVAL_MAX_TURNS; k++) tasks_tally_init(&tally[k]);
    ChatEvalStats st = {n > 0 ? n : 0, 0, 0};
    KVCache kv;
    kvcache_build(&kv, &m->config, batch, T);
    Sampler smp;
    sampler_build(&smp, m->config.vocab_size);
    SamplerParams greedy = {0.0f, 0, 1.0f};
    Rng rng;
    rng_init(&rng, 0);  // unused by greedy decoding
    const size_t nn = (size_t)(n > 0 ? n : 1);
    Conversation *conv = mallocCheck(nn * sizeof(Conversation));
    char *dead = callocCheck(nn, 1);  // a prompt did not fit: the rest is ungraded
    for (long i = 0; i < n; i++) conversation_init(&conv[i], T);
    int *prompt = mallocCheck((size_t)batch * (T + 1) * sizeof(int));
    int *plen = mallocCheck((size_t)batch * sizeof(int));
    const int **rows = mallocCheck((size_t)batch * sizeof(int *));
    int *lens = mallocCheck((size_t)batch * sizeof(int));
    long *which = mallocCheck((size_t)batch * sizeof(long));
    int *outt = mallocCheck((size_t)batch * max_new * sizeof(int));
    int *out_len = mallocCheck((size_t)batch * sizeof(int));
    int *turn = mallocCheck(((size_t)T + 2) * sizeof(int));
    for (int k = 0; k < EVAL_MAX_TURNS; k++) {
        long i = 0;
        while (i < n) {
            int b = 0, budget = max_new;
            for (; i < n && b < batch; i++) {
                const SftExample *e = &set->ex[i];
                if (2 * k >= e->n_turns) continue;  // no turn k
                int *p = prompt + (size_t)b * (T + 1);
                long pl = dead[i] ? -1 : chat_encode_prompt(tok, e->turns[2 * k].text, p, T + 1);
                if (pl < 1 || pl >= T) {
                    dead[i] = 1;
                    tally[k].ungraded++;
                    continue;
                }
                conversation_begin_turn(&conv[i], p, (int)pl, max_new);
                if (conv[i].n_ex < k) st.trimmed_turns++;  // some history was dropped
                plen[b] = (int)pl;
                rows[b] = conv[i].seq;
                lens[b] = conv[i].n_seq;
                int fits = conversation_reply_budget(&conv[i], max_new);
                budget = fits < budget ? fits : budget;
                which[b++] = i;
            }
            if (b == 0) break;
            generate(m, &kv, &smp, rows, lens, b, budget, tok->eot, &greedy, &rng, outt,
                     out_len);
            for (int r = 0; r < b; r++) {
                const long c = which[r];
                const SftExample *e = &set->ex[c];
                const Turn *u = &e->turns[2 * k];
                int g = out_len[r];
                const int *reply = outt + (size_t)r * budget;
                const int ended = g > 0 && reply[g - 1] == tok->eot;
                char *text = tokenizer_decode(tok, reply, ended ? g - 1 : g, 0);
                tasks_tally_add(&tally[k], u->family && u->family[0] ? u->family : e->family,
                                u->text, text);
                if (replies) replies[c * EVAL_MAX_TURNS + k] = text;
                else free(text);
                // the exchange as the chat records it: prompt, reply, end-of-text
                const int pl = plen[r];
                memcpy(turn, prompt + (size_t)r * (T + 1), (size_t)pl * sizeof(int));
                memcpy(turn + pl, reply, (size_t)g * sizeof(int));
                int tn = pl + g;
                if (!ended) turn[tn++] = tok->eot;
                conversation_add(&conv[c], turn, tn);
                st.turns++;
            }
        }
    }
    for (long i = 0; i < n; i++) conversation_free(&conv[i]);
    free(conv);
    free(dead);
    free(prompt);
    free(plen);
    free(rows);
    free(lens);
    free(which);
    free(outt);
    free(out_len);
    free(turn);
    sampler_free(&smp);
    kvcache_free(&kv);
    if (out) *out = st;
}

void values_at(const GPT *m, const int *last, float *out) {
    for (int b = 0; b < m->B; b++) out[b] = m->acts.values[(size_t)b * m->T + last[b]];
}

// Scores n (prompt, response) pairs in right-padded batches: by the value
// head at the last token (a reward model), or by the sum of the response
// tokens' log-probabilities (a language model; the response starts after
// the prompt's plen[r] template tokens). m keeps no activations for a
// backward pass, even when it is being trained. shard: collective under
// mpirun, each rank scores its share of every batch's rows (padded to the
// whole batch's longest, as one process pads them) and every rank receives
// every score; else this process scores all of them.
static void pair_scores(GPT *m, const Tokenizer *tok, const ChatPrompt *prompts,
                        const char *const *responses, const int *no_eot, long n, int batch,
                        int shard, float *scores, long *n_truncated) {
    const int T = m->config.block_size, V = m->config.vocab_size;
    const int by_value = m->config.value_head;
    const int gather = shard && dist_size() > 1;
    int *ids = mallocCheck((size_t)batch * T * sizeof(int));
    int *inputs = mallocCheck((size_t)batch * T * sizeof(int));
    int *last = mallocCheck((size_t)batch * sizeof(int));
    int *plen = mallocCheck((size_t)batch * sizeof(int));
    int *scratch = mallocCheck((size_t)T * sizeof(int));
    float *logp = mallocCheck((size_t)T * sizeof(float));
    if (n_truncated) *n_truncated = 0;
    if (gather) memset(scores, 0, (size_t)n * sizeof(float));
    for (long i0 = 0; i0 < n; i0 += batch) {
        int b = (int)(n - i0 < batch ? n - i0 : batch), longest = 1;
        for (int r = 0; r < b; r++) {
            int *row = ids + (size_t)r * T;
            long len = chat_encode_context_pair(tok, &prompts[i0 + r], responses[i0 + r],
                                                no_eot ? no_eot[i0 + r] : 0, row, T);
            long pl = chat_encode_context(tok, &prompts[i0 + r], scratch, T);  // its length
            if (len < 0 || pl < 0) len = pl = 1;  // unencodable text: score a stub, never crash
            if (len > T) {
                len = T;
                if (n_truncated) (*n_truncated)++;
            }
            last[r] = (int)len - 1;
            plen[r] = (int)(pl < len ? pl : len);
            longest = len > longest ? (int)len : longest;
        }
        long lo = 0, hi = b;  // the rows scored here
        if (shard) dist_share(b, &lo, &hi);
        if (hi == lo) continue;
        // right-pad every row to the longest in this batch
        for (long r = lo; r < hi; r++)
            pad_row(inputs + (r - lo) * longest, longest, ids + (size_t)r * T, last[r] + 1,
                    tok->pad);
        gpt_forward_nograd(m, inputs, (int)(hi - lo), longest, !by_value);
        if (by_value) {
            values_at(m, last + lo, scores + i0 + lo);
            continue;
        }
        for (long r = lo; r < hi; r++) {
            // logits at t - 1 predict the token at t, for t in [plen, last]
            const int n_resp = last[r] - plen[r] + 1, row = (int)(r - lo) * longest + plen[r];
            logprobs_from_logits(logp, NULL, m->acts.logits + (size_t)(row - 1) * V,
                                 inputs + row, NULL, n_resp, V, 1.0f);
            double sum = 0.0;
            for (int t = 0; t < n_resp; t++) sum += logp[t];
            scores[i0 + r] = (float)sum;
        }
    }
    if (gather && n > 0) {
        // each score is on one rank and 0 on the others: the sums are the
        // scores, exactly (float to double and back loses nothing)
        double *all = mallocCheck((size_t)n * sizeof(double));
        for (long i = 0; i < n; i++) all[i] = scores[i];
        dist_sum_f64(all, (size_t)n);
        for (long i = 0; i < n; i++) scores[i] = (float)all[i];
        free(all);
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
    ChatPrompt *p = mallocCheck((size_t)(n > 0 ? n : 1) * sizeof(ChatPrompt));
    for (long i = 0; i < n; i++) p[i] = chat_prompt(prompts[i]);
    pair_scores(rm, tok, p, responses, no_eot, n, batch, 0, scores, n_truncated);
    free(p);
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
    *out = (PairResult){0, 0, NAN, NAN, NAN, NAN, NAN, NAN, 0, 0};
    if (scores) memset(scores, 0, sizeof *scores);
    const size_t cap = (size_t)(set->n > 0 ? set->n : 1);
    ChatPrompt *prompts = mallocCheck(cap * sizeof(ChatPrompt));
    const char **chosen = mallocCheck(cap * sizeof(char *));
    const char **rejected = mallocCheck(cap * sizeof(char *));
    int *no_eot = mallocCheck(cap * sizeof(int));
    long *example = mallocCheck(cap * sizeof(long));
    int *ids = mallocCheck(((size_t)T + 1) * sizeof(int));
    long n = 0, skipped = 0;
    int err = 0;
    for (long i = 0; i < set->n && (max_pairs <= 0 || n < max_pairs); i++) {
        const PrefExample *e = &set->ex[i];
        long a, b;
        ChatPrompt kept;
        int fits = pref_encode(set, i, tok, T, ids, &a, ids, &b, &kept);
        if (fits < 0) {
            err = -1;
            break;
        }
        if (!fits) {
            skipped++;
            continue;
        }
        prompts[n] = kept;
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
        pair_scores(m, tok, prompts, chosen, NULL, n, batch, 1, r_chosen, NULL);
        pair_scores(m, tok, prompts, rejected, no_eot, n, batch, 1, r_rejected, NULL);
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
        double rw = 0, ww = 0;
        for (long i = 0; i < n; i++) {
            const int *rk = set->ex[example[i]].ranks;
            if (rk[0] < 0) continue;
            // against the ranks: a noisy label may have put the worse answer first
            const int ok = rk[0] < rk[1] ? r_chosen[i] > r_rejected[i] : r_rejected[i] > r_chosen[i];
            if (rk[0] == 0 || rk[1] == 0) out->n_right_wrong++, rw += ok;
            else out->n_wrong_wrong++, ww += ok;
        }
        if (out->n_right_wrong) out->acc_right_wrong = rw / out->n_right_wrong;
        if (out->n_wrong_wrong) out->acc_wrong_wrong = ww / out->n_wrong_wrong;
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

// --- DPO -----------------------------------------------------------------------------

void evaluate_seq_logprobs(GPT *m, const SeqSet *s, long n, int batch, int pad, double *logp) {
    ASSERT(n >= 0 && n <= s->n && batch > 0);
    const int T = m->config.block_size;
    // a sequence fits T + 1 tokens (T positions predicted)
    const size_t cap = (size_t)batch * (T + 1);
    int *x = mallocCheck(cap * sizeof(int)), *y = mallocCheck(cap * sizeof(int));
    unsigned char *mask = mallocCheck(cap);
    long *rows = mallocCheck((size_t)batch * sizeof(long));
    for (long i0 = 0; i0 < n; i0 += batch) {
        const int b = (int)(n - i0 < batch ? n - i0 : batch);
        for (int r = 0; r < b; r++) rows[r] = i0 + r;
        const int Tb = seqs_batch(s, rows, b, pad, x, y, mask);
        ASSERT(Tb <= T);
        gpt_forward_nograd(m, x, b, Tb, 1);
        seq_logprobs(logp + i0, m->acts.logits, y, mask, b, Tb, m->config.vocab_size);
    }
    free(x);
    free(y);
    free(mask);
    free(rows);
}

void evaluate_seq_rewards(GPT *rm, const SeqSet *s, long n, int batch, int pad, float *out) {
    ASSERT(rm->config.value_head && n >= 0 && n <= s->n && batch > 0);
    const int T = rm->config.block_size;
    int *x = mallocCheck((size_t)batch * (T + 1) * sizeof(int));
    int *last = mallocCheck((size_t)batch * sizeof(int));
    long *rows = mallocCheck((size_t)batch * sizeof(long));
    for (long i0 = 0; i0 < n; i0 += batch) {
        const int b = (int)(n - i0 < batch ? n - i0 : batch);
        for (int r = 0; r < b; r++) rows[r] = i0 + r;
        const int Tb = seqs_pad_rows(s, rows, b, pad, x, last);
        ASSERT(Tb <= T);
        gpt_forward_nograd(rm, x, b, Tb, 0);
        values_at(rm, last, out + i0);
    }
    free(x);
    free(last);
    free(rows);
}

void evaluate_dpo_pairs(GPT *m, const SeqSet *s, long n, const double *ref_logp,
                        const DpoParams *p, int batch, int pad, DpoStats *st) {
    memset(st, 0, sizeof *st);
    if (n <= 0) return;
    double *logp = mallocCheck((size_t)2 * n * sizeof(double));
    double *side = mallocCheck((size_t)5 * n * sizeof(double));  // pc | pr | rc | rr | nc
    evaluate_seq_logprobs(m, s, 2 * n, batch, pad, logp);
    for (long i = 0; i < n; i++) {
        side[i] = logp[2 * i];
        side[n + i] = logp[2 * i + 1];
        side[2 * n + i] = ref_logp[2 * i];
        side[3 * n + i] = ref_logp[2 * i + 1];
        const long c = seqs_loss_tokens(s, 2 * i);
        side[4 * n + i] = c > 0 ? (double)c : 1.0;
    }
    dpo_loss(side, side + n, side + 2 * n, side + 3 * n, side + 4 * n, (int)n, p, NULL, NULL,
             NULL, NULL, st);
    free(logp);
    free(side);
}

// --- policy prompts --------------------------------------------------------------

void prompts_free(EncodedPrompts *p) {
    for (long i = 0; i < p->n; i++) free(p->ids[i]);
    free(p->ids);
    free(p->lens);
    free(p->ex);
    memset(p, 0, sizeof *p);
}

int prompts_encode(const PromptSet *set, const Tokenizer *tok, int T, int max_new, const char *key,
                   long cap, EncodedPrompts *p) {
    memset(p, 0, sizeof *p);
    const size_t room = (size_t)(set->n > 0 ? set->n : 1);
    p->ids = mallocCheck(room * sizeof(int *));
    p->lens = mallocCheck(room * sizeof(int));
    p->ex = mallocCheck(room * sizeof(PromptExample *));
    int *buf = mallocCheck((size_t)T * sizeof(int));
    int rc = 0;
    for (long i = 0; i < set->n && (cap <= 0 || p->n < cap); i++) {
        const PromptExample *e = &set->ex[i];
        ChatPrompt cp = {e->history, e->n_history, e->prompt};
        const int dropped = chat_prompt_fit(tok, &cp, max_new, T);
        long len = dropped < 0 ? -1 : chat_encode_context(tok, &cp, buf, T);
        if (len < 0) {
            rc = rlhf_fail("%s:%d: %s", set->path, set->ex[i].line, rlhf_errmsg);
            break;
        }
        if (len + max_new > T) {  // the reward model reads prompt + response
            p->skipped++;
            continue;
        }
        p->trimmed += dropped > 0;
        p->ids[p->n] = mallocCheck((size_t)len * sizeof(int));
        memcpy(p->ids[p->n], buf, (size_t)len * sizeof(int));
        p->lens[p->n] = (int)len;
        p->ex[p->n] = &set->ex[i];
        p->n++;
    }
    free(buf);
    if (rc == 0 && p->n == 0)
        rc = rlhf_fail("%s: no prompt leaves room for %s=%d in the context of %d; hint: lower %s",
                       set->path, key, max_new, T, key);
    if (rc != 0) prompts_free(p);
    return rc;
}

// The graded rows, sorted by group, then by score (NaN last in a group).
typedef struct {
    int group, right;
    float score;
} AucRow;

static int auc_row_cmp(const void *pa, const void *pb) {
    const AucRow *a = pa, *b = pb;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    const int na = isnan(a->score), nb = isnan(b->score);
    if (na || nb) return na - nb;
    return a->score < b->score ? -1 : a->score > b->score;
}

// The Mann-Whitney count in O(n log n): within a group, a right answer beats
// every wrong one below its score and half of those tied with it. A NaN
// score wins no pair and loses none to a win (every comparison with it is
// false), but its pairs still count. wins and pairs are sums of halves, exact
// in a double: the same value as counting pair by pair. *based (when given):
// the wrong answers with a right one in their group, the AUC's base.
static double auc_count(const float *score, const int *grade, const int *group, long n,
                        long *based) {
    AucRow *row = mallocCheck((size_t)(n > 0 ? n : 1) * sizeof *row);
    long m = 0;
    for (long i = 0; i < n; i++)
        if (grade[i] == 0 || grade[i] == 1) row[m++] = (AucRow){group[i], grade[i], score[i]};
    qsort(row, (size_t)m, sizeof *row, auc_row_cmp);
    double wins = 0.0, pairs = 0.0, base = 0.0;
    for (long g = 0; g < m;) {  // one group: rows g..e-1
        long e = g;
        double right = 0.0, wrong = 0.0, wrong_below = 0.0;
        while (e < m && row[e].group == row[g].group) {
            long t = e;  // one block of tied scores: rows e..t-1
            double r = 0.0, w = 0.0;
            while (t < m && row[t].group == row[g].group &&
                   (t == e || (!isnan(row[e].score) && row[t].score == row[e].score))) {
                r += row[t].right;
                w += !row[t].right;
                t++;
            }
            if (!isnan(row[e].score)) wins += r * wrong_below + 0.5 * r * w;
            wrong_below += w;
            right += r;
            wrong += w;
            e = t;
        }
        pairs += right * wrong;
        if (right > 0) base += wrong;
        g = e;
    }
    free(row);
    if (based) *based = (long)base;
    return pairs > 0 ? wins / pairs : NAN;
}

double reward_auc(const float *score, const int *grade, const int *group, long n) {
    return auc_count(score, grade, group, n, NULL);
}

void reward_auc_families(const float *score, const int *grade, const int *family,
                         const int *group, long n, RewardAuc *out) {
    if (!group) group = family;
    long based;
    out->all = auc_count(score, grade, group, n, NULL);
    int *only = mallocCheck((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int f = 0; f < TASKS_MAX_FAMILIES; f++) {  // one family at a time: the others ungraded
        for (long i = 0; i < n; i++) only[i] = family[i] == f ? grade[i] : -1;
        out->family[f] = auc_count(score, only, group, n, &based);
        out->wrong[f] = (int)based;
    }
    free(only);
}

// --- policy reward and KL -----------------------------------------------------------

// Greedy answers to prompts[0..n), graded into tally and scored by rm.
static void policy_reward(GPT *policy, GPT *rm, const Tokenizer *tok, const EncodedPrompts *pp,
                          long n, int max_new, int batch, const double *norm,
                          EvalPolicyResult *out, TasksTally *tally) {
    const size_t room = (size_t)(n > 0 ? n : 1);
    ChatPrompt *text = mallocCheck(room * sizeof(ChatPrompt));
    const char **families = mallocCheck(room * sizeof(char *));
    char **responses = mallocCheck(room * sizeof(char *));
    int *ended = mallocCheck(room * sizeof(int)), *no_eot = mallocCheck(room * sizeof(int));
    float *scores = mallocCheck(room * sizeof(float));
    for (long i = 0; i < n; i++) {
        const PromptExample *e = pp->ex[i];
        text[i] = (ChatPrompt){e->history, e->n_history, e->prompt};
        // the history prompts_encode kept, so that the answers are the rollouts'
        if (chat_prompt_fit(tok, &text[i], max_new, policy->config.block_size) < 0)
            text[i] = chat_prompt(e->prompt);  // encoded once already: cannot fail
        families[i] = e->family;
    }
    tasks_tally_init(tally);
    tasks_greedy(policy, tok, text, families, n, max_new, batch, tally, responses, ended);
    out->accuracy = tasks_tally_accuracy(tally, -1);
    long scored = 0;  // a prompt without room for the answer has no response
    for (long i = 0; i < n; i++) {
        if (!responses[i]) continue;
        text[scored] = text[i];
        responses[scored] = responses[i];
        no_eot[scored] = !ended[i];
        scored++;
    }
    if (rm)
        pair_scores(rm, tok, text, (const char *const *)responses, no_eot, scored, batch, 1,
                    scores, NULL);
    const double mean = norm ? norm[0] : 0.0, std = norm ? norm[1] : 1.0;
    double raw = 0.0, normed = 0.0;
    for (long i = 0; i < scored; i++) {
        if (rm) {
            raw += scores[i];
            normed += (scores[i] - mean) / std;
        }
        free(responses[i]);
    }
    if (!rm) scored = 0;  // graded, not scored
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
                      const EncodedPrompts *pp, long n, const SamplerParams *sampling,
                      int max_new, int P,
                      uint64_t seed, const double *norm, EvalPolicyResult *out) {
    const int T = policy->config.block_size, V = policy->config.vocab_size;
    Rollout ro;
    rollout_build(&ro, P, T, tok->eot, tok->pad);
    KVCache kv;
    kvcache_build(&kv, &policy->config, P, T);
    Sampler smp;
    sampler_build(&smp, V);
    Rng rng;
    rng_init(&rng, seed);
    long *order = mallocCheck((size_t)P * sizeof(long));
    float *k1 = mallocCheck((size_t)P * sizeof(float)), *k3 = mallocCheck((size_t)P * sizeof(float));
    // scores normalised here, not by ppo_score: no penalty for a missing end
    const PPOParams sp = {.sampling = *sampling, .max_new = max_new, .reward_std = 1.0f};
    const double mean = norm ? norm[0] : 0.0, std = norm ? norm[1] : 1.0;
    TasksTally tally;
    tasks_tally_init(&tally);
    double s1 = 0, s3 = 0, len = 0, reward = 0;
    const size_t room = (size_t)(n > 0 ? n : 1);
    float *score = mallocCheck(room * sizeof(float));
    int *grade = mallocCheck(room * sizeof(int)), *family = mallocCheck(room * sizeof(int));
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
            const PromptExample *ex = pp->ex[i0 + r];
            grade[i0 + r] = tasks_tally_add(&tally, ex->family, ex->prompt, text);
            family[i0 + r] = ex->family[0] ? tasks_family_by_name(ex->family) : -1;
            score[i0 + r] = rm ? ro.score_raw[r] : 0.0f;
            free(text);
        }
    }
    out->kl_k1 = n ? s1 / n : NAN;
    out->kl_k3 = n ? s3 / n : NAN;
    out->length = n ? len / n : NAN;
    out->sample_accuracy = tasks_tally_accuracy(&tally, -1);
    out->sample_reward = rm && n ? reward / n : NAN;
    if (rm) reward_auc_families(score, grade, family, NULL, n, &out->rm_auc);
    free(score);
    free(grade);
    free(family);
    free(order);
    free(k1);
    free(k3);
    sampler_free(&smp);
    kvcache_free(&kv);
    rollout_free(&ro);
}

void evaluate_policy(GPT *policy, GPT *ref, GPT *rm, const Tokenizer *tok,
                     const EncodedPrompts *prompts, long n, const SamplerParams *sampling,
                     int max_new, int batch, uint64_t seed, const double *reward_norm,
                     EvalPolicyResult *out, TasksTally *tally) {
    ASSERT(n >= 0 && n <= prompts->n && batch > 0);
    *out = (EvalPolicyResult){.accuracy = NAN, .reward_raw = NAN, .reward = NAN, .kl_k1 = NAN,
                              .kl_k3 = NAN, .length = NAN, .sample_accuracy = NAN,
                              .sample_reward = NAN, .rewarded = rm != NULL,
                              .sampled = ref != NULL};
    reward_auc_families(NULL, NULL, NULL, NULL, 0, &out->rm_auc);  // all NaN
    TasksTally local;
    policy_reward(policy, rm, tok, prompts, n, max_new, batch, reward_norm, out,
                  tally ? tally : &local);
    if (ref)
        policy_kl(policy, ref, rm, tok, prompts, n, sampling, max_new, batch, seed, reward_norm,
                  out);
}

void sample_groups(GPT *policy, const Tokenizer *tok, const EncodedPrompts *prompts, long n,
                   int k, const SamplerParams *sampling, int max_new, int batch, uint64_t seed,
                   GroupFn fn, void *ctx) {
    ASSERT(k >= 1 && batch >= k && batch % k == 0 && n >= 0 && n <= prompts->n);
    const int T = policy->config.block_size, V = policy->config.vocab_size;
    Rollout ro;
    rollout_build(&ro, batch, T, tok->eot, tok->pad);
    KVCache kv;
    kvcache_build(&kv, &policy->config, batch, T);
    Sampler smp;
    sampler_build(&smp, V);
    Rng rng;
    rng_init(&rng, seed);
    const int **ids = mallocCheck((size_t)batch * sizeof(int *));
    int *lens = mallocCheck((size_t)batch * sizeof(int));
    char **texts = mallocCheck((size_t)k * sizeof(char *));
    const PPOParams sp = {.sampling = *sampling, .max_new = max_new, .reward_std = 1.0f};
    for (long i0 = 0; i0 < n; i0 += batch / k) {
        const int np = (int)(n - i0 < batch / k ? n - i0 : batch / k);
        for (int r = 0; r < np * k; r++) {
            ids[r] = prompts->ids[i0 + r / k];
            lens[r] = prompts->lens[i0 + r / k];
        }
        ppo_generate(&ro, policy, &kv, &smp, ids, lens, np * k, &sp, &rng);
        for (int q = 0; q < np; q++) {
            for (int j = 0; j < k; j++) {
                const int r = q * k + j;
                const int *resp = ro.tokens + (size_t)r * (ro.L + 1) + ro.qlen[r];
                texts[j] = tokenizer_decode(tok, resp, ro.rlen[r] - ro.ended[r], 0);
            }
            fn(ctx, i0 + q, texts, ro.ended + q * k, k);
            for (int j = 0; j < k; j++) free(texts[j]);
        }
    }
    free(texts);
    free(ids);
    free(lens);
    sampler_free(&smp);
    kvcache_free(&kv);
    rollout_free(&ro);
}

typedef struct {
    const EncodedPrompts *prompts;
    double pass_1, pass_k;
    PassAtK *out;
} PassCount;

static void pass_group(void *ctx, long i, char *const *texts, const int *ended, int k) {
    PassCount *c = ctx;
    const PromptExample *ex = c->prompts->ex[i];
    int right = 0;
    (void)ended;
    for (int j = 0; j < k; j++) {
        const int g = ex->family[0] ? tasks_grade(ex->family, ex->prompt, texts[j]) : -1;
        if (g < 0) {
            c->out->ungraded++;
            return;
        }
        right += g == 1;
    }
    c->out->graded++;
    c->pass_1 += (double)right / k;
    c->pass_k += right > 0;
}

void evaluate_pass_at_k(GPT *policy, const Tokenizer *tok, const EncodedPrompts *prompts, long n,
                        int k, const SamplerParams *sampling, int max_new, int batch,
                        uint64_t seed, PassAtK *out) {
    *out = (PassAtK){NAN, NAN, 0, 0};
    PassCount c = {prompts, 0.0, 0.0, out};
    sample_groups(policy, tok, prompts, n, k, sampling, max_new, batch, seed, pass_group, &c);
    if (out->graded) {
        out->pass_1 = c.pass_1 / out->graded;
        out->pass_k = c.pass_k / out->graded;
    }
}

typedef struct {
    GPT *rm;
    const Tokenizer *tok;
    const EncodedPrompts *prompts;
    const char **prompt;  // (k) the prompt, k times
    int *no_eot;          // (k)
    int *right;           // (k)
    float *scores;        // (k)
    double best, mean, any;
    BestOfK *out;
    float *all_score;     // (n * k) every graded answer, for the AUCs
    int *all_grade, *all_family, *all_prompt;
    long n_all;
} BestOf;

static void best_of_group(void *ctx, long i, char *const *texts, const int *ended, int k) {
    BestOf *b = ctx;
    const PromptExample *ex = b->prompts->ex[i];
    int right = 0, best = 0;
    for (int j = 0; j < k; j++) {
        const int g = ex->family[0] ? tasks_grade(ex->family, ex->prompt, texts[j]) : -1;
        if (g < 0) {
            b->out->ungraded++;
            return;
        }
        b->right[j] = g == 1;
        right += g == 1;
        b->prompt[j] = ex->prompt;
        b->no_eot[j] = !ended[j];
    }
    reward_scores(b->rm, b->tok, b->prompt, (const char *const *)texts, b->no_eot, k, k,
                  b->scores, NULL);
    for (int j = 1; j < k; j++)
        if (b->scores[j] > b->scores[best]) best = j;
    for (int j = 0; j < k; j++, b->n_all++) {
        b->all_score[b->n_all] = b->scores[j];
        b->all_grade[b->n_all] = b->right[j];
        b->all_family[b->n_all] = tasks_family_by_name(ex->family);
        b->all_prompt[b->n_all] = (int)i;
    }
    b->out->graded++;
    b->best += b->right[best];
    b->mean += (double)right / k;
    b->any += right > 0;
}

void evaluate_best_of(GPT *policy, GPT *rm, const Tokenizer *tok, const EncodedPrompts *prompts,
                      long n, int k, const SamplerParams *sampling, int max_new, int batch,
                      uint64_t seed, BestOfK *out) {
    ASSERT(rm->config.value_head);
    *out = (BestOfK){.best_accuracy = NAN, .sample_accuracy = NAN, .pass_k = NAN};
    const size_t all = (size_t)(n > 0 ? n : 1) * (size_t)k;
    BestOf b = {rm, tok, prompts, mallocCheck((size_t)k * sizeof(char *)),
                mallocCheck((size_t)k * sizeof(int)), mallocCheck((size_t)k * sizeof(int)),
                mallocCheck((size_t)k * sizeof(float)), 0.0, 0.0, 0.0, out,
                mallocCheck(all * sizeof(float)), mallocCheck(all * sizeof(int)),
                mallocCheck(all * sizeof(int)), mallocCheck(all * sizeof(int)), 0};
    sample_groups(policy, tok, prompts, n, k, sampling, max_new, batch, seed, best_of_group, &b);
    if (out->graded) {
        out->best_accuracy = b.best / out->graded;
        out->sample_accuracy = b.mean / out->graded;
        out->pass_k = b.any / out->graded;
    }
    reward_auc_families(b.all_score, b.all_grade, b.all_family, NULL, b.n_all, &out->rm_auc);
    reward_auc_families(b.all_score, b.all_grade, b.all_family, b.all_prompt, b.n_all,
                        &out->rm_auc_within);
    free(b.all_score);
    free(b.all_grade);
    free(b.all_family);
    free(b.all_prompt);
    free(b.prompt);
    free(b.no_eot);
    free(b.right);
    free(b.scores);
}

double rollout_grade(const Rollout *ro, const Tokenizer *tok, const PromptExample *const *ex,
                     int *grades, int *families) {
    double correct = 0, graded = 0;
    for (int b = 0; b < ro->n; b++) {
        grades[b] = -1;
        families[b] = ex[b]->family[0] ? tasks_family_by_name(ex[b]->family) : -1;
        if (families[b] < 0) continue;
        const int *resp = ro->tokens + (size_t)b * (ro->L + 1) + ro->qlen[b];
        char *text = tokenizer_decode(tok, resp, ro->rlen[b] - ro->ended[b], 0);
        grades[b] = tasks_grade_index(families[b], ex[b]->prompt, text);
        free(text);
        if (grades[b] >= 0) {
            correct += grades[b];
            graded++;
        }
    }
    return graded > 0 ? correct / graded : NAN;
}

void tally_metrics(Metrics *mt, const char *prefix, const TasksTally *tally) {
    for (int f = 0; f < tasks_n_families; f++) {
        if (!tally->total[f]) continue;
        char name[64];
        snprintf(name, sizeof name, "%s%s", prefix, tasks_families[f].name);
        metrics_set(mt, name, tasks_tally_accuracy(tally, f));
    }
}

void dpo_metrics(Metrics *mt, const char *prefix, const DpoStats *st) {
    const double n = st->pairs;
    const struct {
        const char *name;
        double value;
    } m[] = {{"rewards/chosen", st->reward_chosen / n},
             {"rewards/rejected", st->reward_rejected / n},
             {"rewards/accuracies", st->correct / n},
             {"rewards/margins", (st->reward_chosen - st->reward_rejected) / n},
             {"logps/chosen", st->logp_chosen / n},
             {"logps/rejected", st->logp_rejected / n},
             {"nll_loss", st->nll / n}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "%s%s", prefix, m[i].name);
        metrics_set(mt, name, m[i].value);
    }
}

void evaluate_policy_metrics(Metrics *mt, const EvalPolicyResult *e, const TasksTally *tally) {
    metrics_set(mt, "eval_accuracy", e->accuracy);
    if (e->rewarded) {
        metrics_set(mt, "eval_reward", e->reward);
        metrics_set(mt, "eval_reward_raw", e->reward_raw);
    }
    if (e->sampled) {
        metrics_set(mt, "eval_kl_k1", e->kl_k1);
        metrics_set(mt, "eval_kl_k3", e->kl_k3);
        metrics_set(mt, "eval_sample_accuracy", e->sample_accuracy);
    }
    if (e->sampled && e->rewarded) metrics_set(mt, "eval_sample_reward", e->sample_reward);
    tally_metrics(mt, "eval_accuracy_", tally);
}
