// Held-out measurements shared by the stages and `rlhf eval`: exact-match
// task accuracy with greedy decoding, and reward-model scoring. Each runs
// the model in batches; none of them changes the model's parameters.
#ifndef RLHF_EVALUATE_H
#define RLHF_EVALUATE_H

#include "gpt.h"
#include "jsonl.h"
#include "tasks.h"
#include "tokenizer.h"

// Generates a greedy answer (up to max_new tokens, stopping at end-of-text)
// for each of n prompts, in batches of `batch`, and grades it with the
// task family's grader into tally. responses (n), if not NULL, receives
// each decoded answer without its end-of-text (the caller frees each; NULL
// for a prompt too long for the context), and ended (n), if not NULL,
// whether it ended with end-of-text. Prompts too long for the context are
// counted in tally->ungraded.
void evaluate_tasks(GPT *m, const Tokenizer *tok, const char *const *prompts,
                    const char *const *families, long n, int max_new, int batch,
                    TasksTally *tally, char **responses, int *ended);

// Rewards of n (prompt, response) pairs: the value head read at the last
// token of <|user|>prompt<|assistant|>response[<|endoftext|>] (the
// end-of-text unless no_eot[i]; no_eot may be NULL). Rows are right-padded,
// so a score does not depend on what else is in its batch. A pair longer
// than the context is scored on its first block_size tokens and counted in
// *n_truncated (may be NULL).
void reward_scores(GPT *rm, const Tokenizer *tok, const char *const *prompts,
                   const char *const *responses, const int *no_eot, long n, int batch,
                   float *scores, long *n_truncated);

// Reads the scalar head at position last[b] of each row of the last
// forward (values (B,T)) into out (B).
void values_at(const GPT *m, const int *last, float *out);

#endif
