/* The sender rules of lib/raftio/guard.c, one by one. */
#include <check.h>
#include <stdlib.h>

#include "liblog.h"
#include "raftio/guard.h"
#include "wire/codec.h"

static bool members_123(void *arg, uint64_t id)
{
    (void)arg;
    return id >= 1 && id <= 3;
}

/* Node 1, term 5, leader 2. */
static struct rl_guard_view view(void)
{
    return (struct rl_guard_view){.self = 1, .term = 5, .leader = 2, .is_member = members_123};
}

static struct raft_message ae(uint64_t from, uint64_t term)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES, .server_id = from};
    m.append_entries.term = term;
    m.append_entries.prev_log_term = term;
    return m;
}

static int check(const struct raft_message *m)
{
    struct rl_guard_view v = view();
    const char *why = NULL;
    int rv = rl_guard_check(&v, m, &why);
    ck_assert(rv == 0 ? why == NULL : why != NULL);
    return rv;
}

/* A commit notice of term `term` (its entry of the same term) from `from`. */
static int check_commit(uint64_t from, uint64_t term, const struct rl_guard_view *v)
{
    struct rl_wire_commit c = {.term = term, .index = 9, .entry_term = term};
    const char *why = NULL;
    int rv = rl_guard_check_commit(v, from, &c, &why);
    ck_assert(rv == 0 ? why == NULL : why != NULL);
    return rv;
}

START_TEST(test_member_leader_passes)
{
    struct raft_message m = ae(2, 5);
    ck_assert_int_eq(check(&m), 0);
}
END_TEST

START_TEST(test_non_member_dropped)
{
    struct raft_message m = ae(9, 5);
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
    m.type = RAFT_IO_REQUEST_VOTE;
    m.request_vote.term = 6;
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
}
END_TEST

START_TEST(test_self_or_zero_dropped)
{
    struct raft_message m = ae(1, 5);
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
    m = ae(0, 5);
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
}
END_TEST

START_TEST(test_second_leader_same_term_dropped)
{
    struct rl_guard_view v = view();
    v.leader = v.self; /* this node leads term 5 */
    const char *why = NULL;
    struct raft_message m = ae(3, 5);
    ck_assert_int_eq(rl_guard_check(&v, &m, &why), RLOG_EPROTO);
    m.type = RAFT_IO_INSTALL_SNAPSHOT;
    m.install_snapshot.term = 5;
    ck_assert_int_eq(rl_guard_check(&v, &m, &why), RLOG_EPROTO);
    m = ae(3, 5); /* a follower of leader 2: libraft decides */
    ck_assert_int_eq(check(&m), 0);
    v = view();
    ck_assert_int_eq(check_commit(3, 5, &v), RLOG_EPROTO);
    ck_assert_int_eq(check_commit(2, 5, &v), 0);
}
END_TEST

START_TEST(test_other_terms_pass)
{
    struct raft_message m = ae(3, 6); /* a new leader */
    ck_assert_int_eq(check(&m), 0);
    m = ae(3, 4); /* a deposed one: libraft tells it the term */
    ck_assert_int_eq(check(&m), 0);
}
END_TEST

START_TEST(test_no_known_leader_passes)
{
    struct rl_guard_view v = view();
    v.leader = 0;
    struct raft_message m = ae(3, 5);
    const char *why = NULL;
    ck_assert_int_eq(rl_guard_check(&v, &m, &why), 0);
}
END_TEST

START_TEST(test_commit_notice_only_from_known_leader)
{
    struct rl_guard_view v = view();
    /* the next term: its leader is not known here */
    ck_assert_int_eq(check_commit(2, 6, &v), RLOG_EPROTO);
    ck_assert_int_eq(check_commit(2, 4, &v), RLOG_EPROTO);
    ck_assert_int_eq(check_commit(9, 5, &v), RLOG_EPROTO); /* not a member */
    v.leader = 0;
    ck_assert_int_eq(check_commit(2, 5, &v), RLOG_EPROTO);
}
END_TEST

START_TEST(test_wrapping_terms_dropped)
{
    struct raft_message m = ae(2, RL_GUARD_MAX_TERM + 1);
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
    m = ae(2, 5);
    m.append_entries.prev_log_term = UINT64_MAX;
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
    m = (struct raft_message){.type = RAFT_IO_REQUEST_VOTE, .server_id = 3};
    m.request_vote.term = UINT64_MAX;
    ck_assert_int_eq(check(&m), RLOG_EPROTO);
    m.request_vote.term = RL_GUARD_MAX_TERM;
    ck_assert_int_eq(check(&m), 0);
    struct rl_guard_view v = view();
    v.term = UINT64_MAX;
    ck_assert_int_eq(check_commit(2, UINT64_MAX, &v), RLOG_EPROTO);
}
END_TEST

START_TEST(test_fetch_fields_are_not_terms)
{
    /* The fetch protocol carries indexes, not terms: only the sender
     * rule applies to it. */
    struct rl_guard_view v = view();
    const char *why = NULL;
    ck_assert_int_eq(rl_guard_check_sender(&v, 3, &why), 0);
    ck_assert_int_eq(rl_guard_check_sender(&v, 9, &why), RLOG_EPROTO);
    ck_assert_int_eq(rl_guard_check_sender(&v, 1, &why), RLOG_EPROTO);
    ck_assert_int_eq(rl_guard_check_sender(&v, 0, &why), RLOG_EPROTO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_member_leader_passes);
    tcase_add_test(tc, test_non_member_dropped);
    tcase_add_test(tc, test_self_or_zero_dropped);
    tcase_add_test(tc, test_second_leader_same_term_dropped);
    tcase_add_test(tc, test_other_terms_pass);
    tcase_add_test(tc, test_no_known_leader_passes);
    tcase_add_test(tc, test_wrapping_terms_dropped);
    tcase_add_test(tc, test_commit_notice_only_from_known_leader);
    tcase_add_test(tc, test_fetch_fields_are_not_terms);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
