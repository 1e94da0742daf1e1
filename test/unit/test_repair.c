/* Damage in the committed log and its repair, at the store level: a flipped
 * bit in a sealed segment is found at open (a scan) and at read, the range
 * is marked unreadable instead of the store refusing to open, reads in it
 * fail with RLOG_ECORRUPT (never data) while the rest stays readable, and a
 * write-back of good entries restores it crash-safely: whatever step a
 * crash or a failed write interrupts, the store opens afterwards with the
 * old damaged segment or the new good one, never a mix. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/store_helpers.h"

#define SEED 0xdab
static struct th_store T;
static uint64_t rng;
static struct th_model M;

static void setup(void)
{
    rl_fs_faults_clear();
    th_init(&T);
    th_model_init(&M);
    rng = 5;
}

static void teardown(void)
{
    rl_fs_faults_clear();
    th_model_free(&M);
    th_fini(&T);
}

static void drain(void)
{
    uv_run(&T.loop, UV_RUN_DEFAULT);
}

/* A log of 600 entries over many 64 KiB segments, closed. */
static void build_log(void)
{
    th_open_ok(&T);
    th_fill(&T, &M, &rng, 600, 12, 1, SEED);
    th_close(&T);
}

/* Where entry idx lives; fails if it is in the last segment. */
static uint64_t locate(uint64_t idx, char *name, size_t nlen, uint32_t *len)
{
    uint64_t pos;
    ck_assert_msg(th_frame_pos(T.dir, idx, name, nlen, &pos, len), "entry %" PRIu64, idx);
    static char names[512][NAME_MAX + 1];
    unsigned ns = th_list_segments(T.dir, names, 512);
    ck_assert_msg(strcmp(name, names[ns - 1]) != 0, "entry %" PRIu64 " is in the last segment",
                  idx);
    return pos;
}

/* Flips a bit of entry idx's payload (or of its length, where it has no
 * payload); returns the segment's name. */
static void damage(uint64_t idx, bool header, char *name, size_t nlen)
{
    uint32_t len;
    uint64_t pos = locate(idx, name, nlen, &len);
    if (header || len == 0)
        th_flip_bit(T.dir, name, pos + 40, 2); /* the length: the layout is lost */
    else
        th_flip_bit(T.dir, name, pos + RL_STORE_FRAME_HEADER_SIZE + len / 2, 3);
}

static void remove_index(const char *seg)
{
    char path[PATH_MAX], idx[NAME_MAX + 1];
    snprintf(idx, sizeof idx, "%.*s.idx", (int)(strlen(seg) - 4), seg);
    th_path_join(path, sizeof path, T.dir, idx);
    unlink(path);
}

static void expect_corrupt(uint64_t idx)
{
    struct rl_store_entry out;
    int rc = rl_store_read(T.s, idx, &out);
    ck_assert_msg(rc == RLOG_ECORRUPT, "read of damaged entry %" PRIu64 ": %s", idx,
                  rlog_errname(rc));
    ck_assert_ptr_null(out.buf);
    if (M.e[idx].records) {
        rc = rl_store_read_offset(T.s, M.e[idx].offset, &out);
        ck_assert_msg(rc == RLOG_ECORRUPT, "read of damaged record %" PRIu64 ": %s",
                      M.e[idx].offset, rlog_errname(rc));
        ck_assert_ptr_null(out.buf);
    }
}

/* The one damaged range the store knows of. */
static struct rl_store_damage the_damage(void)
{
    struct rl_store_damage d[4];
    size_t n = rl_store_damaged(T.s, d, 4);
    ck_assert_uint_eq(n, 1);
    ck_assert(d[0].sealed);
    ck_assert_uint_eq(rl_store_unreadable(T.s), d[0].last_index - d[0].first_index + 1);
    ck_assert_uint_eq(d[0].first_offset, M.e[d[0].first_index].offset);
    uint64_t end = d[0].last_index + 1 <= M.last ? M.e[d[0].last_index + 1].offset
                                                  : th_model_next_offset(&M);
    ck_assert_uint_eq(d[0].end_offset, end);
    return d[0];
}

static void check_all(void)
{
    char msg[512];
    ck_assert_msg(th_model_matches(&T, &M, true, 0, &rng, msg, sizeof msg), "%s", msg);
}

/* Every entry but those in [lo, hi] reads back as written. */
static void check_others(uint64_t lo, uint64_t hi)
{
    for (uint64_t i = 1; i <= M.last; i++)
        if (i < lo || i > hi)
            th_check_entry(&T, i, M.e[i].term, M.e[i].seed, M.e[i].offset);
}

static void repair_and_check(struct rl_store_damage d)
{
    struct rl_store_stats before, after;
    rl_store_stats(T.s, &before);
    unsigned n = (unsigned)(d.last_index - d.first_index + 1);
    int rc = th_repair(&T, d.first_index, n, 1, SEED);
    ck_assert_msg(rc == 0, "repair: %s: %s", rlog_errname(rc), rl_store_errmsg(T.s));
    rl_store_stats(T.s, &after);
    ck_assert_uint_eq(after.repaired_ranges, before.repaired_ranges + 1);
    ck_assert_uint_eq(after.repaired_entries, before.repaired_entries + n);
    ck_assert_uint_eq(rl_store_unreadable(T.s), 0);
    check_all();
    th_reopen(&T);
    check_all();
    ck_assert_uint_eq(rl_store_unreadable(T.s), 0);
}

/* ---- detection ------------------------------------------------------------- */

START_TEST(test_found_at_read)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 300;
    damage(victim, false, name, sizeof name);
    th_open_ok(&T); /* the segment's index file is intact: open does not read it */
    ck_assert_uint_eq(rl_store_unreadable(T.s), 0);
    th_check_entry(&T, victim - 1, 1, SEED, M.e[victim - 1].offset);
    expect_corrupt(victim);
    ck_assert_msg(th_msg_names_position(rl_store_errmsg(T.s), name), "errmsg '%s'",
                  rl_store_errmsg(T.s));
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.first_index, victim);
    ck_assert_uint_eq(d.last_index, victim);
    check_others(victim, victim);
    expect_corrupt(victim); /* still, on every read */
    ck_assert(!rl_store_is_fatal(T.s));
    repair_and_check(d);
}
END_TEST

START_TEST(test_found_at_open)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 250;
    damage(victim, false, name, sizeof name);
    remove_index(name); /* so open scans the segment */
    th_open_ok(&T);
    ck_assert_msg(strstr(rl_store_recovery_note(T.s), "damaged"), "note '%s'",
                  rl_store_recovery_note(T.s));
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.first_index, victim);
    ck_assert_uint_eq(d.last_index, victim);
    expect_corrupt(victim);
    check_others(victim, victim);
    /* Appends go on past it. */
    th_append_ok(&T, 5, 1, SEED);
    th_model_append(&M, M.last + 1, 5, 1, SEED);
    repair_and_check(d);
}
END_TEST

/* A damaged length: the frame's own header cannot say where it ends; the
 * next frame that verifies does. */
START_TEST(test_damaged_header)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 200;
    damage(victim, true, name, sizeof name);
    remove_index(name);
    th_open_ok(&T);
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.first_index, victim);
    ck_assert_uint_eq(d.last_index, victim);
    expect_corrupt(victim);
    check_others(victim, victim);
    repair_and_check(d);
}
END_TEST

START_TEST(test_damaged_header_found_at_read)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 350;
    damage(victim, true, name, sizeof name);
    th_open_ok(&T);
    expect_corrupt(victim);
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.first_index, victim);
    ck_assert_uint_eq(d.last_index, victim);
    check_others(victim, victim);
    repair_and_check(d);
}
END_TEST

/* The last entry of a sealed segment: no later frame in the file, the next
 * segment's header says where the range ends. */
START_TEST(test_damage_at_segment_end)
{
    build_log();
    static char names[512][NAME_MAX + 1];
    unsigned ns = th_list_segments(T.dir, names, 512);
    ck_assert_uint_ge(ns, 4);
    /* the last entry of the second segment: the one before the third's first */
    uint64_t victim = 0;
    for (uint64_t i = 2; i <= M.last && !victim; i++) {
        char name[NAME_MAX + 1];
        uint64_t pos;
        uint32_t len;
        ck_assert(th_frame_pos(T.dir, i, name, sizeof name, &pos, &len));
        if (strcmp(name, names[2]) == 0)
            victim = i - 1;
    }
    char name[NAME_MAX + 1];
    damage(victim, true, name, sizeof name);
    ck_assert_str_eq(name, names[1]);
    remove_index(name);
    th_open_ok(&T);
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.first_index, victim);
    ck_assert_uint_eq(d.last_index, victim);
    expect_corrupt(victim);
    check_others(victim, victim);
    repair_and_check(d);
}
END_TEST

/* Entries that do not fit the range are refused, and change nothing. */
START_TEST(test_repair_refuses_what_does_not_fit)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 300;
    damage(victim, false, name, sizeof name);
    remove_index(name);
    th_open_ok(&T);
    struct rl_store_damage d = the_damage();
    /* another seed: other payload lengths and record counts */
    int rc = th_repair(&T, d.first_index, 1, 1, SEED + 1);
    ck_assert_msg(rc == RLOG_EINVAL, "%s", rlog_errname(rc));
    rc = th_repair(&T, d.first_index, 2, 1, SEED);
    ck_assert_msg(rc == RLOG_EINVAL, "%s", rlog_errname(rc));
    rc = th_repair(&T, d.first_index + 1, 1, 1, SEED);
    ck_assert_msg(rc == RLOG_EINVAL, "%s", rlog_errname(rc));
    expect_corrupt(victim);
    the_damage();
    check_others(victim, victim);
    repair_and_check(d);
}
END_TEST

/* ---- crash safety of the write-back ---------------------------------------- */

/* After an interrupted repair and a reopen: the old segment (the damage is
 * found again, everything else intact) or the new one (all good). */
static void check_old_or_new(uint64_t victim)
{
    struct rl_store_entry out;
    int rc = rl_store_read(T.s, victim, &out);
    if (rc == 0) {
        free((void *)out.buf);
        check_all();
        ck_assert_uint_eq(rl_store_unreadable(T.s), 0);
        return;
    }
    ck_assert_msg(rc == RLOG_ECORRUPT, "%s", rlog_errname(rc));
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.first_index, victim);
    check_others(victim, victim);
    /* and it can still be repaired */
    repair_and_check(d);
}

static void leftover_tmp_gone(void)
{
    static char names[512][NAME_MAX + 1];
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", T.dir);
    ck_assert_msg(system(cmd) != 0, "a *.tmp file was left in %s", T.dir);
    (void)names;
}

/* Power loss at the k-th fdatasync after the repair starts. */
START_TEST(test_crash_during_repair)
{
    unsigned k = (unsigned)_i;
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 300;
    damage(victim, _i % 2 == 0, name, sizeof name);
    remove_index(name);
    th_open_ok(&T);
    drain();
    struct rl_store_damage d = the_damage();
    struct rl_fs_faults f = {.crash_at_sync = k, .tear_bytes = -1};
    rl_fs_faults_set(&f);
    int rc = th_repair(&T, d.first_index, (unsigned)(d.last_index - d.first_index + 1), 1,
                       SEED);
    bool crashed = rl_fs_crashed();
    ck_assert_msg(rc == 0 || crashed, "repair: %s", rlog_errname(rc));
    /* The write-back syncs once (then renames, which the fault model makes
     * durable at once): later k crash at the appends after it. */
    for (unsigned i = 0; i < 8 && !crashed; i++) {
        rc = th_append(&T, M.last + 1, 1, 1, SEED);
        crashed = rl_fs_crashed();
        if (rc == 0)
            th_model_append(&M, M.last + 1, 1, 1, SEED);
    }
    ck_assert(crashed);
    th_close(&T);
    rl_fs_faults_clear();
    th_open_ok(&T);
    leftover_tmp_gone();
    check_old_or_new(victim);
}
END_TEST

/* The steps the fault model cannot stop between, made by hand from a
 * repaired copy of the same directory: the synced temporary file not yet
 * renamed (the old segment stands), and the renamed segment with the old
 * index file beside it (the new one stands). */
START_TEST(test_interrupted_between_steps)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 330;
    damage(victim, _i == 1, name, sizeof name);
    char copy[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 32];
    th_mkdtemp(copy, sizeof copy);
    th_copy_dir(T.dir, copy);
    th_open_ok(&T);
    expect_corrupt(victim);
    struct rl_store_damage d = the_damage();
    ck_assert_int_eq(th_repair(&T, d.first_index, 1, 1, SEED), 0);
    th_close(&T);
    th_path_join(path, sizeof path, T.dir, name);
    size_t n;
    unsigned char *good = th_read_file(path, &n);
    /* the damaged directory again, with the good file as the temporary one */
    th_rmrf(T.dir);
    th_copy_dir(copy, T.dir);
    th_path_join(path, sizeof path, T.dir, name);
    snprintf(tmp, sizeof tmp, "%s.repair.tmp", path);
    th_write_file(tmp, good, n);
    th_open_ok(&T);
    leftover_tmp_gone();
    expect_corrupt(victim);
    check_others(victim, victim);
    th_close(&T);
    /* renamed, the old index file still there */
    th_write_file(path, good, n);
    th_open_ok(&T);
    check_all();
    ck_assert_uint_eq(rl_store_unreadable(T.s), 0);
    free(good);
    th_rmrf(copy);
}
END_TEST

/* A failed write (no crash) at each write of the rebuild: the repair fails,
 * the store stays usable with the damage recorded, and a retry works. */
START_TEST(test_write_fails_during_repair)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 320;
    damage(victim, false, name, sizeof name);
    remove_index(name);
    th_open_ok(&T);
    drain();
    struct rl_store_damage d = the_damage();
    struct rl_fs_faults f = {.write_fail_at = (unsigned)_i + 1, .write_errno = EIO};
    rl_fs_faults_set(&f);
    int rc = th_repair(&T, d.first_index, 1, 1, SEED);
    rl_fs_faults_clear();
    if (rc == 0) { /* the rebuild needed fewer writes */
        check_all();
        return;
    }
    ck_assert_msg(rc == RLOG_EIO, "%s", rlog_errname(rc));
    ck_assert(!rl_store_is_fatal(T.s));
    leftover_tmp_gone();
    expect_corrupt(victim);
    th_append_ok(&T, 3, 1, SEED);
    th_model_append(&M, M.last + 1, 3, 1, SEED);
    repair_and_check(the_damage());
}
END_TEST

/* A trim at the damaged entry works; one that takes the damaged segment
 * away makes the damage go too. */
START_TEST(test_trim_drops_damage)
{
    build_log();
    char name[NAME_MAX + 1];
    uint64_t victim = 40;
    damage(victim, false, name, sizeof name);
    remove_index(name);
    th_open_ok(&T);
    the_damage();
    /* A trim point on the damaged entry itself: its offset comes from the
     * damage's bounds, the store is not failed. */
    ck_assert_int_eq(th_trim(&T, victim), 0);
    ck_assert(!rl_store_is_fatal(T.s));
    ck_assert_int_eq(th_trim(&T, 300), 0);
    ck_assert_uint_eq(rl_store_unreadable(T.s), 0);
    struct rl_store_damage d[2];
    ck_assert_uint_eq(rl_store_damaged(T.s, d, 2), 0);
}
END_TEST

/* A suffix replaced right behind a damaged entry (a follower's uncommitted
 * entries after one awaiting repair): the cut starts where the damaged
 * range ends, found without reading it (fresh simulator seed 1010025 of
 * repair: the store failed stop at the cut, at every start). */
START_TEST(test_cut_right_after_damage)
{
    build_log();
    char name[NAME_MAX + 1], next[NAME_MAX + 1];
    uint64_t victim = 300;
    uint32_t len;
    locate(victim + 1, next, sizeof next, &len);
    damage(victim, false, name, sizeof name);
    ck_assert_str_eq(name, next); /* the cut falls in the damaged entry's segment */
    remove_index(name);
    th_open_ok(&T);
    struct rl_store_damage d = the_damage();
    ck_assert_uint_eq(d.last_index, victim);
    int rc = th_truncate(&T, victim + 1);
    ck_assert_msg(rc == 0, "truncate after the damage: %s: %s", rlog_errname(rc),
                  rl_store_errmsg(T.s));
    ck_assert(!rl_store_is_fatal(T.s));
    th_model_truncate(&M, victim + 1);
    ck_assert_uint_eq(rl_store_last_index(T.s), victim);
    th_append_ok(&T, 7, 2, SEED + 1);
    th_model_append(&M, victim + 1, 7, 2, SEED + 1);
    expect_corrupt(victim);
    check_others(victim, victim);
    th_reopen(&T);
    expect_corrupt(victim);
    check_others(victim, victim);
    ck_assert_uint_eq(rl_store_last_index(T.s), victim + 7);
}
END_TEST

static Suite *repair_suite(void)
{
    Suite *s = suite_create("repair");
    TCase *tc = tcase_create("detect");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_found_at_read);
    tcase_add_test(tc, test_found_at_open);
    tcase_add_test(tc, test_damaged_header);
    tcase_add_test(tc, test_damaged_header_found_at_read);
    tcase_add_test(tc, test_damage_at_segment_end);
    tcase_add_test(tc, test_repair_refuses_what_does_not_fit);
    tcase_add_test(tc, test_trim_drops_damage);
    tcase_add_test(tc, test_cut_right_after_damage);
    suite_add_tcase(s, tc);

    tc = tcase_create("write_back");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_crash_during_repair, 1, 5);
    tcase_add_loop_test(tc, test_interrupted_between_steps, 0, 2);
    tcase_add_loop_test(tc, test_write_fails_during_repair, 0, 8);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(repair_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
