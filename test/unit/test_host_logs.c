/* A host's data directory (rlog_host_config.data_dir): logs created, opened
 * by name, listed and deleted at run time, each its own Raft group in
 * logs/NAME/. Three hosts with an address on loopback create two logs,
 * append, close, reopen everything by name and read it back; the errors
 * of each call; whose the directory is; a create or delete cut short by a
 * crash; an existing log never started as a new Raft group at open. */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/ports.h"
#include "liblog.h"

static char top[256];
static char addrs[3][32], hdirs[3][400];
static struct rlog_peer hosts[3];
static rlog_host *H[3];

static void quiet(void *arg, int level, const char *line)
{
    if (getenv("RLOG_TEST_VERBOSE") || level >= 3)
        fprintf(stderr, "%s: %s\n", arg ? (const char *)arg : "host", line);
}

static int open_host_at(int i, uint64_t id, const char *cluster, rlog_host **out, char *err,
                        size_t errlen)
{
    struct rlog_host_config hc;
    rlog_host_config_init(&hc);
    hc.address = addrs[i];
    hc.id = id;
    hc.cluster_name = cluster;
    hc.data_dir = hdirs[i];
    hc.log_fn = quiet;
    return rlog_host_open(&hc, out, err, errlen);
}

static void open_host(int i)
{
    char err[512] = "";
    int rv = open_host_at(i, (uint64_t)i + 1, "hosts", &H[i], err, sizeof err);
    ck_assert_msg(rv == 0, "host %d: %s: %s", i + 1, rlog_errname(rv), err);
}

static void close_host(int i)
{
    ck_assert_int_eq(rlog_host_close(H[i]), 0);
    H[i] = NULL;
}

static void log_cfg(int i, const char *name, struct rlog_config *c)
{
    rlog_config_init(c);
    c->id = (uint64_t)i + 1;
    c->cluster_name = name;
    c->peers = hosts;
    c->n_peers = 3;
    c->election_timeout_ms = 400;
    c->heartbeat_timeout_ms = 50;
    c->segment_size = 1u << 20;
    c->batch_max_bytes = 256u << 10;
    c->max_record_size = 64u << 10;
    c->log_fn = quiet;
    c->log_arg = (void *)name;
}

static rlog *create(int i, const char *name)
{
    struct rlog_config c;
    log_cfg(i, name, &c);
    char err[512] = "";
    rlog *log = NULL;
    int rv = rlog_create_on(H[i], &c, &log, err, sizeof err);
    ck_assert_msg(rv == 0, "create %s on host %d: %s: %s", name, i + 1, rlog_errname(rv), err);
    return log;
}

static rlog *open_named(int i, const char *name)
{
    struct rlog_config c;
    log_cfg(i, name, &c);
    char err[512] = "";
    rlog *log = NULL;
    int rv = rlog_open_on(H[i], &c, &log, err, sizeof err);
    ck_assert_msg(rv == 0, "open %s on host %d: %s: %s", name, i + 1, rlog_errname(rv), err);
    return log;
}

/* Appends rec on whichever of the three is the leader (forwarded from a
 * follower otherwise), retrying while a leader is being elected. */
static uint64_t append_any(rlog *const logs[3], const char *rec)
{
    for (int tries = 0; tries < 300; tries++) {
        uint64_t off = 0;
        int rv = rlog_append(logs[tries % 3], rec, strlen(rec), &off);
        if (rv == 0)
            return off;
        usleep(20 * 1000);
    }
    ck_abort_msg("no append of %s in 6 s", rec);
    return 0;
}

static void expect_record(rlog *log, uint64_t off, const char *want)
{
    for (int tries = 0; tries < 250; tries++) {
        void *p = NULL;
        size_t len = 0;
        int rv = rlog_read(log, off, &p, &len);
        if (rv == 0) {
            ck_assert_uint_eq(len, strlen(want));
            ck_assert_mem_eq(p, want, len);
            rlog_free(p);
            return;
        }
        ck_assert_int_eq(rv, RLOG_ENOTFOUND);
        usleep(20 * 1000);
    }
    ck_abort_msg("offset %llu (%s) not readable in 5 s", (unsigned long long)off, want);
}

struct names {
    int n;
    char name[8][64];
};

static int collect(void *arg, const char *name)
{
    struct names *ns = arg;
    if (ns->n < 8)
        snprintf(ns->name[ns->n++], sizeof ns->name[0], "%s", name);
    return 0;
}

static struct names list(int i)
{
    struct names ns = {0};
    ck_assert_int_eq(rlog_host_list_logs(H[i], collect, &ns), 0);
    return ns;
}

static bool path_exists(const char *fmt, const char *a, const char *b)
{
    char path[1200];
    if (snprintf(path, sizeof path, fmt, a, b) >= (int)sizeof path)
        ck_abort_msg("path too long");
    struct stat st;
    return stat(path, &st) == 0;
}

static void setup(void)
{
    snprintf(top, sizeof top, "/tmp/rlog-hostlogs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(top));
    int base = th_free_ports(23000, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", base + i);
        snprintf(hdirs[i], sizeof hdirs[i], "%s/h%d", top, i + 1);
        hosts[i] = (struct rlog_peer){(uint64_t)i + 1, addrs[i]};
        H[i] = NULL;
    }
}

static void teardown(void)
{
    for (int i = 0; i < 3; i++)
        if (H[i])
            rlog_host_close(H[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", top);
}

static unsigned count(const char *text, const char *what)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

/* rlog_metrics_text_many of two logs of one host: each family once, with
 * both logs' samples, told apart by their log label. */
static void expect_merged_metrics(rlog *a, rlog *b)
{
    char *one = NULL, *both = NULL;
    size_t one_len = 0, both_len = 0;
    ck_assert_int_eq(rlog_metrics_text(a, &one, &one_len), 0);
    rlog *const logs[2] = {a, b};
    ck_assert_int_eq(rlog_metrics_text_many(logs, 2, &both, &both_len), 0);
    ck_assert_uint_eq(strlen(both), both_len);
    ck_assert_uint_eq(count(both, "# HELP "), count(one, "# HELP "));
    ck_assert_uint_eq(count(both, "# TYPE "), count(one, "# TYPE "));
    ck_assert_uint_eq(count(both, "# HELP rlog_term "), 1);
    ck_assert_ptr_nonnull(strstr(both, "rlog_term{node=\"1\",log=\"orders-0\"} "));
    ck_assert_ptr_nonnull(strstr(both, "rlog_term{node=\"1\",log=\"orders-1\"} "));
    /* The family's lines stay together: the HELP, the TYPE, both samples. */
    const char *help = strstr(both, "# HELP rlog_term ");
    const char *next = strstr(help + 1, "# HELP ");
    const char *s0 = strstr(both, "rlog_term{node=\"1\",log=\"orders-0\"}");
    const char *s1 = strstr(both, "rlog_term{node=\"1\",log=\"orders-1\"}");
    ck_assert(s0 > help && s1 > s0 && (!next || s1 < next));
    rlog_free(one);
    rlog_free(both);
    ck_assert_int_eq(rlog_metrics_text_many(NULL, 1, &both, &both_len), RLOG_EINVAL);
    ck_assert_int_eq(rlog_metrics_text_many(logs, 2, NULL, &both_len), RLOG_EINVAL);
    ck_assert_int_eq(rlog_metrics_text_many(NULL, 0, &both, &both_len), 0);
    ck_assert_uint_eq(both_len, 0);
    rlog_free(both);
}

START_TEST(create_reopen_by_name_delete)
{
    static const char *names[2] = {"orders-0", "orders-1"};
    rlog *logs[2][3];
    for (int i = 0; i < 3; i++)
        open_host(i);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++)
            logs[k][i] = create(i, names[k]);
    /* Two logs, two Raft groups: each numbers its records from 0. */
    ck_assert_uint_eq(append_any(logs[0], "zero-a"), 0);
    ck_assert_uint_eq(append_any(logs[1], "one-a"), 0);
    ck_assert_uint_eq(append_any(logs[0], "zero-b"), 1);
    for (int i = 0; i < 3; i++) {
        struct names ns = list(i);
        ck_assert_int_eq(ns.n, 2);
        ck_assert_str_eq(ns.name[0], "orders-0");
        ck_assert_str_eq(ns.name[1], "orders-1");
    }
    expect_merged_metrics(logs[0][0], logs[1][0]);
    char err[512] = "";
    ck_assert_int_eq(rlog_host_delete_log(H[0], "orders-0", err, sizeof err), RLOG_EBUSY);
    rlog *dup = NULL;
    ck_assert_int_eq(rlog_create_on(H[0], &(struct rlog_config){0}, &dup, err, sizeof err),
                     RLOG_EINVAL); /* no name */
    struct rlog_config c;
    log_cfg(0, "orders-0", &c);
    ck_assert_int_eq(rlog_create_on(H[0], &c, &dup, err, sizeof err), RLOG_EEXISTS);

    /* Everything closed, then opened again by name on new hosts. */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(rlog_close(logs[k][i]), 0);
    ck_assert_int_eq(rlog_create_on(H[0], &c, &dup, err, sizeof err), RLOG_EEXISTS);
    ck_assert_ptr_nonnull(strstr(err, "already exists"));
    for (int i = 0; i < 3; i++) {
        close_host(i);
        open_host(i);
        for (int k = 0; k < 2; k++)
            logs[k][i] = open_named(i, names[k]);
    }
    for (int i = 0; i < 3; i++) {
        expect_record(logs[0][i], 0, "zero-a");
        expect_record(logs[0][i], 1, "zero-b");
        expect_record(logs[1][i], 0, "one-a");
    }
    ck_assert_uint_eq(append_any(logs[1], "one-b"), 1);

    /* Deleted everywhere: gone from the list and the disk; the name can be
     * created again, as a new log. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(rlog_close(logs[0][i]), 0);
        ck_assert_int_eq(rlog_host_delete_log(H[i], "orders-0", err, sizeof err), 0);
        ck_assert(!path_exists("%s/logs/%s", hdirs[i], "orders-0"));
        struct names ns = list(i);
        ck_assert_int_eq(ns.n, 1);
        ck_assert_str_eq(ns.name[0], "orders-1");
    }
    ck_assert_int_eq(rlog_host_delete_log(H[0], "orders-0", err, sizeof err), RLOG_ENOTFOUND);
    for (int i = 0; i < 3; i++)
        logs[0][i] = create(i, "orders-0");
    ck_assert_uint_eq(append_any(logs[0], "again"), 0);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(rlog_close(logs[k][i]), 0);
}
END_TEST

START_TEST(bad_calls)
{
    char err[512] = "";
    rlog *log = NULL;
    struct rlog_config c;
    /* A host without a data directory has no logs by name. */
    struct rlog_host_config hc;
    rlog_host_config_init(&hc);
    rlog_host *plain = NULL;
    ck_assert_int_eq(rlog_host_open(&hc, &plain, err, sizeof err), 0);
    log_cfg(0, "x", &c);
    ck_assert_int_eq(rlog_create_on(plain, &c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "data_dir"));
    ck_assert_int_eq(rlog_host_delete_log(plain, "x", err, sizeof err), RLOG_EINVAL);
    ck_assert_int_eq(rlog_host_list_logs(plain, collect, &(struct names){0}), RLOG_EINVAL);
    ck_assert_int_eq(rlog_host_close(plain), 0);

    open_host(0);
    static const char *bad[] = {"", ".hidden", "a/b", "..", "sp ace", "tab\t",
                                "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        log_cfg(0, bad[b], &c);
        ck_assert_int_eq(rlog_create_on(H[0], &c, &log, err, sizeof err), RLOG_EINVAL);
        ck_assert_ptr_null(log);
        ck_assert_int_eq(rlog_open_on(H[0], &c, &log, err, sizeof err), RLOG_EINVAL);
        ck_assert_int_eq(rlog_host_delete_log(H[0], bad[b], err, sizeof err), RLOG_EINVAL);
    }
    log_cfg(0, NULL, &c);
    ck_assert_int_eq(rlog_create_on(H[0], &c, &log, err, sizeof err), RLOG_EINVAL);
    log_cfg(0, "ok", &c);
    c.data_dir = top;
    ck_assert_int_eq(rlog_create_on(H[0], &c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "data_dir must be NULL"));
    log_cfg(0, "missing", &c);
    ck_assert_int_eq(rlog_open_on(H[0], &c, &log, err, sizeof err), RLOG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "no log missing"));
    ck_assert_int_eq(rlog_host_delete_log(H[0], "missing", err, sizeof err), RLOG_ENOTFOUND);
    ck_assert_int_eq(rlog_host_list_logs(H[0], NULL, NULL), RLOG_EINVAL);
    ck_assert_int_eq(rlog_host_list_logs(NULL, collect, NULL), RLOG_EINVAL);
    ck_assert_int_eq(rlog_create_on(NULL, &c, &log, err, sizeof err), RLOG_EINVAL);
    ck_assert_int_eq(rlog_host_delete_log(NULL, "x", err, sizeof err), RLOG_EINVAL);
    /* A create that fails (here: this host is not among the peers) leaves
     * nothing behind. */
    log_cfg(0, "lonely", &c);
    c.peers = &hosts[1];
    c.n_peers = 2;
    ck_assert_int_ne(rlog_create_on(H[0], &c, &log, err, sizeof err), 0);
    ck_assert(!path_exists("%s/logs/%s", hdirs[0], "lonely"));
    ck_assert(!path_exists("%s/logs/.creating.%s", hdirs[0], "lonely"));
    ck_assert_int_eq(list(0).n, 0);
}
END_TEST

START_TEST(whose_directory)
{
    char err[512] = "";
    open_host(0);
    rlog_host *other = NULL;
    /* One host per directory, in this process too. */
    ck_assert_int_eq(open_host_at(0, 1, "hosts", &other, err, sizeof err), RLOG_EBUSY);
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    close_host(0);
    /* Another host's: refused, and the directory left as it was. */
    ck_assert_int_eq(open_host_at(0, 2, "hosts", &other, err, sizeof err), RLOG_EIDENTITY);
    ck_assert_ptr_nonnull(strstr(err, "belongs to another host"));
    ck_assert_int_eq(open_host_at(0, 1, "elsewhere", &other, err, sizeof err), RLOG_EIDENTITY);
    char longname[400];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(open_host_at(0, 1, longname, &other, err, sizeof err), RLOG_EINVAL);
    ck_assert_int_eq(open_host_at(0, 1, "two words", &other, err, sizeof err), RLOG_EINVAL);
    open_host(0);
    close_host(0);
    /* A log's own data directory is not a host's. */
    struct rlog_config c;
    rlog_config_init(&c);
    c.id = 1;
    c.address = addrs[1];
    char dir[300];
    snprintf(dir, sizeof dir, "%s/plain", top);
    c.data_dir = dir;
    c.peers = &(struct rlog_peer){1, addrs[1]};
    c.n_peers = 1;
    c.log_fn = quiet;
    rlog *log = NULL;
    ck_assert_int_eq(rlog_open(&c, &log, err, sizeof err), 0);
    ck_assert_int_eq(rlog_close(log), 0);
    snprintf(hdirs[0], sizeof hdirs[0], "%s", dir);
    ck_assert_int_eq(open_host_at(0, 1, "hosts", &other, err, sizeof err), RLOG_EFOREIGN);
    ck_assert_ptr_nonnull(strstr(err, "a log's data directory"));
}
END_TEST

/* What a crash leaves: a create cut short is not opened (its store may be
 * empty, or half bootstrapped) but finished by creating again; a deletion
 * cut short is finished when the host opens. */
START_TEST(cut_short)
{
    char err[512] = "", path[1200];
    open_host(0);
    close_host(0);
    snprintf(path, sizeof path, "%s/logs/.creating.half", hdirs[0]);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/logs/half", hdirs[0]);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/logs/.deleting.old.123", hdirs[0]);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/logs/.deleting.old.123/segment", hdirs[0]);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fclose(f);

    open_host(0);
    ck_assert(!path_exists("%s/logs/%s", hdirs[0], ".deleting.old.123"));
    /* A resumed create that fails keeps what an earlier try may have made
     * (a store that voted), marked, for the next try. */
    struct rlog_config bad;
    log_cfg(0, "half", &bad);
    bad.peers = &hosts[1]; /* this host not among them: refused */
    bad.n_peers = 1;
    rlog *none = NULL;
    ck_assert_int_eq(rlog_create_on(H[0], &bad, &none, err, sizeof err), RLOG_EINVAL);
    ck_assert(path_exists("%s/logs/%s", hdirs[0], "half"));
    ck_assert(path_exists("%s/logs/.creating.%s", hdirs[0], "half"));
    struct names ns = list(0);
    ck_assert_int_eq(ns.n, 1);
    ck_assert_str_eq(ns.name[0], "half");
    struct rlog_config c;
    log_cfg(0, "half", &c);
    c.peers = &hosts[0];
    c.n_peers = 1;
    rlog *log = NULL;
    ck_assert_int_eq(rlog_open_on(H[0], &c, &log, err, sizeof err), RLOG_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err, "did not finish"));
    ck_assert_int_eq(rlog_create_on(H[0], &c, &log, err, sizeof err), 0);
    ck_assert(!path_exists("%s/logs/.creating.%s", hdirs[0], "half"));
    uint64_t off = 1;
    ck_assert_int_eq(rlog_append(log, "r", 1, &off), 0); /* a one-host log: it leads */
    ck_assert_uint_eq(off, 0);
    ck_assert_int_eq(rlog_close(log), 0);
    /* A create cut short can also be deleted. */
    snprintf(path, sizeof path, "%s/logs/.creating.gone", hdirs[0]);
    ck_assert_ptr_nonnull(f = fopen(path, "w"));
    fclose(f);
    ck_assert_int_eq(rlog_host_delete_log(H[0], "gone", err, sizeof err), 0);
    ck_assert(!path_exists("%s/logs/.creating.%s", hdirs[0], "gone"));
}
END_TEST

/* A log created to join a running group (join 1) and opened again before
 * it was added must still wait: opening by name never starts a new group
 * from the peers given, which are only where the hosts are. */
START_TEST(open_never_bootstraps)
{
    char err[512] = "";
    open_host(0);
    struct rlog_config c;
    log_cfg(0, "joiner", &c);
    c.peers = &hosts[0];
    c.n_peers = 1;
    c.join = 1;
    rlog *log = NULL;
    ck_assert_int_eq(rlog_create_on(H[0], &c, &log, err, sizeof err), 0);
    ck_assert_int_eq(rlog_close(log), 0);
    c.join = 0; /* as a host that reopens all its logs alike would */
    ck_assert_int_eq(rlog_open_on(H[0], &c, &log, err, sizeof err), 0);
    usleep(1500 * 1000); /* a one-member group would have elected itself */
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(log, &st), 0);
    ck_assert_int_ne(st.role, RLOG_ROLE_LEADER);
    ck_assert_uint_eq(st.last_index, 0);
    ck_assert_int_eq(rlog_close(log), 0);
}
END_TEST

/* The leader of a log, as its member i sees it (0: none known). */
static uint64_t leader_of(rlog *log)
{
    struct rlog_status st;
    ck_assert_int_eq(rlog_status(log, &st), 0);
    return st.leader_id;
}

/* Waits up to 15 s for every log's leader to be want[k] (as every open
 * member sees it). */
static void expect_leaders(rlog *logs[][3], int n, const uint64_t *want, const char *when)
{
    for (int tries = 0; tries < 300; tries++) {
        bool all = true;
        for (int k = 0; k < n && all; k++)
            for (int i = 0; i < 3 && all; i++)
                all = !logs[k][i] || leader_of(logs[k][i]) == want[k];
        if (all)
            return;
        usleep(50 * 1000);
    }
    for (int k = 0; k < n; k++)
        fprintf(stderr, "log p%d: leader %llu, wanted %llu\n", k,
                (unsigned long long)leader_of(logs[k][1]), (unsigned long long)want[k]);
    ck_abort_msg("leaders not where they were wanted in 15 s (%s)", when);
}

/* balance_leaders: each log's lead goes to its preferred voter (its name's
 * jump hash over its voters in id order, as rlog_partition picks), away
 * from a host while it is down and back once it returns. */
START_TEST(leaders_spread_over_hosts)
{
    enum { N = 6 };
    rlog *logs[N][3];
    char names[N][16];
    uint64_t preferred[N];
    bool led[4] = {false};
    for (int i = 0; i < 3; i++)
        open_host(i);
    for (int k = 0; k < N; k++) {
        snprintf(names[k], sizeof names[k], "p%d", k);
        unsigned idx;
        ck_assert_int_eq(rlog_partition(names[k], strlen(names[k]), 3, &idx), 0);
        preferred[k] = hosts[idx].id;
        led[preferred[k]] = true;
        for (int i = 0; i < 3; i++) {
            struct rlog_config c;
            log_cfg(i, names[k], &c);
            c.balance_leaders = 1;
            char err[512] = "";
            ck_assert_int_eq(rlog_create_on(H[i], &c, &logs[k][i], err, sizeof err), 0);
        }
    }
    ck_assert_msg(led[1] + led[2] + led[3] >= 2, "the names chosen all prefer one host");
    expect_leaders(logs, N, preferred, "after creating");
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(rlog_metrics_text(logs[0][0], &text, &len), 0);
    char line[128];
    snprintf(line, sizeof line, "rlog_preferred_leader{node=\"1\",log=\"p0\"} %llu",
             (unsigned long long)preferred[0]);
    ck_assert_msg(strstr(text, line), "no '%s' in the metrics", line);
    rlog_free(text);

    /* Host 1 down: its logs lead elsewhere; back: they return to it. */
    uint64_t without[N];
    for (int k = 0; k < N; k++) {
        ck_assert_int_eq(rlog_close(logs[k][0]), 0);
        logs[k][0] = NULL;
    }
    for (int tries = 0; tries < 300; tries++) {
        bool moved = true;
        for (int k = 0; k < N; k++)
            moved = moved && (without[k] = leader_of(logs[k][1])) > 1;
        if (moved)
            break;
        usleep(50 * 1000);
    }
    for (int k = 0; k < N; k++)
        ck_assert_msg(without[k] > 1, "log p%d has no leader without host 1", k);
    for (int k = 0; k < N; k++)
        logs[k][0] = open_named(0, names[k]);
    expect_leaders(logs, N, preferred, "after host 1 came back");
    for (int k = 0; k < N; k++)
        for (int i = 0; i < 3; i++)
            ck_assert_int_eq(rlog_close(logs[k][i]), 0);
}
END_TEST

struct appender {
    rlog *log;
    volatile int stop;
    unsigned ok, not_leader, in_doubt, other;
    int other_code;
    char why[300];
};

static void *append_loop(void *arg)
{
    struct appender *a = arg;
    while (!a->stop) {
        int rv = rlog_append(a->log, "x", 1, NULL);
        if (rv == 0)
            a->ok++;
        else if (rv == RLOG_ENOTLEADER && a->not_leader++ == 0)
            snprintf(a->why, sizeof a->why, "%s", rlog_errmsg(a->log));
        else if (rv == RLOG_ENOTLEADER)
            continue;
        else if (rv == RLOG_EINDOUBT)
            a->in_doubt++;
        else
            a->other++, a->other_code = rv;
    }
    return NULL;
}

/* libraft refuses proposals while it hands the lead over: appends made
 * meanwhile wait for the hand-over, then go to the new leader; none is
 * refused for it (each append below is made on the same node, forwarded
 * when it is not the leader). */
START_TEST(appends_wait_out_a_hand_over)
{
    rlog *logs[3];
    for (int i = 0; i < 3; i++) {
        open_host(i);
        logs[i] = create(i, "moves");
    }
    ck_assert_uint_eq(append_any(logs, "first"), 0);
    struct appender a = {.log = logs[0]};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, append_loop, &a), 0);
    unsigned moved = 0;
    for (int round = 0; round < 12; round++) {
        usleep(100 * 1000);
        uint64_t l = leader_of(logs[0]);
        if (l == 0)
            continue;
        uint64_t to = l % 3 + 1;
        moved += rlog_transfer_leadership(logs[l - 1], to) == 0;
    }
    a.stop = 1;
    pthread_join(t, NULL);
    ck_assert_msg(moved >= 6, "only %u of 12 hand-overs completed", moved);
    ck_assert_msg(a.ok > 100, "only %u appends in 1.2 s", a.ok);
    ck_assert_msg(a.not_leader == 0 && a.other == 0,
                  "%u appends refused as not the leader (%s), %u failed otherwise (%s), %u in "
                  "doubt, %u ok, over %u hand-overs", a.not_leader, a.why, a.other,
                  a.other ? rlog_errname(a.other_code) : "-", a.in_doubt, a.ok, moved);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(rlog_close(logs[i]), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("host_logs");
    TCase *tc = tcase_create("host_logs");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, create_reopen_by_name_delete);
    tcase_add_test(tc, bad_calls);
    tcase_add_test(tc, whose_directory);
    tcase_add_test(tc, cut_short);
    tcase_add_test(tc, open_never_bootstraps);
    tcase_add_test(tc, leaders_spread_over_hosts);
    tcase_add_test(tc, appends_wait_out_a_hand_over);
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
