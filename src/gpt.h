// The GPT model: parameters, activations, forward and backward passes.
// One type serves every stage: a policy, a frozen reference, a critic and a
// reward model are four GPTs, the last two built with a scalar value head;
// only the two being trained (policy, critic) carry a training state.
// The math of each layer lives in ops.c; this file wires layers together and
// owns memory. It knows nothing of files, configs or optimizers.
//
// Dimension legend: B batch, T time, C channels (n_embd), NH heads,
// hs = C/NH head size, V vocabulary, L layers, D layers of activations kept.
#ifndef RLHF_GPT_H
#define RLHF_GPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layer;     // L
    int n_head;      // NH
    int n_embd;      // C
    int block_size;  // largest T
    int vocab_size;  // V
    int value_head;  // 1: the model carries /heads/value.{weight,bias}
} GPTConfig;

// The largest shapes a model may have: a config or a checkpoint outside
// them is refused (config.c, checkpoint.c).
#define GPT_MAX_N_LAYER 4096
#define GPT_MAX_N_EMBD (1 << 16)
#define GPT_MAX_N_HEAD GPT_MAX_N_EMBD  // n_head divides n_embd
#define GPT_MAX_BLOCK_SIZE (1 << 20)
#define GPT_MAX_VOCAB_SIZE (1 << 24)

// The one table of parameters. Every use of a parameter's name, shape,
// position in the flat buffer or place in a checkpoint derives from it.
//   X(member, group, name, per_layer, ndim, rows, cols, present)
// name is a printf pattern (%d = layer) for per-layer tensors; rows x cols is
// the shape of one layer's tensor (rows == 1 for 1-D), in terms of
// V, T (block_size), C; `present` says whether this model has it.
// Weights are stored [out, in] as nn.Linear does; lm_head is tied to wte.
#define GPT_PARAMS(X)                                                                \
    X(wte,      "model", "transformer.wte.weight",              0, 2, V,     C,     1) \
    X(wpe,      "model", "transformer.wpe.weight",              0, 2, T,     C,     1) \
    X(ln1w,     "model", "transformer.h.%d.ln_1.weight",        1, 1, 1,     C,     1) \
    X(ln1b,     "model", "transformer.h.%d.ln_1.bias",          1, 1, 1,     C,     1) \
    X(qkvw,     "model", "transformer.h.%d.attn.c_attn.weight", 1, 2, 3 * C, C,     1) \
    X(qkvb,     "model", "transformer.h.%d.attn.c_attn.bias",   1, 1, 1,     3 * C, 1) \
    X(attprojw, "model", "transformer.h.%d.attn.c_proj.weight", 1, 2, C,     C,     1) \
    X(attprojb, "model", "transformer.h.%d.attn.c_proj.bias",   1, 1, 1,     C,     1) \
    X(ln2w,     "model", "transformer.h.%d.ln_2.weight",        1, 1, 1,     C,     1) \
    X(ln2b,     "model", "transformer.h.%d.ln_2.bias",          1, 1, 1,     C,     1) \
    X(fcw,      "model", "transformer.h.%d.mlp.c_fc.weight",    1, 2, 4 * C, C,     1) \
    X(fcb,      "model", "transformer.h.%d.mlp.c_fc.bias",      1, 1, 1,     4 * C, 1) \
    X(fcprojw,  "model", "transformer.h.%d.mlp.c_proj.weight",  1, 2, C,     4 * C, 1) \
    X(fcprojb,  "model", "transformer.h.%d.mlp.c_proj.bias",    1, 1, 1,     C,     1) \
    X(lnfw,     "model", "transformer.ln_f.weight",             0, 1, 1,     C,     1) \
    X(lnfb,     "model", "transformer.ln_f.bias",               0, 1, 1,     C,     1) \
    X(vw,       "heads", "value.weight",                        0, 1, 1,     C,     H) \
    X(vb,       "heads", "value.bias",                          0, 1, 1,     1,     H)

enum {
#define X(member, ...) PARAM_##member,
    GPT_PARAMS(X)
#undef X
    NUM_PARAM_TENSORS
};

// Named pointers into one flat buffer (params, grads and AdamW moments share
// the layout). A per-layer tensor points at L consecutive copies.
typedef struct {
#define X(member, ...) float *member;
    GPT_PARAMS(X)
#undef X
} ParamTensors;

// What the table says about one tensor, resolved for a given GPTConfig.
typedef struct {
    const char *group;  // HDF5 group: "model" or "heads"
    const char *name;   // printf pattern; %d = layer when per_layer
    int per_layer;      // 1: L copies, one per block
    int ndim;           // 1 or 2
    int rows, cols;     // shape of one copy (rows == 1 when ndim == 1)
    size_t offset;      // first float in the flat buffer
    size_t size;        // floats over all copies; 0 when absent
} ParamInfo;

// Fills info[NUM_PARAM_TENSORS] and returns the total number of floats.
size_t gpt_param_layout(const GPTConfig *c, ParamInfo info[NUM_PARAM_TENSORS]);

// Points each member of t at its tensor inside `memory`.
void gpt_point_params(ParamTensors *t, float *memory, const ParamInfo info[NUM_PARAM_TENSORS]);

// Activations of one forward pass over (B, T), in one arena that grows to
// the largest pass seen and is reused. Per-layer tensors hold D layers:
// D = L when the pass keeps them for gpt_backward (a model being trained),
// D = 1 otherwise, every layer then overwriting the last one's, so that a
// frozen model's arena does not grow with L.
typedef struct {
    float *encoded;    // (B,T,C) token + position embedding
    float *ln1;        // (D,B,T,C) ln_1 output
    float *ln1_mean;   // (D,B,T)
    float *ln1_rstd;   // (D,B,T)
    float *qkv;        // (D,B,T,3C) q | k | v, heads interleaved per C block
    float *att;        // (D,B,NH,T,T) softmax probabilities, 0 above diagonal
    float *atty;       // (D,B,T,C) attention output before c_proj
    float *residual2;  // (D,B,T,C) residual after the attention block
    float *ln2;        // (D,B,T,C)
    float *ln2_mean;   // (D,B,T)
    float *ln2_rstd;   // (D,B,T)
    float *fch;        // (D,B,T,4C) c_fc output, before GELU
    float *fch_gelu;   // (D,B,T,4C)
    float *residual3;  // (D,B,T,C) residual after the MLP block
    float *lnf;        // (B,T,C) final hidden state
    float *lnf_mean;   // (B,T)
    float *lnf_rstd;   // (B,T)
    float *logits;     // (B,T,V) only when the forward asked for logits, else NULL;
                       // a loss that trains through them writes its gradient
                       // over them (GPTTrain.dlogits): one (B,T,V) buffer per model
    float *values;     // (B,T) only when the model has a value head, else NULL
    float *losses;     // (B,T) per-token cross-entropy from gpt_lm_loss
    float *dlosses;    // (B,T) loss weights used by gpt_lm_loss
} Activations;

// What only a model being trained holds (gpt_train_build): gradients and the
// backward pass's scratch. The loss gradient w.r.t. the logits has no
// buffer of its own: it is written over the logits (acts.logits), row by
// row, by the loss that reads them, as llm.c does; at GPT-2's V = 50257 a
// second (B,T,V) buffer would be 0.8 GB at B=4, T=1024.
typedef struct {
    float *grads_memory;  // (num_params) laid out as the params
    ParamTensors grads;
    float *dlogits;       // (B,T,V) == acts.logits once gpt_lm_loss or gpt_logits_to_grad
                          // turned them into the gradient; NULL until then (each forward)
    // backward scratch, overwritten layer by layer
    float *dresidual;     // (B,T,C)
    float *dln;           // (B,T,C)
    float *datty;         // (B,T,C)
    float *dqkv;          // (B,T,3C)
    float *dfch;          // (B,T,4C)
    float *datt;          // (nthreads,T,T) per-thread attention scratch
    float *memory;        // arena of dlogits and the scratch, grown like the activations
    size_t capacity;      // floats
    int *inputs;          // (B,T) token ids of the last forward (a copy)
    size_t inputs_capacity;
    int *pos0;            // (B) its rows' first positions (a copy), when has_pos0
    int has_pos0;         //     (else all 0)
    int kept;             // the last forward kept every layer: gpt_backward may follow
} GPTTrain;

// Precision of the matrix products (the linear layers and the lm_head):
// fp32 through OpenBLAS sgemm, or bf16 through oneDNN (bf16.h) with fp32
// accumulation. Everything else (embeddings, LayerNorm, attention, softmax,
// GELU, losses, gradients, AdamW) is fp32 in both, and the parameters
// themselves stay fp32: a bf16 model holds a bf16 copy of them for the
// products, rounded again after every change (gpt_params_changed).
typedef enum { PRECISION_FP32, PRECISION_BF16 } Precision;

// A model is its description, its weights and the scratch of its forward
// pass; a model being trained also has a GPTTrain. Without one it is
// frozen: it costs its weights plus one layer's activations (gpt_forward)
// or its KV cache (gpt_decode_step).
typedef struct {
    GPTConfig config;
    ParamInfo info[NUM_PARAM_TENSORS];
    size_t num_params;     // floats in each flat buffer
    float *params_memory;  // owned
    ParamTensors params;
    // forward scratch
    Activations acts;
    float *acts_memory;
    size_t acts_capacity;  // floats
    int B, T;              // shape of the last forward
    int has_logits;        // acts.logits holds the last forward's logits (0 after a
                           // forward without them, or once a gradient replaced them)
    GPTTrain *train;       // owned; NULL for a frozen model
    Precision precision;
    int lm_head_fp32;      // bf16: logits and their gradients through fp32 sgemm
    uint16_t *params_bf16; // (num_params) bf16 copy of params_memory, when bf16; owned
    int bf16_stale;        // params changed since the copy was made
} GPT;

// Allocates parameters (zeroed) for config c; call gpt_init_weights or load.
// The model is frozen until gpt_train_build.
void gpt_build(GPT *m, const GPTConfig *c);
// Gives m a training state: zeroed gradients, and every later gpt_forward
// keeps each layer's activations for gpt_backward. Call once; gpt_free
// frees it with the model.
void gpt_train_build(GPT *m);
void gpt_free(GPT *m);

// The precision gpt_build gives new models (PRECISION_FP32 until set): the
// commands set it once from train.precision, before building models.
void gpt_set_default_precision(Precision p);
// Whether models built from now on keep the tied LM head's products in fp32
// when their precision is bf16 (1 until set; train.fp32_lm_head).
void gpt_set_default_lm_head_fp32(int on);
Precision gpt_default_precision(void);
// Switches one model's products to precision p (allocating or freeing the
// bf16 copy). bf16 needs bf16_available().
void gpt_set_precision(GPT *m, Precision p);
// Every writer of params_memory calls this afterwards (AdamW, checkpoint
// loading, initialisation, tests): a bf16 model rounds its copy anew before
// its next product, once, not once per product.
static inline void gpt_params_changed(GPT *m) { m->bf16_stale = 1; }

// GPT-2 initialisation: weights N(0, 0.02), residual projections (attn and
// mlp c_proj) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weights 1. Draws from
// a private RNG seeded with `seed`, in table order, so results do not depend
// on threads. The value head starts at zero.
void gpt_init_weights(GPT *m, unsigned long long seed);

// Number of parameters counted for MFU: all but wpe (and the value head).
size_t gpt_num_flop_params(const GPT *m);
// Model FLOPs per token for a training step at sequence length T:
// 6 * N + 12 * L * T * C.
double gpt_flops_per_token(const GPT *m, int T);

// Forward over inputs (B,T), token ids in [0, V). Fills m->acts.lnf, the
// logits (B,T,V) when with_logits, and m->acts.values (B,T) when the model
// has a value head. B*T is unbounded; T <= block_size. A model with a
// training state keeps every layer's activations for gpt_backward; the
// results are the same bits either way.
void gpt_forward(GPT *m, const int *inputs, int B, int T, int with_logits);
// gpt_forward with row b at positions pos0[b] .. pos0[b] + T - 1 instead of
// 0 .. T - 1 (0 <= pos0[b] <= block_size - T; NULL: all 0): the same
// tokens seen at another place in the context (SFT's sft.shift_positions).
// gpt_backward follows it as it follows gpt_forward.
void gpt_forward_at(GPT *m, const int *inputs, const int *pos0, int B, int T, int with_logits);
// gpt_forward that keeps one layer's activations even on a model with a
// training state, as on a frozen one: for scoring with a model being
// trained (same bits). gpt_backward cannot follow it.
void gpt_forward_nograd(GPT *m, const int *inputs, int B, int T, int with_logits);

// After a forward with logits: weighted cross-entropy against targets (B,T).
// Returns sum_t weights[t] * loss_t (weights NULL means 1/(B*T) each, i.e.
// the mean) and leaves loss_t in m->acts.losses. After a gpt_forward on a
// model with a training state it also writes dlogits = d(that sum)/dlogits
// over the logits, in the same pass (m->train->dlogits then points at them;
// the logits are gone: a second gpt_lm_loss needs a new forward). After a
// gpt_forward_nograd or on a frozen model the logits stay. A target < 0 is
// ignored (weight taken as 0).
float gpt_lm_loss(GPT *m, const int *targets, const float *weights);

// For losses other than gpt_lm_loss that train through the logits (DPO's
// sequence log-probabilities, PPO's clipped surrogate): returns the logits
// (B,T,V) of the last gpt_forward, handed over to be overwritten by their
// gradient. Pass the pointer as both the logits and the dlogits of a loss
// in losses.h (each reads a row before writing that row), then to
// gpt_backward. Sets m->train->dlogits to it; the logits count as gone.
float *gpt_logits_to_grad(GPT *m);

// Sets the gradients to zero (the model must have a training state).
void gpt_zero_grad(GPT *m);

// Backward from the last forward. dlogits (B,T,V) and dvalues (B,T) are the
// gradients of the loss w.r.t. the logits and the value head outputs; either
// may be NULL. dlogits is usually m->train->dlogits (written over the
// logits); any other (B,T,V) buffer does too. Neither is changed.
// Parameter gradients accumulate (+=) into m->train->grads; call
// gpt_zero_grad first.
void gpt_backward(GPT *m, const float *dlogits, const float *dvalues);

// Incremental decoding with a key/value cache. All B rows advance together,
// one position per call; rows never attend to each other.
typedef struct {
    int L, B, T, C;    // cache holds positions [0, T) for B rows
    float *k, *v;      // (L,B,T,C)
    // step scratch: x, ln, atty (B,C); qkv (B,3C); fch (B,4C);
    // att (B,NH,T) scores; stats (2B) LayerNorm mean and rstd
    float *x, *ln, *qkv, *atty, *fch, *att, *stats;
    float *logits;     // (B,V) after the last step
    float *hidden;     // (B,C) final hidden state after the last step
} KVCache;

void kvcache_build(KVCache *kv, const GPTConfig *c, int B, int T);
void kvcache_free(KVCache *kv);

// Feeds tokens (B) at position pos (0 <= pos < kv->T) and writes the
// next-token logits (B,V) into kv->logits. Positions must be fed in order
// 0, 1, 2, ... for the cache to be valid.
void gpt_decode_step(GPT *m, KVCache *kv, const int *tokens, int pos);
// The same for the first n rows only (1 <= n <= B); the others are left as
// they are. A row's numbers may differ in the last bits with n and with its
// place among the rows (the products' shapes change), never with the other
// rows' tokens.
void gpt_decode_rows(GPT *m, KVCache *kv, const int *tokens, int pos, int n);
// Copies row src's cached positions [0, npos) over row dst's, in every layer.
void kvcache_move_row(KVCache *kv, int dst, int src, int npos);

#endif
