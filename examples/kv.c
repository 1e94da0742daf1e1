/*
 * kv — a replicated key-value store on liblog's state-machine API: every
 * node applies "set"/"del" commands from the log to an in-memory table,
 * snapshots it every N records (and on demand), and after a restart
 * restores its newest snapshot and applies only what follows.
 *
 *   kv [--join] ID PEERS DATA_DIR [SNAPSHOT_EVERY]
 *     PEERS: 1=127.0.0.1:7001,2=127.0.0.1:7002,...
 *     --join: a node being added to a running cluster (rlog_config.join, as
 *     `rlogctl node --join`): PEERS lists the cluster including this node;
 *     it does not bootstrap and waits for `add` on a member.
 *
 * Commands on stdin, one per line; one answer per line on stdout:
 *   set K V    -> ok OFFSET            (rlog_apply: V stored)
 *   del K      -> ok OFFSET | missing OFFSET   (apply's result: was it there)
 *   get K      -> value V | missing    (linearizable: rlog_barrier, then rlog_sm_wait)
 *   digest     -> digest HEX KEYS APPLIED   (the whole table, after a barrier)
 *   snapshot   -> snapshot NEXT_OFFSET
 *   status     -> status APPLIED SNAPSHOT_OFFSET TAKEN NEEDS_SNAPSHOT INSTALLED
 *                        FIRST_OFFSET
 *                 (rlog_status: applied_offset, snapshot_offset,
 *                 snapshots_taken, sm_needs_snapshot, snapshots_installed
 *                 from a peer, first_offset; never waits)
 *   leader     -> leader ID            (the leader this node knows; 0: none)
 *   trim OFF   -> ok                   (rlog_trim: records before OFF dropped on
 *                                       every node; on the leader)
 *   add ID ADDRESS -> ok               (rlog_add_node: a node started with --join;
 *                                       on the leader)
 *   quit       (or end of input): closes the node
 * trim and add on a follower answer "error RLOG_ENOTLEADER: ..." naming the
 * leader (ask it instead); while no leader is known they are retried.
 * A failure answers "error NAME: message".
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "liblog.h"

#define BUCKETS 4096u

struct entry {
    char *key, *val;
    struct entry *next;
};

/* The state: touched by the apply thread, read by main under mu. */
struct table {
    pthread_mutex_t mu;
    struct entry *b[BUCKETS];
    uint64_t keys;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static struct entry **find(struct table *t, const char *key)
{
    struct entry **pp = &t->b[hash(key) % BUCKETS];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void put(struct table *t, const char *key, const char *val)
{
    struct entry **pp = find(t, key);
    if (*pp) {
        free((*pp)->val);
        (*pp)->val = strdup(val);
        return;
    }
    struct entry *e = malloc(sizeof *e);
    *e = (struct entry){.key = strdup(key), .val = strdup(val)};
    *pp = e;
    t->keys++;
}

static bool del(struct table *t, const char *key)
{
    struct entry **pp = find(t, key);
    if (!*pp)
        return false;
    struct entry *e = *pp;
    *pp = e->next;
    free(e->key);
    free(e->val);
    free(e);
    t->keys--;
    return true;
}

static void clear(struct table *t)
{
    for (unsigned i = 0; i < BUCKETS; i++)
        while (t->b[i])
            del(t, t->b[i]->key);
}

/* ---- the state machine ----------------------------------------------------- */

/* A command record: 'S' key '\0' value, or 'D' key. */
static int64_t kv_apply(void *arg, uint64_t offset, const void *rec, size_t len)
{
    (void)offset;
    struct table *t = arg;
    const char *r = rec;
    if (len < 2 || memchr(r, 0, len) == NULL)
        return -1; /* not a command of ours: applied as nothing */
    int64_t res = -1;
    pthread_mutex_lock(&t->mu);
    if (r[0] == 'S' && strlen(r + 1) + 2 < len) {
        put(t, r + 1, r + strlen(r + 1) + 2);
        res = 1;
    } else if (r[0] == 'D') {
        res = del(t, r + 1);
    }
    pthread_mutex_unlock(&t->mu);
    return res;
}

/* The capture: a serialized copy (short next to persisting it). */
struct capture {
    char *buf;
    size_t len, cap;
};

static void cap_add(struct capture *c, const char *s)
{
    size_t n = strlen(s) + 1;
    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

static void *kv_snapshot(void *arg, uint64_t next_offset)
{
    (void)next_offset;
    struct table *t = arg;
    struct capture *c = calloc(1, sizeof *c);
    pthread_mutex_lock(&t->mu);
    for (unsigned i = 0; i < BUCKETS; i++)
        for (struct entry *e = t->b[i]; e; e = e->next) {
            cap_add(c, e->key);
            cap_add(c, e->val);
        }
    pthread_mutex_unlock(&t->mu);
    return c;
}

static int kv_persist(void *arg, void *snap, rlog_sm_writer *w)
{
    (void)arg;
    struct capture *c = snap;
    return rlog_sm_write(w, c->buf, c->len);
}

static void kv_release(void *arg, void *snap)
{
    (void)arg;
    struct capture *c = snap;
    free(c->buf);
    free(c);
}

static int kv_restore(void *arg, uint64_t next_offset, rlog_sm_reader *r)
{
    (void)next_offset;
    struct table *t = arg;
    struct capture c = {0};
    char buf[65536];
    size_t got;
    int rv;
    while ((rv = rlog_sm_read(r, buf, sizeof buf, &got)) == 0 && got > 0) {
        if (c.len + got > c.cap) {
            c.cap = (c.len + got) * 2;
            c.buf = realloc(c.buf, c.cap);
        }
        memcpy(c.buf + c.len, buf, got);
        c.len += got;
    }
    pthread_mutex_lock(&t->mu);
    clear(t);
    for (size_t at = 0; rv == 0 && at < c.len;) {
        const char *k = c.buf + at;
        size_t kl = strnlen(k, c.len - at);
        if (at + kl + 1 >= c.len) {
            rv = -1; /* a key without its value */
            break;
        }
        const char *v = k + kl + 1;
        size_t vl = strnlen(v, c.len - at - kl - 1);
        put(t, k, v);
        at += kl + 1 + vl + 1;
    }
    pthread_mutex_unlock(&t->mu);
    free(c.buf);
    return rv;
}

/* ---- the shell side --------------------------------------------------------- */

static void fail(const char *what, int rv, rlog *log)
{
    const char *msg = rlog_errmsg(log);
    size_t n = strlen(what);
    if (!strncmp(msg, what, n) && !strncmp(msg + n, ": ", 2))
        msg += n + 2; /* rlog_trim's messages name it already */
    printf("error %s: %s: %s\n", rlog_errname(rv), what, msg);
}

/* RLOG_ENOTLEADER means nothing was done (no leader yet, or one being
 * elected): call again for a while, as a client would. */
#define RETRY_LEADER(rv, call)                                                 \
    for (int tries_ = 0; tries_ < 100; tries_++) {                            \
        if (((rv) = (call)) != RLOG_ENOTLEADER)                                \
            break;                                                             \
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);               \
    }

/* For trim and add, which only the leader takes: RLOG_ENOTLEADER is
 * retried only while no leader is known (an election); once another node
 * leads, the caller is told so at once (errmsg names it). */
#define RETRY_ELECTION(log, rv, call)                                          \
    for (int tries_ = 0; tries_ < 100; tries_++) {                            \
        struct rlog_status st_;                                                \
        if (((rv) = (call)) != RLOG_ENOTLEADER || rlog_status((log), &st_) != 0 \
            || st_.leader_id != 0)                                             \
            break;                                                             \
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);               \
    }

/* A whole decimal number, or false. */
static bool number(const char *s, uint64_t *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return false;
    *out = strtoull(s, &end, 10);
    return *end == 0;
}

/* Every record committed before the call is applied here. */
static int read_point(rlog *log)
{
    uint64_t end = 0;
    int rv;
    RETRY_LEADER(rv, rlog_barrier(log, &end));
    return rv ? rv : rlog_sm_wait(log, end, 20000);
}

static void command(rlog *log, struct table *t, char *line)
{
    char *cmd = strtok(line, " \t\n"), *key = strtok(NULL, " \t\n"), *val = strtok(NULL, "\n");
    char rec[4096];
    uint64_t off = 0;
    int64_t res = 0;
    int rv;
    if (!cmd)
        return;
    if ((!strcmp(cmd, "set") && key && val) || (!strcmp(cmd, "del") && key)) {
        int n = snprintf(rec, sizeof rec, "%c%s%c%s", cmd[0] == 's' ? 'S' : 'D', key, 0,
                         cmd[0] == 's' ? val : "");
        if (n < 0 || (size_t)n >= sizeof rec) {
            printf("error RLOG_ETOOBIG: key and value over %zu bytes\n", sizeof rec);
            return;
        }
        RETRY_LEADER(rv, rlog_apply(log, rec, (size_t)n + 1, &off, &res));
        if (rv)
            fail(cmd, rv, log);
        else
            printf("%s %" PRIu64 "\n", res == 0 ? "missing" : "ok", off);
    } else if (!strcmp(cmd, "get") && key) {
        if ((rv = read_point(log)) != 0) {
            fail("get", rv, log);
            return;
        }
        pthread_mutex_lock(&t->mu);
        struct entry *e = *find(t, key);
        if (e)
            printf("value %s\n", e->val);
        else
            printf("missing\n");
        pthread_mutex_unlock(&t->mu);
    } else if (!strcmp(cmd, "digest")) {
        if ((rv = read_point(log)) != 0) {
            fail("digest", rv, log);
            return;
        }
        struct rlog_status st;
        rlog_status(log, &st);
        /* Order-independent: a sum of each pair's hash. */
        uint64_t d = 0;
        pthread_mutex_lock(&t->mu);
        for (unsigned i = 0; i < BUCKETS; i++)
            for (struct entry *e = t->b[i]; e; e = e->next)
                d += hash(e->key) * 31 + hash(e->val);
        printf("digest %016" PRIx64 " %" PRIu64 " %" PRIu64 "\n", d, t->keys, st.applied_offset);
        pthread_mutex_unlock(&t->mu);
    } else if (!strcmp(cmd, "snapshot")) {
        if ((rv = rlog_sm_snapshot(log, &off)) != 0)
            fail("snapshot", rv, log);
        else
            printf("snapshot %" PRIu64 "\n", off);
    } else if (!strcmp(cmd, "status")) {
        struct rlog_status st;
        if ((rv = rlog_status(log, &st)) != 0)
            fail("status", rv, log);
        else
            printf("status %" PRIu64 " %" PRIu64 " %" PRIu64 " %d %" PRIu64 " %" PRIu64 "\n",
                   st.applied_offset, st.snapshot_offset, st.snapshots_taken,
                   st.sm_needs_snapshot, st.snapshots_installed, st.first_offset);
    } else if (!strcmp(cmd, "leader")) {
        struct rlog_status st;
        if ((rv = rlog_status(log, &st)) != 0)
            fail("leader", rv, log);
        else
            printf("leader %" PRIu64 "\n", st.leader_id);
    } else if (!strcmp(cmd, "trim") && key) {
        if (!number(key, &off)) {
            printf("error RLOG_EINVAL: trim: OFFSET must be a number, not '%s'\n", key);
            return;
        }
        RETRY_ELECTION(log, rv, rlog_trim(log, off));
        if (rv)
            fail("trim", rv, log);
        else
            printf("ok\n");
    } else if (!strcmp(cmd, "add") && key && val) {
        uint64_t id;
        if (!number(key, &id) || id == 0 || strchr(val, ' ') || strchr(val, '\t')) {
            printf("error RLOG_EINVAL: add: want ID ADDRESS (ID >= 1), not '%s %s'\n", key, val);
            return;
        }
        RETRY_ELECTION(log, rv, rlog_add_node(log, id, val));
        if (rv)
            fail("add", rv, log);
        else
            printf("ok\n");
    } else {
        printf("error RLOG_EINVAL: unknown command or missing argument: %s\n", cmd);
    }
}

int main(int argc, char **argv)
{
    const char *prog = argv[0];
    int join = argc > 1 && !strcmp(argv[1], "--join");
    if (join) {
        argv++;
        argc--;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s [--join] ID PEERS DATA_DIR [SNAPSHOT_EVERY]\n", prog);
        return 2;
    }
    struct rlog_peer peers[RLOG_MAX_PEERS];
    unsigned n = 0;
    char *list = strdup(argv[2]);
    for (char *p = strtok(list, ","); p && n < RLOG_MAX_PEERS; p = strtok(NULL, ",")) {
        char *eq = strchr(p, '=');
        if (!eq) {
            fprintf(stderr, "kv: bad peer %s (want ID=HOST:PORT)\n", p);
            return 2;
        }
        *eq = 0;
        peers[n++] = (struct rlog_peer){.id = strtoull(p, NULL, 10), .address = eq + 1};
    }
    static struct table t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct rlog_sm sm = {.apply = kv_apply, .snapshot = kv_snapshot, .persist = kv_persist,
                         .release = kv_release, .restore = kv_restore, .arg = &t};
    struct rlog_config cfg;
    rlog_config_init(&cfg);
    cfg.id = strtoull(argv[1], NULL, 10);
    cfg.data_dir = argv[3];
    cfg.peers = peers;
    cfg.n_peers = n;
    cfg.join = join;
    for (unsigned i = 0; i < n; i++)
        if (peers[i].id == cfg.id)
            cfg.address = peers[i].address;
    cfg.sm = &sm;
    cfg.sm_snapshot_every = argc > 4 ? strtoull(argv[4], NULL, 10) : 0;
    rlog *log;
    char err[512];
    int rv = rlog_open(&cfg, &log, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "kv: %s: %s\n", rlog_errname(rv), err);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char line[8192];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "quit", 4) != 0)
        command(log, &t, line);
    rv = rlog_close(log);
    clear(&t);
    free(list);
    return rv ? 1 : 0;
}
