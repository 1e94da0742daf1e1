/*
 * bench_idle — what an idle log costs (issue 16's measure): N 3-node logs
 * in this process, every replica on 127.0.0.1 with its own port, each log
 * given one record and then left idle. Reports, per replica, the resident
 * memory the logs added and, for all of them, the CPU the process spends
 * while they idle (heartbeats, ticks), plus threads and descriptors.
 *
 *   bench_idle [-n LOGS] [-s IDLE_SECONDS] [-d DIR] [-m threads|hosts|shared]
 *
 * threads: every replica on a loop thread of its own (rlog_open today).
 * hosts:   three rlog_hosts of one loop thread each, each running one
 *          replica of every log (rlog_open_on).
 * shared:  the same three hosts with an address each: one listener and
 *          one connection per peer host for all the logs.
 * A process of the 3-process cluster holds one replica of each log:
 * its cost per log is this bench's cost per replica.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "hostbench.h"
#include "liblog.h"

struct one_log {
    char addrs[3][32], dirs[3][600];
    struct rlog_peer peers[3];
    rlog *nodes[3];
};

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 +
           (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec / 1e6;
}

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    if (f)
        fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2;
}

static int has_leader(struct one_log *l)
{
    for (int i = 0; i < 3; i++) {
        struct rlog_status st;
        if (rlog_status(l->nodes[i], &st) == 0 && st.role == RLOG_ROLE_LEADER)
            return 1;
    }
    return 0;
}

static struct one_log *g_logs;
static int g_n;
static atomic_int g_next_close;

/* Closes logs off a shared counter: a close waits for a leadership
 * transfer, so one at a time would take minutes for a thousand. */
static void *closer(void *arg)
{
    (void)arg;
    for (int k; (k = atomic_fetch_add(&g_next_close, 1)) < g_n;)
        for (int i = 0; i < 3; i++)
            if (g_logs[k].nodes[i])
                rlog_close(g_logs[k].nodes[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    int n = 100, idle = 10, opt;
    const char *dir = "/tmp", *mode = "hosts";
    while ((opt = getopt(argc, argv, "n:s:d:m:")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 's': idle = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 'm': mode = optarg; break;
        default:
            fprintf(stderr, "usage: bench_idle [-n LOGS] [-s IDLE_SECONDS] [-d DIR] "
                            "[-m threads|hosts|shared]\n");
            return 2;
        }
    }
    bool shared = strcmp(mode, "shared") == 0;
    bool hosts = shared || strcmp(mode, "hosts") == 0;
    if (n < 1 || idle < 1 || (!hosts && strcmp(mode, "threads") != 0)) {
        fprintf(stderr, "bench_idle: -n and -s take positive numbers, -m threads, hosts or shared\n");
        return 2;
    }
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);

    rlog_host *host[3] = {NULL, NULL, NULL};
    char err[256], host_addr[3][32];
    int next_port = 12000, rc = 0;
    for (int h = 0; hosts && h < 3; h++) {
        struct rlog_host_config hc;
        rlog_host_config_init(&hc);
        if (shared) {
            snprintf(host_addr[h], sizeof host_addr[h], "127.0.0.1:%d", hb_free_port(&next_port));
            hc.address = host_addr[h];
            hc.id = (uint64_t)h + 1;
        }
        if (rlog_host_open(&hc, &host[h], err, sizeof err) != 0) {
            fprintf(stderr, "host: %s\n", err);
            return 1;
        }
    }
    char top[512];
    snprintf(top, sizeof top, "%s/liblog-bench-idle-%d", dir, (int)getpid());
    struct one_log *logs = calloc((size_t)n, sizeof *logs);
    if (!logs)
        return 1;
    long rss0 = rss_kib();
    int fds0 = count_entries("/proc/self/fd"), threads0 = count_entries("/proc/self/task");
    double t0 = hb_now_s();
    for (int k = 0; k < n && rc == 0; k++) {
        struct one_log *l = &logs[k];
        for (int i = 0; i < 3 && shared; i++)
            l->peers[i] = (struct rlog_peer){(uint64_t)i + 1, host_addr[i]};
        for (int i = 0; i < 3; i++) {
            snprintf(l->dirs[i], sizeof l->dirs[i], "%s/log%d/n%d", top, k, i + 1);
            if (shared)
                continue;
            int port = hb_free_port(&next_port);
            if (port < 0) {
                fprintf(stderr, "out of free ports below 32000\n");
                rc = 1;
                break;
            }
            snprintf(l->addrs[i], sizeof l->addrs[i], "127.0.0.1:%d", port);
            l->peers[i] = (struct rlog_peer){(uint64_t)i + 1, l->addrs[i]};
        }
        for (int i = 0; i < 3 && rc == 0; i++) {
            struct rlog_config cfg;
            rlog_config_init(&cfg);
            cfg.id = (uint64_t)i + 1;
            char name[32];
            snprintf(name, sizeof name, "log%d", k);
            cfg.address = shared ? NULL : l->addrs[i];
            cfg.cluster_name = shared ? name : NULL;
            cfg.data_dir = l->dirs[i];
            cfg.peers = l->peers;
            cfg.n_peers = 3;
            cfg.log_fn = hb_quiet;
            int rv = hosts ? rlog_open_on(host[i], &cfg, &l->nodes[i], err, sizeof err)
                           : rlog_open(&cfg, &l->nodes[i], err, sizeof err);
            if (rv != 0) {
                fprintf(stderr, "open log %d node %d: %s\n", k, i + 1, err);
                rc = 1;
            }
        }
    }
    /* Every log elects a leader and takes one record. */
    for (int k = 0; k < n && rc == 0; k++) {
        int tries = 0;
        while (!has_leader(&logs[k]) && tries++ < 1000)
            usleep(10000);
        uint64_t off;
        if (rlog_append(logs[k].nodes[0], "idle", 4, &off) != 0) {
            fprintf(stderr, "append to log %d: %s\n", k, rlog_errmsg(logs[k].nodes[0]));
            rc = 1;
        }
    }
    double opened = hb_now_s() - t0;
    if (rc == 0) {
        sleep(2); /* past the last election's settling */
        long rss1 = rss_kib();
        double c0 = cpu_s(), w0 = hb_now_s();
        sleep((unsigned)idle);
        double cpu = cpu_s() - c0, wall = hb_now_s() - w0;
        long rss2 = rss_kib();
        int fds = count_entries("/proc/self/fd") - fds0;
        int threads = count_entries("/proc/self/task") - threads0;
        printf("bench_idle mode=%s logs=%d replicas=%d open_s=%.1f\n", mode, n, 3 * n, opened);
        printf("  memory: %.0f KiB per replica (RSS %ld -> %ld -> %ld KiB: before, opened, "
               "after %d s idle)\n",
               (double)(rss2 - rss0) / (3.0 * n), rss0, rss1, rss2, idle);
        printf("  idle CPU: %.2f %% of one core for all %d replicas; %.1f %% per 1,000 "
               "replicas\n",
               100.0 * cpu / wall, 3 * n, 100.0 * cpu / wall * 1000.0 / (3.0 * n));
        printf("  threads: %d added (%.2f per replica), descriptors: %d added (%.1f per "
               "replica)\n",
               threads, (double)threads / (3.0 * n), fds, (double)fds / (3.0 * n));
    }
    g_logs = logs;
    g_n = n;
    pthread_t closers[16];
    for (int t = 0; t < 16; t++)
        pthread_create(&closers[t], NULL, closer, NULL);
    for (int t = 0; t < 16; t++)
        pthread_join(closers[t], NULL);
    for (int h = 0; h < 3; h++)
        if (host[h] && rlog_host_close(host[h]) != 0)
            fprintf(stderr, "host %d did not stop\n", h);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    if (system(cmd) != 0)
        rc = 1;
    free(logs);
    return rc;
}
