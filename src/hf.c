// Hugging Face GPT-2 <-> our GPT: config.json (read and written with cJSON)
// and the tensor mapping of model.safetensors. See hf.h for the rules.
#include "hf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "common.h"

#define HF_PREFIX "transformer."
#define HF_MAX_CONFIG (1 << 20)  // bytes of config.json read

// Conv1D weights: stored [in, out] by Hugging Face, [out, in] by us.
static int param_transposed(int p) {
    return p == PARAM_qkvw || p == PARAM_attprojw || p == PARAM_fcw || p == PARAM_fcprojw;
}

// --- config.json -------------------------------------------------------------------

static char *read_small_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        rlhf_fail("%s: cannot open; hint: a Hugging Face GPT-2 directory holds config.json "
                  "and model.safetensors", path);
        return NULL;
    }
    char *buf = mallocCheck(HF_MAX_CONFIG + 1);
    size_t n = fread(buf, 1, HF_MAX_CONFIG + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > HF_MAX_CONFIG) {
        free(buf);
        rlhf_fail("%s: %s", path, err ? "read failed" : "larger than 1 MB; hint: not a config.json");
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

// An integer key in [lo, hi]; absent: -1 unless def >= 0 gives the default.
static int config_int(const char *path, const cJSON *root, const char *key, long lo, long hi,
                      long def, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (def < 0) return rlhf_fail("%s: no '%s'; hint: not a GPT-2 config.json", path, key);
        *out = (int)def;
        return 0;
    }
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return rlhf_fail("%s: '%s' must be an integer in [%ld, %ld]; hint: rlhf.c cannot "
                         "represent this model", path, key, lo, hi);
    *out = (int)d;
    return 0;
}

// A boolean key that must have the value `want` (absent: its default `def`).
static int config_bool(const char *path, const cJSON *root, const char *key, int def, int want,
                       const char *why) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    int v = def;
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsBool(j)) return rlhf_fail("%s: '%s' must be true or false", path, key);
        v = cJSON_IsTrue(j);
    }
    if (v != want)
        return rlhf_fail("%s: %s = %s is not supported: %s", path, key, v ? "true" : "false", why);
    return 0;
}

static int config_check(const char *path, const cJSON *root, HfConfig *hc) {
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (mt && (!cJSON_IsString(mt) || strcmp(mt->valuestring, "gpt2") != 0))
        return rlhf_fail("%s: model_type is %.40s, not gpt2; hint: rlhf.c imports GPT-2 "
                         "models only", path, cJSON_IsString(mt) ? mt->valuestring : "not a string");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "activation_function");
    if (act && !cJSON_IsNull(act) &&
        (!cJSON_IsString(act) || (strcmp(act->valuestring, "gelu_new") != 0 &&
                                  strcmp(act->valuestring, "gelu_pytorch_tanh") != 0)))
        return rlhf_fail("%s: activation_function %.40s is not supported: rlhf.c's MLP uses "
                         "the tanh GELU (gelu_new)", path,
                         cJSON_IsString(act) ? act->valuestring : "(not a string)");
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_epsilon");
    if (eps && !cJSON_IsNull(eps) &&
        (!cJSON_IsNumber(eps) || fabs(eps->valuedouble - 1e-5) > 1e-12))
        return rlhf_fail("%s: layer_norm_epsilon %g is not supported: rlhf.c's LayerNorm uses "
                         "1e-5", path, cJSON_IsNumber(eps) ? eps->valuedouble : NAN);
    if (config_int(path, root, "n_layer", 1, GPT_MAX_N_LAYER, -1, &hc->n_layer) ||
        config_int(path, root, "n_embd", 1, GPT_MAX_N_EMBD, -1, &hc->n_embd) ||
        config_int(path, root, "n_head", 1, GPT_MAX_N_HEAD, -1, &hc->n_head) ||
        config_int(path, root, "vocab_size", 1, GPT_MAX_VOCAB_SIZE, -1, &hc->vocab_size))
        return -1;
    int n_ctx = -1;
    if (cJSON_GetObjectItemCaseSensitive(root, "n_positions")) {
        if (config_int(path, root, "n_positions", 1, GPT_MAX_BLOCK_SIZE, -1, &hc->n_positions))
            return -1;
    } else if (config_int(path, root, "n_ctx", 1, GPT_MAX_BLOCK_SIZE, -1, &n_ctx) == 0) {
        hc->n_positions = n_ctx;
    } else {
        return rlhf_fail("%s: neither n_positions nor n_ctx; hint: not a GPT-2 config.json", path);
    }
    if (hc->n_embd % hc->n_head != 0)
        return rlhf_fail("%s: n_embd %d is not a multiple of n_head %d", path, hc->n_embd,
                         hc->n_head);
    int n_inner;
    if (config_int(path, root, "n_inner", 1, 4L * GPT_MAX_N_EMBD, 4L * hc->n_embd, &n_inner))
        return -1;
    if (n_inner != 4 * hc->n_embd)
        return rlhf_fail("%s: n_inner %d is not supported: rlhf.c's MLP is 4 x n_embd = %d wide",
                         path, n_inner, 4 * hc->n_embd);
    return config_bool(path, root, "tie_word_embeddings", 1, 1,
                       "rlhf.c ties the LM head to the token embedding") ||
           config_bool(path, root, "scale_attn_weights", 1, 1,
                       "rlhf.c scales attention scores by 1/sqrt(head size)") ||
           config_bool(path, root, "scale_attn_by_inverse_layer_idx", 0, 0,
                       "rlhf.c does not scale attention by layer") ||
           config_bool(path, root, "add_cross_attention", 0, 0,
                       "rlhf.c's blocks have no cross attention");
}

int hf_config_read(const char *path, HfConfig *hc) {
    memset(hc, 0, sizeof *hc);
    char *text = read_small_file(path);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = cJSON_IsObject(root) ? config_check(path, root, hc)
                                  : rlhf_fail("%s: not a JSON object; hint: give a Hugging "
                                              "Face GPT-2 config.json", path);
    cJSON_Delete(root);
    return rc;
}

char *hf_config_json(const GPT *m, int eot) {
    const GPTConfig *c = &m->config;
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(root, "model_type", "gpt2");
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "n_positions", c->block_size);
    cJSON_AddNumberToObject(root, "n_ctx", c->block_size);
    cJSON_AddNumberToObject(root, "n_embd", c->n_embd);
    cJSON_AddNumberToObject(root, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(root, "n_head", c->n_head);
    cJSON_AddNullToObject(root, "n_inner");
    cJSON_AddStringToObject(root, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(root, "layer_norm_epsilon", 1e-5);
    // rlhf.c trains without dropout
    cJSON_AddNumberToObject(root, "resid_pdrop", 0.0);
    cJSON_AddNumberToObject(root, "embd_pdrop", 0.0);
    cJSON_AddNumberToObject(root, "attn_pdrop", 0.0);
    cJSON_AddNumberToObject(root, "initializer_range", 0.02);
    cJSON_AddBoolToObject(root, "scale_attn_weights", 1);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", 1);
    cJSON_AddNumberToObject(root, "bos_token_id", eot);
    cJSON_AddNumberToObject(root, "eos_token_id", eot);
    cJSON_AddStringToObject(root, "torch_dtype", "float32");
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    ASSERT(text);
    char *out = mallocCheck(strlen(text) + 2);
    sprintf(out, "%s\n", text);
    free(text);
    return out;
}

// --- weights -------------------------------------------------------------------------

void hf_mean_row(const float *wte, int rows, int C, float *row) {
    double *sum = callocCheck((size_t)C, sizeof *sum);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < C; j++) sum[j] += (double)wte[(size_t)r * C + j];
    for (int j = 0; j < C; j++) row[j] = (float)(sum[j] / rows);
    free(sum);
}

// "h.12.attn.bias" or "h.12.attn.masked_bias": a buffer, not a weight.
static int is_attn_buffer(const char *name) {
    if (strncmp(name, "h.", 2) != 0) return 0;
    const char *p = name + 2;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    return !strcmp(p, ".attn.bias") || !strcmp(p, ".attn.masked_bias");
}

static const char *strip_prefix(const char *name) {
    return strncmp(name, HF_PREFIX, strlen(HF_PREFIX)) ? name : name + strlen(HF_PREFIX);
}

// Our name (with the prefix) of tensor p, layer l.
static void param_name(const ParamInfo *pi, int l, char *buf, size_t n) {
    if (pi->per_layer) snprintf(buf, n, pi->name, l);
    else snprintf(buf, n, "%s", pi->name);
}

// Reads tensor `name` (unprefixed) of the HF shape dims[0..ndim) into out.
static int read_checked(const SafeTensors *st, const SafeTensor *const *found, const char *name,
                        int ndim, const int64_t *dims, float *out) {
    ASSERT(ndim == 1 || ndim == 2);  // GPT-2's tensors
    const SafeTensor *t = found ? *found : NULL;
    if (!t)
        return rlhf_fail("%s: no tensor '%s' (with or without the '" HF_PREFIX "' prefix); "
                         "hint: not a complete GPT-2 model", st->path, name);
    int ok = t->ndim == ndim;
    for (int d = 0; d < ndim && ok; d++) ok = t->shape[d] == dims[d];
    if (!ok) {
        char want[64], got[128];
        int w = snprintf(want, sizeof want, "[");
        for (int d = 0; d < ndim; d++) w += snprintf(want + w, sizeof want - w, "%s%lld", d ? ", " : "", (long long)dims[d]);
        snprintf(want + w, sizeof want - w, "]");
        int g = snprintf(got, sizeof got, "[");
        for (int d = 0; d < t->ndim; d++) g += snprintf(got + g, sizeof got - g, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        snprintf(got + g, sizeof got - g, "]");
        return rlhf_fail("%s: tensor '%s' has shape %s, config.json implies %s; hint: the "
                         "weights do not match config.json", st->path, t->name, got, want);
    }
    uint64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= (uint64_t)dims[d];
    return safetensors_read_f32(st, t, out, (size_t)numel);
}

// Index of the unprefixed name in names[0..n), or -1.
static int name_index(char **names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return i;
    return -1;
}

int hf_check_size(const SafeTensors *st, const HfConfig *hc) {
    GPTConfig c = {.n_layer = hc->n_layer, .n_head = hc->n_head, .n_embd = hc->n_embd,
                   .block_size = hc->n_positions, .vocab_size = hc->vocab_size};
    ParamInfo info[NUM_PARAM_TENSORS];
    uint64_t need = gpt_param_layout(&c, info), have = 0;
    for (int i = 0; i < st->n; i++)
        if (!is_attn_buffer(strip_prefix(st->t[i].name))) have += st->t[i].numel;
    // only a gross mismatch here; a missing or misshapen tensor is named later
    if (need / 2 > have)
        return rlhf_fail("%s holds %llu values, far fewer than the %llu of the model "
                         "config.json describes; hint: the weights do not match config.json", st->path,
                         (unsigned long long)have, (unsigned long long)need);
    return 0;
}

int hf_import_weights(const SafeTensors *st, const HfConfig *hc, GPT *m) {
    const GPTConfig *c = &m->config;
    ASSERT(c->n_layer == hc->n_layer && c->n_embd == hc->n_embd && c->n_head == hc->n_head &&
           c->block_size == hc->n_positions && c->vocab_size >= hc->vocab_size);
    const int L = c->n_layer, C = c->n_embd;
    // every tensor of the file, by its unprefixed name: known, a buffer, or refused
    char **names = callocCheck((size_t)st->n + 1, sizeof *names);
    const SafeTensor **by_index = callocCheck((size_t)st->n + 1, sizeof *by_index);
    int rc = 0, n = 0;
    const SafeTensor *lm_head = NULL;
    for (int i = 0; i < st->n && rc == 0; i++) {
        const char *name = strip_prefix(st->t[i].name);
        if (is_attn_buffer(name)) continue;
        if (!strcmp(name, "lm_head.weight")) {
            lm_head = &st->t[i];
            continue;
        }
        if (name_index(names, n, name) >= 0) {
            rc = rlhf_fail("%s: tensor '%s' is there both with and without the '" HF_PREFIX
                           "' prefix; hint: the file is not one model", st->path, name);
            break;
        }
        names[n] = (char *)name;
        by_index[n++] = &st->t[i];
    }
    // which of them GPT-2 has: every one must be used
    char *used = callocCheck((size_t)n + 1, 1);
    size_t largest = 0;
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        size_t one = (size_t)m->info[p].rows * m->info[p].cols;
        if (param_transposed(p) && one > largest) largest = one;
    }
    float *buf = mallocCheck((largest + 1) * sizeof(float));  // a transposed weight
    for (int p = 0; p < NUM_PARAM_TENSORS && rc == 0; p++) {
        const ParamInfo *pi = &m->info[p];
        if (strcmp(pi->group, "model") != 0 || pi->size == 0) continue;
        float *dst = m->params_memory + pi->offset;
        for (int l = 0; l < (pi->per_layer ? L : 1) && rc == 0; l++) {
            char full[128];
            param_name(pi, l, full, sizeof full);
            const char *name = strip_prefix(full);
            int k = name_index(names, n, name);
            if (k >= 0) used[k] = 1;
            const size_t one = (size_t)pi->rows * pi->cols;
            float *out = dst + (size_t)l * one;
            if (p == PARAM_wte) {  // the file's rows; ours may be more
                int64_t dims[2] = {hc->vocab_size, C};
                rc = read_checked(st, k >= 0 ? &by_index[k] : NULL, name, 2, dims, out);
                if (rc == 0 && c->vocab_size > hc->vocab_size) {
                    float *mean = out + (size_t)hc->vocab_size * C;
                    hf_mean_row(out, hc->vocab_size, C, mean);
                    for (int r = hc->vocab_size + 1; r < c->vocab_size; r++)
                        memcpy(out + (size_t)r * C, mean, (size_t)C * sizeof(float));
                }
            } else if (param_transposed(p)) {  // HF [in, out] = [cols, rows]
                int64_t dims[2] = {pi->cols, pi->rows};
                rc = read_checked(st, k >= 0 ? &by_index[k] : NULL, name, 2, dims, buf);
                for (int i = 0; i < pi->cols && rc == 0; i++)
                    for (int o = 0; o < pi->rows; o++)
                        out[(size_t)o * pi->cols + i] = buf[(size_t)i * pi->rows + o];
            } else {
                const int64_t dims[2] = {pi->ndim == 1 ? pi->cols : pi->rows, pi->cols};
                rc = read_checked(st, k >= 0 ? &by_index[k] : NULL, name, pi->ndim, dims, out);
            }
        }
    }
    for (int k = 0; k < n && rc == 0; k++)
        if (!used[k])
            rc = rlhf_fail("%s: tensor '%s' is not part of a GPT-2 language model (n_layer %d); "
                           "hint: rlhf.c imports GPT2LMHeadModel / GPT2Model weights only",
                           st->path, by_index[k]->name, L);
    for (int p = 0; p < NUM_PARAM_TENSORS && rc == 0; p++) {  // as the checkpoint loader will
        const ParamInfo *pi = &m->info[p];
        for (size_t i = 0; i < pi->size; i++)
            if (!isfinite(m->params_memory[pi->offset + i])) {
                char name[128];
                param_name(pi, pi->per_layer ? (int)(i / ((size_t)pi->rows * pi->cols)) : 0,
                           name, sizeof name);
                rc = rlhf_fail("%s: tensor %s holds NaN or Inf; hint: the weights are damaged",
                               st->path, strip_prefix(name));
                break;
            }
    }
    if (rc == 0 && lm_head) {  // tied: it must be wte itself
        size_t count = (size_t)hc->vocab_size * C;
        float *head = mallocCheck(count * sizeof(float) + 1);
        int64_t dims[2] = {hc->vocab_size, C};
        rc = read_checked(st, &lm_head, "lm_head.weight", 2, dims, head);
        if (rc == 0 && memcmp(head, m->params.wte, count * sizeof(float)) != 0)
            rc = rlhf_fail("%s: lm_head.weight differs from wte.weight; hint: rlhf.c ties the LM "
                           "head to the token embedding, so an untied head cannot be imported",
                           st->path);
        free(head);
    }
    free(buf);
    free(used);
    free(by_index);
    free(names);
    gpt_params_changed(m);
    return rc;
}

int hf_export_weights(FILE *f, const GPT *m) {
    const GPTConfig *c = &m->config;
    const int L = c->n_layer;
    int count = 0;
    for (int p = 0; p < NUM_PARAM_TENSORS; p++)
        if (!strcmp(m->info[p].group, "model") && m->info[p].size)
            count += m->info[p].per_layer ? L : 1;
    SafeTensorOut *t = callocCheck((size_t)count, sizeof *t);
    char (*names)[128] = callocCheck((size_t)count, sizeof *names);
    float **owned = callocCheck((size_t)count, sizeof *owned);
    int k = 0;
    for (int p = 0; p < NUM_PARAM_TENSORS; p++) {
        const ParamInfo *pi = &m->info[p];
        if (strcmp(pi->group, "model") != 0 || pi->size == 0) continue;
        for (int l = 0; l < (pi->per_layer ? L : 1); l++, k++) {
            param_name(pi, l, names[k], sizeof names[k]);
            const size_t one = (size_t)pi->rows * pi->cols;
            const float *src = m->params_memory + pi->offset + (size_t)l * one;
            t[k].name = names[k];
            t[k].ndim = pi->ndim;
            if (pi->ndim == 1) {
                t[k].shape[0] = pi->cols;
                t[k].data = src;
            } else if (param_transposed(p)) {
                float *tr = mallocCheck(one * sizeof(float));
                for (int o = 0; o < pi->rows; o++)
                    for (int i = 0; i < pi->cols; i++)
                        tr[(size_t)i * pi->rows + o] = src[(size_t)o * pi->cols + i];
                owned[k] = tr;
                t[k].shape[0] = pi->cols;
                t[k].shape[1] = pi->rows;
                t[k].data = tr;
            } else {
                t[k].shape[0] = pi->rows;
                t[k].shape[1] = pi->cols;
                t[k].data = src;
            }
        }
    }
    const char *meta[] = {"format", "pt"};
    int rc = safetensors_write(f, t, count, meta, 1);
    for (int i = 0; i < count; i++) free(owned[i]);
    free(owned);
    free(names);
    free(t);
    return rc;
}
