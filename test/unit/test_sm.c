/* Host state machines on a 3-node cluster in one process (127.0.0.1): apply
 * results on the leader and through a follower's forwarding, rlog_sm_wait,
 * snapshots and restarts (restored, then each record applied once), a
 * damaged newest snapshot (the older one), a node that needs records
 * before a trim with no snapshot (reported, then an install), bad
 * configurations and calls. */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/ports.h"
#include "lib/store_helpers.h"
#include "liblog.h"
#include "sm/sm.h"

#define N 3

/* The state: a running total of the records' values, how many were
 * applied, a checksum of (offset, bytes), and the next offset expected
 * (a skip or a repeat counts as a violation). */
struct state {
    int64_t total;
    uint64_t count, sum, next;
    unsigned violations;
    bool refuse_restore;
    unsigned restores;
};

struct node_sm {
    pthread_mutex_t mu;
    struct state s;
    bool probe;              /* apply tries blocking calls (must be refused) */
    int probe_wait, probe_snap, probe_close;
};

static struct node_sm S[N];
static char top[4096], dirs[N][4200], addrs[N][32];
static struct rlog_peer peers[N];
static uint64_t every;
static uint64_t retention_bytes; /* 0: no policy */

static rlog *node[N];

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

/* A record "add K" (K may be negative); apply returns the new total, or
 * -1 (refusing the command: state unchanged) when it would go below 0. */
static int64_t sm_apply(void *arg, uint64_t offset, const void *rec, size_t len)
{
    struct node_sm *n = arg;
    if (n->probe) {
        rlog *log = node[n - S];
        n->probe_wait = rlog_sm_wait(log, offset, 0);
        n->probe_snap = rlog_sm_snapshot(log, NULL);
        n->probe_close = rlog_close(log);
        n->probe = false;
    }
    pthread_mutex_lock(&n->mu);
    if (offset != n->s.next)
        n->s.violations++;
    n->s.next = offset + 1;
    n->s.count++;
    n->s.sum = mix(n->s.sum, offset);
    for (size_t i = 0; i < len; i++)
        n->s.sum = mix(n->s.sum, ((const unsigned char *)rec)[i]);
    char buf[32] = "";
    memcpy(buf, rec, len < sizeof buf - 1 ? len : sizeof buf - 1);
    long long k = 0;
    int64_t r = -1;
    if (sscanf(buf, "add %lld", &k) == 1 && n->s.total + k >= 0)
        r = n->s.total += k;
    pthread_mutex_unlock(&n->mu);
    return r;
}

static void *sm_snapshot(void *arg, uint64_t next_offset)
{
    struct node_sm *n = arg;
    struct state *copy = malloc(sizeof *copy);
    pthread_mutex_lock(&n->mu);
    *copy = n->s;
    pthread_mutex_unlock(&n->mu);
    ck_assert_uint_eq(copy->next, next_offset);
    return copy;
}

static int sm_persist(void *arg, void *snap, rlog_sm_writer *w)
{
    (void)arg;
    const struct state *s = snap;
    unsigned char buf[40];
    memcpy(buf, &s->total, 8);
    memcpy(buf + 8, &s->count, 8);
    memcpy(buf + 16, &s->sum, 8);
    memcpy(buf + 24, &s->next, 8);
    memset(buf + 32, 0xab, 8);
    return rlog_sm_write(w, buf, sizeof buf);
}

static void sm_release(void *arg, void *snap)
{
    (void)arg;
    free(snap);
}

static int sm_restore(void *arg, uint64_t next_offset, rlog_sm_reader *r)
{
    struct node_sm *n = arg;
    unsigned char buf[64];
    size_t got = 0, g;
    do {
        ck_assert_int_eq(rlog_sm_read(r, buf + got, sizeof buf - got, &g), 0);
        got += g;
    } while (g > 0 && got < sizeof buf);
    pthread_mutex_lock(&n->mu);
    int rv = 0;
    if (n->s.refuse_restore && next_offset > 0) {
        rv = -1;
    } else if (got == 0 && next_offset == 0) {
        n->s = (struct state){.refuse_restore = n->s.refuse_restore, .restores = n->s.restores};
    } else if (got != 40) {
        rv = -1;
    } else {
        memcpy(&n->s.total, buf, 8);
        memcpy(&n->s.count, buf + 8, 8);
        memcpy(&n->s.sum, buf + 16, 8);
        memcpy(&n->s.next, buf + 24, 8);
        if (n->s.next != next_offset)
            n->s.violations++;
    }
    n->s.restores++;
    pthread_mutex_unlock(&n->mu);
    return rv;
}

static const struct rlog_sm SM = {.apply = sm_apply, .snapshot = sm_snapshot,
                                   .persist = sm_persist, .release = sm_release,
                                   .restore = sm_restore};

static void cfg_for(int i, struct rlog_config *c, struct rlog_sm *sm)
{
    rlog_config_init(c);
    c->id = (uint64_t)i + 1;
    c->address = addrs[i];
    c->data_dir = dirs[i];
    c->peers = peers;
    c->n_peers = N;
    c->election_timeout_ms = 400;
    c->heartbeat_timeout_ms = 50;
    c->segment_size = 1u << 20;
    c->batch_max_bytes = 256u << 10;
    c->max_record_size = 64u << 10;
    c->forward_appends = 1;
    *sm = SM;
    sm->arg = &S[i];
    c->sm = sm;
    c->sm_snapshot_every = every;
    c->sm_snapshots_keep = 2;
    c->retention_bytes = retention_bytes;
    c->retention_check_ms = 50;
}

static struct rlog_sm sms[N];

static void node_open(int i)
{
    struct rlog_config c;
    cfg_for(i, &c, &sms[i]);
    char err[256];
    int rv = rlog_open(&c, &node[i], err, sizeof err);
    ck_assert_msg(rv == 0, "open node %d: %s: %s", i + 1, rlog_errname(rv), err);
}

/* A fresh process state for node i (what a restart starts with). */
static void state_reset(int i)
{
    pthread_mutex_lock(&S[i].mu);
    S[i].s = (struct state){0};
    pthread_mutex_unlock(&S[i].mu);
}

static void node_close(int i)
{
    ck_assert_int_eq(rlog_close(node[i]), 0);
    node[i] = NULL;
}

static void setup(void)
{
    th_mkdtemp(top, sizeof top);
    int port = th_free_port(31000);
    for (int i = 0; i < N; i++) {
        port = th_free_port(port + 1);
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", port);
        snprintf(dirs[i], sizeof dirs[i], "%s/n%d", top, i + 1);
        peers[i] = (struct rlog_peer){(uint64_t)i + 1, addrs[i]};
        pthread_mutex_init(&S[i].mu, NULL);
        S[i].s = (struct state){0};
        node[i] = NULL;
    }
    every = 0;
}

static void teardown(void)
{
    for (int i = 0; i < N; i++)
        if (node[i])
            rlog_close(node[i]);
    th_rmrf(top);
}

static void open_all(void)
{
    for (int i = 0; i < N; i++)
        node_open(i);
}

static int wait_leader(void)
{
    for (int t = 0; t < 400; t++) {
        for (int i = 0; i < N; i++) {
            struct rlog_status st;
            if (node[i] && rlog_status(node[i], &st) == 0 && st.role == RLOG_ROLE_LEADER)
                return i;
        }
        usleep(25000);
    }
    ck_abort_msg("no leader");
    return -1;
}

/* Opens the cluster with sm_snapshot_every ev, fills vals with v; the
 * leader. */
static int start_cluster(uint64_t ev, long long *vals, unsigned n, long long v)
{
    every = ev;
    open_all();
    for (unsigned k = 0; k < n; k++)
        vals[k] = v;
    return wait_leader();
}

/* Appends "add k" for each k of vals on node i with rlog_apply; checks
 * each result against the model total. */
static void apply_on(int i, int64_t *model, const long long *vals, unsigned n)
{
    for (unsigned j = 0; j < n; j++) {
        char rec[32];
        int len = snprintf(rec, sizeof rec, "add %lld", vals[j]);
        uint64_t off = 0;
        int64_t res = 0;
        int rv;
        /* Not appended (a leader being elected): again, as a client would. */
        for (int t = 0; (rv = rlog_apply(node[i], rec, (size_t)len, &off, &res)) == RLOG_ENOTLEADER &&
                        t < 100; t++)
            usleep(50000);
        ck_assert_msg(rv == 0, "apply on node %d: %s: %s", i + 1, rlog_errname(rv),
                      rlog_errmsg(node[i]));
        int64_t want = *model + vals[j] >= 0 ? (*model += vals[j]) : -1;
        ck_assert_int_eq(res, want);
    }
}

/* Every open node has applied all of [0, end) and holds the same state. */
static void check_same_state(uint64_t end)
{
    struct state ref = {0};
    bool have = false;
    for (int i = 0; i < N; i++) {
        if (!node[i])
            continue;
        int rv = rlog_sm_wait(node[i], end, 20000);
        ck_assert_msg(rv == 0, "node %d sm_wait(%" PRIu64 "): %s: %s", i + 1, end,
                      rlog_errname(rv), rlog_errmsg(node[i]));
        pthread_mutex_lock(&S[i].mu);
        struct state s = S[i].s;
        pthread_mutex_unlock(&S[i].mu);
        ck_assert_msg(s.violations == 0, "node %d: %u offsets out of order", i + 1, s.violations);
        ck_assert_uint_ge(s.next, end);
        if (s.next != end)
            continue;
        if (!have) {
            ref = s;
            have = true;
        }
        ck_assert_int_eq(s.total, ref.total);
        ck_assert_uint_eq(s.sum, ref.sum);
        ck_assert_uint_eq(s.count, ref.count);
    }
    ck_assert(have);
}

static uint64_t log_end(int i)
{
    uint64_t b = 0;
    ck_assert_int_eq(rlog_barrier(node[i], &b), 0);
    return b;
}

START_TEST(test_results_on_leader_and_follower)
{
    open_all();
    int l = wait_leader(), f = (l + 1) % N;
    int64_t model = 0;
    static const long long a[] = {5, 7, -20, -12, 3, 100};
    apply_on(l, &model, a, 6);
    apply_on(f, &model, a, 6); /* forwarded: the result is this node's apply */
    uint64_t end = log_end(f);
    ck_assert_uint_eq(end, 12);
    check_same_state(end);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node[f], &st), 0);
    ck_assert_uint_eq(st.applied_offset, 12);
    ck_assert_int_eq(st.sm_needs_snapshot, 0);
}
END_TEST

struct async_out {
    pthread_mutex_t mu;
    int done, status;
    uint64_t first;
    int64_t results[4];
    unsigned n;
};

static void async_cb(void *arg, int status, uint64_t first, const int64_t *results, unsigned n)
{
    struct async_out *o = arg;
    pthread_mutex_lock(&o->mu);
    o->status = status;
    o->first = first;
    o->n = n;
    for (unsigned i = 0; i < n && i < 4; i++)
        o->results[i] = results[i];
    o->done++;
    pthread_mutex_unlock(&o->mu);
}

START_TEST(test_async_batch_results)
{
    open_all();
    int l = wait_leader();
    struct rlog_buf b[3] = {{"add 4", 5}, {"add -9", 6}, {"add 2", 5}};
    struct async_out o = {.mu = PTHREAD_MUTEX_INITIALIZER};
    ck_assert_int_eq(rlog_apply_async(node[l], NULL, b, 3, async_cb, &o), 0);
    for (int t = 0; t < 400; t++) {
        pthread_mutex_lock(&o.mu);
        int d = o.done;
        pthread_mutex_unlock(&o.mu);
        if (d)
            break;
        usleep(25000);
    }
    ck_assert_int_eq(o.done, 1);
    ck_assert_int_eq(o.status, 0);
    ck_assert_uint_eq(o.first, 0);
    ck_assert_uint_eq(o.n, 3);
    ck_assert_int_eq(o.results[0], 4);
    ck_assert_int_eq(o.results[1], -1);
    ck_assert_int_eq(o.results[2], 6);
    /* Applied before the caller asked for the state: rlog_sm_wait. */
    ck_assert_int_eq(rlog_sm_wait(node[l], 3, 5000), 0);
}
END_TEST

START_TEST(test_restart_restores_then_applies_once)
{
    long long vals[150];
    int l = start_cluster(40, vals, 150, 0);
    for (int k = 0; k < 150; k++)
        vals[k] = k % 5;
    int64_t model = 0;
    apply_on(l, &model, vals, 150);
    int r = (l + 1) % N;
    check_same_state(150);
    uint64_t next = 0;
    ck_assert_int_eq(rlog_sm_snapshot(node[r], &next), 0);
    ck_assert_uint_eq(next, 150);
    apply_on(l, &model, vals, 30);
    ck_assert_int_eq(rlog_sm_wait(node[r], 180, 20000), 0);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node[r], &st), 0);
    ck_assert_uint_ge(st.snapshots_taken, 4); /* 40, 80, 120 (every 40), 150, maybe 160 */
    ck_assert_uint_ge(st.snapshot_offset, 150);
    node_close(r);
    state_reset(r);
    apply_on(l, &model, vals, 20);
    node_open(r);
    check_same_state(200);
    ck_assert_int_eq(rlog_status(node[r], &st), 0);
    ck_assert_uint_ge(st.snapshot_offset, 150);
    pthread_mutex_lock(&S[r].mu);
    /* Restored at the snapshot, then only the records after it. */
    ck_assert_uint_eq(S[r].s.restores, 1);
    ck_assert_uint_eq(S[r].s.count, 200);
    pthread_mutex_unlock(&S[r].mu);
    /* Closed first: a listing deletes .tmp files, such as one being
     * written by a snapshot under way. */
    node_close(r);
    char path[4300];
    snprintf(path, sizeof path, "%s/sm", dirs[r]);
    char err[256];
    uint64_t *offs;
    size_t n;
    ck_assert_int_eq(rl_smf_list(path, &offs, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2); /* sm_snapshots_keep */
    free(offs);
}
END_TEST

/* The newest snapshot damaged: the older one is restored, the failure
 * counted; every snapshot refused: the empty state from 0. */
START_TEST(test_damaged_newest_falls_back)
{
    long long vals[60];
    int l = start_cluster(UINT64_MAX, vals, 60, 1);
    int64_t model = 0;
    int r = (l + 2) % N;
    apply_on(l, &model, vals, 30);
    check_same_state(30);
    ck_assert_int_eq(rlog_sm_snapshot(node[r], NULL), 0);
    apply_on(l, &model, vals, 30);
    check_same_state(60);
    uint64_t next;
    ck_assert_int_eq(rlog_sm_snapshot(node[r], &next), 0);
    ck_assert_uint_eq(next, 60);
    node_close(r);
    char smdir[4300], path[4400];
    snprintf(smdir, sizeof smdir, "%s/sm", dirs[r]);
    rl_smf_path(path, sizeof path, smdir, 60, false);
    size_t len;
    unsigned char *b = th_read_file(path, &len);
    b[70] ^= 1; /* in the payload */
    th_write_file(path, b, len);
    free(b);
    state_reset(r);
    node_open(r);
    check_same_state(60);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node[r], &st), 0);
    ck_assert_uint_eq(st.snapshot_offset, 30);
    ck_assert_uint_eq(st.snapshot_failures, 1);
    ck_assert_uint_eq(S[r].s.count, 60);
    /* Every snapshot refused by the host: the empty state, all records. */
    node_close(r);
    state_reset(r);
    S[r].s.refuse_restore = true;
    node_open(r);
    check_same_state(60);
    ck_assert_int_eq(rlog_status(node[r], &st), 0);
    ck_assert_uint_eq(st.snapshot_failures, 2);
    ck_assert_uint_eq(S[r].s.count, 60);
}
END_TEST

/* A node whose snapshots are gone while the log was trimmed past them
 * fetches the leader's snapshot over the transport, restores it and goes
 * on after it (install.c); nothing before the snapshot is applied again. */
START_TEST(test_trimmed_without_snapshot_installed_from_peer)
{
    long long vals[50];
    int l = start_cluster(UINT64_MAX, vals, 50, 2);
    int64_t model = 0;
    apply_on(l, &model, vals, 50);
    check_same_state(50);
    ck_assert_int_eq(rlog_sm_snapshot(node[l], NULL), 0);
    ck_assert_int_eq(rlog_trim(node[l], 40), 0);
    int r = (l + 1) % N;
    node_close(r);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/sm'", dirs[r]);
    ck_assert_int_eq(system(cmd), 0);
    state_reset(r);
    node_open(r);
    int rv = rlog_sm_wait(node[r], 50, 20000);
    ck_assert_msg(rv == 0, "%s: %s", rlog_errname(rv), rlog_errmsg(node[r]));
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node[r], &st), 0);
    ck_assert_int_eq(st.sm_needs_snapshot, 0);
    ck_assert_uint_eq(st.snapshots_installed, 1);
    ck_assert_uint_ge(st.snapshot_offset, 50);
    ck_assert_uint_eq(S[r].s.restores, 1);
    ck_assert_uint_eq(S[r].s.count, 50);
    apply_on(l, &model, vals, 5);
    check_same_state(55);
    ck_assert_uint_eq(S[r].s.count, 55);
    ck_assert_uint_eq(S[r].s.violations, 0);
    /* A file that does not cover what it claims is refused, nothing moved. */
    char src[4400], tmp[4400], err[512];
    snprintf(cmd, sizeof cmd, "%s/sm", dirs[l]);
    rl_smf_path(src, sizeof src, cmd, 50, false);
    snprintf(tmp, sizeof tmp, "%s/fetched.sm", top);
    size_t len;
    unsigned char *b = th_read_file(src, &len);
    th_write_file(tmp, b, len);
    b[len / 2] ^= 1;
    snprintf(cmd, sizeof cmd, "%s/flipped.sm", top);
    th_write_file(cmd, b, len);
    free(b);
    rv = rl_sm_install(node[r], tmp, 49, err, sizeof err);
    ck_assert_msg(rv == RLOG_ECORRUPT && strstr(err, "before 50"), "%d %s", rv, err);
    rv = rl_sm_install(node[r], cmd, 0, err, sizeof err);
    ck_assert_msg(rv == RLOG_ECORRUPT, "%d %s", rv, err);
    ck_assert_int_eq(rlog_status(node[r], &st), 0);
    ck_assert_uint_eq(st.snapshots_installed, 1);
}
END_TEST

/* Retention with a state machine trims only behind what a majority of
 * the voters' newest snapshots cover: the leader's snapshot alone lets
 * nothing go; once a follower has one too, the log is trimmed up to the
 * lower of the two, never past it. */
static uint64_t first_offset_of(int i)
{
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(node[i], &st), 0);
    return st.first_offset;
}

START_TEST(test_retention_behind_a_majority_of_snapshots)
{
    retention_bytes = 1; /* as little as it may keep: the newest record */
    long long vals[60];
    int l = start_cluster(UINT64_MAX, vals, 60, 1);
    int64_t model = 0;
    apply_on(l, &model, vals, 50);
    check_same_state(50);
    uint64_t at = 0;
    ck_assert_int_eq(rlog_sm_snapshot(node[l], &at), 0);
    ck_assert_uint_eq(at, 50);
    usleep(1500 * 1000); /* reports every second, retention every 50 ms */
    ck_assert_uint_eq(first_offset_of(l), 0);
    int f = (l + 1) % N;
    ck_assert_int_eq(rlog_sm_snapshot(node[f], &at), 0);
    ck_assert_uint_eq(at, 50);
    uint64_t first = 0;
    for (int t = 0; t < 100 && (first = first_offset_of(l)) == 0; t++)
        usleep(50 * 1000);
    ck_assert_msg(first == 49, "first offset %llu, want 49 (the newest record stays)",
                  (unsigned long long)first);
    /* The leader moves on alone: the floor stays at the follower's 50. */
    apply_on(l, &model, vals + 50, 10);
    ck_assert_int_eq(rlog_sm_snapshot(node[l], &at), 0);
    ck_assert_uint_eq(at, 60);
    usleep(1500 * 1000);
    first = first_offset_of(l);
    ck_assert_msg(first == 50, "first offset %llu, want 50", (unsigned long long)first);
    retention_bytes = 0;
}
END_TEST

START_TEST(test_bad_config_and_calls)
{
    struct rlog_config c;
    struct rlog_sm bad = SM;
    cfg_for(0, &c, &bad);
    bad.apply = NULL;
    char err[256];
    rlog *x;
    ck_assert_int_eq(rlog_open(&c, &x, err, sizeof err), RLOG_EINVAL);
    ck_assert_msg(strstr(err, "sm.apply") != NULL, "%s", err);
    bad = SM;
    bad.persist = NULL;
    ck_assert_int_eq(rlog_open(&c, &x, err, sizeof err), RLOG_EINVAL);
    ck_assert_msg(strstr(err, "sm.persist") != NULL, "%s", err);
    /* No state machine: every call says so. */
    c.sm = NULL;
    ck_assert_int_eq(rlog_open(&c, &node[0], err, sizeof err), 0);
    ck_assert_int_eq(rlog_sm_wait(node[0], 0, 0), RLOG_EINVAL);
    ck_assert_msg(strstr(rlog_errmsg(node[0]), "no state machine") != NULL, "%s", rlog_errmsg(node[0]));
    ck_assert_int_eq(rlog_sm_snapshot(node[0], NULL), RLOG_EINVAL);
    ck_assert_int_eq(rlog_apply(node[0], "x", 1, NULL, NULL), RLOG_EINVAL);
    node_close(0);
    /* A wait past the end times out; after close, calls fail cleanly. */
    open_all();
    wait_leader();
    ck_assert_int_eq(rlog_sm_wait(node[1], 1000, 0), RLOG_ETIMEOUT);
    ck_assert_int_eq(rlog_sm_wait(node[1], 1000, 30), RLOG_ETIMEOUT);
    ck_assert_int_eq(rlog_sm_wait(node[1], 0, 0), 0);
    /* On the apply thread, the blocking calls would wait for themselves. */
    S[1].probe = true;
    int l = wait_leader();
    int64_t model = 0;
    static const long long one[] = {1};
    apply_on(l, &model, one, 1);
    ck_assert_int_eq(rlog_sm_wait(node[1], 1, 20000), 0);
    ck_assert_int_eq(S[1].probe_wait, RLOG_EINVAL);
    ck_assert_int_eq(S[1].probe_snap, RLOG_EINVAL);
    ck_assert_int_eq(S[1].probe_close, RLOG_EINVAL);
}
END_TEST

static Suite *sm_suite(void)
{
    Suite *s = suite_create("sm");
    TCase *tc = tcase_create("sm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_results_on_leader_and_follower);
    tcase_add_test(tc, test_async_batch_results);
    tcase_add_test(tc, test_restart_restores_then_applies_once);
    tcase_add_test(tc, test_damaged_newest_falls_back);
    tcase_add_test(tc, test_trimmed_without_snapshot_installed_from_peer);
    tcase_add_test(tc, test_retention_behind_a_majority_of_snapshots);
    tcase_add_test(tc, test_bad_config_and_calls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    th_tmp_begin();
    SRunner *sr = srunner_create(sm_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
