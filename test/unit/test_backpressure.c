/*
 * Backpressure (issue 12, item 5): a handle holds at most
 * max_appends_in_flight appends and max_append_bytes_in_flight bytes of them
 * between accepting and answering. rlog_append_async refuses beyond that with
 * RLOG_EAGAIN (nothing appended); the blocking forms wait for room. The
 * property checked is the bound itself - at every accepted call, the number
 * (and bytes) accepted and not yet answered never exceed it - and that every
 * accepted append is answered and in the log. Nothing here depends on how
 * fast the node commits. A one-node log on loopback.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "liblog.h"
#include "lib/ports.h"

#define WAIT_STEPS 400 /* x 25 ms */

static char dir[64], address[64];
static struct rlog_peer peer;
static rlog *node;

/* What the callbacks saw, under mu. */
static struct {
    pthread_mutex_t mu;
    unsigned long accepted, answered, ok;
    uint64_t bytes_out;       /* bytes accepted and not yet answered */
    unsigned long max_out;    /* most appends outstanding at an accept */
    uint64_t max_bytes_out;   /* most bytes outstanding at an accept */
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rlog-bp-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(address, sizeof address, "127.0.0.1:%d", th_free_port(23000));
    peer = (struct rlog_peer){1, address};
    node = NULL;
    pthread_mutex_lock(&S.mu);
    S.accepted = S.answered = S.ok = S.max_out = 0;
    S.bytes_out = S.max_bytes_out = 0;
    pthread_mutex_unlock(&S.mu);
}

static void teardown(void)
{
    if (node)
        rlog_close(node);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static void open_node(unsigned max_n, uint64_t max_bytes)
{
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = 1;
    c.address = address;
    c.data_dir = dir;
    c.peers = &peer;
    c.n_peers = 1;
    c.election_timeout_ms = 300;
    c.heartbeat_timeout_ms = 50;
    c.max_appends_in_flight = max_n;
    c.max_append_bytes_in_flight = max_bytes;
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

struct call {
    size_t len;
};

static void on_done(void *arg, int status, uint64_t first_offset)
{
    struct call *c = arg;
    (void)first_offset;
    pthread_mutex_lock(&S.mu);
    S.answered++;
    S.bytes_out -= c->len;
    if (status == 0)
        S.ok++;
    pthread_mutex_unlock(&S.mu);
    free(c);
}

/* Submits `calls` async appends of `len` bytes as fast as it can, noting
 * the outstanding count and bytes just after each accepted call; returns
 * how many were refused with RLOG_EAGAIN (any other error fails). */
static unsigned long flood(unsigned calls, size_t len)
{
    char *rec = calloc(1, len);
    unsigned long refused = 0;
    for (unsigned i = 0; i < calls; i++) {
        struct call *c = malloc(sizeof *c);
        c->len = len;
        struct rlog_buf b = {rec, len};
        /* Counted before the call: the callback may fire before it returns. */
        pthread_mutex_lock(&S.mu);
        S.bytes_out += len;
        pthread_mutex_unlock(&S.mu);
        int rv = rlog_append_async(node, &b, 1, on_done, c);
        pthread_mutex_lock(&S.mu);
        if (rv == 0) {
            S.accepted++;
            unsigned long out = S.accepted - S.answered;
            if (out > S.max_out)
                S.max_out = out;
            if (S.bytes_out > S.max_bytes_out)
                S.max_bytes_out = S.bytes_out;
        } else {
            S.bytes_out -= len;
        }
        pthread_mutex_unlock(&S.mu);
        if (rv != 0) {
            ck_assert_msg(rv == RLOG_EAGAIN, "append %u: %s: %s", i, rlog_errname(rv),
                          rlog_errmsg(node));
            ck_assert_ptr_nonnull(strstr(rlog_errmsg(node), "in flight"));
            refused++;
            free(c);
        }
    }
    free(rec);
    return refused;
}

static void wait_answered(void)
{
    for (int t = 0; t < WAIT_STEPS; t++) {
        pthread_mutex_lock(&S.mu);
        bool done = S.answered == S.accepted;
        pthread_mutex_unlock(&S.mu);
        if (done)
            return;
        usleep(25000);
    }
    ck_assert_msg(0, "accepted appends were not all answered");
}

START_TEST(test_async_count_bound)
{
    open_node(3, 0);
    unsigned long refused = flood(300, 64);
    wait_answered();
    ck_assert_msg(S.max_out <= 3, "%lu appends outstanding, max_appends_in_flight 3", S.max_out);
    ck_assert_uint_eq(S.ok, S.accepted);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node, &st), 0);
    ck_assert_uint_eq(st.commit_offset, S.accepted); /* refused ones appended nothing */
    fprintf(stderr, "test_async_count_bound: %lu accepted, %lu refused with RLOG_EAGAIN\n",
            S.accepted, refused);
    /* Room again once answered. */
    uint64_t off;
    ck_assert_int_eq(rlog_append(node, "x", 1, &off), 0);
    ck_assert_uint_eq(off, S.accepted);
}
END_TEST

START_TEST(test_async_byte_bound)
{
    open_node(0, 4096); /* 0: the default count bound */
    unsigned long refused = flood(200, 1000);
    wait_answered();
    ck_assert_msg(S.max_bytes_out <= 4096, "%llu bytes outstanding, max_append_bytes_in_flight 4096",
                  (unsigned long long)S.max_bytes_out);
    ck_assert_uint_eq(S.ok, S.accepted);
    fprintf(stderr, "test_async_byte_bound: %lu accepted, %lu refused\n", S.accepted, refused);
    /* One call larger than the bound alone is still taken. */
    char *big = calloc(1, 8000);
    ck_assert_int_eq(rlog_append(node, big, 8000, NULL), 0);
    free(big);
}
END_TEST

static void *blocking_appender(void *arg)
{
    long rv = 0;
    (void)arg;
    for (int i = 0; i < 20 && rv == 0; i++)
        rv = rlog_append(node, "b", 1, NULL);
    return (void *)rv;
}

/* The blocking forms wait for room instead of refusing. */
START_TEST(test_blocking_forms_wait)
{
    open_node(1, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, blocking_appender, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        ck_assert_msg((long)rv == 0, "a blocking append failed: %s", rlog_errname((int)(long)rv));
    }
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node, &st), 0);
    ck_assert_uint_eq(st.commit_offset, 80);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("backpressure");
    TCase *tc = tcase_create("bounds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_async_count_bound);
    tcase_add_test(tc, test_async_byte_bound);
    tcase_add_test(tc, test_blocking_forms_wait);
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
