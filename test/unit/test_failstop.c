/* A node that fails stop after a storage error (faults injected through
 * lib/fs): the host's on_fatal callback, rlog_status and rlog_errmsg naming
 * the cause, reads, iterators and subscribers of what was committed before
 * the stop, refused appends, rlog_close's answer, and a restart once the
 * fault is gone. One-node clusters: the fault plan is process-wide, and a
 * node of its own is the only way to aim it at one store. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lib/fault_fs.h"
#include "liblog.h"
#include "lib/ports.h"

#define RECORD_BYTES 1000
#define WAIT_STEPS 200 /* of 25 ms: every wait is bounded by 5 s */

static char dir[256], address[32];
static struct rlog_peer peer;
static rlog *node;

/* What the host's on_fatal saw. */
static struct {
    pthread_mutex_t mu;
    int calls, code;
    char msg[256];
    pthread_t thread;
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_fatal(void *arg, int code, const char *msg)
{
    (void)arg;
    pthread_mutex_lock(&seen.mu);
    seen.calls++;
    seen.code = code;
    snprintf(seen.msg, sizeof seen.msg, "%s", msg);
    seen.thread = pthread_self();
    pthread_mutex_unlock(&seen.mu);
}

/* Error lines the node logged, joined: the cause must be among them. */
static char errors_logged[2048];

static void log_fn(void *arg, int level, const char *line)
{
    (void)arg;
    if (getenv("RLOG_TEST_VERBOSE"))
        fprintf(stderr, "%s\n", line);
    pthread_mutex_lock(&seen.mu);
    size_t used = strlen(errors_logged);
    if (level >= 3)
        snprintf(errors_logged + used, sizeof errors_logged - used, "%s\n", line);
    pthread_mutex_unlock(&seen.mu);
}

static int fatal_calls(void)
{
    pthread_mutex_lock(&seen.mu);
    int n = seen.calls;
    pthread_mutex_unlock(&seen.mu);
    return n;
}

/* A state machine that counts the records it applied. */
static atomic_ulong sm_applied;

static int64_t count_apply(void *arg, uint64_t offset, const void *rec, size_t len)
{
    (void)arg;
    (void)rec;
    (void)len;
    atomic_fetch_add(&sm_applied, 1);
    return (int64_t)offset;
}

static struct rlog_sm counter_sm = {.apply = count_apply};
static const struct rlog_sm *open_with_sm; /* for the next open_node */

static void setup(void)
{
    rl_fs_faults_clear();
    open_with_sm = NULL;
    atomic_store(&sm_applied, 0);
    snprintf(dir, sizeof dir, "/tmp/rlog-failstop-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(address, sizeof address, "127.0.0.1:%d", th_free_port(21000));
    peer = (struct rlog_peer){1, address};
    node = NULL;
}

static void teardown(void)
{
    rl_fs_faults_clear();
    if (node)
        rlog_close(node);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* Small segments, so a few hundred records need new ones; no read cache,
 * so every read after the stop goes to the segment files. */
static void open_node(void)
{
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = 1;
    c.address = address;
    c.data_dir = dir;
    c.peers = &peer;
    c.n_peers = 1;
    c.segment_size = 64u << 10;
    c.batch_max_bytes = 16u << 10;
    c.max_record_size = 4u << 10;
    c.cache_bytes = 0;
    c.election_timeout_ms = 400;
    c.heartbeat_timeout_ms = 50;
    c.on_fatal = on_fatal;
    c.log_fn = log_fn;
    c.sm = open_with_sm;
    char err[256];
    int rv = rlog_open(&c, &node, err, sizeof err);
    ck_assert_msg(rv == 0, "open: %s: %s", rlog_errname(rv), err);
    struct rlog_status st = {0};
    for (int t = 0; t < WAIT_STEPS && st.role != RLOG_ROLE_LEADER; t++) {
        ck_assert_int_eq(rlog_status(node, &st), 0);
        if (st.role != RLOG_ROLE_LEADER)
            usleep(25000);
    }
    ck_assert_msg(st.role == RLOG_ROLE_LEADER, "a one-node cluster elects itself");
}

/* Until the node's commit point reaches `end` (a restarted node shows its
 * old records once its first entry of the new term commits). */
static void wait_commit(uint64_t end)
{
    struct rlog_status st = {0};
    for (int t = 0; t < WAIT_STEPS; t++) {
        ck_assert_int_eq(rlog_status(node, &st), 0);
        if (st.commit_offset >= end)
            return;
        usleep(25000);
    }
    ck_assert_msg(0, "commit_offset %llu did not reach %llu", (unsigned long long)st.commit_offset,
                  (unsigned long long)end);
}

/* Record k: its number, then filler up to RECORD_BYTES. */
static size_t record(uint64_t k, char *buf)
{
    memset(buf, 'a' + (int)(k % 26), RECORD_BYTES);
    int n = snprintf(buf, RECORD_BYTES, "record %llu ", (unsigned long long)k);
    buf[n] = '.';
    return RECORD_BYTES;
}

static void append_ok(uint64_t from, uint64_t to)
{
    for (uint64_t k = from; k < to; k++) {
        char rec[RECORD_BYTES];
        uint64_t off = UINT64_MAX;
        int rv = rlog_append(node, rec, record(k, rec), &off);
        ck_assert_msg(rv == 0, "append %llu: %s: %s", (unsigned long long)k, rlog_errname(rv),
                      rlog_errmsg(node));
        ck_assert_uint_eq(off, k);
    }
}

/* Appends from `from` until one fails (at most `limit` records); returns
 * the offset after the last acknowledged one, and the failure in *err. */
static uint64_t append_until_failure(uint64_t from, uint64_t limit, int *err)
{
    *err = 0;
    for (uint64_t k = from; k < from + limit; k++) {
        char rec[RECORD_BYTES];
        uint64_t off;
        int rv = rlog_append(node, rec, record(k, rec), &off);
        if (rv != 0) {
            *err = rv;
            return k;
        }
        ck_assert_uint_eq(off, k);
    }
    return from + limit;
}

static void check_record(uint64_t k, const void *got, size_t len)
{
    char want[RECORD_BYTES];
    ck_assert_uint_eq(len, record(k, want));
    ck_assert_msg(memcmp(got, want, len) == 0, "record %llu differs", (unsigned long long)k);
}

static void check_reads(uint64_t end)
{
    for (uint64_t k = 0; k < end; k++) {
        void *buf;
        size_t len;
        int rv = rlog_read(node, k, &buf, &len);
        ck_assert_msg(rv == 0, "read %llu: %s: %s", (unsigned long long)k, rlog_errname(rv),
                      rlog_errmsg(node));
        check_record(k, buf, len);
        rlog_free(buf);
    }
}

/* An iterator from 0 yields records [0, end), then says the node failed. */
static void check_iterator(uint64_t end, const char *cause)
{
    rlog_iter *it;
    ck_assert_int_eq(rlog_iter_open(node, 0, UINT64_MAX, &it), 0);
    const void *rec;
    size_t len;
    uint64_t off;
    for (uint64_t k = 0; k < end; k++) {
        int rv = rlog_iter_next(it, &rec, &len, &off);
        ck_assert_msg(rv == 0, "iter %llu: %s: %s", (unsigned long long)k, rlog_errname(rv),
                      rlog_errmsg(node));
        ck_assert_uint_eq(off, k);
        check_record(k, rec, len);
    }
    ck_assert_int_eq(rlog_iter_next(it, &rec, &len, &off), RLOG_EFATAL);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), cause));
    ck_assert_int_eq(rlog_iter_wait(it, 1000), RLOG_EFATAL);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), cause));
    rlog_iter_close(it);
}

struct sub_seen {
    pthread_mutex_t mu;
    uint64_t next;  /* offset expected next */
    int end;        /* the ending status, once */
    bool ended, in_order;
};

static void sub_cb(void *arg, int status, uint64_t offset, const void *rec, size_t len)
{
    struct sub_seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (status != 0) {
        s->ended = true;
        s->end = status;
    } else {
        char want[RECORD_BYTES];
        size_t wl = record(offset, want);
        s->in_order &= offset == s->next && len == wl && memcmp(rec, want, len) == 0;
        s->next = offset + 1;
    }
    pthread_mutex_unlock(&s->mu);
}

/* A subscriber from 0 gets records [0, end) in order, then RLOG_EFATAL. */
static void check_subscriber(uint64_t end)
{
    struct sub_seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .in_order = true};
    rlog_sub *sub;
    ck_assert_int_eq(rlog_subscribe(node, 0, sub_cb, &s, &sub), 0);
    bool ended = false;
    for (int t = 0; t < WAIT_STEPS && !ended; t++) {
        pthread_mutex_lock(&s.mu);
        ended = s.ended;
        pthread_mutex_unlock(&s.mu);
        if (!ended)
            usleep(25000);
    }
    rlog_unsubscribe(sub);
    ck_assert_msg(ended, "the subscription ends after the records committed before the stop");
    ck_assert(s.in_order);
    ck_assert_uint_eq(s.next, end);
    ck_assert_int_eq(s.end, RLOG_EFATAL);
}

static void wait_fatal_call(void)
{
    for (int t = 0; t < WAIT_STEPS && fatal_calls() == 0; t++)
        usleep(25000);
    ck_assert_int_eq(fatal_calls(), 1);
}

/* rlog_metrics after the stop: counters as they stood, role unavailable,
 * and the text says so. */
static void check_metrics(uint64_t acked)
{
    struct rlog_metrics *m = calloc(1, sizeof *m);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(rlog_metrics(node, m), 0);
    ck_assert_int_eq(m->status.role, RLOG_ROLE_UNAVAILABLE);
    ck_assert_int_ne(m->status.fatal, 0);
    ck_assert_uint_ge(m->appended_records, acked);
    ck_assert_uint_ge(m->sync_us.count, 1);
    free(m);
    char *text;
    size_t len;
    ck_assert_int_eq(rlog_metrics_text(node, &text, &len), 0);
    ck_assert_ptr_nonnull(strstr(text, ",role=\"unavailable\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\nrlog_failed_stop{node=\"1\"} 1\n"));
    rlog_free(text);
}

/* Runs a node into the fault `f` and checks everything a failed stop
 * promises; `cause` is the fault's code, `text` part of its message. */
static void fail_stop_and_check(const struct rl_fs_faults *f, int cause, const char *text)
{
    open_node();
    append_ok(0, 10);
    struct rlog_status before;
    ck_assert_int_eq(rlog_status(node, &before), 0);
    rl_fs_faults_set(f);

    int err;
    uint64_t acked = append_until_failure(10, 2000, &err);
    /* The append the fault caught was proposed (in doubt) or refused. */
    ck_assert_msg(err == RLOG_EFATAL || err == RLOG_EINDOUBT,
                  "the fault stops the node (got %s after %llu records)",
                  rlog_errname(err), (unsigned long long)acked);
    ck_assert_msg(strstr(rlog_errmsg(node), text), "errmsg names the cause: %s",
                  rlog_errmsg(node));

    /* The host is told once, on the loop thread, with the cause. */
    wait_fatal_call();
    ck_assert_int_eq(seen.code, cause);
    ck_assert_msg(strstr(seen.msg, text), "on_fatal msg: %s", seen.msg);
    ck_assert(!pthread_equal(seen.thread, pthread_self()));
    pthread_mutex_lock(&seen.mu);
    bool logged = strstr(errors_logged, text) != NULL;
    pthread_mutex_unlock(&seen.mu);
    ck_assert_msg(logged, "the node logs the cause as an error: %s", errors_logged);

    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node, &st), 0);
    ck_assert_int_eq(st.fatal, cause);
    ck_assert_str_eq(st.fatal_msg, seen.msg);
    ck_assert_int_eq(st.role, RLOG_ROLE_UNAVAILABLE);
    ck_assert_uint_eq(st.leader_id, 0);
    ck_assert_uint_eq(st.term, before.term);
    ck_assert_uint_eq(st.first_offset, 0);
    ck_assert_uint_eq(st.commit_offset, acked);
    ck_assert_uint_ge(st.last_offset, acked);
    ck_assert_uint_ge(st.last_index, st.commit_index);
    ck_assert_uint_ge(st.commit_index, before.commit_index);
    check_metrics(acked);

    /* What was committed stays readable, every way; nothing past it. */
    check_reads(acked);
    void *buf;
    size_t len;
    ck_assert_int_eq(rlog_read(node, acked, &buf, &len), RLOG_EFATAL);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), text));
    check_iterator(acked, text);
    check_subscriber(acked);

    /* Writes are refused, saying so and why. */
    char rec[RECORD_BYTES];
    ck_assert_int_eq(rlog_append(node, rec, record(acked, rec), NULL), RLOG_EFATAL);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), "nothing appended"));
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), text));
    ck_assert_int_eq(rlog_trim(node, 1), RLOG_EFATAL);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), text));
    ck_assert_int_eq(fatal_calls(), 1);

    /* Closing answers with the cause, and a restart without the fault
     * has every acknowledged record and takes appends again. */
    ck_assert_int_eq(rlog_close(node), cause);
    node = NULL;
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(NULL), text));
    ck_assert_int_eq(fatal_calls(), 1);
    rl_fs_faults_clear();
    open_node();
    wait_commit(acked);
    check_reads(acked);
    ck_assert_int_eq(rlog_status(node, &st), 0);
    ck_assert_int_eq(st.fatal, 0);
    ck_assert_str_eq(st.fatal_msg, "");
    uint64_t off;
    ck_assert_int_eq(rlog_append(node, rec, record(acked, rec), &off), 0);
    ck_assert_uint_ge(off, acked);
}

/* Disk full: a new segment cannot be made. The store stays intact (not
 * latched fatal), but the node stops: libraft 0.15 would carry on past the
 * failed entry. */
START_TEST(test_disk_full_fails_stop_and_keeps_reads)
{
    struct rl_fs_faults f = {.disk_full = 1};
    fail_stop_and_check(&f, RLOG_ENOSPC, "No space left on device");
}
END_TEST

/* A failed write: the store latches fatal, and still serves what was
 * durable before. */
START_TEST(test_write_error_fails_stop_and_keeps_reads)
{
    struct rl_fs_faults f = {.write_fail_at = 1, .write_errno = EIO};
    fail_stop_and_check(&f, RLOG_EIO, "Input/output error");
}
END_TEST

struct async_seen {
    pthread_mutex_t mu;
    unsigned fired, ok, failed, other;
    uint64_t max_ok_end;
};

static void async_cb(void *arg, int status, uint64_t first_offset)
{
    struct async_seen *a = arg;
    pthread_mutex_lock(&a->mu);
    a->fired++;
    if (status == 0) {
        a->ok++;
        if (first_offset + 1 > a->max_ok_end)
            a->max_ok_end = first_offset + 1;
    } else if (status == RLOG_EFATAL || status == RLOG_EINDOUBT) {
        a->failed++; /* refused before proposal, or proposed and in doubt */
    } else {
        a->other++;
    }
    pthread_mutex_unlock(&a->mu);
}

/* Appends in flight when the node stops all get their callback, once: the
 * acknowledged ones are below the commit point the stop left, the rest
 * fail with RLOG_EFATAL (not proposed yet) or RLOG_EINDOUBT (proposed);
 * none hangs until close. */
START_TEST(test_appends_in_flight_are_answered_at_the_stop)
{
    open_node();
    append_ok(0, 5);
    struct rl_fs_faults f = {.disk_full = 1};
    rl_fs_faults_set(&f);
    enum { N_ASYNC = 600 };
    struct async_seen a = {.mu = PTHREAD_MUTEX_INITIALIZER};
    unsigned submitted = 0;
    for (unsigned i = 0; i < N_ASYNC; i++) {
        char rec[RECORD_BYTES];
        struct rlog_buf b = {rec, record(5 + i, rec)};
        int rv = rlog_append_async(node, &b, 1, async_cb, &a);
        if (rv != 0) {
            ck_assert_int_eq(rv, RLOG_EFATAL); /* refused up front: no callback */
            break;
        }
        submitted++;
    }
    wait_fatal_call();
    unsigned fired = 0;
    for (int t = 0; t < WAIT_STEPS && fired < submitted; t++) {
        pthread_mutex_lock(&a.mu);
        fired = a.fired;
        pthread_mutex_unlock(&a.mu);
        if (fired < submitted)
            usleep(25000);
    }
    ck_assert_uint_eq(fired, submitted);
    ck_assert_uint_eq(a.other, 0);
    ck_assert_uint_gt(a.failed, 0);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node, &st), 0);
    ck_assert_uint_le(a.max_ok_end, st.commit_offset);
    usleep(100000);
    ck_assert_uint_eq(a.fired, submitted); /* and no callback twice */
    ck_assert_int_eq(rlog_close(node), RLOG_ENOSPC);
    node = NULL;
}
END_TEST

/* A state machine on a node that failed stop applies what was committed
 * before the stop, and a wait for more ends at once with the cause: the
 * stop will never commit it (not the caller's deadline, 20 s here). */
START_TEST(test_sm_wait_past_the_stop_ends_with_the_cause)
{
    open_with_sm = &counter_sm;
    open_node();
    append_ok(0, 10);
    struct rl_fs_faults f = {.disk_full = 1};
    rl_fs_faults_set(&f);
    int err;
    uint64_t acked = append_until_failure(10, 2000, &err);
    ck_assert_msg(err == RLOG_EFATAL || err == RLOG_EINDOUBT, "got %s", rlog_errname(err));
    wait_fatal_call();
    int rv = rlog_sm_wait(node, acked, 5000);
    ck_assert_msg(rv == 0, "records committed before the stop are applied: %s: %s",
                  rlog_errname(rv), rlog_errmsg(node));
    ck_assert_uint_ge(atomic_load(&sm_applied), acked);
    rv = rlog_sm_wait(node, acked + 1000, 20000);
    ck_assert_msg(rv == RLOG_EFATAL, "a wait past the stop: %s: %s", rlog_errname(rv),
                  rlog_errmsg(node));
    ck_assert_msg(strstr(rlog_errmsg(node), "No space left on device"), "errmsg: %s",
                  rlog_errmsg(node));
    ck_assert_int_eq(rlog_close(node), RLOG_ENOSPC);
    node = NULL;
}
END_TEST

static void count_cb(void *arg, int status, uint64_t first_offset)
{
    (void)status;
    (void)first_offset;
    struct async_seen *a = arg;
    pthread_mutex_lock(&a->mu);
    a->fired++;
    pthread_mutex_unlock(&a->mu);
}

/* Closing under load is no failed stop: every append is answered, no
 * on_fatal, rlog_close returns 0. (Appends still queued in the store when
 * it closes are cancelled, and the backend reports that like a failed
 * write; the node ignores it. This load seldom leaves any queued, so this
 * guards the ordinary close more than that path.) */
START_TEST(test_close_under_load_is_not_a_failed_stop)
{
    for (int round = 0; round < 5; round++) {
        open_node();
        struct async_seen a = {.mu = PTHREAD_MUTEX_INITIALIZER};
        unsigned submitted = 0;
        for (unsigned i = 0; i < 300; i++) {
            char rec[RECORD_BYTES];
            struct rlog_buf b = {rec, record(i, rec)};
            if (rlog_append_async(node, &b, 1, count_cb, &a) == 0)
                submitted++;
        }
        int rv = rlog_close(node);
        node = NULL;
        ck_assert_msg(rv == 0, "round %d: close: %s: %s", round, rlog_errname(rv), rlog_errmsg(NULL));
        ck_assert_int_eq(fatal_calls(), 0);
        ck_assert_uint_eq(a.fired, submitted); /* each answered, before close returned */
    }
}
END_TEST

static Suite *failstop_suite(void)
{
    Suite *s = suite_create("failstop");
    TCase *tc = tcase_create("failstop");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_disk_full_fails_stop_and_keeps_reads);
    tcase_add_test(tc, test_write_error_fails_stop_and_keeps_reads);
    tcase_add_test(tc, test_appends_in_flight_are_answered_at_the_stop);
    tcase_add_test(tc, test_close_under_load_is_not_a_failed_stop);
    tcase_add_test(tc, test_sm_wait_past_the_stop_ends_with_the_cause);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(failstop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
