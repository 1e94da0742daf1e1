/*
 * bench_node — `make bench`: liblog against this machine's floor and against a
 * cluster built on raw libraft (stock raft_uv + raft_uv_tcp), side by side in
 * one run. Every cluster is 3 separate processes on 127.0.0.1, data under
 * /tmp, fsync on.
 *
 * One binary, three roles:
 *   bench_node run [--quick] [--long] [--dir DIR] [--out FILE] [--w2-secs S] [--w4-rate R]
 *       the orchestrator: measures the floor, forks the clusters (this same
 *       binary in the node role, talking over pipes), drives the workloads on
 *       whichever node leads, and prints one `system=... workload=...` line
 *       per result, the ratios, a JSON file and a summary table.
 *   bench_node node --system liblog|libraft-uv --id N --peers A1,A2,A3 --dir D
 *       one cluster node; reads commands on stdin, answers on stdout (a reply
 *       ends with a line starting "OK" or "ERR"; result lines start with
 *       "system="). The node that leads runs the workload threads against its
 *       in-process handle; a follower runs the W4 reader.
 *   bench_node floor [--dir DIR]   only the floor.
 *   bench_node tls [--secs S] [--dir DIR]
 *       only the TLS comparison (also part of `run`): liblog with plain peer
 *       connections ("liblog-plain") and with mutual TLS ("liblog-tls", certificates
 *       from examples/mkcerts.sh), the same workloads in one run: W1 p50,
 *       W2 and W3 throughput, and a batched producer (64 x 1 KiB records
 *       per rlog_append_async, 8 calls in flight) in MB/s, and their ratios.
 *
 * Issue 18's lines: the floor of three sequential writers at once (a
 * replica's share of the disk is a third), the batched producer at 100 B,
 * 1 KiB and 4 KiB (16 calls in flight) against that share, W2 against its
 * Little's-law limit, and the node processes' CPU seconds per million
 * records and per GB (leader, follower) from /proc/PID/stat.
 *
 * Workloads (see issue 5): W1 latency (one append in flight; also on a
 * follower, "W1-forwarded": forwarded to the leader), W2/W3 throughput
 * (64 single-record appenders in flight, each starting its next append
 * from its completion callback; 100 B / 1 KiB), W4 end to end leader ->
 * follower reader (rlog_iter_next + rlog_iter_wait), W5 reads
 * (sequential rlog_iter, random rlog_read), W6 recovery (open time, peak RSS
 * of a node whose log holds 1 GiB; 10 GiB with --long). The baseline runs
 * W1-W3 with one record per raft_apply and default snapshot settings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "liblog.h"

/* W5 iterates this many 100 B records from the read cache, so the cache must
 * hold them (about 104 MB with batch framing): the nodes run with 192 MiB
 * instead of the 64 MiB default, and the rss lines say so. */
#define W5_RECORDS 1000000L
#define BENCH_CACHE_MB 192

/* ==== small helpers ========================================================== */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double now_s(void)
{
    return (double)now_ns() / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static void sleep_until_ns(uint64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v; p in [0,1]. */
struct pcts {
    double p50, p99, p999, max;
};

static struct pcts percentiles(float *v, size_t n)
{
    struct pcts r = {0, 0, 0, 0};
    if (n == 0)
        return r;
    qsort(v, n, sizeof *v, cmp_float);
    r.p50 = v[(size_t)(0.50 * (double)(n - 1))];
    r.p99 = v[(size_t)(0.99 * (double)(n - 1))];
    r.p999 = v[(size_t)(0.999 * (double)(n - 1))];
    r.max = v[n - 1];
    return r;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_node: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* ==== the floor ============================================================== */

struct lat_result {
    struct pcts p;
    double ops_s;
};

static struct lat_result floor_fdatasync(const char *dir, int n, bool prefilled)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/floor-%s.dat", dir, prefilled ? "ow" : "app");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    static char block[4096];
    memset(block, 'x', sizeof block);
    if (prefilled) {
        static char zeros[1 << 20];
        for (off_t off = 0; off < (off_t)n * 4096; off += (off_t)sizeof zeros)
            if (pwrite(fd, zeros, sizeof zeros, off) != (ssize_t)sizeof zeros)
                die("floor prefill: %s", strerror(errno));
        if (fsync(fd) != 0)
            die("fsync: %s", strerror(errno));
    }
    float *lat = malloc((size_t)n * sizeof *lat);
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        uint64_t t = now_ns();
        if (pwrite(fd, block, sizeof block, (off_t)i * 4096) != (ssize_t)sizeof block || fdatasync(fd) != 0)
            die("floor write: %s", strerror(errno));
        lat[i] = (float)(now_ns() - t) / 1e3f;
    }
    struct lat_result r = {.ops_s = n / ((double)(now_ns() - t0) / 1e9)};
    r.p = percentiles(lat, (size_t)n);
    free(lat);
    close(fd);
    unlink(path);
    return r;
}

struct seq_writer {
    const char *dir;
    int idx;
    long total_mb;
};

static void *seq_writer_main(void *arg)
{
    struct seq_writer *w = arg;
    char path[4200];
    snprintf(path, sizeof path, "%s/floor-seq%d.dat", w->dir, w->idx);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("%s: %s", path, strerror(errno));
    size_t chunk = 1 << 20;
    char *buf = malloc(chunk);
    memset(buf, 's', chunk);
    for (long i = 0; i < w->total_mb; i++)
        if (write(fd, buf, chunk) != (ssize_t)chunk || fdatasync(fd) != 0)
            die("seq write: %s", strerror(errno));
    free(buf);
    close(fd);
    unlink(path);
    return NULL;
}

/* Sequential 1 MiB writes, each followed by fdatasync. Returns MB/s. */
static double floor_seqwrite(const char *dir, long total_mb)
{
    struct seq_writer w = {dir, 0, total_mb};
    uint64_t t0 = now_ns();
    seq_writer_main(&w);
    double el = (double)(now_ns() - t0) / 1e9;
    return (double)total_mb * (double)(1 << 20) / el / 1e6;
}

/* Three sequential writers at once (1 MiB writes, each fdatasync'd), one per
 * replica of a 3-node cluster on this disk: their total MB/s, of which a
 * replica's share is a third. */
static double floor_seqwrite3(const char *dir, long mb_each)
{
    pthread_t t[3];
    struct seq_writer w[3];
    uint64_t t0 = now_ns();
    for (int i = 0; i < 3; i++) {
        w[i] = (struct seq_writer){dir, i, mb_each};
        pthread_create(&t[i], NULL, seq_writer_main, &w[i]);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    double el = (double)(now_ns() - t0) / 1e9;
    return 3.0 * (double)mb_each * (double)(1 << 20) / el / 1e6;
}

struct rtt_srv {
    int lfd, n;
};

static void *rtt_server(void *arg)
{
    struct rtt_srv *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[100];
    for (int i = 0; i < s->n; i++) {
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t r = read(fd, buf + got, sizeof buf - got);
            if (r <= 0)
                goto out;
            got += (size_t)r;
        }
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
            break;
    }
out:
    close(fd);
    return NULL;
}

/* Loopback TCP round trip of 100 bytes (TCP_NODELAY), ping-pong. */
static struct lat_result floor_rtt(int n)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        die("rtt listen: %s", strerror(errno));
    struct rtt_srv s = {lfd, n};
    pthread_t th;
    pthread_create(&th, NULL, rtt_server, &s);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("rtt connect: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[100];
    memset(buf, 'p', sizeof buf);
    float *lat = malloc((size_t)n * sizeof *lat);
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        uint64_t t = now_ns();
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
            die("rtt write");
        size_t got = 0;
        while (got < sizeof buf) {
            ssize_t r = read(fd, buf + got, sizeof buf - got);
            if (r <= 0)
                die("rtt read");
            got += (size_t)r;
        }
        lat[i] = (float)(now_ns() - t) / 1e3f;
    }
    struct lat_result r = {.ops_s = n / ((double)(now_ns() - t0) / 1e9)};
    r.p = percentiles(lat, (size_t)n);
    close(fd);
    pthread_join(th, NULL);
    close(lfd);
    free(lat);
    return r;
}

/* ==== one cluster node: the system under test ================================ */

enum { SYS_LIBLOG, SYS_RAFT };
static int g_sys;
static const char *g_sysname = "liblog";
static rlog *g_log;

/* An asynchronous append request, owned by the caller until cb runs. */
struct areq;
typedef void (*areq_cb)(struct areq *r, int status);
struct areq {
    areq_cb cb;
    void *owner;
    uint64_t t0;
    struct areq *next;
};

static atomic_ullong g_bytes_appended; /* successful record bytes, this process */

/* ---- the baseline: stock raft_uv + raft_uv_tcp, trivial FSM ---------------- */

struct bl_item {
    struct raft_apply apply;
    struct areq *r;
    struct raft_buffer buf;
    size_t len;
    struct bl_item *next;
};

static struct {
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft_fsm fsm;
    struct raft raft;
    pthread_mutex_t mu;
    struct bl_item *head, *tail;
    atomic_int role;
    atomic_ullong applied;
    pthread_t thread;
} bl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int bl_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL;
    atomic_fetch_add(&bl.applied, 1);
    return 0;
}

static int bl_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    *bufs = raft_malloc(sizeof **bufs);
    if (!*bufs)
        return RAFT_NOMEM;
    (*bufs)[0].base = raft_malloc(8);
    if (!(*bufs)[0].base) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    uint64_t v = atomic_load(&bl.applied);
    memcpy((*bufs)[0].base, &v, 8);
    (*bufs)[0].len = 8;
    *n = 1;
    return 0;
}

static int bl_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

static void bl_apply_cb(struct raft_apply *req, int status, void *result)
{
    (void)result;
    struct bl_item *it = req->data;
    if (status == 0)
        atomic_fetch_add(&g_bytes_appended, it->len);
    it->r->cb(it->r, status == 0 ? 0 : -1);
    free(it);
}

static void bl_wake_cb(uv_async_t *a)
{
    (void)a;
    pthread_mutex_lock(&bl.mu);
    struct bl_item *it = bl.head;
    bl.head = bl.tail = NULL;
    pthread_mutex_unlock(&bl.mu);
    while (it) {
        struct bl_item *next = it->next;
        it->apply.data = it;
        int rv = raft_apply(&bl.raft, &it->apply, &it->buf, 1, bl_apply_cb);
        if (rv != 0) {
            raft_free(it->buf.base);
            it->r->cb(it->r, -1);
            free(it);
        }
        it = next;
    }
}

static void bl_tick_cb(uv_timer_t *t)
{
    (void)t;
    atomic_store(&bl.role, raft_state(&bl.raft));
}

static void *bl_thread(void *arg)
{
    (void)arg;
    uv_run(&bl.loop, UV_RUN_DEFAULT);
    return NULL;
}

static int bl_append_async(const void *rec, size_t len, struct areq *r)
{
    struct bl_item *it = calloc(1, sizeof *it);
    if (!it)
        return -1;
    size_t padded = (len + 7) & ~(size_t)7; /* libraft 0.15's uv backend mis-frames other lengths */
    it->buf.base = raft_malloc(padded);
    if (!it->buf.base) {
        free(it);
        return -1;
    }
    memcpy(it->buf.base, rec, len);
    memset((char *)it->buf.base + len, 0, padded - len);
    it->buf.len = padded;
    it->len = len;
    it->r = r;
    pthread_mutex_lock(&bl.mu);
    if (bl.tail)
        bl.tail->next = it;
    else
        bl.head = it;
    bl.tail = it;
    pthread_mutex_unlock(&bl.mu);
    uv_async_send(&bl.wake);
    return 0;
}

static void bl_open(uint64_t id, const char *addrs[3], const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", dir, strerror(errno));
    if (uv_loop_init(&bl.loop) != 0)
        die("uv_loop_init");
    int rv = raft_uv_tcp_init(&bl.transport, &bl.loop);
    if (rv == 0)
        rv = raft_uv_init(&bl.io, &bl.loop, dir, &bl.transport);
    if (rv != 0)
        die("raft_uv_init: %s", raft_strerror(rv));
    bl.fsm = (struct raft_fsm){.version = 1,
                               .apply = bl_fsm_apply,
                               .snapshot = bl_fsm_snapshot,
                               .restore = bl_fsm_restore};
    rv = raft_init(&bl.raft, &bl.io, &bl.fsm, id, addrs[id - 1]);
    if (rv != 0)
        die("raft_init: %s", raft_strerror(rv));
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < 3; i++)
        if (raft_configuration_add(&conf, i + 1, addrs[i], RAFT_VOTER) != 0)
            die("raft_configuration_add");
    rv = raft_bootstrap(&bl.raft, &conf);
    if (rv != 0 && rv != RAFT_CANTBOOTSTRAP)
        die("raft_bootstrap: %s", raft_strerror(rv));
    raft_configuration_close(&conf);
    rv = raft_start(&bl.raft);
    if (rv != 0)
        die("raft_start: %s", raft_strerror(rv));
    uv_async_init(&bl.loop, &bl.wake, bl_wake_cb);
    uv_timer_init(&bl.loop, &bl.tick);
    uv_timer_start(&bl.tick, bl_tick_cb, 10, 10);
    pthread_create(&bl.thread, NULL, bl_thread, NULL);
}

/* ---- the system interface the workloads use ---------------------------------- */

static void ll_cb(void *arg, int status, uint64_t off)
{
    (void)off;
    struct areq *r = arg;
    r->cb(r, status);
}

static int sys_append_async(const void *rec, size_t len, struct areq *r)
{
    if (g_sys == SYS_RAFT)
        return bl_append_async(rec, len, r);
    struct rlog_buf b = {rec, len};
    return rlog_append_async(g_log, &b, 1, ll_cb, r);
}

struct sync_wait {
    struct areq r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, status;
};

static void sync_cb(struct areq *r, int status)
{
    struct sync_wait *w = (struct sync_wait *)r;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->status = status;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* One append, waiting for its commit (liblog: the blocking rlog_append). */
static int sys_append(const void *rec, size_t len)
{
    if (g_sys == SYS_LIBLOG) {
        int rv = rlog_append(g_log, rec, len, NULL);
        if (rv == 0)
            atomic_fetch_add(&g_bytes_appended, len);
        return rv;
    }
    struct sync_wait w = {.r.cb = sync_cb, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (bl_append_async(rec, len, &w.r) != 0)
        return -1;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    return w.status;
}

static const char *sys_role(uint64_t *commit)
{
    *commit = 0;
    if (g_sys == SYS_RAFT) {
        *commit = atomic_load(&bl.applied);
        int s = atomic_load(&bl.role);
        return s == RAFT_LEADER ? "leader" : s == RAFT_FOLLOWER ? "follower" : s == RAFT_CANDIDATE ? "candidate" : "unavailable";
    }
    struct rlog_status st;
    if (rlog_status(g_log, &st) != 0)
        return "unavailable";
    *commit = st.commit_offset;
    return rlog_role_name(st.role);
}

/* ---- W1: one append in flight ------------------------------------------------- */

/* wl: "W1" on the leader; "W1-forwarded" on a follower, whose appends
 * go to the leader (forward_appends). */
static void cmd_w1(const char *wl, int warm, int n, size_t size)
{
    char *rec = malloc(size);
    memset(rec, 'r', size);
    for (int i = 0; i < warm; i++)
        if (sys_append(rec, size) != 0) {
            printf("ERR warm-up append failed: %s\n", g_sys == SYS_LIBLOG ? rlog_errmsg(g_log) : "raft_apply");
            free(rec);
            return;
        }
    float *lat = malloc((size_t)n * sizeof *lat);
    uint64_t t0 = now_ns();
    for (int i = 0; i < n; i++) {
        uint64_t t = now_ns();
        if (sys_append(rec, size) != 0) {
            printf("ERR append failed: %s\n", g_sys == SYS_LIBLOG ? rlog_errmsg(g_log) : "raft_apply");
            free(rec);
            free(lat);
            return;
        }
        lat[i] = (float)(now_ns() - t) / 1e3f;
    }
    double el = (double)(now_ns() - t0) / 1e9;
    struct pcts p = percentiles(lat, (size_t)n);
    printf("system=%s workload=%s record_b=%zu appends=%d appends_s=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f\n",
           g_sysname, wl, size, n, n / el, p.p50, p.p99, p.p999, p.max);
    printf("OK\n");
    free(rec);
    free(lat);
}

/* ---- W2/W3: many appends in flight from several host threads ------------------
 * Each thread starts `window` appends; a completion starts that slot's next
 * append from the callback (each slot is an independent single-record
 * appender: its next append waits for its previous acknowledgement). The
 * threads only start the slots and wait for the drain. Before, a
 * completion handed its slot back to a thread waiting on a condition
 * variable: a futex wake-up and a context switch per record, in the
 * leader's process, on this 2-core machine, which counted the harness's
 * wake-ups as liblog's CPU (W2 64k records/s and 15.7 CPU s per M records
 * then, 110k and 7.9 chained, in back-to-back bench_node run --quick). */

struct tp {
    size_t size;
    char *payload;
    int window;
    uint64_t deadline;
    long max;
    atomic_long issued, completed, failed;
    float *lat;
    atomic_ullong last_done;
};

struct tp_thread {
    struct tp *tp;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
    struct areq *free_list;
    struct areq *reqs;
};

static void tp_done(struct areq *r, int status)
{
    struct tp_thread *t = r->owner;
    struct tp *tp = t->tp;
    uint64_t now = now_ns();
    if (status != 0) {
        atomic_fetch_add(&tp->failed, 1);
    } else {
        long i = atomic_fetch_add(&tp->completed, 1);
        if (i < tp->max)
            tp->lat[i] = (float)(now - r->t0) / 1e3f;
        if (g_sys == SYS_LIBLOG)
            atomic_fetch_add(&g_bytes_appended, tp->size);
    }
    atomic_store(&tp->last_done, now);
    if (status == 0 && now < tp->deadline && atomic_fetch_add(&tp->issued, 1) < tp->max &&
        atomic_load(&tp->failed) <= 1000) {
        r->t0 = now;
        if (sys_append_async(tp->payload, tp->size, r) == 0)
            return; /* the slot goes on */
        atomic_fetch_add(&tp->failed, 1);
    }
    pthread_mutex_lock(&t->mu);
    r->next = t->free_list;
    t->free_list = r;
    t->inflight--;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *tp_main(void *arg)
{
    struct tp_thread *t = arg;
    struct tp *tp = t->tp;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        while (t->inflight >= tp->window)
            pthread_cond_wait(&t->cv, &t->mu);
        struct areq *r = t->free_list;
        t->free_list = r->next;
        t->inflight++;
        pthread_mutex_unlock(&t->mu);
        bool stop = now_ns() >= tp->deadline || atomic_fetch_add(&tp->issued, 1) >= tp->max ||
                    atomic_load(&tp->failed) > 1000;
        int rv = 0;
        if (!stop) {
            r->t0 = now_ns();
            rv = sys_append_async(tp->payload, tp->size, r);
            if (rv != 0)
                atomic_fetch_add(&tp->failed, 1);
        }
        if (stop || rv != 0) {
            pthread_mutex_lock(&t->mu);
            r->next = t->free_list;
            t->free_list = r;
            t->inflight--;
            pthread_mutex_unlock(&t->mu);
            if (stop)
                break;
            sleep_ms(1);
        }
    }
    /* drain, bounded */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&t->mu);
    while (t->inflight > 0)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &dl) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void cmd_tp(const char *name, size_t size, int threads, int window, double secs, long max)
{
    struct tp tp = {.size = size, .window = window, .max = max};
    tp.payload = malloc(size);
    memset(tp.payload, 'w', size);
    tp.lat = malloc((size_t)max * sizeof *tp.lat);
    struct tp_thread *ts = calloc((size_t)threads, sizeof *ts);
    uint64_t t0 = now_ns();
    tp.deadline = t0 + (uint64_t)(secs * 1e9);
    for (int i = 0; i < threads; i++) {
        ts[i].tp = &tp;
        pthread_mutex_init(&ts[i].mu, NULL);
        pthread_cond_init(&ts[i].cv, NULL);
        ts[i].reqs = calloc((size_t)window, sizeof *ts[i].reqs);
        for (int j = 0; j < window; j++) {
            ts[i].reqs[j].cb = tp_done;
            ts[i].reqs[j].owner = &ts[i];
            ts[i].reqs[j].next = ts[i].free_list;
            ts[i].free_list = &ts[i].reqs[j];
        }
    }
    struct rlog_status st0 = {0}, st1 = {0};
    if (g_sys == SYS_LIBLOG)
        rlog_status(g_log, &st0);
    for (int i = 0; i < threads; i++)
        pthread_create(&ts[i].th, NULL, tp_main, &ts[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(ts[i].th, NULL);
    if (g_sys == SYS_LIBLOG)
        rlog_status(g_log, &st1);
    uint64_t entries = st1.commit_index - st0.commit_index;
    long done = atomic_load(&tp.completed), failed = atomic_load(&tp.failed);
    uint64_t last = atomic_load(&tp.last_done);
    double el = (double)((last > t0 ? last : now_ns()) - t0) / 1e9;
    size_t nl = (size_t)(done < max ? done : max);
    struct pcts p = percentiles(tp.lat, nl);
    printf("system=%s workload=%s record_b=%zu in_flight=%d threads=%d records=%ld failed=%ld secs=%.2f "
           "records_s=%.0f mb_s=%.2f p50_us=%.0f p99_us=%.0f max_us=%.0f",
           g_sysname, name, size, threads * window, threads, done, failed, el, done / el,
           (double)done * (double)size / el / 1e6, p.p50, p.p99, p.max);
    if (g_sys == SYS_LIBLOG && entries > 0) /* raft entries committed meanwhile: batching at work */
        printf(" raft_entries=%" PRIu64 " entries_s=%.0f records_per_entry=%.1f", entries, (double)entries / el,
               (double)done / (double)entries);
    printf("\n");
    printf("OK\n");
    for (int i = 0; i < threads; i++)
        free(ts[i].reqs);
    free(ts);
    free(tp.lat);
    free(tp.payload);
}

/* ---- W4: leader -> follower reader ------------------------------------------------ */

#define W4_MAGIC 0x57344c42u

struct w4rec {
    uint32_t magic, seq;
    uint64_t t_ns;
};

static struct {
    pthread_t th;
    bool running;
    uint64_t from;
    long count, got, bad;
    double timeout_s;
    float *lat;
    int err;
} w4r;

static void *w4_reader(void *arg)
{
    (void)arg;
    rlog_iter *it;
    if (rlog_iter_open(g_log, w4r.from, UINT64_MAX, &it) != 0) {
        w4r.err = 1;
        return NULL;
    }
    double deadline = now_s() + w4r.timeout_s;
    while (w4r.got < w4r.count && now_s() < deadline) {
        const void *rec;
        size_t len;
        uint64_t off;
        int rv = rlog_iter_next(it, &rec, &len, &off);
        if (rv == RLOG_ENOTFOUND) {
            rlog_iter_wait(it, 100); /* sleeps on the commit fence */
            continue;
        }
        if (rv != 0) {
            w4r.err = rv;
            break;
        }
        uint64_t t = now_ns();
        struct w4rec h;
        if (len < sizeof h) {
            w4r.bad++;
            continue;
        }
        memcpy(&h, rec, sizeof h);
        if (h.magic != W4_MAGIC) {
            w4r.bad++;
            continue;
        }
        w4r.lat[w4r.got++] = (float)(t - h.t_ns) / 1e3f;
    }
    rlog_iter_close(it);
    return NULL;
}

static void cmd_w4read(uint64_t from, long count, double timeout_s)
{
    if (g_sys != SYS_LIBLOG || w4r.running) {
        printf("ERR W4 reader: liblog only, one at a time\n");
        return;
    }
    free(w4r.lat);
    w4r.from = from;
    w4r.count = count;
    w4r.got = w4r.bad = 0;
    w4r.err = 0;
    w4r.timeout_s = timeout_s;
    w4r.lat = malloc((size_t)count * sizeof *w4r.lat);
    w4r.running = true;
    pthread_create(&w4r.th, NULL, w4_reader, NULL);
    printf("OK\n");
}

static void cmd_w4wait(const char *label, double rate)
{
    if (!w4r.running) {
        printf("ERR no W4 reader\n");
        return;
    }
    pthread_join(w4r.th, NULL);
    w4r.running = false;
    struct pcts p = percentiles(w4r.lat, (size_t)w4r.got);
    printf("system=%s workload=W4 at=%s rate_s=%.0f records=%ld expected=%ld p50_us=%.0f p99_us=%.0f "
           "p999_us=%.0f max_us=%.0f reader=follower_rlog_iter_wait\n",
           g_sysname, label, rate, w4r.got, w4r.count, p.p50, p.p99, p.p999, p.max);
    if (w4r.err || w4r.got < w4r.count)
        printf("ERR reader got %ld of %ld records (error %d, %ld foreign)\n", w4r.got, w4r.count, w4r.err, w4r.bad);
    else
        printf("OK\n");
}

struct w4send {
    atomic_long inflight, failed, acked;
    float *lat;
};

struct w4req {
    struct areq r;
    struct w4send *s;
};

static void w4_done(struct areq *r, int status)
{
    struct w4req *q = (struct w4req *)r;
    struct w4send *s = q->s;
    if (status != 0) {
        atomic_fetch_add(&s->failed, 1);
    } else {
        long i = atomic_fetch_add(&s->acked, 1);
        s->lat[i] = (float)(now_ns() - r->t0) / 1e3f;
    }
    atomic_fetch_sub(&s->inflight, 1);
    free(q);
}

/* Open loop: record i is due at t0 + i/rate; the send time goes in the record. */
static void cmd_w4send(const char *label, double rate, long count, size_t size)
{
    struct w4send s = {.lat = malloc((size_t)count * sizeof(float))};
    char *rec = calloc(1, size < sizeof(struct w4rec) ? sizeof(struct w4rec) : size);
    uint64_t t0 = now_ns();
    double interval = 1e9 / rate;
    long sent = 0;
    for (long i = 0; i < count; i++) {
        uint64_t due = t0 + (uint64_t)((double)i * interval);
        if (now_ns() < due)
            sleep_until_ns(due);
        while (atomic_load(&s.inflight) >= 4096)
            sleep_ms(1);
        struct w4req *q = calloc(1, sizeof *q);
        q->r.cb = w4_done;
        q->s = &s;
        struct w4rec h = {W4_MAGIC, (uint32_t)i, now_ns()};
        memcpy(rec, &h, sizeof h);
        q->r.t0 = h.t_ns;
        atomic_fetch_add(&s.inflight, 1);
        if (sys_append_async(rec, size, &q->r) != 0) {
            atomic_fetch_sub(&s.inflight, 1);
            atomic_fetch_add(&s.failed, 1);
            free(q);
            continue;
        }
        sent++;
    }
    double deadline = now_s() + 60;
    while (atomic_load(&s.inflight) > 0 && now_s() < deadline)
        sleep_ms(1);
    double el = (double)(now_ns() - t0) / 1e9;
    long acked = atomic_load(&s.acked);
    struct pcts p = percentiles(s.lat, (size_t)acked);
    printf("system=%s workload=W4-leader-ack at=%s rate_s=%.0f achieved_s=%.0f records=%ld p50_us=%.0f p99_us=%.0f\n",
           g_sysname, label, rate, acked / el, acked, p.p50, p.p99);
    if (atomic_load(&s.inflight) > 0)
        printf("ERR %ld appends still in flight\n", (long)atomic_load(&s.inflight));
    else
        printf("OK sent=%ld failed=%ld\n", sent, (long)atomic_load(&s.failed));
    free(s.lat);
    free(rec);
}

/* ---- W5: reads ----------------------------------------------------------------- */

static bool drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0)
        return false;
    bool ok = write(fd, "1", 1) == 1;
    close(fd);
    return ok;
}

static void w5_seq(uint64_t from, long count, const char *source, const char *pc)
{
    rlog_iter *it;
    if (rlog_iter_open(g_log, from, from + (uint64_t)count, &it) != 0) {
        printf("# iter_open failed\n");
        return;
    }
    struct rlog_status s0, s1;
    rlog_status(g_log, &s0);
    uint64_t t0 = now_ns(), sum = 0, bytes = 0;
    long n = 0;
    const void *rec;
    size_t len;
    int rv;
    while ((rv = rlog_iter_next(it, &rec, &len, NULL)) == 0) {
        sum += len ? ((const unsigned char *)rec)[len - 1] : 0;
        bytes += len;
        n++;
    }
    double el = (double)(now_ns() - t0) / 1e9;
    rlog_iter_close(it);
    rlog_status(g_log, &s1);
    /* The cache counters say where the records really came from. */
    printf("system=%s workload=W5-seq source=%s pagecache=%s records=%ld records_s=%.0f mb_s=%.1f secs=%.3f "
           "cache_hits=%" PRIu64 " cache_misses=%" PRIu64 " end=%s chk=%" PRIu64 "\n",
           g_sysname, source, pc, n, n / el, (double)bytes / el / 1e6, el, s1.cache_hits - s0.cache_hits,
           s1.cache_misses - s0.cache_misses, rlog_errname(rv), sum % 10);
}

static void w5_rand(uint64_t lo, uint64_t hi, long n, const char *pc)
{
    float *lat = malloc((size_t)n * sizeof *lat);
    uint64_t seed = 0x9e3779b97f4a7c15ull, t0 = now_ns();
    long ok = 0;
    for (long i = 0; i < n; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        uint64_t off = lo + seed % (hi - lo);
        void *buf;
        size_t len;
        uint64_t t = now_ns();
        if (rlog_read(g_log, off, &buf, &len) == 0) {
            lat[ok++] = (float)(now_ns() - t) / 1e3f;
            rlog_free(buf);
        }
    }
    double el = (double)(now_ns() - t0) / 1e9;
    struct pcts p = percentiles(lat, (size_t)ok);
    printf("system=%s workload=W5-rand cache=on pagecache=%s reads=%ld failed=%ld reads_s=%.0f p50_us=%.1f p99_us=%.1f max_us=%.0f\n",
           g_sysname, pc, ok, n - ok, ok / el, p.p50, p.p99, p.max);
    free(lat);
}

/* [cfrom, cfrom + ccount): records just appended, so in the read cache;
 * [dfrom, dfrom + dcount): W2's, pushed out of it since by W3 and the load,
 * so read from the segment files, first with the page cache dropped. */
static void cmd_w5(uint64_t cfrom, long ccount, uint64_t dfrom, long dcount, long nrand)
{
    uint64_t commit;
    sys_role(&commit);
    if (g_sys != SYS_LIBLOG || commit < cfrom + (uint64_t)ccount) {
        printf("ERR W5: records %" PRIu64 "..%" PRIu64 " not committed\n", cfrom, cfrom + (uint64_t)ccount);
        return;
    }
    w5_seq(cfrom, ccount, "read_cache", "warm");
    if (dcount > 0) {
        bool cold = drop_caches();
        w5_seq(dfrom, dcount, "disk", cold ? "cold" : "warm_no_drop_permission");
        w5_seq(dfrom, dcount, "disk", "warm");
    }
    w5_rand(0, commit, nrand, "warm");
    if (drop_caches())
        w5_rand(0, commit, nrand / 10, "cold");
    printf("OK\n");
}

/* ---- W6: fill the log, then the orchestrator restarts the node ------------------ */

struct fill {
    atomic_int inflight, failed;
};

struct fill_req {
    struct areq r;
    struct fill *f;
    size_t bytes;
};

static void fill_done(struct areq *r, int status)
{
    struct fill_req *q = (struct fill_req *)r;
    if (status != 0)
        atomic_fetch_add(&q->f->failed, 1);
    else
        atomic_fetch_add(&g_bytes_appended, q->bytes);
    atomic_fetch_sub(&q->f->inflight, 1);
    free(q);
}

/* Appends rlog_append_async calls of RECS records of RSZ bytes, WINDOW in
 * flight, until the log holds target bytes: W6's 1 GiB, and W5's records. */
static void cmd_fill(const char *label, uint64_t target, int RSZ, int RECS)
{
    enum { WINDOW = 8 };
    char *data = malloc((size_t)RECS * (size_t)RSZ);
    memset(data, 'f', (size_t)RECS * (size_t)RSZ);
    struct rlog_buf *bufs = calloc((size_t)RECS, sizeof *bufs);
    for (int i = 0; i < RECS; i++)
        bufs[i] = (struct rlog_buf){data + (size_t)i * (size_t)RSZ, (size_t)RSZ};
    struct fill f = {0};
    uint64_t start = atomic_load(&g_bytes_appended), t0 = now_ns(), issued = start;
    while (issued < target && atomic_load(&f.failed) == 0) {
        while (atomic_load(&f.inflight) >= WINDOW)
            usleep(200);
        struct fill_req *q = calloc(1, sizeof *q);
        q->r.cb = fill_done;
        q->f = &f;
        q->bytes = (size_t)RECS * (size_t)RSZ;
        atomic_fetch_add(&f.inflight, 1);
        if (rlog_append_async(g_log, bufs, RECS, ll_cb, &q->r) != 0) {
            atomic_fetch_sub(&f.inflight, 1);
            atomic_fetch_add(&f.failed, 1);
            free(q);
            break;
        }
        issued += q->bytes;
    }
    double deadline = now_s() + 120;
    while (atomic_load(&f.inflight) > 0 && now_s() < deadline)
        sleep_ms(1);
    double el = (double)(now_ns() - t0) / 1e9;
    uint64_t added = atomic_load(&g_bytes_appended) - start;
    printf("system=%s workload=%s record_b=%d records_per_call=%d log_bytes=%" PRIu64 " added_mb=%.0f secs=%.1f mb_s=%.1f\n",
           g_sysname, label, RSZ, RECS, (uint64_t)atomic_load(&g_bytes_appended), (double)added / 1e6, el,
           (double)added / el / 1e6);
    if (atomic_load(&f.failed) || atomic_load(&f.inflight))
        printf("ERR fill: %d failed, %d in flight: %s\n", atomic_load(&f.failed), atomic_load(&f.inflight),
               rlog_errmsg(g_log));
    else
        printf("OK\n");
    free(bufs);
    free(data);
}

/* The batched producer: rlog_append_async calls of RECS records of RSZ
 * bytes, WINDOW calls in flight, for secs seconds (after a 1 s warm-up).
 * A completion starts its slot's next call from the callback, as an
 * asynchronous host keeps its window full; a thread polling the window
 * (usleep(50) before) spent the leader process's CPU on wake-ups that
 * counted as liblog's. */
struct batch_run {
    struct rlog_buf *bufs;
    size_t recs;
    uint64_t end; /* now_ns() after which no call starts */
    atomic_int inflight, failed;
};

struct batch_req {
    struct areq r;
    struct batch_run *b;
};

static void batch_done(struct areq *r, int status)
{
    struct batch_req *q = (struct batch_req *)r;
    struct batch_run *b = q->b;
    if (status != 0)
        atomic_fetch_add(&b->failed, 1);
    else
        atomic_fetch_add(&g_bytes_appended, (uint64_t)b->recs * b->bufs[0].len);
    if (status == 0 && now_ns() < b->end &&
        rlog_append_async(g_log, b->bufs, b->recs, ll_cb, &q->r) == 0)
        return;
    atomic_fetch_sub(&b->inflight, 1);
}

static void cmd_batch(const char *label, double secs, int RSZ, int RECS, int WINDOW)
{
    char *data = malloc((size_t)RECS * (size_t)RSZ);
    memset(data, 'b', (size_t)RECS * (size_t)RSZ);
    struct rlog_buf *bufs = calloc((size_t)RECS, sizeof *bufs);
    for (int i = 0; i < RECS; i++)
        bufs[i] = (struct rlog_buf){data + (size_t)i * (size_t)RSZ, (size_t)RSZ};
    uint64_t t0 = now_ns(), warm_end = t0 + 1000000000ull;
    static struct batch_run b;
    b = (struct batch_run){.bufs = bufs, .recs = (size_t)RECS,
                           .end = warm_end + (uint64_t)(secs * 1e9)};
    struct batch_req *reqs = calloc((size_t)WINDOW, sizeof *reqs);
    for (int i = 0; i < WINDOW && g_sys == SYS_LIBLOG; i++) {
        reqs[i] = (struct batch_req){.r = {.cb = batch_done}, .b = &b};
        atomic_fetch_add(&b.inflight, 1);
        if (rlog_append_async(g_log, bufs, (size_t)RECS, ll_cb, &reqs[i].r) != 0) {
            atomic_fetch_sub(&b.inflight, 1);
            atomic_fetch_add(&b.failed, 1);
            break;
        }
    }
    if (g_sys != SYS_LIBLOG)
        atomic_fetch_add(&b.failed, 1);
    while (now_ns() < warm_end && !atomic_load(&b.failed))
        sleep_ms(1);
    uint64_t t_start = now_ns(), start = atomic_load(&g_bytes_appended);
    while (now_ns() < b.end && !atomic_load(&b.failed))
        sleep_ms(1);
    uint64_t added = atomic_load(&g_bytes_appended) - start;
    double el = (double)(now_ns() - t_start) / 1e9;
    double deadline = now_s() + 120;
    while (atomic_load(&b.inflight) > 0 && now_s() < deadline)
        sleep_ms(1);
    if (atomic_load(&b.failed) || atomic_load(&b.inflight)) {
        printf("ERR batch: %d failed, %d in flight\n", atomic_load(&b.failed), atomic_load(&b.inflight));
    } else {
        printf("system=%s workload=%s record_b=%d records_per_call=%d in_flight=%d secs=%.1f "
               "records_s=%.0f mb_s=%.1f\n",
               g_sysname, label, RSZ, RECS, WINDOW, el, (double)added / RSZ / el, (double)added / el / 1e6);
        printf("OK\n");
    }
    if (!atomic_load(&b.inflight)) { /* else a late callback may still use them */
        free(reqs);
        free(bufs);
        free(data);
    }
}

/* ---- the node process --------------------------------------------------------------- */

static uint64_t g_open_start;

static const char *g_certs; /* mkcerts.sh output for liblog-tls nodes */

static int node_main(int argc, char **argv)
{
    uint64_t id = 0;
    const char *peers = NULL, *dir = NULL, *sys = "liblog", *certs = NULL;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--id"))
            id = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--peers"))
            peers = argv[i + 1];
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--system"))
            sys = argv[i + 1];
        else if (!strcmp(argv[i], "--certs"))
            certs = argv[i + 1];
        else
            die("node: unknown option %s", argv[i]);
    }
    if (id < 1 || id > 3 || !peers || !dir)
        die("node: need --id 1..3 --peers A1,A2,A3 --dir D");
    setvbuf(stdout, NULL, _IOLBF, 0);
    char pbuf[256];
    snprintf(pbuf, sizeof pbuf, "%s", peers);
    const char *addrs[3];
    char *save = NULL;
    for (int i = 0; i < 3; i++) {
        addrs[i] = strtok_r(i ? NULL : pbuf, ",", &save);
        if (!addrs[i])
            die("node: --peers needs 3 addresses");
    }
    g_open_start = now_ns();
    double open_ms, status_ms;
    if (!strcmp(sys, "libraft-uv")) {
        g_sys = SYS_RAFT;
        g_sysname = "libraft-uv";
        bl_open(id, addrs, dir);
        open_ms = (double)(now_ns() - g_open_start) / 1e6;
        status_ms = open_ms;
    } else {
        struct rlog_peer rp[3];
        for (int i = 0; i < 3; i++)
            rp[i] = (struct rlog_peer){(uint64_t)i + 1, addrs[i]};
        struct rlog_config c;
        rlog_config_init(&c);
        c.id = id;
        c.address = addrs[id - 1];
        c.data_dir = dir;
        c.peers = rp;
        c.n_peers = 3;
        c.cache_bytes = (uint64_t)BENCH_CACHE_MB << 20;
        char ca[512], crt[512], key[512];
        g_sysname = sys; /* liblog, liblog-plain or liblog-tls */
        if (!strcmp(sys, "liblog-tls")) {
            if (!certs)
                die("node: liblog-tls needs --certs DIR");
            snprintf(ca, sizeof ca, "%s/ca.crt", certs);
            snprintf(crt, sizeof crt, "%s/node-%" PRIu64 ".crt", certs, id);
            snprintf(key, sizeof key, "%s/node-%" PRIu64 ".key", certs, id);
            c.tls_ca_file = ca;
            c.tls_cert_file = crt;
            c.tls_key_file = key;
        }
        char err[512];
        int rv = rlog_open(&c, &g_log, err, sizeof err);
        if (rv != 0)
            die("rlog_open: %s: %s", rlog_errname(rv), err);
        open_ms = (double)(now_ns() - g_open_start) / 1e6;
        struct rlog_status st;
        if (rlog_status(g_log, &st) != 0)
            die("rlog_status: %s", rlog_errmsg(g_log));
        status_ms = (double)(now_ns() - g_open_start) / 1e6;
    }
    printf("READY open_ms=%.1f status_ms=%.1f pid=%d\n", open_ms, status_ms, (int)getpid());
    char line[512];
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32] = "", label[64] = "";
        double a = 0, b = 0, c2 = 0, d = 0, e = 0;
        sscanf(line, "%31s", cmd);
        if (!strcmp(cmd, "STATUS")) {
            uint64_t commit;
            const char *role = sys_role(&commit);
            printf("OK role=%s commit=%" PRIu64 " appended_bytes=%" PRIu64 "\n", role, commit,
                   (uint64_t)atomic_load(&g_bytes_appended));
        } else if (!strcmp(cmd, "W1") && sscanf(line, "%*s %lf %lf %lf", &a, &b, &c2) == 3) {
            cmd_w1("W1", (int)a, (int)b, (size_t)c2);
        } else if (!strcmp(cmd, "W1F") && sscanf(line, "%*s %lf %lf %lf", &a, &b, &c2) == 3) {
            cmd_w1("W1-forwarded", (int)a, (int)b, (size_t)c2);
        } else if (!strcmp(cmd, "TP") &&
                   sscanf(line, "%*s %63s %lf %lf %lf %lf %lf", label, &a, &b, &c2, &d, &e) == 6) {
            cmd_tp(label, (size_t)a, (int)b, (int)c2, d, (long)e);
        } else if (!strcmp(cmd, "W4READ") && sscanf(line, "%*s %lf %lf %lf", &a, &b, &c2) == 3) {
            cmd_w4read((uint64_t)a, (long)b, c2);
        } else if (!strcmp(cmd, "W4WAIT") && sscanf(line, "%*s %63s %lf", label, &a) == 2) {
            cmd_w4wait(label, a);
        } else if (!strcmp(cmd, "W4SEND") && sscanf(line, "%*s %63s %lf %lf %lf", label, &a, &b, &c2) == 4) {
            cmd_w4send(label, a, (long)b, (size_t)c2);
        } else if (!strcmp(cmd, "W5") && sscanf(line, "%*s %lf %lf %lf %lf %lf", &a, &b, &c2, &d, &e) == 5) {
            cmd_w5((uint64_t)a, (long)b, (uint64_t)c2, (long)d, (long)e);
        } else if (!strcmp(cmd, "BATCH") &&
                   sscanf(line, "%*s %63s %lf %lf %lf %lf", label, &a, &b, &c2, &d) == 5) {
            cmd_batch(label, a, (int)b, (int)c2, (int)d);
        } else if (!strcmp(cmd, "FILL") && sscanf(line, "%*s %63s %lf %lf %lf", label, &a, &b, &c2) == 4) {
            cmd_fill(label, (uint64_t)a, (int)b, (int)c2);
        } else if (!strcmp(cmd, "WAITCOMMIT") && sscanf(line, "%*s %lf %lf", &a, &b) == 2) {
            double deadline = now_s() + b;
            uint64_t commit = 0;
            while (sys_role(&commit), commit < (uint64_t)a && now_s() < deadline)
                sleep_ms(5);
            if (commit >= (uint64_t)a)
                printf("OK ms=%.1f\n", (double)(now_ns() - g_open_start) / 1e6);
            else
                printf("ERR commit %" PRIu64 " < %.0f after %.0f s\n", commit, a, b);
        } else if (!strcmp(cmd, "QUIT")) {
            int rv = 0;
            if (g_sys == SYS_LIBLOG)
                rv = rlog_close(g_log);
            printf("OK close=%s\n", rlog_errname(rv));
            fflush(stdout);
            _exit(0);
        } else {
            printf("ERR bad command: %s", line);
        }
        fflush(stdout);
    }
    _exit(0); /* orchestrator gone */
}

/* ==== the orchestrator =================================================================== */

#define MAX_RESULTS 256

static char *g_results[MAX_RESULTS];
static int g_nresults;
static char g_top[256];

struct child {
    pid_t pid;
    int in, out; /* our ends: write commands to in, read replies from out */
    char buf[8192];
    size_t len;
    uint64_t id;
    char dir[512], addr[32];
};

static struct child g_kids[3];
static const char *g_self;

static void add_result(const char *line)
{
    if (g_nresults < MAX_RESULTS)
        g_results[g_nresults++] = strdup(line);
    printf("%s\n", line);
    fflush(stdout);
}

static void kill_child(struct child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    if (c->in >= 0)
        close(c->in);
    if (c->out >= 0)
        close(c->out);
    c->in = c->out = -1;
}

static void rm_rf(const char *path)
{
    if (!path[0] || strncmp(path, "/tmp/", 5) != 0)
        return;
    pid_t p = fork();
    if (p == 0) {
        execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
        _exit(127);
    }
    if (p > 0)
        waitpid(p, NULL, 0);
}

static void cleanup(void)
{
    for (int i = 0; i < 3; i++)
        kill_child(&g_kids[i]);
    rm_rf(g_top);
}

static void on_signal(int sig)
{
    for (int i = 0; i < 3; i++)
        if (g_kids[i].pid > 0)
            kill(g_kids[i].pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Three loopback ports nobody listens on, below the kernel's ephemeral
 * range (32768-): a port the kernel hands out could be taken by any
 * outgoing connection before the node listens on it. */
static void free_ports(int out[3])
{
    static int next;
    if (!next)
        next = 12000 + (int)(getpid() % 5000) * 4;
    int found = 0;
    for (int tries = 0; found < 3 && tries < 20000; tries++) {
        int port = next;
        next = next + 1 >= 32000 ? 12000 : next + 1;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0)
            out[found++] = port;
        if (fd >= 0)
            close(fd);
    }
    if (found < 3)
        die("no three free ports below 32000");
}

static void spawn(struct child *c, const char *sys, const char *peers)
{
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
        die("pipe: %s", strerror(errno));
    char idbuf[16];
    snprintf(idbuf, sizeof idbuf, "%" PRIu64, c->id);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(to[0], 0);
        dup2(from[1], 1);
        if (g_certs)
            execl(g_self, g_self, "node", "--system", sys, "--id", idbuf, "--peers", peers, "--dir",
                  c->dir, "--certs", g_certs, (char *)NULL);
        else
            execl(g_self, g_self, "node", "--system", sys, "--id", idbuf, "--peers", peers, "--dir",
                  c->dir, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c->pid = pid;
    c->in = to[1];
    c->out = from[0];
    c->len = 0;
}

/* Next line from the child within timeout_s; NULL on timeout or EOF. */
static char *child_line(struct child *c, double timeout_s, char *out, size_t outlen)
{
    double deadline = now_s() + timeout_s;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            snprintf(out, outlen, "%.*s", (int)n, c->buf);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return out;
        }
        double left = deadline - now_s();
        if (left <= 0 || c->len == sizeof c->buf)
            return NULL;
        struct pollfd p = {c->out, POLLIN, 0};
        int rv = poll(&p, 1, (int)(left * 1000) + 1);
        if (rv < 0 && errno == EINTR)
            continue;
        if (rv <= 0)
            return NULL;
        ssize_t r = read(c->out, c->buf + c->len, sizeof c->buf - c->len);
        if (r <= 0)
            return NULL;
        c->len += (size_t)r;
    }
}

/* Sends a command; result lines are recorded; returns the OK line or NULL. */
static char *child_cmd(struct child *c, double timeout_s, char *reply, size_t rlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static char *child_cmd(struct child *c, double timeout_s, char *reply, size_t rlen, const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (dprintf(c->in, "%s\n", cmd) < 0) {
        fprintf(stderr, "node %" PRIu64 ": cannot send %s\n", c->id, cmd);
        return NULL;
    }
    double deadline = now_s() + timeout_s;
    char line[1024];
    for (;;) {
        double left = deadline - now_s();
        if (!child_line(c, left > 0 ? left : 0, line, sizeof line)) {
            fprintf(stderr, "node %" PRIu64 ": no reply to '%s' within %.0f s\n", c->id, cmd, timeout_s);
            return NULL;
        }
        if (!strncmp(line, "system=", 7)) {
            add_result(line);
        } else if (!strncmp(line, "OK", 2)) {
            size_t n = strlen(line) < rlen - 1 ? strlen(line) : rlen - 1;
            memcpy(reply, line, n);
            reply[n] = 0;
            return reply;
        } else if (!strncmp(line, "ERR", 3)) {
            fprintf(stderr, "node %" PRIu64 ": '%s': %s\n", c->id, cmd, line);
            return NULL;
        } else {
            fprintf(stderr, "node %" PRIu64 ": %s\n", c->id, line);
        }
    }
}

static double kv_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The value of key in the first result with this system and workload (and
 * `extra`, e.g. "at=w1_rate", if given); -1 if none. */
static double result(const char *sys, const char *wl, const char *extra, const char *key)
{
    char s[64], w[64];
    snprintf(s, sizeof s, "system=%s ", sys);
    snprintf(w, sizeof w, " workload=%s ", wl);
    for (int i = 0; i < g_nresults; i++)
        if (!strncmp(g_results[i], s, strlen(s)) && strstr(g_results[i], w) &&
            (!extra || strstr(g_results[i], extra)))
            return kv_num(g_results[i], key);
    return -1;
}

static double vmhwm_mb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtod(line + 6, NULL);
    fclose(f);
    return kb / 1024;
}

static bool reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

static void rss_result(const char *sys, const char *wl, int leader, bool reset_ok)
{
    char line[512];
    int n = snprintf(line, sizeof line, "system=%s workload=rss-%s", sys, wl);
    for (int i = 0; i < 3; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, " node%d_vmhwm_mb=%.1f", i + 1, vmhwm_mb(g_kids[i].pid));
    n += snprintf(line + n, sizeof line - (size_t)n, " leader=node%d hwm_reset_before=%s", leader + 1,
                  reset_ok ? "yes" : "no_process_lifetime");
    if (!strcmp(sys, "liblog"))
        snprintf(line + n, sizeof line - (size_t)n, " cache_mb=%d", BENCH_CACHE_MB);
    add_result(line);
}

static char g_peers[128];

static void start_kid(int i, const char *sys)
{
    spawn(&g_kids[i], sys, g_peers);
}

static bool wait_ready(int i, double timeout_s, double *open_ms, double *status_ms)
{
    char line[512];
    while (child_line(&g_kids[i], timeout_s, line, sizeof line)) {
        if (!strncmp(line, "READY", 5)) {
            if (open_ms)
                *open_ms = kv_num(line, "open_ms");
            if (status_ms)
                *status_ms = kv_num(line, "status_ms");
            return true;
        }
        fprintf(stderr, "node %d: %s\n", i + 1, line);
    }
    fprintf(stderr, "node %d: not ready within %.0f s\n", i + 1, timeout_s);
    return false;
}

static void stop_cluster(void)
{
    for (int i = 0; i < 3; i++)
        kill_child(&g_kids[i]);
}

/* Starts a fresh 3-process cluster of `sys`; returns the leader's index. */
static int start_cluster(const char *sys)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        int ports[3];
        free_ports(ports);
        snprintf(g_peers, sizeof g_peers, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", ports[0], ports[1], ports[2]);
        for (int i = 0; i < 3; i++) {
            g_kids[i].id = (uint64_t)i + 1;
            snprintf(g_kids[i].dir, sizeof g_kids[i].dir, "%s/%s-%d-n%d", g_top, sys, attempt, i + 1);
            snprintf(g_kids[i].addr, sizeof g_kids[i].addr, "127.0.0.1:%d", ports[i]);
            start_kid(i, sys);
        }
        bool ok = true;
        for (int i = 0; i < 3; i++)
            ok = ok && wait_ready(i, 30, NULL, NULL);
        double deadline = now_s() + 20;
        while (ok && now_s() < deadline) {
            for (int i = 0; i < 3; i++) {
                char r[256];
                if (child_cmd(&g_kids[i], 10, r, sizeof r, "STATUS") && strstr(r, "role=leader"))
                    return i;
            }
            sleep_ms(100);
        }
        fprintf(stderr, "%s: no leader (attempt %d); restarting on fresh ports\n", sys, attempt + 1);
        stop_cluster();
    }
    die("%s: no leader after 3 attempts", sys);
}

static uint64_t leader_commit(int leader)
{
    char r[256];
    if (!child_cmd(&g_kids[leader], 10, r, sizeof r, "STATUS"))
        return 0;
    return (uint64_t)kv_num(r, "commit");
}

/* Bytes of records the leader's node process has appended so far. */
static double leader_appended(int leader)
{
    char r[256];
    if (!child_cmd(&g_kids[leader], 10, r, sizeof r, "STATUS"))
        return 0;
    return kv_num(r, "appended_bytes");
}

struct opts {
    bool quick, lng;
    double w2_secs;
    double w4_rate; /* --w4-rate: W4 also at this fixed rate (comparable across builds) */
    const char *dir, *out;
};

/* CPU seconds (user + system) a process has used so far, from /proc. */
static double cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The three node processes' CPU seconds, into t[0..2]. */
static void kids_cpu(double t[3])
{
    for (int i = 0; i < 3; i++)
        t[i] = cpu_s(g_kids[i].pid);
}

/* CPU per unit of work of workload `wl` (its records_s and secs from the
 * result line): CPU seconds per million records (all three processes), and
 * per GB on the leader and on a follower (averaged over the two). */
static void cpu_result(const char *sys, const char *wl, int leader, const double before[3])
{
    double after[3];
    kids_cpu(after);
    double rs = result(sys, wl, NULL, "records_s"), secs = result(sys, wl, NULL, "secs");
    double mb = result(sys, wl, NULL, "mb_s");
    if (rs <= 0 || secs <= 0)
        return;
    double recs = rs * secs, all = 0, fol = 0;
    for (int i = 0; i < 3; i++) {
        if (before[i] < 0 || after[i] < 0)
            return;
        all += after[i] - before[i];
        if (i != leader)
            fol += (after[i] - before[i]) / 2;
    }
    double lead = after[leader] - before[leader];
    char line[512];
    int k = snprintf(line, sizeof line,
                     "system=%s workload=cpu-%s cpu_s_per_mrec=%.2f leader_cpu_s=%.2f follower_cpu_s=%.2f",
                     sys, wl, all / (recs / 1e6), lead, fol);
    if (mb > 0)
        snprintf(line + k, sizeof line - (size_t)k, " leader_cpu_s_per_gb=%.2f follower_cpu_s_per_gb=%.2f",
                 lead / (mb * secs / 1e3), fol / (mb * secs / 1e3));
    add_result(line);
}

/* The batched producer at 100 B, 1 KiB and 4 KiB (records per call chosen so
 * a call is 100-256 KiB), 16 calls in flight, each with its CPU cost. */
static void run_batched(int L, const char *sys, double secs)
{
    static const struct {
        const char *label;
        int size, recs;
    } b[] = {{"batched-100", 100, 1024}, {"batched-1k", 1024, 256}, {"batched-4k", 4096, 64}};
    char r[256];
    for (unsigned i = 0; i < sizeof b / sizeof b[0]; i++) {
        double before[3];
        kids_cpu(before);
        if (!child_cmd(&g_kids[L], secs + 180, r, sizeof r, "BATCH %s %.1f %d %d 16", b[i].label, secs,
                       b[i].size, b[i].recs))
            fprintf(stderr, "%s %s failed\n", sys, b[i].label);
        else
            cpu_result(sys, b[i].label, L, before);
    }
}

static void run_tp(int leader, const char *sys, const char *wl, size_t size, double secs, bool rss)
{
    char r[256];
    bool reset_ok = true;
    if (rss)
        for (int i = 0; i < 3; i++)
            reset_ok = reset_hwm(g_kids[i].pid) && reset_ok;
    double before[3];
    kids_cpu(before);
    if (!child_cmd(&g_kids[leader], secs + 120, r, sizeof r, "TP %s %zu 4 16 %.1f 1000000", wl, size, secs))
        fprintf(stderr, "%s %s failed\n", sys, wl);
    else
        cpu_result(sys, wl, leader, before);
    if (rss)
        rss_result(sys, wl, leader, reset_ok);
}

/* W4: a reader on a follower, appends paced on the leader; at W1's rate,
 * then (if `rates` is 2) at half W2's. */
static void run_w4(int L, const char *sys, int rates, double fixed_rate)
{
    char r[256];
    int F = (L + 1) % 3;
    struct {
        const char *label;
        double rate;
    } w4[3] = {{"w1_rate", result(sys, "W1", NULL, "appends_s")},
               {"half_w2_rate", result(sys, "W2", NULL, "records_s") / 2},
               {"fixed_rate", fixed_rate}};
    /* W1's rate is its closed-loop maximum, so W4 there sits near
     * saturation and moves with W1 itself; a fixed rate compares builds. */
    if (fixed_rate > 0)
        rates = 3;
    for (int k = 0; k < rates; k++) {
        double rate = w4[k].rate;
        if (rate <= 0)
            continue;
        long count = (long)(rate * 5);
        if (count < 1000)
            count = 1000;
        if (count > 500000)
            count = 500000;
        uint64_t from = leader_commit(L);
        if (!child_cmd(&g_kids[F], 10, r, sizeof r, "W4READ %" PRIu64 " %ld 90", from, count))
            continue;
        child_cmd(&g_kids[L], 120, r, sizeof r, "W4SEND %s %.0f %ld 100", w4[k].label, rate, count);
        child_cmd(&g_kids[F], 120, r, sizeof r, "W4WAIT %s %.0f", w4[k].label, rate);
    }
}

static void run_liblog(const struct opts *o)
{
    char r[256];
    const char *sys = "liblog";
    fprintf(stderr, "== liblog: 3 processes on 127.0.0.1\n");
    int L = start_cluster(sys);
    if (!child_cmd(&g_kids[L], 300, r, sizeof r, "W1 500 5000 100"))
        fprintf(stderr, "liblog W1 failed\n");
    /* The same on a follower, in the same run: each append is forwarded to
     * the leader and answered once the follower's fence has it. */
    if (!child_cmd(&g_kids[(L + 1) % 3], 300, r, sizeof r, "W1F 500 5000 100"))
        fprintf(stderr, "liblog W1 forwarded failed\n");
    uint64_t w2_from = leader_commit(L);
    run_tp(L, sys, "W2", 100, o->w2_secs, true);
    run_batched(L, sys, o->quick ? 3 : o->w2_secs);
    if (o->quick) {
        run_w4(L, sys, 2, o->w4_rate);
        stop_cluster();
        return;
    }
    run_tp(L, sys, "W3", 1024, o->w2_secs, true);

    run_w4(L, sys, 2, o->w4_rate);

    /* W5 on the leader: 1,000,000 fresh 100 B records from the read cache
     * (BENCH_CACHE_MB holds them), then W2's records from disk. The load
     * appends 64 records per call, 8 calls in flight, as a host batching
     * its own writes might: not one bulk batch of thousands. */
    long w2_records = (long)result(sys, "W2", NULL, "records");
    long n = w2_records < W5_RECORDS ? w2_records : W5_RECORDS;
    uint64_t w5_from = leader_commit(L);
    if (child_cmd(&g_kids[L], 300, r, sizeof r, "FILL W5-load %.0f 100 64",
                  leader_appended(L) + (double)W5_RECORDS * 100))
        child_cmd(&g_kids[L], 300, r, sizeof r, "W5 %" PRIu64 " %ld %" PRIu64 " %ld 100000", w5_from,
                  (long)W5_RECORDS, w2_from, n);

    /* W6: fill to 1 GiB (10 GiB with --long), stop all, restart the measured node last */
    uint64_t target = (o->lng ? 10ull : 1ull) << 30;
    /* The fill always ends the log with 256 MiB of its ~1 MB entries, so
     * the tail W6 reloads (the entries since the last snapshot descriptor)
     * is the same worst case every run, whatever W2-W5 left behind. */
    double appended = leader_appended(L);
    if (appended + (256u << 20) > (double)target)
        target = (uint64_t)appended + (256u << 20);
    if (!child_cmd(&g_kids[L], o->lng ? 1800 : 300, r, sizeof r, "FILL W6-fill %" PRIu64 " 16384 60", target)) {
        stop_cluster();
        return;
    }
    uint64_t commit = leader_commit(L);
    double log_bytes = leader_appended(L);
    child_cmd(&g_kids[L], 60, r, sizeof r, "QUIT");
    for (int i = 0; i < 3; i++)
        if (i != L)
            child_cmd(&g_kids[i], 60, r, sizeof r, "QUIT");
    stop_cluster();
    drop_caches();
    for (int i = 0; i < 3; i++)
        if (i != L) {
            start_kid(i, sys);
            wait_ready(i, 120, NULL, NULL);
        }
    double open_ms = -1, status_ms = -1, served_ms = -1;
    start_kid(L, sys);
    if (wait_ready(L, 300, &open_ms, &status_ms)) {
        if (child_cmd(&g_kids[L], 120, r, sizeof r, "WAITCOMMIT %" PRIu64 " 110", commit))
            served_ms = kv_num(r, "ms");
        char line[512];
        snprintf(line, sizeof line,
                 "system=liblog workload=W6 log_gib=%.2f records_committed=%" PRIu64 " pagecache=%s open_ms=%.1f "
                 "status_ms=%.1f caught_up_ms=%.1f vmhwm_mb=%.1f",
                 log_bytes / (1 << 30), commit, "cold", open_ms, status_ms, served_ms, vmhwm_mb(g_kids[L].pid));
        add_result(line);
    }
    stop_cluster();
}

static void run_baseline(const struct opts *o)
{
    char r[256];
    const char *sys = "libraft-uv";
    fprintf(stderr, "== libraft-uv baseline: 3 processes on 127.0.0.1\n");
    int L = start_cluster(sys);
    if (!child_cmd(&g_kids[L], 300, r, sizeof r, "W1 500 5000 100"))
        fprintf(stderr, "libraft-uv W1 failed\n");
    run_tp(L, sys, "W2", 100, o->w2_secs, true);
    if (!o->quick)
        run_tp(L, sys, "W3", 1024, o->w2_secs, true);
    stop_cluster();
}

static void run_floor(const char *dir, bool quick)
{
    int n = quick ? 1000 : 3000;
    struct lat_result a = floor_fdatasync(dir, n, false);
    struct lat_result w = floor_fdatasync(dir, n, true);
    struct lat_result t = floor_rtt(quick ? 20000 : 50000);
    double bw = floor_seqwrite(dir, quick ? 128 : 512);
    double bw3 = floor_seqwrite3(dir, quick ? 128 : 384);
    char line[512];
    snprintf(line, sizeof line, "system=floor workload=fdatasync op=4KiB_append p50_us=%.0f p99_us=%.0f ops_s=%.0f",
             a.p.p50, a.p.p99, a.ops_s);
    add_result(line);
    snprintf(line, sizeof line,
             "system=floor workload=fdatasync_overwrite op=4KiB_overwrite_zeroed p50_us=%.0f p99_us=%.0f ops_s=%.0f",
             w.p.p50, w.p.p99, w.ops_s);
    add_result(line);
    snprintf(line, sizeof line, "system=floor workload=rtt op=tcp_loopback_100B_nodelay p50_us=%.1f p99_us=%.1f",
             t.p.p50, t.p.p99);
    add_result(line);
    snprintf(line, sizeof line, "system=floor workload=seqwrite op=1MiB_write_fdatasync mb_s=%.0f", bw);
    add_result(line);
    snprintf(line, sizeof line,
             "system=floor workload=seqwrite3 op=3_parallel_1MiB_write_fdatasync mb_s=%.0f "
             "replica_share_mb_s=%.0f", bw3, bw3 / 3);
    add_result(line);
}

/* TLS on versus off, same workloads, one run: each system on a fresh
 * cluster, then the ratios tls / plain. */
static void run_tls_compare(double secs)
{
    char cmd[1024], r[256];
    static char certs[512];
    snprintf(certs, sizeof certs, "%s/certs", g_top);
    snprintf(cmd, sizeof cmd, "examples/mkcerts.sh %s bench 1 2 3 >/dev/null", certs);
    if (system(cmd) != 0) {
        fprintf(stderr, "== TLS comparison skipped: examples/mkcerts.sh failed (run from the source tree)\n");
        return;
    }
    g_certs = certs;
    const char *systems[2] = {"liblog-plain", "liblog-tls"};
    for (int k = 0; k < 2; k++) {
        const char *sys = systems[k];
        fprintf(stderr, "== %s: 3 processes on 127.0.0.1\n", sys);
        int L = start_cluster(sys);
        if (!child_cmd(&g_kids[L], 300, r, sizeof r, "W1 500 3000 100"))
            fprintf(stderr, "%s W1 failed\n", sys);
        run_tp(L, sys, "W2", 100, secs, false);
        run_tp(L, sys, "W3", 1024, secs, false);
        if (!child_cmd(&g_kids[L], 300, r, sizeof r, "FILL batched %.0f 1024 64",
                       leader_appended(L) + (double)(256u << 20)))
            fprintf(stderr, "%s batched producer failed\n", sys);
        stop_cluster();
    }
    g_certs = NULL;
    struct {
        const char *wl, *key;
    } m[] = {{"W1", "p50_us"}, {"W2", "records_s"}, {"W3", "records_s"}, {"batched", "mb_s"}};
    for (unsigned i = 0; i < sizeof m / sizeof m[0]; i++) {
        double plain = result("liblog-plain", m[i].wl, NULL, m[i].key);
        double tls = result("liblog-tls", m[i].wl, NULL, m[i].key);
        if (plain <= 0 || tls < 0)
            continue;
        char line[256];
        snprintf(line, sizeof line, "system=ratio workload=%s metric=%s tls_over_plain=%.2f", m[i].wl,
                 m[i].key, tls / plain);
        add_result(line);
    }
}

static void ratio_line(const char *wl, const char *key, const char *name)
{
    double a = result("liblog", wl, NULL, key), b = result("libraft-uv", wl, NULL, key);
    if (a < 0 || b <= 0)
        return;
    char line[256];
    snprintf(line, sizeof line, "system=ratio workload=%s metric=%s liblog_over_baseline=%.2f", wl, name, a / b);
    add_result(line);
}

static void print_ratios(void)
{
    ratio_line("W1", "p50_us", "p50_us");
    ratio_line("W1", "p99_us", "p99_us");
    ratio_line("W1", "appends_s", "appends_s");
    ratio_line("W2", "records_s", "records_s");
    ratio_line("W2", "p50_us", "p50_us");
    ratio_line("W3", "records_s", "records_s");
    ratio_line("W3", "mb_s", "mb_s");
    double w1 = result("liblog", "W1", NULL, "p50_us"), fd = result("floor", "fdatasync", NULL, "p50_us"),
           ow = result("floor", "fdatasync_overwrite", NULL, "p50_us"), rtt = result("floor", "rtt", NULL, "p50_us");
    char line[256];
    if (w1 > 0 && fd > 0 && rtt > 0) {
        snprintf(line, sizeof line,
                 "system=ratio workload=W1 metric=p50_over_floor floor_us=%.0f liblog_over_floor=%.2f "
                 "floor_overwrite_us=%.0f liblog_over_floor_overwrite=%.2f",
                 fd + rtt, w1 / (fd + rtt), ow + rtt, w1 / (ow + rtt));
        add_result(line);
    }
    /* W2's ceiling by Little's law: 64 appenders, each waiting one round
     * at zero queueing (an overwrite fdatasync plus a loopback round trip),
     * can complete at most 64 / (overwrite p50 + rtt p50) per second. */
    double w2 = result("liblog", "W2", NULL, "records_s"), depth = result("liblog", "W2", NULL, "in_flight");
    if (w2 > 0 && depth > 0 && ow > 0 && rtt > 0) {
        double limit = depth * 1e6 / (ow + rtt);
        snprintf(line, sizeof line,
                 "system=ratio workload=W2 metric=littles_law in_flight=%.0f limit_records_s=%.0f "
                 "liblog_over_limit=%.2f",
                 depth, limit, w2 / limit);
        add_result(line);
    }
    /* The batched producer against a replica's share of the disk: three
     * parallel sequential writers with fdatasync, / 3 (issue 18's goal:
     * >= 0.65 at 4 KiB). */
    double share = result("floor", "seqwrite3", NULL, "replica_share_mb_s");
    const char *batched[] = {"batched-100", "batched-1k", "batched-4k"};
    for (unsigned i = 0; i < 3 && share > 0; i++) {
        double mb = result("liblog", batched[i], NULL, "mb_s");
        if (mb <= 0)
            continue;
        snprintf(line, sizeof line,
                 "system=ratio workload=%s metric=over_replica_share replica_share_mb_s=%.0f "
                 "liblog_over_share=%.2f", batched[i], share, mb / share);
        add_result(line);
    }
    double b1 = result("libraft-uv", "W1", NULL, "p50_us");
    if (b1 > 0 && fd > 0 && rtt > 0) {
        snprintf(line, sizeof line, "system=ratio workload=W1 metric=baseline_p50_over_floor baseline_over_floor=%.2f",
                 b1 / (fd + rtt));
        add_result(line);
    }
    double f50 = result("liblog", "W1-forwarded", NULL, "p50_us"),
           f99 = result("liblog", "W1-forwarded", NULL, "p99_us"), w99 = result("liblog", "W1", NULL, "p99_us");
    if (f50 > 0 && w1 > 0 && w99 > 0) {
        /* Goal: a forwarded append costs at most one loopback round trip
         * more, plus 10 %. */
        snprintf(line, sizeof line,
                 "system=ratio workload=W1-forwarded metric=follower_over_leader p50=%.2f p99=%.2f "
                 "p50_extra_us=%.0f rtt_us=%.0f goal_p50_us=%.0f",
                 f50 / w1, f99 / w99, f50 - w1, rtt, (w1 + (rtt > 0 ? rtt : 0)) * 1.1);
        add_result(line);
    }
    double w4 = result("liblog", "W4", "at=w1_rate", "p50_us");
    if (w4 > 0 && w1 > 0) {
        snprintf(line, sizeof line, "system=ratio workload=W4 metric=p50_over_W1_p50 at=w1_rate liblog=%.2f", w4 / w1);
        add_result(line);
    }
}

static void json_escape(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            fputc('\\', f);
        fputc(s[i], f);
    }
}

static void write_json(const char *path, const struct opts *o, double total_s)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "%s: %s\n", tmp, strerror(errno));
        return;
    }
    struct utsname u;
    uname(&u);
    fprintf(f, "{\n  \"bench\": \"liblog make bench\",\n  \"mode\": \"%s\",\n", o->quick ? "quick" : o->lng ? "long" : "full");
    fprintf(f, "  \"host\": {\"cores\": %ld, \"kernel\": \"%s\", \"liblog\": \"%s\", \"libraft\": \"0.15\"},\n",
            sysconf(_SC_NPROCESSORS_ONLN), u.release, rlog_version_string());
    fprintf(f, "  \"wall_s\": %.1f,\n  \"notes\": [\"W4: a follower thread reading with rlog_iter_next and waiting with rlog_iter_wait\", "
               "\"W5: 1M fresh records through the read cache (192 MiB), then W2's records from the segment files\", \"baseline: raft_uv + raft_uv_tcp, one record per raft_apply, "
               "records padded to 8 bytes, default snapshot settings\"],\n  \"results\": [\n", total_s);
    for (int i = 0; i < g_nresults; i++) {
        fprintf(f, "    {");
        const char *p = g_results[i];
        bool first = true;
        while (*p) {
            while (*p == ' ')
                p++;
            const char *eq = strchr(p, '='), *end = strchr(p, ' ');
            if (!end)
                end = p + strlen(p);
            if (!eq || eq > end) {
                p = end;
                continue;
            }
            fprintf(f, "%s\"", first ? "" : ", ");
            json_escape(f, p, (size_t)(eq - p));
            fprintf(f, "\": ");
            const char *v = eq + 1;
            char *num_end;
            char vbuf[128];
            snprintf(vbuf, sizeof vbuf, "%.*s", (int)(end - v), v);
            strtod(vbuf, &num_end);
            if (vbuf[0] && *num_end == 0 && strcmp(vbuf, "nan") && strcmp(vbuf, "inf") && strcmp(vbuf, "-inf"))
                fprintf(f, "%s", vbuf);
            else {
                fputc('"', f);
                json_escape(f, v, (size_t)(end - v));
                fputc('"', f);
            }
            first = false;
            p = end;
        }
        fprintf(f, "}%s\n", i + 1 < g_nresults ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    rename(tmp, path);
}

static void fmt(char *b, size_t n, double v, const char *unit)
{
    if (v < 0)
        snprintf(b, n, "-");
    else if (v >= 10000)
        snprintf(b, n, "%.0fk%s", v / 1000, unit);
    else
        snprintf(b, n, "%.0f%s", v, unit);
}

static void row(const char *label, double a, double b, const char *unit)
{
    char x[32], y[32], z[32] = "-";
    if (a < 0 && b < 0)
        return;
    fmt(x, sizeof x, a, unit);
    fmt(y, sizeof y, b, unit);
    if (a >= 0 && b > 0)
        snprintf(z, sizeof z, "%.2f", a / b);
    printf("  %-34s %14s %14s %8s\n", label, x, y, z);
}

static void summary(void)
{
    printf("\nSummary (fsync on; 3 processes on 127.0.0.1; %ld cores)\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("  %-34s %14s %14s %8s\n", "", "liblog", "libraft-uv", "ratio");
    const char *L = "liblog", *B = "libraft-uv";
    row("W1 p50 us", result(L, "W1", NULL, "p50_us"), result(B, "W1", NULL, "p50_us"), "");
    row("W1 p99 us", result(L, "W1", NULL, "p99_us"), result(B, "W1", NULL, "p99_us"), "");
    row("W1 p99.9 us", result(L, "W1", NULL, "p999_us"), result(B, "W1", NULL, "p999_us"), "");
    row("W1 appends/s", result(L, "W1", NULL, "appends_s"), result(B, "W1", NULL, "appends_s"), "");
    row("W1 on a follower p50 us", result(L, "W1-forwarded", NULL, "p50_us"), -1, "");
    row("W1 on a follower p99 us", result(L, "W1-forwarded", NULL, "p99_us"), -1, "");
    row("W2 records/s (100 B, 64 in flight)", result(L, "W2", NULL, "records_s"), result(B, "W2", NULL, "records_s"), "");
    row("W2 p50 us", result(L, "W2", NULL, "p50_us"), result(B, "W2", NULL, "p50_us"), "");
    row("W2 p99 us", result(L, "W2", NULL, "p99_us"), result(B, "W2", NULL, "p99_us"), "");
    row("W3 MB/s (1 KiB, 64 in flight)", result(L, "W3", NULL, "mb_s"), result(B, "W3", NULL, "mb_s"), "");
    row("W3 records/s", result(L, "W3", NULL, "records_s"), result(B, "W3", NULL, "records_s"), "");
    row("W3 p50 us", result(L, "W3", NULL, "p50_us"), result(B, "W3", NULL, "p50_us"), "");
    row("W4 p50 us at W1 rate", result(L, "W4", "at=w1_rate", "p50_us"), -1, "");
    row("W4 p99 us at W1 rate", result(L, "W4", "at=w1_rate", "p99_us"), -1, "");
    row("W4 p50 us at W2/2 rate", result(L, "W4", "at=half_w2_rate", "p50_us"), -1, "");
    row("W4 p99 us at W2/2 rate", result(L, "W4", "at=half_w2_rate", "p99_us"), -1, "");
    row("W5 seq records/s (read cache)", result(L, "W5-seq", "source=read_cache", "records_s"), -1, "");
    row("W5 seq records/s (disk, page cache cold)", result(L, "W5-seq", "pagecache=cold", "records_s"), -1, "");
    row("W5 seq records/s (disk, page cache warm)", result(L, "W5-seq", "source=disk pagecache=warm ", "records_s"), -1, "");
    row("W5 rand read p50 us (warm)", result(L, "W5-rand", "pagecache=warm", "p50_us"), -1, "");
    row("W5 rand read p99 us (warm)", result(L, "W5-rand", "pagecache=warm", "p99_us"), -1, "");
    row("W5 rand read p50 us (cold)", result(L, "W5-rand", "pagecache=cold", "p50_us"), -1, "");
    char w6label[64];
    snprintf(w6label, sizeof w6label, "W6 open ms (%.1f GiB)", result(L, "W6", NULL, "log_gib"));
    row(w6label, result(L, "W6", NULL, "open_ms"), -1, "");
    row("W6 caught up ms", result(L, "W6", NULL, "caught_up_ms"), -1, "");
    row("W6 peak RSS MB", result(L, "W6", NULL, "vmhwm_mb"), -1, "");
    printf("  rss during W2 (VmHWM MB, nodes 1..3): liblog %.0f/%.0f/%.0f, libraft-uv %.0f/%.0f/%.0f\n",
           result(L, "rss-W2", NULL, "node1_vmhwm_mb"), result(L, "rss-W2", NULL, "node2_vmhwm_mb"),
           result(L, "rss-W2", NULL, "node3_vmhwm_mb"), result(B, "rss-W2", NULL, "node1_vmhwm_mb"),
           result(B, "rss-W2", NULL, "node2_vmhwm_mb"), result(B, "rss-W2", NULL, "node3_vmhwm_mb"));
    double fd = result("floor", "fdatasync", NULL, "p50_us"), ow = result("floor", "fdatasync_overwrite", NULL, "p50_us"),
           rtt = result("floor", "rtt", NULL, "p50_us");
    printf("  floor: fdatasync 4 KiB append p50 %.0f us p99 %.0f us; overwrite p50 %.0f us p99 %.0f us;\n"
           "         rtt p50 %.1f us p99 %.1f us; seq write+fdatasync %.0f MB/s\n",
           fd, result("floor", "fdatasync", NULL, "p99_us"), ow, result("floor", "fdatasync_overwrite", NULL, "p99_us"),
           rtt, result("floor", "rtt", NULL, "p99_us"), result("floor", "seqwrite", NULL, "mb_s"));
    double w1 = result(L, "W1", NULL, "p50_us");
    if (w1 > 0 && fd > 0)
        printf("  W1 p50 / (fdatasync p50 + rtt p50) = %.2f  (with the overwrite floor: %.2f)\n", w1 / (fd + rtt),
               w1 / (ow + rtt));
    double ll = result("ratio", "W2", "metric=littles_law", "liblog_over_limit");
    if (ll > 0)
        printf("  W2 / Little's-law limit (in flight / (overwrite fdatasync p50 + rtt p50)) = %.2f "
               "(limit %.0f records/s)\n", ll, result("ratio", "W2", "metric=littles_law", "limit_records_s"));
    double share = result("floor", "seqwrite3", NULL, "replica_share_mb_s");
    if (share > 0)
        printf("  disk: 3 parallel sequential writers with fdatasync %.0f MB/s in all; a replica's share %.0f MB/s\n",
               result("floor", "seqwrite3", NULL, "mb_s"), share);
    static const char *const kinds[] = {"batched-100", "batched-1k", "batched-4k"};
    for (unsigned i = 0; i < 3; i++) {
        double mb = result("liblog", kinds[i], NULL, "mb_s");
        if (mb <= 0)
            continue;
        char k[64];
        snprintf(k, sizeof k, "cpu-%s", kinds[i]);
        printf("  %-11s %7.1f MB/s %9.0f rec/s  / share %.2f  CPU s per M records %.2f, per GB leader %.2f "
               "follower %.2f\n", kinds[i], mb, result("liblog", kinds[i], NULL, "records_s"),
               share > 0 ? mb / share : -1, result("liblog", k, NULL, "cpu_s_per_mrec"),
               result("liblog", k, NULL, "leader_cpu_s_per_gb"), result("liblog", k, NULL, "follower_cpu_s_per_gb"));
    }
    printf("  CPU s per M records, W2: liblog %.2f, libraft-uv %.2f (3 processes, user + system)\n",
           result("liblog", "cpu-W2", NULL, "cpu_s_per_mrec"), result("libraft-uv", "cpu-W2", NULL, "cpu_s_per_mrec"));
    printf("  targets (issue 5): W1 p50 <= baseline and <= 1.5x floor; W2 >= 300k rec/s; W3 >= 150 MB/s;\n"
           "  W4 p50 <= 1.3x W1 p50; W5 >= 5M rec/s from cache. W4 reader waits on the commit fence; W5 read cache on.\n");
}

static int run_main(int argc, char **argv)
{
    struct opts o = {.w2_secs = 15, .dir = "/tmp", .out = "bench/results/latest.json"};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            o.quick = true;
        else if (!strcmp(argv[i], "--long"))
            o.lng = true;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            o.dir = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            o.out = argv[++i];
        else if (!strcmp(argv[i], "--w2-secs") && i + 1 < argc)
            o.w2_secs = atof(argv[++i]);
        else if (!strcmp(argv[i], "--w4-rate") && i + 1 < argc)
            o.w4_rate = atof(argv[++i]);
        else
            die("run: unknown option %s (use --quick, --long, --dir DIR, --out FILE, --w2-secs S, --w4-rate R)", argv[i]);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < 3; i++)
        g_kids[i].in = g_kids[i].out = -1;
    snprintf(g_top, sizeof g_top, "%s/liblog-bench-XXXXXX", o.dir);
    if (strncmp(g_top, "/tmp/", 5) != 0 || !mkdtemp(g_top))
        die("need a writable directory under /tmp (got %s)", o.dir);
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, SIG_IGN);
    double t0 = now_s();
    printf("# liblog make bench%s: fsync on, 3 separate processes per cluster on 127.0.0.1, data in %s\n",
           o.quick ? " (quick: floor, W1, W2, W4 at W1 rate and at half W2 rate)" : o.lng ? " (long: W6 at 10 GiB)" : "", g_top);
    printf("# W4: a follower thread reading with rlog_iter_next + rlog_iter_wait; W5: read cache on\n");
    run_floor(g_top, o.quick);
    run_liblog(&o);
    run_baseline(&o);
    print_ratios();
    run_tls_compare(o.quick ? 5 : 10);
    double total = now_s() - t0;
    char *slash = strrchr(o.out, '/');
    if (slash) {
        char d[4096];
        snprintf(d, sizeof d, "%.*s", (int)(slash - o.out), o.out);
        mkdir(d, 0755);
    }
    write_json(o.out, &o, total);
    summary();
    printf("  wall time %.0f s; JSON: %s\n", total, o.out);
    return 0;
}

int main(int argc, char **argv)
{
    g_self = "/proc/self/exe";
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        g_self = self;
    }
    if (argc >= 2 && !strcmp(argv[1], "node"))
        return node_main(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "run"))
        return run_main(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "tls")) {
        double secs = 10;
        const char *dir = "/tmp";
        for (int i = 2; i + 1 < argc; i += 2) {
            if (!strcmp(argv[i], "--secs"))
                secs = atof(argv[i + 1]);
            else if (!strcmp(argv[i], "--dir"))
                dir = argv[i + 1];
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (int i = 0; i < 3; i++)
            g_kids[i].in = g_kids[i].out = -1;
        snprintf(g_top, sizeof g_top, "%s/liblog-bench-XXXXXX", dir);
        if (strncmp(g_top, "/tmp/", 5) != 0 || !mkdtemp(g_top))
            die("need a writable directory under /tmp (got %s)", dir);
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, SIG_IGN);
        run_tls_compare(secs);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "floor")) {
        char dir[] = "/tmp/liblog-floor-XXXXXX";
        if (!mkdtemp(dir))
            die("mkdtemp");
        run_floor(dir, argc >= 3 && !strcmp(argv[2], "--quick"));
        rmdir(dir);
        return 0;
    }
    fprintf(stderr, "usage: bench_node run [--quick] [--long] [--dir DIR] [--out FILE] [--w2-secs S] [--w4-rate R]\n"
                    "       bench_node floor [--quick]\n"
                    "       bench_node tls [--secs S] [--dir DIR]\n"
                    "       bench_node node --system liblog|libraft-uv --id N --peers A1,A2,A3 --dir D\n");
    return 2;
}
