// Held-out measurements shared by the stages and `rlhf eval`: exact-match
// task accuracy with greedy decoding, reward-model scoring, a reward
// model's pairwise accuracy on preference pairs, DPO's implicit rewards of
// preference pairs, and a policy's reward and KL to its reference. Each
// runs the models in batches; none of them changes a model's parameters,
// and none prints.
#ifndef RLHF_EVALUATE_H
#define RLHF_EVALUATE_H

#include <stdint.h>

#include "gpt.h"
#include "jsonl.h"
#include "losses.h"
#include "metrics.h"
#include "ppo.h"
#include "seqs.h"
#include "tasks.h"
#include "tokenizer.h"

// Mean next-token loss over windows of T = block_size tokens at offsets 0,
// T, 2T, ... of tokens[0..n): each window predicts tokens[o+1 .. o+T] from
// tokens[o .. o+T-1], B windows per forward pass, at most max_windows
// windows (0 = no limit). At the end of the tokens, LM_STOP stops, LM_WRAP
// starts again at offset 0 (the sequential sweep of pretraining's
// validation), LM_PARTIAL scores what is left as one shorter window (every
// token but the first predicted once). windows and predicted (may be NULL)
// receive the counts. NaN when nothing was predicted. Collective under
// mpirun (dist.h): each rank scores its share of every pass.
enum { LM_STOP, LM_WRAP, LM_PARTIAL };
double evaluate_lm_loss(GPT *m, const int *tokens, size_t n, int B, long max_windows, int end,
                        long *windows, size_t *predicted);

// Held-out settings that must agree wherever a measurement is taken, so
// that `rlhf eval` reproduces what a stage logged: greedy task decoding
// runs this many prompts at once, and sampled evaluations draw from an RNG
// seeded with eval_seed(train.seed).
#define EVAL_TASK_BATCH 64
static inline uint64_t eval_seed(int64_t train_seed) { return (uint64_t)train_seed + 1; }

// Teacher-forced loss per loss-carrying token (SFT: response tokens and
// their end-of-text) over every sequence of s, B right-padded rows at a
// time. Collective under mpirun, as evaluate_lm_loss.
double evaluate_sft_loss(GPT *m, const SeqSet *s, int B, int pad);

// Generates a greedy answer (up to max_new tokens, stopping at end-of-text)
// for each of n prompts, in batches of `batch`, and grades it with the
// task family's grader into tally. responses (n), if not NULL, receives
// each decoded answer without its end-of-text (the caller frees each; NULL
// for a prompt too long for the context), and ended (n), if not NULL,
// whether it ended with end-of-text. Prompts too long for the context are
// counted in tally->ungraded. Collective under mpirun (dist.h): each rank
// decodes its share of every batch's rows, the answers are gathered, and
// every rank grades them all (the same tally and responses everywhere).
void evaluate_tasks(GPT *m, const Tokenizer *tok, const char *const *prompts,
                    const char *const *families, long n, int max_new, int batch,
                    TasksTally *tally, char **responses, int *ended);

// Task accuracy by turn index on conversations, answered as `rlhf chat`
// holds them: for each of the first n examples of set, user turn k is
// asked after the model's own greedy answers to turns 1..k-1 (the
// conversation's assistant turns are never shown), the oldest exchanges
// dropped, whole, when the history, the prompt and chat_reply_room(T, pl,
// max_new) tokens of reply no longer fit the context (Conversation,
// conversation.h). Turn k is graded by its message's family (else the
// example's) into tally[k] (turns past EVAL_MAX_TURNS are not asked).
// Conversations are answered `batch` at a time, turn by turn; a reply gets
// the batch's smallest budget (conversation_reply_budget), which is
// max_new whenever max_new <= T/4. A prompt that cannot fit the context
// ends its conversation: it and the later turns count as ungraded. out
// (may be NULL) receives the counts below; replies (may be NULL; n *
// EVAL_MAX_TURNS entries, conversation i's turn k at i * EVAL_MAX_TURNS +
// k) each decoded reply without its end-of-text, NULL for a turn not
// answered (the caller frees them).
#define EVAL_MAX_TURNS 8
typedef struct {
    long conversations;  // examples asked
    long turns;          // turns answered
    long trimmed_turns;  // turns answered after dropping older exchanges
} ChatEvalStats;
void evaluate_chat_turns(GPT *m, const Tokenizer *tok, const SftSet *set, long n, int max_new,
                         int batch, TasksTally tally[EVAL_MAX_TURNS], ChatEvalStats *out,
                         char **replies);

// Rewards of n (prompt, response) pairs: the value head read at the last
// token of <|user|>prompt<|assistant|>response[<|endoftext|>] (the
// end-of-text unless no_eot[i]; no_eot may be NULL). Rows are right-padded,
// so a score does not depend on what else is in its batch. A pair longer
// than the context is scored on its first block_size tokens and counted in
// *n_truncated (may be NULL). Not collective: this process scores them all.
void reward_scores(GPT *rm, const Tokenizer *tok, const char *const *prompts,
                   const char *const *responses, const int *no_eot, long n, int batch,
                   float *scores, long *n_truncated);

// Reads the scalar head at position last[b] of each row of the last
// forward (values (B,T)) into out (B).
void values_at(const GPT *m, const int *last, float *out);

// How well scores track ground truth: over every pair of a correct and a
// wrong response in the same group (e.g. task family), the share where the
// correct one scores higher (ties count half), i.e. the AUC. grade[i] is 1
// (correct), 0 (wrong) or < 0 (ungraded, left out). NaN without any pair.
double reward_auc(const float *score, const int *grade, const int *group, long n);

// reward_auc pooled over the task families, and family by family with the
// others left out, beside each family's base: its wrong answers with a right
// one to rank against (with few it is coarse). Pairs are those of one family
// (group NULL), or of one group within a family (group: e.g. the prompt, to
// ask only whether a right answer outscores the wrong ones to the same
// question).
typedef struct {
    double all;                          // NaN: no family with a right and a wrong answer
    double family[TASKS_MAX_FAMILIES];   // NaN where the family lacks either
    int wrong[TASKS_MAX_FAMILIES];
} RewardAuc;
void reward_auc_families(const float *score, const int *grade, const int *family,
                         const int *group, long n, RewardAuc *out);

// --- preference pairs --------------------------------------------------------

// A model on preference pairs. NaN statistics when no pair was scored.
typedef struct {
    long pairs;               // pairs scored
    long skipped;             // pairs whose chosen or rejected side exceeds the context
    double accuracy;          // share of pairs with r(chosen) > r(rejected)
    double margin;            // mean r(chosen) - r(rejected)
    double mean, std;         // over all 2 * pairs rewards
    // ranked comparisons ("ranks", 0 = a right answer): accuracy against the
    // ranks (the better-ranked side scores higher) on pairs of a right and a
    // wrong answer and on pairs of two wrong ones; NaN (count 0) when none
    double acc_right_wrong, acc_wrong_wrong;
    long n_right_wrong, n_wrong_wrong;
} PairResult;

// Per-pair rewards behind a PairResult: pair i came from set->ex[example[i]].
// Arrays of n entries, owned; free with pair_scores_free.
typedef struct {
    long n;
    long *example;
    float *chosen, *rejected;
} PairScores;

// Scores the first max_pairs (<= 0: all) pairs of set that fit the context
// of m (both sides at most block_size tokens; the others are counted in
// skipped and not scored) in batches of `batch`: all chosen sides, then all
// rejected ones. A reward model scores with reward_scores; a language model
// (no value head) with its own log-likelihood of the response (and its
// end-of-text), in nats: how the policy itself ranks the pair. scores, if
// not NULL, receives the scores of each pair. Returns -1 with a reason
// ("PATH:LINE: ...") when a pair does not encode; out and scores are then
// left empty. Collective under mpirun: each rank scores its share of every
// batch, the scores are gathered in order, and every rank computes the
// statistics from all of them, as one process does.
int evaluate_pairs(GPT *m, const Tokenizer *tok, const PrefSet *set, long max_pairs, int batch,
                   PairResult *out, PairScores *scores);
void pair_scores_free(PairScores *s);

// --- DPO: sequence log-probabilities and implicit rewards ---------------------

// Log-probabilities of the first n sequences of s under m, `batch` of them
// right-padded per forward pass, in order: logp[i] = sum of log p(token)
// over sequence i's loss-carrying tokens (seqs_from_prefs: a response and
// its end-of-text). The same m, s, n and batch give the same bits.
void evaluate_seq_logprobs(GPT *m, const SeqSet *s, long n, int batch, int pad, double *logp);

// Rewards of the first n sequences of s under the reward model rm (each at
// most block_size tokens, read at its last token), `batch` right-padded
// rows per forward pass, into out (n).
void evaluate_seq_rewards(GPT *rm, const SeqSet *s, long n, int batch, int pad, float *out);

// A DPO policy m on the first n pairs of s (pair i: sequences 2i chosen,
// 2i+1 rejected), against ref_logp (2n) the reference's log-probabilities
// of the same sequences, scored in batches of `batch` sequences: the sums of
// dpo_loss into *st (zeroed here). With ref_logp from
// evaluate_seq_logprobs(reference, s, 2n, batch, ...) and m equal to the
// reference, every implicit reward is exactly 0.
void evaluate_dpo_pairs(GPT *m, const SeqSet *s, long n, const double *ref_logp,
                        const DpoParams *p, int batch, int pad, DpoStats *st);

// --- policy prompts, reward and KL -------------------------------------------

// Prompts encoded with the chat template (<|user|>prompt<|assistant|>,
// after the history of a multi-turn prompt), each leaving room for max_new
// response tokens: len + max_new <= T, the contract of ppo_generate, so the
// reward model reads every token. A multi-turn prompt drops its oldest
// exchanges, whole, until it leaves that room (counted in trimmed); one
// that cannot is skipped.
typedef struct {
    long n;                    // prompts kept
    long skipped;              // prompts too long for the context with max_new
    long trimmed;              // multi-turn prompts kept with their oldest exchanges dropped
    int **ids;                 // (n) owned, lens[i] ids each
    int *lens;                 // (n)
    const PromptExample **ex;  // (n) into the PromptSet, which must outlive this
} EncodedPrompts;

// Encodes the prompts of set in order until cap (<= 0: no limit) are kept,
// counting those without room in skipped (key names max_new's config key
// for the error). Returns -1 with a reason when a prompt does not encode or
// none fits; p is then empty (freeing it is harmless). Free with prompts_free.
int prompts_encode(const PromptSet *set, const Tokenizer *tok, int T, int max_new, const char *key,
                   long cap, EncodedPrompts *p);
void prompts_free(EncodedPrompts *p);

// What evaluate_policy measured; NaN (and scored 0) for a part skipped.
typedef struct {
    double accuracy;           // greedy answers, graded per task family
    long scored;               // greedy answers scored by the reward model
    double reward_raw;         // their mean reward-model score
    double reward;             // the same, normalised as (score - mean) / std
    double kl_k1, kl_k3;       // per sequence, mean over sampled responses
    double length;             // mean sampled response length, tokens
    double sample_accuracy;    // sampled responses, graded per task family
    double sample_reward;      // their mean normalised reward (rm != NULL)
    RewardAuc rm_auc;          // the reward model on the sampled answers (rm != NULL)
    int rewarded, sampled;     // the parts that ran: rm != NULL, ref != NULL
} EvalPolicyResult;

// A policy on the first n prompts, in batches of `batch`, answers of up to
// max_new tokens:
//  - greedy answers, graded into tally (initialised here; may be NULL)
//    and, when rm != NULL, scored by rm, normalised with reward_norm =
//    {mean, std} (NULL: {0, 1});
//  - ref != NULL: responses sampled with `sampling` from an rng seeded with
//    `seed` (ppo_generate), their sequence KL to ref (ppo_score +
//    rollout_kl), their graded accuracy and (rm != NULL) their normalised
//    reward: what PPO optimises, where greedy decoding shows the mode.
// The same inputs give the same numbers, whichever command asks.
// Collective under mpirun: the greedy answers and their scores as
// evaluate_tasks and evaluate_pairs shard them, the samples as ppo_generate
// and ppo_score do.
void evaluate_policy(GPT *policy, GPT *ref, GPT *rm, const Tokenizer *tok,
                     const EncodedPrompts *prompts, long n, const SamplerParams *sampling,
                     int max_new, int batch, uint64_t seed, const double *reward_norm,
                     EvalPolicyResult *out, TasksTally *tally);

// Samples k responses to each of the first n prompts from policy (KV
// cache), batch / k prompts at a time (batch a multiple of k), with
// `sampling` from an rng seeded with `seed`, and calls fn(ctx, i, texts,
// ended, k) for prompt i in order: texts[j] the decoded response without its
// end-of-text (freed after the call), ended[j] whether it ended with one.
// The same inputs give the same responses, whichever command asks.
typedef void (*GroupFn)(void *ctx, long prompt, char *const *texts, const int *ended, int k);
void sample_groups(GPT *policy, const Tokenizer *tok, const EncodedPrompts *prompts, long n,
                   int k, const SamplerParams *sampling, int max_new, int batch, uint64_t seed,
                   GroupFn fn, void *ctx);

// pass@1 and pass@k of a policy on the first n prompts: k responses
// sampled per prompt with `sampling` from an rng seeded with `seed`,
// batch / k prompts at a time (batch a multiple of k), each graded by its
// task family. pass_1 is the mean over prompts of (right answers) / k, the
// unbiased estimate of pass@1; pass_k the share of prompts with at least
// one right answer. Prompts no grader can read are left out and counted.
typedef struct {
    double pass_1, pass_k;     // NaN when no prompt was graded
    long graded, ungraded;     // prompts
} PassAtK;
void evaluate_pass_at_k(GPT *policy, const Tokenizer *tok, const EncodedPrompts *prompts, long n,
                        int k, const SamplerParams *sampling, int max_new, int batch,
                        uint64_t seed, PassAtK *out);

// Best-of-k (rejection sampling) on the first n prompts: k answers sampled
// per prompt as sample_groups does, each scored by the reward model rm
// (reward_scores), the highest-scoring one (the first of equals) graded.
// Beside it, the mean accuracy of all samples (what one sample gets) and
// pass@k (what an oracle picking any right answer gets): the reward model's
// worth is where best_accuracy falls between the two. Prompts no grader
// reads are left out and counted. rm_auc: the reward model's AUC over all
// k answers of the graded prompts, k times the base of the sampled-answer
// AUC of evaluate_policy; rm_auc_within: the same answers, each right one
// ranked only against the wrong ones to its own prompt (what choosing among
// them asks of the reward model; an offset the model adds to every answer
// of a prompt moves rm_auc, not this).
typedef struct {
    double best_accuracy, sample_accuracy, pass_k;  // NaN when no prompt was graded
    long graded, ungraded;
    RewardAuc rm_auc, rm_auc_within;
} BestOfK;
void evaluate_best_of(GPT *policy, GPT *rm, const Tokenizer *tok, const EncodedPrompts *prompts,
                      long n, int k, const SamplerParams *sampling, int max_new, int batch,
                      uint64_t seed, BestOfK *out);

// Logs the accuracy of every task family with graded answers as the
// metric PREFIX<family> (e.g. "accuracy_add").
void tally_metrics(Metrics *mt, const char *prefix, const TasksTally *tally);

// Logs DPO statistics (means over st->pairs) with the names TRL uses:
// PREFIXrewards/chosen, PREFIXrewards/rejected, PREFIXrewards/accuracies,
// PREFIXrewards/margins, PREFIXlogps/chosen, PREFIXlogps/rejected.
void dpo_metrics(Metrics *mt, const char *prefix, const DpoStats *st);

// Logs a held-out policy evaluation as eval_accuracy, eval_reward,
// eval_reward_raw, eval_kl_k1, eval_kl_k3, eval_sample_accuracy,
// eval_sample_reward and eval_accuracy_<family>, leaving out the metrics
// of a part that did not run (no reward model, no reference).
void evaluate_policy_metrics(Metrics *mt, const EvalPolicyResult *e, const TasksTally *tally);

// Grades each rollout row's response (end-of-text dropped) against its
// prompt: grades[b] = 1 right, 0 wrong, -1 ungraded (no task family, or a
// prompt the grader cannot read); families[b] = the family index or -1.
// ex[b] is row b's prompt. Returns the accuracy over graded rows (NaN when
// none).
double rollout_grade(const Rollout *ro, const Tokenizer *tok, const PromptExample *const *ex,
                     int *grades, int *families);

#endif
