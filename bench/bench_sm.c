/*
 * bench_sm — apply throughput of a host state machine on a follower
 * against rlog_iter's throughput over the same records, in the same run
 * (issue 13): a 3-node cluster in this process on 127.0.0.1 (fsync on,
 * data under DIR), every node with a state machine whose apply folds each
 * record into a checksum (about the cheapest apply a host can have).
 *
 * The follower's apply is held at its first record while N records of
 * SIZE bytes are appended on the leader (in calls of 8192), so that once
 * released it applies from a log that is all committed and local: the
 * time until its applied_offset reaches the end is the apply path's rate.
 * Then an iterator on the same follower reads the same records. Prints
 * both rates and their ratio (apply / iter); not a test.
 *
 *   bench_sm [-d DIR] [-n RECORDS] [-z SIZE]
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

struct fold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold;             /* apply waits at its first record while set */
    uint64_t sum, applied;
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t fold_apply(void *arg, uint64_t offset, const void *rec, size_t len)
{
    struct fold *f = arg;
    if (f->applied == 0) {
        pthread_mutex_lock(&f->mu);
        while (f->hold)
            pthread_cond_wait(&f->cv, &f->mu);
        pthread_mutex_unlock(&f->mu);
    }
    const unsigned char *p = rec;
    uint64_t h = f->sum ^ offset;
    for (size_t i = 0; i < len; i += 8)
        h = (h ^ p[i]) * 0x100000001b3ull;
    f->sum = h;
    f->applied++;
    return 0;
}

static void *fold_snapshot(void *arg, uint64_t next_offset)
{
    (void)arg;
    (void)next_offset;
    return NULL; /* no snapshots: the bench measures apply alone */
}

static int fold_persist(void *arg, void *snap, rlog_sm_writer *w)
{
    (void)arg;
    (void)snap;
    (void)w;
    return 1;
}

static int fold_restore(void *arg, uint64_t next_offset, rlog_sm_reader *r)
{
    (void)arg;
    (void)next_offset;
    (void)r;
    return 0;
}

static struct fold folds[3];
static struct rlog_sm sms[3];

static void with_sm(int i, struct rlog_config *cfg)
{
    cfg->sm = &sms[i];
    cfg->sm_snapshot_every = UINT64_MAX;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    uint64_t n = 1000000;
    size_t size = 100;
    int opt;
    while ((opt = getopt(argc, argv, "d:n:z:")) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 'n')
            n = strtoull(optarg, NULL, 10);
        else if (opt == 'z')
            size = strtoul(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: bench_sm [-d DIR] [-n RECORDS] [-z SIZE]\n");
            return 2;
        }
    }
    if (n < 8192 || size == 0 || size > 65536) {
        fprintf(stderr, "bench_sm: -n at least 8192, -z 1..65536\n");
        return 2;
    }
    for (int i = 0; i < 3; i++) {
        pthread_mutex_init(&folds[i].mu, NULL);
        pthread_cond_init(&folds[i].cv, NULL);
        sms[i] = (struct rlog_sm){fold_apply, fold_snapshot, fold_persist, NULL, fold_restore,
                                  &folds[i]};
    }
    struct cluster3 cl;
    if (cluster3_open(&cl, dir, "liblog-bench-sm", 20000 + (int)(getpid() % 3000) * 3, with_sm))
        return 1;
    rlog **nodes = cl.nodes;
    int leader = cl.leader;
    int fi = (leader + 1) % 3;
    rlog *fol = nodes[fi];
    folds[fi].hold = true;

    enum { PER_CALL = 8192 };
    char *rec = malloc(size);
    struct rlog_buf *recs = malloc(PER_CALL * sizeof *recs);
    if (!rec || !recs)
        return 1;
    memset(rec, 'r', size);
    for (int i = 0; i < PER_CALL; i++)
        recs[i] = (struct rlog_buf){rec, size};
    uint64_t first = UINT64_MAX, off = 0, done = 0;
    double t0 = now_s();
    while (done < n) {
        unsigned k = n - done < PER_CALL ? (unsigned)(n - done) : PER_CALL;
        if (rlog_append_batch(nodes[leader], recs, k, &off) != 0) {
            fprintf(stderr, "append: %s\n", rlog_errmsg(nodes[leader]));
            return 1;
        }
        if (first == UINT64_MAX)
            first = off;
        done += k;
    }
    double append_s = now_s() - t0;
    uint64_t end = first + n;
    /* The follower has every record committed and local before apply goes. */
    void *buf;
    size_t len;
    for (int t = 0; t < 3000 && rlog_read(fol, end - 1, &buf, &len) != 0; t++)
        usleep(10000);
    struct rlog_status st;
    rlog_status(fol, &st);
    uint64_t from = st.applied_offset;

    pthread_mutex_lock(&folds[fi].mu);
    t0 = now_s();
    folds[fi].hold = false;
    pthread_cond_broadcast(&folds[fi].cv);
    pthread_mutex_unlock(&folds[fi].mu);
    if (rlog_sm_wait(fol, end, 120000) != 0) {
        fprintf(stderr, "sm_wait: %s\n", rlog_errmsg(fol));
        return 1;
    }
    double apply_s = now_s() - t0;
    double apply_rate = (double)(end - from) / apply_s;

    rlog_iter *it;
    if (rlog_iter_open(fol, first, end, &it) != 0) {
        fprintf(stderr, "iter: %s\n", rlog_errmsg(fol));
        return 1;
    }
    const void *r;
    uint64_t o, seen = 0, sum = 0;
    t0 = now_s();
    while (rlog_iter_next(it, &r, &len, &o) == 0) {
        const unsigned char *p = r;
        for (size_t i = 0; i < len; i += 8)
            sum = (sum ^ p[i]) * 0x100000001b3ull;
        seen++;
    }
    double iter_s = now_s() - t0;
    rlog_iter_close(it);
    double iter_rate = (double)seen / iter_s;

    printf("bench_sm: %llu records of %zu B appended in %.2f s (%.0f records/s)\n",
           (unsigned long long)n, size, append_s, (double)n / append_s);
    printf("follower_apply records=%llu s=%.3f records_s=%.0f\n",
           (unsigned long long)(end - from), apply_s, apply_rate);
    printf("follower_iter  records=%llu s=%.3f records_s=%.0f (checksum %llx)\n",
           (unsigned long long)seen, iter_s, iter_rate, (unsigned long long)sum);
    printf("apply_vs_iter ratio=%.2f\n", apply_rate / iter_rate);
    free(rec);
    free(recs);
    return cluster3_close(&cl);
}
