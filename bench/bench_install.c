/*
 * bench_install — a wiped node's way back by snapshot install (issue 13):
 * a 3-node cluster in this process on 127.0.0.1 (fsync on, data under
 * DIR), every node with a state machine whose snapshot is SIZE MiB of host
 * state (bytes derived from its checksum, so no node holds it in memory).
 *
 * N records are appended, the leader takes a snapshot (timed: the local
 * write + fdatasync of SIZE MiB, the baseline) and trims the log to it,
 * more records follow; then a follower is closed, its data directory
 * deleted, and it is opened again. It must come back by fetching the
 * leader's snapshot. Prints the install's transfer rate (from the node's
 * own log line: bytes and ms from the first request to the verified file
 * in place), the whole catch-up (open to applied at the log's end), and
 * the install rate as a ratio of the local snapshot write's. Not a test.
 *
 *   bench_install [-d DIR] [-s SIZE_MIB] [-n RECORDS]
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster3.h"
#include "liblog.h"

struct blob {
    uint64_t sum, applied;
};

static uint64_t state_bytes;
static struct blob blobs[3];
static struct rlog_sm sms[3];

/* What node 3's log said about its install (its log_fn). */
static pthread_mutex_t line_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long inst_bytes, inst_ms;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int64_t blob_apply(void *arg, uint64_t offset, const void *rec, size_t len)
{
    struct blob *b = arg;
    const unsigned char *p = rec;
    uint64_t h = b->sum ^ offset;
    for (size_t i = 0; i < len; i += 8)
        h = (h ^ p[i]) * 0x100000001b3ull;
    b->sum = h;
    b->applied++;
    return 0;
}

static void *blob_snapshot(void *arg, uint64_t next_offset)
{
    (void)next_offset;
    struct blob *copy = malloc(sizeof *copy);
    if (copy)
        *copy = *(struct blob *)arg;
    return copy;
}

/* The state's bytes: its 16-byte head, then a pattern of the checksum. */
static void fill(unsigned char *buf, size_t len, uint64_t sum, uint64_t at)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(sum >> (((at + i) % 8) * 8)) ^ (unsigned char)((at + i) >> 12);
}

static int blob_persist(void *arg, void *snap, rlog_sm_writer *w)
{
    (void)arg;
    const struct blob *b = snap;
    int rv = rlog_sm_write(w, b, sizeof *b);
    enum { CH = 1 << 20 };
    unsigned char *buf = malloc(CH);
    if (!buf)
        return 1;
    for (uint64_t at = 0; rv == 0 && at < state_bytes; at += CH) {
        size_t n = state_bytes - at < CH ? (size_t)(state_bytes - at) : CH;
        fill(buf, n, b->sum, at);
        rv = rlog_sm_write(w, buf, n);
    }
    free(buf);
    return rv;
}

static void blob_release(void *arg, void *snap)
{
    (void)arg;
    free(snap);
}

static int blob_restore(void *arg, uint64_t next_offset, rlog_sm_reader *r)
{
    struct blob *b = arg;
    size_t got;
    if (next_offset == 0) {
        *b = (struct blob){0};
        return 0;
    }
    if (rlog_sm_read(r, b, sizeof *b, &got) != 0 || got != sizeof *b)
        return 1;
    enum { CH = 1 << 20 };
    unsigned char *buf = malloc(CH), *want = malloc(CH);
    uint64_t at = 0;
    int rv = buf && want ? 0 : 1;
    while (rv == 0 && rlog_sm_read(r, buf, CH, &got) == 0 && got > 0) {
        fill(want, got, b->sum, at);
        if (memcmp(buf, want, got) != 0)
            rv = 1;
        at += got;
    }
    free(buf);
    free(want);
    return rv == 0 && at == state_bytes ? 0 : 1;
}

static void node3_log(void *arg, int level, const char *msg)
{
    (void)arg;
    unsigned long long bytes, ms;
    const char *p = strstr(msg, "'s snapshot of the records before");
    if (p && strstr(msg, "installed ") && (p = strchr(p, '(')) &&
        sscanf(p, "(%llu bytes in %llu ms", &bytes, &ms) == 2) {
        pthread_mutex_lock(&line_mu);
        inst_bytes = bytes;
        inst_ms = ms;
        pthread_mutex_unlock(&line_mu);
    }
    if (level >= 2)
        fprintf(stderr, "node: %s\n", msg);
}

static int victim = -1;

static void tune(int i, struct rlog_config *cfg)
{
    cfg->sm = &sms[i];
    cfg->sm_snapshot_every = UINT64_MAX; /* only the bench's own */
    if (i == victim)
        cfg->log_fn = node3_log;
}

static int append(rlog *log, uint64_t n, uint64_t *end)
{
    enum { PER_CALL = 4096, SIZE = 100 };
    static char rec[SIZE];
    static struct rlog_buf recs[PER_CALL];
    memset(rec, 'r', sizeof rec);
    for (int i = 0; i < PER_CALL; i++)
        recs[i] = (struct rlog_buf){rec, SIZE};
    uint64_t off = 0;
    for (uint64_t done = 0; done < n;) {
        unsigned k = n - done < PER_CALL ? (unsigned)(n - done) : PER_CALL;
        if (rlog_append_batch(log, recs, k, &off) != 0) {
            fprintf(stderr, "append: %s\n", rlog_errmsg(log));
            return 1;
        }
        done += k;
        *end = off + k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp";
    uint64_t mib = 256, n = 20000;
    int opt;
    while ((opt = getopt(argc, argv, "d:s:n:")) != -1) {
        if (opt == 'd')
            dir = optarg;
        else if (opt == 's')
            mib = strtoull(optarg, NULL, 10);
        else if (opt == 'n')
            n = strtoull(optarg, NULL, 10);
        else {
            fprintf(stderr, "usage: bench_install [-d DIR] [-s SIZE_MIB] [-n RECORDS]\n");
            return 2;
        }
    }
    if (mib == 0 || mib > 65536 || n == 0) {
        fprintf(stderr, "bench_install: -s 1..65536, -n at least 1\n");
        return 2;
    }
    state_bytes = mib << 20;
    for (int i = 0; i < 3; i++)
        sms[i] = (struct rlog_sm){blob_apply, blob_snapshot, blob_persist, blob_release,
                                  blob_restore, &blobs[i]};
    struct cluster3 cl;
    int port = 20000 + (int)(getpid() % 3000) * 3;
    victim = 2; /* set before open: its log lines are read */
    if (cluster3_open(&cl, dir, "liblog-bench-install", port, tune))
        return 1;
    int leader = cl.leader;
    if (leader == victim) {
        /* The victim must be a follower: hand leadership over. */
        uint64_t to = (uint64_t)((victim + 1) % 3) + 1;
        if (rlog_transfer_leadership(cl.nodes[leader], to) != 0) {
            fprintf(stderr, "transfer: %s\n", rlog_errmsg(cl.nodes[leader]));
            return 1;
        }
        leader = (victim + 1) % 3;
        sleep(1);
    }
    rlog *L = cl.nodes[leader];
    uint64_t end = 0;
    if (append(L, n, &end) != 0 || rlog_sm_wait(L, end, 60000) != 0)
        return 1;
    double t0 = now_s();
    uint64_t snap = 0;
    if (rlog_sm_snapshot(L, &snap) != 0) {
        fprintf(stderr, "snapshot: %s\n", rlog_errmsg(L));
        return 1;
    }
    double snap_s = now_s() - t0;
    if (rlog_trim(L, snap) != 0) {
        fprintf(stderr, "trim: %s\n", rlog_errmsg(L));
        return 1;
    }
    if (append(L, n / 10 + 1, &end) != 0)
        return 1;

    rlog_close(cl.nodes[victim]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cl.dirs[victim]);
    if (system(cmd) != 0)
        return 1;
    t0 = now_s();
    if (cluster3_open_node(&cl, victim, tune) != 0)
        return 1;
    int rv = rlog_sm_wait(cl.nodes[victim], end, 600000);
    double catchup_s = now_s() - t0;
    if (rv != 0) {
        fprintf(stderr, "wiped node: %s\n", rlog_errmsg(cl.nodes[victim]));
        return 1;
    }
    struct rlog_status st;
    rlog_status(cl.nodes[victim], &st);
    pthread_mutex_lock(&line_mu);
    unsigned long long bytes = inst_bytes, ms = inst_ms;
    pthread_mutex_unlock(&line_mu);
    double mb = (double)state_bytes / 1e6;
    double snap_rate = mb / snap_s, inst_rate = ms ? (double)bytes / 1e6 / ((double)ms / 1e3) : 0;
    printf("bench_install: host state %" PRIu64 " MiB, log trimmed to %" PRIu64 ", end %" PRIu64 "\n",
           mib, snap, end);
    printf("local_snapshot MB=%.1f s=%.3f MB_s=%.1f (snapshot + fdatasync on the leader)\n", mb,
           snap_s, snap_rate);
    printf("install bytes=%llu ms=%llu MB_s=%.1f installed=%" PRIu64 "\n", bytes, ms, inst_rate,
           st.snapshots_installed);
    printf("wiped_catchup s=%.3f (open to applied at %" PRIu64 ")\n", catchup_s, end);
    printf("install_vs_local_snapshot ratio=%.2f\n", snap_rate > 0 ? inst_rate / snap_rate : 0);
    if (st.snapshots_installed < 1 || !bytes) {
        fprintf(stderr, "bench_install: the wiped node did not install a snapshot\n");
        return 1;
    }
    return cluster3_close(&cl);
}
