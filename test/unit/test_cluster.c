/* Three liblog nodes in one process on 127.0.0.1: replication, not-leader
 * errors, graceful handoff, restart, concurrency, configuration errors. */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lib/ports.h"
#include "liblog.h"

#define N 3

/* N nodes, plus room for one more that joins later. */
struct cluster {
    char dir[256];
    char addrs[N + 1][32], dirs[N + 1][300];
    struct rlog_peer peers[N + 1];
    rlog *node[N + 1];
};

static struct cluster C;
static int forward_off; /* forward_appends 0: a follower refuses appends */
static int no_cache;    /* cache_bytes 0: every read goes to the segment files */

static void cfg_for(int i, struct rlog_config *c)
{
    rlog_config_init(c);
    c->id = (uint64_t)i + 1;
    c->address = C.addrs[i];
    c->data_dir = C.dirs[i];
    c->peers = C.peers;
    c->n_peers = N;
    c->election_timeout_ms = 400;
    c->heartbeat_timeout_ms = 50;
    c->segment_size = 1u << 20;
    c->batch_max_bytes = 256u << 10;
    c->max_record_size = 64u << 10;
    c->forward_appends = !forward_off;
    if (no_cache)
        c->cache_bytes = 0;
}

/* Tests that shrink libraft's window set these before opening nodes. */
static unsigned window_threshold, window_trailing;
static int fetched_lines;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_fetches(void *arg, int level, const char *line)
{
    (void)arg;
    if (getenv("RLOG_TEST_VERBOSE") || level >= 3)
        fprintf(stderr, "%s\n", line);
    if (strstr(line, "catch-up: fetched entries")) {
        pthread_mutex_lock(&log_mu);
        fetched_lines++;
        pthread_mutex_unlock(&log_mu);
    }
}

static void node_open(int i)
{
    struct rlog_config c;
    cfg_for(i, &c);
    if (window_threshold) {
        c.snapshot_threshold = window_threshold;
        c.snapshot_trailing = window_trailing;
        c.log_fn = count_fetches;
    }
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
    snprintf(C.dir, sizeof C.dir, "/tmp/rlog-cluster-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(C.dir));
    /* fork mode gives each test its own pid, hence its own ports */
    int base = th_free_ports(20000, N + 1);
    char top[256];
    memcpy(top, C.dir, sizeof top);
    for (int i = 0; i <= N; i++) {
        snprintf(C.addrs[i], sizeof C.addrs[i], "127.0.0.1:%d", base + i);
        snprintf(C.dirs[i], sizeof C.dirs[i], "%s/n%d", top, i + 1);
        C.peers[i] = (struct rlog_peer){(uint64_t)i + 1, C.addrs[i]};
        C.node[i] = NULL;
    }
}

static void teardown(void)
{
    for (int i = 0; i <= N; i++)
        if (C.node[i])
            rlog_close(C.node[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", C.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", C.dir);
}

/* Index of the node that leads (waits up to ~10 s), or -1. */
static int wait_leader(void)
{
    for (int t = 0; t < 200; t++) {
        for (int i = 0; i <= N; i++) {
            struct rlog_status st;
            if (C.node[i] && rlog_status(C.node[i], &st) == 0 && st.role == RLOG_ROLE_LEADER)
                return i;
        }
        usleep(50000);
    }
    return -1;
}

static uint64_t wait_commit(int i, uint64_t want)
{
    struct rlog_status st = {0};
    for (int t = 0; t < 200; t++) {
        ck_assert_int_eq(rlog_status(C.node[i], &st), 0);
        if (st.commit_offset >= want)
            break;
        usleep(50000);
    }
    return st.commit_offset;
}

static int rec_of(uint64_t k, char *buf, size_t len)
{
    return snprintf(buf, len, "record %llu %s", (unsigned long long)k,
                    k % 7 == 0 ? "with a longer tail of bytes to vary the sizes" : "");
}

static void append_range(int leader, uint64_t from, uint64_t to)
{
    for (uint64_t k = from; k < to; k++) {
        char rec[128];
        int n = rec_of(k, rec, sizeof rec);
        uint64_t off = 0;
        int rv = rlog_append(C.node[leader], rec, (size_t)n, &off);
        ck_assert_msg(rv == 0, "append %llu: %s: %s", (unsigned long long)k, rlog_errname(rv),
                      rlog_errmsg(C.node[leader]));
        ck_assert_uint_eq(off, k);
    }
}

/* The node's first readable offset once it is `want` (waits ~10 s). */
static uint64_t wait_first(int i, uint64_t want)
{
    struct rlog_status st = {0};
    for (int t = 0; t < 200; t++) {
        ck_assert_int_eq(rlog_status(C.node[i], &st), 0);
        if (st.first_offset == want)
            break;
        usleep(50000);
    }
    return st.first_offset;
}

/* Every node serves records [from, n) with the expected bytes, and those
 * before `from` as trimmed. */
static void check_range(uint64_t from, uint64_t n)
{
    for (int i = 0; i <= N; i++) {
        if (!C.node[i])
            continue;
        ck_assert_uint_ge(wait_commit(i, n), n);
        rlog_iter *it;
        if (from > 0) {
            ck_assert_uint_eq(wait_first(i, from), from);
            void *b;
            size_t len;
            ck_assert_int_eq(rlog_read(C.node[i], from - 1, &b, &len), RLOG_ETRIMMED);
            ck_assert_int_eq(rlog_read(C.node[i], 0, &b, &len), RLOG_ETRIMMED);
            const void *rec;
            ck_assert_int_eq(rlog_iter_open(C.node[i], from - 1, n, &it), 0);
            ck_assert_int_eq(rlog_iter_next(it, &rec, &len, NULL), RLOG_ETRIMMED);
            rlog_iter_close(it);
        }
        ck_assert_int_eq(rlog_iter_open(C.node[i], from, n, &it), 0);
        for (uint64_t k = from; k < n; k++) {
            const void *rec;
            size_t len;
            uint64_t off;
            int rv = rlog_iter_next(it, &rec, &len, &off);
            ck_assert_msg(rv == 0, "node %d iter %llu: %s: %s", i + 1, (unsigned long long)k,
                          rlog_errname(rv), rlog_errmsg(C.node[i]));
            char want[128];
            int wl = rec_of(k, want, sizeof want);
            ck_assert_uint_eq(off, k);
            ck_assert_uint_eq(len, (size_t)wl);
            ck_assert_mem_eq(rec, want, len);
        }
        const void *rec;
        size_t len;
        ck_assert_int_eq(rlog_iter_next(it, &rec, &len, NULL), RLOG_ENOTFOUND);
        rlog_iter_close(it);
        void *b;
        ck_assert_int_eq(rlog_read(C.node[i], n, &b, &len), RLOG_ENOTFOUND);
    }
}

static void check_all(uint64_t n)
{
    check_range(0, n);
}

START_TEST(test_replicates_to_every_node)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 500);
    check_all(500);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(C.node[l], &st), 0);
    ck_assert_uint_gt(st.cache_hits, 0); /* recent records come from memory */
    ck_assert_uint_gt(st.cache_bytes, 0);
    void *b;
    size_t len;
    int f = (l + 1) % N;
    ck_assert_int_eq(rlog_read(C.node[f], 123, &b, &len), 0);
    char want[128];
    ck_assert_uint_eq(len, (size_t)rec_of(123, want, sizeof want));
    ck_assert_mem_eq(b, want, len);
    rlog_free(b);
}
END_TEST

/* Reads that miss the cache are served on the caller's thread from the
 * segment files: two threads read a follower's records at random while
 * the leader appends across segment rollovers; every read is the record
 * appended at that offset. Trimmed and uncommitted offsets still get
 * their errors. */
struct miss_reader {
    rlog *log;
    uint64_t n, rng, reads, wrong;
    char why[160];
};

static void *miss_reader_main(void *arg)
{
    struct miss_reader *r = arg;
    for (int i = 0; i < 3000; i++) {
        r->rng ^= r->rng << 13;
        r->rng ^= r->rng >> 7;
        r->rng ^= r->rng << 17;
        uint64_t k = r->rng % r->n;
        void *b;
        size_t len;
        char want[128];
        int wl = rec_of(k, want, sizeof want);
        int rv = rlog_read(r->log, k, &b, &len);
        if (rv == 0 && (len != (size_t)wl || memcmp(b, want, len) != 0) && r->wrong++ == 0)
            snprintf(r->why, sizeof r->why, "record %llu: other bytes", (unsigned long long)k);
        if (rv != 0 && r->wrong++ == 0)
            snprintf(r->why, sizeof r->why, "record %llu: %s", (unsigned long long)k,
                     rlog_errname(rv));
        if (rv == 0)
            rlog_free(b);
        r->reads++;
    }
    return NULL;
}

START_TEST(test_reads_that_miss_the_cache)
{
    no_cache = 1;
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 400);
    int f = (l + 1) % N;
    ck_assert_uint_ge(wait_commit(f, 400), 400);
    struct rlog_status s0, s1;
    ck_assert_int_eq(rlog_status(C.node[f], &s0), 0);
    struct miss_reader r[2] = {{.log = C.node[f], .n = 400, .rng = 5},
                               {.log = C.node[f], .n = 400, .rng = 99}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, miss_reader_main, &r[t]), 0);
    append_range(l, 400, 3000); /* ~1.5 segments of 1 MiB: rollovers under the readers */
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(r[t].wrong == 0, "reader %d: %llu wrong; first: %s", t,
                      (unsigned long long)r[t].wrong, r[t].why);
    }
    ck_assert_int_eq(rlog_status(C.node[f], &s1), 0);
    ck_assert_uint_eq(s1.cache_hits, s0.cache_hits);
    ck_assert_uint_ge(s1.cache_misses - s0.cache_misses, 6000); /* every read counted */
    void *b;
    size_t len;
    ck_assert_int_eq(rlog_read(C.node[f], 3000 + 5, &b, &len), RLOG_ENOTFOUND);
    ck_assert_int_eq(rlog_trim(C.node[l], 1000), 0);
    check_range(1000, 3000); /* every node: reads before 1000 trimmed, the rest served */
}
END_TEST

START_TEST(test_follower_append_names_leader)
{
    forward_off = 1; /* forwarding has its own tests (test_forward) */
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 1); /* the followers have heard from the leader */
    wait_commit((l + 1) % N, 1);
    int f = (l + 1) % N;
    uint64_t off;
    ck_assert_int_eq(rlog_append(C.node[f], "x", 1, &off), RLOG_ENOTLEADER);
    ck_assert_msg(strstr(rlog_errmsg(C.node[f]), C.addrs[l]) != NULL, "errmsg '%s' lacks %s",
                  rlog_errmsg(C.node[f]), C.addrs[l]);
}
END_TEST

START_TEST(test_leader_handoff_and_restart)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 200);
    node_close(l); /* hands leadership over */
    int l2 = wait_leader();
    ck_assert_int_ge(l2, 0);
    ck_assert_int_ne(l2, l);
    append_range(l2, 200, 400);
    node_open(l); /* rejoins and catches up */
    check_all(400);
    /* everyone down and up again: nothing lost, offsets continue */
    for (int i = 0; i < N; i++)
        node_close(i);
    for (int i = 0; i < N; i++)
        node_open(i);
    int l3 = wait_leader();
    ck_assert_int_ge(l3, 0);
    append_range(l3, 400, 450);
    check_all(450);
}
END_TEST

struct async_state {
    pthread_mutex_t mu;
    int fired, failed;
    uint64_t offsets[400];
};

static void async_cb(void *arg, int status, uint64_t first)
{
    struct async_state *s = arg;
    pthread_mutex_lock(&s->mu);
    if (status)
        s->failed++;
    else
        s->offsets[s->fired] = first;
    s->fired++;
    pthread_mutex_unlock(&s->mu);
}

START_TEST(test_async_appends_fire_once_each)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    static struct async_state s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    for (int k = 0; k < 400; k++) {
        char rec[16];
        int n = snprintf(rec, sizeof rec, "a%d", k);
        struct rlog_buf b = {rec, (size_t)n};
        ck_assert_int_eq(rlog_append_async(C.node[l], &b, 1, async_cb, &s), 0);
    }
    for (int t = 0; t < 400; t++) {
        pthread_mutex_lock(&s.mu);
        int f = s.fired;
        pthread_mutex_unlock(&s.mu);
        if (f == 400)
            break;
        usleep(25000);
    }
    usleep(100000); /* a double fire would show up here */
    ck_assert_int_eq(s.fired, 400);
    ck_assert_int_eq(s.failed, 0);
    for (int k = 0; k < 400; k++)
        ck_assert_uint_eq(s.offsets[k], (uint64_t)k); /* in order, dense */
}
END_TEST

struct writer_arg {
    rlog *log;
    int id, n;
    uint64_t *offsets;
};

static void *writer(void *p)
{
    struct writer_arg *w = p;
    for (int k = 0; k < w->n; k++) {
        char rec[32];
        int n = snprintf(rec, sizeof rec, "w%d-%d", w->id, k);
        struct rlog_buf bufs[2] = {{rec, (size_t)n}, {rec, (size_t)n}};
        if (rlog_append_batch(w->log, bufs, 2, &w->offsets[k]) != 0)
            w->offsets[k] = UINT64_MAX;
    }
    return NULL;
}

START_TEST(test_concurrent_appenders_get_distinct_offsets)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    enum { W = 4, PER = 150 };
    static uint64_t offs[W][PER];
    pthread_t th[W];
    struct writer_arg wa[W];
    for (int w = 0; w < W; w++) {
        wa[w] = (struct writer_arg){C.node[l], w, PER, offs[w]};
        pthread_create(&th[w], NULL, writer, &wa[w]);
    }
    for (int w = 0; w < W; w++)
        pthread_join(th[w], NULL);
    static unsigned char seen[W * PER * 2];
    for (int w = 0; w < W; w++)
        for (int k = 0; k < PER; k++) {
            uint64_t o = offs[w][k];
            ck_assert_uint_lt(o, W * PER * 2);
            ck_assert(!seen[o] && !seen[o + 1]); /* a batch is contiguous */
            seen[o] = seen[o + 1] = 1;
            void *b;
            size_t len;
            char want[32];
            int n = snprintf(want, sizeof want, "w%d-%d", w, k);
            ck_assert_int_eq(rlog_read(C.node[l], o + 1, &b, &len), 0);
            ck_assert_uint_eq(len, (size_t)n);
            ck_assert_mem_eq(b, want, len);
            rlog_free(b);
        }
}
END_TEST

static int open_with(void (*edit)(struct rlog_config *), char *err, size_t errlen)
{
    struct rlog_config c;
    cfg_for(0, &c);
    edit(&c);
    rlog *log = NULL;
    int rv = rlog_open(&c, &log, err, errlen);
    if (log)
        rlog_close(log);
    return rv;
}

static struct rlog_peer dup_peers[3];
static void e_dup_ids(struct rlog_config *c)
{
    memcpy(dup_peers, C.peers, sizeof dup_peers);
    dup_peers[2].id = 2;
    c->peers = dup_peers;
}
static void e_self_missing(struct rlog_config *c) { c->id = 9; }
static void e_bad_address(struct rlog_config *c) { c->address = "nohost"; }
static void e_unresolvable(struct rlog_config *c)
{
    memcpy(dup_peers, C.peers, sizeof dup_peers);
    dup_peers[0].address = "no-such-host.invalid:7000";
    c->peers = dup_peers;
    c->address = "no-such-host.invalid:7000";
}
static void e_sizes(struct rlog_config *c) { c->batch_max_bytes = 10; }
static void e_timeouts(struct rlog_config *c) { c->heartbeat_timeout_ms = 500; c->election_timeout_ms = 400; }
static void e_no_dir(struct rlog_config *c) { c->data_dir = ""; }
static void e_cluster_name(struct rlog_config *c) { c->cluster_name = "two words"; }

START_TEST(test_bad_configs_name_the_field)
{
    static const struct {
        void (*edit)(struct rlog_config *);
        const char *field;
    } cases[] = {
        {e_dup_ids, "duplicate id"},       {e_self_missing, "not in the cluster"},
        {e_bad_address, "config.address"}, {e_unresolvable, "resolve"},
        {e_sizes, "batch_max_bytes"},      {e_timeouts, "heartbeat_timeout_ms"},
        {e_no_dir, "data_dir"},           {e_cluster_name, "config.cluster_name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        int rv = open_with(cases[i].edit, err, sizeof err);
        ck_assert_msg(rv == RLOG_EINVAL, "case %zu: %s (%s)", i, rlog_errname(rv), err);
        ck_assert_msg(strstr(err, cases[i].field), "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].field);
    }
    struct stat st;
    ck_assert_int_ne(stat(C.dirs[0], &st), 0); /* nothing was created */
}
END_TEST

START_TEST(test_busy_directory)
{
    node_open(0);
    struct rlog_config c;
    cfg_for(0, &c);
    rlog *second = NULL;
    char err[256];
    int rv = rlog_open(&c, &second, err, sizeof err);
    ck_assert_int_ne(rv, 0);
    ck_assert_ptr_null(second);
    ck_assert_msg(rv == RLOG_EBUSY, "%s: %s", rlog_errname(rv), err);
    ck_assert_msg(strstr(err, "in use by process"), "%s", err);
}
END_TEST

/* Opens node i's directory with cfg edited; returns the code, closing a
 * handle that opened. */
static int open_as(int i, void (*edit)(struct rlog_config *), char *err, size_t errlen)
{
    struct rlog_config c;
    cfg_for(i, &c);
    if (edit)
        edit(&c);
    rlog *log = NULL;
    int rv = rlog_open(&c, &log, err, errlen);
    if (log)
        rlog_close(log);
    return rv;
}

static void e_as_node_2(struct rlog_config *c)
{
    c->id = 2;
    c->address = C.addrs[1];
}
static void e_named_other(struct rlog_config *c) { c->cluster_name = "other"; }

/* Node 1's directory refuses to be node 2 or another cluster's, with both
 * ids in the message, and changes nothing; without its IDENTITY file (an
 * older liblog's directory) it is adopted. */
START_TEST(test_directory_refuses_another_identity)
{
    node_open(0);
    node_close(0);
    char err[256] = "", want[512];
    ck_assert_int_eq(open_as(0, e_as_node_2, err, sizeof err), RLOG_EIDENTITY);
    snprintf(want, sizeof want, "data directory %s belongs to node 1, not node 2", C.dirs[0]);
    ck_assert_str_eq(err, want);
    ck_assert_str_eq(rlog_errmsg(NULL), want);
    ck_assert_str_eq(rlog_strerror(RLOG_EIDENTITY),
                     "data directory belongs to another node or cluster");
    ck_assert_int_eq(open_as(0, e_named_other, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_msg(strstr(err, "not cluster other"), "%s", err);

    char path[400];
    snprintf(path, sizeof path, "%s/IDENTITY", C.dirs[0]);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(open_as(0, NULL, err, sizeof err), 0);
    ck_assert_int_eq(access(path, R_OK), 0);
    ck_assert_int_eq(open_as(0, e_as_node_2, err, sizeof err), RLOG_EIDENTITY);
}
END_TEST

/* Three nodes with libraft's window shrunk to 8 + 16 entries, so that a
 * node far behind can only come back through segment fetch. The leader. */
static int open_small_window(void)
{
    window_threshold = 8;
    window_trailing = 16;
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    return l;
}

static void assert_fetched(void)
{
    pthread_mutex_lock(&log_mu);
    int fetched = fetched_lines;
    pthread_mutex_unlock(&log_mu);
    ck_assert_msg(fetched >= 1, "no node caught up through segment fetch");
}

/* Opens a fourth node (join) and adds it through leader l. */
static void add_fourth(int l)
{
    struct rlog_config c;
    cfg_for(N, &c);
    c.n_peers = N + 1;
    c.join = 1;
    c.snapshot_threshold = window_threshold;
    c.snapshot_trailing = window_trailing;
    c.log_fn = count_fetches;
    char err[256];
    ck_assert_int_eq(rlog_open(&c, &C.node[N], err, sizeof err), 0);
    int rv = rlog_add_node(C.node[l], N + 1, C.addrs[N]);
    ck_assert_msg(rv == 0, "add: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[l]));
}

/* The fourth node takes over from l, which then leaves the cluster. */
static void fourth_takes_over(int l)
{
    int rv = rlog_transfer_leadership(C.node[l], N + 1);
    ck_assert_msg(rv == 0, "transfer: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[l]));
    ck_assert_int_eq(wait_leader(), N);
    ck_assert_int_eq(rlog_remove_node(C.node[l], 1), RLOG_ENOTLEADER);
    /* A new leader first commits the configuration it inherited; until then
     * a change is refused as busy, which callers retry. */
    for (int t = 0; t < 100; t++) {
        rv = rlog_remove_node(C.node[N], (uint64_t)l + 1);
        if (rv != RLOG_EBUSY)
            break;
        usleep(50000);
    }
    ck_assert_msg(rv == 0, "remove: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[N]));
    node_close(l);
}

START_TEST(test_lagging_follower_catches_up_by_fetch)
{
    int l = open_small_window();
    append_range(l, 0, 50);
    int f = (l + 1) % N;
    check_all(50);
    node_close(f);
    append_range(l, 50, 650);
    node_open(f);
    check_all(650);
    assert_fetched();
    /* and it keeps replicating normally afterwards */
    append_range(l, 650, 700);
    check_all(700);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(C.node[f], &st), 0);
    ck_assert_uint_eq(st.catchup_target, 0);
}
END_TEST

struct seen {
    pthread_mutex_t mu;
    uint64_t next;       /* next offset expected */
    int errors, ended;
    int end_status;
    rlog_sub *self;      /* unsubscribe from the callback at stop_at */
    uint64_t stop_at;
};

static void seen_cb(void *arg, int status, uint64_t off, const void *rec, size_t len)
{
    struct seen *s = arg;
    pthread_mutex_lock(&s->mu);
    if (status != 0) {
        s->ended++;
        s->end_status = status;
    } else {
        char want[128];
        int n = rec_of(off, want, sizeof want);
        if (off != s->next || len != (size_t)n || memcmp(rec, want, len) != 0)
            s->errors++; /* out of order, duplicate, gap, or wrong bytes */
        s->next = off + 1;
    }
    bool stop = s->self && s->next == s->stop_at;
    pthread_mutex_unlock(&s->mu);
    if (stop)
        rlog_unsubscribe(s->self);
}

static uint64_t seen_wait(struct seen *s, uint64_t want)
{
    uint64_t got = 0;
    for (int t = 0; t < 400; t++) {
        pthread_mutex_lock(&s->mu);
        got = s->next;
        pthread_mutex_unlock(&s->mu);
        if (got >= want)
            break;
        usleep(25000);
    }
    return got;
}

START_TEST(test_subscribers_on_every_node_history_then_live)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 100);
    static struct seen s[N + 1];
    rlog_sub *subs[N + 1];
    for (int i = 0; i < N; i++) {
        s[i] = (struct seen){.mu = PTHREAD_MUTEX_INITIALIZER};
        ck_assert_int_eq(rlog_subscribe(C.node[i], 0, seen_cb, &s[i], &subs[i]), 0);
    }
    s[N] = (struct seen){.mu = PTHREAD_MUTEX_INITIALIZER, .next = 60};
    ck_assert_int_eq(rlog_subscribe(C.node[(l + 1) % N], 60, seen_cb, &s[N], &subs[N]), 0);
    append_range(l, 100, 300); /* live, while the history is delivered */
    for (int i = 0; i <= N; i++) {
        ck_assert_uint_eq(seen_wait(&s[i], 300), 300);
        ck_assert_int_eq(s[i].errors, 0);
    }
    usleep(100000); /* nothing more, nothing twice */
    for (int i = 0; i <= N; i++) {
        ck_assert_uint_eq(s[i].next, 300);
        rlog_unsubscribe(subs[i]);
        ck_assert_int_eq(s[i].ended, 0);
    }
}
END_TEST

START_TEST(test_subscription_pause_resume_and_self_unsubscribe)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 20);
    static struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rlog_sub *sub;
    ck_assert_int_eq(rlog_subscribe(C.node[l], 0, seen_cb, &s, &sub), 0);
    ck_assert_uint_eq(seen_wait(&s, 20), 20);
    rlog_sub_pause(sub);
    usleep(50000);
    append_range(l, 20, 40);
    usleep(200000);
    pthread_mutex_lock(&s.mu);
    uint64_t paused_at = s.next;
    pthread_mutex_unlock(&s.mu);
    ck_assert_uint_le(paused_at, 21); /* at most the record in hand */
    rlog_sub_resume(sub);
    ck_assert_uint_eq(seen_wait(&s, 40), 40);
    rlog_unsubscribe(sub);
    /* a subscription that ends itself from its callback */
    static struct seen s2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .stop_at = 10};
    ck_assert_int_eq(rlog_subscribe(C.node[l], 0, seen_cb, &s2, &s2.self), 0);
    ck_assert_uint_eq(seen_wait(&s2, 10), 10);
    usleep(100000);
    ck_assert_uint_eq(s2.next, 10);
    ck_assert_int_eq(s2.errors, 0);
}
END_TEST

START_TEST(test_subscription_ends_at_close_and_iter_wait)
{
    for (int i = 0; i < N; i++)
        node_open(i);
    int l = wait_leader();
    ck_assert_int_ge(l, 0);
    append_range(l, 0, 5);
    int f = (l + 1) % N;
    wait_commit(f, 5);
    rlog_iter *it;
    ck_assert_int_eq(rlog_iter_open(C.node[f], 5, UINT64_MAX, &it), 0);
    ck_assert_int_eq(rlog_iter_wait(it, 100), RLOG_ETIMEOUT);
    append_range(l, 5, 6);
    ck_assert_int_eq(rlog_iter_wait(it, 5000), 0);
    const void *rec;
    size_t len;
    uint64_t off;
    ck_assert_int_eq(rlog_iter_next(it, &rec, &len, &off), 0);
    ck_assert_uint_eq(off, 5);
    rlog_iter_close(it);
    static struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rlog_sub *sub;
    ck_assert_int_eq(rlog_subscribe(C.node[f], 0, seen_cb, &s, &sub), 0);
    ck_assert_uint_eq(seen_wait(&s, 6), 6);
    node_close(f); /* ends the subscription: the callback says why, once */
    ck_assert_int_eq(s.ended, 1);
    ck_assert_int_eq(s.end_status, RLOG_ECLOSED);
    ck_assert_int_eq(s.errors, 0);
}
END_TEST

START_TEST(test_membership_add_transfer_remove)
{
    int l = open_small_window(); /* the newcomer must catch up by segment fetch */
    append_range(l, 0, 300);
    add_fourth(l);
    ck_assert_int_eq(rlog_add_node(C.node[l], N + 1, C.addrs[N]), RLOG_EINVAL); /* twice */
    ck_assert_uint_ge(wait_commit(N, 300), 300);
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(C.node[l], &st), 0);
    ck_assert_uint_eq(st.n_peers, N + 1);
    int voters = 0;
    for (unsigned i = 0; i < st.n_peers; i++)
        voters += st.peers[i].voter;
    ck_assert_int_eq(voters, N + 1);
    /* it takes over, then the old leader leaves */
    fourth_takes_over(l);
    ck_assert_int_eq(rlog_status(C.node[N], &st), 0);
    ck_assert_uint_eq(st.n_peers, N);
    append_range(N, 300, 350);
    ck_assert_uint_ge(wait_commit(N, 350), 350);
    for (int i = 0; i < N; i++)
        if (i != l)
            ck_assert_uint_ge(wait_commit(i, 350), 350);
}
END_TEST

/* After node 4 joined and the old leader left, a remaining founder opens
 * with the founders' list or the current membership, but not with a list
 * that puts a member elsewhere. */
START_TEST(test_identity_after_membership_change)
{
    int l = open_small_window();
    append_range(l, 0, 20);
    add_fourth(l);
    fourth_takes_over(l);
    int f = (l + 1) % N;
    ck_assert_uint_ge(wait_commit(f, 20), 20);
    node_close(f);
    char err[256] = "";
    ck_assert_int_eq(open_as(f, NULL, err, sizeof err), 0); /* the founders' list */

    struct rlog_peer now[N], wrong[N + 1];
    unsigned n = 0;
    for (int i = 0; i <= N; i++)
        if (i != l)
            now[n++] = C.peers[i];
    struct rlog_config c;
    cfg_for(f, &c);
    c.peers = now;
    c.n_peers = n;
    rlog *log = NULL;
    int rv = rlog_open(&c, &log, err, sizeof err);
    ck_assert_msg(rv == 0, "the current membership: %s: %s", rlog_errname(rv), err);
    rlog_close(log);

    memcpy(wrong, C.peers, sizeof wrong);
    wrong[N].address = "127.0.0.1:9"; /* node 4 elsewhere */
    c.peers = wrong;
    c.n_peers = N + 1;
    log = NULL;
    ck_assert_int_eq(rlog_open(&c, &log, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_ptr_null(log);
    char want[200];
    snprintf(want, sizeof want, "config.peers has node %d at 127.0.0.1:9, but the cluster stored in",
             N + 1);
    ck_assert_msg(strstr(err, want) && strstr(err, C.addrs[N]), "%s", err);

    node_open(f); /* and it serves what was appended meanwhile */
    append_range(N, 20, 30);
    ck_assert_uint_ge(wait_commit(f, 30), 30);
}
END_TEST

/* Retention through the API: the trim is replicated, so every replica
 * drops the same records; bad points get clear errors; appends go on and a
 * restart keeps it. */
START_TEST(test_trim_on_every_replica)
{
    int l = open_small_window(); /* snapshots move, so segments can go too */
    append_range(l, 0, 400);
    check_all(400);
    int f = (l + 1) % N;
    ck_assert_int_eq(rlog_trim(C.node[f], 100), RLOG_ENOTLEADER);
    ck_assert_int_eq(rlog_trim(C.node[l], 401), RLOG_EINVAL);
    ck_assert_msg(strstr(rlog_errmsg(C.node[l]), "beyond the committed end"), "errmsg: %s",
                  rlog_errmsg(C.node[l]));
    int rv = rlog_trim(C.node[l], 150);
    ck_assert_msg(rv == 0, "trim: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[l]));
    check_range(150, 400);
    ck_assert_int_eq(rlog_trim(C.node[l], 100), 0); /* behind it: nothing to do */
    ck_assert_int_eq(rlog_trim(C.node[l], 150), 0);
    append_range(l, 400, 450);
    check_range(150, 450);
    ck_assert_int_eq(rlog_trim(C.node[l], 450), 0); /* up to the committed end */
    append_range(l, 450, 460);
    check_range(450, 460);
    for (int i = 0; i < N; i++)
        node_close(i);
    for (int i = 0; i < N; i++)
        node_open(i);
    l = wait_leader();
    ck_assert_int_ge(l, 0);
    check_range(450, 460);
    append_range(l, 460, 470);
    check_range(450, 470);
}
END_TEST

/* Catch-up past the trim point: a follower whose log ends before what the
 * leader still holds resets its log to the leader's start and fetches from
 * there; a node added after the trim does the same. Then the newcomer
 * leads, an old node leaves, and a trim on the new leader reaches all. */
START_TEST(test_trim_past_a_lagging_follower_and_new_node)
{
    int l = open_small_window();
    append_range(l, 0, 100);
    check_all(100);
    int f = (l + 1) % N;
    node_close(f);
    append_range(l, 100, 500);
    int rv = rlog_trim(C.node[l], 400);
    ck_assert_msg(rv == 0, "trim: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[l]));
    append_range(l, 500, 600);
    node_open(f);
    check_range(400, 600);
    assert_fetched();
    /* the reset survives a restart */
    node_close(f);
    node_open(f);
    check_range(400, 600);
    add_fourth(l);
    check_range(400, 600);
    fourth_takes_over(l);
    append_range(N, 600, 650);
    rv = rlog_trim(C.node[N], 620);
    ck_assert_msg(rv == 0, "trim: %s: %s", rlog_errname(rv), rlog_errmsg(C.node[N]));
    check_range(620, 650);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_replicates_to_every_node);
    tcase_add_test(tc, test_reads_that_miss_the_cache);
    tcase_add_test(tc, test_follower_append_names_leader);
    tcase_add_test(tc, test_leader_handoff_and_restart);
    tcase_add_test(tc, test_async_appends_fire_once_each);
    tcase_add_test(tc, test_concurrent_appenders_get_distinct_offsets);
    tcase_add_test(tc, test_bad_configs_name_the_field);
    tcase_add_test(tc, test_busy_directory);
    tcase_add_test(tc, test_directory_refuses_another_identity);
    tcase_add_test(tc, test_lagging_follower_catches_up_by_fetch);
    tcase_add_test(tc, test_subscribers_on_every_node_history_then_live);
    tcase_add_test(tc, test_subscription_pause_resume_and_self_unsubscribe);
    tcase_add_test(tc, test_subscription_ends_at_close_and_iter_wait);
    tcase_add_test(tc, test_membership_add_transfer_remove);
    tcase_add_test(tc, test_identity_after_membership_change);
    tcase_add_test(tc, test_trim_on_every_replica);
    tcase_add_test(tc, test_trim_past_a_lagging_follower_and_new_node);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cluster_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
