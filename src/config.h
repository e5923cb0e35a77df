// The run configuration: every key of every INI section, its type, default
// and meaning, in one table. Parsing (inih), `--section.key=value`
// overrides, printing and the JSON form stored in checkpoints all derive from
// it. config.c is the only file that knows INI.
#ifndef RLHF_CONFIG_H
#define RLHF_CONFIG_H

#include <stdint.h>
#include <stdio.h>

// One table per section: X(key, type, default, help)
//   type: INT (int64_t), FLOAT (double), BOOL (int), STR (char *, owned by
//   the Config, never NULL; "" means unset).

#define CONFIG_MODEL(X) \
    X(n_layer, INT, 4, "transformer blocks")                       \
    X(n_head, INT, 4, "attention heads; n_embd must divide by it") \
    X(n_embd, INT, 128, "channels")                                \
    X(block_size, INT, 128, "context length in tokens")           

#define CONFIG_DATA(X) \
    X(corpus, STR, "", "text corpus for prepare: file, .gz or directory")          \
    X(dir, STR, "data/gen/fortunes", "where prepare writes train.h5/val.h5 (ptx and pretrain_mix read train.h5)") \
    X(tokenizer, STR, "char", "char | bpe | gpt2 (GPT-2's own, from data/gpt2)")   \
    X(vocab_size, INT, 512, "bpe vocabulary size, special tokens included (gpt2: 50260)") \
    X(val_fraction, FLOAT, 0.1, "share of documents held out for validation")      \
    X(doc_split, STR, "auto", "auto | blank | percent | none: document delimiter")

#define CONFIG_TRAIN(X) \
    X(batch_size, INT, 16, "sequences per micro-batch")                           \
    X(max_steps, INT, 1000, "optimizer steps")                                    \
    X(epochs, FLOAT, 0.0, "passes over the training items (sft, reward, dpo); > 0 sets max_steps") \
    X(grad_accum, INT, 1, "micro-batches per optimizer step")                     \
    X(eval_interval, INT, 100, "steps between evaluations (0 = only at the end)") \
    X(eval_steps, INT, 20, "batches per evaluation")                              \
    X(log_interval, INT, 10, "steps between log lines")                           \
    X(seed, INT, 1337, "seed for init, batches and sampling")                     \
    X(shuffle, BOOL, 1, "random batches (false: sequential sweep)")               \
    X(threads, INT, 0, "OpenMP/OpenBLAS threads (0 = all cores)")                 \
    X(precision, STR, "fp32", "fp32 | bf16: matrix products (bf16: fp32 master weights)") \
    X(fp32_lm_head, BOOL, 1, "bf16: the tied LM head's products (logits, their gradients) in fp32")

#define CONFIG_OPTIM(X) \
    X(lr, FLOAT, 1e-3, "peak learning rate")                               \
    X(min_lr, FLOAT, 1e-4, "learning rate at the end of the cosine decay") \
    X(warmup_steps, INT, 100, "linear warmup steps")                       \
    X(weight_decay, FLOAT, 0.1, "decoupled weight decay on 2-D weights")   \
    X(beta1, FLOAT, 0.9, "AdamW beta1")                                    \
    X(beta2, FLOAT, 0.99, "AdamW beta2")                                   \
    X(eps, FLOAT, 1e-8, "AdamW epsilon")                                   \
    X(grad_clip, FLOAT, 1.0, "max gradient L2 norm (0 = off)")            

#define CONFIG_SFT(X) \
    X(train_file, STR, "data/gen/tasks/sft_train.jsonl", "JSONL examples")        \
    X(test_file, STR, "data/gen/tasks/sft_test.jsonl", "JSONL held-out examples") \
    X(overlong, STR, "skip", "skip | truncate: examples longer than block_size")  \
    X(eval_examples, INT, 200, "held-out examples graded per evaluation")         \
    X(max_new_tokens, INT, 32, "longest generated answer when grading")           \
    X(pretrain_mix, FLOAT, 0.0, "share of each micro-batch (rows and loss) given to data.dir/train.h5 windows, in [0, 1)") \
    X(shift_positions, FLOAT, 0.0, "share of training examples placed at a random later position of the context, in [0, 1]") \
    X(chat_test_file, STR, "data/gen/tasks/chat_test.jsonl", "JSONL held-out conversations (eval: accuracy by turn)") \
    X(chat_eval_examples, INT, 200, "held-out conversations asked turn by turn (eval)")

#define CONFIG_REWARD(X) \
    X(train_file, STR, "data/gen/tasks/pref_train.jsonl", "JSONL preferences")  \
    X(test_file, STR, "data/gen/tasks/pref_test.jsonl", "JSONL held-out pairs") \
    X(margin, FLOAT, 0.0, "margin m in -log sigmoid(r_c - r_r - m)")           \
    X(center_coef, FLOAT, 0.0, "adds center_coef * (r_c + r_r)^2 per pair: one zero for every prompt's rewards")

#define CONFIG_DPO(X) \
    X(train_file, STR, "data/gen/tasks/pref_train.jsonl", "JSONL preferences")         \
    X(test_file, STR, "data/gen/tasks/pref_test.jsonl", "JSONL pairs for evaluation")  \
    X(beta, FLOAT, 0.1, "KL strength: implicit reward = beta * (logp - ref_logp)")     \
    X(loss, STR, "sigmoid", "sigmoid (DPO; cDPO with label_smoothing) | ipo")          \
    X(label_smoothing, FLOAT, 0.0, "share of pairs taken as flipped (sigmoid only)")   \
    X(rpo_alpha, FLOAT, 0.0, "weight of the chosen answers' NLL per token (RPO; 0 off)") \
    X(eval_pairs, INT, 500, "test pairs scored per evaluation (the first that fit)")

#define CONFIG_RANK(X) \
    X(prompts_file, STR, "data/gen/tasks/ppo_train.jsonl", "JSONL prompts to answer and rank") \
    X(out_file, STR, "data/gen/rank/comparisons.jsonl", "grouped comparisons written here")   \
    X(k, INT, 4, "responses sampled per prompt (InstructGPT ranks 4 to 9)")                    \
    X(n_prompts, INT, 0, "prompts ranked, the first of the file (0 = all)")                    \
    X(noise, FLOAT, 0.0, "probability that the labeler flips a comparison")                    \
    X(temperature, FLOAT, 1.0, "sampling temperature")                                         \
    X(max_new_tokens, INT, 24, "longest response")                                             \
    X(batch, INT, 64, "responses sampled at once (rounded down to a multiple of k)")

#define CONFIG_PPO(X) \
    X(prompts_file, STR, "data/gen/tasks/ppo_train.jsonl", "JSONL prompts")       \
    X(test_file, STR, "data/gen/tasks/ppo_test.jsonl", "JSONL held-out prompts")  \
    X(reward_model, STR, "", "reward checkpoint (also initialises the critic)")   \
    X(reward, STR, "model", "model | grader | model+grader: what a response scores") \
    X(advantage, STR, "gae", "gae | grpo | rloo | reinforce")                     \
    X(rollout_batch, INT, 64, "responses per rollout batch (group_size per prompt)") \
    X(group_size, INT, 1, "responses sampled per prompt")                         \
    X(scale_rewards, STR, "group", "grpo: divide by the std of the group | batch | none") \
    X(kl_in_loss, BOOL, 0, "KL penalty as k3 in the policy loss, not k1 in the reward") \
    X(loss_norm, STR, "token", "token | sequence: policy loss mean over tokens or sequences") \
    X(dynamic_sampling, BOOL, 0, "groups: fill batches with groups whose scores differ (graders) or answers (RM)") \
    X(max_sample_batches, INT, 4, "dynamic sampling: most batches sampled per step")    \
    X(max_new_tokens, INT, 24, "longest response")                                \
    X(temperature, FLOAT, 1.0, "rollout sampling temperature")                    \
    X(top_k, INT, 0, "rollout top-k (0 = off)")                                   \
    X(top_p, FLOAT, 1.0, "rollout nucleus mass (1 = off)")                        \
    X(ppo_epochs, INT, 4, "passes over each rollout batch")                       \
    X(minibatches, INT, 4, "minibatches per pass")                                \
    X(gamma, FLOAT, 1.0, "discount")                                              \
    X(lam, FLOAT, 0.95, "GAE lambda")                                             \
    X(cliprange, FLOAT, 0.2, "policy ratio clip")                                 \
    X(cliprange_value, FLOAT, 0.2, "value clip around the rollout values")        \
    X(vf_coef, FLOAT, 0.1, "value loss weight")                                   \
    X(ent_coef, FLOAT, 0.0, "entropy bonus weight")                               \
    X(kl_coef, FLOAT, 0.05, "initial KL penalty coefficient")                     \
    X(adaptive_kl, BOOL, 0, "adapt kl_coef toward kl_target")                     \
    X(kl_target, FLOAT, 6.0, "target KL per sequence (adaptive)")                 \
    X(kl_horizon, INT, 10000, "adaptive KL horizon")                              \
    X(whiten_advantages, BOOL, 1, "whiten advantages per batch")                  \
    X(no_eot_penalty, FLOAT, 0.0, "added to the score of a response without end") \
    X(critic_lr, FLOAT, 0.0, "critic learning rate (0 = optim.lr)")               \
    X(ptx_coef, FLOAT, 0.0, "PPO-ptx: each update adds this x the LM gradient of data.dir/train.h5 windows (0 = off)") \
    X(ptx_batch, INT, 8, "PPO-ptx: windows of block_size tokens per update")     \
    X(dump_rollouts, STR, "", "HDF5 file to write every rollout batch into")      \
    X(eval_prompts, INT, 200, "held-out prompts per evaluation")     

#define CONFIG_SAMPLE(X) \
    X(prompt, STR, "", "text to continue")                         \
    X(max_new_tokens, INT, 256, "tokens to generate")              \
    X(temperature, FLOAT, 0.8, "softmax temperature (0 = greedy)") \
    X(top_k, INT, 0, "keep the k most likely tokens (0 = off)")    \
    X(top_p, FLOAT, 1.0, "nucleus mass (1 = off)")                 \
    X(num_samples, INT, 1, "independent samples")                  \
    X(seed, INT, 1337, "sampling seed")                           

#define CONFIG_CHECKPOINT(X) \
    X(dir, STR, "checkpoints/run", "run directory")                       \
    X(init, STR, "", "checkpoint to start from (empty = from scratch)")   \
    X(every, INT, 500, "steps between checkpoints (0 = only at the end)") \
    X(keep, INT, 3, "step checkpoints to keep (latest.h5 besides)")      

// Every section, in the order files and printouts use: S(name, KEYS)
#define CONFIG_SECTIONS(S) \
    S(model, CONFIG_MODEL) \
    S(data, CONFIG_DATA) \
    S(train, CONFIG_TRAIN) \
    S(optim, CONFIG_OPTIM) \
    S(sft, CONFIG_SFT) \
    S(reward, CONFIG_REWARD) \
    S(ppo, CONFIG_PPO) \
    S(dpo, CONFIG_DPO) \
    S(rank, CONFIG_RANK) \
    S(sample, CONFIG_SAMPLE) \
    S(checkpoint, CONFIG_CHECKPOINT)

typedef int64_t config_INT;
typedef double config_FLOAT;
typedef int config_BOOL;
typedef char *config_STR;

#define CONFIG_COUNT_KEY(key, type, def, help) +1
#define CONFIG_COUNT_KEYS(name, KEYS) KEYS(CONFIG_COUNT_KEY)
enum { CONFIG_NKEYS = 0 CONFIG_SECTIONS(CONFIG_COUNT_KEYS) };
#undef CONFIG_COUNT_KEYS
#undef CONFIG_COUNT_KEY

// cfg.model.n_layer, cfg.optim.lr, cfg.data.dir ...
typedef struct {
#define CONFIG_FIELD(key, type, def, help) config_##type key;
#define CONFIG_STRUCT(name, KEYS) struct { KEYS(CONFIG_FIELD) } name;
    CONFIG_SECTIONS(CONFIG_STRUCT)
#undef CONFIG_STRUCT
#undef CONFIG_FIELD
    // which keys a config file or an override gave, in table order (set by
    // config_load and config_set; read through config_is_set)
    unsigned char given[CONFIG_NKEYS];
} Config;

// Sets every key to its default. Free with config_free.
void config_init(Config *cfg);
void config_free(Config *cfg);

// Reads an INI file over the current values. Unknown sections, unknown keys,
// values of the wrong type and duplicate keys are errors: returns -1 with
// "FILE:LINE: ..." in rlhf_errmsg.
int config_load(Config *cfg, const char *path);

// Applies one "--section.key=value" (or "section.key=value") override.
// Returns -1 with a reason (unknown key, bad value) in rlhf_errmsg.
int config_set(Config *cfg, const char *assignment);

// Whether section.key was given by a config file or an override (not left
// at its default). 0 for a name that is no key.
int config_is_set(const Config *cfg, const char *section, const char *key);

// Checks cross-key constraints (n_embd % n_head, positive sizes, choices such
// as tokenizer = char | bpe). Returns -1 with the first violation.
int config_validate(const Config *cfg);

// Writes the resolved configuration as INI text (every key, defaults too).
void config_print(const Config *cfg, FILE *out);

// The resolved configuration as one line of JSON {"section":{"key":value}}
// in table order: strings as JSON strings, INT exactly, FLOAT with the
// fewest digits that read back the same, BOOL as true/false. The caller
// frees the string.
char *config_to_json(const Config *cfg);

// Prints every key with its type, default and help (for `rlhf help config`).
void config_print_help(FILE *out);

#endif
