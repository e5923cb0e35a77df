// Hugging Face GPT-2 directories <-> our GPT: config.json and the tensors of
// model.safetensors (GPT2LMHeadModel's layout). Hugging Face's Conv1D stores
// a linear weight as [in, out], ours (nn.Linear, DESIGN.md) as [out, in], so
// the four projection weights of every block are transposed each way; every
// other tensor is copied as it is, so export(import(x)) gives x's bits back.
// Knows nothing of HDF5 or tokenizer files: train/import.c and
// train/export.c put the pieces together.
#ifndef RLHF_HF_H
#define RLHF_HF_H

#include <stdio.h>

#include "gpt.h"
#include "safetensors.h"

// What config.json says. hf_config_read refuses (-1, one-line reason) what
// our GPT cannot represent: another model_type, an activation other than
// gelu_new (tanh GELU), layer_norm_epsilon other than 1e-5, n_inner other
// than 4 n_embd, untied embeddings, scaled-by-layer attention, cross
// attention, shapes outside GPT_MAX_*.
typedef struct {
    int n_layer, n_head, n_embd;
    int n_positions;  // block_size (n_ctx when n_positions is absent)
    int vocab_size;   // rows of wte in the file
} HfConfig;

int hf_config_read(const char *path, HfConfig *hc);

// config.json text for m (GPT2LMHeadModel, model_type gpt2, tied embeddings,
// gelu_new, epsilon 1e-5, n_positions = block_size; bos/eos = eot). Returns
// a malloc'd string (caller frees).
char *hf_config_json(const GPT *m, int eot);

// Fills m's weights from st. m is built with the file's n_layer, n_head,
// n_embd, n_positions and a vocab_size >= hc->vocab_size; rows
// [hc->vocab_size, V) of wte, absent from the file, become the mean of the
// file's rows (each column summed in double in row order, divided by the row
// count, rounded to float). Names may carry the "transformer." prefix or
// not; the attn.bias / attn.masked_bias buffers are skipped; lm_head.weight,
// when present, must equal wte bit for bit (the head is tied). Any other
// tensor, a missing one, a wrong shape or a dtype other than F32/F16/BF16
// is refused (-1, one-line reason).
int hf_import_weights(const SafeTensors *st, const HfConfig *hc, GPT *m);

// Whether st holds at least half the values of the model hc describes: called
// before the model is built, so that a config.json with enormous shapes next
// to a small file is refused before anything that size is allocated.
int hf_check_size(const SafeTensors *st, const HfConfig *hc);

// The mean-row rule above, for tests: row[C] = mean of wte rows [0, rows).
void hf_mean_row(const float *wte, int rows, int C, float *row);

// Writes m's weights to f as model.safetensors in GPT2LMHeadModel's layout:
// "transformer."-prefixed names, Conv1D weights [in, out], float32, no
// lm_head.weight (tied; transformers writes the file the same way) and
// __metadata__ {"format": "pt"}, which transformers' loader requires.
int hf_export_weights(FILE *f, const GPT *m);

#endif
