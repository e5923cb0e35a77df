// CPU features by cpuid/xgetbv and the choice of OpenBLAS kernels; see
// cpu.h. Knows nothing of models or files.
#define _GNU_SOURCE  // syscall
#include "cpu.h"

#include <cpuid.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

// OpenBLAS's own query (declared in its cblas.h, which we do not need here).
char *openblas_get_corename(void);
char *openblas_get_config(void);

#define REEXEC_MARKER "RLHF_BLAS_REEXEC"

static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

void cpu_features(CpuFeatures *f) {
    memset(f, 0, sizeof *f);
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return;  // the OS saves no AVX state: nothing beyond SSE
    uint64_t xcr0 = xgetbv0();
    int os_avx = (xcr0 & 0x6) == 0x6;          // XMM, YMM
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM hi256, hi16 ZMM
    int os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG, XTILEDATA
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    f->fma = os_avx && fma;
    f->avx2 = os_avx && ((b >> 5) & 1);
    f->avx512f = os_avx512 && ((b >> 16) & 1);
    f->avx512bw = os_avx512 && ((b >> 30) & 1);
    f->avx512vl = os_avx512 && ((b >> 31) & 1);
    f->amx_bf16 = os_amx && ((d >> 22) & 1);
    f->amx_tile = os_amx && ((d >> 24) & 1);
    unsigned max_sub = a;
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        f->avx512_bf16 = f->avx512f && ((a >> 5) & 1);
    }
}

const char *cpu_features_string(const CpuFeatures *f, char *buf, size_t n) {
    const struct {
        const char *name;
        int on;
    } flags[] = {{"avx2", f->avx2},         {"fma", f->fma},
                 {"avx512f", f->avx512f},   {"avx512bw", f->avx512bw},
                 {"avx512vl", f->avx512vl}, {"avx512_bf16", f->avx512_bf16},
                 {"amx_tile", f->amx_tile}, {"amx_bf16", f->amx_bf16}};
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!flags[i].on) continue;
        int k = snprintf(buf + o, n - o, "%s%s", o ? " " : "", flags[i].name);
        if (k < 0 || (size_t)k >= n - o) {  // no room: end on the last whole flag
            buf[o] = '\0';
            break;
        }
        o += (size_t)k;
    }
    if (o == 0) snprintf(buf, n, "none");
    return buf;
}

const char *cpu_model_name(void) {
    static char name[128];
    if (name[0]) return name;
    snprintf(name, sizeof name, "unknown x86 CPU");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return name;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        size_t len = strcspn(v, "\n");
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, v, len);
        name[len] = '\0';
        break;
    }
    fclose(fp);
    return name;
}

int cpu_amx_enable(void) {
    CpuFeatures f;
    cpu_features(&f);
    if (!f.amx_tile) return 0;
#if defined(__linux__) && defined(SYS_arch_prctl)
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

// What an OpenBLAS x86 core's sgemm kernels use: 0 SSE-era (and AVX1/FMA3
// cores without AVX2 kernels), 1 AVX2+FMA, 2 AVX-512; -1 not known here.
static int core_level(const char *core) {
    static const char *const sse[] = {
        "Katmai",    "Coppermine", "Northwood", "Prescott",   "Banias",     "Core2",
        "Penryn",    "Dunnington", "Nehalem",   "Atom",       "Athlon",     "Opteron",
        "Opteron_SSE3", "Barcelona", "Nano",    "Bobcat",     "Sandybridge", "Bulldozer",
        "Piledriver", "Steamroller", "Excavator"};
    static const char *const avx2[] = {"Haswell", "Zen", "SkylakeX_AVX2"};
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    for (size_t i = 0; i < sizeof sse / sizeof sse[0]; i++)
        if (!strcasecmp(core, sse[i])) return 0;
    for (size_t i = 0; i < sizeof avx2 / sizeof avx2[0]; i++)
        if (!strcasecmp(core, avx2[i])) return 1;
    for (size_t i = 0; i < sizeof avx512 / sizeof avx512[0]; i++)
        if (!strcasecmp(core, avx512[i])) return 2;
    return -1;
}

const char *cpu_blas_core_choice(const CpuFeatures *f, const char *picked,
                                 const char *user_core) {
    if (user_core) return NULL;  // the user's choice stands, whatever it is
    if (!picked) return NULL;
    int have = core_level(picked);
    if (have < 0) return NULL;
    if (f->avx512f && f->avx512bw && f->avx512vl)
        return have < 2 ? (f->avx512_bf16 ? "Cooperlake" : "SkylakeX") : NULL;
    if (f->avx2 && f->fma) return have < 1 ? "Haswell" : NULL;
    return NULL;
}

// Set once by cpu_choose_blas_core: how the core in use came about.
static char origin[160] = "OpenBLAS's pick";

void cpu_choose_blas_core(char **argv) {
    const char *marker = getenv(REEXEC_MARKER);
    if (marker) {  // the second run: OPENBLAS_CORETYPE is ours
        snprintf(origin, sizeof origin, "set by rlhf for this CPU (OpenBLAS picked %s)", marker);
        unsetenv(REEXEC_MARKER);
        return;
    }
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user) {
        snprintf(origin, sizeof origin, "set by the user (OPENBLAS_CORETYPE=%s)", user);
        return;
    }
    CpuFeatures f;
    cpu_features(&f);
    const char *picked = openblas_get_corename();
    const char *target = cpu_blas_core_choice(&f, picked, NULL);
    if (!target) return;
    char was[64];
    snprintf(was, sizeof was, "%s", picked ? picked : "?");
    fflush(NULL);
    if (setenv("OPENBLAS_CORETYPE", target, 1) == 0 && setenv(REEXEC_MARKER, was, 1) == 0)
        execv("/proc/self/exe", argv);
    // still here: exec failed; carry on with OpenBLAS's kernels
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REEXEC_MARKER);
    fprintf(stderr, "rlhf: note: OpenBLAS uses %s kernels on this CPU and restarting with "
                    "OPENBLAS_CORETYPE=%s failed; hint: set OPENBLAS_CORETYPE=%s yourself\n",
            was, target, target);
}

const char *cpu_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

const char *cpu_blas_core_origin(void) { return origin; }

void cpu_print_report(FILE *out, const char *prefix) {
    CpuFeatures f;
    cpu_features(&f);
    char feats[160];
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(out, "%scpu: %s, %ld cores, %d threads; features: %s\n", prefix, cpu_model_name(),
            cores, threads, cpu_features_string(&f, feats, sizeof feats));
    // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": its first two words
    const char *config = openblas_get_config();
    char name[32] = "OpenBLAS", ver[32] = "";
    if (config) sscanf(config, "%31s %31s", name, ver);
    fprintf(out, "%sblas: %s %s core %s, %s\n", prefix, name, ver, cpu_blas_core(),
            cpu_blas_core_origin());
}
