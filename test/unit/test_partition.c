/* rlog_partition (lib/node/partition.c): bad arguments refused; a key's
 * partition pinned (it is part of a host's data layout, so it must never
 * change between versions); keys spread evenly; and going from n to n + 1
 * partitions moves only keys into the new one, about 1 / (n + 1) of them. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liblog.h"

START_TEST(test_bad_arguments)
{
    unsigned p = 77;
    ck_assert_int_eq(rlog_partition("k", 1, 4, NULL), RLOG_EINVAL);
    ck_assert_int_eq(rlog_partition("k", 1, 0, &p), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(NULL), "0 partitions"));
    ck_assert_int_eq(rlog_partition("k", 1, (1u << 31) + 1, &p), RLOG_EINVAL);
    ck_assert_int_eq(rlog_partition(NULL, 3, 4, &p), RLOG_EINVAL);
    ck_assert_uint_eq(p, 77);
    ck_assert_int_eq(rlog_partition(NULL, 0, 4, &p), 0); /* the empty key */
    ck_assert_uint_lt(p, 4);
    ck_assert_int_eq(rlog_partition("k", 1, 1u << 31, &p), 0);
}
END_TEST

/* Pinned when the function was written (liblog 0.4.3): a change here
 * would move every host's keys to other logs. */
START_TEST(test_pinned)
{
    static const struct {
        const char *key;
        unsigned n, want;
    } v[] = {
        {"", 1, 0},          {"", 2, 1},          {"", 16, 7},         {"", 1000, 332},
        {"orders/1", 2, 0},  {"orders/1", 16, 0}, {"orders/1", 1000, 310},
        {"user:42", 16, 12}, {"user:42", 1000, 717},
        {"a much longer key with spaces", 16, 2}, {"a much longer key with spaces", 1000, 163},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unsigned p;
        ck_assert_int_eq(rlog_partition(v[i].key, strlen(v[i].key), v[i].n, &p), 0);
        ck_assert_msg(p == v[i].want, "\"%s\" of %u: %u, pinned %u", v[i].key, v[i].n, p,
                      v[i].want);
    }
}
END_TEST

START_TEST(test_even_spread)
{
    enum { KEYS = 160000, N = 16 };
    unsigned count[N] = {0};
    for (unsigned k = 0; k < KEYS; k++) {
        char key[32];
        int len = snprintf(key, sizeof key, "key-%u", k);
        unsigned p;
        ck_assert_int_eq(rlog_partition(key, (size_t)len, N, &p), 0);
        ck_assert_uint_lt(p, N);
        count[p]++;
    }
    for (unsigned i = 0; i < N; i++) /* 10,000 expected; 5 % is ~12 sigma */
        ck_assert_msg(count[i] > 9500 && count[i] < 10500, "partition %u got %u of %u keys", i,
                      count[i], KEYS);
}
END_TEST

START_TEST(test_growth_moves_few)
{
    enum { KEYS = 20000 };
    for (unsigned n = 1; n <= 64; n++) {
        unsigned moved = 0;
        for (unsigned k = 0; k < KEYS; k++) {
            char key[32];
            int len = snprintf(key, sizeof key, "user:%u", k * 7919u);
            unsigned a, b;
            ck_assert_int_eq(rlog_partition(key, (size_t)len, n, &a), 0);
            ck_assert_int_eq(rlog_partition(key, (size_t)len, n + 1, &b), 0);
            ck_assert_msg(b == a || b == n, "%s: %u of %u, then %u of %u", key, a, n, b, n + 1);
            moved += b != a;
        }
        double share = (double)moved / KEYS, want = 1.0 / (n + 1);
        ck_assert_msg(share > want * 0.8 && share < want * 1.2,
                      "%u -> %u partitions moved %.3f of the keys, not about %.3f", n, n + 1,
                      share, want);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("partition");
    TCase *tc = tcase_create("partition");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_pinned);
    tcase_add_test(tc, test_even_spread);
    tcase_add_test(tc, test_growth_moves_few);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
