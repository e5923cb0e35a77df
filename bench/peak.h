// Register-only loops that measure what the CPU's vector units can do, for
// MFU: fp32 FMA (AVX-512 or AVX2) and bf16 dot products (VDPBF16PS, AMX
// TDPBF16PS). Each loop keeps enough independent accumulators in registers
// to cover the instruction latency and touches no memory in its body. A
// header of static functions: bench binaries are one file each.
#ifndef RLHF_BENCH_PEAK_H
#define RLHF_BENCH_PEAK_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"
#include "cpu.h"

// Each *_loop runs `iters` iterations on the calling thread and returns the
// floating-point operations done (a multiply-add counts 2). `sink` keeps the
// compiler from dropping the work.
static volatile float peak_sink;

__attribute__((target("avx512f"))) static double fma512_loop(long iters) {
    __m512 acc[16];
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) acc[k] = _mm512_fmadd_ps(acc[k], x, y);
    }
    __m512 s = acc[0];
#pragma GCC unroll 16
    for (int k = 1; k < 16; k++) s = _mm512_add_ps(s, acc[k]);
    peak_sink = _mm512_reduce_add_ps(s);
    return (double)iters * 16 * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double fma256_loop(long iters) {
    __m256 acc[12];
    const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
#pragma GCC unroll 12
    for (int k = 0; k < 12; k++) acc[k] = _mm256_set1_ps((float)k);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++) acc[k] = _mm256_fmadd_ps(acc[k], x, y);
    }
    __m256 s = acc[0];
#pragma GCC unroll 12
    for (int k = 1; k < 12; k++) s = _mm256_add_ps(s, acc[k]);
    float f[8];
    _mm256_storeu_ps(f, s);
    peak_sink = f[0] + f[7];
    return (double)iters * 12 * 8 * 2;
}

// VDPBF16PS zmm: 16 lanes, each adds two bf16 products: 64 flops.
__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_loop(long iters) {
    __m512 acc[16];
    const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80);  // 1.0
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3a83);  // ~1e-3
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) acc[k] = _mm512_dpbf16_ps(acc[k], a, b);
    }
    __m512 s = acc[0];
#pragma GCC unroll 16
    for (int k = 1; k < 16; k++) s = _mm512_add_ps(s, acc[k]);
    peak_sink = _mm512_reduce_add_ps(s);
    return (double)iters * 16 * 64;
}

// AMX: four 16x16 fp32 accumulator tiles, each TDPBF16PS a 16x32 by 32x16
// bf16 product (16384 flops); tiles 4-7 hold the operands. The caller has
// obtained the permission (cpu_amx_enable).
typedef struct __attribute__((packed)) {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} AmxTileConfig;

__attribute__((target("amx-tile,amx-bf16"))) static double amx_loop(long iters) {
    AmxTileConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    static const uint16_t ones[16 * 32] = {0};  // operand values do not matter for speed
    float out[16 * 16];
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, ones, 64);
    _tile_loadd(5, ones, 64);
    _tile_loadd(6, ones, 64);
    _tile_loadd(7, ones, 64);
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    peak_sink = out[0];
    return (double)iters * 4 * 16 * 16 * 32 * 2;
}

typedef double (*PeakLoop)(long iters);

// GFLOP/s of `loop` run by `threads` threads at once, best of `reps` runs
// of `iters` iterations each. Short runs, many of them: on a machine shared
// with other work, the best short run is the one that had the cores.
static double peak_gflops(PeakLoop loop, int threads, long iters, int reps) {
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        double flops = 0.0, t0 = now_seconds();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
        flops += loop(iters);
        double g = flops / (now_seconds() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

// The machine's peaks at `threads` threads: fp32 FMA (AVX-512 or AVX2,
// 0 without either), bf16 VDPBF16PS and AMX (0 where absent). Names the
// loops used in fp32_how / bf16_how.
typedef struct {
    double fp32, dpbf16, amx;
    const char *fp32_how;
} Peaks;

static Peaks peaks_measure(int threads) {
    CpuFeatures f;
    cpu_features(&f);
    Peaks p = {0, 0, 0, "none"};
    const long iters = 1000L * 1000;  // a few ms per run
    if (f.avx512f) {
        p.fp32 = peak_gflops(fma512_loop, threads, iters, 40);
        p.fp32_how = "AVX-512 FMA";
    } else if (f.avx2 && f.fma) {
        p.fp32 = peak_gflops(fma256_loop, threads, iters, 40);
        p.fp32_how = "AVX2 FMA";
    }
    if (f.avx512_bf16) p.dpbf16 = peak_gflops(dpbf16_loop, threads, iters, 40);
    if (f.amx_bf16 && cpu_amx_enable()) p.amx = peak_gflops(amx_loop, threads, iters / 8, 40);
    return p;
}

#endif
