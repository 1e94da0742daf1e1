/* rlog_host: many logs on a few shared loop threads. Two 3-node logs on
 * one host replicate independently; the host refuses to close while a log
 * is open; a callback may not block on a log of its own thread; a failed
 * open leaves the host usable; bad arguments get RLOG_EINVAL. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <xxhash.h>

#include "common/bytes.h"
#include "lib/fault_fs.h"
#include "net/hello.h"
#include "lib/ports.h"
#include "liblog.h"

#define LOGS 2

struct one_log {
    char addrs[3][32], dirs[3][300];
    struct rlog_peer peers[3];
    rlog *node[3];
};

static char top[256];
static struct one_log L[LOGS];
static rlog_host *H;
static rlog_host *HS[3]; /* hosts with an address (one_connection_per_peer_host) */
static char host_addrs[3][32];

static void quiet(void *arg, int level, const char *line)
{
    (void)arg;
    if (getenv("RLOG_TEST_VERBOSE") || level >= 3)
        fprintf(stderr, "%s\n", line);
}

static void cfg_for(int k, int i, struct rlog_config *c)
{
    rlog_config_init(c);
    c->id = (uint64_t)i + 1;
    c->address = L[k].addrs[i];
    c->data_dir = L[k].dirs[i];
    c->peers = L[k].peers;
    c->n_peers = 3;
    c->election_timeout_ms = 400;
    c->heartbeat_timeout_ms = 50;
    c->segment_size = 1u << 20;
    c->batch_max_bytes = 256u << 10;
    c->max_record_size = 64u << 10;
    c->log_fn = quiet;
}

static uint64_t host_cache, host_floor; /* 0: the defaults */

static void open_host(unsigned threads)
{
    struct rlog_host_config hc;
    rlog_host_config_init(&hc);
    ck_assert_uint_eq(hc.threads, 1);
    ck_assert_uint_eq(hc.cache_bytes, 256u << 20);
    ck_assert_uint_eq(hc.cache_floor_bytes, 1u << 20);
    hc.threads = threads;
    if (host_cache)
        hc.cache_bytes = host_cache;
    if (host_floor)
        hc.cache_floor_bytes = host_floor;
    char err[256];
    int rv = rlog_host_open(&hc, &H, err, sizeof err);
    ck_assert_msg(rv == 0, "rlog_host_open: %s: %s", rlog_errname(rv), err);
}

static void open_logs(void)
{
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++) {
            struct rlog_config c;
            cfg_for(k, i, &c);
            char err[256];
            int rv = rlog_open_on(H, &c, &L[k].node[i], err, sizeof err);
            ck_assert_msg(rv == 0, "open log %d node %d: %s: %s", k, i + 1, rlog_errname(rv), err);
        }
}

static void close_logs(void)
{
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            if (L[k].node[i]) {
                ck_assert_int_eq(rlog_close(L[k].node[i]), 0);
                L[k].node[i] = NULL;
            }
}

static void setup(void)
{
    snprintf(top, sizeof top, "/tmp/rlog-hosts-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    int base = th_free_ports(20000, 3 * LOGS);
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++) {
            snprintf(L[k].addrs[i], sizeof L[k].addrs[i], "127.0.0.1:%d", base + 3 * k + i);
            snprintf(L[k].dirs[i], sizeof L[k].dirs[i], "%s/log%d/n%d", top, k, i + 1);
            L[k].peers[i] = (struct rlog_peer){(uint64_t)i + 1, L[k].addrs[i]};
            L[k].node[i] = NULL;
        }
    H = NULL;
    host_cache = host_floor = 0;
}

static void teardown(void)
{
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            if (L[k].node[i])
                rlog_close(L[k].node[i]);
    if (H)
        rlog_host_close(H);
    for (int i = 0; i < 3; i++)
        if (HS[i]) {
            rlog_host_close(HS[i]);
            HS[i] = NULL;
        }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", top);
}

/* Appends rec to log k (any node: followers forward) and returns its offset. */
static uint64_t append_to(int k, const char *rec)
{
    uint64_t off = UINT64_MAX;
    int rv = RLOG_ENOTLEADER;
    for (int t = 0; t < 400 && rv != 0; t++) {
        rv = rlog_append(L[k].node[t % 3], rec, strlen(rec), &off);
        if (rv != 0)
            usleep(25000); /* no leader yet */
    }
    ck_assert_msg(rv == 0, "append to log %d: %s", k, rlog_errname(rv));
    return off;
}

/* Reads offset off of log k on node i, waiting for it to be visible there. */
static void expect_record(int k, int i, uint64_t off, const char *want)
{
    void *buf = NULL;
    size_t len = 0;
    int rv = RLOG_ENOTFOUND;
    for (int t = 0; t < 400 && rv == RLOG_ENOTFOUND; t++) {
        rv = rlog_read(L[k].node[i], off, &buf, &len);
        if (rv == RLOG_ENOTFOUND)
            usleep(10000);
    }
    ck_assert_msg(rv == 0, "read log %d node %d offset %llu: %s", k, i + 1,
                  (unsigned long long)off, rlog_errname(rv));
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(buf, want, len) == 0);
    rlog_free(buf);
}

START_TEST(two_logs_on_two_threads)
{
    open_host(2);
    open_logs();
    for (int round = 0; round < 20; round++)
        for (int k = 0; k < LOGS; k++) {
            char rec[32];
            snprintf(rec, sizeof rec, "log%d-rec%d", k, round);
            uint64_t off = append_to(k, rec);
            ck_assert_uint_eq(off, (uint64_t)round); /* each log its own offsets */
            for (int i = 0; i < 3; i++)
                expect_record(k, i, off, rec);
        }
    ck_assert_int_eq(rlog_host_close(H), RLOG_EBUSY);
    ck_assert_ptr_nonnull(strstr(rlog_errmsg(NULL), "open logs"));
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    H = NULL;
}
END_TEST

/* A log keeps its records across a close and a reopen on another host. */
START_TEST(reopen_on_a_new_host)
{
    open_host(1);
    open_logs();
    uint64_t off = append_to(1, "kept");
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    open_host(3);
    open_logs();
    for (int i = 0; i < 3; i++)
        expect_record(1, i, off, "kept");
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    H = NULL;
}
END_TEST

struct blocked {
    rlog *other;
    int rv;
    volatile int done;
};

static void try_blocking(void *arg, int status, uint64_t first)
{
    (void)first;
    struct blocked *b = arg;
    uint64_t off;
    b->rv = status == 0 ? rlog_append(b->other, "x", 1, &off) : -1000;
    __atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
}

/* One thread: every log's callbacks share it, so a blocking call on any of
 * them from a callback would wait for itself; it fails instead. */
START_TEST(callback_cannot_block_on_its_thread)
{
    open_host(1);
    open_logs();
    (void)append_to(0, "first");
    struct blocked b = {.other = L[1].node[0], .rv = 0, .done = 0};
    struct rlog_buf rec = {"cb", 2};
    int rv = RLOG_ENOTLEADER;
    for (int t = 0; t < 3 && rv != 0; t++)
        rv = rlog_append_async(L[0].node[t], &rec, 1, try_blocking, &b);
    ck_assert_int_eq(rv, 0);
    for (int t = 0; t < 1000 && !__atomic_load_n(&b.done, __ATOMIC_ACQUIRE); t++)
        usleep(10000);
    ck_assert(__atomic_load_n(&b.done, __ATOMIC_ACQUIRE));
    ck_assert_int_eq(b.rv, RLOG_EINVAL);
    close_logs();
}
END_TEST

START_TEST(failed_open_leaves_host_usable)
{
    open_host(2);
    struct rlog_config c;
    cfg_for(0, 0, &c);
    c.n_peers = 0; /* invalid */
    rlog *bad = NULL;
    char err[256] = "";
    ck_assert_int_eq(rlog_open_on(H, &c, &bad, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_null(bad);
    ck_assert(err[0] != '\0');
    /* An address already in use fails in the loop thread's start. */
    open_logs();
    cfg_for(0, 0, &c);
    c.data_dir = top; /* another directory, the same busy address */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/other", top);
    c.data_dir = dir;
    ck_assert_int_ne(rlog_open_on(H, &c, &bad, err, sizeof err), 0);
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(err, "address already in use") != NULL, "%s", err);
    uint64_t off = append_to(0, "still");
    expect_record(0, 2, off, "still");
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    H = NULL;
}
END_TEST

/* The same failure on a log's own thread: undone as completely (under
 * ASan, nothing raft_init or the load took is left behind). */
START_TEST(failed_open_on_own_thread)
{
    open_host(1);
    open_logs();
    struct rlog_config c;
    cfg_for(1, 0, &c);
    char dir[300], err[256] = "";
    snprintf(dir, sizeof dir, "%s/other", top);
    c.data_dir = dir;
    rlog *bad = NULL;
    ck_assert_int_ne(rlog_open(&c, &bad, err, sizeof err), 0);
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(err, "address already in use") != NULL, "%s", err);
    close_logs();
}
END_TEST

/* Bytes the read caches of every node of every log hold together. */
static uint64_t caches_total(void)
{
    uint64_t sum = 0;
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++) {
            struct rlog_status st;
            ck_assert_int_eq(rlog_status(L[k].node[i], &st), 0);
            sum += st.cache_bytes;
        }
    return sum;
}

/* Six caches (two logs of three nodes) share a 1 MiB budget with a 64 KiB
 * floor: 4 MiB of records later they hold at most 1 MiB + 6 x 64 KiB in
 * all, and every record still reads back (the rest from the segments).
 * Each log's own cache_bytes (64 MiB) would have kept all of it. */
START_TEST(host_cache_budget)
{
    host_cache = 1u << 20;
    host_floor = 64u << 10;
    open_host(2);
    open_logs();
    static char rec[16 << 10];
    uint64_t offs[LOGS][128];
    for (int n = 0; n < 128; n++)
        for (int k = 0; k < LOGS; k++) {
            memset(rec, 'a' + (n + k) % 26, sizeof rec);
            rec[0] = (char)n;
            uint64_t off = UINT64_MAX;
            int rv = RLOG_ENOTLEADER;
            for (int t = 0; t < 400 && rv != 0; t++) {
                rv = rlog_append(L[k].node[t % 3], rec, sizeof rec, &off);
                if (rv != 0)
                    usleep(25000);
            }
            ck_assert_msg(rv == 0, "append: %s", rlog_errname(rv));
            offs[k][n] = off;
        }
    usleep(300000); /* followers apply the last entries */
    uint64_t total = caches_total();
    ck_assert_msg(total <= (1u << 20) + 6 * (64u << 10), "caches hold %llu bytes",
                  (unsigned long long)total);
    ck_assert_msg(total >= (512u << 10), "caches hold only %llu bytes: the budget is unused",
                  (unsigned long long)total);
    for (int k = 0; k < LOGS; k++)
        for (int n = 0; n < 128; n += 9) {
            void *buf = NULL;
            size_t len = 0;
            int i = (n / 9) % 3;
            ck_assert_int_eq(rlog_read(L[k].node[i], offs[k][n], &buf, &len), 0);
            ck_assert_uint_eq(len, sizeof rec);
            ck_assert_int_eq(((char *)buf)[0], (char)n);
            ck_assert_int_eq(((char *)buf)[1], 'a' + (n + k) % 26);
            rlog_free(buf);
        }
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    H = NULL;
}
END_TEST

/* One replica's disk fails (the next fdatasync under log 0's node 1
 * directory, EIO) while five other replicas, of log 0 and of log 1, share
 * its thread: that replica stops, with the cause; the others go on taking
 * and serving appends; all close. */
START_TEST(store_fault_fails_only_its_log)
{
    open_host(1);
    open_logs();
    uint64_t before = append_to(0, "before");
    (void)append_to(1, "before");
    char under[320];
    snprintf(under, sizeof under, "%s/", L[0].dirs[0]);
    struct rl_fs_faults f = {.sync_fail_at = 1, .sync_errno = EIO, .only_under = under};
    rl_fs_faults_set(&f);
    struct rlog_status st;
    for (int t = 0; t < 400; t++) {
        uint64_t off;
        (void)rlog_append(L[0].node[1 + t % 2], "after", 5, &off);
        ck_assert_int_eq(rlog_status(L[0].node[0], &st), 0);
        if (st.fatal)
            break;
        usleep(10000);
    }
    ck_assert_int_eq(st.fatal, RLOG_EIO);
    ck_assert_ptr_nonnull(strstr(st.fatal_msg, "fdatasync"));
    /* The five others, on the same thread: untouched. */
    for (int n = 0; n < 20; n++) {
        char rec[32];
        snprintf(rec, sizeof rec, "after-%d", n);
        uint64_t o = append_to(1, rec);
        expect_record(1, n % 3, o, rec);
        uint64_t off = UINT64_MAX;
        int rv = RLOG_ENOTLEADER;
        for (int t = 0; t < 400 && rv != 0; t++) {
            rv = rlog_append(L[0].node[1 + t % 2], rec, strlen(rec), &off);
            if (rv != 0)
                usleep(25000);
        }
        ck_assert_msg(rv == 0, "append to log 0 with one replica stopped: %s", rlog_errname(rv));
        expect_record(0, 1 + n % 2, off, rec);
    }
    for (int k = 0; k < LOGS; k++)
        for (int i = k == 0 ? 1 : 0; i < 3; i++) {
            ck_assert_int_eq(rlog_status(L[k].node[i], &st), 0);
            ck_assert_int_eq(st.fatal, 0);
        }
    expect_record(0, 0, before, "before"); /* committed before the stop: still readable */
    rl_fs_faults_clear();
    ck_assert_int_eq(rlog_close(L[0].node[0]), RLOG_EIO);
    L[0].node[0] = NULL;
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    H = NULL;
}
END_TEST

/* A host with an address (one listener, one connection per peer host);
 * tls: the directory of its CA and node-ID files, or NULL (plain). */
static rlog_host *addr_host(const char *addr, uint64_t id, const char *tls)
{
    struct rlog_host_config hc;
    rlog_host_config_init(&hc);
    hc.address = addr;
    hc.id = id;
    hc.cluster_name = "hosts";
    char ca[400], crt[400], key[400], err[256];
    if (tls) {
        snprintf(ca, sizeof ca, "%s/ca.crt", tls);
        snprintf(crt, sizeof crt, "%s/node-%llu.crt", tls, (unsigned long long)id);
        snprintf(key, sizeof key, "%s/node-%llu.key", tls, (unsigned long long)id);
        hc.tls_ca_file = ca;
        hc.tls_cert_file = crt;
        hc.tls_key_file = key;
    }
    rlog_host *h = NULL;
    int rv = rlog_host_open(&hc, &h, err, sizeof err);
    ck_assert_msg(rv == 0, "host %llu: %s: %s", (unsigned long long)id, rlog_errname(rv), err);
    return h;
}

static void open_shared_hosts(void)
{
    int base = th_free_ports(21000, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(host_addrs[i], sizeof host_addrs[i], "127.0.0.1:%d", base + i);
        HS[i] = addr_host(host_addrs[i], (uint64_t)i + 1, NULL);
    }
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            L[k].peers[i] = (struct rlog_peer){(uint64_t)i + 1, host_addrs[i]};
}

static const char *const LOG_NAMES[LOGS] = {"orders", "payments"}; /* their cluster_name */

static void open_shared_log(int k, int i)
{
    const char *const *names = LOG_NAMES;
    struct rlog_config c;
    cfg_for(k, i, &c);
    c.address = NULL; /* the host's */
    c.cluster_name = names[k];
    char err[256];
    int rv = rlog_open_on(HS[i], &c, &L[k].node[i], err, sizeof err);
    ck_assert_msg(rv == 0, "open log %d on host %d: %s: %s", k, i + 1, rlog_errname(rv), err);
}

static void open_shared_logs(void)
{
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            open_shared_log(k, i);
}

static void close_shared_hosts(void)
{
    for (int i = 0; i < 3; i++)
        if (HS[i]) {
            ck_assert_int_eq(rlog_host_close(HS[i]), 0);
            HS[i] = NULL;
        }
}

/* Three hosts with an address each, two logs on them: each log's replicas
 * talk over the hosts' connections, and each keeps its own offsets. */
START_TEST(one_connection_per_peer_host)
{
    open_shared_hosts();
    open_shared_logs();
    for (int round = 0; round < 30; round++)
        for (int k = 0; k < LOGS; k++) {
            char rec[32];
            snprintf(rec, sizeof rec, "log%d-rec%d", k, round);
            uint64_t off = append_to(k, rec);
            ck_assert_uint_eq(off, (uint64_t)round);
            for (int i = 0; i < 3; i++)
                expect_record(k, i, off, rec);
        }
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++) {
            struct rlog_status st;
            ck_assert_int_eq(rlog_status(L[k].node[i], &st), 0);
            ck_assert_int_eq(st.fatal, 0);
        }
    ck_assert_int_eq(rlog_host_close(HS[0]), RLOG_EBUSY);
    /* A log restarts on its host and catches up over the shared links. */
    ck_assert_int_eq(rlog_close(L[1].node[2]), 0);
    L[1].node[2] = NULL;
    uint64_t off = append_to(1, "while-down");
    open_shared_log(1, 2);
    expect_record(1, 2, off, "while-down");
    /* A whole host goes (its connections with it) and comes back at its
     * address: the others' links to it die, are dialled again, and its
     * logs catch up. */
    for (int k = 0; k < LOGS; k++) {
        ck_assert_int_eq(rlog_close(L[k].node[2]), 0);
        L[k].node[2] = NULL;
    }
    ck_assert_int_eq(rlog_host_close(HS[2]), 0);
    uint64_t offs[LOGS];
    for (int k = 0; k < LOGS; k++)
        offs[k] = append_to(k, "host-down");
    HS[2] = addr_host(host_addrs[2], 3, NULL);
    open_shared_log(0, 2);
    open_shared_log(1, 2);
    for (int k = 0; k < LOGS; k++)
        expect_record(k, 2, offs[k], "host-down");
    close_logs();
    close_shared_hosts();
}
END_TEST

/* A sample's value in node i of log k's metrics text (-1: not there). */
static long long metric_of(int k, int i, const char *family)
{
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(rlog_metrics_text(L[k].node[i], &text, &len), 0);
    char want[128];
    snprintf(want, sizeof want, "\n%s{node=\"%d\",log=\"%s\"} ", family, i + 1, LOG_NAMES[k]);
    const char *at = strstr(text, want);
    long long v = at ? atoll(at + strlen(want)) : -1;
    rlog_free(text);
    return v;
}

/* Bytes node i of log k sent its members, all together. */
static uint64_t sent_of(int k, int i)
{
    struct rlog_metrics m;
    ck_assert_int_eq(rlog_metrics(L[k].node[i], &m), 0);
    uint64_t sum = 0;
    for (unsigned p = 0; p < m.n_peers; p++)
        sum += m.peers[p].sent_bytes;
    return sum;
}

static bool all_quiet(void)
{
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            if (L[k].node[i] && metric_of(k, i, "rlog_quiet") != 1)
                return false;
    return true;
}

static void wait_all_quiet(const char *when)
{
    for (int t = 0; t < 200 && !all_quiet(); t++)
        usleep(50000);
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            if (L[k].node[i])
                ck_assert_msg(metric_of(k, i, "rlog_quiet") == 1, "%s: log %d node %d not quiet",
                              when, k, i + 1);
}

/* Idle logs on hosts with an address go quiet: every member stops its
 * clock and sends nothing; reads do not wake them, an append does, and a
 * leader that goes (its channels end) is replaced. */
START_TEST(idle_logs_go_quiet)
{
    open_shared_hosts();
    open_shared_logs();
    for (int k = 0; k < LOGS; k++) {
        uint64_t off = append_to(k, "first");
        for (int i = 0; i < 3; i++)
            expect_record(k, i, off, "first");
    }
    wait_all_quiet("after the first appends");
    uint64_t before[LOGS][3];
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++)
            before[k][i] = sent_of(k, i);
    usleep(600000); /* twelve heartbeat periods */
    for (int k = 0; k < LOGS; k++)
        for (int i = 0; i < 3; i++) {
            expect_record(k, i, 0, "first");
            ck_assert_msg(sent_of(k, i) == before[k][i],
                          "log %d node %d sent %llu bytes while quiet", k, i + 1,
                          (unsigned long long)(sent_of(k, i) - before[k][i]));
        }
    ck_assert(all_quiet());
    long long quiesced = 0;
    for (int i = 0; i < 3; i++)
        quiesced += metric_of(0, i, "rlog_quiesced_total");
    ck_assert_int_ge(quiesced, 1);
    /* An append on a quiet follower (forwarded) wakes its log only. */
    uint64_t off = append_to(0, "second");
    ck_assert_uint_eq(off, 1);
    for (int i = 0; i < 3; i++)
        expect_record(0, i, off, "second");
    wait_all_quiet("after the second append");
    /* The leader of log 0 closes: its channels end, the others run their
     * clocks again and elect. */
    int leader = -1;
    for (int i = 0; i < 3; i++) {
        struct rlog_status st;
        ck_assert_int_eq(rlog_status(L[0].node[i], &st), 0);
        if (st.role == RLOG_ROLE_LEADER)
            leader = i;
    }
    ck_assert_int_ge(leader, 0);
    ck_assert_int_eq(rlog_close(L[0].node[leader]), 0);
    L[0].node[leader] = NULL;
    int other = (leader + 1) % 3;
    uint64_t o3 = UINT64_MAX;
    int rv = RLOG_ENOTLEADER;
    for (int t = 0; t < 400 && rv != 0; t++) {
        rv = rlog_append(L[0].node[t % 2 ? other : (leader + 2) % 3], "third", 5, &o3);
        if (rv != 0)
            usleep(25000);
    }
    ck_assert_msg(rv == 0, "append after the leader closed: %s", rlog_errname(rv));
    expect_record(0, other, o3, "third");
    expect_record(0, (leader + 2) % 3, o3, "third");
    open_shared_log(0, leader);
    expect_record(0, leader, o3, "third");
    close_logs();
    close_shared_hosts();
}
END_TEST

/* What a host with an address refuses to open, and what it refuses to
 * open a log with. */
START_TEST(shared_host_bad_config)
{
    struct rlog_host_config hc;
    rlog_host *h = NULL;
    char err[256] = "";
    int port = th_free_port(21500);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
#define HOST_FAILS(code, what)                                                                 \
    do {                                                                                       \
        ck_assert_int_eq(rlog_host_open(&hc, &h, err, sizeof err), code);                      \
        ck_assert_ptr_null(h);                                                                 \
        ck_assert_msg(strstr(err, what) != NULL, "%s", err);                                   \
    } while (0)
    rlog_host_config_init(&hc);
    hc.id = 1;
    hc.address = "nohost";
    HOST_FAILS(RLOG_EINVAL, "HOST:PORT");
    hc.address = addr;
    hc.threads = 2;
    HOST_FAILS(RLOG_EINVAL, "one thread");
    hc.threads = 1;
    hc.id = 0;
    HOST_FAILS(RLOG_EINVAL, "id");
    hc.id = 1;
    hc.tls_ca_file = "/nonexistent";
    HOST_FAILS(RLOG_EINVAL, "go together");
    hc.tls_ca_file = NULL;
    hc.address = "10.255.255.1:7000";
    HOST_FAILS(RLOG_EINVAL, "not loopback");
    /* A taken address: the host does not start. */
    hc.address = addr;
    ck_assert_int_eq(rlog_host_open(&hc, &H, err, sizeof err), 0);
    HOST_FAILS(RLOG_EIO, "address already in use");
    /* Logs on it: the host's id, a cluster name, no TLS files of their own. */
    for (int i = 0; i < 3; i++)
        L[0].peers[i].address = i == 0 ? addr : L[0].addrs[i];
    struct rlog_config c;
    rlog *log = NULL;
#define LOG_FAILS(what)                                                                        \
    do {                                                                                       \
        ck_assert_int_eq(rlog_open_on(H, &c, &log, err, sizeof err), RLOG_EINVAL);             \
        ck_assert_ptr_null(log);                                                               \
        ck_assert_msg(strstr(err, what) != NULL, "%s", err);                                   \
    } while (0)
    cfg_for(0, 1, &c); /* id 2 */
    c.address = NULL;
    c.cluster_name = "a";
    LOG_FAILS("host's id");
    cfg_for(0, 0, &c);
    c.address = NULL;
    LOG_FAILS("cluster_name");
    c.cluster_name = "a";
    c.tls_ca_file = c.tls_cert_file = c.tls_key_file = "/nonexistent";
    LOG_FAILS("TLS");
    c.tls_ca_file = c.tls_cert_file = c.tls_key_file = NULL;
    ck_assert_int_eq(rlog_open_on(H, &c, &L[0].node[0], err, sizeof err), 0);
    /* A second log of the same name on the host. */
    snprintf(L[1].dirs[0], sizeof L[1].dirs[0], "%s/dup", top);
    c.data_dir = L[1].dirs[0];
    ck_assert_int_ne(rlog_open_on(H, &c, &log, err, sizeof err), 0);
    ck_assert_ptr_null(log);
    ck_assert_msg(strstr(err, "same cluster name") || strstr(err, "cluster name"), "%s", err);
    close_logs();
    ck_assert_int_eq(rlog_host_close(H), 0);
    H = NULL;
#undef HOST_FAILS
#undef LOG_FAILS
}
END_TEST

/* Host 4 is a member of a log on host 1 ("other"), not of "orders": its
 * hello gets it a connection to host 1, but "orders" on host 1 refuses its
 * channel and counts it, and "orders" goes on unbothered. */
START_TEST(host_speaks_only_for_its_logs)
{
    int base = th_free_ports(21600, 4);
    rlog_host *hs[4];
    char ha[4][32];
    for (int i = 0; i < 4; i++) {
        snprintf(ha[i], sizeof ha[i], "127.0.0.1:%d", base + i);
        hs[i] = addr_host(ha[i], (uint64_t)i + 1, NULL);
    }
    struct rlog_peer orders[3], other[2] = {{1, ha[0]}, {4, ha[3]}}, rogue[4];
    for (int i = 0; i < 4; i++)
        rogue[i] = (struct rlog_peer){(uint64_t)i + 1, ha[i]};
    memcpy(orders, rogue, sizeof orders);
    rlog *o[3], *x[2], *r;
    char err[256], dir[320];
    for (int i = 0; i < 3; i++) {
        struct rlog_config c;
        cfg_for(0, i, &c);
        c.address = NULL;
        c.cluster_name = "orders";
        c.peers = orders;
        ck_assert_int_eq(rlog_open_on(hs[i], &c, &o[i], err, sizeof err), 0);
    }
    for (int i = 0; i < 2; i++) {
        struct rlog_config c;
        cfg_for(0, 0, &c);
        c.id = other[i].id;
        c.address = NULL;
        snprintf(dir, sizeof dir, "%s/other%d", top, i);
        c.data_dir = dir;
        c.cluster_name = "other";
        c.peers = other;
        c.n_peers = 2;
        ck_assert_int_eq(rlog_open_on(hs[i == 0 ? 0 : 3], &c, &x[i], err, sizeof err), 0);
    }
    struct rlog_config c;
    cfg_for(0, 0, &c);
    c.id = 4;
    c.address = NULL;
    snprintf(dir, sizeof dir, "%s/rogue", top);
    c.data_dir = dir;
    c.cluster_name = "orders";
    c.peers = rogue;
    c.n_peers = 4;
    ck_assert_int_eq(rlog_open_on(hs[3], &c, &r, err, sizeof err), 0);
    struct rlog_status st;
    for (int t = 0; t < 300; t++) {
        ck_assert_int_eq(rlog_status(o[0], &st), 0);
        if (st.rejected_handshakes > 0)
            break;
        usleep(20000);
    }
    ck_assert_uint_gt(st.rejected_handshakes, 0);
    uint64_t off = UINT64_MAX;
    int rv = RLOG_ENOTLEADER;
    for (int t = 0; t < 400 && rv != 0; t++) {
        rv = rlog_append(o[t % 3], "still", 5, &off);
        if (rv != 0)
            usleep(25000);
    }
    ck_assert_int_eq(rv, 0);
    ck_assert_int_eq(rlog_status(r, &st), 0);
    ck_assert_int_ne(st.role, RLOG_ROLE_LEADER); /* no vote from the real members */
    rlog_close(r);
    for (int i = 0; i < 2; i++)
        rlog_close(x[i]);
    for (int i = 0; i < 3; i++)
        rlog_close(o[i]);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rlog_host_close(hs[i]), 0);
}
END_TEST

/* The same over mutual TLS between hosts (certificates name hosts): the
 * logs report TLS, and a host whose certificate another CA signed gets no
 * connection. */
START_TEST(shared_hosts_over_tls)
{
    char certs[300], cmd[800];
    snprintf(certs, sizeof certs, "%s/certs", top);
    snprintf(cmd, sizeof cmd,
             "examples/mkcerts.sh %s/a hosts 1 2 3 >/dev/null && "
             "examples/mkcerts.sh %s/b hosts 4 >/dev/null", certs, certs);
    ck_assert_msg(system(cmd) == 0, "%s failed (run from the source tree)", cmd);
    int base = th_free_ports(21700, 4);
    rlog_host *hs[4];
    struct rlog_peer peers[4];
    static char a[4][32];
    for (int i = 0; i < 4; i++) {
        char d[320];
        snprintf(d, sizeof d, "%s/%s", certs, i < 3 ? "a" : "b");
        snprintf(a[i], sizeof a[i], "127.0.0.1:%d", base + i);
        hs[i] = addr_host(a[i], (uint64_t)i + 1, d);
        peers[i] = (struct rlog_peer){(uint64_t)i + 1, a[i]};
    }
    for (int i = 0; i < 3; i++) {
        struct rlog_config c;
        cfg_for(0, i, &c);
        c.address = NULL;
        c.cluster_name = "orders";
        c.peers = peers;
        char err[256];
        ck_assert_int_eq(rlog_open_on(hs[i], &c, &L[0].node[i], err, sizeof err), 0);
    }
    /* The outsider claims a seat in "orders" too. */
    struct rlog_config c;
    cfg_for(0, 0, &c);
    c.id = 4;
    c.address = NULL;
    char dir[320], err[256];
    snprintf(dir, sizeof dir, "%s/outsider", top);
    c.data_dir = dir;
    c.cluster_name = "orders";
    c.peers = peers;
    c.n_peers = 4;
    rlog *outsider;
    ck_assert_int_eq(rlog_open_on(hs[3], &c, &outsider, err, sizeof err), 0);
    for (int n = 0; n < 10; n++) {
        char rec[16];
        snprintf(rec, sizeof rec, "tls-%d", n);
        uint64_t off = append_to(0, rec);
        expect_record(0, n % 3, off, rec);
    }
    for (int i = 0; i < 3; i++) {
        struct rlog_status st;
        ck_assert_int_eq(rlog_status(L[0].node[i], &st), 0);
        ck_assert_int_eq(st.tls, 1);
        ck_assert_int_eq(st.insecure, 0);
    }
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(outsider, &st), 0);
    ck_assert_int_ne(st.role, RLOG_ROLE_LEADER);
    ck_assert_uint_eq(st.commit_offset, 0); /* none of the records reached it */
    rlog_close(outsider);
    close_logs();
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(rlog_host_close(hs[i]), 0);
}
END_TEST

/* ---- a peer host speaking garbage on the shared connection ---- */

static int raw_connect(const char *addr, uint64_t claim)
{
    int port = atoi(strrchr(addr, ':') + 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    unsigned char hello[RL_HELLO_LEN];
    rl_hello_encode_flags(hello, claim, rl_hello_cluster_hash("hosts"), RL_HELLO_HOST);
    ck_assert_int_eq(write(fd, hello, sizeof hello), (ssize_t)sizeof hello);
    return fd;
}

static void record(unsigned char *h, uint32_t type, uint32_t len, const char *log)
{
    rl_put32(h, type);
    rl_put32(h + 4, len);
    rl_put64(h + 8, log ? rl_hello_cluster_hash(log) : 0x1234);
    rl_put32(h + 16, XXH32(h, 16, 0));
}

/* Reads until the host closes the connection (0) or a record header
 * arrives (its type); -1 on a timeout. */
static int next_from_host(int fd)
{
    unsigned char h[20];
    size_t got = 0;
    while (got < sizeof h) {
        ssize_t n = read(fd, h + got, sizeof h - got);
        if (n == 0)
            return 0;
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    return (int)rl_get32(h);
}

START_TEST(garbage_on_the_host_connection)
{
    int base = th_free_ports(21800, 2);
    char a[2][32];
    for (int i = 0; i < 2; i++)
        snprintf(a[i], sizeof a[i], "127.0.0.1:%d", base + i);
    HS[0] = addr_host(a[0], 1, NULL);
    struct rlog_peer peers[2] = {{1, a[0]}, {2, a[1]}};
    struct rlog_config c;
    cfg_for(0, 0, &c);
    c.address = NULL;
    c.cluster_name = "orders";
    c.peers = peers;
    c.n_peers = 2;
    char err[256];
    ck_assert_int_eq(rlog_open_on(HS[0], &c, &L[0].node[0], err, sizeof err), 0);
    unsigned char h[20 + 64];
    /* A header that fails its check: the connection goes. */
    int fd = raw_connect(a[0], 2);
    record(h, 2, 0, "orders");
    h[19] ^= 1;
    ck_assert_int_eq(write(fd, h, 20), 20);
    ck_assert_int_eq(next_from_host(fd), 0);
    close(fd);
    /* An OPEN for a log not on the host: CLOSE comes back, the connection
     * stays; DATA for it is skipped; an unknown type ends it. */
    fd = raw_connect(a[0], 2);
    record(h, 1, 0, "no-such-log");
    ck_assert_int_eq(write(fd, h, 20), 20);
    ck_assert_int_eq(next_from_host(fd), 3);
    record(h, 2, 64, "no-such-log");
    memset(h + 20, 0xAB, 64);
    ck_assert_int_eq(write(fd, h, 84), 84);
    /* The log's channel, then garbage in it: the log's own checks refuse
     * the frame and close the channel (CLOSE), the connection stays. */
    record(h, 1, 0, "orders");
    ck_assert_int_eq(write(fd, h, 20), 20);
    record(h, 2, 64, "orders");
    memset(h + 20, 0xCD, 64);
    ck_assert_int_eq(write(fd, h, 84), 84);
    ck_assert_int_eq(next_from_host(fd), 3);
    record(h, 9, 0, "orders");
    ck_assert_int_eq(write(fd, h, 20), 20);
    ck_assert_int_eq(next_from_host(fd), 0);
    close(fd);
    /* A record longer than the cap. */
    fd = raw_connect(a[0], 2);
    record(h, 2, (64u << 20) + 1, "orders");
    ck_assert_int_eq(write(fd, h, 20), 20);
    ck_assert_int_eq(next_from_host(fd), 0);
    close(fd);
    /* A claimed id that is in no log here: no connection at all. */
    fd = raw_connect(a[0], 7);
    ck_assert_int_eq(next_from_host(fd), 0);
    close(fd);
    /* The log is unhurt. */
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(L[0].node[0], &st), 0);
    ck_assert_int_eq(st.fatal, 0);
    close_logs();
    ck_assert_int_eq(rlog_host_close(HS[0]), 0);
    HS[0] = NULL;
}
END_TEST

START_TEST(bad_arguments)
{
    struct rlog_host_config hc;
    rlog_host_config_init(&hc);
    rlog_host *h = (rlog_host *)1;
    char err[128] = "";
    hc.threads = 0;
    ck_assert_int_eq(rlog_host_open(&hc, &h, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_ptr_nonnull(strstr(err, "threads"));
    hc.threads = 65;
    ck_assert_int_eq(rlog_host_open(&hc, &h, err, sizeof err), RLOG_EINVAL);
    hc.threads = 1;
    hc.cache_bytes = 0;
    ck_assert_int_eq(rlog_host_open(&hc, &h, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "cache_bytes"));
    hc.cache_bytes = 1u << 20;
    ck_assert_int_eq(rlog_host_open(NULL, &h, err, sizeof err), RLOG_EINVAL);
    hc.threads = 1;
    ck_assert_int_eq(rlog_host_open(&hc, NULL, NULL, 0), RLOG_EINVAL);
    struct rlog_config c;
    cfg_for(0, 0, &c);
    rlog *log = (rlog *)1;
    ck_assert_int_eq(rlog_open_on(NULL, &c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_null(log);
    ck_assert_int_eq(rlog_host_close(NULL), RLOG_EINVAL);
    rlog_host_config_init(NULL); /* no crash */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hosts");
    TCase *tc = tcase_create("hosts");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, two_logs_on_two_threads);
    tcase_add_test(tc, reopen_on_a_new_host);
    tcase_add_test(tc, callback_cannot_block_on_its_thread);
    tcase_add_test(tc, failed_open_leaves_host_usable);
    tcase_add_test(tc, failed_open_on_own_thread);
    tcase_add_test(tc, host_cache_budget);
    tcase_add_test(tc, store_fault_fails_only_its_log);
    tcase_add_test(tc, one_connection_per_peer_host);
    tcase_add_test(tc, idle_logs_go_quiet);
    tcase_add_test(tc, shared_host_bad_config);
    tcase_add_test(tc, host_speaks_only_for_its_logs);
    tcase_add_test(tc, shared_hosts_over_tls);
    tcase_add_test(tc, garbage_on_the_host_connection);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
