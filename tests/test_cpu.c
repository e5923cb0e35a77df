// Checks src/cpu.c: the choice of OpenBLAS core as a pure function of the
// CPU's features, OpenBLAS's own pick and the user's OPENBLAS_CORETYPE;
// and that the feature string lists exactly the flags set. The re-exec
// itself is checked by tests/cli_blas_core.sh.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cpu.h"

#if defined(__SANITIZE_ADDRESS__)
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) { return "halt_on_error=1:print_stacktrace=1"; }
#endif

static const CpuFeatures sse_only = {0};
static const CpuFeatures avx2 = {.avx2 = 1, .fma = 1};
static const CpuFeatures avx2_no_fma = {.avx2 = 1};
static const CpuFeatures skx = {.avx2 = 1, .fma = 1, .avx512f = 1, .avx512bw = 1, .avx512vl = 1};
static const CpuFeatures zen5 = {.avx2 = 1, .fma = 1, .avx512f = 1, .avx512bw = 1,
                                 .avx512vl = 1, .avx512_bf16 = 1};
static const CpuFeatures spr = {.avx2 = 1, .fma = 1, .avx512f = 1, .avx512bw = 1, .avx512vl = 1,
                                .avx512_bf16 = 1, .amx_tile = 1, .amx_bf16 = 1};
static const CpuFeatures avx512f_only = {.avx2 = 1, .fma = 1, .avx512f = 1};  // Knights-like

#define CHOICE(f, picked, user) cpu_blas_core_choice(&(f), (picked), (user))

static void test_weak_pick_upgraded(void **state) {
    (void)state;
    assert_string_equal(CHOICE(spr, "Prescott", NULL), "Cooperlake");
    assert_string_equal(CHOICE(zen5, "Haswell", NULL), "Cooperlake");
    assert_string_equal(CHOICE(zen5, "Zen", NULL), "Cooperlake");
    assert_string_equal(CHOICE(skx, "Prescott", NULL), "SkylakeX");
    assert_string_equal(CHOICE(skx, "Sandybridge", NULL), "SkylakeX");
    assert_string_equal(CHOICE(avx2, "Prescott", NULL), "Haswell");
    assert_string_equal(CHOICE(avx2, "Nehalem", NULL), "Haswell");
    assert_string_equal(CHOICE(avx2, "sandybridge", NULL), "Haswell");  // any case
    // AVX-512F without BW/VL (no SkylakeX kernels): AVX2 ones
    assert_string_equal(CHOICE(avx512f_only, "Core2", NULL), "Haswell");
}

static void test_matching_pick_kept(void **state) {
    (void)state;
    assert_null(CHOICE(spr, "Cooperlake", NULL));
    assert_null(CHOICE(spr, "SapphireRapids", NULL));
    assert_null(CHOICE(zen5, "SkylakeX", NULL));  // same level: no churn
    assert_null(CHOICE(skx, "SkylakeX", NULL));
    assert_null(CHOICE(avx2, "Haswell", NULL));
    assert_null(CHOICE(avx2, "Zen", NULL));
    assert_null(CHOICE(avx2, "SkylakeX", NULL));  // stronger than the features: not ours to judge
    assert_null(CHOICE(avx512f_only, "Haswell", NULL));
}

static void test_no_features_no_change(void **state) {
    (void)state;
    assert_null(CHOICE(sse_only, "Prescott", NULL));
    assert_null(CHOICE(avx2_no_fma, "Prescott", NULL));
}

static void test_unknown_core_left_alone(void **state) {
    (void)state;
    assert_null(CHOICE(spr, "GraniteRapids", NULL));
    assert_null(CHOICE(spr, "", NULL));
    assert_null(CHOICE(spr, NULL, NULL));
}

static void test_user_value_kept(void **state) {
    (void)state;
    const char *users[] = {"Prescott", "Haswell", "", "nonsense", "SkylakeX"};
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
        assert_null(CHOICE(spr, "Prescott", users[i]));
        assert_null(CHOICE(avx2, "Prescott", users[i]));
    }
}

static void test_features_string(void **state) {
    (void)state;
    char buf[160];
    assert_string_equal(cpu_features_string(&sse_only, buf, sizeof buf), "none");
    assert_string_equal(cpu_features_string(&avx2, buf, sizeof buf), "avx2 fma");
    assert_string_equal(cpu_features_string(&spr, buf, sizeof buf),
                        "avx2 fma avx512f avx512bw avx512vl avx512_bf16 amx_tile amx_bf16");
    char small[12];  // truncated on a flag boundary, still terminated
    assert_string_equal(cpu_features_string(&spr, small, sizeof small), "avx2 fma");
    // the running CPU: whatever it has, the string is a list of known flags
    CpuFeatures here;
    cpu_features(&here);
    assert_true(strlen(cpu_features_string(&here, buf, sizeof buf)) > 0);
    if (here.avx512bw || here.avx512_bf16) assert_true(here.avx512f);
    if (here.amx_bf16) assert_true(here.amx_tile);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weak_pick_upgraded),
        cmocka_unit_test(test_matching_pick_kept),
        cmocka_unit_test(test_no_features_no_change),
        cmocka_unit_test(test_unknown_core_left_alone),
        cmocka_unit_test(test_user_value_kept),
        cmocka_unit_test(test_features_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
