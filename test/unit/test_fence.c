/* The commit-visibility fence: Raft's Figure 8, the durable bound,
 * truncation, monotonicity, offsets. */
#include <check.h>

#include "liblog.h"
#include "node/fence.h"

static uint64_t passed_idx[64];
static int npassed;

static void on_pass(void *arg, const struct rl_fence_entry *e)
{
    (void)arg;
    passed_idx[npassed++] = e->index;
}

static void push(struct rl_fence *f, uint64_t index, uint64_t term, uint64_t offset,
                 uint32_t records)
{
    struct rl_fence_entry e = {.index = index, .term = term, .offset = offset, .records = records};
    ck_assert_int_eq(rl_fence_push(f, &e), 0);
}

START_TEST(test_figure8_old_term_majority_is_not_shown)
{
    /* Entry 2 of term 2 reached a majority only through the leader of term
     * 4; libraft 0.15 calls it committed. It could still be overwritten by a
     * leader of term 3 (Figure 8 d), so it must stay hidden... */
    struct rl_fence f;
    rl_fence_init(&f, 1, 0);
    npassed = 0;
    push(&f, 2, 2, 0, 10);
    ck_assert_uint_eq(rl_fence_advance(&f, 2, 4, 2, on_pass, NULL), 0);
    ck_assert_uint_eq(f.visible_index, 1);
    ck_assert_uint_eq(f.visible_offset, 0);
    /* ...until the term-4 leader commits an entry of its own (the barrier). */
    push(&f, 3, 4, 10, 0);
    ck_assert_uint_eq(rl_fence_advance(&f, 3, 4, 3, on_pass, NULL), 2);
    ck_assert_int_eq(npassed, 2);
    ck_assert_uint_eq(passed_idx[0], 2);
    ck_assert_uint_eq(passed_idx[1], 3);
    ck_assert_uint_eq(f.visible_index, 3);
    ck_assert_uint_eq(f.visible_offset, 10);
    rl_fence_free(&f);
}
END_TEST

START_TEST(test_figure8_overwritten_entry_never_shown)
{
    /* Figure 8 (d): the old-term entry is overwritten by another leader's
     * entry at the same index; what becomes visible is the new one. */
    struct rl_fence f;
    rl_fence_init(&f, 1, 0);
    npassed = 0;
    push(&f, 2, 2, 0, 5);
    rl_fence_advance(&f, 2, 4, 2, on_pass, NULL);
    ck_assert_int_eq(npassed, 0);
    rl_fence_truncate(&f, 2);
    push(&f, 2, 3, 0, 7); /* term 3 leader's entry replaces it */
    push(&f, 3, 5, 7, 0); /* that leader, now in term 5, commits a barrier */
    ck_assert_uint_eq(rl_fence_advance(&f, 3, 5, 3, on_pass, NULL), 2);
    ck_assert_uint_eq(f.visible_offset, 7);
    rl_fence_free(&f);
}
END_TEST

START_TEST(test_durable_bound)
{
    /* A follower may learn a commit index beyond what it has on disk. */
    struct rl_fence f;
    rl_fence_init(&f, 0, 0);
    push(&f, 1, 1, 0, 1);
    push(&f, 2, 1, 1, 1);
    push(&f, 3, 1, 2, 1);
    ck_assert_uint_eq(rl_fence_advance(&f, 3, 1, 1, NULL, NULL), 1);
    ck_assert_uint_eq(f.visible_index, 1);
    ck_assert_uint_eq(rl_fence_advance(&f, 3, 1, 3, NULL, NULL), 2);
    ck_assert_uint_eq(f.visible_index, 3);
    ck_assert_uint_eq(f.visible_offset, 3);
    rl_fence_free(&f);
}
END_TEST

START_TEST(test_never_moves_back)
{
    struct rl_fence f;
    rl_fence_init(&f, 0, 0);
    push(&f, 1, 1, 0, 4);
    push(&f, 2, 1, 4, 4);
    rl_fence_advance(&f, 2, 1, 2, NULL, NULL);
    ck_assert_uint_eq(f.visible_index, 2);
    /* a newer term with a smaller commit index: nothing regresses */
    ck_assert_uint_eq(rl_fence_advance(&f, 1, 2, 2, NULL, NULL), 0);
    ck_assert_uint_eq(f.visible_index, 2);
    ck_assert_uint_eq(f.visible_offset, 8);
    /* a replayed append of a shown entry is ignored */
    push(&f, 2, 1, 4, 4);
    ck_assert_uint_eq(f.n, 0);
    rl_fence_free(&f);
}
END_TEST

START_TEST(test_partial_prefix_up_to_current_term)
{
    /* Only the prefix ending at the last current-term entry at or below the
     * commit index passes; later committed old-term entries wait. */
    struct rl_fence f;
    rl_fence_init(&f, 0, 0);
    push(&f, 1, 3, 0, 1);
    push(&f, 2, 3, 1, 1);
    push(&f, 3, 2, 2, 1); /* can't happen in Raft (terms ascend); the fence
                             still only trusts current-term entries */
    ck_assert_uint_eq(rl_fence_advance(&f, 3, 3, 3, NULL, NULL), 2);
    ck_assert_uint_eq(f.visible_index, 2);
    ck_assert_uint_eq(f.n, 1);
    rl_fence_free(&f);
}
END_TEST

START_TEST(test_commit_notice_from_leader)
{
    /* A follower told "entry 4 of term 2 is committed": it holds entries
     * 3..4 of term 2 and 5 of term 3 (not covered), so 3..4 pass. */
    struct rl_fence f;
    rl_fence_init(&f, 2, 20);
    push(&f, 3, 2, 20, 5);
    push(&f, 4, 2, 25, 5);
    push(&f, 5, 3, 30, 5);
    ck_assert_uint_eq(rl_fence_advance(&f, 4, 2, 5, NULL, NULL), 2);
    ck_assert_uint_eq(f.visible_index, 4);
    ck_assert_uint_eq(f.visible_offset, 30);
    /* a notice for an entry this log has with another term passes nothing */
    ck_assert_uint_eq(rl_fence_advance(&f, 5, 4, 5, NULL, NULL), 0);
    rl_fence_free(&f);
}
END_TEST

START_TEST(test_commit_notice_kept_until_durable)
{
    /* The notice "entry 4 of term 2 is committed" comes while only entry 3
     * is durable here: 3 passes now, 4 once its write completes, with no
     * further word from the leader. */
    struct rl_fence f;
    rl_fence_init(&f, 2, 20);
    push(&f, 3, 2, 20, 5);
    push(&f, 4, 2, 25, 5);
    ck_assert_uint_eq(rl_fence_reach(&f, 4, 2, 3), 3); /* what a leader would announce */
    ck_assert_uint_eq(rl_fence_reach(&f, 4, 1, 4), 0);
    ck_assert_uint_eq(rl_fence_notice(&f, 4, 2, 3, NULL, NULL), 1);
    ck_assert_uint_eq(f.visible_index, 3);
    ck_assert_uint_eq(rl_fence_follow(&f, 3, NULL, NULL), 0);
    ck_assert_uint_eq(rl_fence_follow(&f, 4, NULL, NULL), 1);
    ck_assert_uint_eq(f.visible_index, 4);
    ck_assert_uint_eq(f.visible_offset, 30);
    /* an older notice does not replace the newer one */
    push(&f, 5, 2, 30, 5);
    ck_assert_uint_eq(rl_fence_notice(&f, 5, 1, 4, NULL, NULL), 0);
    ck_assert_uint_eq(f.notice_index, 4);
    ck_assert_uint_eq(f.notice_term, 2);
    /* entry 5 replaced by another term's: a notice of term 2 never passes it */
    ck_assert_uint_eq(rl_fence_notice(&f, 5, 2, 4, NULL, NULL), 0);
    push(&f, 5, 3, 30, 5);
    ck_assert_uint_eq(rl_fence_follow(&f, 5, NULL, NULL), 0);
    ck_assert_uint_eq(f.visible_index, 4);
    rl_fence_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fence");
    TCase *tc = tcase_create("fence");
    tcase_add_test(tc, test_figure8_old_term_majority_is_not_shown);
    tcase_add_test(tc, test_figure8_overwritten_entry_never_shown);
    tcase_add_test(tc, test_durable_bound);
    tcase_add_test(tc, test_never_moves_back);
    tcase_add_test(tc, test_partial_prefix_up_to_current_term);
    tcase_add_test(tc, test_commit_notice_from_leader);
    tcase_add_test(tc, test_commit_notice_kept_until_durable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
