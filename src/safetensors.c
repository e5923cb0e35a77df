// safetensors reading and writing (format and checks in safetensors.h).
// The header is parsed with cJSON; tensor bytes are read with pread from an
// already validated range, never through a pointer computed from the file.
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "common.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data in place: a big-endian host needs byte swaps"
#endif

// Largest integer a JSON number (a double) holds exactly.
#define JSON_INT_MAX 9007199254740992.0

static const struct {
    const char *name;
    SafeDtype dtype;
    int size;
} DTYPES[] = {
    {"F32", ST_F32, 4},  {"F16", ST_F16, 2},  {"BF16", ST_BF16, 2}, {"F64", ST_OTHER, 8},
    {"I64", ST_OTHER, 8}, {"I32", ST_OTHER, 4}, {"I16", ST_OTHER, 2}, {"I8", ST_OTHER, 1},
    {"U64", ST_OTHER, 8}, {"U32", ST_OTHER, 4}, {"U16", ST_OTHER, 2}, {"U8", ST_OTHER, 1},
    {"BOOL", ST_OTHER, 1}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
};

static int dtype_size(const char *name, SafeDtype *dtype) {
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (!strcmp(name, DTYPES[i].name)) {
            *dtype = DTYPES[i].dtype;
            return DTYPES[i].size;
        }
    return 0;
}

float safetensors_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf, nan (payload kept)
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
    } else if (mant == 0) {
        bits = sign;  // signed zero
    } else {  // subnormal: mant * 2^-24, exact in float
        float v = (float)mant * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float safetensors_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// pread of exactly n bytes at off; a short read means the file changed.
static int read_at(const SafeTensors *st, void *buf, size_t n, uint64_t off) {
    uint8_t *p = buf;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t got = pread(st->fd, p, chunk, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return rlhf_fail("%s: read failed: %s", st->path, strerror(errno));
        if (got == 0)
            return rlhf_fail("%s: file ended early (truncated while reading?); hint: copy the "
                             "file again", st->path);
        p += got;
        off += (uint64_t)got;
        n -= (size_t)got;
    }
    return 0;
}

// A non-negative integer JSON number (exact in a double).
static int json_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= JSON_INT_MAX) || d != floor(d)) return -1;
    *v = (uint64_t)d;
    return 0;
}

void safetensors_close(SafeTensors *st) {
    if (st->fd >= 0) close(st->fd);
    for (int i = 0; i < st->n; i++) free(st->t[i].name);
    free(st->t);
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->path);
    memset(st, 0, sizeof *st);
    st->fd = -1;
}

static int parse_tensor(SafeTensors *st, const cJSON *item, SafeTensor *t) {
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return rlhf_fail("%s: header entry '%.80s' is not an object; hint: the file is not "
                         "safetensors or is damaged", st->path, name);
    int nkeys = 0;
    for (const cJSON *k = item->child; k; k = k->next) nkeys++;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || nkeys != 3)
        return rlhf_fail("%s: tensor '%.80s' needs exactly dtype (string), shape (array) and "
                         "data_offsets (array); hint: the file is damaged", st->path, name);
    size_t dlen = strlen(dt->valuestring);
    int esize = dlen < sizeof t->dtype_name ? dtype_size(dt->valuestring, &t->dtype) : 0;
    if (!esize)
        return rlhf_fail("%s: tensor '%.80s' has unknown dtype '%.20s'; hint: the file is "
                         "damaged or from a newer format", st->path, name, dt->valuestring);
    memcpy(t->dtype_name, dt->valuestring, dlen + 1);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > SAFETENSORS_MAX_DIMS)
        return rlhf_fail("%s: tensor '%.80s' has %d dimensions (at most %d); hint: the file is "
                         "damaged", st->path, name, ndim, SAFETENSORS_MAX_DIMS);
    t->ndim = ndim;
    // numel * esize must fit the file, which bounds every product below
    uint64_t numel = 1, limit = st->file_size;
    int d = 0;
    for (const cJSON *e = sh->child; e; e = e->next, d++) {
        uint64_t v;
        if (json_uint(e, &v) != 0)
            return rlhf_fail("%s: tensor '%.80s' has a shape entry that is not a non-negative "
                             "integer; hint: the file is damaged", st->path, name);
        t->shape[d] = (int64_t)v;
        if (v != 0 && numel > limit / v) numel = limit + 1;  // too big; keep going to check the rest
        else numel *= v;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(off) != 2 || json_uint(off->child, &begin) != 0 ||
        json_uint(off->child->next, &end) != 0 || end < begin)
        return rlhf_fail("%s: tensor '%.80s' has data_offsets that are not [begin, end] with "
                         "0 <= begin <= end; hint: the file is damaged", st->path, name);
    uint64_t data_size = st->file_size - st->data_start;
    if (end > data_size)
        return rlhf_fail("%s: tensor '%.80s' has data_offsets [%" PRIu64 ", %" PRIu64
                         "] past the end of the data (%" PRIu64 " bytes); hint: the file is "
                         "truncated or damaged", st->path, name, begin, end, data_size);
    if (numel > limit || numel * (uint64_t)esize != end - begin)
        return rlhf_fail("%s: tensor '%.80s' holds %" PRIu64 " bytes but dtype %s x its shape "
                         "needs %s%" PRIu64 "; hint: the file is damaged", st->path, name,
                         end - begin, t->dtype_name, numel > limit ? "more than " : "",
                         numel > limit ? limit : numel * (uint64_t)esize);
    t->numel = numel;
    t->begin = begin;
    t->end = end;
    t->name = strdup_check(name);
    return 0;
}

static int parse_metadata(SafeTensors *st, const cJSON *item) {
    if (!cJSON_IsObject(item))
        return rlhf_fail("%s: __metadata__ is not an object; hint: the file is damaged",
                         st->path);
    int n = cJSON_GetArraySize(item);
    st->meta = callocCheck((size_t)n * 2 + 1, sizeof(char *));
    for (const cJSON *e = item->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return rlhf_fail("%s: __metadata__ value of '%.80s' is not a string; hint: the "
                             "file is damaged", st->path, e->string);
        st->meta[2 * st->n_meta] = strdup_check(e->string);
        st->meta[2 * st->n_meta + 1] = strdup_check(e->valuestring);
        st->n_meta++;
    }
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const SafeTensor *)a)->name, ((const SafeTensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b) {
    const SafeTensor *x = *(const SafeTensor *const *)a, *y = *(const SafeTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Names unique; the tensors' ranges tile [0, data size) exactly.
static int check_layout(SafeTensors *st) {
    if (st->n > 1) {
        SafeTensor *copy = mallocCheck((size_t)st->n * sizeof *copy);
        memcpy(copy, st->t, (size_t)st->n * sizeof *copy);
        qsort(copy, (size_t)st->n, sizeof *copy, cmp_name);
        int rc = 0;
        for (int i = 1; i < st->n && rc == 0; i++)
            if (!strcmp(copy[i - 1].name, copy[i].name))
                rc = rlhf_fail("%s: tensor '%.80s' appears twice in the header; hint: the file "
                               "is damaged", st->path, copy[i].name);
        free(copy);
        if (rc) return rc;
    }
    const SafeTensor **order = mallocCheck(((size_t)st->n + 1) * sizeof *order);
    for (int i = 0; i < st->n; i++) order[i] = &st->t[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_begin);
    uint64_t at = 0, data_size = st->file_size - st->data_start;
    int rc = 0;
    for (int i = 0; i < st->n && rc == 0; i++) {
        const SafeTensor *t = order[i];
        if (t->begin < at)
            rc = rlhf_fail("%s: tensor '%.80s' (bytes %" PRIu64 "..%" PRIu64 ") overlaps "
                           "tensor '%.80s'; hint: the file is damaged", st->path, t->name,
                           t->begin, t->end, order[i - 1]->name);
        else if (t->begin > at)
            rc = rlhf_fail("%s: %" PRIu64 " bytes before tensor '%.80s' belong to no tensor; "
                           "hint: the file is damaged", st->path, t->begin - at, t->name);
        at = t->end > at ? t->end : at;
    }
    if (rc == 0 && at != data_size)
        rc = rlhf_fail("%s: %" PRIu64 " bytes after the last tensor belong to no tensor; hint: "
                       "the file is damaged or was appended to", st->path, data_size - at);
    free(order);
    return rc;
}

int safetensors_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->fd = -1;
    st->path = strdup_check(path);
    st->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (st->fd < 0)
        return rlhf_fail("%s: cannot open: %s; hint: check the path", path, strerror(errno));
    struct stat sb;
    if (fstat(st->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return rlhf_fail("%s: not a regular file; hint: give the model.safetensors file", path);
    st->file_size = (uint64_t)sb.st_size;
    uint8_t len8[8];
    if (st->file_size < 8)
        return rlhf_fail("%s: %" PRIu64 " bytes, too short for a safetensors header; hint: the "
                         "file is truncated", path, st->file_size);
    if (read_at(st, len8, 8, 0) != 0) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
    if (n > SAFETENSORS_MAX_HEADER)
        return rlhf_fail("%s: header length %" PRIu64 " exceeds the %u-byte limit; hint: the "
                         "file is damaged or not safetensors", path, n, SAFETENSORS_MAX_HEADER);
    if (n > st->file_size - 8)
        return rlhf_fail("%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64
                         " bytes); hint: the file is truncated or not safetensors", path, n,
                         st->file_size);
    if (n < 2)
        return rlhf_fail("%s: header of %" PRIu64 " bytes cannot hold a JSON object; hint: the "
                         "file is damaged or not safetensors", path, n);
    st->data_start = 8 + n;
    char *text = mallocCheck(n + 1);
    if (read_at(st, text, n, 8) != 0) {
        free(text);
        return -1;
    }
    text[n] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    int rc = 0;
    if (!root || !cJSON_IsObject(root)) {
        rc = rlhf_fail("%s: header is not a JSON object; hint: the file is damaged or not "
                       "safetensors", path);
    } else {
        // what follows the object may only be the writer's space padding
        for (const char *p = end; p < text + n; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
                rc = rlhf_fail("%s: header has bytes after its JSON object; hint: the file is "
                               "damaged", path);
                break;
            }
    }
    if (rc == 0) {
        int count = cJSON_GetArraySize(root);
        st->t = callocCheck((size_t)count + 1, sizeof *st->t);
        int seen_meta = 0;
        for (const cJSON *item = root->child; item && rc == 0; item = item->next) {
            if (!item->string || !item->string[0]) {
                rc = rlhf_fail("%s: header has a tensor with an empty name; hint: the file is "
                               "damaged", path);
            } else if (!strcmp(item->string, "__metadata__")) {
                rc = seen_meta++ ? rlhf_fail("%s: header has two __metadata__ entries; hint: "
                                             "the file is damaged", path)
                                 : parse_metadata(st, item);
            } else {
                rc = parse_tensor(st, item, &st->t[st->n]);
                if (rc == 0) st->n++;
            }
        }
    }
    cJSON_Delete(root);
    free(text);
    if (rc == 0) rc = check_layout(st);
    return rc;
}

const SafeTensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) return &st->t[i];
    return NULL;
}

const char *safetensors_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

int safetensors_read_f32(const SafeTensors *st, const SafeTensor *t, float *out, size_t n) {
    if (n != t->numel)
        return rlhf_fail("%s: tensor '%.80s' has %" PRIu64 " values, %zu expected", st->path,
                         t->name, t->numel, n);
    if (t->dtype == ST_F32) return read_at(st, out, n * 4, st->data_start + t->begin);
    if (t->dtype != ST_F16 && t->dtype != ST_BF16)
        return rlhf_fail("%s: tensor '%.80s' has dtype %s; hint: only F32, F16 and BF16 "
                         "weights can be read", st->path, t->name, t->dtype_name);
    // 16-bit values, converted in blocks through a small buffer
    enum { BLOCK = 1 << 16 };
    uint16_t *buf = mallocCheck(BLOCK * sizeof *buf);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i += BLOCK) {
        size_t m = n - i < BLOCK ? n - i : BLOCK;
        rc = read_at(st, buf, m * 2, st->data_start + t->begin + i * 2);
        for (size_t j = 0; j < m && rc == 0; j++)
            out[i + j] = t->dtype == ST_F16 ? safetensors_f16_to_f32(buf[j])
                                            : safetensors_bf16_to_f32(buf[j]);
    }
    free(buf);
    return rc;
}

// --- writing -------------------------------------------------------------------

static uint64_t out_numel(const SafeTensorOut *t) {
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
    return numel;
}

int safetensors_write(FILE *f, const SafeTensorOut *t, int n, const char *const *meta,
                      int n_meta) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return rlhf_fail("safetensors: out of memory building the header");
    int rc = 0;
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta && m; i++)
            if (!cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1])) m = NULL;
        if (!m) rc = rlhf_fail("safetensors: out of memory building the header");
    }
    uint64_t at = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        ASSERT(t[i].ndim >= 0 && t[i].ndim <= SAFETENSORS_MAX_DIMS);
        if (!t[i].name[0] || !strcmp(t[i].name, "__metadata__") ||
            cJSON_GetObjectItemCaseSensitive(root, t[i].name)) {
            rc = rlhf_fail("safetensors: tensor name '%.80s' is empty, reserved or repeated",
                           t[i].name);
            break;
        }
        uint64_t bytes = out_numel(&t[i]) * 4;
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *off = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        int ok = off && cJSON_AddStringToObject(e, "dtype", "F32");
        for (int d = 0; d < t[i].ndim && ok; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        ok = ok && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)at)) &&
             cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(at + bytes)));
        if (!ok) rc = rlhf_fail("safetensors: out of memory building the header");
        at += bytes;
    }
    char *text = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == 0 && !text) rc = rlhf_fail("safetensors: out of memory printing the header");
    if (rc != 0) return rc;
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(text, 1, len, f) == len;
    for (size_t i = len; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
    free(text);
    for (int i = 0; i < n && ok; i++) {
        size_t count = (size_t)out_numel(&t[i]);
        ok = fwrite(t[i].data, sizeof(float), count, f) == count;
    }
    if (!ok) return rlhf_fail("safetensors: write failed: %s; hint: check free disk space",
                              strerror(errno));
    return 0;
}
