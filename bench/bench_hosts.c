/*
 * bench_hosts — many logs over three hosts with an address each (one
 * listener and one connection per peer host; rlog_host_open(3)), in this
 * process on 127.0.0.1. Issue 16's figures:
 *
 *   w1:      W1 (one sequential appender, 100-byte records) on one log,
 *            alone, then with IDLE other logs open and idle on the same
 *            hosts: p50/p99 and the ratio of the p50s.
 *   batched: aggregate batched-producer throughput with 1, 4 and 16 logs
 *            whose leaders are spread over the three hosts (16 calls of
 *            64 records of 1 KiB in flight per log), in MB/s, and the
 *            ratio to one log.
 *   busy:    W1 on one log while BUSY others run batched producers over
 *            the same connections (a small append among large ones:
 *            what it waits for behind them), p50/p99 and the ratios to
 *            W1 alone.
 *
 *   bench_hosts [-d DIR] [-i IDLE] [-b BUSY] [-s SECONDS] [-n W1_APPENDS]
 *
 * One process on a 2-core machine: the three hosts share its cores, so the
 * figures compare with each other (ratios), not with bench_node's three
 * processes.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hostbench.h"
#include "liblog.h"

#define MAX_LOGS 4096

static rlog_host *host[3];
static char host_addr[3][32];
static struct rlog_peer peers[3];
static char top[512];
static rlog *logs[MAX_LOGS][3];
static int n_logs;

static int open_hosts(void)
{
    int next = 13000 + (int)(getpid() % 2000);
    for (int h = 0; h < 3; h++) {
        snprintf(host_addr[h], sizeof host_addr[h], "127.0.0.1:%d", hb_free_port(&next));
        peers[h] = (struct rlog_peer){(uint64_t)h + 1, host_addr[h]};
        struct rlog_host_config hc;
        rlog_host_config_init(&hc);
        hc.address = host_addr[h];
        hc.id = (uint64_t)h + 1;
        char err[256];
        if (rlog_host_open(&hc, &host[h], err, sizeof err) != 0) {
            fprintf(stderr, "host %d: %s\n", h + 1, err);
            return 1;
        }
    }
    return 0;
}

/* Opens logs [n_logs, n): each a 3-node group over the three hosts. */
static int open_logs(int n)
{
    for (; n_logs < n; n_logs++) {
        for (int i = 0; i < 3; i++) {
            struct rlog_config cfg;
            rlog_config_init(&cfg);
            char name[32], dir[600];
            snprintf(name, sizeof name, "log%d", n_logs);
            snprintf(dir, sizeof dir, "%s/log%d/n%d", top, n_logs, i + 1);
            cfg.id = (uint64_t)i + 1;
            cfg.data_dir = dir;
            cfg.cluster_name = name;
            cfg.peers = peers;
            cfg.n_peers = 3;
            cfg.log_fn = hb_quiet;
            char err[256];
            if (rlog_open_on(host[i], &cfg, &logs[n_logs][i], err, sizeof err) != 0) {
                fprintf(stderr, "open log %d node %d: %s\n", n_logs, i + 1, err);
                return 1;
            }
        }
    }
    return 0;
}

/* The index of log k's leader (waits up to 20 s), or -1. */
static int leader_of(int k)
{
    for (int t = 0; t < 2000; t++) {
        for (int i = 0; i < 3; i++) {
            struct rlog_status st;
            if (rlog_status(logs[k][i], &st) == 0 && st.role == RLOG_ROLE_LEADER)
                return i;
        }
        usleep(10000);
    }
    return -1;
}

/* Moves log k's leadership to host `want` (best effort, 5 s). */
static void lead_on(int k, int want)
{
    for (int t = 0; t < 50; t++) {
        int l = leader_of(k);
        if (l == want || l < 0)
            return;
        rlog_transfer_leadership(logs[k][l], (uint64_t)want + 1);
        usleep(100000);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* W1 on log 0: n sequential appends through its leader (or as many as
 * max_s seconds allow, 100 at least); p50 and p99 in us. */
static int w1_done; /* appends the last w1 made */

static int w1(int n, double max_s, double *p50, double *p99)
{
    int l = leader_of(0);
    if (l < 0)
        return 1;
    double *lat = malloc(sizeof *lat * (size_t)n);
    char rec[100];
    memset(rec, 'w', sizeof rec);
    double start = hb_now_s();
    for (int i = 0; i < n; i++) {
        if (i >= 100 && hb_now_s() - start > max_s) {
            n = i;
            break;
        }
        uint64_t off;
        double t0 = hb_now_s();
        if (rlog_append(logs[0][l], rec, sizeof rec, &off) != 0) {
            fprintf(stderr, "w1 append: %s\n", rlog_errmsg(logs[0][l]));
            free(lat);
            return 1;
        }
        lat[i] = (hb_now_s() - t0) * 1e6;
    }
    w1_done = n;
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    *p50 = lat[n / 2];
    *p99 = lat[n * 99 / 100];
    free(lat);
    return 0;
}

/* ---- batched producers ---- */

#define BATCH 64
#define REC 1024
#define INFLIGHT 16

struct producer {
    rlog *log;
    struct rlog_buf recs[BATCH];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    atomic_ullong records;
    atomic_int failed;
};

static char payload[REC];
static atomic_bool stop;

static void produced(void *arg, int status, uint64_t first)
{
    (void)first;
    struct producer *p = arg;
    if (status == 0)
        p->records += BATCH;
    else
        p->failed = 1;
    pthread_mutex_lock(&p->mu);
    p->inflight--;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < BATCH; i++)
        p->recs[i] = (struct rlog_buf){payload, REC};
    pthread_mutex_lock(&p->mu);
    while (!stop) {
        if (p->inflight >= INFLIGHT) { /* a callback wakes it (or the 10 ms tick) */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 10000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&p->cv, &p->mu, &until);
            continue;
        }
        p->inflight++;
        pthread_mutex_unlock(&p->mu);
        int rv = rlog_append_async(p->log, p->recs, BATCH, produced, p);
        pthread_mutex_lock(&p->mu);
        if (rv != 0) {
            p->inflight--;
            pthread_mutex_unlock(&p->mu);
            usleep(1000);
            pthread_mutex_lock(&p->mu);
        }
    }
    while (p->inflight > 0)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Producers on logs first .. first + n - 1, leaders spread. */
struct crowd {
    struct producer *ps;
    pthread_t *th;
    int n;
};

static void crowd_start(struct crowd *c, int first, int n)
{
    c->n = n;
    c->ps = calloc((size_t)n, sizeof *c->ps);
    c->th = calloc((size_t)n, sizeof *c->th);
    for (int i = 0; i < n; i++) {
        int k = first + i;
        pthread_mutex_init(&c->ps[i].mu, NULL);
        pthread_cond_init(&c->ps[i].cv, NULL);
        lead_on(k, k % 3);
        int l = leader_of(k);
        c->ps[i].log = logs[k][l < 0 ? 0 : l];
    }
    stop = false;
    for (int i = 0; i < n; i++)
        pthread_create(&c->th[i], NULL, produce, &c->ps[i]);
}

static unsigned long long crowd_records(struct crowd *c)
{
    unsigned long long r = 0;
    for (int i = 0; i < c->n; i++)
        r += c->ps[i].records;
    return r;
}

static void crowd_stop(struct crowd *c)
{
    stop = true;
    for (int i = 0; i < c->n; i++)
        pthread_join(c->th[i], NULL);
    free(c->th);
    free(c->ps);
}

/* MB/s of records committed with nl logs producing for secs seconds. */
static double batched(int nl, int secs)
{
    struct crowd c;
    crowd_start(&c, 0, nl);
    sleep(1); /* warm-up */
    unsigned long long before = crowd_records(&c);
    double t0 = hb_now_s();
    sleep((unsigned)secs);
    unsigned long long after = crowd_records(&c);
    double dt = hb_now_s() - t0;
    crowd_stop(&c);
    return (double)(after - before) * REC / dt / 1e6;
}

/* W1 on log 0 while logs 1 .. busy produce (for secs_busy seconds at
 * most: they write ~0.3 GB a second); their MB/s meanwhile. */
static int w1_among_busy(int busy, int n, double secs_busy, double *p50, double *p99, double *mbs)
{
    struct crowd c;
    crowd_start(&c, 1, busy);
    sleep(1);
    unsigned long long before = crowd_records(&c);
    double t0 = hb_now_s();
    int rc = w1(n, secs_busy, p50, p99);
    *mbs = (double)(crowd_records(&c) - before) * REC / (hb_now_s() - t0) / 1e6;
    crowd_stop(&c);
    return rc;
}

static atomic_int next_close;

static void *closer(void *arg)
{
    (void)arg;
    for (int k; (k = atomic_fetch_add(&next_close, 1)) < n_logs;)
        for (int i = 0; i < 3; i++)
            rlog_close(logs[k][i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    int idle = 999, busy = 15, secs = 5, n_w1 = 2000, opt;
    while ((opt = getopt(argc, argv, "d:i:b:s:n:")) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 'i': idle = atoi(optarg); break;
        case 'b': busy = atoi(optarg); break;
        case 's': secs = atoi(optarg); break;
        case 'n': n_w1 = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_hosts [-d DIR] [-i IDLE] [-b BUSY] [-s SECONDS] "
                            "[-n W1_APPENDS]\n");
            return 2;
        }
    }
    if (idle < 0 || idle + 1 > MAX_LOGS || busy < 0 || busy + 1 > MAX_LOGS || secs < 1 ||
        n_w1 < 100) {
        fprintf(stderr, "bench_hosts: -i and -b 0..%d, -s >= 1, -n >= 100\n", MAX_LOGS - 1);
        return 2;
    }
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    memset(payload, 'b', sizeof payload);
    snprintf(top, sizeof top, "%s/liblog-bench-hosts-%d", dir, (int)getpid());
    int rc = open_hosts() || open_logs(1);
    double b[3] = {0, 0, 0}, a50 = 0, a99 = 0, i50 = 0, i99 = 0;
    if (rc == 0 && (rc = w1(n_w1, 1e9, &a50, &a99)) == 0) {
        printf("w1: one log alone: p50 %.0f us, p99 %.0f us\n", a50, a99);
        fflush(stdout);
    }
    static const int counts[3] = {1, 4, 16};
    if (rc == 0)
        rc = open_logs(16);
    for (int c = 0; c < 3 && rc == 0; c++) {
        b[c] = batched(counts[c], secs);
        printf("batched: %2d log(s), leaders spread: %7.1f MB/s (%.2fx one log)\n", counts[c],
               b[c], b[0] > 0 ? b[c] / b[0] : 0);
        fflush(stdout);
    }
    double b50 = 0, b99 = 0, bmbs = 0;
    if (rc == 0 && busy > 0 && (rc = open_logs(busy + 1)) == 0) {
        lead_on(0, 0);
        if ((rc = w1_among_busy(busy, n_w1, secs, &b50, &b99, &bmbs)) == 0)
            printf("w1: one log, %d others producing (%.1f MB/s): p50 %.0f us, p99 %.0f us "
                   "(%.2fx, %.2fx alone; %d appends)\n",
                   busy, bmbs, b50, b99, a50 > 0 ? b50 / a50 : 0, a99 > 0 ? b99 / a99 : 0,
                   w1_done);
        fflush(stdout);
    }
    if (rc == 0 && (rc = open_logs(idle + 1)) == 0) {
        sleep(2);
        if ((rc = w1(n_w1, 1e9, &i50, &i99)) == 0)
            printf("w1: one log, %d others open and idle: p50 %.0f us, p99 %.0f us "
                   "(%.2fx the p50 alone)\n",
                   n_logs - 1, i50, i99, a50 > 0 ? i50 / a50 : 0);
    }
    pthread_t cl[16];
    for (int t = 0; t < 16; t++)
        pthread_create(&cl[t], NULL, closer, NULL);
    for (int t = 0; t < 16; t++)
        pthread_join(cl[t], NULL);
    for (int h = 0; h < 3; h++)
        if (host[h] && rlog_host_close(host[h]) != 0)
            fprintf(stderr, "host %d did not close\n", h + 1);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    if (system(cmd) != 0)
        rc = 1;
    return rc;
}
