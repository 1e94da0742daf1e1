/* The state machine's snapshot files (lib/sm): round trips of every shape,
 * power loss at every write and at the sync of a new snapshot (the old one
 * or the new one is found whole, never a mix), a damaged byte anywhere
 * (detected; the listing's next older one verifies), pruning, stray .tmp
 * files; a peer's file installed (received in pieces, adopted) under
 * power loss at every write and sync, and bad received files refused. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fault_fs.h"
#include "lib/store_helpers.h"
#include "sm/smfile.h"

#define CHUNK 4096u
static char dir[4096];
static const struct rl_smf_id ID = {.node = 3, .cluster = 0x5eed};

static void setup(void)
{
    rl_fs_faults_clear();
    th_mkdtemp(dir, sizeof dir);
}

static void teardown(void)
{
    rl_fs_faults_clear();
    th_rmrf(dir);
}

static void fill(unsigned char *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 131 + seed * 7 + (i >> 9)) & 0xff);
}

/* Writes a snapshot of len bytes (pattern `seed`) in pieces of `piece`;
 * returns commit's result. */
static int write_snap(uint64_t next, size_t len, uint64_t seed, size_t piece)
{
    unsigned char *p = malloc(len + 1);
    fill(p, len, seed);
    rlog_sm_writer *w;
    char err[512];
    int rv = rl_smf_create(dir, next, &ID, CHUNK, &w, err, sizeof err);
    ck_assert_msg(rv == 0, "%s", err);
    for (size_t at = 0; at < len && rv == 0; at += piece)
        rv = rlog_sm_write(w, p + at, len - at < piece ? len - at : piece);
    free(p);
    if (rv != 0) {
        rl_smf_abandon(w);
        return rv;
    }
    return rl_smf_commit(w, err, sizeof err);
}

/* Opens snapshot `next` and checks it holds len bytes of pattern seed. */
static int check_snap(uint64_t next, size_t len, uint64_t seed)
{
    char path[4096], err[512];
    ck_assert(rl_smf_path(path, sizeof path, dir, next, false));
    rlog_sm_reader *r;
    int rv = rl_smf_open(path, &ID, &r, err, sizeof err);
    if (rv != 0)
        return rv;
    ck_assert_uint_eq(rl_smf_reader_header(r)->next_offset, next);
    ck_assert_uint_eq(rl_smf_reader_header(r)->id.node, ID.node);
    unsigned char *want = malloc(len + 1), *got = malloc(len + 1);
    fill(want, len, seed);
    size_t total = 0, n;
    /* Odd read sizes cross chunk boundaries. */
    do {
        ck_assert_int_eq(rlog_sm_read(r, got + total, len + 1 - total < 1000 ? len + 1 - total : 1000, &n), 0);
        total += n;
    } while (n > 0 && total <= len);
    ck_assert_uint_eq(total, len);
    ck_assert(memcmp(want, got, len) == 0);
    free(want);
    free(got);
    rl_smf_close(r);
    return 0;
}

START_TEST(test_round_trip_shapes)
{
    static const size_t sizes[] = {0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 100000};
    static const size_t pieces[] = {1, 7, 4096, 100000};
    for (unsigned i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (unsigned j = 0; j < sizeof pieces / sizeof *pieces; j++) {
            if (pieces[j] == 1 && sizes[i] > CHUNK + 1)
                continue;
            uint64_t next = 1000 * i + j;
            ck_assert_int_eq(write_snap(next, sizes[i], i + j, pieces[j]), 0);
            ck_assert_int_eq(check_snap(next, sizes[i], i + j), 0);
        }
}
END_TEST

START_TEST(test_list_newest_first_and_prune)
{
    ck_assert_int_eq(write_snap(5, 10, 1, 10), 0);
    ck_assert_int_eq(write_snap(500, 10, 2, 10), 0);
    ck_assert_int_eq(write_snap(70, 10, 3, 10), 0);
    char path[4096], err[256];
    rl_smf_path(path, sizeof path, dir, 900, true);
    th_write_file(path, "torn", 4); /* a crash's leftover */
    uint64_t *offs;
    size_t n;
    ck_assert_int_eq(rl_smf_list(dir, &offs, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(offs[0], 500);
    ck_assert_uint_eq(offs[1], 70);
    ck_assert_uint_eq(offs[2], 5);
    free(offs);
    ck_assert(!th_file_exists(path));
    ck_assert_int_eq(rl_smf_prune(dir, 2, err, sizeof err), 0);
    ck_assert_int_eq(rl_smf_list(dir, &offs, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(offs[1], 70);
    free(offs);
}
END_TEST

/* What an open finds after a crash: the newest snapshot that verifies.
 * Returns its offset (UINT64_MAX: none). */
static uint64_t newest_valid(void)
{
    uint64_t *offs;
    size_t n;
    char err[512];
    ck_assert_int_eq(rl_smf_list(dir, &offs, &n, err, sizeof err), 0);
    uint64_t found = UINT64_MAX;
    for (size_t i = 0; i < n && found == UINT64_MAX; i++) {
        char path[4096];
        rl_smf_path(path, sizeof path, dir, offs[i], false);
        rlog_sm_reader *r;
        if (rl_smf_open(path, &ID, &r, err, sizeof err) == 0) {
            found = offs[i];
            rl_smf_close(r);
        }
    }
    free(offs);
    return found;
}

/* Power loss at the k-th write of a new snapshot (the write itself torn
 * to `tear` bytes), then an open: the old snapshot, whole. */
START_TEST(test_power_loss_at_every_write)
{
    const size_t len = 5 * CHUNK + 100;
    ck_assert_int_eq(write_snap(10, 3000, 1, 3000), 0);
    struct rl_fs_counters c0, c1;
    rl_fs_counters(&c0);
    ck_assert_int_eq(write_snap(99, len, 2, 1000), 0);
    rl_fs_counters(&c1);
    unsigned writes = (unsigned)(c1.writes - c0.writes);
    ck_assert_uint_ge(writes, 7); /* 6 chunks, the table and trailer, the header */
    char path[4096];
    rl_smf_path(path, sizeof path, dir, 99, false);
    static const long tears[] = {-1, 1, 100, 5000};
    for (unsigned k = 1; k <= writes; k++)
        for (unsigned t = 0; t < sizeof tears / sizeof *tears; t++) {
            rl_fs_unlink(path); /* the complete one of the count, then none */
            struct rl_fs_faults f = {.write_fail_at = k, .write_errno = EIO,
                                     .write_short_bytes = tears[t] > 0 ? (size_t)tears[t] : 0};
            rl_fs_faults_set(&f);
            ck_assert_int_ne(write_snap(99, len, 2, 1000), 0);
            rl_fs_crash(tears[t]);
            rl_fs_faults_clear();
            ck_assert_uint_eq(newest_valid(), 10);
            ck_assert_int_eq(check_snap(10, 3000, 1), 0);
        }
}
END_TEST

/* Power loss at the snapshot's fdatasync: old one; after it: new one. */
START_TEST(test_power_loss_at_sync)
{
    const size_t len = 2 * CHUNK + 1;
    ck_assert_int_eq(write_snap(10, 3000, 1, 3000), 0);
    for (long tear = -1; tear <= 4096; tear += 4097 / 3) {
        struct rl_fs_faults f = {.crash_at_sync = 1, .tear_bytes = tear};
        rl_fs_faults_set(&f);
        ck_assert_int_ne(write_snap(20, len, 3, 999), 0);
        rl_fs_faults_clear();
        ck_assert_uint_eq(newest_valid(), 10);
    }
    /* The sync succeeded, then the machine died: the new one whole. */
    struct rl_fs_faults f = {.crash_at_sync = 2};
    rl_fs_faults_set(&f);
    ck_assert_int_eq(write_snap(20, len, 3, 999), 0);
    rl_fs_crash(-1);
    rl_fs_faults_clear();
    ck_assert_uint_eq(newest_valid(), 20);
    ck_assert_int_eq(check_snap(20, len, 3), 0);
}
END_TEST

/* A failed write reports its error and leaves nothing behind. */
START_TEST(test_enospc_abandons)
{
    struct rl_fs_faults f = {.write_fail_at = 2, .write_errno = ENOSPC};
    rl_fs_faults_set(&f);
    ck_assert_int_eq(write_snap(7, 3 * CHUNK, 1, CHUNK), RLOG_ENOSPC);
    rl_fs_faults_clear();
    uint64_t *offs;
    size_t n;
    char err[256], path[4096];
    ck_assert_int_eq(rl_smf_list(dir, &offs, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    free(offs);
    rl_smf_path(path, sizeof path, dir, 7, true);
    ck_assert(!th_file_exists(path));
}
END_TEST

/* Every byte of the file flipped in turn: the damaged file is refused
 * (RLOG_ECORRUPT), and the older one is what an open finds. */
START_TEST(test_damage_anywhere_detected)
{
    const size_t len = 2 * CHUNK + 333;
    ck_assert_int_eq(write_snap(4, 50, 9, 50), 0);
    ck_assert_int_eq(write_snap(40, len, 5, 1000), 0);
    char path[4096], err[512];
    rl_smf_path(path, sizeof path, dir, 40, false);
    size_t flen;
    unsigned char *orig = th_read_file(path, &flen);
    for (size_t i = 0; i < flen; i++) {
        orig[i] ^= 0x10;
        th_write_file(path, orig, flen);
        orig[i] ^= 0x10;
        rlog_sm_reader *r;
        int rv = rl_smf_open(path, &ID, &r, err, sizeof err);
        ck_assert_msg(rv == RLOG_ECORRUPT, "byte %zu flipped: %s", i, rlog_errname(rv));
        ck_assert_uint_eq(newest_valid(), 4);
    }
    /* Cut short, or grown. */
    th_write_file(path, orig, flen - 1);
    ck_assert_uint_eq(newest_valid(), 4);
    unsigned char *longer = calloc(1, flen + 1);
    memcpy(longer, orig, flen);
    th_write_file(path, longer, flen + 1);
    ck_assert_uint_eq(newest_valid(), 4);
    free(longer);
    th_write_file(path, orig, flen);
    ck_assert_uint_eq(newest_valid(), 40);
    free(orig);
}
END_TEST

START_TEST(test_foreign_cluster_refused)
{
    ck_assert_int_eq(write_snap(8, 100, 1, 100), 0);
    char path[4096], err[512];
    rl_smf_path(path, sizeof path, dir, 8, false);
    struct rl_smf_id other = {.node = 3, .cluster = 0xbad};
    rlog_sm_reader *r;
    ck_assert_int_eq(rl_smf_open(path, &other, &r, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "another cluster") != NULL, "%s", err);
}
END_TEST

/* ---- install (sm/install.c): a peer's file received in pieces into
 * install.part, made durable, then adopted (rl_smf_adopt) ---- */

/* Receives `file` as install does: pieces of `piece` bytes written to
 * dir/install.part, fdatasync, adopt. Stops at the first error. */
static int receive(const unsigned char *file, size_t len, size_t piece, uint64_t expect,
                   char *err, size_t errlen)
{
    char part[4200];
    snprintf(part, sizeof part, "%s/install.part", dir);
    int fd, rv = rl_fs_open(part, O_WRONLY | O_CREAT | O_TRUNC, 0600, &fd);
    if (rv != 0)
        return rl_errno_to_rlog(rv);
    for (size_t at = 0; at < len && rv == 0; at += piece)
        rv = rl_fs_pwrite(fd, file + at, len - at < piece ? len - at : piece, at);
    if (rv == 0)
        rv = rl_fs_fdatasync(fd);
    rl_fs_close(fd);
    if (rv != 0) {
        snprintf(err, errlen, "%s", strerror(-rv));
        return rl_errno_to_rlog(rv);
    }
    uint64_t next;
    rv = rl_smf_adopt(dir, part, &ID, expect, &next, err, errlen);
    if (rv == 0)
        ck_assert_uint_eq(next, expect);
    return rv;
}

/* The peer's snapshot 99, as bytes. */
static unsigned char *peer_file(size_t len, size_t *flen)
{
    ck_assert_int_eq(write_snap(99, len, 2, 1000), 0);
    char path[4096];
    rl_smf_path(path, sizeof path, dir, 99, false);
    unsigned char *b = th_read_file(path, flen);
    rl_fs_unlink(path);
    return b;
}

/* Power loss at every write of the received pieces (torn or not) and at
 * every sync after them: an open finds the old snapshot whole, or the
 * received one whole once its adoption finished; never a torn one. */
START_TEST(test_install_power_loss_everywhere)
{
    const size_t len = 4 * CHUNK + 77;
    ck_assert_int_eq(write_snap(10, 3000, 1, 3000), 0);
    size_t flen;
    unsigned char *file = peer_file(len, &flen);
    char err[512], path[4096];
    rl_smf_path(path, sizeof path, dir, 99, false);
    struct rl_fs_counters c0, c1;
    rl_fs_counters(&c0);
    ck_assert_int_eq(receive(file, flen, 5000, 99, err, sizeof err), 0);
    rl_fs_counters(&c1);
    ck_assert_int_eq(check_snap(99, len, 2), 0);
    unsigned writes = (unsigned)(c1.writes - c0.writes), syncs = (unsigned)(c1.syncs - c0.syncs);
    ck_assert_uint_ge(writes, 4);
    ck_assert_uint_ge(syncs, 1);
    static const long tears[] = {-1, 1, 3000};
    for (unsigned k = 1; k <= writes; k++)
        for (unsigned t = 0; t < sizeof tears / sizeof *tears; t++) {
            rl_fs_unlink(path);
            struct rl_fs_faults f = {.write_fail_at = k, .write_errno = EIO,
                                     .write_short_bytes = tears[t] > 0 ? (size_t)tears[t] : 0};
            rl_fs_faults_set(&f);
            ck_assert_int_ne(receive(file, flen, 5000, 99, err, sizeof err), 0);
            rl_fs_crash(tears[t]);
            rl_fs_faults_clear();
            ck_assert_uint_eq(newest_valid(), 10);
        }
    for (unsigned k = 1; k <= syncs + 1; k++) {
        rl_fs_unlink(path);
        struct rl_fs_faults f = {.crash_at_sync = k};
        rl_fs_faults_set(&f);
        int rv = receive(file, flen, 5000, 99, err, sizeof err);
        rl_fs_crash(-1);
        rl_fs_faults_clear();
        uint64_t found = newest_valid();
        ck_assert_msg(found == 10 || (rv == 0 && found == 99), "crash at sync %u: rv %d found %llu",
                      k, rv, (unsigned long long)found);
        if (found == 99)
            ck_assert_int_eq(check_snap(99, len, 2), 0);
    }
    free(file);
}
END_TEST

/* A received file that is not what it claims is refused and left out of
 * the directory: a piece missing, one flipped bit, another offset. */
START_TEST(test_install_refuses_bad_files)
{
    ck_assert_int_eq(write_snap(10, 3000, 1, 3000), 0);
    size_t flen;
    unsigned char *file = peer_file(2 * CHUNK + 5, &flen);
    char err[512];
    ck_assert_int_eq(receive(file, flen - 8, 4096, 99, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_uint_eq(newest_valid(), 10);
    file[flen / 2] ^= 0x40;
    ck_assert_int_eq(receive(file, flen, 4096, 99, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_uint_eq(newest_valid(), 10);
    file[flen / 2] ^= 0x40;
    ck_assert_int_eq(receive(file, flen, 4096, 98, err, sizeof err), RLOG_ECORRUPT);
    ck_assert_msg(strstr(err, "before 99") != NULL, "%s", err);
    ck_assert_uint_eq(newest_valid(), 10);
    ck_assert_int_eq(receive(file, flen, 4096, 99, err, sizeof err), 0);
    ck_assert_uint_eq(newest_valid(), 99);
    free(file);
}
END_TEST

static Suite *smfile_suite(void)
{
    Suite *s = suite_create("smfile");
    TCase *tc = tcase_create("smfile");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip_shapes);
    tcase_add_test(tc, test_list_newest_first_and_prune);
    tcase_add_test(tc, test_power_loss_at_every_write);
    tcase_add_test(tc, test_power_loss_at_sync);
    tcase_add_test(tc, test_enospc_abandons);
    tcase_add_test(tc, test_damage_anywhere_detected);
    tcase_add_test(tc, test_foreign_cluster_refused);
    tcase_add_test(tc, test_install_power_loss_everywhere);
    tcase_add_test(tc, test_install_refuses_bad_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(smfile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
