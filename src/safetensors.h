// The safetensors format (Hugging Face): an 8-byte little-endian header
// length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets":
// [begin, end]}, optional "__metadata__": {string: string}}, then the raw
// little-endian tensor bytes, offsets counted from the end of the header.
// Reading checks every field before any tensor byte is touched: the header
// fits the file and is at most SAFETENSORS_MAX_HEADER bytes of JSON, names
// are unique, shapes are sane, each tensor's bytes are exactly dtype x shape
// and lie inside the data, and the tensors tile the data without overlap,
// gap or trailing bytes (as the reference implementation requires). Tensor
// bytes are read with pread, so no offset can reach outside the file.
// This file knows the container only, not what a GPT's tensors are called.
#ifndef RLHF_SAFETENSORS_H
#define RLHF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SAFETENSORS_MAX_HEADER (100u << 20)  // bytes of JSON header accepted
#define SAFETENSORS_MAX_DIMS 8

// The dtypes a tensor may be read as float32 from; any other dtype in a file
// is refused when the tensor is read (listing it is fine).
typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } SafeDtype;

typedef struct {
    char *name;             // owned
    char dtype_name[16];    // as in the file ("F32", "I64", ...)
    SafeDtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t numel;         // product of shape (1 for a scalar)
    uint64_t begin, end;    // byte range inside the data section
} SafeTensor;

typedef struct {
    int fd;
    char *path;             // owned
    uint64_t file_size;
    uint64_t data_start;    // 8 + N
    int n;
    SafeTensor *t;          // n tensors, in header order
    int n_meta;
    char **meta;            // n_meta key/value pairs: meta[2i] key, meta[2i+1] value
} SafeTensors;

// Opens and validates PATH (see the top of this file). Returns 0, or -1 with
// a one-line reason naming the file; st needs safetensors_close either way
// (and only after an open).
int safetensors_open(SafeTensors *st, const char *path);
void safetensors_close(SafeTensors *st);

// The tensor called name, or NULL.
const SafeTensor *safetensors_find(const SafeTensors *st, const char *name);
// The value of a __metadata__ key, or NULL.
const char *safetensors_meta(const SafeTensors *st, const char *key);

// Reads tensor t as float32 into out, which holds n == t->numel floats:
// F32 as is, F16 and BF16 converted exactly. Other dtypes: -1 with a reason.
int safetensors_read_f32(const SafeTensors *st, const SafeTensor *t, float *out, size_t n);

// One tensor to write: float32 data of shape[0..ndim).
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const float *data;
} SafeTensorOut;

// Writes n float32 tensors, in the order given, to f (an AtomicFile's stream
// in practice), with __metadata__ from meta[2i] = key, meta[2i+1] = value
// (n_meta pairs; none when 0). The header is padded with spaces to a multiple
// of 8 bytes so that the data stays aligned. Names must be unique and
// non-empty. Returns 0, or -1 with a reason.
int safetensors_write(FILE *f, const SafeTensorOut *t, int n, const char *const *meta,
                      int n_meta);

// float32 value of an IEEE half / bfloat16 bit pattern (exact).
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t h);

#endif
