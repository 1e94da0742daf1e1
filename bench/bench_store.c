/*
 * bench_store — the segment store against this machine's durable-write floor,
 * measured in the same run on the same file system.
 *
 *   floor:  a loop of 4 KiB write + fdatasync appending to a file, and the
 *           same over an already zero-filled file (what preallocation buys)
 *   store:  1 appender (one request in flight) and 64 appenders (64 requests
 *           kept in flight, closed loop), 100-byte and 1 KiB entries
 *
 * Prints one parseable line per workload and a summary with the ratios. Usage:
 *   bench_store [-d DIR] [-s SECONDS_PER_WORKLOAD] [-n FLOOR_OPS]
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "liblog.h"
#include "store/store.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

struct floor_result {
    double p50, p99, ops_s;
};

static struct floor_result run_floor(const char *dir, int n, int prefilled)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/floor.dat", dir);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    static char block[4096];
    memset(block, 'x', sizeof block);
    if (prefilled) {
        static char zeros[1 << 20];
        for (long off = 0; off < (long)n * 4096; off += sizeof zeros)
            if (pwrite(fd, zeros, sizeof zeros, off) != (ssize_t)sizeof zeros)
                exit(1);
        fsync(fd);
    }
    double *lat = malloc((size_t)n * sizeof *lat), t0 = now_us();
    for (int i = 0; i < n; i++) {
        double t = now_us();
        if (pwrite(fd, block, sizeof block, (off_t)i * 4096) != (ssize_t)sizeof block ||
            fdatasync(fd) != 0) {
            perror("floor write");
            exit(1);
        }
        lat[i] = now_us() - t;
    }
    struct floor_result r = {.ops_s = n / ((now_us() - t0) / 1e6)};
    r.p50 = pct(lat, (size_t)n, 0.50);
    r.p99 = pct(lat, (size_t)n, 0.99);
    free(lat);
    close(fd);
    unlink(path);
    return r;
}

/* ---- store workloads --------------------------------------------------- */

struct slot {
    struct rl_store_req req;
    struct rl_store_entry entry;
    double start;
};

struct run {
    struct rl_store *s;
    uv_loop_t *loop;
    struct slot *slots;
    int inflight_target, inflight;
    double deadline;
    uint64_t max_ops, submitted, completed, failed;
    double *lat;
    size_t nlat, latcap;
    char *payload;
    uint32_t size;
};

static void on_done(struct rl_store_req *req, int status);

static void submit(struct run *r, struct slot *sl)
{
    sl->entry = (struct rl_store_entry){.index = rl_store_next_index(r->s), .term = 1,
                                        .records = 1, .buf = r->payload, .len = r->size};
    sl->req.data = r;
    sl->start = now_us();
    int rv = rl_store_append(r->s, &sl->req, &sl->entry, 1, on_done);
    if (rv != 0) {
        fprintf(stderr, "append: %s: %s\n", rlog_errname(rv), rl_store_errmsg(r->s));
        exit(1);
    }
    r->submitted++;
    r->inflight++;
}

static void on_done(struct rl_store_req *req, int status)
{
    struct slot *sl = (struct slot *)req;
    struct run *r = req->data;
    double t = now_us();
    r->inflight--;
    r->completed++;
    if (status != 0)
        r->failed++;
    if (r->nlat == r->latcap) {
        r->latcap = r->latcap ? r->latcap * 2 : 1 << 16;
        r->lat = realloc(r->lat, r->latcap * sizeof *r->lat);
    }
    r->lat[r->nlat++] = t - sl->start;
    if (t < r->deadline && r->submitted < r->max_ops)
        submit(r, sl);
}

struct store_result {
    double entries_s, mb_s, p50, p99, max, syncs_s, per_sync;
    uint64_t entries;
};

static void closed_cb(void *arg)
{
    *(int *)arg = 1;
}

static struct store_result run_store(const char *dir, int inflight, uint32_t size, double secs)
{
    char sdir[4200];
    snprintf(sdir, sizeof sdir, "%s/store-%d-%u", dir, inflight, size);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", sdir);
    if (system(cmd) != 0)
        exit(1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct rl_store_config cfg = {.dir = sdir};
    struct rl_store *s;
    char msg[256];
    int rv = rl_store_open(&loop, &cfg, &s, msg, sizeof msg);
    if (rv != 0) {
        fprintf(stderr, "open %s: %s\n", sdir, msg);
        exit(1);
    }
    struct run r = {.s = s, .loop = &loop, .inflight_target = inflight, .max_ops = 2000000,
                    .size = size};
    r.payload = malloc(size);
    memset(r.payload, 'p', size);
    r.slots = calloc((size_t)inflight, sizeof *r.slots);
    /* Warm-up: one append waits for the first segment to be created. */
    r.deadline = now_us() + 60e6;
    r.max_ops = 1;
    submit(&r, &r.slots[0]);
    while (r.inflight)
        uv_run(&loop, UV_RUN_ONCE);
    r.nlat = 0;
    r.completed = r.failed = 0;
    r.submitted = 0;
    r.max_ops = 2000000;
    struct rl_store_stats st0, st1;
    rl_store_stats(s, &st0);
    double t0 = now_us();
    r.deadline = t0 + secs * 1e6;
    for (int i = 0; i < inflight; i++)
        submit(&r, &r.slots[i]);
    while (r.inflight)
        uv_run(&loop, UV_RUN_ONCE);
    double el = (now_us() - t0) / 1e6;
    rl_store_stats(s, &st1);
    if (r.failed) {
        fprintf(stderr, "%" PRIu64 " appends failed\n", r.failed);
        exit(1);
    }
    struct store_result res = {.entries = r.completed};
    res.entries_s = (double)r.completed / el;
    res.mb_s = (double)r.completed * size / el / 1e6;
    res.p50 = pct(r.lat, r.nlat, 0.50);
    res.p99 = pct(r.lat, r.nlat, 0.99);
    res.max = pct(r.lat, r.nlat, 1.0);
    res.syncs_s = (double)(st1.syncs - st0.syncs) / el;
    res.per_sync = (double)(st1.entries - st0.entries) / (double)(st1.syncs - st0.syncs);
    int closed = 0;
    rl_store_close(s, closed_cb, &closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(r.lat);
    free(r.slots);
    free(r.payload);
    if (system(cmd) != 0)
        exit(1);
    return res;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    double secs = 3;
    int floor_n = 2000, opt;
    while ((opt = getopt(argc, argv, "d:s:n:")) != -1) {
        switch (opt) {
        case 'd': dir = optarg; break;
        case 's': secs = atof(optarg); break;
        case 'n': floor_n = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-d DIR] [-s SECONDS] [-n FLOOR_OPS]\n", argv[0]);
            return 2;
        }
    }
    char base[3000];
    snprintf(base, sizeof base, "%.2900s/liblog-bench-store-%ld", dir, (long)getpid());
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
    if (system(cmd) != 0)
        return 1;
    fprintf(stderr, "bench-store: dir %s, %.1fs per store workload, liblog %s\n", base, secs,
            rlog_version_string());

    struct floor_result fa = run_floor(base, floor_n, 0);
    printf("system=floor workload=append4k_fdatasync ops_s=%.0f p50_us=%.0f p99_us=%.0f\n",
           fa.ops_s, fa.p50, fa.p99);
    struct floor_result fz = run_floor(base, floor_n, 1);
    printf("system=floor workload=overwrite4k_fdatasync ops_s=%.0f p50_us=%.0f p99_us=%.0f\n",
           fz.ops_s, fz.p50, fz.p99);
    fflush(stdout);

    static const struct {
        int inflight;
        uint32_t size;
    } w[] = {{1, 100}, {64, 100}, {1, 1024}, {64, 1024}};
    struct store_result res[4];
    for (int i = 0; i < 4; i++) {
        res[i] = run_store(base, w[i].inflight, w[i].size, secs);
        printf("system=store workload=appenders%d_%uB entries_s=%.0f mb_s=%.2f p50_us=%.0f "
               "p99_us=%.0f max_us=%.0f syncs_s=%.0f entries_per_sync=%.1f entries=%" PRIu64 "\n",
               w[i].inflight, w[i].size, res[i].entries_s, res[i].mb_s, res[i].p50, res[i].p99,
               res[i].max, res[i].syncs_s, res[i].per_sync, res[i].entries);
        fflush(stdout);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        return 1;

    printf("\n%-24s %12s %9s %9s %9s %9s %10s %12s\n", "workload", "entries/s", "MB/s", "p50 us",
           "p99 us", "max us", "syncs/s", "entries/sync");
    printf("%-24s %12.0f %9.2f %9.0f %9.0f %9s %10.0f %12s\n", "floor append 4K+sync", fa.ops_s,
           fa.ops_s * 4096 / 1e6, fa.p50, fa.p99, "", fa.ops_s, "1");
    printf("%-24s %12.0f %9.2f %9.0f %9.0f %9s %10.0f %12s\n", "floor overwrite 4K+sync", fz.ops_s,
           fz.ops_s * 4096 / 1e6, fz.p50, fz.p99, "", fz.ops_s, "1");
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "store %d appender%s %uB", w[i].inflight,
                 w[i].inflight > 1 ? "s" : "", w[i].size);
        printf("%-24s %12.0f %9.2f %9.0f %9.0f %9.0f %10.0f %12.1f\n", name, res[i].entries_s,
               res[i].mb_s, res[i].p50, res[i].p99, res[i].max, res[i].syncs_s, res[i].per_sync);
    }
    printf("\nratios (same run, same file system):\n");
    printf("  1 appender 100B p50 / floor append p50:        %.2f\n", res[0].p50 / fa.p50);
    printf("  1 appender 100B p50 / floor overwrite p50:     %.2f\n", res[0].p50 / fz.p50);
    printf("  64 appenders 100B entries/s / floor append/s:  %.1f\n", res[1].entries_s / fa.ops_s);
    printf("  64 appenders 1KiB entries/s / floor append/s:  %.1f\n", res[3].entries_s / fa.ops_s);
    return 0;
}
