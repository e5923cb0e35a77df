// bf16 products through oneDNN's matmul primitive; see bf16.h. Primitives
// and their memory objects are created once per (shape, strides, beta,
// threads) and kept in a small table; a call only points the memory objects
// at this call's buffers and executes.
#include "bf16.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "ops.h"

void bf16_round(bf16 *dst, const float *src, size_t n) {
#pragma omp parallel for simd schedule(static) if (parallel : omp_worth((long)n))
    for (size_t i = 0; i < n; i++) dst[i] = bf16_from_float(src[i]);
}

void bf16_round_transposed(bf16 *dst, const float *src, int rows, int cols) {
    // 32x32 blocks: reads and writes both stay within a few cache lines
    enum { TB = 32 };
    const int rb = (rows + TB - 1) / TB, cb = (cols + TB - 1) / TB;
#pragma omp parallel for collapse(2) schedule(static) if (omp_worth((long)rows * cols))
    for (int bi = 0; bi < cb; bi++) {
        for (int bj = 0; bj < rb; bj++) {
            int c1 = (bi + 1) * TB < cols ? (bi + 1) * TB : cols;
            int r1 = (bj + 1) * TB < rows ? (bj + 1) * TB : rows;
            for (int c = bi * TB; c < c1; c++)
                for (int r = bj * TB; r < r1; r++)
                    dst[(size_t)c * rows + r] = bf16_from_float(src[(size_t)r * cols + c]);
        }
    }
}

typedef struct {
    int trans_a, trans_b, M, N, K, lda, ldb, ldc, accumulate, threads;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} Entry;

// decoding with finished rows dropped meets every M from its batch size down
#define CACHE_MAX 1024

static struct {
    int init;          // 1 ok, -1 failed (why in backend)
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    Entry *entries;
    int n;
    int probed;        // bf16_available has run
    int available;
    char backend[160];
} g;

static int engine_init(void) {
    if (g.init) return g.init > 0;
    g.init = -1;
    if (dnnl_engine_create(&g.engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(g.backend, sizeof g.backend, "unavailable: oneDNN has no CPU engine");
        return 0;
    }
    if (dnnl_stream_create(&g.stream, g.engine, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(g.engine);
        snprintf(g.backend, sizeof g.backend, "unavailable: oneDNN cannot create a stream");
        return 0;
    }
    g.entries = callocCheck(CACHE_MAX, sizeof(Entry));
    g.init = 1;
    return 1;
}

static void md2(dnnl_memory_desc_t *md, int rows, int cols, int trans, int ld,
                dnnl_data_type_t dt) {
    // logical (rows, cols); stored row-major with stride ld, or transposed
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
    ASSERT(st == dnnl_success);
}

// Creates the primitive for e's key; returns 0, or -1 (why in g.backend
// when `why` is set). impl receives oneDNN's implementation name.
static int entry_create(Entry *e, const char **impl) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    md2(&a_md, e->M, e->K, e->trans_a, e->lda, dnnl_bf16);
    md2(&b_md, e->K, e->N, e->trans_b, e->ldb, dnnl_bf16);
    md2(&c_md, e->M, e->N, 0, e->ldc, dnnl_f32);
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md) != dnnl_success) return -1;
    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
    dnnl_post_ops_t po = NULL;
    if (e->accumulate) {
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, g.engine, NULL);
    if (po) dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return -1;
    if (impl) {
        static char name[64];
        const char *s = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
        snprintf(name, sizeof name, "%s", s ? s : "?");
        *impl = name;
    }
    st = dnnl_primitive_create(&e->prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return -1;
    if (dnnl_memory_create(&e->a, &a_md, g.engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->b, &b_md, g.engine, DNNL_MEMORY_NONE) != dnnl_success ||
        dnnl_memory_create(&e->c, &c_md, g.engine, DNNL_MEMORY_NONE) != dnnl_success)
        return -1;
    return 0;
}

static void entry_destroy(Entry *e) {
    if (e->a) dnnl_memory_destroy(e->a);
    if (e->b) dnnl_memory_destroy(e->b);
    if (e->c) dnnl_memory_destroy(e->c);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    memset(e, 0, sizeof *e);
}

void bf16_release(void) {
    for (int i = 0; i < g.n; i++) entry_destroy(&g.entries[i]);
    g.n = 0;
}

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int bf16_available(void) {
    if (g.probed) return g.available;
    g.probed = 1;
    if (!engine_init()) return 0;
    const dnnl_version_t *v = dnnl_version();
    Entry e = {.M = 64, .N = 64, .K = 64, .lda = 64, .ldb = 64, .ldc = 64, .trans_b = 1};
    const char *impl = NULL;
    if (entry_create(&e, &impl) != 0) {
        snprintf(g.backend, sizeof g.backend,
                 "unavailable: oneDNN %d.%d.%d has no bf16 matmul for this CPU", v->major,
                 v->minor, v->patch);
    } else if (!strncmp(impl, "ref", 3)) {
        snprintf(g.backend, sizeof g.backend,
                 "unavailable: oneDNN %d.%d.%d has only its reference bf16 matmul (%s) here",
                 v->major, v->minor, v->patch, impl);
    } else {
        snprintf(g.backend, sizeof g.backend, "oneDNN %d.%d.%d matmul %s", v->major, v->minor,
                 v->patch, impl);
        g.available = 1;
    }
    entry_destroy(&e);
    return g.available;
}

const char *bf16_backend(void) {
    bf16_available();
    return g.backend;
}

static Entry *entry_get(const Entry *key) {
    for (int i = 0; i < g.n; i++) {
        Entry *e = &g.entries[i];
        if (e->trans_a == key->trans_a && e->trans_b == key->trans_b && e->M == key->M &&
            e->N == key->N && e->K == key->K && e->lda == key->lda && e->ldb == key->ldb &&
            e->ldc == key->ldc && e->accumulate == key->accumulate &&
            e->threads == key->threads)
            return e;
    }
    if (g.n == CACHE_MAX) bf16_release();  // many shapes (decoding): start over
    Entry *e = &g.entries[g.n];
    *e = *key;
    if (entry_create(e, NULL) != 0) {
        fprintf(stderr, "rlhf: internal error: oneDNN bf16 matmul %dx%dx%d failed\n", key->M,
                key->N, key->K);
        abort();
    }
    g.n++;
    return e;
}

void bf16_gemm(int trans_a, int trans_b, int M, int N, int K, const bf16 *A, int lda,
               const bf16 *B, int ldb, float beta, float *C, int ldc) {
    ASSERT(beta == 0.0f || beta == 1.0f);
    ASSERT(M > 0 && N > 0 && K > 0);
#ifdef _OPENMP
    ASSERT(!omp_in_parallel());
#endif
    ASSERT(bf16_available());
    Entry key = {.trans_a = !!trans_a, .trans_b = !!trans_b, .M = M, .N = N, .K = K,
                 .lda = lda, .ldb = ldb, .ldc = ldc, .accumulate = beta != 0.0f,
                 .threads = max_threads()};
    Entry *e = entry_get(&key);
    dnnl_memory_set_data_handle(e->a, (void *)A);
    dnnl_memory_set_data_handle(e->b, (void *)B);
    dnnl_memory_set_data_handle(e->c, C);
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    dnnl_status_t st = dnnl_primitive_execute(e->prim, g.stream, 3, args);
    ASSERT(st == dnnl_success);
    dnnl_stream_wait(g.stream);
}
