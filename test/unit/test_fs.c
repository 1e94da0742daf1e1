/* lib/fs under the tests' fault injection (test/lib/fault_fs.c): countdown
 * failures, short writes, simulated power loss with rollback to the last
 * fdatasync, torn writes. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fault_fs.h"
#include "lib/store_helpers.h"

static char dir[PATH_MAX];

static void setup(void)
{
    th_mkdtemp(dir, sizeof dir);
    rl_fs_faults_clear();
}

static void teardown(void)
{
    rl_fs_faults_clear();
    th_rmrf(dir);
}

static void path_of(char *buf, size_t len, const char *name)
{
    th_path_join(buf, len, dir, name);
}

static int open_file(const char *name)
{
    char p[PATH_MAX];
    path_of(p, sizeof p, name);
    int fd = -1;
    int rc = rl_fs_open(p, O_RDWR | O_CREAT, 0644, &fd);
    ck_assert_msg(rc == 0, "rl_fs_open %s: %d", p, rc);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Reads a file with plain syscalls (the fault layer may refuse after a
 * crash). Returns its size; copies up to cap bytes into buf. */
static size_t slurp(const char *name, char *buf, size_t cap)
{
    char p[PATH_MAX];
    path_of(p, sizeof p, name);
    size_t len;
    unsigned char *data = th_read_file(p, &len);
    memcpy(buf, data, len < cap ? len : cap);
    free(data);
    return len;
}

static void write_str(int fd, const char *s, uint64_t off)
{
    int rc = rl_fs_pwrite(fd, s, strlen(s), off);
    ck_assert_msg(rc == 0, "pwrite '%s' at %llu: %d", s, (unsigned long long)off, rc);
}

static void assert_content(const char *name, const char *want)
{
    char buf[256] = {0};
    size_t len = slurp(name, buf, sizeof buf - 1);
    ck_assert_msg(len == strlen(want) && memcmp(buf, want, len) == 0,
                  "%s holds '%.*s' (%zu bytes), want '%s'", name, (int)len, buf, len,
                  want);
}

START_TEST(test_plain_io_round_trip)
{
    int fd = open_file("a");
    write_str(fd, "hello world", 0);
    write_str(fd, "W", 6);
    ck_assert_int_eq(rl_fs_fdatasync(fd), 0);
    char buf[32] = {0};
    size_t n = 0;
    ck_assert_int_eq(rl_fs_pread(fd, buf, sizeof buf, 0, &n), 0);
    ck_assert_uint_eq(n, 11); /* short read at EOF reports what was there */
    ck_assert_str_eq(buf, "hello World");
    uint64_t size = 0;
    ck_assert_int_eq(rl_fs_file_size(fd, &size), 0);
    ck_assert_uint_eq(size, 11);
    ck_assert_int_eq(rl_fs_close(fd), 0);

    char from[PATH_MAX], to[PATH_MAX];
    path_of(from, sizeof from, "a");
    path_of(to, sizeof to, "b");
    ck_assert_int_eq(rl_fs_rename(from, to), 0);
    ck_assert(!th_file_exists(from));
    assert_content("b", "hello World");
    ck_assert_int_eq(rl_fs_unlink(to), 0);
    ck_assert(!th_file_exists(to));
    ck_assert_int_eq(rl_fs_unlink(to), -ENOENT);
    ck_assert_int_eq(rl_fs_fsync_dir(dir), 0);
    int fd2 = -1;
    ck_assert_int_eq(rl_fs_open(to, O_RDONLY, 0, &fd2), -ENOENT);
}
END_TEST

START_TEST(test_pwritev_gathers)
{
    int fd = open_file("a");
    struct iovec iov[3] = {{"abc", 3}, {"", 0}, {"defgh", 5}};
    ck_assert_int_eq(rl_fs_pwritev(fd, iov, 3, 2), 0);
    write_str(fd, "XY", 0);
    assert_content("a", "XYabcdefgh");
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_write_fail_countdown)
{
    int fd = open_file("a");
    struct rl_fs_faults f = {.write_fail_at = 3, .write_errno = ENOSPC};
    rl_fs_faults_set(&f);
    write_str(fd, "11", 0);
    write_str(fd, "22", 2);
    ck_assert_int_eq(rl_fs_pwrite(fd, "33", 2, 4), -ENOSPC);
    write_str(fd, "44", 4); /* only the 3rd write fails */
    assert_content("a", "112244");
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_write_fail_default_errno_is_eio)
{
    int fd = open_file("a");
    struct rl_fs_faults f = {.write_fail_at = 1};
    rl_fs_faults_set(&f);
    ck_assert_int_eq(rl_fs_pwrite(fd, "x", 1, 0), -EIO);
    assert_content("a", "");
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_short_write)
{
    int fd = open_file("a");
    struct rl_fs_faults f = {.write_fail_at = 2, .write_errno = EIO,
                             .write_short_bytes = 5};
    rl_fs_faults_set(&f);
    write_str(fd, "zz", 0);
    /* a pwritev: the partial write crosses an iovec boundary */
    struct iovec iov[2] = {{"ABC", 3}, {"DEFGHIJ", 7}};
    ck_assert_int_eq(rl_fs_pwritev(fd, iov, 2, 2), -EIO);
    assert_content("a", "zzABCDE");
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_faults_set_restarts_countdown)
{
    int fd = open_file("a");
    struct rl_fs_faults f = {.write_fail_at = 2, .write_errno = EIO};
    rl_fs_faults_set(&f);
    write_str(fd, "a", 0);
    rl_fs_faults_set(&f); /* counting starts over */
    write_str(fd, "b", 1);
    ck_assert_int_eq(rl_fs_pwrite(fd, "c", 1, 2), -EIO);
    rl_fs_faults_clear();
    write_str(fd, "d", 2);
    assert_content("a", "abd");
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_sync_fail_countdown)
{
    int fd = open_file("a");
    struct rl_fs_faults f = {.sync_fail_at = 2, .sync_errno = ENOSPC};
    rl_fs_faults_set(&f);
    write_str(fd, "a", 0);
    ck_assert_int_eq(rl_fs_fdatasync(fd), 0);
    write_str(fd, "b", 1);
    ck_assert_int_eq(rl_fs_fdatasync(fd), -ENOSPC);
    ck_assert_int_eq(rl_fs_fdatasync(fd), 0);
    ck_assert_int_eq(rl_fs_crashed(), 0); /* a failed sync is not a crash */
    assert_content("a", "ab");
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_zero_fill)
{
    int fd = open_file("a");
    struct rl_fs_faults f = {.zero_fill_fail_at = 2, .zero_fill_errno = ENOSPC};
    rl_fs_faults_set(&f);
    ck_assert_int_eq(rl_fs_zero_fill(fd, 100000), 0);
    uint64_t size = 0;
    ck_assert_int_eq(rl_fs_file_size(fd, &size), 0);
    ck_assert_uint_eq(size, 100000);
    int fd2 = open_file("b");
    ck_assert_int_eq(rl_fs_zero_fill(fd2, 4096), -ENOSPC);
    ck_assert_int_eq(rl_fs_zero_fill(fd2, 4096), 0);
    char p[PATH_MAX];
    path_of(p, sizeof p, "a");
    size_t len;
    unsigned char *data = th_read_file(p, &len);
    ck_assert_uint_eq(len, 100000);
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(data[i] == 0, "byte %zu not zero", i);
    free(data);
    rl_fs_close(fd);
    rl_fs_close(fd2);
}
END_TEST

START_TEST(test_crash_rolls_back_unsynced)
{
    int a = open_file("a");
    int b = open_file("b");
    struct rl_fs_faults f = {.crash_at_sync = 3};
    rl_fs_faults_set(&f);
    write_str(a, "AAAAAAAA", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);  /* sync 1: A durable */
    write_str(a, "BBBB", 2);                   /* overwrite, not synced */
    write_str(a, "CCCC", 8);                   /* extension, not synced */
    write_str(b, "XXXX", 0);
    ck_assert_int_eq(rl_fs_fdatasync(b), 0);  /* sync 2: b durable */
    write_str(b, "YY", 4);                     /* not synced */
    ck_assert_int_eq(rl_fs_crashed(), 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO); /* sync 3: power loss */
    ck_assert_int_eq(rl_fs_crashed(), 1);
    assert_content("a", "AAAAAAAA");
    assert_content("b", "XXXX");
    rl_fs_close(a);
    rl_fs_close(b);
}
END_TEST

START_TEST(test_crash_restores_closed_and_rewritten_files)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 2};
    rl_fs_faults_set(&f);
    write_str(a, "0123456789", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    write_str(a, "ab", 0);
    write_str(a, "cd", 1); /* same bytes twice: oldest pre-image wins */
    write_str(a, "ef", 5);
    ck_assert_int_eq(rl_fs_close(a), 0); /* closed without a sync */
    int b = open_file("b");
    write_str(b, "b", 0);
    ck_assert_int_eq(rl_fs_fdatasync(b), -EIO);
    assert_content("a", "0123456789");
    assert_content("b", ""); /* created (durable), its write was not synced */
    rl_fs_close(b);
}
END_TEST

START_TEST(test_crash_of_new_file_content)
{
    struct rl_fs_faults f = {.crash_at_sync = 1};
    rl_fs_faults_set(&f);
    int a = open_file("a");
    write_str(a, "data", 0);
    int b = open_file("b");
    ck_assert_int_eq(rl_fs_fdatasync(b), -EIO);
    assert_content("a", "");
    rl_fs_close(a);
    rl_fs_close(b);
}
END_TEST

START_TEST(test_everything_fails_after_crash)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 1};
    rl_fs_faults_set(&f);
    write_str(a, "x", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    ck_assert_int_eq(rl_fs_crashed(), 1);
    ck_assert_int_eq(rl_fs_pwrite(a, "y", 1, 0), -EIO);
    struct iovec iov = {"z", 1};
    ck_assert_int_eq(rl_fs_pwritev(a, &iov, 1, 0), -EIO);
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    ck_assert_int_eq(rl_fs_zero_fill(a, 4096), -EIO);
    char p[PATH_MAX], q[PATH_MAX];
    path_of(p, sizeof p, "a");
    path_of(q, sizeof q, "c");
    int fd = -1;
    ck_assert_int_eq(rl_fs_open(q, O_RDWR | O_CREAT, 0644, &fd), -EIO);
    ck_assert(!th_file_exists(q));
    ck_assert_int_eq(rl_fs_rename(p, q), -EIO);
    ck_assert_int_eq(rl_fs_unlink(p), -EIO);
    ck_assert(th_file_exists(p));
    ck_assert_int_eq(rl_fs_fsync_dir(dir), -EIO);
    assert_content("a", "");
    /* after clearing, the machine is back */
    rl_fs_faults_clear();
    ck_assert_int_eq(rl_fs_crashed(), 0);
    write_str(a, "ok", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    assert_content("a", "ok");
    rl_fs_close(a);
}
END_TEST

/* The header says every call fails after the crash "as if the machine were
 * gone"; reading data from a dead machine must not succeed either. */
START_TEST(test_read_fails_after_crash)
{
    int a = open_file("a");
    write_str(a, "durable", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    struct rl_fs_faults f = {.crash_at_sync = 1};
    rl_fs_faults_set(&f);
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    char buf[8];
    size_t n = 0;
    ck_assert_int_eq(rl_fs_pread(a, buf, sizeof buf, 0, &n), -EIO);
    rl_fs_close(a);
}
END_TEST

START_TEST(test_tear_keeps_prefix_of_newest_write)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 2, .tear_bytes = 3};
    rl_fs_faults_set(&f);
    write_str(a, "AAAAAAAA", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    write_str(a, "BBBBBBBB", 0); /* older unsynced write: rolled back fully */
    write_str(a, "CCCCCCCC", 8); /* newest: keeps 3 bytes */
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    assert_content("a", "AAAAAAAACCC");
    rl_fs_close(a);
}
END_TEST

START_TEST(test_tear_of_overwrite)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 2, .tear_bytes = 5};
    rl_fs_faults_set(&f);
    write_str(a, "AAAAAAAA", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    struct iovec iov[2] = {{"BBB", 3}, {"CCCCC", 5}};
    ck_assert_int_eq(rl_fs_pwritev(a, iov, 2, 0), 0); /* newest, spans iovecs */
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    assert_content("a", "BBBCCAAA");
    rl_fs_close(a);
}
END_TEST

START_TEST(test_tear_larger_than_write_keeps_it_all)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 2, .tear_bytes = 100};
    rl_fs_faults_set(&f);
    write_str(a, "AAAA", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    write_str(a, "BBBB", 0);
    write_str(a, "CCC", 1); /* newest: all 3 bytes kept */
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    assert_content("a", "ACCC");
    rl_fs_close(a);
}
END_TEST

/* The newest write keeps its torn prefix even when an older unsynced write
 * (rolled back) had extended the file before it: the kept bytes stay at their
 * offset and the rolled-back range reads as never written (zeros). */
START_TEST(test_tear_after_rolled_back_extension)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 2, .tear_bytes = 2};
    rl_fs_faults_set(&f);
    write_str(a, "AAAA", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    write_str(a, "BBBB", 4); /* older, extends the file: rolled back */
    write_str(a, "CCCC", 8); /* newest: keeps "CC" */
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    char buf[32] = {0};
    size_t len = slurp("a", buf, sizeof buf);
    ck_assert_msg(len == 10, "size %zu, want 10 (AAAA, 4 rolled back, CC)", len);
    ck_assert(memcmp(buf, "AAAA\0\0\0\0CC", 10) == 0);
    rl_fs_close(a);
}
END_TEST

START_TEST(test_negative_tear_keeps_none)
{
    int a = open_file("a");
    struct rl_fs_faults f = {.crash_at_sync = 2, .tear_bytes = -1};
    rl_fs_faults_set(&f);
    write_str(a, "AAAA", 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    write_str(a, "BBBB", 4);
    ck_assert_int_eq(rl_fs_fdatasync(a), -EIO);
    assert_content("a", "AAAA");
    rl_fs_close(a);
}
END_TEST

/* ---- O_DIRECT descriptors ------------------------------------------------ */

/* A file of n 4 KiB blocks filled with `fill`, synced, and a second
 * descriptor on it opened with O_DIRECT (-1 where refused). */
static int direct_file(const char *name, int n, int fill, int *bfd)
{
    char p[PATH_MAX];
    path_of(p, sizeof p, name);
    *bfd = open_file(name);
    char *blk = malloc(4096);
    memset(blk, fill, 4096);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(rl_fs_pwrite(*bfd, blk, 4096, (uint64_t)i * 4096), 0);
    ck_assert_int_eq(rl_fs_fdatasync(*bfd), 0);
    free(blk);
    int dfd = -1;
    if (rl_fs_open(p, O_WRONLY | O_DIRECT, 0, &dfd) != 0)
        return -1;
    return dfd;
}

static void *aligned_block(int fill)
{
    void *b;
    ck_assert_int_eq(posix_memalign(&b, 4096, 4096), 0);
    memset(b, fill, 4096);
    return b;
}

/* Power loss undoes an unsynced direct write: its pre-image was read through
 * a buffered descriptor, since the direct one refuses unaligned reads. */
START_TEST(test_direct_write_rolled_back)
{
    int bfd, dfd = direct_file("d", 2, 'a', &bfd);
    if (dfd < 0)
        return; /* no O_DIRECT here: nothing to check */
    struct rl_fs_faults f = {.crash_at_sync = 1};
    rl_fs_faults_set(&f);
    void *b = aligned_block('b');
    ck_assert_int_eq(rl_fs_pwrite(dfd, b, 4096, 4096), 0);
    ck_assert_int_eq(rl_fs_fdatasync(dfd), -EIO);
    char buf[8192];
    ck_assert_uint_eq(slurp("d", buf, sizeof buf), 8192);
    for (int i = 0; i < 8192; i++)
        ck_assert_int_eq(buf[i], 'a');
    free(b);
    rl_fs_close(dfd);
    rl_fs_close(bfd);
}
END_TEST

/* A short-write fault on a direct descriptor writes its unaligned prefix
 * (through a buffered one) and fails; a tear keeps a prefix of the write. */
START_TEST(test_direct_short_write_and_tear)
{
    int bfd, dfd = direct_file("d", 1, 'a', &bfd);
    if (dfd < 0)
        return;
    struct rl_fs_faults f = {.write_fail_at = 1, .write_errno = ENOSPC, .write_short_bytes = 10};
    rl_fs_faults_set(&f);
    void *b = aligned_block('b');
    ck_assert_int_eq(rl_fs_pwrite(dfd, b, 4096, 0), -ENOSPC);
    char buf[4096];
    ck_assert_uint_eq(slurp("d", buf, sizeof buf), 4096);
    for (int i = 0; i < 4096; i++)
        ck_assert_int_eq(buf[i], i < 10 ? 'b' : 'a');
    struct rl_fs_faults g = {.crash_at_sync = 1, .tear_bytes = 100};
    rl_fs_faults_set(&g);
    memset(b, 'c', 4096);
    ck_assert_int_eq(rl_fs_pwrite(dfd, b, 4096, 0), 0);
    ck_assert_int_eq(rl_fs_fdatasync(bfd), -EIO);
    slurp("d", buf, sizeof buf);
    for (int i = 0; i < 4096; i++)
        ck_assert_int_eq(buf[i], i < 100 ? 'c' : i < 10 ? 'b' : 'a');
    free(b);
    rl_fs_close(dfd);
    rl_fs_close(bfd);
}
END_TEST

/* no_direct: an O_DIRECT open fails as on a file system without it. */
START_TEST(test_no_direct_refuses_open)
{
    struct rl_fs_faults f = {.no_direct = 1};
    rl_fs_faults_set(&f);
    char p[PATH_MAX];
    path_of(p, sizeof p, "n");
    int fd = -1;
    ck_assert_int_eq(rl_fs_open(p, O_RDWR | O_CREAT | O_DIRECT, 0644, &fd), -EINVAL);
    ck_assert_int_eq(rl_fs_open(p, O_RDWR | O_CREAT, 0644, &fd), 0);
    rl_fs_close(fd);
}
END_TEST

START_TEST(test_counters)
{
    struct rl_fs_counters c0, c1;
    rl_fs_counters(&c0);
    int a = open_file("a");
    write_str(a, "12345", 0);
    struct iovec iov[2] = {{"ab", 2}, {"cde", 3}};
    ck_assert_int_eq(rl_fs_pwritev(a, iov, 2, 5), 0);
    ck_assert_int_eq(rl_fs_fdatasync(a), 0);
    ck_assert_int_eq(rl_fs_zero_fill(a, 16), 0);
    rl_fs_counters(&c1);
    ck_assert_uint_eq(c1.writes - c0.writes, 2);
    ck_assert_uint_ge(c1.syncs - c0.syncs, 1);
    ck_assert_uint_eq(c1.zero_fills - c0.zero_fills, 1);
    ck_assert_uint_ge(c1.bytes_written - c0.bytes_written, 10);
    rl_fs_close(a);
}
END_TEST

static Suite *fs_suite(void)
{
    Suite *s = suite_create("fs");
    TCase *tc = tcase_create("io");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_plain_io_round_trip);
    tcase_add_test(tc, test_pwritev_gathers);
    tcase_add_test(tc, test_counters);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_write_fail_countdown);
    tcase_add_test(tc, test_write_fail_default_errno_is_eio);
    tcase_add_test(tc, test_short_write);
    tcase_add_test(tc, test_faults_set_restarts_countdown);
    tcase_add_test(tc, test_sync_fail_countdown);
    tcase_add_test(tc, test_zero_fill);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_crash_rolls_back_unsynced);
    tcase_add_test(tc, test_crash_restores_closed_and_rewritten_files);
    tcase_add_test(tc, test_crash_of_new_file_content);
    tcase_add_test(tc, test_everything_fails_after_crash);
    tcase_add_test(tc, test_read_fails_after_crash);
    tcase_add_test(tc, test_tear_keeps_prefix_of_newest_write);
    tcase_add_test(tc, test_tear_of_overwrite);
    tcase_add_test(tc, test_tear_larger_than_write_keeps_it_all);
    tcase_add_test(tc, test_tear_after_rolled_back_extension);
    tcase_add_test(tc, test_negative_tear_keeps_none);
    tcase_add_test(tc, test_direct_write_rolled_back);
    tcase_add_test(tc, test_direct_short_write_and_tear);
    tcase_add_test(tc, test_no_direct_refuses_open);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(fs_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
