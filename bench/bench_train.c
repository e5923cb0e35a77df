// Training-step throughput. First the machine, measured in this run: the
// CPU's fp32 FMA peak and bf16 peaks (VDPBF16PS, AMX) from register-only
// loops at each thread count (bench/peak.h), and sgemm 1024^3. Then forward
// + backward + AdamW for fixed GPT shapes: ms/step, tokens/s and model-FLOPs
// utilisation (MFU) against the peak of the precision used (fp32 FMA, or the
// fastest bf16 unit), and the step's rate as a share of the matmul rate of
// that precision (sgemm, oneDNN bf16 1024^3): the engine against its BLAS.
// Numbers only; nothing here asserts a speed.
//
// Also batched KV-cached decoding (tokens/s) for each shape and precision,
// and the process's peak resident memory (VmHWM) after the training steps:
// run one shape and precision per process (make bench-gpt2 does) for that
// figure to be the shape's own.
//
// usage: bench_train [--steps N] [--warmup N] [--config tiny|small|gpt2|all]
//                    [--precision fp32|bf16|all] [--B N] [--T N] [--decode N]
//                    [--lm_head fp32|bf16]
// --B/--T override the shape's batch and sequence length (T is also the
// model's block_size); --decode N decodes N positions (default T; 0: none);
// --lm_head: where bf16 steps run the tied LM head's products (default fp32,
// as train.fp32_lm_head).
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "bf16.h"
#include "common.h"
#include "cpu.h"
#include "gpt.h"
#include "optim.h"
#include "peak.h"
#include "rng.h"

typedef struct {
    const char *name;
    int V, L, NH, C, T, B;
    int block;   // block_size: at least T (GPT-2 keeps 1024 positions whatever T runs)
    int in_all;  // part of --config all (gpt2 is asked for by name: seconds per step)
} Shape;

static const Shape shapes[] = {
    {"tiny", 65, 4, 4, 128, 64, 12, 64, 1},
    {"small", 65, 6, 6, 384, 256, 16, 256, 1},
    {"gpt2", 50257, 12, 12, 768, 256, 4, 1024, 0},  // GPT-2 124M
};

// Best-of sgemm rate for an n^3 product, in GFLOP/s.
static double sgemm_gflops(int n, double seconds) {
    float *a = alignedCheck((size_t)n * n * sizeof(float));
    float *b = alignedCheck((size_t)n * n * sizeof(float));
    float *c = alignedCheck((size_t)n * n * sizeof(float));
    Rng rng;
    rng_init(&rng, 1);
    for (long i = 0; i < (long)n * n; i++) {
        a[i] = rng_float(&rng) - 0.5f;
        b[i] = rng_float(&rng) - 0.5f;
        c[i] = 0.0f;
    }
    double best = 0.0, t_end = now_seconds() + seconds;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    while (now_seconds() < t_end) {
        double t0 = now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double g = 2.0 * n * n * (double)n / (now_seconds() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

// Best-of bf16 matmul rate (oneDNN, fp32 output) for an n^3 product.
static double bf16_gflops(int n, double seconds) {
    bf16 *a = alignedCheck((size_t)n * n * sizeof(bf16));
    bf16 *b = alignedCheck((size_t)n * n * sizeof(bf16));
    float *c = alignedCheck((size_t)n * n * sizeof(float));
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = bf16_from_float(0.5f);
    double best = 0.0, t_end = now_seconds() + seconds;
    bf16_gemm(0, 0, n, n, n, a, n, b, n, 0.0f, c, n);
    while (now_seconds() < t_end) {
        double t0 = now_seconds();
        bf16_gemm(0, 0, n, n, n, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (now_seconds() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

// The process's peak resident set (VmHWM) in MiB, or -1 when unreadable.
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1.0;
    char line[256];
    double kib = -1.0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atof(line + 6);
    fclose(f);
    return kib < 0 ? -1.0 : kib / 1024.0;
}

typedef struct {
    int steps, warmup, decode;  // decode: positions, -1 = T
    int B, T;                   // 0: the shape's
} BenchOpts;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench_shape(const Shape *shape, const BenchOpts *o, Precision prec, double peak,
                        double sgemm) {
    Shape sh = *shape;
    const Shape *s = &sh;
    if (o->B > 0) sh.B = o->B;
    if (o->T > 0) sh.T = o->T;
    if (sh.block < sh.T) sh.block = sh.T;
    const int steps = o->steps;
    GPTConfig c = {.n_layer = s->L, .n_head = s->NH, .n_embd = s->C, .block_size = s->block,
                   .vocab_size = s->V};
    GPT m;
    gpt_build(&m, &c);
    gpt_set_precision(&m, prec);
    gpt_train_build(&m);
    gpt_init_weights(&m, 42);
    const char *pname = prec != PRECISION_BF16 ? "fp32"
                        : m.lm_head_fp32         ? "bf16"
                                                 : "bf16/head-bf16";
    AdamW opt;
    adamw_build(&opt, m.num_params, 0.9f, 0.95f, 1e-8f, 0.1f);
    int BT = s->B * s->T;
    int *x = mallocCheck((size_t)BT * sizeof(int)), *y = mallocCheck((size_t)BT * sizeof(int));
    Rng rng;
    rng_init(&rng, 7);
    for (int i = 0; i < BT; i++) {
        x[i] = (int)rng_below(&rng, (uint64_t)s->V);
        y[i] = (int)rng_below(&rng, (uint64_t)s->V);
    }
    double *ms = mallocCheck((size_t)steps * sizeof(double));
    for (int it = -o->warmup; it < steps; it++) {  // warm-up steps first
        double t0 = now_seconds();
        gpt_forward(&m, x, s->B, s->T, 1);
        gpt_lm_loss(&m, y, NULL);
        gpt_zero_grad(&m);
        gpt_backward(&m, m.train->dlogits, NULL);
        grad_clip(&m, 1.0f);
        adamw_step(&opt, &m, 1e-4f);
        if (it >= 0) ms[it] = 1e3 * (now_seconds() - t0);
    }
    qsort(ms, (size_t)steps, sizeof(double), cmp_double);
    double med = ms[steps / 2];
    double tok_s = BT / (med / 1e3);
    double flops = gpt_flops_per_token(&m, s->T) * tok_s / 1e9;
    printf("%-6s %s V=%d L=%d H=%d C=%d T=%d B=%d  params=%.2fM  %8.1f ms/step (min %.1f)  "
           "%9.0f tok/s  %6.1f GFLOP/s  MFU %5.1f%%  (%.0f%% of the matmul rate)\n",
           s->name, pname, s->V, s->L, s->NH, s->C, s->T,
           s->B, gpt_num_flop_params(&m) / 1e6, med,
           ms[0], tok_s, flops, 100.0 * flops / peak, 100.0 * flops / sgemm);
    const double mib = 1.0 / (1024.0 * 1024.0);
    printf("%-6s %s memory: peak RSS %.0f MiB; parameters, gradients and AdamW moments "
           "%.0f MiB; activations %.0f MiB (of which logits %.0f MiB); backward scratch %.0f MiB\n",
           s->name, pname, peak_rss_mib(),
           4.0 * m.num_params * sizeof(float) * mib, m.acts_capacity * sizeof(float) * mib,
           (double)s->B * s->T * s->V * sizeof(float) * mib,
           m.train->capacity * sizeof(float) * mib);
    const int positions = o->decode < 0 ? s->T : o->decode;
    if (positions == 0) {
        free(ms);
        free(x);
        free(y);
        adamw_free(&opt);
        gpt_free(&m);
        return;
    }
    // batched KV-cached decoding, the inner loop of sampling and rollouts:
    // B rows, positions 0 .. T-1 (attention grows with the position)
    KVCache kv;
    kvcache_build(&kv, &c, s->B, s->T);
    double t0 = now_seconds();
    for (int pos = 0; pos < positions; pos++)
        gpt_decode_step(&m, &kv, x + (size_t)pos * s->B, pos);
    double dt = now_seconds() - t0;
    printf("%-6s %s decode B=%d, %d positions: %8.0f tok/s\n", s->name,
           pname, s->B, positions, s->B * positions / dt);
    kvcache_free(&kv);
    free(ms);
    free(x);
    free(y);
    adamw_free(&opt);
    gpt_free(&m);
}

int main(int argc, char **argv) {
    cpu_choose_blas_core(argv);  // before any BLAS work (may re-exec)
    setvbuf(stdout, NULL, _IOLBF, 0);  // lines as they come, also into a pipe
    BenchOpts o = {.steps = 10, .warmup = 2, .decode = -1};
    const char *which = "all", *precision = "all", *lm_head = "fp32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) o.steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) o.warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--B") && i + 1 < argc) o.B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--T") && i + 1 < argc) o.T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode") && i + 1 < argc) o.decode = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) which = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) precision = argv[++i];
        else if (!strcmp(argv[i], "--lm_head") && i + 1 < argc) lm_head = argv[++i];
        else die("unknown argument '%s'; usage: bench_train [--steps N] [--warmup N] "
                 "[--config tiny|small|gpt2|all] [--precision fp32|bf16|all] [--B N] [--T N] "
                 "[--decode N] [--lm_head fp32|bf16]", argv[i]);
    }
    if (strcmp(lm_head, "fp32") && strcmp(lm_head, "bf16"))
        die("--lm_head must be fp32 or bf16 (got '%s')", lm_head);
    gpt_set_default_lm_head_fp32(!strcmp(lm_head, "fp32"));
    if (o.steps < 1 || o.warmup < 0 || o.B < 0 || o.T < 0)
        die("--steps must be >= 1, --warmup, --B and --T >= 0");
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    cpu_print_report(stdout, "");
    Peaks pk = {0}, one = {0};
    for (int t = 1; t <= threads; t++) {
        pk = peaks_measure(t);
        if (t == 1) one = pk;
        printf("peak %d thread%s: fp32 %.1f GFLOP/s (%s)", t, t > 1 ? "s" : " ", pk.fp32,
               pk.fp32_how);
        if (pk.dpbf16 > 0) printf(", bf16 %.1f GFLOP/s (VDPBF16PS)", pk.dpbf16);
        if (pk.amx > 0) printf(", bf16 %.1f GFLOP/s (AMX)", pk.amx);
        printf("\n");
    }
    // The yardstick at `threads` threads: the larger of that measurement and
    // `threads` times the one-thread one. On a machine shared with other
    // work the many-thread loop rarely holds every core at once, and a low
    // peak would inflate MFU; this way MFU is never flattered.
    pk.fp32 = fmax(pk.fp32, threads * one.fp32);
    pk.dpbf16 = fmax(pk.dpbf16, threads * one.dpbf16);
    pk.amx = fmax(pk.amx, threads * one.amx);
    double sgemm = sgemm_gflops(1024, 2.0);
    printf("sgemm 1024^3, %d threads: %.1f GFLOP/s (best of 2 s), %.0f%% of the fp32 peak "
           "(%.1f GFLOP/s: the larger of the %d-thread peak and %d x the one-thread one)\n",
           threads, sgemm, pk.fp32 > 0 ? 100.0 * sgemm / pk.fp32 : 0.0, pk.fp32, threads, threads);
    double peak = pk.fp32 > 0 ? pk.fp32 : sgemm;
    int with_bf16 = bf16_available() && strcmp(precision, "fp32") != 0;
    // the bf16 yardstick: the fastest bf16 unit present (oneDNN uses it)
    double peak16 = pk.amx > pk.dpbf16 ? pk.amx : pk.dpbf16;
    const char *how16 = pk.amx > pk.dpbf16 ? "AMX" : "VDPBF16PS";
    if (peak16 <= 0) peak16 = peak, how16 = "fp32 FMA (bf16 emulated)";
    printf("bf16 matmul: %s\n", bf16_backend());
    double mm16 = with_bf16 ? bf16_gflops(1024, 2.0) : 0.0;
    if (with_bf16)
        printf("bf16 matmul 1024^3, %d threads: %.1f GFLOP/s (best of 2 s), %.0f%% of the bf16 "
               "peak\n", threads, mm16, 100.0 * mm16 / peak16);
    printf("MFU below: fp32 steps against the fp32 FMA peak at %d threads (%.1f GFLOP/s)",
           threads, peak);
    if (with_bf16) printf(", bf16 steps against the %s peak (%.1f GFLOP/s)", how16, peak16);
    printf("; the share of the matmul rate (sgemm, bf16 matmul) in parentheses\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (strcmp(which, shapes[i].name) && (strcmp(which, "all") || !shapes[i].in_all)) continue;
        if (strcmp(precision, "bf16")) bench_shape(&shapes[i], &o, PRECISION_FP32, peak, sgemm);
        if (with_bf16) bench_shape(&shapes[i], &o, PRECISION_BF16, peak16, mm16);
    }
    return 0;
}
