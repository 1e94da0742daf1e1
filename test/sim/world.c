/*
 * The simulated world (see world.h). One thread does everything: it runs due
 * events (frame deliveries, store jobs, workload and fault actions), then
 * gives every node's libuv loop one non-blocking turn, then collects the
 * frames nodes wrote, and repeats until nothing moves; then it jumps the
 * virtual clock to the next event or timer.
 *
 * Why this is deterministic: nodes talk over in-process socket pairs, so a
 * byte written is readable at once and epoll reports ready sockets in a
 * fixed order; store jobs and connects are events in a (time, sequence)
 * queue; libuv's clock is this file's clock; and every choice comes from one
 * PRNG.
 */
#include "sim/world.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/bytes.h"
#include "common/env.h"
#include "host/mux.h"
#include "net/hello.h"
#include "raftio/io.h"
#include "sm/sm.h"
#include "wire/codec.h"

struct sim_world *W;
static struct sim_node *cur; /* the node the world acts for, or NULL */

/* ---- randomness and time ---------------------------------------------------------- */

uint64_t sim_rand(void)
{
    /* splitmix64: tiny, and every seed gives a full-quality stream */
    uint64_t z = (W->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t sim_range(uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + sim_rand() % (hi - lo + 1);
}

bool sim_chance(unsigned per_mille)
{
    return per_mille && sim_rand() % 1000 < per_mille;
}

/* libuv reads the monotonic clock through clock_gettime; defining it here
 * (exported, so the dynamic linker prefers it) puts libuv's loop time, and so
 * every timer in liblog and libraft, on the virtual clock. Each node may run
 * ahead of the others (a clock jump). */
__attribute__((visibility("default"))) int clock_gettime(clockid_t id, struct timespec *ts)
{
    bool mono = id == CLOCK_MONOTONIC || id == CLOCK_MONOTONIC_COARSE ||
                id == CLOCK_MONOTONIC_RAW || id == CLOCK_BOOTTIME;
    bool wall = id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE;
    if (!W || !(mono || wall))
        return (int)syscall(SYS_clock_gettime, id, ts);
    uint64_t t = W->now + (uint64_t)(cur ? cur->clock_offset_ns : 0);
    if (wall) /* batch times: deterministic, and each node's own */
        t += SIM_WALL_EPOCH + (uint64_t)(cur ? cur->wall_offset_ns : 0);
    ts->tv_sec = (time_t)(t / 1000000000ull);
    ts->tv_nsec = (long)(t % 1000000000ull);
    return 0;
}

void sim_log(const char *fmt, ...)
{
    if (!W->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%9.3f] ", (double)W->now / 1e9);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void node_enter(struct sim_node *n)
{
    cur = n;
    rl_fs_domain_enter(n ? n->fs : NULL);
}

void node_leave(void)
{
    node_enter(NULL);
}

/* ---- events ------------------------------------------------------------------------- */

struct event {
    uint64_t at, seq;
    void (*fn)(void *arg);
    void *arg;
};

static struct event *heap;
static size_t heap_n, heap_cap;
static uint64_t event_seq;

static bool ev_less(const struct event *a, const struct event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_at(uint64_t at, void (*fn)(void *arg), void *arg)
{
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = realloc(heap, heap_cap * sizeof *heap);
        if (!heap)
            abort();
    }
    size_t i = heap_n++;
    heap[i] = (struct event){.at = at < W->now ? W->now : at, .seq = event_seq++, .fn = fn, .arg = arg};
    while (i > 0 && ev_less(&heap[i], &heap[(i - 1) / 2])) {
        struct event t = heap[i];
        heap[i] = heap[(i - 1) / 2];
        heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static struct event ev_pop(void)
{
    struct event top = heap[0];
    heap[0] = heap[--heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_n && ev_less(&heap[l], &heap[m]))
            m = l;
        if (r < heap_n && ev_less(&heap[r], &heap[m]))
            m = r;
        if (m == i)
            break;
        struct event t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
    return top;
}

/* ---- the disk: store jobs run when the world says ------------------------------------ */

struct job {
    struct sim_node *n;
    uv_work_t *req;
    uv_work_cb work;
    uv_after_work_cb after;
    bool done;              /* ran early (rl_block_turn); the event only frees it */
    struct job *next;       /* the node's outstanding jobs, oldest first */
};

static struct job *jobs_head, *jobs_tail;

static void job_exec(struct job *j)
{
    j->done = true;
    struct sim_node *prev = cur;
    node_enter(j->n);
    j->work(j->req);
    j->after(j->req, 0);
    node_enter(prev);
}

static void job_run(void *arg)
{
    struct job *j = arg;
    if (!j->done)
        job_exec(j);
    /* jobs finish in order per node, so j is the oldest of its node */
    struct job **pp = &jobs_head, *prev = NULL;
    while (*pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = j->next;
    if (jobs_tail == j)
        jobs_tail = prev;
    free(j);
}

/* A node waiting inside a call (bootstrap) gets its oldest job run now. */
static void sim_block_turn(uv_loop_t *loop)
{
    for (struct job *j = jobs_head; j; j = j->next)
        if (j->n == cur && !j->done) {
            job_exec(j);
            return;
        }
    uv_run(loop, UV_RUN_NOWAIT);
}

static int sim_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    if (!cur)
        abort(); /* work from outside any node: the world lost track */
    struct job *j = malloc(sizeof *j);
    if (!j)
        abort();
    req->loop = loop;
    *j = (struct job){.n = cur, .req = req, .work = work, .after = after};
    if (jobs_tail)
        jobs_tail->next = j;
    else
        jobs_head = j;
    jobs_tail = j;
    /* One job at a time per disk, in submission order, like the store's
     * single writer; latency varies a little. */
    uint64_t start = cur->disk_busy_until > W->now ? cur->disk_busy_until : W->now;
    uint64_t lat = cur->disk_ns / 2 + sim_range(0, cur->disk_ns);
    cur->disk_busy_until = start + lat;
    sim_at(cur->disk_busy_until, job_run, j);
    return 0;
}

/* ---- the network ---------------------------------------------------------------------- */

struct buf {
    unsigned char *p;
    size_t len, cap, off;
};

static void buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->len + len)
            c *= 2;
        b->p = realloc(b->p, c);
        if (!b->p)
            abort();
        b->cap = c;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

/* A connection: end 0 is the connecting node, end 1 the accepting one. The
 * world holds the far side of each node's socket pair and forwards whole
 * frames between them. */
struct conn {
    struct sim_node *end[2];
    uint64_t inc[2];
    int fd[2];              /* world's side of end i's socket pair */
    struct buf rx[2];       /* read from end i, not yet a whole frame */
    struct buf tx[2];       /* to write to end i */
    uint64_t last_due[2];   /* latest delivery time towards end i */
    bool dead;
    bool ready[2];          /* end i's fd polled readable (or hung up) */
    unsigned refs;          /* deliveries in flight */
    struct conn *next;
};

static struct conn *conns;

/* Every world-side fd is in one epoll set, so a pump reads only the ends
 * that have bytes (or hung up) instead of trying every end at every step:
 * most of those reads failed with EAGAIN and cost most of a run's time. A
 * closed fd leaves the set by itself. */
static int world_ep = -1;

static void watch_end(struct conn *c, int i)
{
    if (world_ep < 0 && (world_ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        abort();
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)(uintptr_t)c | (uint64_t)i};
    if (epoll_ctl(world_ep, EPOLL_CTL_ADD, c->fd[i], &ev) != 0)
        abort();
}

/* Marks the ends with something to read; all of them if the poll cannot
 * tell (more ready ends than it returns at once). */
static void poll_ends(void)
{
    struct epoll_event evs[256];
    int n = conns ? epoll_wait(world_ep, evs, 256, 0) : 0;
    if (n < 0 && errno != EINTR)
        abort();
    if (n == 256 || n < 0) {
        for (struct conn *c = conns; c; c = c->next)
            c->ready[0] = c->ready[1] = true;
        return;
    }
    for (int k = 0; k < n; k++) {
        struct conn *c = (struct conn *)(uintptr_t)(evs[k].data.u64 & ~(uint64_t)1);
        c->ready[evs[k].data.u64 & 1] = true;
    }
}

struct delivery {
    struct conn *c;
    int to;
    size_t len;
    unsigned char data[];
};

static void conn_kill(struct conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    for (int i = 0; i < 2; i++) {
        close(c->fd[i]);
        c->fd[i] = -1;
    }
}

static void conn_flush(struct conn *c, int i)
{
    struct buf *t = &c->tx[i];
    while (!c->dead && t->off < t->len) {
        ssize_t w = write(c->fd[i], t->p + t->off, t->len - t->off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) {
            conn_kill(c);
            return;
        }
        t->off += (size_t)w;
    }
    if (t->off == t->len)
        t->off = t->len = 0;
}

static void deliver(void *arg)
{
    struct delivery *d = arg;
    struct conn *c = d->c;
    c->refs--;
    if (!c->dead) {
        W->delivered[c->end[1 - d->to]->idx][c->end[d->to]->idx]++;
        buf_add(&c->tx[d->to], d->data, d->len);
        conn_flush(c, d->to);
    }
    free(d);
}

static bool link_up(const struct sim_node *from, const struct sim_node *to)
{
    return !W->link_cut[from->idx][to->idx];
}

/* Delivers `copies` of bytes towards end `to`, each after the network's
 * delay; in_order: none before what was delivered there already (a
 * stream's order). */
static void send_copies(struct conn *c, int to, const unsigned char *bytes, size_t len,
                        int copies, bool in_order)
{
    W->duplicated += (unsigned long)copies - 1;
    for (int k = 0; k < copies; k++) {
        uint64_t due = W->now + W->net.delay_ns + sim_range(0, W->net.jitter_ns);
        if (in_order && due < c->last_due[to])
            due = c->last_due[to];
        c->last_due[to] = due;
        struct delivery *d = malloc(sizeof *d + len);
        if (!d)
            abort();
        d->c = c;
        d->to = to;
        d->len = len;
        memcpy(d->data, bytes, len);
        c->refs++;
        sim_at(due, deliver, d);
    }
}

/* Decides the fate of one whole frame read from end `from`. */
static void route(struct conn *c, int from, const unsigned char *frame, size_t len)
{
    int to = 1 - from;
    W->frames++;
    if (W->trace_from && W->now >= W->trace_from) {
        struct rl_wire_hdr h;
        char err[128];
        if (rl_wire_decode_hdr(frame, UINT32_MAX, &h, err, sizeof err) == 0) {
            struct raft_message m = {0};
            bool owned = false;
            void *body = raft_malloc(h.length ? h.length : 8);
            memcpy(body, frame + RL_WIRE_HDR, h.length);
            if (rl_wire_decode(&h, body, &m, &owned, err, sizeof err) == 0) {
                if (m.type == RAFT_IO_APPEND_ENTRIES)
                    sim_log("n%" PRIu64 " -> n%" PRIu64 " AE term %llu prev %llu/%llu n %u commit %llu",
                            c->end[from]->id, c->end[to]->id, (unsigned long long)m.append_entries.term,
                            (unsigned long long)m.append_entries.prev_log_index,
                            (unsigned long long)m.append_entries.prev_log_term,
                            m.append_entries.n_entries,
                            (unsigned long long)m.append_entries.leader_commit);
                else if (m.type == RAFT_IO_APPEND_ENTRIES_RESULT)
                    sim_log("n%" PRIu64 " -> n%" PRIu64 " AER term %llu rejected %llu last %llu",
                            c->end[from]->id, c->end[to]->id,
                            (unsigned long long)m.append_entries_result.term,
                            (unsigned long long)m.append_entries_result.rejected,
                            (unsigned long long)m.append_entries_result.last_log_index);
                else
                    sim_log("n%" PRIu64 " -> n%" PRIu64 " type %u", c->end[from]->id, c->end[to]->id,
                            m.type);
                rl_wire_message_release(&m, body, owned);
                if (!owned)
                    raft_free(body);
            } else { /* liblog's own frames */
                sim_log("n%" PRIu64 " -> n%" PRIu64 " type %u", c->end[from]->id, c->end[to]->id,
                        (unsigned)h.type);
                raft_free(body);
            }
        }
    }
    if (!link_up(c->end[from], c->end[to]) || sim_chance(W->net.drop_pm)) {
        W->dropped++;
        return;
    }
    send_copies(c, to, frame, len, sim_chance(W->net.dup_pm) ? 2 : 1, !W->net.reorder);
}

/* Host mode: the fate of one whole record of a host connection (mux.h).
 * A DATA record is one whole message of one log, so it may be lost or
 * doubled as a frame is above; OPEN and CLOSE change the state of both
 * ends, and a stream loses nothing, so a cut link breaks the connection
 * instead (as TCP does, later) and they are never dropped otherwise. The
 * order is kept: a channel's data must not overtake its OPEN. */
static void route_record(struct conn *c, int from, const unsigned char *rec, size_t len)
{
    int to = 1 - from;
    W->frames++;
    bool data = rl_get32(rec) == 2, keepalive = !data && rl_get64(rec + 8) == 0;
    bool cut = !link_up(c->end[from], c->end[to]);
    if (cut && !data && !keepalive) {
        conn_kill(c);
        return;
    }
    if (cut || (data && sim_chance(W->net.drop_pm))) {
        W->dropped++;
        return;
    }
    send_copies(c, to, rec, len, data && sim_chance(W->net.dup_pm) ? 2 : 1, true);
}

#define MUX_REC_HDR 20

/* Reads what end i wrote; returns true if anything moved. */
static bool conn_pump(struct conn *c, int i)
{
    bool moved = false;
    unsigned char chunk[64 * 1024];
    /* Not readable: a read would fail with EAGAIN and the partial frame
     * in rx cannot have grown; only a blocked write may move. */
    if (!c->ready[i]) {
        if (!c->dead && c->tx[i].len)
            conn_flush(c, i);
        return false;
    }
    c->ready[i] = false;
    while (!c->dead) {
        ssize_t r = read(c->fd[i], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            break;
        if (r <= 0) { /* the node closed its end (or died) */
            conn_kill(c);
            return true;
        }
        moved = true;
        buf_add(&c->rx[i], chunk, (size_t)r);
    }
    struct buf *b = &c->rx[i];
    size_t pos = 0;
    bool hosts = W->logs > 1;
    size_t hdr = hosts ? MUX_REC_HDR : RL_WIRE_HDR;
    while (!c->dead && b->len - pos >= hdr) {
        const unsigned char *h = b->p + pos;
        size_t total = hdr + (size_t)rl_get32(h + (hosts ? 4 : 8));
        if (b->len - pos < total)
            break;
        if (hosts)
            route_record(c, i, h, total);
        else
            route(c, i, h, total);
        pos += total;
    }
    if (pos) {
        memmove(b->p, b->p + pos, b->len - pos);
        b->len -= pos;
    }
    if (!c->dead)
        conn_flush(c, i);
    return moved;
}

static bool net_pump(void)
{
    bool moved = false;
    poll_ends();
    struct conn **pp = &conns;
    while (*pp) {
        struct conn *c = *pp;
        for (int i = 0; i < 2; i++)
            moved |= conn_pump(c, i);
        if (c->dead && c->refs == 0) {
            *pp = c->next;
            for (int i = 0; i < 2; i++) {
                free(c->rx[i].p);
                free(c->tx[i].p);
            }
            free(c);
        } else {
            pp = &c->next;
        }
    }
    return moved;
}

void net_sever(struct sim_node *n)
{
    for (struct conn *c = conns; c; c = c->next)
        if (c->end[0] == n || c->end[1] == n)
            conn_kill(c);
}

/* The loop the node runs on: its host's (host mode) or its log's own;
 * NULL while down. */
static uv_loop_t *node_loop(const struct sim_node *n)
{
    return W->logs > 1 ? n->hloop : n->log ? n->log->loop : NULL;
}

/* A node-side stream over one end of a fresh socket pair; *world_fd gets
 * the other end. */
static uv_stream_t *make_stream(struct sim_node *n, int *world_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    uv_pipe_t *p = malloc(sizeof *p);
    if (!p || uv_pipe_init(node_loop(n), p, 0) != 0 || uv_pipe_open(p, sv[0]) != 0)
        abort();
    *world_fd = sv[1];
    return (uv_stream_t *)p;
}

/* ---- the transport ---------------------------------------------------------------------- */

struct strans {
    struct sim_node *n;
    uint64_t inc;
    uint64_t id;
    raft_uv_accept_cb accept;
    struct pending *pending;
    bool closed;
};

struct pending {
    struct strans *t;
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
    uint64_t target;
    bool cancelled;
    struct pending *next;
};

static struct sim_node *node_by_id(uint64_t id)
{
    for (int i = 0; i < W->n; i++)
        if (W->nodes[i].id == id)
            return &W->nodes[i];
    return NULL;
}

static int st_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct strans *s = t->impl;
    s->id = id;
    return 0;
}

static int st_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct strans *s = t->impl;
    s->accept = cb;
    s->n->transport = t;
    s->n->accept_cb = (void *)cb;
    return 0;
}

static void pending_unlink(struct pending *p)
{
    for (struct pending **pp = &p->t->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

/* In host mode the host's transport accepts whether or not the primary
 * log is up there. */
static bool accepting(const struct sim_node *n, uint64_t inc)
{
    if (n && W->logs > 1)
        return n->hloop && !n->host_closing && n->host_inc == inc && n->transport;
    return n && n->log && !n->closing && n->incarnation == inc && n->transport;
}

static uint64_t transport_inc(const struct sim_node *n)
{
    return W->logs > 1 ? n->host_inc : n->incarnation;
}

static void connect_attempt(void *arg)
{
    struct pending *p = arg;
    if (p->cancelled) {
        free(p);
        return;
    }
    pending_unlink(p);
    struct strans *s = p->t;
    struct sim_node *a = s->n, *b = node_by_id(p->target);
    bool ok = accepting(a, s->inc) && b && accepting(b, transport_inc(b)) && link_up(a, b) &&
              link_up(b, a);
    if (!ok) {
        node_enter(a);
        p->cb(p->req, NULL, RAFT_NOCONNECTION);
        node_leave();
        free(p);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->end[0] = a;
    c->end[1] = b;
    c->inc[0] = a->incarnation;
    c->inc[1] = b->incarnation;
    uv_stream_t *sa = make_stream(a, &c->fd[0]);
    uv_stream_t *sb = make_stream(b, &c->fd[1]);
    watch_end(c, 0);
    watch_end(c, 1);
    c->next = conns;
    conns = c;
    struct raft_uv_transport *bt = b->transport;
    node_enter(b);
    ((raft_uv_accept_cb)b->accept_cb)(bt, a->id, a->address, sb);
    node_enter(a);
    p->cb(p->req, sa, 0);
    node_leave();
    free(p);
}

/* A connection to `to` on which the world speaks as `from` (whose own
 * loop knows nothing of it): what a member's stolen identity, or a
 * misbehaving member, can open. Its far end is a socket nobody reads. */
static void forger_connect(struct sim_node *from, struct sim_node *to)
{
    int sv[2];
    if (!accepting(to, transport_inc(to)) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return;
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->end[0] = from;
    c->end[1] = to;
    c->inc[0] = from->incarnation;
    c->inc[1] = to->incarnation;
    c->fd[0] = sv[0]; /* sv[1] stays open and unread: replies pile up there */
    uv_stream_t *sb = make_stream(to, &c->fd[1]);
    watch_end(c, 0);
    watch_end(c, 1);
    c->next = conns;
    conns = c;
    node_enter(to);
    ((raft_uv_accept_cb)to->accept_cb)(to->transport, from->id, from->address, sb);
    node_leave();
}

bool world_inject(struct sim_node *from, struct sim_node *to, struct rl_wire_out *out)
{
    bool found = false;
    for (struct conn *c = conns; c && !found; c = c->next)
        found = !c->dead && ((c->end[0] == to && c->end[1] == from) ||
                             (c->end[1] == to && c->end[0] == from));
    if (!found)
        forger_connect(from, to);
    for (struct conn *c = conns; c; c = c->next) {
        if (c->dead)
            continue;
        int t = c->end[0] == to && c->end[1] == from ? 0 : c->end[1] == to && c->end[0] == from ? 1 : -1;
        if (t < 0)
            continue;
        for (unsigned i = 0; i < out->n_iov; i++)
            buf_add(&c->tx[t], out->iov[i].base, out->iov[i].len);
        rl_wire_out_free(out);
        conn_flush(c, t);
        return true;
    }
    rl_wire_out_free(out);
    return false;
}

static int st_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct strans *s = t->impl;
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return RAFT_NOMEM;
    *p = (struct pending){.t = s, .req = req, .cb = cb, .target = id, .next = s->pending};
    req->cb = cb;
    s->pending = p;
    /* A connect to a cut-off peer fails only after a while, as over TCP. */
    struct sim_node *b = node_by_id(id);
    bool cut = b && (!link_up(s->n, b) || !link_up(b, s->n));
    sim_at(W->now + (cut ? 50 * SIM_MS : sim_range(20000, 200000)), connect_attempt, p);
    return 0;
}

struct close_req {
    struct raft_uv_transport *t;
    raft_uv_transport_close_cb cb;
    struct sim_node *n;
};

static void close_done(void *arg)
{
    struct close_req *r = arg;
    node_enter(r->n);
    r->cb(r->t);
    node_leave();
    free(r);
}

static void st_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct strans *s = t->impl;
    s->closed = true;
    if (s->n->transport == t) {
        s->n->transport = NULL;
        s->n->accept_cb = NULL;
    }
    while (s->pending) {
        struct pending *p = s->pending;
        s->pending = p->next;
        p->cancelled = true; /* freed by its connect_attempt event */
        p->cb(p->req, NULL, RAFT_CANCELED);
    }
    struct close_req *r = malloc(sizeof *r);
    if (!r)
        abort();
    *r = (struct close_req){.t = t, .cb = cb, .n = s->n};
    sim_at(W->now, close_done, r);
}

static int sim_transport_init(struct raft_uv_transport *t, uv_loop_t *loop)
{
    (void)loop;
    struct strans *s = calloc(1, sizeof *s);
    if (!s || !cur)
        abort();
    s->n = cur;
    s->inc = transport_inc(cur);
    memset(t, 0, sizeof *t);
    t->impl = s;
    t->init = st_init;
    t->listen = st_listen;
    t->connect = st_connect;
    t->close = st_close;
    return 0;
}

static void sim_transport_fini(struct raft_uv_transport *t)
{
    free(t->impl);
    t->impl = NULL;
}

static void sim_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)sim_rand();
}

static const struct rl_env sim_env = {
    .queue_work = sim_queue_work,
    .transport_init = sim_transport_init,
    .transport_fini = sim_transport_fini,
    .block_turn = sim_block_turn,
    .random = sim_random,
};

/* ---- nodes -------------------------------------------------------------------------------- */

static void node_log_fn(void *arg, int level, const char *line)
{
    struct sim_node *n = arg;
    if (strstr(line, "truncating the log"))
        W->truncations++;
    if (strstr(line, "still being written"))
        W->inflight_drops++;
    if (strstr(line, "this log restarts there"))
        W->resets++;
    if (W->verbose)
        fprintf(stderr, "[%9.3f] n%" PRIu64 ": %s\n", (double)W->now / 1e9, n->id, line);
}

bool node_up(const struct sim_node *n)
{
    return n->log && !n->closing;
}

/* Every open node's libuv backend (its epoll fd) is in one epoll set too: a
 * loop with no ready descriptor, no due timer and nothing pending would do
 * nothing in a turn, so one epoll_wait per round finds the loops worth a
 * turn instead of one per node (the same runs, fewer system calls). */
static int loops_ep = -1;

static void watch_loop(struct sim_node *n, bool on)
{
    if (loops_ep < 0 && (loops_ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        abort();
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)n->idx};
    if (epoll_ctl(loops_ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, uv_backend_fd(node_loop(n)), &ev) != 0)
        abort();
}

/* Bit i set: node i's loop has a ready descriptor. */
static uint32_t loops_ready(void)
{
    struct epoll_event evs[SIM_MAX_NODES];
    int k = loops_ep < 0 ? 0 : epoll_wait(loops_ep, evs, SIM_MAX_NODES, 0);
    uint32_t m = 0;
    for (int i = 0; i < k; i++)
        m |= 1u << evs[i].data.u32;
    return m;
}

/* ---- host mode: a node's host, and the logs beside the primary ---------------- */

bool host_up(const struct sim_node *n)
{
    return n->hloop && !n->host_closing;
}

bool bg_up(const struct sim_node *n, int k)
{
    return host_up(n) && n->bg[k].log && !n->bg[k].closing;
}

static struct sim_node *node_of_bg(const struct sim_bg *b)
{
    return (struct sim_node *)((const char *)(b - b->k) - offsetof(struct sim_node, bg));
}

static void host_log_fn(void *arg, int level, const char *line)
{
    struct sim_node *n = arg;
    (void)level;
    if (W->verbose)
        fprintf(stderr, "[%9.3f] host n%" PRIu64 ": %s\n", (double)W->now / 1e9, n->id, line);
}

static void bg_log_fn(void *arg, int level, const char *line)
{
    struct sim_bg *b = arg;
    (void)level;
    if (W->verbose)
        fprintf(stderr, "[%9.3f] n%" PRIu64 "/%s: %s\n", (double)W->now / 1e9, node_of_bg(b)->id,
                b->name, line);
}

/* The logs beside the primary: the first configuration's nodes, a plain
 * configuration (no state machine, no retention), balanced as the primary
 * is. */
int node_bg_start(struct sim_node *n, int k)
{
    struct sim_bg *b = &n->bg[k];
    if (b->log || !host_up(n) || n->idx >= W->first_n || W->finishing)
        return 0;
    struct rlog_peer peers[SIM_MAX_NODES];
    for (int i = 0; i < W->first_n; i++)
        peers[i] = (struct rlog_peer){.id = W->nodes[i].id, .address = W->nodes[i].address};
    struct rlog_config cfg;
    rlog_config_init(&cfg);
    cfg.segment_size = 256 << 10;
    cfg.batch_max_bytes = 64 << 10;
    cfg.max_record_size = 16 << 10;
    cfg.cache_bytes = 128 << 10;
    cfg.snapshot_threshold = 32;
    cfg.snapshot_trailing = 16;
    cfg.balance_leaders = W->base.balance_leaders;
    cfg.cluster_name = b->name;
    cfg.id = n->id;
    cfg.address = n->address;
    cfg.data_dir = b->dir;
    cfg.peers = peers;
    cfg.n_peers = (unsigned)W->first_n;
    cfg.log_fn = bg_log_fn;
    cfg.log_arg = b;
    char err[512];
    b->fatal_seen = false;
    node_enter(n);
    int rv = rl_open_stepped_on(n->hloop, rl_mux_via(n->mux), &cfg, &b->log, err, sizeof err);
    node_leave();
    if (rv != 0) {
        sim_log("n%" PRIu64 "/%s open failed: %s: %s", n->id, b->name, rlog_errname(rv), err);
        b->log = NULL;
    }
    return rv;
}

static void bg_restart_ev(void *arg)
{
    struct sim_bg *b = arg;
    struct sim_node *n = node_of_bg(b);
    if (!host_up(n))
        return; /* the host's start opens it */
    if (b->closing || b->ended) { /* still closing */
        sim_at(W->now + 50 * SIM_MS, bg_restart_ev, b);
        return;
    }
    if (b->log)
        return; /* reopened meanwhile (the host's start, a heal) */
    if (node_bg_start(n, b->k) != 0)
        sim_at(W->now + sim_range(200, 1000) * SIM_MS, bg_restart_ev, b);
}

static void mux_closed(void *arg)
{
    ((struct sim_node *)arg)->mux_closed = true;
}

static void host_start(struct sim_node *n)
{
    uv_loop_t *loop = malloc(sizeof *loop);
    if (!loop || uv_loop_init(loop) != 0)
        abort();
    n->hloop = loop;
    n->host_inc++;
    n->host_closing = n->mux_closed = false;
    n->fault_scope = -1;
    node_enter(n); /* the machine comes back: no fault armed while it was down */
    struct rl_fs_faults none = {0};
    rl_fs_faults_set(&none);
    node_leave();
    struct rl_mux_config mc = {
        .loop = loop, .self = n->id, .address = n->address,
        .cluster_hash = rl_hello_cluster_hash("sim-hosts"), .max_inbound = 64,
        .max_per_address = 8, .handshake_timeout_ms = 5000, .log = host_log_fn, .log_arg = n};
    char err[256];
    node_enter(n);
    int rv = rl_mux_start(&mc, &n->mux, err, sizeof err);
    node_leave();
    if (rv != 0) {
        fprintf(stderr, "seed %" PRIu64 ": n%" PRIu64 "'s host does not start: %s\n", W->seed,
                n->id, err);
        abort();
    }
    watch_loop(n, true);
    sim_log("host n%" PRIu64 " up (%" PRIu64 ")", n->id, n->host_inc);
    for (int k = 1; k < W->logs; k++)
        if (node_bg_start(n, k) != 0)
            sim_at(W->now + sim_range(200, 1000) * SIM_MS, bg_restart_ev, &n->bg[k]);
}

static void bg_close_done(struct rl_op *op)
{
    struct sim_bg *b = op->done_arg;
    free(op);
    b->ended = b->log;
    b->log = NULL;
    b->closing = false;
}

/* Queues log's close on n (crash: as power loss, touching no disk). */
static void submit_close(struct sim_node *n, rlog *log, bool crash, void (*done)(struct rl_op *),
                         void *arg)
{
    struct rl_op *op = calloc(1, sizeof *op);
    if (!op)
        abort();
    op->kind = RL_OP_CLOSE;
    op->done = done;
    op->done_arg = arg;
    log->crash_close = crash;
    node_enter(n);
    if (rl_submit(log, op) != 0)
        abort(); /* only a close makes a node refuse ops, and this is the one */
    node_leave();
}

static void bg_begin_close(struct sim_node *n, int k, bool crash)
{
    struct sim_bg *b = &n->bg[k];
    if (!b->log || b->closing)
        return;
    b->closing = true;
    submit_close(n, b->log, crash, bg_close_done, b);
}

static void begin_close(struct sim_node *n, bool crash);

/* A crash or stop of the host: every log, then the transport, then the
 * loop (host_settle, after the turns that close them). */
static void host_close(struct sim_node *n, bool crash)
{
    if (!host_up(n))
        return;
    n->host_closing = true;
    begin_close(n, crash);
    for (int k = 1; k < W->logs; k++)
        bg_begin_close(n, k, crash);
}

/* A log that failed stop closed alone: a disk fault confined to it (or
 * on the whole disk) is over, as an operator would have mended it before
 * reopening it. */
static void log_closed_alone(struct sim_node *n, int k)
{
    if (n->host_closing || !(n->fault_scope == k || n->fault_scope < 0))
        return;
    struct sim_node *prev = cur; /* inside the host's turn: it stays entered */
    node_enter(n);
    struct rl_fs_faults none = {0};
    if (!rl_fs_crashed())
        rl_fs_faults_set(&none);
    node_enter(prev);
    n->fault_scope = -1;
}

static void reap_bg(struct sim_node *n)
{
    for (int k = 1; k < W->logs; k++) {
        struct sim_bg *b = &n->bg[k];
        if (b->ended) {
            rl_free_stepped(b->ended);
            b->ended = NULL;
            log_closed_alone(n, k);
        }
    }
}

/* After a turn: a closing host's next step. */
static void host_settle(struct sim_node *n)
{
    if (!n->host_closing || n->log)
        return;
    for (int k = 1; k < W->logs; k++)
        if (n->bg[k].log)
            return;
    if (n->mux) {
        struct rl_mux *m = n->mux;
        n->mux = NULL;
        node_enter(n);
        rl_mux_close(m, mux_closed, n);
        node_leave();
        return;
    }
    if (!n->mux_closed)
        return;
    watch_loop(n, false);
    node_enter(n);
    uv_run(n->hloop, UV_RUN_NOWAIT);
    if (uv_loop_close(n->hloop) != 0) {
        fprintf(stderr, "seed %" PRIu64 ": n%" PRIu64 "'s host left handles open on its loop\n",
                W->seed, n->id);
        abort();
    }
    struct rl_fs_faults none = {0};
    rl_fs_faults_set(&none); /* the machine comes back with what its disk kept */
    node_leave();
    free(n->hloop);
    n->hloop = NULL;
    n->host_closing = false;
    n->transport = NULL;
    n->accept_cb = NULL;
    n->fault_scope = -1;
    sim_log("host n%" PRIu64 " down", n->id);
}

/* A fault confined to one log's store is mended when that log closes
 * after failing stop (log_closed_alone) or the host restarts; damage it
 * left on disk stays, as it would. */
void node_arm_fault(struct sim_node *n, int k, const struct rl_fs_faults *f)
{
    struct rl_fs_faults g = *f;
    char under[330];
    if (W->logs > 1 && k >= 0) {
        snprintf(under, sizeof under, "%s/", k == 0 ? n->dir : n->bg[k].dir);
        g.only_under = under;
    }
    node_enter(n);
    rl_fs_faults_set(&g);
    node_leave();
    n->fault_scope = W->logs > 1 && k >= 0 ? k : -1;
}

int node_start(struct sim_node *n)
{
    if (n->log)
        return 0;
    if (W->finishing)
        return RLOG_ECLOSED;
    if (W->logs > 1 && n->host_closing)
        return RLOG_ECLOSED; /* restarted once it is down */
    if (W->logs > 1 && !n->hloop)
        host_start(n);
    /* The first configuration; a joining node lists it and itself, as an
     * operator adding a node would. */
    struct rlog_peer peers[SIM_MAX_NODES];
    unsigned np = 0;
    for (int i = 0; i < W->boot_n; i++)
        peers[np++] = (struct rlog_peer){.id = W->nodes[i].id, .address = W->nodes[i].address};
    if (n->join && n->idx >= W->boot_n)
        peers[np++] = (struct rlog_peer){.id = n->id, .address = n->address};
    /* Once the membership grew (boot_n raised by sm-join), an empty
     * directory must not bootstrap the new list (an index-1 entry unlike
     * the cluster's): it waits to be contacted, as a joining node does. */
    struct stat st;
    bool join = n->join || (W->boot_n > W->first_n && stat(n->dir, &st) != 0);
    struct rlog_config cfg = W->base;
    cfg.id = n->id;
    cfg.address = n->address;
    cfg.data_dir = n->dir;
    cfg.peers = peers;
    cfg.n_peers = np;
    cfg.join = join;
    cfg.log_fn = node_log_fn;
    cfg.log_arg = n;
    if (W->logs > 1 && !cfg.cluster_name)
        cfg.cluster_name = "primary"; /* names its channels */
    if (W->base.sm) { /* one state machine per node: its arg is the node */
        n->sm = *W->base.sm;
        n->sm.arg = n;
        cfg.sm = &n->sm;
    }
    char err[512];
    n->incarnation++;
    n->fatal_seen = false;
    node_enter(n);
    int rv = W->logs > 1 ? rl_open_stepped_on(n->hloop, rl_mux_via(n->mux), &cfg, &n->log, err,
                                              sizeof err)
                         : rl_open_stepped(&cfg, &n->log, err, sizeof err);
    node_leave();
    if (rv != 0) {
        sim_log("n%" PRIu64 " open failed: %s: %s", n->id, rlog_errname(rv), err);
        n->log = NULL;
        return rv;
    }
    if (W->logs <= 1)
        watch_loop(n, true);
    sim_log("n%" PRIu64 " up (incarnation %" PRIu64 ")", n->id, n->incarnation);
    return 0;
}

static void close_done_op(struct rl_op *op)
{
    struct sim_node *n = op->done_arg;
    free(op);
    rlog *log = n->log;
    if (W->logs <= 1)
        watch_loop(n, false); /* its own loop, inside log */
    n->log = NULL;
    n->closing = false;
    /* The close ends in a callback of the log's own loop, still running:
     * the loop (inside log) is freed once the turn is over (reap). */
    n->ended = log;
    sim_log("n%" PRIu64 " down", n->id);
    if (W->logs > 1)
        return; /* the host and its disk go on (host_settle, log_closed_alone) */
    n->transport = NULL;
    n->accept_cb = NULL;
    /* The machine comes back with whatever its disk kept. */
    struct rl_fs_faults none = {0};
    rl_fs_faults_set(&none);
}

static void reap(struct sim_node *n)
{
    if (n->ended) {
        rl_free_stepped(n->ended);
        n->ended = NULL;
        if (W->logs > 1)
            log_closed_alone(n, 0);
    }
}

static void begin_close(struct sim_node *n, bool crash)
{
    if (!n->log || n->closing)
        return;
    n->closing = true;
    submit_close(n, n->log, crash, close_done_op, n);
    node_enter(n);
    reap(n);
    node_leave();
}

void node_crash(struct sim_node *n, long tear_bytes)
{
    if (W->logs > 1 ? !host_up(n) : !n->log || n->closing)
        return;
    sim_log("n%" PRIu64 " CRASH (tear %ld)", n->id, tear_bytes);
    node_enter(n);
    rl_fs_crash(tear_bytes);
    node_leave();
    net_sever(n);
    if (W->logs > 1)
        host_close(n, true);
    else
        begin_close(n, true);
}

void node_stop(struct sim_node *n)
{
    sim_log("n%" PRIu64 " stop", n->id);
    if (W->logs > 1)
        host_close(n, false);
    else
        begin_close(n, false);
}

int node_submit(struct sim_node *n, struct rl_op *op)
{
    if (!node_up(n))
        return RLOG_ECLOSED;
    node_enter(n);
    int rv = rl_submit(n->log, op);
    node_leave();
    return rv;
}

int node_read_here(struct sim_node *n, uint64_t offset, void **buf, size_t *len)
{
    if (!node_up(n))
        return 1;
    node_enter(n);
    int rv = rl_read_here(n->log, offset, buf, len);
    node_leave();
    return rv;
}

uint64_t node_leader(const struct sim_node *n)
{
    if (!node_up(n))
        return 0;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader((struct raft *)&n->log->raft, &id, &addr);
    return id;
}

bool node_is_leader(const struct sim_node *n)
{
    return node_up(n) && n->log->raft.state == RAFT_LEADER;
}

uint64_t node_visible(const struct sim_node *n)
{
    return n->log ? n->log->fence.visible_offset : 0;
}

uint64_t node_trimmed(const struct sim_node *n)
{
    return n->log ? n->log->trim_offset : 0;
}

uint64_t node_first(const struct sim_node *n)
{
    if (!n->log)
        return 0;
    uint64_t f = rl_store_first_offset(n->log->store);
    return f > n->log->trim_offset ? f : n->log->trim_offset;
}

/* Where n's stored log first differs from the first node's (term or base
 * offset of an entry both hold), or 0: tells a divergence from a lag. */
static uint64_t first_difference(struct sim_node *ref, struct sim_node *n)
{
    struct rl_store *a = ref->log->store, *b = n->log->store;
    uint64_t from = rl_store_first_index(a) > rl_store_first_index(b) ? rl_store_first_index(a)
                                                                       : rl_store_first_index(b);
    uint64_t to = rl_store_last_index(a) < rl_store_last_index(b) ? rl_store_last_index(a)
                                                                   : rl_store_last_index(b);
    for (uint64_t i = from; i <= to; i++) {
        struct rl_store_entry x, y;
        int ra = rl_store_read(a, i, &x), rb = rl_store_read(b, i, &y);
        bool same = ra == 0 && rb == 0 && x.term == y.term && x.offset == y.offset &&
                    x.records == y.records;
        if ((ra != 0 || rb != 0) && getenv("SIM_DEBUG_DIFF"))
            fprintf(stderr, "      entry %" PRIu64 ": read n%" PRIu64 " %d n%" PRIu64 " %d\n", i,
                    ref->id, ra, n->id, rb);
        if (ra == 0)
            free((void *)x.buf);
        if (rb == 0)
            free((void *)y.buf);
        if (ra == 0 && rb == 0 && !same) {
            fprintf(stderr, "      entry %" PRIu64 ": n%" PRIu64 " term %" PRIu64 " offset %" PRIu64
                    " records %u; n%" PRIu64 " term %" PRIu64 " offset %" PRIu64 " records %u\n",
                    i, ref->id, x.term, x.offset, x.records, n->id, y.term, y.offset, y.records);
            return i;
        }
    }
    return 0;
}

void world_dump(void)
{
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        for (int k = 1; k < W->logs; k++) {
            struct sim_bg *b = &n->bg[k];
            if (!b->log) {
                fprintf(stderr, "  n%" PRIu64 "/%s: down\n", n->id, b->name);
                continue;
            }
            struct raft *r = &b->log->raft;
            fprintf(stderr, "  n%" PRIu64 "/%s: %s term %llu commit %llu last %llu visible %" PRIu64
                    " fatal %d closing %d\n", n->id, b->name, rlog_role_name(r->state),
                    (unsigned long long)r->current_term, (unsigned long long)r->commit_index,
                    (unsigned long long)raft_last_index(r), b->log->fence.visible_offset,
                    b->log->fatal, b->closing);
        }
        if (!n->log) {
            fprintf(stderr, "  n%" PRIu64 ": down\n", n->id);
            continue;
        }
        struct raft *r = &n->log->raft;
        if (n->disk_busy_until > W->now)
            fprintf(stderr, "  n%" PRIu64 "'s disk is busy for %.1f s more (jobs queued)\n", n->id,
                    (double)(n->disk_busy_until - W->now) / 1e9);
        fprintf(stderr, "  frames to n%" PRIu64 ":", n->id);
        for (int j = 0; j < W->n; j++)
            fprintf(stderr, " from n%d %lu", j + 1, W->delivered[j][i]);
        fprintf(stderr, "\n");
        uint64_t next = 0, target = 0;
        bool catching = rl_io_catchup(&n->log->io, &next, &target);
        fprintf(stderr,
                "  n%" PRIu64 ": %s term %llu leader %" PRIu64 " commit %llu last %llu visible %" PRIu64
                " stored %llu store last %" PRIu64 " fatal %d closing %d catchup %d (%" PRIu64 "/%" PRIu64 ")\n",
                n->id, rlog_role_name(r->state), (unsigned long long)r->current_term,
                node_leader(n), (unsigned long long)r->commit_index,
                (unsigned long long)raft_last_index(r), node_visible(n), (unsigned long long)r->last_stored,
                n->log->store ? rl_store_last_index(n->log->store) : 0, n->log->fatal, n->closing,
                catching, next, target);
        struct sim_node *ref = &W->nodes[0];
        if (n != ref && ref->log && ref->log->store && n->log->store) {
            uint64_t d = first_difference(ref, n);
            if (d)
                fprintf(stderr, "      log differs from n%" PRIu64 "'s at entry %" PRIu64 "\n",
                        ref->id, d);
        }
        struct raft_log *l = &r->log;
        size_t cnt = l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;
        unsigned long long lastterm = 0;
        if (cnt)
            lastterm = l->entries[(l->back + l->size - 1) % l->size].term;
        fprintf(stderr, "      log offset %llu entries %zu last term %llu snapshot %llu/%llu\n",
                (unsigned long long)l->offset, cnt, lastterm,
                (unsigned long long)l->snapshot.last_index, (unsigned long long)l->snapshot.last_term);
        fprintf(stderr, "      configuration (index %llu, committed %llu):",
                (unsigned long long)r->configuration_uncommitted_index,
                (unsigned long long)r->configuration_index);
        for (unsigned k = 0; k < r->configuration.n; k++)
            fprintf(stderr, " %llu/%d", (unsigned long long)r->configuration.servers[k].id,
                    r->configuration.servers[k].role);
        fprintf(stderr, "\n");
    }
}

static void restart_ev(void *arg)
{
    struct sim_node *n = arg;
    if (n->log || n->host_closing) { /* still closing */
        sim_at(W->now + 50 * SIM_MS, restart_ev, n);
        return;
    }
    if (W->now < n->hold_until) { /* held down (sim-install's wipes) */
        sim_at(n->hold_until, restart_ev, n);
        return;
    }
    node_start(n);
}

void node_restart_after(struct sim_node *n, uint64_t delay_ns)
{
    sim_at(W->now + delay_ns, restart_ev, n);
}

void net_calm(void)
{
    W->net = (struct sim_net_faults){.delay_ns = 50000, .jitter_ns = 100000};
}

static void check_fatal(void)
{
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        if (!node_up(n) || !n->log->fatal || n->fatal_seen)
            continue;
        n->fatal_seen = true;
        if (!n->log->fatal_msg[0]) {
            fprintf(stderr, "seed %" PRIu64 ": n%" PRIu64 " failed stop without a reason\n",
                    W->seed, n->id);
            abort();
        }
        sim_log("n%" PRIu64 " failed stop: %s: %s", n->id, rlog_errname(n->log->fatal),
                n->log->fatal_msg);
        if (W->fatal_stops < 16)
            W->fatal_codes[W->fatal_stops] = n->log->fatal;
        W->fatal_stops++;
        if (W->on_fatal)
            W->on_fatal(n, 0, n->log->fatal, n->log->fatal_msg);
        /* closed as its host would, restarted later as an operator would */
        begin_close(n, true);
        node_restart_after(n, sim_range(200, 2000) * SIM_MS);
    }
    for (int i = 0; i < W->n && W->logs > 1; i++) {
        struct sim_node *n = &W->nodes[i];
        for (int k = 1; k < W->logs; k++) {
            struct sim_bg *b = &n->bg[k];
            if (!bg_up(n, k) || !b->log->fatal || b->fatal_seen)
                continue;
            b->fatal_seen = true;
            if (!b->log->fatal_msg[0]) {
                fprintf(stderr, "seed %" PRIu64 ": n%" PRIu64 "/%s failed stop without a reason\n",
                        W->seed, n->id, b->name);
                abort();
            }
            sim_log("n%" PRIu64 "/%s failed stop: %s: %s", n->id, b->name,
                    rlog_errname(b->log->fatal), b->log->fatal_msg);
            if (W->on_fatal)
                W->on_fatal(n, k, b->log->fatal, b->log->fatal_msg);
            bg_begin_close(n, k, true);
            sim_at(W->now + sim_range(200, 2000) * SIM_MS, bg_restart_ev, b);
        }
    }
}

/* ---- the world ------------------------------------------------------------------------- */

static void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

void world_init(struct sim_world *w, uint64_t seed, int n, int logs, bool verbose)
{
    memset(w, 0, sizeof *w);
    W = w;
    w->seed = seed;
    w->logs = logs > SIM_MAX_LOGS ? SIM_MAX_LOGS : logs;
    w->rng = seed * 0x2545f4914f6cdd1dull + 1;
    w->now = 1000 * SIM_MS * 1000ull; /* not 0: nothing should mistake it for unset */
    w->n = n;
    w->boot_n = w->first_n = n;
    w->verbose = verbose;
    net_calm();
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(w->root, sizeof w->root, "%s/rlog-sim-%d-%" PRIu64, base, (int)getpid(), seed);
    rm_rf(w->root);
    if (mkdir(w->root, 0700) != 0)
        abort();
    rlog_config_init(&w->base);
    w->base.segment_size = 256 << 10;   /* many segments, rollovers, trims */
    w->base.batch_max_bytes = 64 << 10;
    w->base.max_record_size = 16 << 10;
    w->base.cache_bytes = 128 << 10;     /* small: reads and catch-up reach disk */
    w->base.snapshot_threshold = 32;    /* libraft's window is small, so */
    w->base.snapshot_trailing = 16;     /* lagging nodes catch up by fetch */
    w->base.producer_window = 16;       /* the window slides within a run */
    w->base.producer_retry_ms = 600;    /* clients see in-doubt producer calls too */
    for (int i = 0; i < n; i++) {
        struct sim_node *nd = &w->nodes[i];
        nd->idx = i;
        nd->id = (uint64_t)i + 1;
        snprintf(nd->address, sizeof nd->address, "127.0.0.1:%d", 7001 + i);
        snprintf(nd->dir, sizeof nd->dir, "%s/n%d", w->root, i + 1);
        nd->fs = rl_fs_domain_new();
        nd->disk_ns = 150000;
        nd->fault_scope = -1;
        for (int k = 0; k < SIM_MAX_LOGS; k++) {
            struct sim_bg *b = &nd->bg[k];
            b->k = k;
            snprintf(b->name, sizeof b->name, "log-%d", k);
            snprintf(b->dir, sizeof b->dir, "%s/bg/n%d/log-%d", w->root, i + 1, k);
        }
        node_enter(nd);
        struct rl_fs_faults none = {0};
        rl_fs_faults_set(&none); /* armed: power loss can happen any time */
        node_leave();
    }
    rl_env = &sim_env;
}

/* Host mode: one non-blocking turn of a host's loop (every log on it);
 * true if it wants another now. */
static bool host_turn(struct sim_node *n, bool io_ready)
{
    node_enter(n);
    uv_loop_t *loop = n->hloop;
    bool run = io_ready || loop->watcher_queue[0] != (void *)&loop->watcher_queue;
    if (!run) {
        uv_update_time(loop);
        run = uv_backend_timeout(loop) == 0 || (n->mux && rl_mux_flush_due(n->mux));
    }
    if (run)
        uv_run(loop, UV_RUN_NOWAIT);
    reap(n);
    reap_bg(n);
    if (node_up(n))
        rl_sm_step(n->log);
    /* The transport writes what a turn queued just before the loop polls
     * again: in the next turn, which must come before time moves on. */
    bool again = uv_backend_timeout(loop) == 0 || (n->mux && rl_mux_flush_due(n->mux));
    node_leave();
    host_settle(n);
    return again && n->hloop;
}

/* One non-blocking turn of a node's loop; true if it wants another now. */
static bool node_turn(struct sim_node *n, bool io_ready)
{
    if (W->logs > 1)
        return host_turn(n, io_ready);
    node_enter(n);
    uv_loop_t *loop = n->log->loop;
    /* Watchers started since the last turn reach epoll only in a turn. */
    bool run = io_ready || loop->watcher_queue[0] != (void *)&loop->watcher_queue;
    if (!run) {
        uv_update_time(loop);
        run = uv_backend_timeout(loop) == 0;
    }
    if (run)
        uv_run(loop, UV_RUN_NOWAIT);
    if (n->ended) { /* closed in that turn */
        reap(n);
        node_leave();
        return false;
    }
    if (!n->closing)
        rl_sm_step(n->log); /* stepped mode: apply what the turn committed */
    bool again = uv_backend_timeout(n->log->loop) == 0;
    node_leave();
    return again;
}

/* When n's next timer fires, on the world's clock; UINT64_MAX if none. */
static uint64_t node_next_timer(struct sim_node *n)
{
    uv_loop_t *loop = node_loop(n);
    int t = uv_backend_timeout(loop);
    if (t < 0)
        return UINT64_MAX;
    uint64_t local = (uv_now(loop) + (uint64_t)t) * SIM_MS;
    int64_t g = (int64_t)local - n->clock_offset_ns;
    return g < 0 ? 0 : (uint64_t)g;
}

bool world_run(uint64_t until, bool (*stop)(void))
{
    while (W->now <= until) {
        if (stop && stop())
            return true;
        bool active = true;
        for (int round = 0; active && round < 100000; round++) {
            active = false;
            while (heap_n && heap[0].at <= W->now) {
                struct event e = ev_pop();
                e.fn(e.arg);
                active = true;
            }
            uint32_t ready = loops_ready();
            for (int i = 0; i < W->n; i++)
                if (node_loop(&W->nodes[i]))
                    active |= node_turn(&W->nodes[i], ready >> i & 1);
            active |= net_pump();
            check_fatal();
            W->steps++;
        }
        uint64_t next = heap_n ? heap[0].at : UINT64_MAX;
        for (int i = 0; i < W->n; i++)
            if (node_loop(&W->nodes[i])) {
                uint64_t t = node_next_timer(&W->nodes[i]);
                if (t < next)
                    next = t;
            }
        if (next == UINT64_MAX)
            return false;
        if (next <= W->now)
            next = W->now + SIM_MS / 10;
        if (next > until) {
            W->now = until + 1;
            break;
        }
        W->now = next;
    }
    return true;
}

void world_fini(void)
{
    W->finishing = true;
    for (int i = 0; i < W->n; i++)
        node_stop(&W->nodes[i]);
    uint64_t deadline = W->now + 30000 * SIM_MS;
    for (;;) {
        bool any = false;
        for (int i = 0; i < W->n; i++)
            any |= node_loop(&W->nodes[i]) != NULL;
        if (!any || W->now > deadline)
            break;
        world_run(W->now + 100 * SIM_MS, NULL);
    }
    for (int i = 0; i < W->n; i++)
        if (node_loop(&W->nodes[i])) {
            fprintf(stderr, "seed %" PRIu64 ": n%" PRIu64 " did not close\n", W->seed,
                    W->nodes[i].id);
            abort();
        }
    /* Whatever is still queued (deliveries to dead connections, connects
     * of closed transports) belongs to nobody now. */
    while (heap_n) {
        struct event e = ev_pop();
        if (e.fn == deliver) {
            struct delivery *d = e.arg;
            d->c->refs--;
            free(d);
        } else if (e.fn == connect_attempt) {
            free(e.arg);
        } else if (e.fn == job_run || e.fn == close_done) {
            fprintf(stderr, "seed %" PRIu64 ": work left behind by a closed node\n", W->seed);
            abort();
        }
    }
    for (struct conn *c = conns; c; c = c->next)
        conn_kill(c);
    net_pump();
    free(heap);
    heap = NULL;
    heap_n = heap_cap = 0;
    for (int i = 0; i < W->n; i++)
        rl_fs_domain_free(W->nodes[i].fs);
    rl_env = NULL;
    rm_rf(W->root);
    W = NULL;
}
