// Checks src/dist.c as one process sees it: the shares of a batch for any
// world size (consecutive blocks covering every item once, sizes differing
// by at most one, the larger ones first), and that outside an MPI job the
// world is one rank whose sums leave values as they are. The sums across
// ranks are checked by tests/cli_mpi.sh under mpirun.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "dist.h"

static void test_shares_cover_in_order(void **state) {
    (void)state;
    for (long n = 0; n <= 40; n++)
        for (int size = 1; size <= 9; size++) {
            long next = 0, first = -1;
            for (int rank = 0; rank < size; rank++) {
                long lo, hi;
                dist_share_of(n, size, rank, &lo, &hi);
                assert_int_equal(lo, next);  // consecutive, in rank order
                assert_true(hi >= lo);
                const long len = hi - lo;
                if (first < 0) first = len;
                assert_true(len == first || len == first - 1);  // larger ones first
                assert_true(len == n / size || len == n / size + 1);
                next = hi;
            }
            assert_int_equal(next, n);
        }
}

static void test_one_process_world(void **state) {
    (void)state;
    assert_int_equal(dist_init(), 0);  // not started by mpirun: joins nothing
    assert_int_equal(dist_size(), 1);
    assert_int_equal(dist_rank(), 0);
    long lo, hi;
    dist_share(7, &lo, &hi);
    assert_int_equal(lo, 0);
    assert_int_equal(hi, 7);
    float f[3] = {1.5f, -2.0f, 0.25f};
    double d[2] = {3.0, -0.5};
    int i[2] = {4, -9};
    dist_sum_f32(f, 3);
    dist_sum_f64(d, 2);
    dist_sum_i32(i, 2);
    assert_true(f[0] == 1.5f && f[1] == -2.0f && f[2] == 0.25f);
    assert_true(d[0] == 3.0 && d[1] == -0.5);
    assert_true(i[0] == 4 && i[1] == -9);
    assert_true(dist_bytes_sent() == 0.0);
    dist_finalize();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shares_cover_in_order),
        cmocka_unit_test(test_one_process_world),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
