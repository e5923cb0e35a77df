// Unit tests of the evaluation statistics in src/evaluate.c that need no
// model: reward_auc against hand-counted pairs.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "evaluate.h"

// Two families: in family 0 the correct answer (0.9) beats one wrong answer
// (0.1) and loses to the other (1.5); in family 1 it ties (0.5 = 0.5).
// Cross-family pairs and ungraded rows do not count: (1 + 0 + 0.5) / 3.
static void test_reward_auc_pairs(void **state) {
    (void)state;
    const float score[] = {0.9f, 0.1f, 1.5f, 0.5f, 0.5f, 9.0f};
    const int grade[] = {1, 0, 0, 1, 0, -1};
    const int group[] = {0, 0, 0, 1, 1, 0};
    assert_float_equal(reward_auc(score, grade, group, 6), 1.5 / 3.0, 1e-12);
}

// Perfect and inverted rankings give 1 and 0; no wrong (or no correct)
// response leaves nothing to compare: NaN.
static void test_reward_auc_extremes(void **state) {
    (void)state;
    const float up[] = {3.0f, 2.0f, 1.0f, 0.0f};
    const float down[] = {0.0f, 1.0f, 2.0f, 3.0f};
    const int grade[] = {1, 1, 0, 0};
    const int group[] = {7, 7, 7, 7};
    assert_float_equal(reward_auc(up, grade, group, 4), 1.0, 0.0);
    assert_float_equal(reward_auc(down, grade, group, 4), 0.0, 0.0);
    const int all_right[] = {1, 1, 1, 1};
    assert_true(isnan(reward_auc(up, all_right, group, 4)));
    assert_true(isnan(reward_auc(up, grade, group, 0)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reward_auc_pairs),
        cmocka_unit_test(test_reward_auc_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
