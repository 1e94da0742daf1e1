/* File modes of a data directory: the directory 0700 and every file liblog
 * creates in it 0600, whatever the process umask (here 0, the most
 * permissive); a directory open to other users is tightened at open and the
 * change logged; and the bound fields' validation and defaults. */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "liblog.h"

static char base[64];
static char dir[128];
static char address[32];
static struct rlog_peer self;
static pthread_mutex_t lines_mu = PTHREAD_MUTEX_INITIALIZER;
static char tightened_line[512];

static void setup(void)
{
    snprintf(base, sizeof base, "/tmp/rlog-modes-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(base));
    snprintf(dir, sizeof dir, "%s/data", base);
    /* A port the kernel says is free now. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    ck_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    snprintf(address, sizeof address, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    close(fd);
    self = (struct rlog_peer){1, address};
    tightened_line[0] = '\0';
}

static void teardown(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", base);
}

static void catch_lines(void *arg, int level, const char *line)
{
    (void)arg;
    (void)level;
    pthread_mutex_lock(&lines_mu);
    if (strstr(line, "tightened to 0700"))
        snprintf(tightened_line, sizeof tightened_line, "%s", line);
    pthread_mutex_unlock(&lines_mu);
}

static struct rlog_config config(void)
{
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = 1;
    c.address = address;
    c.data_dir = dir;
    c.peers = &self;
    c.n_peers = 1;
    /* Small windows, so that a few appends write snapshot descriptors. */
    c.snapshot_threshold = 4;
    c.snapshot_trailing = 4;
    c.log_fn = catch_lines;
    return c;
}

/* Opens a one-node cluster, appends enough for segments, metadata and
 * snapshot descriptors to exist, and closes it. */
static void run_node(void)
{
    struct rlog_config c = config();
    rlog *log;
    char err[256];
    int rv = rlog_open(&c, &log, err, sizeof err);
    ck_assert_msg(rv == 0, "open: %s: %s", rlog_errname(rv), err);
    for (int i = 0; i < 20; i++) {
        rv = rlog_append(log, "record", 6, NULL);
        ck_assert_msg(rv == 0, "append %d: %s", i, rlog_errname(rv));
    }
    ck_assert_int_eq(rlog_close(log), 0);
}

/* Every entry of dir: files 0600 at most, directories 0700 at most. */
static void check_tree(const char *path, unsigned *files)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
    if (!S_ISDIR(st.st_mode)) {
        ck_assert_msg((st.st_mode & 0177) == 0, "%s has mode %04o, not 0600 or less", path,
                      (unsigned)(st.st_mode & 07777));
        (*files)++;
        return;
    }
    ck_assert_msg((st.st_mode & 077) == 0, "directory %s has mode %04o, not 0700", path,
                  (unsigned)(st.st_mode & 07777));
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        check_tree(sub, files);
    }
    closedir(d);
}

static int exists(const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

START_TEST(test_new_directory_is_private_whatever_the_umask)
{
    mode_t old = umask(0);
    run_node();
    umask(old);
    unsigned files = 0;
    check_tree(dir, &files);
    /* The files the modes matter for exist (else the check proves little). */
    ck_assert(exists("FORMAT"));
    ck_assert(exists("LOCK"));
    ck_assert(exists("IDENTITY"));
    ck_assert_msg(files >= 5, "only %u files in %s", files, dir);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    ck_assert_str_eq(tightened_line, "");
}
END_TEST

START_TEST(test_open_directory_is_tightened_and_logged)
{
    mode_t old = umask(0);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    run_node();
    umask(old);
    unsigned files = 0;
    check_tree(dir, &files);
    ck_assert_msg(strstr(tightened_line, "0755") != NULL, "no log line for the change: \"%s\"",
                  tightened_line);
}
END_TEST

START_TEST(test_bound_fields)
{
    /* fetch_serve_bytes must hold one entry. */
    struct rlog_config c = config();
    c.fetch_serve_bytes = c.batch_max_bytes;
    rlog *log = NULL;
    char err[256] = "";
    ck_assert_int_eq(rlog_open(&c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_msg(strstr(err, "fetch_serve_bytes") != NULL, "message does not name the field: %s",
                  err);
    ck_assert_ptr_null(log);
    /* 0 means the default: such a node opens. */
    c = config();
    c.fetch_serve_max = 0;
    c.fetch_serve_bytes = 0;
    c.held_max = 0;
    int rv = rlog_open(&c, &log, err, sizeof err);
    ck_assert_msg(rv == 0, "open with zero bounds: %s: %s", rlog_errname(rv), err);
    ck_assert_int_eq(rlog_close(log), 0);
    struct rlog_config d;
    rlog_config_init(&d);
    ck_assert_uint_eq(d.fetch_serve_max, 4);
    ck_assert_uint_eq(d.fetch_serve_bytes, 16u << 20);
    ck_assert_uint_eq(d.held_max, 64);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("modes");
    TCase *tc = tcase_create("modes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_new_directory_is_private_whatever_the_umask);
    tcase_add_test(tc, test_open_directory_is_tightened_and_logged);
    tcase_add_test(tc, test_bound_fields);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
