/*
 * bench_repair — the time to repair a damaged 64 MiB segment (issue 17):
 * the store's write-back of a good copy (rl_store_repair: the whole sealed
 * segment rebuilt into a temporary file, fdatasync'd, read back, renamed,
 * directory fsync'd, index rewritten), which is the part of a repair that
 * grows with the segment. The fetch of the damaged entry from a peer is one
 * fetch round trip of at most one entry (see test/integration/test_repair.sh
 * and the node log line "repaired from N's copy in T ms" for the whole).
 *
 * Each round: a fresh store with 64 MiB segments (the first one too) gets 300 entries of 256
 * KiB (the first segment sealed, full), is closed, one bit in the middle of
 * the first segment is flipped, the store is reopened, the damage is found
 * by reading (timed: a read of the damaged entry), and the entry is written
 * back from its good copy (timed). Prints one line per round and the median.
 *
 *   bench_repair [-d DIR] [-n ROUNDS]
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

#define SEG (64u << 20)
#define ENTRY (256u << 10)
#define N_ENTRIES 300u

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static void fill(unsigned char *buf, uint64_t index)
{
    uint64_t x = index * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < ENTRY; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
}

static void done_cb(struct rl_store_req *req, int status)
{
    int *st = req->data;
    *st = status;
}

static int wait_req(uv_loop_t *loop, int *st)
{
    while (*st == 1)
        uv_run(loop, UV_RUN_ONCE);
    return *st;
}

static void die(const char *what, struct rl_store *s)
{
    fprintf(stderr, "bench_repair: %s: %s\n", what, s ? rl_store_errmsg(s) : "");
    exit(1);
}

static void close_store(uv_loop_t *loop, struct rl_store *s)
{
    rl_store_close(s, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int rounds = 3, c;
    while ((c = getopt(argc, argv, "d:n:")) != -1) {
        if (c == 'd')
            base = optarg;
        else if (c == 'n')
            rounds = atoi(optarg);
        else {
            fprintf(stderr, "usage: bench_repair [-d DIR] [-n ROUNDS]\n");
            return 2;
        }
    }
    unsigned char *payload = malloc((size_t)N_ENTRIES * ENTRY);
    double *wb = calloc((size_t)rounds + 1, sizeof *wb);
    if (!payload || !wb)
        return 1;
    for (unsigned i = 0; i < N_ENTRIES; i++)
        fill(payload + (size_t)i * ENTRY, i + 1);
    for (int r = 0; r < rounds; r++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/bench_repair.XXXXXX", base);
        if (!mkdtemp(dir))
            die("mkdtemp", NULL);
        uv_loop_t loop;
        uv_loop_init(&loop);
        struct rl_store_config cfg = {.dir = dir, .segment_size = SEG, .first_segment_size = SEG};
        struct rl_store *s;
        char err[512];
        if (rl_store_open(&loop, &cfg, &s, err, sizeof err) != 0) {
            fprintf(stderr, "bench_repair: open %s: %s\n", dir, err);
            return 1;
        }
        struct rl_store_entry e[8];
        for (unsigned i = 0; i < N_ENTRIES; i += 8) {
            for (unsigned k = 0; k < 8; k++)
                e[k] = (struct rl_store_entry){.index = i + k + 1, .term = 1, .records = 1,
                                               .type = 1, .buf = payload + (size_t)(i + k) * ENTRY,
                                               .len = ENTRY};
            int st = 1;
            struct rl_store_req req = {.data = &st};
            if (rl_store_append(s, &req, e, 8, done_cb) != 0 || wait_req(&loop, &st) != 0)
                die("append", s);
        }
        close_store(&loop, s);
        /* One bit in the middle of the first segment: inside an entry's
         * payload (entries are 256 KiB). */
        char path[4200];
        snprintf(path, sizeof path, "%s/seg-0000000000000001.log", dir);
        int fd = open(path, O_RDWR);
        unsigned char b;
        off_t at = SEG / 2 + 4099;
        if (fd < 0 || pread(fd, &b, 1, at) != 1)
            die("read segment", NULL);
        b ^= 0x20;
        if (pwrite(fd, &b, 1, at) != 1)
            die("flip", NULL);
        close(fd);
        if (rl_store_open(&loop, &cfg, &s, err, sizeof err) != 0) {
            fprintf(stderr, "bench_repair: reopen: %s\n", err);
            return 1;
        }
        uint64_t victim = (uint64_t)(at - 64) / (ENTRY + 56) + 1;
        struct rl_store_entry out;
        double t0 = now_ms();
        int rc = rl_store_read(s, victim, &out);
        double detect = now_ms() - t0;
        struct rl_store_damage d;
        if (rc != RLOG_ECORRUPT || rl_store_damaged(s, &d, 1) != 1)
            die("the damage was not found", s);
        unsigned n = (unsigned)(d.last_index - d.first_index + 1);
        struct rl_store_entry *good = calloc(n, sizeof *good);
        for (unsigned k = 0; k < n; k++)
            good[k] = (struct rl_store_entry){.index = d.first_index + k, .term = 1,
                                              .records = 1, .type = 1,
                                              .buf = payload + (d.first_index + k - 1) * ENTRY,
                                              .len = ENTRY};
        int st = 1;
        struct rl_store_req req = {.data = &st};
        t0 = now_ms();
        if (rl_store_repair(s, &req, good, n, done_cb) != 0 || wait_req(&loop, &st) != 0)
            die("repair", s);
        wb[r] = now_ms() - t0;
        rc = rl_store_read(s, victim, &out);
        if (rc != 0 || memcmp(out.buf, payload + (victim - 1) * ENTRY, ENTRY) != 0)
            die("the repaired entry does not read back", s);
        free((void *)out.buf);
        free(good);
        printf("round %d: found entry %" PRIu64 " damaged by a read in %.2f ms; wrote back the"
               " 64 MiB segment in %.1f ms (%.0f MB/s)\n",
               r + 1, victim, detect, wb[r], (double)SEG / 1e3 / wb[r]);
        fflush(stdout);
        close_store(&loop, s);
        uv_loop_close(&loop);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_repair: could not remove %s\n", dir);
    }
    qsort(wb, (size_t)rounds, sizeof *wb, cmp_double);
    printf("repair_64MiB_segment_ms median %.1f (min %.1f, max %.1f, %d rounds, dir %s)\n",
           wb[rounds / 2], wb[0], wb[rounds - 1], rounds, base);
    free(wb);
    free(payload);
    return 0;
}
