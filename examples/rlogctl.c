/*
 * rlogctl — an example host program for liblog, and a template for a service
 * built on it.
 *
 *   rlogctl node   --id N --data DIR --cluster 1=HOST:PORT,2=...  [--address HOST:PORT]
 *                  [--cluster-name NAME] [--control PATH] [--join] [--failstop-linger MS] [-v]
 *                  [--peer-trusted-ca-file F --peer-cert-file F --peer-key-file F | --insecure]
 *   rlogctl append --control PATH [--json] [--producer ID [--sequence N]]
 *                  [--expect-offset N] [RECORD...]         (stdin lines when no RECORD)
 *   rlogctl read   --control PATH [--json] OFFSET | FROM-TO | FROM-
 *   rlogctl tail   --control PATH [--json] [--from OFFSET | --from-end] [--count N]
 *   rlogctl status --control PATH [--json]
 *   rlogctl add-node    --control PATH ID HOST:PORT        (on the leader)
 *   rlogctl remove-node --control PATH ID
 *   rlogctl transfer    --control PATH [ID]
 *   rlogctl trim        --control PATH OFFSET              (on the leader)
 *   rlogctl barrier     --control PATH                     (any node)
 *   rlogctl metrics     --control PATH                     (Prometheus text)
 *
 * `node` opens one node of the replicated log (rlog_open) and serves a small
 * local control protocol on a Unix domain socket; the other commands are
 * clients of that socket. The node is where all the liblog calls are; the
 * clients only speak the control protocol.
 *
 * Control protocol (local Unix stream socket; both directions use frames):
 *   frame   = u32 length (big-endian, 1 .. CTL_MAX_FRAME) + that many bytes
 *   A connection carries any number of requests, answered in order. Each
 *   request is one frame; its answer is zero or more data frames followed by
 *   exactly one 'E' frame. Integers below are big-endian; str = u32 len + bytes.
 *   requests:
 *     'S'                                  status  -> 'S' frame, 'E'
 *     'A' u32 n, n x (u32 len, bytes)      append  -> 'E' (value = first offset)
 *     'O' u64 producer, u64 sequence, u64 expect_offset, then as 'A'
 *                                          append with options (rlog_append_ex:
 *                                          producer 0 none, expect_offset
 *                                          UINT64_MAX none) -> 'E' (value = first
 *                                          offset; with RLOG_ECONFLICT the offset
 *                                          the first record would have had)
 *     'G' u64 offset                       read one record -> 'r' frame, 'E'
 *     'R' u64 from, u64 end                read [from, end) ('end' = UINT64_MAX:
 *                                          up to the committed end) -> 'r'..., 'E'
 *     'T' u64 from, u64 count              tail: records from `from` (UINT64_MAX: the
 *                                          commit offset now) as they commit, until
 *                                          `count` (0: no limit) -> 't', then 'r' and
 *                                          'k' frames, 'E' (value = records sent).
 *                                          The tail owns the connection: the client
 *                                          only hangs up.
 *     'N' u64 id, str address              add node -> 'E' (value = id)
 *     'X' u64 id                           remove node -> 'E' (value = id)
 *     'L' u64 id                           transfer leadership (0: to the most
 *                                          up-to-date voter) -> 'E' (value and
 *                                          leader fields: the new leader, if known)
 *     'P' u64 offset                       trim: drop records before offset, on
 *                                          every replica -> 'E' (value = offset)
 *     'B'                                  read barrier (rlog_barrier) -> 'E'
 *                                          (value = the barrier's offset)
 *     'M'                                  metrics -> 'M' frame, 'E'
 *   answers:
 *     'r' u64 offset, bytes                one record (the rest of the frame)
 *     'S' status fields (see put_status; the last ones, the failed stop's
 *         message and the repair counters, may be missing in answers of
 *         older nodes)
 *     'M' u32 len, the text                rlog_metrics_text's Prometheus text
 *     't' u64 offset                       tail: the first offset it streams
 *     'k' u64 offset                       tail keepalive (the log is quiet): the
 *                                          next offset it will stream
 *     'E' i32 code, u8 flags, u64 value, u64 leader_id, str leader_address, str message
 *         code: 0 or a negative RLOG_E* code; flags bit 0: the outcome of an
 *         append is unknown (the records may or may not be in the log).
 *   The node validates every byte: a bad frame or request gets an 'E' frame
 *   with RLOG_EPROTO and the connection is closed. Idle connections are
 *   closed after CTL_IDLE_MS. A tail buffers at most CTL_TAIL_BUFFER bytes on the
 *   node (the subscription pauses meanwhile); a tail client that reads nothing
 *   for CTL_TAIL_STALL_MS with a full buffer is dropped.
 *
 * Exit codes: 0 success, 1 usage error, 2 the node could not start (or
 * failed), 3 not the leader / leadership lost during an append, 4 read: no
 * such record (not committed yet, beyond the end, or trimmed), 5 cannot reach
 * the node (no socket, timeout, protocol error; for tail also: the node went
 * away), 6 any other error reported by the node, 7 node: it failed stop
 * after a storage error (a failed write or fdatasync, a full disk; the cause
 * is logged): restart it once the cause is fixed, 8 append in doubt (may or
 * may not be in the log), 9 conditional append: the log ends elsewhere.
 */
#include <liblog.h>

#include "metrics_http.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 1
#define EXIT_NODE 2
#define EXIT_NOTLEADER 3
#define EXIT_NOTFOUND 4
#define EXIT_UNREACHABLE 5
#define EXIT_ERROR 6
#define EXIT_FAILSTOP 7
#define EXIT_INDOUBT 8
#define EXIT_CONFLICT 9

#define CTL_MAX_FRAME (16u << 20)       /* bytes in one control frame */
#define CTL_MAX_BATCH 8192u             /* records in one append request */
#define CTL_IDLE_MS 60000               /* node: idle client connections */
#define CTL_MAX_CLIENTS 128             /* node: concurrent client connections */
#define CTL_ACCEPT_PAUSE_MIN_MS 100     /* node: accepting paused when out of fds ... */
#define CTL_ACCEPT_PAUSE_MAX_MS 1000    /* ... doubling up to this while it lasts */
#define CTL_APPEND_WAIT_MS 30000        /* node: longest wait for a commit */
#define CLIENT_BATCH_RECORDS 1000u      /* client: records per append request */
#define CLIENT_BATCH_BYTES (512u << 10) /* client: record bytes per append request */
#define CTL_TAIL_BUFFER (4u << 20)      /* node: bytes queued for one tail client */
#define CTL_TAIL_STALL_MS 10000         /* node: a tail client with a full queue that
                                           reads nothing this long is dropped */
#define CTL_TAIL_KEEPALIVE_MS 1000      /* node: 'k' frames to an idle tail client */
#define STATUS_POLL_MS 200

#define FLAG_INDETERMINATE 1u

static const char *progname = "rlogctl";

/* ---- small utilities ------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* `one` or `many`, as the count n wants ("1 record", "2 records"). */
static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_ERROR);
    }
    return p;
}

/* A growable byte buffer (encoding). */
struct buf {
    unsigned char *p;
    size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (p == NULL) {
        fprintf(stderr, "%s: out of memory\n", progname);
        exit(EXIT_ERROR);
    }
    b->p = p;
    b->cap = cap;
}

static void buf_put(struct buf *b, const void *d, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void put_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }

static void put_u32(struct buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    buf_put(b, x, 4);
}

static void put_u64(struct buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

static void put_str(struct buf *b, const char *s)
{
    size_t n = s ? strnlen(s, 4096) : 0;
    put_u32(b, (uint32_t)n);
    buf_put(b, s, n);
}

/* Starts a frame: reserves its length prefix; end_frame fills it in. */
static size_t begin_frame(struct buf *b)
{
    size_t at = b->len;
    put_u32(b, 0);
    return at;
}

static void end_frame(struct buf *b, size_t at)
{
    uint32_t n = (uint32_t)(b->len - at - 4);
    b->p[at] = (unsigned char)(n >> 24);
    b->p[at + 1] = (unsigned char)(n >> 16);
    b->p[at + 2] = (unsigned char)(n >> 8);
    b->p[at + 3] = (unsigned char)n;
}

/* A bounds-checked reader (decoding). Any short read sets bad. */
struct rd {
    const unsigned char *p;
    size_t len, pos;
    int bad;
};

static int rd_need(struct rd *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint8_t get_u8(struct rd *r)
{
    if (!rd_need(r, 1))
        return 0;
    return r->p[r->pos++];
}

static uint32_t get_u32(struct rd *r)
{
    if (!rd_need(r, 4))
        return 0;
    const unsigned char *x = r->p + r->pos;
    r->pos += 4;
    return (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
}

static uint64_t get_u64(struct rd *r)
{
    uint64_t hi = get_u32(r);
    return hi << 32 | get_u32(r);
}

static const unsigned char *get_bytes(struct rd *r, size_t n)
{
    if (!rd_need(r, n))
        return NULL;
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}

/* Reads a str into dst (NUL-terminated, truncated to cap-1). */
static void get_str(struct rd *r, char *dst, size_t cap)
{
    uint32_t n = get_u32(r);
    const unsigned char *p = get_bytes(r, n);
    dst[0] = '\0';
    if (p == NULL)
        return;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(dst, p, k);
    dst[k] = '\0';
}

/* ---- socket I/O with deadlines --------------------------------------------- */

/* Returns 0, or -1 with errno (ETIMEDOUT on deadline, EPIPE etc.). */
static int write_all(int fd, const void *p, size_t n, int64_t deadline)
{
    const unsigned char *c = p;
    while (n > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int pr = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (pr == 0)
            continue;
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Returns n on success, 0 on EOF before any byte, -1 with errno otherwise
 * (EPROTO for EOF in the middle). */
static ssize_t read_full(int fd, void *p, size_t n, int64_t deadline)
{
    unsigned char *c = p;
    size_t got = 0;
    while (got < n) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(left > INT_MAX ? INT_MAX : left));
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (pr == 0)
            continue;
        ssize_t r = recv(fd, c + got, n - got, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return -1;
        }
        if (r == 0) {
            if (got == 0)
                return 0;
            errno = EPROTO;
            return -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Receives one frame into *out (malloc'd). Returns 1 on a frame, 0 on a clean
 * EOF, -1 on error with a reason in why. */
static int recv_frame(int fd, unsigned char **out, size_t *len, int64_t deadline,
                      char *why, size_t whylen)
{
    unsigned char h[4];
    ssize_t r = read_full(fd, h, 4, deadline);
    if (r == 0)
        return 0;
    if (r < 0) {
        snprintf(why, whylen, "%s", errno == EPROTO ? "connection closed inside a frame header"
                                                    : strerror(errno));
        return -1;
    }
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n == 0 || n > CTL_MAX_FRAME) {
        snprintf(why, whylen, "frame length %" PRIu32 " out of range 1..%u", n, CTL_MAX_FRAME);
        return -1;
    }
    unsigned char *p = malloc(n);
    if (p == NULL) {
        snprintf(why, whylen, "out of memory for a %" PRIu32 "-byte frame", n);
        return -1;
    }
    r = read_full(fd, p, n, deadline);
    if (r != (ssize_t)n) {
        snprintf(why, whylen, "%s", r == 0 || errno == EPROTO ? "connection closed inside a frame"
                                                              : strerror(errno));
        free(p);
        return -1;
    }
    *out = p;
    *len = n;
    return 1;
}

/* ---- the node ------------------------------------------------------------- */

struct node {
    rlog *log;
    uint64_t id;
    int verbose;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closing;         /* no new liblog calls once set */
    unsigned api_users;  /* threads inside a liblog call (or holding an iterator) */
    unsigned n_clients;  /* live client threads */
    int client_fd[CTL_MAX_CLIENTS];
    /* The failed stop, from liblog's on_fatal (loop thread) to the main
     * thread, which polls failed_fd. */
    int failed_fd;
    int fatal_code;
    char fatal_msg[256];
};

static struct node g_node = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cv = PTHREAD_COND_INITIALIZER,
};

/* One line to stderr, with a timestamp and the node id; one write() so lines
 * from different threads do not interleave. */
static void node_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void node_log(const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld node %" PRIu64 ": ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, g_node.id);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

static void lib_log(void *arg, int level, const char *line)
{
    const struct node *nd = arg;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    int min_level = nd->verbose >= 2 ? 0 : nd->verbose == 1 ? 1 : 2;
    if (level < min_level)
        return;
    node_log("%s: %s", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}

/* liblog's on_fatal, on its loop thread: must not block, so it only hands
 * the cause to the main thread, which logs it and shuts the node down. */
static void on_failed_stop(void *arg, int code, const char *msg)
{
    struct node *nd = arg;
    pthread_mutex_lock(&nd->mu);
    nd->fatal_code = code;
    snprintf(nd->fatal_msg, sizeof nd->fatal_msg, "%s", msg);
    pthread_mutex_unlock(&nd->mu);
    uint64_t one = 1;
    ssize_t w = write(nd->failed_fd, &one, sizeof one);
    (void)w;
}

static int api_enter(void)
{
    pthread_mutex_lock(&g_node.mu);
    int ok = !g_node.closing;
    if (ok)
        g_node.api_users++;
    pthread_mutex_unlock(&g_node.mu);
    return ok;
}

static void api_leave(void)
{
    pthread_mutex_lock(&g_node.mu);
    g_node.api_users--;
    pthread_cond_broadcast(&g_node.cv);
    pthread_mutex_unlock(&g_node.mu);
}

static int is_closing(void)
{
    pthread_mutex_lock(&g_node.mu);
    int c = g_node.closing;
    pthread_mutex_unlock(&g_node.mu);
    return c;
}

/* The end-of-request frame. */
static void put_end(struct buf *b, int code, unsigned flags, uint64_t value, uint64_t leader_id,
                    const char *leader_addr, const char *msg)
{
    size_t at = begin_frame(b);
    put_u8(b, 'E');
    put_u32(b, (uint32_t)code);
    put_u8(b, (uint8_t)flags);
    put_u64(b, value);
    put_u64(b, leader_id);
    put_str(b, leader_addr);
    put_str(b, msg);
    end_frame(b, at);
}

/* An error end frame that names the leader when the node knows one. */
static void put_error(struct buf *b, int code, unsigned flags, const char *msg)
{
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    if (code == RLOG_ENOTLEADER && api_enter()) {
        if (rlog_status(g_node.log, &st) != 0)
            memset(&st, 0, sizeof st);
        api_leave();
    }
    put_end(b, code, flags, 0, st.leader_id, st.leader_address, msg);
}

static void put_status(struct buf *b, const struct rlog_status *st)
{
    size_t at = begin_frame(b);
    put_u8(b, 'S');
    put_u64(b, st->id);
    put_u32(b, (uint32_t)st->role);
    put_u64(b, st->term);
    put_u64(b, st->leader_id);
    put_str(b, st->leader_address);
    put_u64(b, st->first_offset);
    put_u64(b, st->commit_offset);
    put_u64(b, st->last_offset);
    put_u64(b, st->last_index);
    put_u64(b, st->commit_index);
    put_u32(b, (uint32_t)st->fatal);
    put_u64(b, st->catchup_index);
    put_u64(b, st->catchup_target);
    put_u64(b, st->cache_bytes);
    put_u64(b, st->cache_hits);
    put_u64(b, st->cache_misses);
    unsigned n = st->n_peers > RLOG_MAX_PEERS ? RLOG_MAX_PEERS : st->n_peers;
    put_u32(b, n);
    for (unsigned i = 0; i < n; i++) {
        put_u64(b, st->peers[i].id);
        put_str(b, st->peers[i].address);
        put_u8(b, (uint8_t)(st->peers[i].voter != 0));
        put_u64(b, st->peers[i].match_index);
    }
    put_str(b, st->fatal_msg);
    put_u8(b, (uint8_t)(st->tls != 0));
    put_u64(b, st->refused_connections);
    put_u64(b, st->rejected_handshakes);
    put_u64(b, st->timed_out_connections);
    put_u64(b, st->send_queue_overflows);
    /* Bounds on what peers can make this node hold (hardening). */
    put_u64(b, st->fetch_serve_refused);
    put_u64(b, st->held_dropped);
    put_u64(b, st->damaged_ranges);
    put_u64(b, st->repaired_ranges);
    put_u64(b, st->repaired_entries);
    put_u64(b, st->unreadable_entries);
    put_u64(b, st->forwarded_appends);
    put_u64(b, st->forwards_served);
    put_u64(b, st->forward_refused);
    end_frame(b, at);
}

static void handle_status(struct buf *out)
{
    struct rlog_status st;
    if (!api_enter()) {
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return;
    }
    int rc = rlog_status(g_node.log, &st);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(g_node.log) : "");
    api_leave();
    if (rc != 0) {
        put_end(out, rc, 0, 0, 0, "", msg);
        return;
    }
    put_status(out, &st);
    put_end(out, 0, 0, 0, 0, "", "");
}

/* An append waiting for its callback. Shared by the handler thread and the
 * loop thread's callback; the last one to let go frees it. */
struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs, done, status;
    uint64_t first;
    char errmsg[256]; /* rlog_errmsg in the callback, when status != 0 */
};

static void waiter_unref(struct waiter *w)
{
    pthread_mutex_lock(&w->mu);
    int left = --w->refs;
    pthread_mutex_unlock(&w->mu);
    if (left == 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
}

static void append_cb(void *arg, int status, uint64_t first_offset)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->status = status;
    w->first = first_offset;
    if (status != 0)
        snprintf(w->errmsg, sizeof w->errmsg, "%s", rlog_errmsg(NULL));
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w);
}

static void handle_append(struct rd *r, struct buf *out, int with_opts)
{
    struct rlog_append_opts ao;
    rlog_append_opts_init(&ao);
    if (with_opts) {
        ao.producer_id = get_u64(r);
        ao.sequence = get_u64(r);
        ao.expect_offset = get_u64(r);
    }
    uint32_t n = get_u32(r);
    if (r->bad || n == 0 || n > CTL_MAX_BATCH) {
        char msg[128];
        snprintf(msg, sizeof msg, "append: record count %" PRIu32 " out of range 1..%u", n,
                 CTL_MAX_BATCH);
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", msg);
        r->bad = 1;
        return;
    }
    struct rlog_buf *recs = xmalloc(n * sizeof *recs);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = get_u32(r);
        recs[i].base = get_bytes(r, len);
        recs[i].len = len;
        if (r->bad)
            break;
    }
    if (r->bad || r->pos != r->len) {
        free(recs);
        put_end(out, RLOG_EPROTO, 0, 0, 0, "",
                r->bad ? "append: request shorter than its records"
                       : "append: trailing bytes after the records");
        r->bad = 1;
        return;
    }

    struct waiter *w = xmalloc(sizeof *w);
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    w->refs = 2;

    if (!api_enter()) {
        free(recs);
        w->refs = 1;
        waiter_unref(w);
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return;
    }
    int rc = rlog_append_ex_async(g_node.log, &ao, recs, n, append_cb, w);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(g_node.log) : "");
    api_leave();
    free(recs); /* the library copied the bytes */
    if (rc != 0) {
        w->refs = 1; /* the callback never fires */
        waiter_unref(w);
        put_error(out, rc, 0, msg); /* rejected up front: nothing was appended */
        return;
    }

    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += CTL_APPEND_WAIT_MS / 1000;
    pthread_mutex_lock(&w->mu);
    int timed_out = 0;
    while (!w->done && !timed_out)
        timed_out = pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT;
    int done = w->done, status = w->status;
    uint64_t first = w->first;
    char why[sizeof w->errmsg];
    snprintf(why, sizeof why, "%s", w->errmsg);
    pthread_mutex_unlock(&w->mu);
    waiter_unref(w);

    if (!done) {
        snprintf(msg, sizeof msg, "no commit within %d ms (no quorum?); the records may or may "
                 "not be in the log", CTL_APPEND_WAIT_MS);
        put_error(out, RLOG_ETIMEOUT, FLAG_INDETERMINATE, msg);
    } else if (status == RLOG_EINDOUBT) {
        snprintf(msg, sizeof msg, "the node accepted the records, then: %s",
                 why[0] ? why : rlog_strerror(status));
        put_error(out, status, FLAG_INDETERMINATE, msg);
    } else if (status == RLOG_ECONFLICT) {
        snprintf(msg, sizeof msg, "%s", why[0] ? why : rlog_strerror(status));
        put_end(out, status, 0, first, 0, "", msg);
    } else if (status != 0) {
        /* Any other answer through the callback means nothing was appended. */
        snprintf(msg, sizeof msg, "the node accepted the records, then: %s (%s); nothing of them "
                 "was appended", rlog_errname(status), why[0] ? why : rlog_strerror(status));
        put_error(out, status, 0, msg);
    } else {
        put_end(out, 0, 0, first, 0, "", "");
    }
}

static void put_record(struct buf *out, uint64_t offset, const void *p, size_t len)
{
    size_t at = begin_frame(out);
    put_u8(out, 'r');
    put_u64(out, offset);
    buf_put(out, p, len);
    end_frame(out, at);
}

static void not_found_msg(char *msg, size_t cap, int rc, uint64_t off)
{
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    if (rlog_status(g_node.log, &st) != 0)
        memset(&st, 0, sizeof st);
    if (rc == RLOG_ETRIMMED)
        snprintf(msg, cap, "offset %" PRIu64 " was trimmed (first readable offset %" PRIu64 ")",
                 off, st.first_offset);
    else if (st.commit_offset == 0)
        snprintf(msg, cap, "offset %" PRIu64 " is not committed here (nothing is committed yet; "
                 "the log's next offset is 0)", off);
    else if (st.commit_offset <= st.first_offset)
        snprintf(msg, cap, "offset %" PRIu64 " is not committed here (every committed offset is "
                 "trimmed; the log's next offset is %" PRIu64 ")", off, st.commit_offset);
    else /* commit_offset is the end of the committed range, exclusive */
        snprintf(msg, cap, "offset %" PRIu64 " is not committed here (offsets %" PRIu64 "..%" PRIu64
                 " are; the log's next offset is %" PRIu64 ")", off, st.first_offset,
                 st.commit_offset - 1, st.commit_offset);
}

static void handle_get(struct rd *r, struct buf *out)
{
    uint64_t off = get_u64(r);
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "read: malformed request");
        return;
    }
    if (!api_enter()) {
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return;
    }
    void *p = NULL;
    size_t len = 0;
    char msg[512] = "";
    int rc = rlog_read(g_node.log, off, &p, &len);
    if (rc == RLOG_ENOTFOUND || rc == RLOG_ETRIMMED)
        not_found_msg(msg, sizeof msg, rc, off);
    else if (rc != 0)
        snprintf(msg, sizeof msg, "%s", rlog_errmsg(g_node.log));
    api_leave();
    if (rc != 0) {
        put_end(out, rc, 0, 0, 0, "", msg);
        return;
    }
    put_record(out, off, p, len);
    rlog_free(p);
    put_end(out, 0, 0, 1, 0, "", "");
}

/* Streams [from, end) with an iterator, flushing every 64 KiB. */
static int handle_range(int fd, struct rd *r, struct buf *out, int64_t deadline_step)
{
    uint64_t from = get_u64(r), end = get_u64(r);
    if (r->bad || r->pos != r->len || end < from) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "read: malformed range request");
        return 0;
    }
    if (!api_enter()) {
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return 0;
    }
    char msg[512] = "";
    rlog_iter *it = NULL;
    int rc = from == end ? 0 : rlog_iter_open(g_node.log, from, end, &it);
    uint64_t next = from, count = 0;
    if (rc == RLOG_ETRIMMED)
        not_found_msg(msg, sizeof msg, rc, from);
    else if (rc != 0)
        snprintf(msg, sizeof msg, "%s", rlog_errmsg(g_node.log));
    while (rc == 0 && it != NULL && next < end) {
        if (is_closing()) {
            rc = RLOG_ECLOSED;
            snprintf(msg, sizeof msg, "node is shutting down");
            break;
        }
        const void *p;
        size_t len;
        uint64_t off;
        rc = rlog_iter_next(it, &p, &len, &off);
        if (rc == RLOG_ENOTFOUND) {
            if (end == UINT64_MAX)
                rc = 0; /* the committed end */
            else
                not_found_msg(msg, sizeof msg, rc, next);
            break;
        }
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(g_node.log));
            break;
        }
        if (off != next) {
            /* The API promises dense offsets; say so loudly if not. */
            snprintf(msg, sizeof msg, "liblog iterator returned offset %" PRIu64
                     " where %" PRIu64 " was expected", off, next);
            node_log("error: %s", msg);
            rc = RLOG_EPROTO;
            break;
        }
        put_record(out, off, p, len);
        next++;
        count++;
        if (out->len >= (64u << 10)) {
            if (write_all(fd, out->p, out->len, now_ms() + deadline_step) != 0) {
                rc = -1000; /* client gone */
                break;
            }
            out->len = 0;
        }
    }
    if (it != NULL)
        rlog_iter_close(it);
    api_leave();
    if (rc == -1000)
        return -1;
    put_end(out, rc, 0, rc == 0 ? count : 0, 0, "", msg);
    return 0;
}

/* ---- tail: a subscription streamed over the connection ---------------------
 * The subscription's callback (on its own thread) only appends frames to a
 * per-client queue and wakes the client thread, which moves the queue to the
 * socket without blocking. The queue is bounded: past CTL_TAIL_BUFFER bytes
 * the subscription is paused (a paused one holds nothing on the node) until
 * the client drains it; a client that accepts no byte for CTL_TAIL_STALL_MS
 * with a full queue is dropped, and so is one that goes away. Neither ever
 * holds up the node, its appends or other clients. */
struct tail {
    pthread_mutex_t mu;
    struct buf q;       /* frames for the socket; q.p[qpos..] not sent yet */
    size_t qpos;
    rlog_sub *sub;
    uint64_t want;      /* records to deliver (0: no limit) */
    uint64_t delivered;
    uint64_t next;      /* the offset expected next */
    int paused;
    int ended, status;  /* the subscription ended (status), or `want` reached */
    int efd;            /* eventfd: wakes the client thread */
};

static void tail_cb(void *arg, int status, uint64_t offset, const void *rec, size_t len)
{
    struct tail *t = arg;
    int wake = 0;
    pthread_mutex_lock(&t->mu);
    if (t->ended) {
        pthread_mutex_unlock(&t->mu);
        return;
    }
    if (status != 0) {
        t->ended = 1;
        t->status = status;
        wake = 1;
    } else if (offset != t->next) {
        /* The API promises each record once, in order; say so loudly if not. */
        node_log("error: liblog subscription delivered offset %" PRIu64 " where %" PRIu64
                 " was expected", offset, t->next);
        t->ended = 1;
        t->status = RLOG_EPROTO;
        wake = 1;
    } else {
        wake = t->q.len == t->qpos;
        put_record(&t->q, offset, rec, len);
        t->next = offset + 1;
        t->delivered++;
        if (t->want != 0 && t->delivered == t->want) {
            t->ended = 1;
            wake = 1;
        }
        if (!t->paused && t->q.len - t->qpos >= CTL_TAIL_BUFFER) {
            t->paused = 1;
            rlog_sub_pause(t->sub); /* takes effect before the next record */
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (wake) {
        uint64_t one = 1;
        ssize_t w = write(t->efd, &one, sizeof one);
        (void)w;
    }
}

static void put_offset_frame(struct buf *b, uint8_t type, uint64_t off)
{
    size_t at = begin_frame(b);
    put_u8(b, type);
    put_u64(b, off);
    end_frame(b, at);
}

/* Streams records from `from` (UINT64_MAX: the commit offset now) until
 * `count` records (0: no limit), an error, or shutdown. Returns -1 when the
 * connection must be closed without more output (client gone or dropped). */
static int handle_tail(int fd, unsigned slot, struct rd *r, struct buf *out)
{
    uint64_t from = get_u64(r), count = get_u64(r);
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "tail: malformed request");
        return 0;
    }
    if (!api_enter()) {
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return 0;
    }
    char msg[512] = "";
    int rc = 0;
    if (from == UINT64_MAX) {
        struct rlog_status st;
        rc = rlog_status(g_node.log, &st);
        if (rc != 0)
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(g_node.log));
        else
            from = st.commit_offset;
    }
    struct tail *t = NULL;
    if (rc == 0) {
        t = xmalloc(sizeof *t);
        memset(t, 0, sizeof *t);
        pthread_mutex_init(&t->mu, NULL);
        t->want = count;
        t->next = from;
        t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->efd < 0) {
            rc = RLOG_ENOMEM;
            snprintf(msg, sizeof msg, "eventfd: %s", strerror(errno));
        }
    }
    if (rc == 0) {
        put_offset_frame(&t->q, 't', from);
        /* Held across rlog_subscribe so the callback sees t->sub set. */
        pthread_mutex_lock(&t->mu);
        rc = rlog_subscribe(g_node.log, from, tail_cb, t, &t->sub);
        if (rc != 0)
            snprintf(msg, sizeof msg, "%s", rlog_errmsg(g_node.log));
        pthread_mutex_unlock(&t->mu);
    }
    if (rc != 0) {
        api_leave();
        if (t != NULL) {
            if (t->efd >= 0)
                close(t->efd);
            pthread_mutex_destroy(&t->mu);
            free(t->q.p);
            free(t);
        }
        put_end(out, rc, 0, 0, 0, "", msg);
        return 0;
    }
    node_log("control: tail client %u: streaming from offset %" PRIu64, slot, from);

    enum { RUNNING, DONE, GONE, STALLED, CLOSING, CLIENT_SPOKE } how = RUNNING;
    int64_t last_progress = now_ms(), next_keepalive = last_progress + CTL_TAIL_KEEPALIVE_MS;
    char why[128] = "";
    while (how == RUNNING) {
        pthread_mutex_lock(&t->mu);
        size_t pending = t->q.len - t->qpos;
        int ended = t->ended, paused = t->paused;
        pthread_mutex_unlock(&t->mu);
        int64_t now = now_ms();
        if (ended && pending == 0) {
            how = DONE;
            break;
        }
        if (is_closing()) {
            how = CLOSING;
            break;
        }
        if (pending > 0)
            next_keepalive = now + CTL_TAIL_KEEPALIVE_MS;
        else
            last_progress = now;
        if (paused && now - last_progress >= CTL_TAIL_STALL_MS) {
            how = STALLED;
            break;
        }
        if (pending == 0 && now >= next_keepalive) {
            /* Lets the client tell a quiet log from a dead node. */
            pthread_mutex_lock(&t->mu);
            put_offset_frame(&t->q, 'k', t->next);
            pthread_mutex_unlock(&t->mu);
            continue;
        }
        int64_t wait = pending ? CTL_TAIL_STALL_MS : next_keepalive - now;
        if (wait > 1000)
            wait = 1000; /* bounds the wait for shutdown */
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN | (pending ? POLLOUT : 0)},
                                {.fd = t->efd, .events = POLLIN}};
        int pr = poll(pfd, 2, (int)(wait < 0 ? 0 : wait));
        if (pr < 0 && errno != EINTR) {
            snprintf(why, sizeof why, "poll: %s", strerror(errno));
            how = GONE;
            break;
        }
        if (pr <= 0)
            continue;
        if (pfd[1].revents & POLLIN) {
            uint64_t v;
            ssize_t rr = read(t->efd, &v, sizeof v);
            (void)rr;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            /* A tail owns the connection: the client only ever hangs up. */
            unsigned char ch;
            ssize_t rr = recv(fd, &ch, 1, MSG_DONTWAIT);
            if (rr > 0) {
                how = CLIENT_SPOKE;
            } else if (rr == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                if (is_closing()) {
                    how = CLOSING; /* our own shutdown(SHUT_RD) */
                } else {
                    snprintf(why, sizeof why, "%s", rr == 0 ? "closed the connection"
                                                            : strerror(errno));
                    how = GONE;
                }
            }
            if (how != RUNNING)
                break;
        }
        if (pending && (pfd[0].revents & POLLOUT)) {
            pthread_mutex_lock(&t->mu);
            ssize_t w = send(fd, t->q.p + t->qpos, t->q.len - t->qpos,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            int e = errno;
            if (w > 0) {
                t->qpos += (size_t)w;
                last_progress = now_ms();
                if (t->qpos == t->q.len) {
                    t->qpos = t->q.len = 0;
                } else if (t->qpos >= (64u << 10) && t->qpos * 2 >= t->q.len) {
                    memmove(t->q.p, t->q.p + t->qpos, t->q.len - t->qpos);
                    t->q.len -= t->qpos;
                    t->qpos = 0;
                }
                if (t->paused && t->q.len - t->qpos <= CTL_TAIL_BUFFER / 4) {
                    t->paused = 0;
                    rlog_sub_resume(t->sub);
                }
            }
            pthread_mutex_unlock(&t->mu);
            if (w < 0 && e != EAGAIN && e != EWOULDBLOCK && e != EINTR) {
                snprintf(why, sizeof why, "%s", strerror(e));
                how = GONE;
            }
        }
    }

    /* Not under t->mu: unsubscribing waits for a running callback. */
    rlog_unsubscribe(t->sub);
    api_leave();
    int status = t->status;
    uint64_t delivered = t->delivered, next = t->next;
    size_t pending = t->q.len - t->qpos;
    int ret = 0;
    switch (how) {
    case DONE:
        if (status == RLOG_ETRIMMED)
            snprintf(msg, sizeof msg, "offset %" PRIu64 " was trimmed", next);
        else if (status != 0)
            snprintf(msg, sizeof msg, "the subscription ended: %s", rlog_strerror(status));
        put_end(out, status, 0, delivered, 0, "", msg);
        node_log("control: tail client %u: %s after %" PRIu64 " %s", slot,
                 status == 0 ? "done" : rlog_errname(status), delivered,
                 plural(delivered, "record", "records"));
        break;
    case CLOSING:
        /* Complete the frames under way, then say why the stream ends. */
        if (pending > 0 && write_all(fd, t->q.p + t->qpos, pending, now_ms() + 1000) != 0)
            ret = -1;
        else
            put_end(out, RLOG_ECLOSED, 0, delivered, 0, "", "node is shutting down");
        break;
    case CLIENT_SPOKE:
        node_log("control: dropping tail client %u: it sent bytes during a tail", slot);
        ret = -1;
        break;
    case STALLED:
        node_log("control: dropping tail client %u: it cannot keep up (read nothing for %d ms "
                 "with %zu bytes buffered; paused before offset %" PRIu64 ")", slot,
                 CTL_TAIL_STALL_MS, pending, next);
        ret = -1;
        break;
    default:
        node_log("control: tail client %u went away (%s) after %" PRIu64 " %s", slot, why,
                 delivered, plural(delivered, "record", "records"));
        ret = -1;
    }
    close(t->efd);
    pthread_mutex_destroy(&t->mu);
    free(t->q.p);
    free(t);
    return ret;
}

/* ---- membership and retention -------------------------------------------------- */

/* Requests that name one number (a node id, or for 'P' an offset) and
 * change the cluster, on the leader. */
static void handle_member(uint8_t op, struct rd *r, struct buf *out)
{
    uint64_t id = get_u64(r);
    char addr[256] = "";
    if (op == 'N') {
        uint32_t n = get_u32(r);
        const unsigned char *p = get_bytes(r, n);
        if (p != NULL && n > 0 && n < sizeof addr && memchr(p, '\0', n) == NULL) {
            memcpy(addr, p, n);
            addr[n] = '\0';
        } else {
            r->bad = 1;
        }
    }
    if (r->bad || r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "membership: malformed request");
        return;
    }
    if (!api_enter()) {
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return;
    }
    int rc = op == 'N' ? rlog_add_node(g_node.log, id, addr)
           : op == 'X' ? rlog_remove_node(g_node.log, id)
           : op == 'P' ? rlog_trim(g_node.log, id)
                       : rlog_transfer_leadership(g_node.log, id);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(g_node.log) : "");
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    if (rc == 0 && op == 'L' && rlog_status(g_node.log, &st) != 0)
        memset(&st, 0, sizeof st);
    api_leave();
    if (rc != 0) {
        put_error(out, rc, 0, msg);
        return;
    }
    if (op == 'N')
        node_log("membership: added node %" PRIu64 " at %s", id, addr);
    else if (op == 'X')
        node_log("membership: removed node %" PRIu64, id);
    else if (op == 'P')
        node_log("retention: records before offset %" PRIu64 " trimmed", id);
    else
        node_log("membership: handed leadership to %" PRIu64 "%s", st.leader_id,
                 st.leader_id ? "" : " (new leader not known yet)");
    put_end(out, 0, 0, op == 'L' ? st.leader_id : id, st.leader_id, st.leader_address, "");
}

/* A read barrier: every record acknowledged before it is below the
 * offset it answers, and committed on this node. */
static void handle_barrier(struct rd *r, struct buf *out)
{
    if (r->pos != r->len) {
        r->bad = 1;
        put_end(out, RLOG_EPROTO, 0, 0, 0, "", "barrier: trailing bytes");
        return;
    }
    if (!api_enter()) {
        put_end(out, RLOG_ECLOSED, 0, 0, 0, "", "node is shutting down");
        return;
    }
    uint64_t off = 0;
    int rc = rlog_barrier(g_node.log, &off);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", rc ? rlog_errmsg(g_node.log) : "");
    api_leave();
    if (rc != 0) {
        put_error(out, rc, 0, msg);
        return;
    }
    put_end(out, 0, 0, off, 0, "", "");
}

/* The metrics text, for the 'M' request and the HTTP endpoint. */
static int node_metrics_text(void *arg, char **text, size_t *len)
{
    (void)arg;
    if (!api_enter())
        return RLOG_ECLOSED;
    int rc = rlog_metrics_text(g_node.log, text, len);
    api_leave();
    return rc;
}

static void handle_metrics(struct rd *r, struct buf *out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = r->pos != r->len ? RLOG_EPROTO : node_metrics_text(NULL, &text, &len);
    if (rc != 0) {
        r->bad = rc == RLOG_EPROTO;
        put_end(out, rc, 0, 0, 0, "", rc == RLOG_EPROTO ? "metrics: trailing bytes" : "");
        return;
    }
    size_t at = begin_frame(out);
    put_u8(out, 'M');
    put_u32(out, (uint32_t)len);
    buf_put(out, text, len);
    end_frame(out, at);
    rlog_free(text);
    put_end(out, 0, 0, 0, 0, "", "");
}

struct client {
    int fd;
    unsigned slot;
};

static void *client_thread(void *arg)
{
    struct client *c = arg;
    int fd = c->fd;
    struct buf out = {0};
    for (;;) {
        unsigned char *req = NULL;
        size_t len = 0;
        char why[160];
        int fr = recv_frame(fd, &req, &len, now_ms() + CTL_IDLE_MS, why, sizeof why);
        if (fr == 0)
            break;
        out.len = 0;
        if (fr < 0) {
            if (!is_closing()) {
                node_log("control: dropping client: %s", why);
                put_end(&out, RLOG_EPROTO, 0, 0, 0, "", why);
                write_all(fd, out.p, out.len, now_ms() + 1000);
            }
            break;
        }
        struct rd r = {.p = req, .len = len};
        uint8_t op = get_u8(&r);
        int drop = 0;
        switch (op) {
        case 'S':
            if (r.pos != r.len) {
                r.bad = 1;
                put_end(&out, RLOG_EPROTO, 0, 0, 0, "", "status: trailing bytes");
            } else {
                handle_status(&out);
            }
            break;
        case 'A':
        case 'O':
            handle_append(&r, &out, op == 'O');
            break;
        case 'G':
            handle_get(&r, &out);
            break;
        case 'R':
            drop = handle_range(fd, &r, &out, CTL_IDLE_MS) != 0;
            break;
        case 'T':
            drop = handle_tail(fd, c->slot, &r, &out) != 0;
            break;
        case 'N':
        case 'X':
        case 'L':
        case 'P':
            handle_member(op, &r, &out);
            break;
        case 'B':
            handle_barrier(&r, &out);
            break;
        case 'M':
            handle_metrics(&r, &out);
            break;
        default: {
            char msg[64];
            snprintf(msg, sizeof msg, "unknown request type 0x%02x", op);
            put_end(&out, RLOG_EPROTO, 0, 0, 0, "", msg);
            r.bad = 1;
        }
        }
        free(req);
        if (r.bad)
            node_log("control: rejected a malformed request (type 0x%02x, %zu %s)", op, len,
                     plural(len, "byte", "bytes"));
        if (drop || write_all(fd, out.p, out.len, now_ms() + CTL_IDLE_MS) != 0 || r.bad)
            break;
    }
    free(out.p);
    pthread_mutex_lock(&g_node.mu);
    g_node.client_fd[c->slot] = -1;
    g_node.n_clients--;
    pthread_cond_broadcast(&g_node.cv);
    pthread_mutex_unlock(&g_node.mu);
    close(fd);
    free(c);
    return NULL;
}

/* At most one line a second for a kind of event that can repeat as fast as
 * a peer makes it (refused callers, failed accepts); the next line counts
 * the ones left out, so a flood costs a few bytes a second of log. */
struct rate_log {
    int64_t last_ms;
    unsigned long left_out;
};

static void rate_log(struct rate_log *r, const char *what, const char *why)
{
    int64_t t = now_ms();
    if (r->last_ms != 0 && t - r->last_ms < 1000) {
        r->left_out++;
        return;
    }
    if (r->left_out)
        node_log("control: %s: %s (and %lu more since the last such line)", what, why,
                 r->left_out);
    else
        node_log("control: %s: %s", what, why);
    r->last_ms = t;
    r->left_out = 0;
}

/* The control socket answers only its own user (and root): its file mode
 * says so too, but the caller's credentials are what the kernel vouches
 * for, whatever the path's directory allows. */
static int caller_allowed(int fd, char *why, size_t whylen)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
        snprintf(why, whylen, "SO_PEERCRED: %s", strerror(errno));
        return 0;
    }
    if (cr.uid == 0 || cr.uid == geteuid())
        return 1;
    snprintf(why, whylen, "refused a caller with uid %u (pid %d): only uid %u or root may use it",
             (unsigned)cr.uid, (int)cr.pid, (unsigned)geteuid());
    return 0;
}

/* Accepts one control client. Returns 0, or the milliseconds to stop
 * accepting for: when the process or system is out of descriptors
 * (EMFILE, ENFILE) or memory, the pending connection stays queued and the
 * listening socket stays readable, so accepting again at once only spins
 * (it wrote 811 MB of log lines under a 1,024-descriptor limit). The pause
 * doubles from CTL_ACCEPT_PAUSE_MIN_MS up to CTL_ACCEPT_PAUSE_MAX_MS while
 * the shortage lasts. */
static int accept_client(int lfd)
{
    static struct rate_log accept_errors, refused;
    static int pause_ms;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EINTR || e == ECONNABORTED)
            return 0;
        int starved = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
        pause_ms = !starved ? 0
                   : pause_ms == 0 ? CTL_ACCEPT_PAUSE_MIN_MS
                   : pause_ms * 2 > CTL_ACCEPT_PAUSE_MAX_MS ? CTL_ACCEPT_PAUSE_MAX_MS
                   : pause_ms * 2;
        char why[128];
        if (starved)
            snprintf(why, sizeof why, "%s; not accepting for %d ms", strerror(e), pause_ms);
        else
            snprintf(why, sizeof why, "%s", strerror(e));
        rate_log(&accept_errors, "accept", why);
        return starved ? pause_ms : 0;
    }
    pause_ms = 0;
    char why[160];
    if (!caller_allowed(fd, why, sizeof why)) {
        rate_log(&refused, "connection refused", why);
        close(fd);
        return 0;
    }
    pthread_mutex_lock(&g_node.mu);
    unsigned slot = CTL_MAX_CLIENTS;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
        if (g_node.client_fd[i] < 0) {
            slot = i;
            break;
        }
    }
    if (slot < CTL_MAX_CLIENTS) {
        g_node.client_fd[slot] = fd;
        g_node.n_clients++;
    }
    pthread_mutex_unlock(&g_node.mu);
    if (slot == CTL_MAX_CLIENTS) {
        struct buf out = {0};
        put_end(&out, RLOG_EPROTO, 0, 0, 0, "", "too many control connections");
        write_all(fd, out.p, out.len, now_ms() + 100);
        free(out.p);
        close(fd);
        return 0;
    }
    struct client *c = xmalloc(sizeof *c);
    c->fd = fd;
    c->slot = slot;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int e = pthread_create(&t, &attr, client_thread, c);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        node_log("control: cannot start a client thread: %s", strerror(e));
        pthread_mutex_lock(&g_node.mu);
        g_node.client_fd[slot] = -1;
        g_node.n_clients--;
        pthread_mutex_unlock(&g_node.mu);
        close(fd);
        free(c);
    }
    return 0;
}

static int fill_sun(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    strcpy(sa->sun_path, path);
    return 0;
}

/* Binds the control socket; refuses to take over one a live process serves. */
static int control_listen(const char *path)
{
    struct sockaddr_un sa;
    if (fill_sun(&sa, path) != 0) {
        node_log("error: control socket path too long (max %zu bytes): %s",
                 sizeof sa.sun_path - 1, path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        node_log("error: socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        node_log("error: control socket %s is in use by a running process", path);
        close(fd);
        return -1;
    }
    close(fd);
    struct stat stt;
    if (lstat(path, &stt) == 0) {
        if (!S_ISSOCK(stt.st_mode)) {
            node_log("error: control path %s exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* stale socket of a dead process */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* The socket file is created 0600 by bind itself (a chmod afterwards
     * would leave a window in which anyone could connect). The umask is
     * per process: no other thread creates files at this point. */
    mode_t old_umask = umask(0177);
    int bound = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    int e = errno;
    umask(old_umask);
    if (!bound || listen(fd, 64) != 0) {
        node_log("error: control socket %s: %s", path, strerror(bound ? errno : e));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Logs role and leader changes seen by polling rlog_status (a failed stop
 * is logged when liblog reports it, by on_failed_stop). */
struct seen {
    int valid, role, status_err;
    uint64_t term, leader_id;
};

static void poll_status(struct seen *s)
{
    struct rlog_status st;
    if (!api_enter())
        return;
    int rc = rlog_status(g_node.log, &st);
    char emsg[256];
    snprintf(emsg, sizeof emsg, "%s", rc ? rlog_errmsg(g_node.log) : "");
    api_leave();
    if (rc != 0) {
        if (!s->status_err)
            node_log("error: rlog_status: %s: %s", rlog_errname(rc), emsg);
        s->status_err = 1;
        return;
    }
    s->status_err = 0;
    if (!s->valid || st.role != s->role) {
        if (st.role == RLOG_ROLE_FOLLOWER && st.leader_id != 0)
            node_log("became follower in term %" PRIu64 "; leader is %" PRIu64 " at %s", st.term,
                     st.leader_id, st.leader_address);
        else
            node_log("became %s in term %" PRIu64, rlog_role_name(st.role), st.term);
    } else if (st.leader_id != s->leader_id && st.role == RLOG_ROLE_FOLLOWER) {
        if (st.leader_id != 0)
            node_log("leader is now %" PRIu64 " at %s (term %" PRIu64 ")", st.leader_id,
                     st.leader_address, st.term);
        else
            node_log("leader unknown (term %" PRIu64 ")", st.term);
    } else if (st.term != s->term && st.role == RLOG_ROLE_CANDIDATE) {
        node_log("still candidate, term %" PRIu64, st.term);
    }
    s->valid = 1;
    s->role = st.role;
    s->term = st.term;
    s->leader_id = st.leader_id;
}

/* Logs the failed stop liblog reported, with its cause; returns when the
 * node is to exit (after `linger_ms` of answering on the control socket). */
static int64_t log_failed_stop(int failed_fd, uint64_t linger_ms)
{
    uint64_t n;
    ssize_t r = read(failed_fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&g_node.mu);
    int code = g_node.fatal_code;
    char msg[sizeof g_node.fatal_msg];
    snprintf(msg, sizeof msg, "%s", g_node.fatal_msg);
    pthread_mutex_unlock(&g_node.mu);
    if (linger_ms)
        node_log("error: failed stop: %s: %s; answering status and reads (appends are refused) "
                 "for %" PRIu64 " ms, then exiting with status %d", rlog_errname(code), msg,
                 linger_ms, EXIT_FAILSTOP);
    else
        node_log("error: failed stop: %s: %s; exiting with status %d", rlog_errname(code), msg,
                 EXIT_FAILSTOP);
    return now_ms() + (int64_t)linger_ms;
}

static void usage_node(FILE *f)
{
    fprintf(f,
            "usage: %s node --id N --data DIR --cluster ID=HOST:PORT,... [options]\n"
            "\n"
            "Runs one node of the replicated log in the foreground until SIGTERM/SIGINT.\n"
            "\n"
            "  --id N               this node's id (>= 1); must appear in --cluster\n"
            "  --address HOST:PORT  where this node listens for its peers\n"
            "                       (default: its entry in --cluster)\n"
            "  --data DIR           data directory (created if missing; one node per dir)\n"
            "  --cluster LIST       the initial cluster, e.g.\n"
            "                       1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n"
            "  --cluster-name NAME  the cluster's name, recorded in a new data directory and\n"
            "                       required to match later (default: a name derived from\n"
            "                       --cluster; a directory always refuses another --id)\n"
            "  --join               this node is being added to a running cluster: it does\n"
            "                       not bootstrap, and waits for the leader's `add-node`;\n"
            "                       --cluster lists the cluster including this node\n"
            "  --control PATH       control socket (default DIR/control.sock)\n"
            "  --election-timeout MS, --heartbeat MS   raft timers (default 1000, 100)\n"
            "  --segment-size BYTES segment file size (default 64 MiB)\n"
            "  --cache-bytes BYTES  read cache of recent entries (default 64 MiB)\n"
            "  --snapshot-threshold N, --snapshot-trailing N\n"
            "                       raft entries between snapshot descriptors, and kept\n"
            "                       in memory behind one (defaults 128, 256); small\n"
            "                       values make lagging followers catch up by fetching\n"
            "                       segments from a peer\n"
            "  --failstop-linger MS after a failed stop, keep answering the control socket\n"
            "                       (status, reads; appends refused) for MS, then exit\n"
            "                       (default 0)\n"
            "  --peer-trusted-ca-file FILE, --peer-cert-file FILE, --peer-key-file FILE\n"
            "                       mutual TLS 1.3 between nodes (all three): the CA every\n"
            "                       peer certificate must chain to, this node's certificate\n"
            "                       (SAN URI rlog://CLUSTER/ID), its private key (PEM)\n"
            "  --insecure           allow plain text between nodes on non-loopback\n"
            "                       addresses (peers' claimed ids are trusted); without TLS\n"
            "                       and without this, only loopback clusters start\n"
            "  --no-forward-appends refuse appends while a follower (RLOG_ENOTLEADER, exit 3\n"
            "                       for the client) instead of forwarding them to the leader\n"
            "  --metrics-address HOST:PORT\n"
            "                       serve the metrics over HTTP (GET /metrics, the\n"
            "                       Prometheus text format); off by default\n"
            "  --peer-frame-timeout MS, --peer-idle-timeout MS\n"
            "                       close an inbound peer connection whose frame does not\n"
            "                       finish within MS, or that carries no frame for MS\n"
            "                       (defaults 30000, 60000)\n"
            "  -v, --verbose        also log liblog's info lines (twice: debug)\n"
            "\n"
            "Logs one line per event to stderr. Exit status: 0 after a clean shutdown,\n"
            "1 bad arguments, 2 the log could not be opened or the node failed,\n"
            "%d the node failed stop after a storage error (a failed write or fdatasync,\n"
            "a full disk): it logs the cause, closes the log and exits, so that a\n"
            "supervisor can restart it once the cause is fixed.\n",
            progname, EXIT_FAILSTOP);
}

/* Splits --cluster `text` ("ID=HOST:PORT,...") in `list`, a copy of it that
 * peers[] then point into. Syntax only: the meaning (duplicate ids, own id
 * present, address valid...) is rlog_open's to check, and it names the
 * field. An empty entry ("1=a,,2=b", a leading or trailing comma) is
 * refused: it is a typo, and skipping it could drop a peer unnoticed.
 * Returns 0, or -1 after saying what is wrong. */
static int parse_cluster(const char *text, char *list, struct rlog_peer *peers, unsigned max,
                         unsigned *n)
{
    *n = 0;
    if (*list == '\0') {
        fprintf(stderr, "%s node: --cluster is empty\n", progname);
        return -1;
    }
    for (char *tok = list, *next; tok != NULL; tok = next) {
        next = strchr(tok, ',');
        if (next != NULL)
            *next++ = '\0';
        if (*tok == '\0') {
            fprintf(stderr, "%s node: --cluster '%s': entry %u is empty (a doubled, leading or "
                    "trailing comma?)\n", progname, text, *n + 1);
            return -1;
        }
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq[1] == '\0') {
            fprintf(stderr, "%s node: --cluster entry '%s' is not ID=HOST:PORT\n", progname, tok);
            return -1;
        }
        *eq = '\0';
        if (*n == max) {
            fprintf(stderr, "%s node: --cluster has more than %u entries\n", progname, max);
            return -1;
        }
        if (parse_u64(tok, &peers[*n].id) != 0) {
            fprintf(stderr, "%s node: --cluster id '%s' is not a number\n", progname, tok);
            return -1;
        }
        peers[(*n)++].address = eq + 1;
    }
    return 0;
}

static int cmd_node(int argc, char **argv)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, 'i'},      {"address", required_argument, NULL, 'a'},
        {"data", required_argument, NULL, 'd'},    {"cluster", required_argument, NULL, 'c'},
        {"control", required_argument, NULL, 'C'}, {"election-timeout", required_argument, NULL, 'e'},
        {"heartbeat", required_argument, NULL, 'b'}, {"verbose", no_argument, NULL, 'v'},
        {"segment-size", required_argument, NULL, 'S'},
        {"cache-bytes", required_argument, NULL, 'K'},
        {"snapshot-threshold", required_argument, NULL, 'T'},
        {"snapshot-trailing", required_argument, NULL, 'L'},
        {"join", no_argument, NULL, 'J'},
        {"failstop-linger", required_argument, NULL, 'W'},
        {"cluster-name", required_argument, NULL, 'N'},
        {"peer-trusted-ca-file", required_argument, NULL, 'A'},
        {"peer-cert-file", required_argument, NULL, 'P'},
        {"peer-key-file", required_argument, NULL, 'k'},
        {"insecure", no_argument, NULL, 'I'},
        {"no-forward-appends", no_argument, NULL, 'n'},
        {"peer-frame-timeout", required_argument, NULL, 'F'},
        {"peer-idle-timeout", required_argument, NULL, 'D'},
        {"metrics-address", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *id_s = NULL, *address = NULL, *data = NULL, *cluster = NULL, *control = NULL;
    const char *cluster_name = NULL, *ca_file = NULL, *cert_file = NULL, *key_file = NULL;
    const char *metrics_address = NULL;
    int insecure = 0, no_forward = 0;
    uint64_t frame_timeout = 0, idle_timeout = 0;
    uint64_t election = 0, heartbeat = 0, segment_size = 0, snap_threshold = 0, snap_trailing = 0;
    uint64_t linger_ms = 0;
    uint64_t cache_bytes = UINT64_MAX; /* 0 is a valid size: no cache */
    int verbose = 0, join = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        switch (c) {
        case 'i': id_s = optarg; break;
        case 'a': address = optarg; break;
        case 'd': data = optarg; break;
        case 'c': cluster = optarg; break;
        case 'N': cluster_name = optarg; break;
        case 'A': ca_file = optarg; break;
        case 'P': cert_file = optarg; break;
        case 'k': key_file = optarg; break;
        case 'I': insecure = 1; break;
        case 'n': no_forward = 1; break;
        case 'F':
        case 'D':
            if (parse_u64(optarg, c == 'F' ? &frame_timeout : &idle_timeout) != 0 ||
                (c == 'F' ? frame_timeout : idle_timeout) == 0 ||
                (c == 'F' ? frame_timeout : idle_timeout) > 3600000) {
                fprintf(stderr, "%s node: --peer-%s-timeout must be 1..3600000 ms, not '%s'\n",
                        progname, c == 'F' ? "frame" : "idle", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'C': control = optarg; break;
        case 'M': metrics_address = optarg; break;
        case 'e':
        case 'b': {
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || v == 0 || v > 600000) {
                fprintf(stderr, "%s node: --%s must be 1..600000 ms, not '%s'\n", progname,
                        c == 'e' ? "election-timeout" : "heartbeat", optarg);
                return EXIT_USAGE;
            }
            *(c == 'e' ? &election : &heartbeat) = v;
            break;
        }
        case 'S':
        case 'K':
        case 'T':
        case 'L': {
            /* Range checks are rlog_open's; here only "is it a number". */
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || ((c == 'T' || c == 'L') && v > UINT32_MAX) ||
                (c == 'K' && v == UINT64_MAX)) {
                fprintf(stderr, "%s node: --%s must be a number, not '%s'\n", progname,
                        c == 'S' ? "segment-size" : c == 'K' ? "cache-bytes"
                        : c == 'T' ? "snapshot-threshold" : "snapshot-trailing", optarg);
                return EXIT_USAGE;
            }
            *(c == 'S' ? &segment_size : c == 'K' ? &cache_bytes
              : c == 'T' ? &snap_threshold : &snap_trailing) = v;
            break;
        }
        case 'W':
            if (parse_u64(optarg, &linger_ms) != 0 || linger_ms > 600000) {
                fprintf(stderr, "%s node: --failstop-linger must be 0..600000 ms, not '%s'\n",
                        progname, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'v': verbose++; break;
        case 'J': join = 1; break;
        case 'h': usage_node(stdout); return 0;
        default: usage_node(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s node: unexpected argument '%s'\n", progname, argv[optind]);
        usage_node(stderr);
        return EXIT_USAGE;
    }
    if (!id_s || !data || !cluster) {
        fprintf(stderr, "%s node: --id, --data and --cluster are required\n", progname);
        usage_node(stderr);
        return EXIT_USAGE;
    }
    uint64_t id;
    if (parse_u64(id_s, &id) != 0) {
        fprintf(stderr, "%s node: --id must be a number, not '%s'\n", progname, id_s);
        return EXIT_USAGE;
    }

    enum { MAX_ENTRIES = 64 };
    struct rlog_peer peers[MAX_ENTRIES];
    unsigned n_peers = 0;
    char *list = strdup(cluster);
    if (list == NULL)
        return EXIT_NODE;
    if (parse_cluster(cluster, list, peers, MAX_ENTRIES, &n_peers) != 0) {
        free(list);
        return EXIT_USAGE;
    }
    if (address == NULL) {
        for (unsigned i = 0; i < n_peers; i++)
            if (peers[i].id == id)
                address = peers[i].address;
        if (address == NULL) {
            fprintf(stderr, "%s node: --id %" PRIu64 " is not in --cluster (and no --address)\n",
                    progname, id);
            free(list);
            return EXIT_USAGE;
        }
    }
    char control_buf[4096];
    if (control == NULL) {
        snprintf(control_buf, sizeof control_buf, "%s/control.sock", data);
        control = control_buf;
    }
    struct sockaddr_un sa_check;
    if (fill_sun(&sa_check, control) != 0) {
        fprintf(stderr, "%s node: --control path too long (max %zu bytes): %s\n", progname,
                sizeof sa_check.sun_path - 1, control);
        free(list);
        return EXIT_USAGE;
    }

    g_node.id = id;
    g_node.verbose = verbose;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        g_node.client_fd[i] = -1;

    /* Signals go to a signalfd read by this thread; block them before any
     * thread (liblog's loop thread, client threads) exists so all inherit it. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    g_node.failed_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || g_node.failed_fd < 0) {
        fprintf(stderr, "%s node: signalfd/eventfd: %s\n", progname, strerror(errno));
        free(list);
        return EXIT_NODE;
    }

    struct rlog_config cfg;
    rlog_config_init(&cfg);
    cfg.id = id;
    cfg.address = address;
    cfg.data_dir = data;
    cfg.peers = peers;
    cfg.n_peers = n_peers;
    cfg.join = join;
    cfg.cluster_name = cluster_name;
    cfg.tls_ca_file = ca_file;
    cfg.tls_cert_file = cert_file;
    cfg.tls_key_file = key_file;
    cfg.insecure = insecure;
    if (no_forward)
        cfg.forward_appends = 0;
    cfg.frame_timeout_ms = (unsigned)frame_timeout;
    cfg.idle_timeout_ms = (unsigned)idle_timeout;
    if (election)
        cfg.election_timeout_ms = (unsigned)election;
    if (heartbeat)
        cfg.heartbeat_timeout_ms = (unsigned)heartbeat;
    if (segment_size)
        cfg.segment_size = segment_size;
    if (cache_bytes != UINT64_MAX)
        cfg.cache_bytes = cache_bytes;
    if (snap_threshold)
        cfg.snapshot_threshold = (unsigned)snap_threshold;
    if (snap_trailing)
        cfg.snapshot_trailing = (unsigned)snap_trailing;
    cfg.log_fn = lib_log;
    cfg.log_arg = &g_node;
    cfg.on_fatal = on_failed_stop;
    cfg.on_fatal_arg = &g_node;

    char errbuf[512] = "";
    /* Before the log opens: an address in use stops the start cleanly. */
    struct metrics_http *http = NULL;
    if (metrics_address && !(http = metrics_http_open(metrics_address, errbuf, sizeof errbuf))) {
        fprintf(stderr, "%s node %" PRIu64 ": --metrics-address: %s\n", progname, id, errbuf);
        free(list);
        return EXIT_NODE;
    }
    int rc = rlog_open(&cfg, &g_node.log, errbuf, sizeof errbuf);
    if (rc != 0) {
        fprintf(stderr, "%s node %" PRIu64 ": cannot open the log: %s: %s\n", progname, id,
                rlog_errname(rc), errbuf[0] ? errbuf : rlog_strerror(rc));
        metrics_http_close(http);
        free(list);
        return EXIT_NODE;
    }
    if (http && metrics_http_start(http, node_metrics_text, NULL, errbuf, sizeof errbuf) != 0) {
        node_log("error: %s", errbuf);
        metrics_http_close(http);
        http = NULL;
    }
    /* The data directory is ours now (rlog_open locks it), so the control
     * socket next to it can be (re)created safely. */
    int lfd = control_listen(control);
    if (lfd < 0) {
        metrics_http_close(http);
        rlog_close(g_node.log);
        free(list);
        return EXIT_NODE;
    }
    node_log("started: address %s, data %s, control %s, %u %s%s, liblog %s", address, data,
             control, n_peers, plural(n_peers, "peer", "peers"),
             join ? ", joining a running cluster" : "", rlog_version_string());

    struct seen seen = {0};
    int64_t next_poll = 0, exit_at = INT64_MAX; /* exit_at: set by a failed stop */
    int signo = 0, failed = 0;
    int64_t accept_at = 0; /* accepting paused until then (out of descriptors) */
    while (signo == 0 && now_ms() < exit_at) {
        int64_t t = now_ms();
        if (t >= next_poll) {
            poll_status(&seen);
            next_poll = t + STATUS_POLL_MS;
        }
        int accepting = t >= accept_at;
        struct pollfd pfd[3] = {{.fd = accepting ? lfd : -1, .events = POLLIN},
                                {.fd = sfd, .events = POLLIN},
                                {.fd = g_node.failed_fd, .events = POLLIN}};
        int64_t until = next_poll < exit_at ? next_poll : exit_at;
        if (!accepting && accept_at < until)
            until = accept_at;
        int wait = (int)(until - now_ms());
        int pr = poll(pfd, 3, wait < 0 ? 0 : wait);
        if (pr < 0 && errno != EINTR) {
            node_log("error: poll: %s", strerror(errno));
            break;
        }
        if (pr > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                signo = (int)si.ssi_signo;
        }
        if (pr > 0 && (pfd[0].revents & POLLIN) && signo == 0) {
            int pause = accept_client(lfd);
            if (pause > 0)
                accept_at = now_ms() + pause;
        }
        if (pr > 0 && (pfd[2].revents & POLLIN) && !failed) {
            failed = 1;
            exit_at = log_failed_stop(g_node.failed_fd, linger_ms);
        }
    }
    if (signo)
        node_log("received %s, shutting down", signo == SIGTERM ? "SIGTERM" : "SIGINT");

    /* Graceful shutdown: stop accepting, let requests in liblog calls finish
     * (bounded), then rlog_close (which fails still-pending appends with
     * RLOG_ECLOSED), then give client threads a moment to send their answers. */
    close(lfd);
    unlink(control);
    metrics_http_close(http);
    pthread_mutex_lock(&g_node.mu);
    g_node.closing = 1;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        if (g_node.client_fd[i] >= 0)
            shutdown(g_node.client_fd[i], SHUT_RD); /* wakes idle readers */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (g_node.api_users > 0)
        if (pthread_cond_timedwait(&g_node.cv, &g_node.mu, &until) == ETIMEDOUT)
            break;
    unsigned stuck = g_node.api_users;
    pthread_mutex_unlock(&g_node.mu);
    if (stuck) {
        /* Closing under a thread still in a liblog call would free the handle
         * under it. Exit without rlog_close: a crash, as far as the log is
         * concerned, which it is built to survive. */
        node_log("error: %u control requests still inside liblog after 10 s; exiting without "
                 "rlog_close", stuck);
        return failed ? EXIT_FAILSTOP : EXIT_NODE;
    }
    rc = rlog_close(g_node.log);
    char close_msg[256];
    snprintf(close_msg, sizeof close_msg, "%s", rc ? rlog_errmsg(NULL) : "");
    g_node.log = NULL;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    pthread_mutex_lock(&g_node.mu);
    while (g_node.n_clients > 0)
        if (pthread_cond_timedwait(&g_node.cv, &g_node.mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&g_node.mu);
    free(list);
    if (rc != 0) {
        /* rlog_close fails only with a failed stop's cause; one that came
         * during the shutdown was not logged yet. */
        if (!failed)
            node_log("error: failed stop: %s: %s", rlog_errname(rc), close_msg);
        node_log("log closed; exiting with status %d for the supervisor", EXIT_FAILSTOP);
        return EXIT_FAILSTOP;
    }
    node_log("closed cleanly");
    return 0;
}

/* ---- the clients ---------------------------------------------------------- */

struct copts {
    const char *control;
    char **controls; /* --cluster-controls, split */
    unsigned n_controls;
    int json;
    int timeout_ms;
    /* tail only */
    uint64_t from, count; /* count 0: no limit */
    int from_set;         /* 0: from the end */
    /* append only: --producer, --sequence, --expect-offset */
    uint64_t producer, sequence, expect;
    int has_expect;
};

struct end {
    int code;
    unsigned flags;
    uint64_t value, leader_id;
    char leader_addr[128];
    char msg[1024];
};

static int ctl_connect(const char *path, char *why, size_t whylen)
{
    struct sockaddr_un sa;
    if (fill_sun(&sa, path) != 0) {
        snprintf(why, whylen, "control socket path too long: %s", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whylen, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(why, whylen, "cannot connect to %s: %s%s", path, strerror(errno),
                 errno == ENOENT || errno == ECONNREFUSED ? " (is the node running?)" : "");
        close(fd);
        return -1;
    }
    return fd;
}

/* Decodes an 'E' frame. Returns 0 or -1 (malformed). */
static int decode_end(const unsigned char *p, size_t len, struct end *e)
{
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'E')
        return -1;
    e->code = (int)get_u32(&r);
    e->flags = get_u8(&r);
    e->value = get_u64(&r);
    e->leader_id = get_u64(&r);
    get_str(&r, e->leader_addr, sizeof e->leader_addr);
    get_str(&r, e->msg, sizeof e->msg);
    return r.bad || r.pos != r.len || e->code > 0 ? -1 : 0;
}

static void fail_unreachable(const char *cmd, const char *why)
{
    fprintf(stderr, "%s %s: %s\n", progname, cmd, why);
}

/* Prints an error end frame; returns the exit code. */
static int report_error(const char *cmd, const struct end *e)
{
    if (e->code == RLOG_ENOTLEADER) {
        if (e->flags & FLAG_INDETERMINATE)
            fprintf(stderr, "%s %s: leadership lost before commit: %s\n", progname, cmd, e->msg);
        if (e->leader_id)
            fprintf(stderr, "%s %s: not the leader; leader is %" PRIu64 " at %s\n", progname,
                    cmd, e->leader_id, e->leader_addr);
        else
            fprintf(stderr, "%s %s: not the leader; leader unknown (election in progress?)\n",
                    progname, cmd);
        return EXIT_NOTLEADER;
    }
    fprintf(stderr, "%s %s: %s: %s\n", progname, cmd, rlog_errname(e->code),
            e->msg[0] ? e->msg : rlog_strerror(e->code));
    if (e->code == RLOG_ENOTFOUND || e->code == RLOG_ETRIMMED)
        return EXIT_NOTFOUND;
    if (e->code == RLOG_EPROTO)
        return EXIT_UNREACHABLE;
    if (e->code == RLOG_EINDOUBT || (e->flags & FLAG_INDETERMINATE))
        return EXIT_INDOUBT;
    return EXIT_ERROR;
}

/* Sends one request frame. */
static int send_request(int fd, const struct buf *req, int timeout_ms, char *why, size_t whylen)
{
    if (write_all(fd, req->p, req->len, now_ms() + timeout_ms) != 0) {
        snprintf(why, whylen, "sending the request: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Receives data frames (passed to on_data) until the end frame. */
static int recv_answer(int fd, int timeout_ms, struct end *e,
                       int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg,
                       char *why, size_t whylen)
{
    for (;;) {
        unsigned char *p;
        size_t len;
        int fr = recv_frame(fd, &p, &len, now_ms() + timeout_ms, why, whylen);
        if (fr == 0) {
            snprintf(why, whylen, "the node closed the connection without an answer");
            return -1;
        }
        if (fr < 0) {
            char tmp[200];
            snprintf(tmp, sizeof tmp, "%s", why);
            snprintf(why, whylen, "waiting for the answer: %s", tmp);
            return -1;
        }
        if (p[0] == 'E') {
            int bad = decode_end(p, len, e);
            free(p);
            if (bad) {
                snprintf(why, whylen, "malformed answer from the node");
                return -1;
            }
            return 0;
        }
        int rc = on_data ? on_data(arg, p, len) : -1;
        free(p);
        if (rc != 0) {
            snprintf(why, whylen, "unexpected answer frame from the node");
            return -1;
        }
    }
}

static void json_string(FILE *f, const unsigned char *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        switch (ch) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(f, "\\u%04x", ch);
            else
                fputc(ch, f);
        }
    }
    fputc('"', f);
}

static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static void base64(FILE *f, const unsigned char *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', f);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        fputc(t[v >> 18 & 63], f);
        fputc(t[v >> 12 & 63], f);
        fputc(i + 1 < n ? t[v >> 6 & 63] : '=', f);
        fputc(i + 2 < n ? t[v & 63] : '=', f);
    }
    fputc('"', f);
}

/* ---- append ---- */

static void usage_append(FILE *f)
{
    fprintf(f,
            "usage: %s append (--control PATH | --cluster-controls P1,P2,...) [--json]\n"
            "                      [--timeout SEC] [--producer ID [--sequence N]]\n"
            "                      [--expect-offset OFFSET] [--] [RECORD...]\n"
            "\n"
            "Appends each RECORD, or each line of stdin (without its newline) when no\n"
            "RECORD is given, and prints the offset of each record once it is committed:\n"
            "one per line, or {\"offset\":N} lines with --json. Stdin lines go in batches\n"
            "of up to %u records.\n"
            "\n"
            "Any node takes appends: a follower forwards them to the leader and answers\n"
            "once they are committed and readable on it. A follower started with\n"
            "--no-forward-appends answers with the leader's id and address instead\n"
            "(exit 3); the control socket is local to each host, so point --control at\n"
            "the leader's node then, or give every local node's socket with\n"
            "--cluster-controls: each batch goes to the first that accepts, and while all\n"
            "refuse (an election in progress) they are tried again until --timeout\n"
            "(default 30 s). A node refuses, and the next is tried, when its answer\n"
            "proves nothing was appended: not the leader, failed stop (RLOG_EFATAL) or\n"
            "shutting down (RLOG_ECLOSED), each before taking the batch, or no node\n"
            "behind its socket. A batch is never resent once a node has accepted it:\n"
            "an error after that (or no answer) may mean it is in the log, so the\n"
            "command stops there and says so.\n"
            "\n"
            "--producer ID (>= 1) makes the appends idempotent (rlog_append_ex): each\n"
            "record is its own call, with sequence numbers N, N+1, ... (--sequence,\n"
            "default 1). The log takes each (ID, sequence) at most once, so a batch in\n"
            "doubt is sent again (to the next node with --cluster-controls) until\n"
            "--timeout, and running the same command again with the same ID, sequence\n"
            "and input appends nothing twice: the offsets printed are the originals.\n"
            "--expect-offset OFFSET makes them conditional: the first record must get\n"
            "OFFSET, each next one the next offset; if the log ends elsewhere nothing is\n"
            "appended (exit 9, the log's actual next offset is printed).\n"
            "\n"
            "Exit status: 0 all appended; 1 usage; 3 not the leader; 5 cannot reach a\n"
            "node; 6 other errors (the RLOG_E* name is printed); 8 in doubt: a node took\n"
            "the batch and then could not tell whether it committed (RLOG_EINDOUBT, no\n"
            "commit within its wait, or no answer): that batch may or may not be in the\n"
            "log; 9 conflict: the log did not end at --expect-offset.\n",
            progname, CLIENT_BATCH_RECORDS);
}

struct appender {
    struct copts *o;
    int fd;
    unsigned cur; /* index into the control list in use */
    uint64_t appended;
};

static const char *ctl_path(const struct copts *o, unsigned i)
{
    return o->n_controls ? o->controls[i] : o->control;
}

/* Whether an error answer proves the node appended nothing, so the batch
 * may go to another node: refused before the node took it (no
 * indeterminate flag) for a reason another node may not share. */
static int refused_untaken(const struct end *e)
{
    if (e->flags & FLAG_INDETERMINATE)
        return 0;
    return e->code == RLOG_ENOTLEADER || e->code == RLOG_EFATAL || e->code == RLOG_ECLOSED;
}

/* Sends one batch; tries the next node on a clean refusal (refused_untaken,
 * or unreachable) when several control sockets were given. Returns an exit
 * code. */
static int append_batch(struct appender *a, struct rlog_buf *recs, unsigned n)
{
    struct copts *o = a->o;
    struct buf req = {0};
    size_t at = begin_frame(&req);
    bool idempotent = o->producer != 0, with_opts = idempotent || o->has_expect;
    put_u8(&req, with_opts ? 'O' : 'A');
    if (with_opts) {
        put_u64(&req, o->producer);
        put_u64(&req, o->producer ? o->sequence + a->appended : 0);
        put_u64(&req, o->has_expect ? o->expect + a->appended : UINT64_MAX);
    }
    put_u32(&req, n);
    for (unsigned i = 0; i < n; i++) {
        put_u32(&req, (uint32_t)recs[i].len);
        buf_put(&req, recs[i].base, recs[i].len);
    }
    end_frame(&req, at);
    if (req.len - 4 > CTL_MAX_FRAME) {
        fprintf(stderr, "%s append: a batch of %u %s is too large to send (%zu bytes)\n",
                progname, n, plural(n, "record", "records"), req.len);
        free(req.p);
        return EXIT_USAGE;
    }
    unsigned tries = o->n_controls ? o->n_controls : 1;
    struct end last_end;
    int have_end = 0;
    char why[512] = "";
    /* With several control sockets, refusals (refused_untaken, unreachable)
     * are retried round after round until --timeout: an election in progress
     * resolves itself. Nothing was appended by a refused request. */
    int64_t deadline = now_ms() + o->timeout_ms;
    for (unsigned round = 0;; round++) {
        if (round > 0) {
            if ((tries == 1 && !idempotent) || now_ms() + 100 >= deadline)
                break;
            struct timespec nap = {0, 100 * 1000000L};
            nanosleep(&nap, NULL);
        }
        for (unsigned t = 0; t < tries; t++) {
            const char *path = ctl_path(o, a->cur);
            if (a->fd < 0)
                a->fd = ctl_connect(path, why, sizeof why);
            if (a->fd >= 0 && send_request(a->fd, &req, o->timeout_ms, why, sizeof why) == 0) {
                struct end e;
                if (recv_answer(a->fd, o->timeout_ms, &e, NULL, NULL, why, sizeof why) != 0) {
                    if (idempotent && now_ms() + 100 < deadline) {
                        /* Sent again below: the log takes it at most once. */
                        fprintf(stderr, "%s append: %s: %s; sending it again\n", progname, path,
                                why);
                        goto next_node;
                    }
                    /* Sent but no answer: the outcome is unknown, do not resend. */
                    if (n == 1)
                        fprintf(stderr, "%s append: %s: %s; the last record may or may not be "
                                "in the log\n", progname, path, why);
                    else
                        fprintf(stderr, "%s append: %s: %s; the last %u records may or may not "
                                "be in the log\n", progname, path, why, n);
                    free(req.p);
                    return EXIT_UNREACHABLE;
                }
                if (e.code == 0) {
                    for (unsigned i = 0; i < n; i++) {
                        if (o->json)
                            printf("{\"offset\":%" PRIu64 "}\n", e.value + i);
                        else
                            printf("%" PRIu64 "\n", e.value + i);
                    }
                    fflush(stdout);
                    a->appended += n;
                    free(req.p);
                    return 0;
                }
                if (e.code == RLOG_ECONFLICT) {
                    fprintf(stderr, "%s append: conflict: the log's next offset is %" PRIu64
                            ", not %" PRIu64 "; nothing appended (%s)\n", progname, e.value,
                            o->expect + a->appended, e.msg);
                    free(req.p);
                    return EXIT_CONFLICT;
                }
                /* With a producer, a batch in doubt is sent again. */
                bool again = idempotent && (e.code == RLOG_EINDOUBT || e.code == RLOG_ETIMEOUT ||
                                            (e.flags & FLAG_INDETERMINATE));
                if (!(refused_untaken(&e) || again) || (tries == 1 && !idempotent)) {
                    free(req.p);
                    return report_error("append", &e);
                }
                if (again && round == 0)
                    fprintf(stderr, "%s append: %s: %s: %s; sending it again\n", progname, path,
                            rlog_errname(e.code), e.msg);
                if (e.code != RLOG_ENOTLEADER && round == 0) /* why a node was passed */
                    fprintf(stderr, "%s append: %s refused the batch (%s: %s); trying the next "
                            "node\n", progname, path, rlog_errname(e.code), e.msg);
                last_end = e;
                have_end = 1;
            } else if (tries == 1 && !idempotent) {
                break;
            }
        next_node:
            if (a->fd >= 0)
                close(a->fd);
            a->fd = -1;
            a->cur = (a->cur + 1) % tries;
        }
    }
    free(req.p);
    if (have_end)
        return report_error("append", &last_end);
    fail_unreachable("append", why[0] ? why : "no node reachable");
    return EXIT_UNREACHABLE;
}

/* Appends stdin's lines. Lines are gathered into batches of up to
 * CLIENT_BATCH_RECORDS records / CLIENT_BATCH_BYTES bytes; a batch is also
 * sent as soon as stdin has nothing more to read right now, so a slow
 * producer (`tail -f ... | rlogctl append`) does not wait for a full batch. */
static int append_stdin(struct appender *a, struct rlog_buf *recs)
{
    /* With a producer or an expected offset, one record per call: the
     * sequence numbers and offsets do not depend on how stdin arrives. */
    unsigned per_call = a->o->producer || a->o->has_expect ? 1 : CLIENT_BATCH_RECORDS;
    struct buf in = {0};        /* bytes read, not yet consumed */
    size_t start = 0;           /* first unconsumed byte of in */
    struct buf batch = {0};     /* the records of the pending batch, back to back */
    size_t lens[CLIENT_BATCH_RECORDS];
    unsigned n = 0;
    int eof = 0, rc = 0;
    while (rc == 0) {
        /* Move complete lines (or, at EOF, the unterminated rest) into the batch. */
        while (n < per_call && batch.len < CLIENT_BATCH_BYTES) {
            unsigned char *nl = in.len > start ? memchr(in.p + start, '\n', in.len - start) : NULL;
            size_t len;
            if (nl != NULL)
                len = (size_t)(nl - (in.p + start));
            else if (eof && in.len > start)
                len = in.len - start;
            else
                break;
            buf_put(&batch, in.p + start, len);
            lens[n++] = len;
            start += len + (nl != NULL);
        }
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int full = n == per_call || batch.len >= CLIENT_BATCH_BYTES;
        if (n > 0 && (full || eof || poll(&pfd, 1, 0) == 0)) {
            size_t off = 0;
            for (unsigned i = 0; i < n; i++) {
                recs[i].base = batch.p + off;
                recs[i].len = lens[i];
                off += lens[i];
            }
            rc = append_batch(a, recs, n);
            n = 0;
            batch.len = 0;
            continue;
        }
        if (eof)
            break;
        /* Compact, then read more. */
        if (start > 0) {
            memmove(in.p, in.p + start, in.len - start);
            in.len -= start;
            start = 0;
        }
        buf_reserve(&in, 65536);
        ssize_t r = read(STDIN_FILENO, in.p + in.len, in.cap - in.len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s append: reading stdin: %s\n", progname, strerror(errno));
            rc = EXIT_ERROR;
            break;
        }
        if (r == 0)
            eof = 1;
        in.len += (size_t)r;
    }
    free(in.p);
    free(batch.p);
    return rc;
}

static int cmd_append(struct copts *o, int argc, char **argv)
{
    struct appender a = {.o = o, .fd = -1};
    struct rlog_buf *recs = xmalloc(CLIENT_BATCH_RECORDS * sizeof *recs);
    int rc = 0;
    unsigned per_call = o->producer || o->has_expect ? 1 : CLIENT_BATCH_RECORDS;
    if (argc > 0) {
        for (int i = 0; i < argc && rc == 0;) {
            unsigned n = 0;
            size_t bytes = 0;
            while (i < argc && n < per_call &&
                   (n == 0 || bytes + strlen(argv[i]) <= CLIENT_BATCH_BYTES)) {
                recs[n].base = argv[i];
                recs[n].len = strlen(argv[i]);
                bytes += recs[n].len;
                n++;
                i++;
            }
            rc = append_batch(&a, recs, n);
        }
    } else {
        rc = append_stdin(&a, recs);
    }
    if (a.fd >= 0)
        close(a.fd);
    free(recs);
    if (rc != 0 && a.appended == 1)
        fprintf(stderr, "%s append: 1 record was appended before the error (its offset is "
                "printed)\n", progname);
    else if (rc != 0 && a.appended > 1)
        fprintf(stderr, "%s append: %" PRIu64 " records were appended before the error (their "
                "offsets are printed)\n", progname, a.appended);
    return rc;
}

/* ---- read ---- */

static void usage_read(FILE *f)
{
    fprintf(f,
            "usage: %s read --control PATH [--json] [--timeout SEC] OFFSET | FROM-TO | FROM-\n"
            "\n"
            "Prints committed records: OFFSET one record; FROM-TO the records FROM..TO\n"
            "(both included); FROM- every committed record from FROM on. Works on any node.\n"
            "Plain output: OFFSET<TAB>RECORD per line (raw bytes). --json: one\n"
            "{\"offset\":N,\"record\":\"...\"} line per record; a record that is not valid\n"
            "UTF-8 is given as \"record_base64\" instead.\n"
            "\n"
            "Exit status: 0 ok; 1 usage; 4 a record is not committed (yet), beyond the end\n"
            "or trimmed (the RLOG_E* name is printed); 5 cannot reach the node; 6 other.\n",
            progname);
}

static int print_record(void *arg, const unsigned char *p, size_t len)
{
    const struct copts *o = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'r')
        return -1;
    uint64_t off = get_u64(&r);
    if (r.bad)
        return -1;
    const unsigned char *rec = p + r.pos;
    size_t n = len - r.pos;
    if (o->json) {
        printf("{\"offset\":%" PRIu64 ",", off);
        if (valid_utf8(rec, n)) {
            fputs("\"record\":", stdout);
            json_string(stdout, rec, n);
        } else {
            fputs("\"record_base64\":", stdout);
            base64(stdout, rec, n);
        }
        fputs("}\n", stdout);
    } else {
        printf("%" PRIu64 "\t", off);
        fwrite(rec, 1, n, stdout);
        fputc('\n', stdout);
    }
    return 0;
}

static int parse_range(const char *s, uint64_t *from, uint64_t *to_excl, int *single)
{
    const char *dash = strchr(s, '-');
    char tmp[64];
    if (dash == NULL) {
        *single = 1;
        if (parse_u64(s, from) != 0 || *from == UINT64_MAX)
            return -1;
        *to_excl = *from + 1;
        return 0;
    }
    *single = 0;
    size_t k = (size_t)(dash - s);
    if (k == 0 || k >= sizeof tmp)
        return -1;
    memcpy(tmp, s, k);
    tmp[k] = '\0';
    if (parse_u64(tmp, from) != 0)
        return -1;
    if (dash[1] == '\0') {
        *to_excl = UINT64_MAX;
        return 0;
    }
    uint64_t to;
    if (parse_u64(dash + 1, &to) != 0 || to < *from || to == UINT64_MAX)
        return -1;
    *to_excl = to + 1;
    return 0;
}

static int connect_any(const struct copts *o, const char *cmd)
{
    char why[512] = "";
    unsigned tries = o->n_controls ? o->n_controls : 1;
    for (unsigned i = 0; i < tries; i++) {
        int fd = ctl_connect(ctl_path(o, i), why, sizeof why);
        if (fd >= 0)
            return fd;
    }
    fail_unreachable(cmd, why);
    return -1;
}

/* Connects, sends one request, and receives its data frames (passed to
 * on_data, which may be NULL) up to the end frame. Returns 0, or
 * EXIT_UNREACHABLE after saying why. */
static int call_node(const struct copts *o, const char *cmd, const struct buf *req, struct end *e,
                     int (*on_data)(void *arg, const unsigned char *p, size_t len), void *arg)
{
    int fd = connect_any(o, cmd);
    if (fd < 0)
        return EXIT_UNREACHABLE;
    char why[512];
    int rc = send_request(fd, req, o->timeout_ms, why, sizeof why);
    if (rc == 0)
        rc = recv_answer(fd, o->timeout_ms, e, on_data, arg, why, sizeof why);
    close(fd);
    fflush(stdout);
    if (rc != 0) {
        fail_unreachable(cmd, why);
        return EXIT_UNREACHABLE;
    }
    return 0;
}


static int cmd_read(struct copts *o, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "%s read: expected one OFFSET, FROM-TO or FROM- argument\n", progname);
        usage_read(stderr);
        return EXIT_USAGE;
    }
    uint64_t from, to;
    int single;
    if (parse_range(argv[0], &from, &to, &single) != 0) {
        fprintf(stderr, "%s read: bad offset or range '%s' (OFFSET, FROM-TO with FROM <= TO, "
                "or FROM-)\n", progname, argv[0]);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, single ? 'G' : 'R');
    put_u64(&req, from);
    if (!single)
        put_u64(&req, to);
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "read", &req, &e, print_record, o);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("read", &e);
}

/* ---- status ---- */

static void usage_status(FILE *f)
{
    fprintf(f,
            "usage: %s status --control PATH [--json] [--timeout SEC]\n"
            "\n"
            "Prints the node's role, term, leader, first/commit/last offsets, raft\n"
            "indexes, whether it failed stop (`fatal no`, or `fatal CODE CAUSE`, with\n"
            "role unavailable and the term and offsets as at the stop), catch-up\n"
            "progress (`catchup NEXT of TARGET` while fetching missing segments from a\n"
            "peer, else `catchup none`), the read cache (bytes, hits, misses) and\n"
            "peers. Plain output is one `key value` pair per line, then one\n"
            "`peer ID ADDRESS voter|nonvoter MATCH_INDEX` line per peer (match indexes\n"
            "are known on the leader only).\n",
            progname);
}

static int print_status(void *arg, const unsigned char *p, size_t len)
{
    const struct copts *o = arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'S')
        return -1;
    struct rlog_status st;
    memset(&st, 0, sizeof st);
    st.id = get_u64(&r);
    st.role = (int)get_u32(&r);
    st.term = get_u64(&r);
    st.leader_id = get_u64(&r);
    get_str(&r, st.leader_address, sizeof st.leader_address);
    st.first_offset = get_u64(&r);
    st.commit_offset = get_u64(&r);
    st.last_offset = get_u64(&r);
    st.last_index = get_u64(&r);
    st.commit_index = get_u64(&r);
    st.fatal = (int)get_u32(&r);
    st.catchup_index = get_u64(&r);
    st.catchup_target = get_u64(&r);
    st.cache_bytes = get_u64(&r);
    st.cache_hits = get_u64(&r);
    st.cache_misses = get_u64(&r);
    uint32_t n = get_u32(&r);
    if (n > RLOG_MAX_PEERS)
        return -1;
    st.n_peers = n;
    for (uint32_t i = 0; i < n; i++) {
        st.peers[i].id = get_u64(&r);
        get_str(&r, st.peers[i].address, sizeof st.peers[i].address);
        st.peers[i].voter = get_u8(&r);
        st.peers[i].match_index = get_u64(&r);
    }
    if (r.pos < r.len) /* older nodes do not send it */
        get_str(&r, st.fatal_msg, sizeof st.fatal_msg);
    int have_peer_security = r.pos < r.len; /* nor these */
    if (have_peer_security) {
        st.tls = get_u8(&r);
        st.insecure = !st.tls;
        st.refused_connections = get_u64(&r);
        st.rejected_handshakes = get_u64(&r);
        st.timed_out_connections = get_u64(&r);
        st.send_queue_overflows = get_u64(&r);
    }
    if (r.pos < r.len) { /* nor these (hardening) */
        st.fetch_serve_refused = get_u64(&r);
        st.held_dropped = get_u64(&r);
    }
    if (r.pos < r.len) { /* nor these (repair) */
        st.damaged_ranges = get_u64(&r);
        st.repaired_ranges = get_u64(&r);
        st.repaired_entries = get_u64(&r);
        st.unreadable_entries = get_u64(&r);
    }
    if (r.pos < r.len) { /* nor these (forwarding) */
        st.forwarded_appends = get_u64(&r);
        st.forwards_served = get_u64(&r);
        st.forward_refused = get_u64(&r);
    }
    if (r.bad || r.pos != r.len)
        return -1;
    if (o->json) {
        printf("{\"id\":%" PRIu64 ",\"role\":\"%s\",\"term\":%" PRIu64 ",\"leader_id\":%" PRIu64
               ",\"leader_address\":",
               st.id, rlog_role_name(st.role), st.term, st.leader_id);
        json_string(stdout, (const unsigned char *)st.leader_address, strlen(st.leader_address));
        printf(",\"first_offset\":%" PRIu64 ",\"commit_offset\":%" PRIu64 ",\"last_offset\":%" PRIu64
               ",\"last_index\":%" PRIu64 ",\"commit_index\":%" PRIu64 ",\"fatal\":",
               st.first_offset, st.commit_offset, st.last_offset, st.last_index, st.commit_index);
        if (st.fatal) {
            printf("\"%s\",\"fatal_msg\":", rlog_errname(st.fatal));
            json_string(stdout, (const unsigned char *)st.fatal_msg, strlen(st.fatal_msg));
        } else {
            fputs("null", stdout);
        }
        printf(",\"catchup_index\":%" PRIu64 ",\"catchup_target\":%" PRIu64
               ",\"cache_bytes\":%" PRIu64 ",\"cache_hits\":%" PRIu64 ",\"cache_misses\":%" PRIu64,
               st.catchup_index, st.catchup_target, st.cache_bytes, st.cache_hits, st.cache_misses);
        if (have_peer_security)
            printf(",\"peer_security\":\"%s\",\"refused_connections\":%" PRIu64
                   ",\"rejected_handshakes\":%" PRIu64 ",\"timed_out_connections\":%" PRIu64
                   ",\"send_queue_overflows\":%" PRIu64,
                   st.tls ? "tls" : "insecure", st.refused_connections, st.rejected_handshakes,
                   st.timed_out_connections, st.send_queue_overflows);
        printf(",\"fetch_serve_refused\":%" PRIu64 ",\"held_dropped\":%" PRIu64,
               st.fetch_serve_refused, st.held_dropped);
        printf(",\"damaged_ranges\":%" PRIu64 ",\"repaired_ranges\":%" PRIu64
               ",\"repaired_entries\":%" PRIu64 ",\"unreadable_entries\":%" PRIu64,
               st.damaged_ranges, st.repaired_ranges, st.repaired_entries, st.unreadable_entries);
        printf(",\"forwarded_appends\":%" PRIu64 ",\"forwards_served\":%" PRIu64
               ",\"forward_refused\":%" PRIu64, st.forwarded_appends, st.forwards_served,
               st.forward_refused);
        fputs(",\"peers\":[", stdout);
        for (unsigned i = 0; i < st.n_peers; i++) {
            printf("%s{\"id\":%" PRIu64 ",\"address\":", i ? "," : "", st.peers[i].id);
            json_string(stdout, (const unsigned char *)st.peers[i].address,
                        strlen(st.peers[i].address));
            printf(",\"voter\":%s,\"match_index\":%" PRIu64 "}", st.peers[i].voter ? "true" : "false",
                   st.peers[i].match_index);
        }
        fputs("]}\n", stdout);
    } else {
        printf("id %" PRIu64 "\nrole %s\nterm %" PRIu64 "\n", st.id, rlog_role_name(st.role),
               st.term);
        if (st.leader_id)
            printf("leader %" PRIu64 " %s\n", st.leader_id, st.leader_address);
        else
            printf("leader none\n");
        printf("first_offset %" PRIu64 "\ncommit_offset %" PRIu64 "\nlast_offset %" PRIu64
               "\nlast_index %" PRIu64 "\ncommit_index %" PRIu64 "\n",
               st.first_offset, st.commit_offset, st.last_offset, st.last_index,
               st.commit_index);
        if (st.fatal)
            printf("fatal %s %s\n", rlog_errname(st.fatal), st.fatal_msg);
        else
            printf("fatal no\n");
        if (st.catchup_target)
            printf("catchup %" PRIu64 " of %" PRIu64 "\n", st.catchup_index, st.catchup_target);
        else
            printf("catchup none\n");
        printf("cache %" PRIu64 " bytes, %" PRIu64 " hits, %" PRIu64 " misses\n", st.cache_bytes,
               st.cache_hits, st.cache_misses);
        if (have_peer_security)
            printf("peer_security %s\nrefused_connections %" PRIu64 "\nrejected_handshakes %" PRIu64
                   "\ntimed_out_connections %" PRIu64 "\nsend_queue_overflows %" PRIu64 "\n",
                   st.tls ? "tls" : "INSECURE", st.refused_connections, st.rejected_handshakes,
                   st.timed_out_connections, st.send_queue_overflows);
        printf("fetch_serve_refused %" PRIu64 "\nheld_dropped %" PRIu64 "\n",
               st.fetch_serve_refused, st.held_dropped);
        printf("damaged_ranges %" PRIu64 "\nrepaired_ranges %" PRIu64 "\nrepaired_entries %" PRIu64
               "\nunreadable_entries %" PRIu64 "\n", st.damaged_ranges, st.repaired_ranges,
               st.repaired_entries, st.unreadable_entries);
        printf("forwarded_appends %" PRIu64 "\nforwards_served %" PRIu64
               "\nforward_refused %" PRIu64 "\n", st.forwarded_appends, st.forwards_served,
               st.forward_refused);
        for (unsigned i = 0; i < st.n_peers; i++)
            printf("peer %" PRIu64 " %s %s %" PRIu64 "\n", st.peers[i].id, st.peers[i].address,
                   st.peers[i].voter ? "voter" : "nonvoter", st.peers[i].match_index);
    }
    return 0;
}

static int cmd_status(struct copts *o, int argc, char **argv)
{
    if (argc != 0) {
        fprintf(stderr, "%s status: unexpected argument '%s'\n", progname, argv[0]);
        usage_status(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'S');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "status", &req, &e, print_status, o);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("status", &e);
}

/* ---- tail ---- */

static void usage_tail(FILE *f)
{
    fprintf(f,
            "usage: %s tail --control PATH [--from OFFSET | --from-end] [--count N] [--json]\n"
            "                    [--timeout SEC]\n"
            "\n"
            "Streams committed records as they commit, in order and each once, in the\n"
            "format of `read` (OFFSET<TAB>RECORD lines, or --json lines), flushing after\n"
            "each. Works on any node. Starts at OFFSET (history first, then live), or by\n"
            "default (--from-end) at the node's commit offset when the tail starts, and\n"
            "runs until N records were shown (--count), SIGINT/SIGTERM, or the node goes\n"
            "away. The node sends a keepalive every second while the log is quiet;\n"
            "--timeout (default 30 s) is how long a silent node is waited for.\n"
            "\n"
            "The node buffers at most %u MiB for a tail and pauses it while the buffer is\n"
            "full; a client that then reads nothing for %d s is dropped.\n"
            "\n"
            "Exit status: 0 --count reached, or stopped by SIGINT/SIGTERM; 1 usage; 4 OFFSET\n"
            "was trimmed; 5 cannot reach the node, or it went away (shut down, killed, or\n"
            "silent for --timeout); 6 other errors.\n",
            progname, CTL_TAIL_BUFFER >> 20, CTL_TAIL_STALL_MS / 1000);
}

static int cmd_tail(struct copts *o, int argc, char **argv)
{
    if (argc != 0) {
        fprintf(stderr, "%s tail: unexpected argument '%s'\n", progname, argv[0]);
        usage_tail(stderr);
        return EXIT_USAGE;
    }
    /* SIGINT/SIGTERM end the tail cleanly: read through a signalfd. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "%s tail: signalfd: %s\n", progname, strerror(errno));
        return EXIT_ERROR;
    }
    int fd = connect_any(o, "tail");
    if (fd < 0) {
        close(sfd);
        return EXIT_UNREACHABLE;
    }
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'T');
    put_u64(&req, o->from_set ? o->from : UINT64_MAX);
    put_u64(&req, o->count);
    end_frame(&req, at);
    char why[1200] = "";
    int rc = send_request(fd, &req, o->timeout_ms, why, sizeof why) == 0 ? -1 : EXIT_UNREACHABLE;
    free(req.p);
    struct end e;
    while (rc < 0) {
        struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int pr = poll(pfd, 2, o->timeout_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            snprintf(why, sizeof why, "poll: %s", strerror(errno));
            rc = EXIT_UNREACHABLE;
            break;
        }
        if (pr == 0) {
            snprintf(why, sizeof why, "no word from the node for %d s", o->timeout_ms / 1000);
            rc = EXIT_UNREACHABLE;
            break;
        }
        if (pfd[1].revents & POLLIN) {
            rc = 0; /* SIGINT/SIGTERM: a clean stop */
            break;
        }
        unsigned char *p;
        size_t len;
        char tmp[256];
        int fr = recv_frame(fd, &p, &len, now_ms() + o->timeout_ms, tmp, sizeof tmp);
        if (fr <= 0) {
            snprintf(why, sizeof why, "%s", fr == 0 ? "the node closed the connection (did it "
                     "stop?)" : tmp);
            rc = EXIT_UNREACHABLE;
            break;
        }
        if (p[0] == 'E') {
            if (decode_end(p, len, &e) != 0) {
                snprintf(why, sizeof why, "malformed answer from the node");
                rc = EXIT_UNREACHABLE;
            } else {
                rc = e.code == 0 ? 0 : e.code == RLOG_ECLOSED ? EXIT_UNREACHABLE
                                                               : report_error("tail", &e);
                if (e.code == RLOG_ECLOSED)
                    snprintf(why, sizeof why, "the node went away: %s", e.msg);
            }
        } else if (p[0] == 'r') {
            if (print_record(o, p, len) != 0) {
                snprintf(why, sizeof why, "malformed record frame from the node");
                rc = EXIT_UNREACHABLE;
            } else if (fflush(stdout) != 0) {
                /* A closed pipe (`| head`) ends the tail quietly. */
                rc = errno == EPIPE ? 0 : EXIT_ERROR;
                if (rc)
                    fprintf(stderr, "%s tail: writing stdout: %s\n", progname, strerror(errno));
            }
        } else if ((p[0] != 't' && p[0] != 'k') || len != 9) {
            snprintf(why, sizeof why, "unexpected answer frame from the node");
            rc = EXIT_UNREACHABLE;
        }
        free(p);
    }
    close(fd);
    close(sfd);
    if (rc == EXIT_UNREACHABLE)
        fail_unreachable("tail", why);
    return rc;
}

/* ---- membership ---- */

static void usage_add_node(FILE *f)
{
    fprintf(f,
            "usage: %s add-node --control PATH [--json] [--timeout SEC] ID HOST:PORT\n"
            "\n"
            "Adds node ID, listening at HOST:PORT, to the cluster. Start it first with\n"
            "`%s node --join`, its --cluster listing the cluster including itself. It\n"
            "catches up as a non-voter, then becomes a voter; this returns when it votes.\n"
            "Must be sent to the leader's node.\n"
            "\n"
            "Exit status: 0 added; 1 usage; 3 not the leader (its id and address are\n"
            "printed); 5 cannot reach the node (or no answer within --timeout, default\n"
            "30 s: the change may still complete); 6 other errors (RLOG_EBUSY: another\n"
            "change is under way; RLOG_EINVAL: already a member or a bad address).\n",
            progname, progname);
}

static void usage_remove_node(FILE *f)
{
    fprintf(f,
            "usage: %s remove-node --control PATH [--json] [--timeout SEC] ID\n"
            "\n"
            "Removes node ID from the cluster (stop its process afterwards). Must be sent\n"
            "to the leader's node; to remove the leader, `transfer` first.\n"
            "\n"
            "Exit status: 0 removed; 1 usage; 3 not the leader; 5 cannot reach the node;\n"
            "6 other errors (RLOG_EINVAL: not a member; RLOG_EBUSY: another change).\n",
            progname);
}

static void usage_transfer(FILE *f)
{
    fprintf(f,
            "usage: %s transfer --control PATH [--json] [--timeout SEC] [ID]\n"
            "\n"
            "Hands leadership to voter ID (default: the most up-to-date follower) and\n"
            "prints the new leader once the handoff is done. Must be sent to the leader's\n"
            "node.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 not the leader; 5 cannot reach the node;\n"
            "6 other errors (RLOG_ETIMEOUT: the handoff did not complete).\n",
            progname);
}

static void usage_trim(FILE *f)
{
    fprintf(f,
            "usage: %s trim --control PATH [--json] [--timeout SEC] OFFSET\n"
            "\n"
            "Retention: drops every record before OFFSET on every replica (rlog_trim).\n"
            "Reads of those offsets then fail as trimmed on every node; later offsets do\n"
            "not change. Trimming to a point at or before the current one does nothing.\n"
            "Must be sent to the leader's node.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 not the leader; 5 cannot reach the node;\n"
            "6 other errors (RLOG_EINVAL: OFFSET is beyond the committed end).\n",
            progname);
}

static void usage_barrier(FILE *f)
{
    fprintf(f,
            "usage: %s barrier --control PATH [--json] [--timeout SEC]\n"
            "\n"
            "A read barrier (rlog_barrier), on any node: prints an offset B such that\n"
            "every record whose append completed before the command started is below B,\n"
            "once the node has every record before B committed, so a read there of any\n"
            "offset below B succeeds. The leader commits an empty barrier entry of its\n"
            "term; a follower asks the leader for it.\n"
            "\n"
            "Exit status: 0 done; 1 usage; 3 no leader known or reachable (try again);\n"
            "5 cannot reach the node; 6 other errors (RLOG_ETIMEOUT).\n",
            progname);
}

static int cmd_barrier(struct copts *o, int argc, char **argv)
{
    (void)argv;
    if (argc != 0) {
        fprintf(stderr, "%s barrier: takes no arguments\n", progname);
        usage_barrier(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'B');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "barrier", &req, &e, NULL, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    if (e.code != 0)
        return report_error("barrier", &e);
    if (o->json)
        printf("{\"barrier\":%" PRIu64 "}\n", e.value);
    else
        printf("%" PRIu64 "\n", e.value);
    fflush(stdout);
    return 0;
}

/* ---- metrics ---- */

static void usage_metrics(FILE *f)
{
    fprintf(f,
            "usage: %s metrics --control PATH [--timeout SEC]\n"
            "\n"
            "Prints the node's metrics (rlog_metrics(3)) in the Prometheus text format,\n"
            "as `node --metrics-address` serves them over HTTP.\n",
            progname);
}

static int print_metrics(void *arg, const unsigned char *p, size_t len)
{
    (void)arg;
    struct rd r = {.p = p, .len = len};
    if (get_u8(&r) != 'M')
        return -1;
    uint32_t n = get_u32(&r);
    const unsigned char *text = get_bytes(&r, n);
    if (!text || r.pos != r.len)
        return -1;
    fwrite(text, 1, n, stdout);
    return fflush(stdout) == 0 ? 0 : -1;
}

static int cmd_metrics(struct copts *o, int argc, char **argv)
{
    if (argc != 0 || o->json) {
        fprintf(stderr, "%s metrics: %s '%s'\n", progname, argc ? "unexpected argument" :
                "the text format only; not", argc ? argv[0] : "--json");
        usage_metrics(stderr);
        return EXIT_USAGE;
    }
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, 'M');
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, "metrics", &req, &e, print_metrics, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    return e.code == 0 ? 0 : report_error("metrics", &e);
}

static int parse_node_id(const char *cmd, const char *s, uint64_t *id)
{
    if (parse_u64(s, id) != 0 || *id == 0) {
        fprintf(stderr, "%s %s: node id must be a number >= 1, not '%s'\n", progname, cmd, s);
        return -1;
    }
    return 0;
}

/* The shape of HOST:PORT, before sending it: a port that is a number but
 * not a port gets its own message. The node checks the rest. 0 or -1. */
static int check_host_port(const char *cmd, const char *a)
{
    const char *colon = strrchr(a, ':');
    uint64_t port;
    if (colon == NULL || colon == a || strlen(a) > 255 || parse_u64(colon + 1, &port) != 0) {
        fprintf(stderr, "%s %s: address '%s' is not HOST:PORT\n", progname, cmd, a);
        return -1;
    }
    if (port < 1 || port > 65535) {
        fprintf(stderr, "%s %s: address '%s': port %s is out of range (1..65535)\n", progname,
                cmd, a, colon + 1);
        return -1;
    }
    return 0;
}

static int cmd_member(const char *cmd, struct copts *o, int argc, char **argv)
{
    uint8_t op = strcmp(cmd, "add-node") == 0      ? 'N'
                 : strcmp(cmd, "remove-node") == 0 ? 'X'
                 : strcmp(cmd, "trim") == 0        ? 'P'
                                                   : 'L';
    void (*help)(FILE *) = op == 'N'   ? usage_add_node
                           : op == 'X' ? usage_remove_node
                           : op == 'P' ? usage_trim
                                       : usage_transfer;
    int want = op == 'N' ? 2 : 1;
    if (argc != want && !(op == 'L' && argc == 0)) {
        fprintf(stderr, "%s %s: expected %s\n", progname, cmd,
                op == 'N' ? "ID HOST:PORT" : op == 'X' ? "one ID" : op == 'P' ? "one OFFSET"
                                                                               : "at most one ID");
        help(stderr);
        return EXIT_USAGE;
    }
    uint64_t id = 0;
    if (op == 'P' && parse_u64(argv[0], &id) != 0) {
        fprintf(stderr, "%s trim: OFFSET must be a number, not '%s'\n", progname, argv[0]);
        return EXIT_USAGE;
    }
    if (op != 'P' && argc > 0 && parse_node_id(cmd, argv[0], &id) != 0)
        return EXIT_USAGE;
    if (op == 'N' && check_host_port(cmd, argv[1]) != 0)
        return EXIT_USAGE;
    struct buf req = {0};
    size_t at = begin_frame(&req);
    put_u8(&req, op);
    put_u64(&req, id);
    if (op == 'N')
        put_str(&req, argv[1]);
    end_frame(&req, at);
    struct end e;
    int rc = call_node(o, cmd, &req, &e, NULL, NULL);
    free(req.p);
    if (rc != 0)
        return rc;
    if (e.code != 0)
        return report_error(cmd, &e);
    if (op == 'N') {
        if (o->json) {
            printf("{\"added\":%" PRIu64 ",\"address\":", id);
            json_string(stdout, (const unsigned char *)argv[1], strlen(argv[1]));
            fputs("}\n", stdout);
        } else {
            printf("added node %" PRIu64 " at %s\n", id, argv[1]);
        }
    } else if (op == 'X') {
        if (o->json)
            printf("{\"removed\":%" PRIu64 "}\n", id);
        else
            printf("removed node %" PRIu64 "\n", id);
    } else if (op == 'P') {
        if (o->json)
            printf("{\"trimmed_before\":%" PRIu64 "}\n", id);
        else
            printf("records before offset %" PRIu64 " are trimmed\n", id);
    } else if (o->json) {
        printf("{\"leader_id\":%" PRIu64 ",\"leader_address\":", e.leader_id);
        json_string(stdout, (const unsigned char *)e.leader_addr, strlen(e.leader_addr));
        fputs("}\n", stdout);
    } else if (e.leader_id) {
        printf("leader is now %" PRIu64 " at %s\n", e.leader_id, e.leader_addr);
    } else {
        printf("leadership handed off; the new leader is not known here yet\n");
    }
    fflush(stdout);
    return 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s COMMAND [options]\n"
            "\n"
            "An example host program for liblog %s, a Raft-replicated durable log.\n"
            "\n"
            "commands:\n"
            "  node     run one node of the log (opens it, serves a local control socket)\n"
            "  append   append records through any node's control socket\n"
            "  read     read committed records by offset from any node\n"
            "  tail     stream records from any node as they commit\n"
            "  status   show a node's role, term, leader, offsets and peers\n"
            "  add-node, remove-node, transfer\n"
            "           change the cluster's members, or its leader (on the leader)\n"
            "  trim     drop records before an offset on every replica (on the leader)\n"
            "  barrier  a read barrier: an offset every completed append is below\n"
            "  metrics  print a node's metrics in the Prometheus text format\n"
            "\n"
            "`%s COMMAND --help` describes each. Example, three nodes on one host:\n"
            "  C=1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003\n"
            "  %s node --id 1 --data d1 --cluster $C &   # and ids 2, 3 with d2, d3\n"
            "  %s status --control d1/control.sock\n"
            "  echo hello | %s append --control d1/control.sock   # any node\n"
            "  %s read --control d2/control.sock 0\n"
            "  %s tail --control d3/control.sock --from 0   # until Ctrl-C\n"
            "\n"
            "Exit status: 0 ok, 1 usage, 2 node failed to start, 3 not the leader,\n"
            "4 no such record, 5 node unreachable, 6 other error, 7 node failed stop\n"
            "after a storage error.\n",
            progname, RLOG_VERSION_STRING, progname, progname, progname, progname, progname,
            progname);
}

static int client_main(const char *cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"control", required_argument, NULL, 'c'},
        {"cluster-controls", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"from", required_argument, NULL, 'f'},
        {"from-end", no_argument, NULL, 'F'},
        {"count", required_argument, NULL, 'n'},
        {"producer", required_argument, NULL, 'p'},
        {"sequence", required_argument, NULL, 's'},
        {"expect-offset", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    void (*help)(FILE *) = strcmp(cmd, "append") == 0        ? usage_append
                           : strcmp(cmd, "read") == 0        ? usage_read
                           : strcmp(cmd, "tail") == 0        ? usage_tail
                           : strcmp(cmd, "add-node") == 0    ? usage_add_node
                           : strcmp(cmd, "remove-node") == 0 ? usage_remove_node
                           : strcmp(cmd, "transfer") == 0    ? usage_transfer
                           : strcmp(cmd, "trim") == 0        ? usage_trim
                           : strcmp(cmd, "barrier") == 0     ? usage_barrier
                           : strcmp(cmd, "metrics") == 0     ? usage_metrics
                                                             : usage_status;
    int is_tail = strcmp(cmd, "tail") == 0;
    struct copts o = {.timeout_ms = 30000, .sequence = 1};
    int seq_set = 0;
    char *list = NULL;
    int c, rc, from_end = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o.control = optarg; break;
        case 'C': free(list); list = strdup(optarg); break;
        case 'j': o.json = 1; break;
        case 't': {
            uint64_t v;
            if (parse_u64(optarg, &v) != 0 || v == 0 || v > 86400) {
                fprintf(stderr, "%s %s: --timeout must be 1..86400 seconds, not '%s'\n",
                        progname, cmd, optarg);
                free(list);
                return EXIT_USAGE;
            }
            o.timeout_ms = (int)v * 1000;
            break;
        }
        case 'f':
        case 'F':
        case 'n':
            if (!is_tail) {
                fprintf(stderr, "%s %s: --%s is an option of tail only\n", progname, cmd,
                        c == 'f' ? "from" : c == 'F' ? "from-end" : "count");
                help(stderr);
                free(list);
                return EXIT_USAGE;
            }
            if (c == 'F') {
                from_end = 1;
            } else if (parse_u64(optarg, c == 'f' ? &o.from : &o.count) != 0 ||
                       (c == 'f' && o.from == UINT64_MAX) || (c == 'n' && o.count == 0)) {
                fprintf(stderr, "%s tail: --%s must be a number%s, not '%s'\n", progname,
                        c == 'f' ? "from" : "count", c == 'n' ? " >= 1" : "", optarg);
                free(list);
                return EXIT_USAGE;
            } else if (c == 'f') {
                o.from_set = 1;
            }
            break;
        case 'p':
        case 's':
        case 'e': {
            const char *name = c == 'p' ? "producer" : c == 's' ? "sequence" : "expect-offset";
            uint64_t v;
            if (strcmp(cmd, "append") != 0) {
                fprintf(stderr, "%s %s: --%s is an option of append only\n", progname, cmd, name);
                help(stderr);
                free(list);
                return EXIT_USAGE;
            }
            if (parse_u64(optarg, &v) != 0 || (c != 'e' && v == 0) || v == UINT64_MAX) {
                fprintf(stderr, "%s append: --%s must be a number%s, not '%s'\n", progname, name,
                        c != 'e' ? " >= 1" : "", optarg);
                free(list);
                return EXIT_USAGE;
            }
            if (c == 'p')
                o.producer = v;
            else if (c == 's')
                o.sequence = v, seq_set = 1;
            else
                o.expect = v, o.has_expect = 1;
            break;
        }
        case 'h': help(stdout); free(list); return 0;
        default: help(stderr); free(list); return EXIT_USAGE;
        }
    }
    char *ctl[RLOG_MAX_PEERS * 4];
    if (list != NULL) {
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            if (o.n_controls == sizeof ctl / sizeof ctl[0]) {
                fprintf(stderr, "%s %s: too many --cluster-controls\n", progname, cmd);
                free(list);
                return EXIT_USAGE;
            }
            ctl[o.n_controls++] = tok;
        }
        o.controls = ctl;
    }
    if ((o.control == NULL) == (o.n_controls == 0)) {
        fprintf(stderr, "%s %s: give exactly one of --control PATH or --cluster-controls LIST\n",
                progname, cmd);
        help(stderr);
        free(list);
        return EXIT_USAGE;
    }
    if (seq_set && !o.producer) {
        fprintf(stderr, "%s append: --sequence needs --producer\n", progname);
        free(list);
        return EXIT_USAGE;
    }
    if (from_end && o.from_set) {
        fprintf(stderr, "%s tail: give at most one of --from OFFSET and --from-end\n", progname);
        free(list);
        return EXIT_USAGE;
    }
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "append") == 0)
        rc = cmd_append(&o, argc, argv);
    else if (strcmp(cmd, "read") == 0)
        rc = cmd_read(&o, argc, argv);
    else if (is_tail)
        rc = cmd_tail(&o, argc, argv);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&o, argc, argv);
    else if (strcmp(cmd, "barrier") == 0)
        rc = cmd_barrier(&o, argc, argv);
    else if (strcmp(cmd, "metrics") == 0)
        rc = cmd_metrics(&o, argc, argv);
    else
        rc = cmd_member(cmd, &o, argc, argv);
    free(list);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("rlogctl (liblog %s)\n", rlog_version_string());
        return 0;
    }
    if (strcmp(cmd, "node") == 0)
        return cmd_node(argc - 1, argv + 1);
    static const char *const clients[] = {"append", "read", "tail", "status",
                                          "add-node", "remove-node", "transfer", "trim",
                                          "barrier", "metrics"};
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++)
        if (strcmp(cmd, clients[i]) == 0)
            return client_main(cmd, argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s'\n\n", progname, cmd);
    usage(stderr);
    return EXIT_USAGE;
}
