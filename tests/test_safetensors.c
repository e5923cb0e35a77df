// Tests for safetensors.c: a write/read round trip (bits, shapes, metadata,
// alignment), exact F16/BF16 conversion, and hostile files, each of which
// must be refused with a one-line reason that names the problem (the asan
// build shows that none is read out of bounds). Files go to mkdtemp.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "scratch.h"
#include "safetensors.h"

static int group_setup(void **state) { return scratch_make("safetensors"); }

static int group_teardown(void **state) { return scratch_remove(); }

// A file of: the 8-byte length `len` (little-endian), `header` bytes, then
// `ndata` bytes of data (0, 1, 2, ...).
static const char *write_raw_n(const char *name, uint64_t len, const char *header, size_t hlen,
                               size_t ndata) {
    const char *path = scratch_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8; i++) fputc((int)((len >> (8 * i)) & 0xff), f);
    fwrite(header, 1, hlen, f);
    for (size_t i = 0; i < ndata; i++) fputc((int)(i & 0xff), f);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_raw(const char *name, uint64_t len, const char *header, size_t ndata) {
    return write_raw_n(name, len, header, strlen(header), ndata);
}

// write_raw with the header's own length.
static const char *write_file(const char *name, const char *header, size_t ndata) {
    return write_raw(name, strlen(header), header, ndata);
}

// Opening path fails with a one-line reason containing `want`.
static void expect_refused(const char *path, const char *want) {
    SafeTensors st;
    rlhf_errmsg[0] = '\0';
    int rc = safetensors_open(&st, path);
    if (rc == 0 || !strstr(rlhf_errmsg, want))
        fail_msg("%s: rc %d, message '%s', expected one containing '%s'", path, rc, rlhf_errmsg,
                 want);
    assert_null(strchr(rlhf_errmsg, '\n'));
    safetensors_close(&st);
}

static void test_round_trip(void **state) {
    float a[6] = {1.5f, -2.25f, 0.0f, -0.0f, 3e-38f, 1e30f}, b[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    float s = 7.0f;
    SafeTensorOut t[3] = {
        {.name = "w.weight", .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "b", .ndim = 1, .shape = {4}, .data = b},
        {.name = "scalar", .ndim = 0, .data = &s},
    };
    const char *meta[] = {"format", "pt", "note", "x\"y"};
    const char *path = scratch_path("rt.safetensors");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(safetensors_write(f, t, 3, meta, 2), 0);
    assert_int_equal(fclose(f), 0);

    SafeTensors st;
    assert_int_equal(safetensors_open(&st, path), 0);
    assert_int_equal(st.n, 3);
    assert_int_equal(st.data_start % 8, 0);  // header padded: data aligned
    assert_int_equal(st.file_size, st.data_start + (6 + 4 + 1) * 4);
    assert_string_equal(safetensors_meta(&st, "format"), "pt");
    assert_string_equal(safetensors_meta(&st, "note"), "x\"y");
    assert_null(safetensors_meta(&st, "other"));
    const SafeTensor *w = safetensors_find(&st, "w.weight");
    assert_non_null(w);
    assert_string_equal(w->dtype_name, "F32");
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    float back[6];
    assert_int_equal(safetensors_read_f32(&st, w, back, 6), 0);
    assert_memory_equal(back, a, sizeof a);
    const SafeTensor *sc = safetensors_find(&st, "scalar");
    assert_non_null(sc);
    assert_int_equal(sc->ndim, 0);
    assert_int_equal(sc->numel, 1);
    assert_int_equal(safetensors_read_f32(&st, sc, back, 1), 0);
    assert_true(back[0] == 7.0f);
    const SafeTensor *bt = safetensors_find(&st, "b");
    assert_int_equal(safetensors_read_f32(&st, bt, back, 4), 0);
    assert_memory_equal(back, b, sizeof b);
    assert_null(safetensors_find(&st, "missing"));
    // the wrong count is an error, not a short or long read
    assert_int_equal(safetensors_read_f32(&st, bt, back, 3), -1);
    safetensors_close(&st);

    // a repeated name is refused before anything is written
    SafeTensorOut twice[2] = {t[1], t[1]};
    f = fopen(scratch_path("twice.safetensors"), "wb");
    assert_int_equal(safetensors_write(f, twice, 2, NULL, 0), -1);
    fclose(f);
}

static void test_half_conversion(void **state) {
    // F16: 1, -2, 65504 (max), 2^-24 (smallest subnormal), 2^-14 (smallest
    // normal), inf, -0; BF16: 1, -3.5, 2^-133 (subnormal)
    const uint16_t f16[7] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0x8000};
    const float want16[7] = {1.0f, -2.0f, 65504.0f, 0x1p-24f, 0x1p-14f, INFINITY, -0.0f};
    for (int i = 0; i < 7; i++) {
        float v = safetensors_f16_to_f32(f16[i]);
        assert_memory_equal(&v, &want16[i], 4);
    }
    assert_true(isnan(safetensors_f16_to_f32(0x7e00)));
    const uint16_t bf[3] = {0x3f80, 0xc060, 0x0001};
    const float wantbf[3] = {1.0f, -3.5f, 0x1p-133f};
    for (int i = 0; i < 3; i++) assert_true(safetensors_bf16_to_f32(bf[i]) == wantbf[i]);
    // every F16 value round-trips through float (the conversion is exact)
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;  // inf / nan
        float v = safetensors_f16_to_f32((uint16_t)h);
        double mant = (h & 0x3ff), e = (h >> 10) & 0x1f;
        double want = e ? ldexp(1024 + mant, (int)e - 25) : ldexp(mant, -24);
        if (h & 0x8000) want = -want;
        assert_true((double)v == want);
    }

    // a file with F16 and BF16 tensors reads as float32
    const char *path = scratch_path("half.safetensors");
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[4,6]}}";
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(hdr);
    for (int i = 0; i < 8; i++) fputc((int)((len >> (8 * i)) & 0xff), f);
    fputs(hdr, f);
    const uint8_t data[6] = {0x00, 0x3c, 0x00, 0xc0, 0x60, 0xc0};  // 1, -2; -3.5
    fwrite(data, 1, 6, f);
    fclose(f);
    SafeTensors st;
    assert_int_equal(safetensors_open(&st, path), 0);
    float out[2];
    assert_int_equal(safetensors_read_f32(&st, safetensors_find(&st, "h"), out, 2), 0);
    assert_true(out[0] == 1.0f && out[1] == -2.0f);
    assert_int_equal(safetensors_read_f32(&st, safetensors_find(&st, "b"), out, 1), 0);
    assert_true(out[0] == -3.5f);
    safetensors_close(&st);
}

#define T1(name, dtype, shape, b, e) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" b "," e "]}"

static void test_hostile_header(void **state) {
    expect_refused(scratch_path("absent.safetensors"), "cannot open");
    expect_refused(scratch_dir(), "not a regular file");
    expect_refused(write_raw("short", 0, "", 0), "cannot hold a JSON object");  // 8 bytes, 0-byte header
    // a 5-byte file
    FILE *f = fopen(scratch_path("tiny"), "wb");
    fwrite("abcde", 1, 5, f);
    fclose(f);
    expect_refused(scratch_path("tiny"), "too short");
    // header size past the file, huge, or with the top bit set
    expect_refused(write_raw("past", 1000, "{}", 0), "runs past the end of the file");
    expect_refused(write_raw("huge", 1ull << 40, "{}", 0), "exceeds");
    expect_refused(write_raw("huge2", UINT64_MAX, "{}", 16), "exceeds");
    expect_refused(write_raw("justover", SAFETENSORS_MAX_HEADER + 1ull, "{}", 0), "exceeds");
    // not JSON, not an object, trailing bytes
    expect_refused(write_file("notjson", "this is not json", 0), "not a JSON object");
    expect_refused(write_file("array", "[1, 2]   ", 0), "not a JSON object");
    expect_refused(write_file("cut", "{\"a\":{\"dtype\":", 0), "not a JSON object");
    expect_refused(write_file("trail", "{} x", 0), "bytes after its JSON object");
    // a header with a NUL inside is not one object followed by padding
    expect_refused(write_raw_n("nul", 4, "{}\0 ", 4, 0), "bytes after its JSON object");
    // tensor entries of the wrong form
    expect_refused(write_file("notobj", "{\"a\": 3}", 0), "not an object");
    expect_refused(write_file("nodtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                   "needs exactly dtype");
    expect_refused(write_file("extra", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                                       "\"data_offsets\":[0,4],\"x\":1}}", 4),
                   "needs exactly dtype");
    expect_refused(write_file("dtnum", "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}",
                              4), "needs exactly dtype");
    expect_refused(write_file("emptyname", "{" T1("", "F32", "[1]", "0", "4") "}", 4),
                   "empty name");
    expect_refused(write_file("meta", "{\"__metadata__\":{\"a\":1}}", 0), "not a string");
    expect_refused(write_file("meta2", "{\"__metadata__\":[]}", 0), "__metadata__ is not");
    expect_refused(write_file("meta3", "{\"__metadata__\":{},\"__metadata__\":{}}", 0),
                   "two __metadata__");
}

static void test_hostile_tensors(void **state) {
    // unknown dtype
    expect_refused(write_file("dtype", "{" T1("a", "F33", "[1]", "0", "4") "}", 4),
                   "unknown dtype 'F33'");
    // shapes: negative, fractional, too many dimensions, product overflowing
    expect_refused(write_file("neg", "{" T1("a", "F32", "[-1]", "0", "4") "}", 4),
                   "not a non-negative integer");
    expect_refused(write_file("frac", "{" T1("a", "F32", "[1.5]", "0", "4") "}", 4),
                   "not a non-negative integer");
    expect_refused(write_file("strdim", "{" T1("a", "F32", "[\"1\"]", "0", "4") "}", 4),
                   "not a non-negative integer");
    expect_refused(write_file("dims", "{" T1("a", "F32", "[1,1,1,1,1,1,1,1,1]", "0", "4") "}", 4),
                   "9 dimensions");
    expect_refused(write_file("overflow", "{" T1("a", "F32", "[4503599627370496,4503599627370496,"
                                                 "4503599627370496]", "0", "4") "}", 4),
                   "needs more than");
    // offsets: out of range, reversed, negative, too big to be exact, wrong count
    expect_refused(write_file("range", "{" T1("a", "F32", "[2]", "0", "8") "}", 4),
                   "past the end of the data");
    expect_refused(write_file("range2", "{" T1("a", "F32", "[1]", "18446744073709551612",
                                               "18446744073709551616") "}", 4),
                   "data_offsets");
    expect_refused(write_file("reversed", "{" T1("a", "F32", "[0]", "4", "0") "}", 4),
                   "data_offsets");
    expect_refused(write_file("negoff", "{" T1("a", "F32", "[1]", "-4", "0") "}", 4),
                   "data_offsets");
    expect_refused(write_file("three", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                                       "\"data_offsets\":[0,4,8]}}", 8),
                   "data_offsets");
    // size that does not match dtype x shape
    expect_refused(write_file("size", "{" T1("a", "F32", "[3]", "0", "8") "}", 8),
                   "holds 8 bytes but dtype F32 x its shape needs 12");
    expect_refused(write_file("size16", "{" T1("a", "F16", "[2]", "0", "8") "}", 8),
                   "needs 4");
    // overlapping, gap, trailing bytes, duplicate names
    expect_refused(write_file("overlap", "{" T1("a", "F32", "[2]", "0", "8") ","
                                          T1("b", "F32", "[2]", "4", "12") "}", 12),
                   "overlaps");
    expect_refused(write_file("same", "{" T1("a", "F32", "[2]", "0", "8") ","
                                       T1("b", "F32", "[2]", "0", "8") "}", 8),
                   "overlaps");
    expect_refused(write_file("gap", "{" T1("a", "F32", "[1]", "0", "4") ","
                                      T1("b", "F32", "[1]", "8", "12") "}", 12),
                   "belong to no tensor");
    expect_refused(write_file("trailing", "{" T1("a", "F32", "[1]", "0", "4") "}", 8),
                   "after the last tensor");
    expect_refused(write_file("dup", "{" T1("a", "F32", "[1]", "0", "4") ","
                                      T1("a", "F32", "[1]", "4", "8") "}", 8),
                   "appears twice");

    // a listed tensor of another dtype opens, but is not read as float32
    const char *path = write_file("i64", "{" T1("a", "I64", "[1]", "0", "8") "}", 8);
    SafeTensors st;
    assert_int_equal(safetensors_open(&st, path), 0);
    float x;
    assert_int_equal(safetensors_read_f32(&st, safetensors_find(&st, "a"), &x, 1), -1);
    assert_non_null(strstr(rlhf_errmsg, "dtype I64"));
    safetensors_close(&st);

    // empty tensors and an empty file of tensors are fine
    path = write_file("empty", "{" T1("a", "F32", "[0,5]", "0", "0") "}", 0);
    assert_int_equal(safetensors_open(&st, path), 0);
    assert_int_equal(st.t[0].numel, 0);
    safetensors_close(&st);
}

// A valid file cut short anywhere, or grown by a byte, is refused.
static void test_truncated(void **state) {
    float a[64];
    for (int i = 0; i < 64; i++) a[i] = (float)i;
    SafeTensorOut t[2] = {{.name = "a", .ndim = 2, .shape = {8, 4}, .data = a},
                          {.name = "b", .ndim = 1, .shape = {32}, .data = a + 32}};
    const char *path = scratch_path("whole.safetensors");
    FILE *f = fopen(path, "wb");
    assert_int_equal(safetensors_write(f, t, 2, NULL, 0), 0);
    long size = ftell(f);
    fclose(f);
    SafeTensors st;
    assert_int_equal(safetensors_open(&st, path), 0);
    safetensors_close(&st);
    for (long cut = size - 1; cut >= 0; cut -= 7) {
        assert_int_equal(truncate(path, cut), 0);
        expect_refused(path, "");
    }
    f = fopen(path, "wb");
    assert_int_equal(safetensors_write(f, t, 2, NULL, 0), 0);
    fputc(0, f);
    fclose(f);
    expect_refused(path, "after the last tensor");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_half_conversion),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_hostile_tensors),
        cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
