/*
 * bench_append — quick figures for the replicated append path: a 3-node
 * cluster in this process on 127.0.0.1 (fsync on, data under DIR).
 *   W1: one append in flight, 100-byte records: latency p50/p99/max, appends/s
 *   W2: 64 appends in flight (async), 100-byte records: records/s, MB/s
 *   W3: as W2 with 1 KiB records
 *   with -P, instead: W2 with idempotent producers (rlog_append_ex, one
 *   producer per in-flight slot, sequence numbers one up) against plain W2,
 *   alternating rounds in the same cluster, and the ratio of the medians
 *   (issue 12's goal: >= 0.9).
 *   with -R, instead: random single-record reads (rlog_read) of 100 B
 *   records written in full batches (8192 records, ~1 MiB entries), served
 *   from the read cache, on the leader and on a follower: reads/s and p50.
 *   with -D, instead: the same reads from the segment files (the read cache
 *   held to one byte, so every read misses it; entries of 64 records, the
 *   page cache warm): what issue 18 item 3 measures.
 * The full, multi-process comparison with raw libraft is `make bench`
 * (issue 5); this is the quick look.
 *   with -2, W2 alone (for profiling its path: perf stat, perf record).
 * Usage: bench_append [-d DIR] [-s SECONDS] [-n W1_APPENDS] [-P [-r ROUNDS]] [-R] [-D] [-2]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster3.h"
#include "liblog.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define MAX_WINDOW 256

struct flow;
struct slot { /* one in-flight append; with producers, its own producer */
    struct flow *f;
    uint64_t producer, seq;
};

struct flow {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rlog *log;
    size_t size;
    char *payload;
    double deadline;
    long inflight, done, failed;
    bool producers;
    struct slot slots[MAX_WINDOW];
};

static uint64_t g_producer_base; /* fresh producer ids for every round */

static void on_done(void *arg, int status, uint64_t off);

static int send_one(struct slot *s)
{
    struct flow *f = s->f;
    struct rlog_buf b = {f->payload, f->size};
    if (!f->producers)
        return rlog_append_async(f->log, &b, 1, on_done, s);
    struct rlog_append_opts o;
    rlog_append_opts_init(&o);
    o.producer_id = s->producer;
    o.sequence = ++s->seq;
    return rlog_append_ex_async(f->log, &o, &b, 1, on_done, s);
}

static void on_done(void *arg, int status, uint64_t off)
{
    struct slot *s = arg;
    struct flow *f = s->f;
    (void)off;
    pthread_mutex_lock(&f->mu);
    f->done++;
    if (status)
        f->failed++;
    bool again = now_us() < f->deadline && !status;
    if (!again)
        f->inflight--;
    pthread_mutex_unlock(&f->mu);
    if (again && send_one(s) != 0) {
        pthread_mutex_lock(&f->mu);
        f->inflight--;
        f->failed++;
        pthread_mutex_unlock(&f->mu);
    }
    /* The main thread waits for the last one only: waking it at every
     * record made this benchmark's own futex calls most of the system
     * calls it measured (perf record -e syscalls:sys_enter_futex). */
    pthread_mutex_lock(&f->mu);
    if (f->inflight == 0)
        pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static double throughput(rlog *log, const char *name, size_t size, int window, double secs,
                         bool producers)
{
    static struct flow f;
    f = (struct flow){.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
                      .log = log, .size = size, .producers = producers};
    if (window > MAX_WINDOW)
        window = MAX_WINDOW;
    for (int i = 0; i < window; i++)
        f.slots[i] = (struct slot){&f, ++g_producer_base, 0};
    f.payload = malloc(size);
    memset(f.payload, 'x', size);
    double t0 = now_us();
    f.deadline = t0 + secs * 1e6;
    for (int i = 0; i < window; i++) {
        pthread_mutex_lock(&f.mu);
        f.inflight++;
        pthread_mutex_unlock(&f.mu);
        if (send_one(&f.slots[i]) != 0) {
            fprintf(stderr, "append: %s\n", rlog_errmsg(log));
            exit(1);
        }
    }
    pthread_mutex_lock(&f.mu);
    while (f.inflight > 0)
        pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
    double el = (now_us() - t0) / 1e6;
    printf("system=liblog-inproc workload=%s records_s=%.0f mb_s=%.2f failed=%ld records=%ld\n",
           name, (double)f.done / el, (double)f.done * (double)size / el / 1e6, f.failed, f.done);
    fflush(stdout);
    free(f.payload);
    return (double)f.done / el;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* W2 plain and with producers, in alternating rounds (so drift in the
 * machine's load hits both alike); the ratio of the medians. */
static void producers_ratio(rlog *log, int rounds, double secs)
{
    double off[16], on[16];
    if (rounds > 16)
        rounds = 16;
    for (int r = 0; r < rounds; r++) {
        off[r] = throughput(log, "W2", 100, 64, secs, false);
        on[r] = throughput(log, "W2-producers", 100, 64, secs, true);
    }
    qsort(off, (size_t)rounds, sizeof *off, cmp_d);
    qsort(on, (size_t)rounds, sizeof *on, cmp_d);
    double a = off[rounds / 2], b = on[rounds / 2];
    printf("system=liblog-inproc workload=W2-producers-ratio rounds=%d w2_records_s=%.0f "
           "w2_producers_records_s=%.0f ratio=%.2f (goal >= 0.90)\n", rounds, a, b, a > 0 ? b / a : 0);
}

static uint64_t g_rng = 88172645463325252ull;
static uint64_t next_rand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

/* Random reads of [from, from + n) on one node for secs: reads/s, p50. */
static void random_reads(rlog *log, const char *who, uint64_t from, uint64_t n, double secs)
{
    enum { SAMPLE = 1 << 16 };
    static double lat[SAMPLE];
    long reads = 0, failed = 0;
    double t0 = now_us(), end = t0 + secs * 1e6, t = t0;
    while (t < end) {
        uint64_t off = from + next_rand() % n;
        void *buf;
        size_t len;
        double a = now_us();
        if (rlog_read(log, off, &buf, &len) == 0)
            rlog_free(buf);
        else
            failed++;
        t = now_us();
        lat[reads % SAMPLE] = t - a;
        reads++;
    }
    long kept = reads < SAMPLE ? reads : SAMPLE;
    qsort(lat, (size_t)kept, sizeof *lat, cmp);
    printf("system=liblog-inproc workload=W5-rand node=%s reads=%ld failed=%ld reads_s=%.0f "
           "p50_us=%.1f p99_us=%.1f\n", who, reads, failed, reads / ((t - t0) / 1e6),
           lat[kept / 2], lat[kept * 99 / 100]);
    fflush(stdout);
}

/* Fills the log with batches of 100 B records (full 8192-record batches, or
 * 64-record ones from_disk), then reads at random. */
static int reads_bench(rlog *leader, rlog *follower, double secs, bool from_disk)
{
    enum { PER_CALL = 8192 };
    int per_call = from_disk ? 64 : PER_CALL, calls = from_disk ? 3072 : 24;
    static struct rlog_buf recs[PER_CALL];
    static char rec[100];
    memset(rec, 'r', sizeof rec);
    for (int i = 0; i < PER_CALL; i++)
        recs[i] = (struct rlog_buf){rec, sizeof rec};
    uint64_t first = 0, off;
    for (int c = 0; c < calls; c++) {
        if (rlog_append_batch(leader, recs, (size_t)per_call, &off) != 0) {
            fprintf(stderr, "append: %s\n", rlog_errmsg(leader));
            return 1;
        }
        if (c == 0)
            first = off;
    }
    uint64_t n = (uint64_t)per_call * (uint64_t)calls;
    void *buf;
    size_t len;
    for (int t = 0; t < 400 && rlog_read(follower, first + n - 1, &buf, &len) != 0; t++)
        usleep(10000);
    random_reads(leader, from_disk ? "leader-disk" : "leader", first, n, secs);
    random_reads(follower, from_disk ? "follower-disk" : "follower", first, n, secs);
    return 0;
}

/* -D: every node's read cache held to one byte (no entry fits). */
static void no_read_cache(int i, struct rlog_config *cfg)
{
    (void)i;
    cfg->cache_bytes = 1;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    double secs = 5;
    int n1 = 3000, opt, rounds = 3;
    bool producers = false, reads = false, w2_only = false, from_disk = false;
    while ((opt = getopt(argc, argv, "d:s:n:Pr:RD2")) != -1) {
        if (opt == 'D')
            reads = from_disk = true;
        else if (opt == '2')
            w2_only = true;
        else if (opt == 'R')
            reads = true;
        else if (opt == 'P')
            producers = true;
        else if (opt == 'r')
            rounds = atoi(optarg) > 0 ? atoi(optarg) : 1;
        else if (opt == 'd')
            dir = optarg;
        else if (opt == 's')
            secs = atof(optarg);
        else if (opt == 'n')
            n1 = atoi(optarg);
        else
            return 2;
    }
    struct cluster3 cl;
    if (cluster3_open(&cl, dir, "liblog-bench-append", 30000 + (int)(getpid() % 800) * 3,
                      from_disk ? no_read_cache : NULL))
        return 1;
    rlog **nodes = cl.nodes;
    int leader = cl.leader;
    char rec[100];
    memset(rec, 'r', sizeof rec);
    for (int i = 0; i < 300; i++) /* warm-up */
        rlog_append(nodes[leader], rec, sizeof rec, NULL);
    if (reads) {
        int rv = reads_bench(nodes[leader], nodes[(leader + 1) % 3], secs, from_disk);
        return cluster3_close(&cl) == 0 ? rv : 1;
    }
    if (producers) {
        producers_ratio(nodes[leader], rounds, secs);
        return cluster3_close(&cl);
    }
    if (w2_only) {
        throughput(nodes[leader], "W2", 100, 64, secs, false);
        return cluster3_close(&cl);
    }
    double *lat = malloc((size_t)n1 * sizeof *lat), t0 = now_us();
    for (int i = 0; i < n1; i++) {
        double t = now_us();
        if (rlog_append(nodes[leader], rec, sizeof rec, NULL) != 0) {
            fprintf(stderr, "append: %s\n", rlog_errmsg(nodes[leader]));
            return 1;
        }
        lat[i] = now_us() - t;
    }
    double el = (now_us() - t0) / 1e6;
    qsort(lat, (size_t)n1, sizeof *lat, cmp);
    printf("system=liblog-inproc workload=W1 appends_s=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f\n",
           n1 / el, lat[n1 / 2], lat[n1 * 99 / 100], lat[n1 * 999 / 1000], lat[n1 - 1]);
    fflush(stdout);
    throughput(nodes[leader], "W2", 100, 64, secs, false);
    throughput(nodes[leader], "W3", 1024, 64, secs, false);
    return cluster3_close(&cl);
}
