/*
 * Idempotent producers and conditional appends (issue 12) on real nodes:
 * three liblog nodes in one process on 127.0.0.1. Every append goes to the
 * leader (found with rlog_status). Checks are about outcomes (offsets,
 * errors, what the log holds), never about timing; each test is bounded by
 * its tcase timeout.
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "liblog.h"
#include "lib/ports.h"

#define N 3
#define RETRY_MS 300
#define WINDOW 2048

static struct {
    char dir[64];
    char addrs[N][32], dirs[N][128];
    struct rlog_peer peers[N];
    rlog *node[N];
} C;

static void quiet_log(void *arg, int level, const char *line)
{
    (void)arg;
    if (getenv("RLOG_TEST_VERBOSE") || level >= 3)
        fprintf(stderr, "%s\n", line);
}

static void node_open(int i)
{
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = (uint64_t)i + 1;
    c.address = C.addrs[i];
    c.data_dir = C.dirs[i];
    c.peers = C.peers;
    c.n_peers = N;
    c.election_timeout_ms = 400;
    c.heartbeat_timeout_ms = 50;
    c.segment_size = 1u << 20;
    c.batch_max_bytes = 256u << 10;
    c.max_record_size = 64u << 10;
    /* Snapshot descriptors often, so the PRODUCERS file is written. */
    c.snapshot_threshold = 8;
    c.snapshot_trailing = 8;
    c.producer_retry_ms = RETRY_MS;
    c.producer_window = WINDOW;
    c.log_fn = quiet_log;
    char err[256];
    int rv = rlog_open(&c, &C.node[i], err, sizeof err);
    ck_assert_msg(rv == 0, "open node %d: %s: %s", i + 1, rlog_errname(rv), err);
}

static void node_close(int i)
{
    ck_assert_int_eq(rlog_close(C.node[i]), 0);
    C.node[i] = NULL;
}

static void setup(void)
{
    snprintf(C.dir, sizeof C.dir, "/tmp/rlog-prod-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(C.dir));
    char top[sizeof C.dir];
    memcpy(top, C.dir, sizeof top);
    for (int i = 0; i < N; i++) {
        /* bases differing by one never give the same port (ports.c steps by 7) */
        snprintf(C.addrs[i], sizeof C.addrs[i], "127.0.0.1:%d", th_free_port(21000 + i));
        snprintf(C.dirs[i], sizeof C.dirs[i], "%s/n%d", top, i + 1);
        C.peers[i] = (struct rlog_peer){(uint64_t)i + 1, C.addrs[i]};
        C.node[i] = NULL;
    }
}

static void teardown(void)
{
    for (int i = 0; i < N; i++)
        if (C.node[i])
            rlog_close(C.node[i]);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", C.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", C.dir);
}

/* Index of the node that leads (waits up to ~20 s); fails if none. */
static int wait_leader(void)
{
    for (int t = 0; t < 400; t++) {
        for (int i = 0; i < N; i++) {
            struct rlog_status st;
            if (C.node[i] && rlog_status(C.node[i], &st) == 0 && st.role == RLOG_ROLE_LEADER)
                return i;
        }
        usleep(50000);
    }
    ck_assert_msg(0, "no leader");
    return -1;
}

static int open_cluster(void)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    return wait_leader();
}

static uint64_t commit_of(int i)
{
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(C.node[i], &st), 0);
    return st.commit_offset;
}

/* Record k of call (producer, seq, tag). */
static int rec_of(uint64_t producer, uint64_t seq, unsigned tag, unsigned k, char *buf, size_t cap)
{
    return snprintf(buf, cap, "p%llu s%llu t%u r%u%s", (unsigned long long)producer,
                    (unsigned long long)seq, tag, k, k % 2 ? "" : " (longer)");
}

#define MAXREC 8

/* rlog_append_ex on node i with n records (rec_of(producer, seq, tag, k)). */
static int append_ex(int i, uint64_t producer, uint64_t seq, uint64_t expect, unsigned tag,
                     unsigned n, uint64_t *off)
{
    char recs[MAXREC][64];
    struct rlog_buf b[MAXREC];
    for (unsigned k = 0; k < n; k++) {
        int l = rec_of(producer, seq, tag, k, recs[k], sizeof recs[k]);
        b[k] = (struct rlog_buf){recs[k], (size_t)l};
    }
    struct rlog_append_opts o;
    rlog_append_opts_init(&o);
    o.producer_id = producer;
    o.sequence = seq;
    o.expect_offset = expect;
    *off = UINT64_MAX;
    return rlog_append_ex(C.node[i], &o, b, n, off);
}

static void append_ok(int i, uint64_t producer, uint64_t seq, unsigned tag, unsigned n,
                      uint64_t want)
{
    uint64_t off;
    int rv = append_ex(i, producer, seq, RLOG_ANY_OFFSET, tag, n, &off);
    ck_assert_msg(rv == 0, "producer %llu seq %llu: %s: %s", (unsigned long long)producer,
                  (unsigned long long)seq, rlog_errname(rv), rlog_errmsg(C.node[i]));
    ck_assert_msg(off == want, "producer %llu seq %llu: offset %llu, want %llu",
                  (unsigned long long)producer, (unsigned long long)seq,
                  (unsigned long long)off, (unsigned long long)want);
}

/* Node i's record at `off` is record k of (producer, seq, tag). */
static void check_record(int i, uint64_t off, uint64_t producer, uint64_t seq, unsigned tag,
                         unsigned k)
{
    char want[64];
    int wl = rec_of(producer, seq, tag, k, want, sizeof want);
    void *b;
    size_t len;
    int rv = rlog_read(C.node[i], off, &b, &len);
    ck_assert_msg(rv == 0, "read %llu: %s", (unsigned long long)off, rlog_errname(rv));
    ck_assert_uint_eq(len, (size_t)wl);
    ck_assert_mem_eq(b, want, len);
    rlog_free(b);
}

/* ---- tests ------------------------------------------------------------------------ */

/* A retry returns the original offset and appends nothing; seq+1 is next. */
START_TEST(test_retry_same_offset)
{
    int l = open_cluster();
    uint64_t off;
    append_ok(l, 1, 1, 0, 3, 0);
    ck_assert_uint_eq(commit_of(l), 3);
    append_ok(l, 1, 1, 0, 3, 0); /* the same call again */
    ck_assert_uint_eq(commit_of(l), 3);
    append_ok(l, 1, 2, 0, 2, 3);
    ck_assert_uint_eq(commit_of(l), 5);
    /* an older call again, after a newer one */
    append_ok(l, 1, 1, 0, 3, 0);
    append_ok(l, 1, 2, 0, 2, 3);
    /* another producer is independent, and may start anywhere */
    append_ok(l, 2, 1000, 0, 1, 5);
    append_ok(l, 2, 1000, 0, 1, 5);
    ck_assert_uint_eq(commit_of(l), 6);
    /* a plain append lands right after: nothing else was appended */
    ck_assert_int_eq(rlog_append(C.node[l], "plain", 5, &off), 0);
    ck_assert_uint_eq(off, 6);
    for (unsigned k = 0; k < 3; k++)
        check_record(l, k, 1, 1, 0, k);
    for (unsigned k = 0; k < 2; k++)
        check_record(l, 3 + k, 1, 2, 0, k);
    check_record(l, 5, 2, 1000, 0, 0);
}
END_TEST

/* The same sequence with other records: RLOG_ESEQUENCE, nothing appended. */
START_TEST(test_reused_sequence)
{
    int l = open_cluster();
    uint64_t off;
    append_ok(l, 3, 1, 0, 2, 0);
    int rv = append_ex(l, 3, 1, RLOG_ANY_OFFSET, 1, 2, &off); /* other bytes */
    ck_assert_msg(rv == RLOG_ESEQUENCE, "%s", rlog_errname(rv));
    ck_assert_uint_eq(commit_of(l), 2);
    rv = append_ex(l, 3, 1, RLOG_ANY_OFFSET, 0, 1, &off); /* fewer records */
    ck_assert_msg(rv == RLOG_ESEQUENCE, "%s", rlog_errname(rv));
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(C.node[l]), "other records"));
    ck_assert_uint_eq(commit_of(l), 2);
    /* the original is still the answer, and the next sequence goes on */
    append_ok(l, 3, 1, 0, 2, 0);
    append_ok(l, 3, 2, 0, 1, 2);
    ck_assert_uint_eq(commit_of(l), 3);
    check_record(l, 0, 3, 1, 0, 0);
    check_record(l, 1, 3, 1, 0, 1);
}
END_TEST

/* A sequence that skips one: RLOG_ESEQUENCE (after producer_retry_ms of
 * retries), nothing appended; the missing one then the skipped one work. */
START_TEST(test_gap)
{
    int l = open_cluster();
    uint64_t off;
    append_ok(l, 4, 1, 0, 1, 0);
    int rv = append_ex(l, 4, 3, RLOG_ANY_OFFSET, 0, 2, &off);
    ck_assert_msg(rv == RLOG_ESEQUENCE, "%s", rlog_errname(rv));
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(C.node[l]), "skips ahead"));
    ck_assert_uint_eq(commit_of(l), 1);
    append_ok(l, 4, 2, 0, 1, 1);
    append_ok(l, 4, 3, 0, 2, 2);
    ck_assert_uint_eq(commit_of(l), 4);
}
END_TEST

struct racer {
    pthread_barrier_t *start;
    int leader;
    unsigned id;
    uint64_t expect;
    int rv;
    uint64_t off;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    char recs[2][32];
    struct rlog_buf b[2];
    for (int k = 0; k < 2; k++)
        b[k] = (struct rlog_buf){recs[k], (size_t)snprintf(recs[k], sizeof recs[k], "racer %u.%d",
                                                           r->id, k)};
    struct rlog_append_opts o;
    rlog_append_opts_init(&o);
    o.expect_offset = r->expect;
    pthread_barrier_wait(r->start);
    r->rv = rlog_append_ex(C.node[r->leader], &o, b, 2, &r->off);
    return NULL;
}

START_TEST(test_conditional)
{
    int l = open_cluster();
    uint64_t off;
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(rlog_append(C.node[l], "x", 1, NULL), 0);
    /* at the current end */
    struct rlog_buf one = {"c", 1};
    struct rlog_append_opts o;
    rlog_append_opts_init(&o);
    o.expect_offset = commit_of(l);
    ck_assert_uint_eq(o.expect_offset, 5);
    ck_assert_int_eq(rlog_append_ex(C.node[l], &o, &one, 1, &off), 0);
    ck_assert_uint_eq(off, 5);
    /* stale, and ahead */
    uint64_t stale[] = {5, 0, 3, 100};
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
        o.expect_offset = stale[i];
        off = 0;
        int rv = rlog_append_ex(C.node[l], &o, &one, 1, &off);
        ck_assert_msg(rv == RLOG_ECONFLICT, "expect %llu: %s", (unsigned long long)stale[i],
                      rlog_errname(rv));
        ck_assert_uint_eq(off, 6);
        ck_assert_uint_eq(commit_of(l), 6);
    }
    /* with a producer too: a conflict does not use up the sequence */
    o.producer_id = 9;
    o.sequence = 1;
    o.expect_offset = 2;
    ck_assert_int_eq(rlog_append_ex(C.node[l], &o, &one, 1, &off), RLOG_ECONFLICT);
    ck_assert_uint_eq(off, 6);
    o.expect_offset = 6;
    ck_assert_int_eq(rlog_append_ex(C.node[l], &o, &one, 1, &off), 0);
    ck_assert_uint_eq(off, 6);
    ck_assert_uint_eq(commit_of(l), 7);

    /* 8 threads race for the same end: exactly one wins */
    enum { T = 8 };
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, T);
    struct racer r[T];
    pthread_t th[T];
    uint64_t end = commit_of(l);
    for (unsigned i = 0; i < T; i++) {
        r[i] = (struct racer){&start, l, i, end, 1, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int wins = 0, winner = -1;
    for (unsigned i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        if (r[i].rv == 0) {
            wins++;
            winner = (int)i;
            ck_assert_uint_eq(r[i].off, end);
        } else {
            ck_assert_msg(r[i].rv == RLOG_ECONFLICT, "racer %u: %s", i, rlog_errname(r[i].rv));
            ck_assert_uint_eq(r[i].off, end + 2);
        }
    }
    pthread_barrier_destroy(&start);
    ck_assert_int_eq(wins, 1);
    ck_assert_uint_eq(commit_of(l), end + 2);
    char want[32];
    int wl = snprintf(want, sizeof want, "racer %d.1", winner);
    void *b;
    size_t len;
    ck_assert_int_eq(rlog_read(C.node[l], end + 1, &b, &len), 0);
    ck_assert_uint_eq(len, (size_t)wl);
    ck_assert_mem_eq(b, want, len);
    rlog_free(b);
}
END_TEST

#define ASYNC_N 1000

static struct {
    pthread_mutex_t mu;
    unsigned fired, failed;
    int first_error;
    uint64_t off[ASYNC_N + 1];
} A = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void async_cb(void *arg, int status, uint64_t first)
{
    uint64_t seq = (uint64_t)(uintptr_t)arg;
    pthread_mutex_lock(&A.mu);
    A.fired++;
    if (status) {
        A.failed++;
        if (!A.first_error)
            A.first_error = status;
    } else {
        A.off[seq] = first;
    }
    pthread_mutex_unlock(&A.mu);
}

static void async_round(int l, uint64_t *offs)
{
    pthread_mutex_lock(&A.mu);
    A.fired = A.failed = 0;
    A.first_error = 0;
    memset(A.off, 0xff, sizeof A.off);
    pthread_mutex_unlock(&A.mu);
    for (uint64_t s = 1; s <= ASYNC_N; s++) {
        char rec[64];
        int n = rec_of(5, s, 0, 0, rec, sizeof rec);
        struct rlog_buf b = {rec, (size_t)n};
        struct rlog_append_opts o;
        rlog_append_opts_init(&o);
        o.producer_id = 5;
        o.sequence = s;
        int rv = rlog_append_ex_async(C.node[l], &o, &b, 1, async_cb, (void *)(uintptr_t)s);
        ck_assert_msg(rv == 0, "seq %llu: %s", (unsigned long long)s, rlog_errname(rv));
    }
    bool done = false;
    for (int t = 0; t < 1200 && !done; t++) {
        pthread_mutex_lock(&A.mu);
        done = A.fired == ASYNC_N;
        pthread_mutex_unlock(&A.mu);
        if (!done)
            usleep(25000);
    }
    pthread_mutex_lock(&A.mu);
    ck_assert_msg(done, "%u of %u callbacks fired", A.fired, ASYNC_N);
    ck_assert_msg(A.failed == 0, "%u failed, first %s", A.failed, rlog_errname(A.first_error));
    memcpy(offs, A.off, sizeof A.off);
    pthread_mutex_unlock(&A.mu);
}

START_TEST(test_async_twice)
{
    int l = open_cluster();
    static uint64_t first[ASYNC_N + 1], second[ASYNC_N + 1];
    async_round(l, first);
    ck_assert_uint_eq(commit_of(l), ASYNC_N);
    async_round(l, second);
    for (uint64_t s = 1; s <= ASYNC_N; s++)
        ck_assert_msg(first[s] == second[s], "seq %llu: %llu then %llu", (unsigned long long)s,
                      (unsigned long long)first[s], (unsigned long long)second[s]);
    ck_assert_uint_eq(commit_of(l), ASYNC_N);
    /* calls of one producer are ordered: seq s is at offset s - 1 */
    for (uint64_t s = 1; s <= ASYNC_N; s++)
        ck_assert_uint_eq(first[s], s - 1);
    /* the log holds each record once */
    rlog_iter *it;
    ck_assert_int_eq(rlog_iter_open(C.node[l], 0, UINT64_MAX, &it), 0);
    for (uint64_t s = 1; s <= ASYNC_N; s++) {
        const void *rec;
        size_t len;
        uint64_t off;
        ck_assert_int_eq(rlog_iter_next(it, &rec, &len, &off), 0);
        ck_assert_uint_eq(off, s - 1);
        char want[64];
        int wl = rec_of(5, s, 0, 0, want, sizeof want);
        ck_assert_uint_eq(len, (size_t)wl);
        ck_assert_mem_eq(rec, want, len);
    }
    const void *rec;
    size_t len;
    ck_assert_int_eq(rlog_iter_next(it, &rec, &len, NULL), RLOG_ENOTFOUND);
    rlog_iter_close(it);
}
END_TEST

static void close_all(void)
{
    for (int i = 0; i < N; i++)
        node_close(i);
}

START_TEST(test_persistence)
{
    int l = open_cluster();
    uint64_t offs[51];
    for (uint64_t s = 1; s <= 50; s++) {
        offs[s] = 2 * (s - 1);
        append_ok(l, 7, s, 0, 2, offs[s]);
    }
    ck_assert_uint_eq(commit_of(l), 100);
    close_all();
    /* the table was saved with a snapshot descriptor somewhere */
    int saved = 0;
    for (int i = 0; i < N; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/PRODUCERS", C.dirs[i]);
        saved += access(path, F_OK) == 0;
    }
    ck_assert_msg(saved > 0, "no PRODUCERS file in any data dir");

    for (int i = 0; i < N; i++)
        node_open(i);
    l = wait_leader();
    append_ok(l, 7, 50, 0, 2, offs[50]);
    append_ok(l, 7, 1, 0, 2, offs[1]);
    ck_assert_uint_eq(commit_of(l), 100);
    append_ok(l, 7, 51, 0, 2, 100);
    ck_assert_uint_eq(commit_of(l), 102);
    close_all();

    /* without the file: rebuilt from the log */
    for (int i = 0; i < N; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/PRODUCERS", C.dirs[i]);
        if (unlink(path) != 0)
            ck_assert_msg(access(path, F_OK) != 0, "%s stays", path);
    }
    for (int i = 0; i < N; i++)
        node_open(i);
    l = wait_leader();
    append_ok(l, 7, 50, 0, 2, offs[50]);
    append_ok(l, 7, 51, 0, 2, 100);
    append_ok(l, 7, 2, 0, 2, offs[2]);
    ck_assert_uint_eq(commit_of(l), 102);
    int rv = append_ex(l, 7, 53, RLOG_ANY_OFFSET, 0, 1, &offs[0]);
    ck_assert_msg(rv == RLOG_ESEQUENCE, "%s", rlog_errname(rv));
    append_ok(l, 7, 52, 0, 2, 102);
}
END_TEST

START_TEST(test_leader_change)
{
    int l = open_cluster();
    for (uint64_t s = 1; s <= 20; s++)
        append_ok(l, 8, s, 0, 1 + s % 3, commit_of(l));
    uint64_t offs[21], end = commit_of(l), at = 0;
    for (uint64_t s = 1; s <= 20; s++) {
        offs[s] = at;
        at += 1 + s % 3;
    }
    ck_assert_uint_eq(at, end);
    int target = (l + 1) % N;
    int rv = rlog_transfer_leadership(C.node[l], (uint64_t)target + 1);
    ck_assert_msg(rv == 0, "transfer: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[l]));
    int l2 = wait_leader();
    ck_assert_int_ne(l2, l);
    for (uint64_t s = 1; s <= 20; s++)
        append_ok(l2, 8, s, 0, 1 + s % 3, offs[s]);
    ck_assert_uint_eq(commit_of(l2), end);
    append_ok(l2, 8, 21, 0, 1, end);
    ck_assert_uint_eq(commit_of(l2), end + 1);
}
END_TEST

START_TEST(test_bad_input)
{
    int l = open_cluster();
    char rec[] = "r";
    struct rlog_buf b = {rec, 1};
    struct rlog_append_opts o;
    rlog_append_opts_init(&o);
    ck_assert_uint_eq(o.producer_id, 0);
    ck_assert_uint_eq(o.expect_offset, RLOG_ANY_OFFSET);
    o.producer_id = 1;
    o.sequence = 0;
    uint64_t off;
    ck_assert_int_eq(rlog_append_ex(C.node[l], &o, &b, 1, &off), RLOG_EINVAL);
    ck_assert_int_eq(rlog_append_ex_async(C.node[l], &o, &b, 1, async_cb, NULL), RLOG_EINVAL);
    ck_assert_uint_eq(commit_of(l), 0);
    /* no options at all: a plain append */
    ck_assert_int_eq(rlog_append_ex(C.node[l], NULL, &b, 1, &off), 0);
    ck_assert_uint_eq(off, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("producers");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_retry_same_offset);
    tcase_add_test(tc, test_reused_sequence);
    tcase_add_test(tc, test_gap);
    tcase_add_test(tc, test_conditional);
    tcase_add_test(tc, test_async_twice);
    tcase_add_test(tc, test_persistence);
    tcase_add_test(tc, test_leader_change);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
