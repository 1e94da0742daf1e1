/* The raft_io backend (lib/raftio) driven through its raft_io interface,
 * with libraft played by this file: node 1's backend on a loop, its store
 * in a temp dir, peers 2 and 3 faked through the rl_env transport seam
 * (in-memory socket pairs: what node 1 sends is decoded here, what the
 * peers say is encoded and written to it). rl_env's deferred work is a
 * queue run only when a test says so, so an append stays in flight as long
 * as a test needs, and libuv's clock is this file's (clock_gettime below),
 * so timers fire when a test moves the clock. Each test covers one of the
 * libraft 0.15 faults the backend works around (the comments citing
 * libraft in lib/raftio); no sockets, no sleeps. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "batch/batch.h"
#include "common/env.h"
#include "liblog.h"
#include "raftio/internal.h"
#include "lib/store_helpers.h"
#include "wire/codec.h"

/* ---- the clock: libuv's loop time is virtual ---------------------------- */

static uint64_t now_ns = 1000ull * 1000000000ull;

__attribute__((visibility("default"))) int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id != CLOCK_MONOTONIC && id != CLOCK_MONOTONIC_COARSE && id != CLOCK_MONOTONIC_RAW &&
        id != CLOCK_BOOTTIME)
        return (int)syscall(SYS_clock_gettime, id, ts);
    ts->tv_sec = (time_t)(now_ns / 1000000000ull);
    ts->tv_nsec = (long)(now_ns % 1000000000ull);
    return 0;
}

/* ---- the fixture ----------------------------------------------------------------- */

#define MAX_JOBS 256
#define MAX_SEEN 256
#define TICK_MS 100

/* A message node 1 sent (decoded) or libraft received. */
struct seen {
    uint64_t peer; /* sent to, or received from */
    unsigned type; /* the frame's: m's, or one of liblog's own */
    struct raft_message m;
    struct rl_wire_fetch_req req;
    struct rl_wire_fetch_resp resp;
    struct rl_wire_commit commit;
    void *body;
    bool owned;
};

struct peer_link {
    int out_fd;               /* our end of node 1's connection to the peer */
    int in_fd;                /* our end of the peer's connection to node 1 */
    unsigned char *rx;        /* bytes read from out_fd, not yet a whole frame */
    size_t rx_len;
};

struct fx {
    uv_loop_t loop;
    char dir[4096];
    struct rl_store *store;
    struct raft_io rio;
    bool closed;
    unsigned trailing;
    uint32_t max_body;
    /* rl_env's deferred work */
    struct job {
        uv_work_t *req;
        uv_work_cb work;
        uv_after_work_cb after;
    } jobs[MAX_JOBS];
    unsigned n_jobs;
    /* the fake transport */
    raft_uv_accept_cb accept;
    struct raft_uv_transport *t;
    bool refuse_connects;
    unsigned connects;
    struct pending_connect {
        struct raft_uv_connect *req;
        raft_uv_connect_cb cb;
        uint64_t id;
    } pending[8];
    unsigned n_pending;
    raft_uv_transport_close_cb close_cb;
    struct peer_link peers[4];
    /* what node 1 sent, and what reached libraft */
    struct seen sent[MAX_SEEN], got[MAX_SEEN];
    unsigned n_sent, n_got;
    char events[256]; /* A: append done, V: vote, T: timeout now, E: AE, K: tick */
    unsigned ticks;
    /* libraft's side */
    uint64_t claim_last;      /* what libraft 0.15 answers an AppendEntries with */
    uint64_t committed;       /* hooks.committed_index */
    int fatal_code;
    struct raft_snapshot install;
    struct raft_io_snapshot_put install_req;
    int install_status;       /* 1: pending */
    struct raft_entry *entries[64];
    unsigned n_entry_arrays;
    uint64_t load_start, load_n, load_snap; /* what the last load returned */
    bool cut_tail;   /* node_open cuts a damaged tail first, as rlog_open does */
    uint64_t cut_at; /* where it cut (0: nothing) */
    void *kept[256];          /* requests, freed at the test's end */
    unsigned n_kept;
};

static struct fx *F;

/* Jobs run only in fx_jobs. */
static int env_queue_work(uv_loop_t *loop, uv_work_t *req, uv_work_cb work, uv_after_work_cb after)
{
    ck_assert_uint_lt(F->n_jobs, MAX_JOBS);
    req->loop = loop;
    F->jobs[F->n_jobs++] = (struct job){req, work, after};
    return 0;
}

static bool run_one_job(void)
{
    if (F->n_jobs == 0)
        return false;
    struct job j = F->jobs[0];
    memmove(F->jobs, F->jobs + 1, --F->n_jobs * sizeof j);
    j.work(j.req);
    j.after(j.req, 0);
    return true;
}

static void env_block_turn(uv_loop_t *loop)
{
    if (!run_one_job())
        uv_run(loop, UV_RUN_NOWAIT);
}

static void env_random(void *buf, size_t len)
{
    memset(buf, 7, len);
}

static int ft_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    (void)t, (void)id, (void)address;
    return 0;
}

static int ft_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    F->t = t;
    F->accept = cb;
    return 0;
}

/* A stream of node 1's loop over one end of a socket pair; *ours gets the
 * other end. */
static uv_stream_t *stream_pair(int *ours)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    uv_pipe_t *p = malloc(sizeof *p);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(uv_pipe_init(&F->loop, p, 0), 0);
    ck_assert_int_eq(uv_pipe_open(p, sv[0]), 0);
    *ours = sv[1];
    return (uv_stream_t *)p;
}

static int ft_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    (void)t, (void)address;
    F->connects++;
    if (F->refuse_connects || id >= 4)
        return RAFT_NOCONNECTION;
    ck_assert_uint_lt(F->n_pending, 8);
    req->cb = cb;
    F->pending[F->n_pending++] = (struct pending_connect){req, cb, id};
    return 0;
}

static void ft_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    (void)t;
    while (F->n_pending) {
        struct pending_connect p = F->pending[--F->n_pending];
        p.cb(p.req, NULL, RAFT_CANCELED);
    }
    F->close_cb = cb; /* called from the pump, not inside this call */
}

static int env_transport_init(struct raft_uv_transport *t, uv_loop_t *loop)
{
    (void)loop;
    memset(t, 0, sizeof *t);
    t->init = ft_init;
    t->listen = ft_listen;
    t->connect = ft_connect;
    t->close = ft_close;
    return 0;
}

static void env_transport_fini(struct raft_uv_transport *t)
{
    (void)t;
}

static const struct rl_env test_env = {
    .queue_work = env_queue_work,
    .transport_init = env_transport_init,
    .transport_fini = env_transport_fini,
    .block_turn = env_block_turn,
    .random = env_random,
};

/* Completes the connects asked for since the last turn (never inside the
 * connect call, as lib/net requires). */
static bool complete_connects(void)
{
    bool moved = F->n_pending > 0;
    while (F->n_pending) {
        struct pending_connect p = F->pending[0];
        memmove(F->pending, F->pending + 1, --F->n_pending * sizeof p);
        struct peer_link *l = &F->peers[p.id];
        if (l->out_fd >= 0)
            close(l->out_fd);
        l->rx_len = 0;
        uv_stream_t *s = stream_pair(&l->out_fd);
        p.cb(p.req, s, 0);
    }
    if (F->close_cb) {
        raft_uv_transport_close_cb cb = F->close_cb;
        F->close_cb = NULL;
        cb(F->t);
        moved = true;
    }
    return moved;
}

static void record(struct seen *list, unsigned *n, uint64_t peer, const struct raft_message *m,
                   void *body, bool owned)
{
    ck_assert_uint_lt(*n, MAX_SEEN);
    list[(*n)++] = (struct seen){.peer = peer, .type = m->type, .m = *m, .body = body,
                                 .owned = owned};
}

/* One of liblog's own frames (fetch, commit) node 1 wrote to peer. */
static void record_own(uint64_t peer, const struct rl_wire_hdr *h, void *body)
{
    ck_assert_uint_lt(F->n_sent, MAX_SEEN);
    struct seen *s = &F->sent[F->n_sent++];
    char err[256];
    *s = (struct seen){.peer = peer, .type = h->type, .body = body};
    int rv;
    if (h->type == RL_WIRE_FETCH_RESPONSE)
        rv = rl_wire_decode_fetch_resp(h, body, &s->resp, &s->owned, err, sizeof err);
    else if (h->type == RL_WIRE_COMMIT)
        rv = rl_wire_decode_commit(h, body, &s->commit, err, sizeof err);
    else
        rv = rl_wire_decode_fetch_req(h, body, &s->req, err, sizeof err);
    ck_assert_msg(rv == 0, "%s", err);
}

/* Decodes the whole frames node 1 wrote to peer id. */
static bool read_frames(uint64_t id)
{
    struct peer_link *l = &F->peers[id];
    bool moved = false;
    unsigned char chunk[65536];
    ssize_t r;
    while (l->out_fd >= 0 && (r = read(l->out_fd, chunk, sizeof chunk)) > 0) {
        l->rx = realloc(l->rx, l->rx_len + (size_t)r);
        memcpy(l->rx + l->rx_len, chunk, (size_t)r);
        l->rx_len += (size_t)r;
        moved = true;
    }
    size_t pos = 0;
    while (l->rx_len - pos >= RL_WIRE_HDR) {
        struct rl_wire_hdr h;
        char err[256];
        ck_assert_int_eq(rl_wire_decode_hdr(l->rx + pos, UINT32_MAX, &h, err, sizeof err), 0);
        if (l->rx_len - pos < RL_WIRE_HDR + h.length)
            break;
        void *body = raft_malloc(h.length ? h.length : 8);
        memcpy(body, l->rx + pos + RL_WIRE_HDR, h.length);
        struct raft_message m;
        bool owned = false;
        if (rl_wire_is_own(h.type))
            record_own(id, &h, body);
        else {
            ck_assert_msg(rl_wire_decode(&h, body, &m, &owned, err, sizeof err) == 0, "%s", err);
            record(F->sent, &F->n_sent, id, &m, body, owned);
        }
        pos += RL_WIRE_HDR + h.length;
    }
    if (pos) {
        memmove(l->rx, l->rx + pos, l->rx_len - pos);
        l->rx_len -= pos;
    }
    return moved;
}

/* Turns the loop until nothing moves, without running deferred work. */
static void fx_net(void)
{
    for (int quiet = 0; quiet < 4;) {
        bool moved = complete_connects();
        uv_run(&F->loop, UV_RUN_NOWAIT);
        for (uint64_t id = 2; id <= 3; id++)
            moved |= read_frames(id);
        quiet = moved ? 0 : quiet + 1;
    }
}

/* Runs deferred work (store jobs, descriptor writes) and the loop until
 * both are idle. */
static void fx_run(void)
{
    do
        fx_net();
    while (run_one_job());
}

/* Moves libuv's clock on by ms and lets due timers fire. */
static void fx_advance(uint64_t ms)
{
    now_ns += ms * 1000000ull;
    fx_net();
}

/* ---- the hooks ----------------------------------------------------------- */

static int hook_peer_address(void *arg, uint64_t id, char *buf, size_t len)
{
    (void)arg;
    if (id < 1 || id > 3)
        return -1;
    snprintf(buf, len, "n%llu", (unsigned long long)id);
    return 0;
}

static uint64_t hook_committed(void *arg)
{
    (void)arg;
    return F->committed;
}

static uint64_t hook_leader(void *arg)
{
    (void)arg;
    return 2;
}

static void hook_fatal(void *arg, int code, const char *msg)
{
    (void)arg, (void)msg;
    F->fatal_code = code;
}

static void hook_log(void *arg, int level, const char *line)
{
    (void)arg, (void)level, (void)line;
    if (getenv("RAFTIO_VERBOSE"))
        fprintf(stderr, "node 1: %s\n", line);
}

/* ---- libraft's side -------------------------------------------------------- */

static void event(char c)
{
    size_t n = strlen(F->events);
    ck_assert_uint_lt(n + 1, sizeof F->events);
    F->events[n] = c;
}

static void tick_cb(struct raft_io *rio)
{
    (void)rio;
    F->ticks++;
    event('K');
}

static void keep(void *p)
{
    ck_assert_uint_lt(F->n_kept, 256);
    F->kept[F->n_kept++] = p;
}

static void send_cb(struct raft_io_send *req, int status)
{
    *(int *)req->data = status;
}

/* Sends m through raft_io as libraft would; the request's status lands in
 * *status (1 until its callback). Returns what send returned. */
static int raft_send(struct raft_message *m, int *status)
{
    struct raft_io_send *req = calloc(1, sizeof *req);
    ck_assert_ptr_nonnull(req);
    *status = 1;
    req->data = status;
    int rv = F->rio.send(&F->rio, req, m, send_cb);
    keep(req); /* the callback may come after this returns */
    return rv;
}

static void install_cb(struct raft_io_snapshot_put *req, int status)
{
    (void)req;
    F->install_status = status;
    /* libraft 0.15 frees the data buffer; the backend frees the array of a
     * failed install (snap_queue.c) and libraft that of one that worked. */
    raft_free(F->install.bufs[0].base);
    if (status == 0)
        raft_free(F->install.bufs);
    F->install.bufs = NULL;
}

/* libraft 0.15's behaviours the backend must make harmless: it answers an
 * AppendEntries with its last stored index (claim_last), and starts an
 * install for an InstallSnapshot. */
static void recv_cb(struct raft_io *rio, struct raft_message *m)
{
    (void)rio;
    void *batch = NULL;
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES: {
        event('E');
        if (m->append_entries.n_entries)
            batch = m->append_entries.entries[0].batch;
        struct raft_message r = {.type = RAFT_IO_APPEND_ENTRIES_RESULT,
                                 .server_id = m->server_id, .server_address = m->server_address};
        r.append_entries_result.term = m->append_entries.term;
        r.append_entries_result.last_log_index = F->claim_last;
        static int st;
        raft_send(&r, &st);
        break;
    }
    case RAFT_IO_REQUEST_VOTE:
        event('V');
        break;
    case RAFT_IO_TIMEOUT_NOW:
        event('T');
        break;
    case RAFT_IO_INSTALL_SNAPSHOT: {
        event('I');
        struct raft_install_snapshot *is = &m->install_snapshot;
        F->install = (struct raft_snapshot){.index = is->last_index, .term = is->last_term,
                                            .configuration = is->conf,
                                            .configuration_index = is->conf_index};
        F->install.bufs = raft_malloc(sizeof *F->install.bufs);
        F->install.bufs[0] = is->data;
        F->install.n_bufs = 1;
        F->install_status = 1;
        int rv = F->rio.snapshot_put(&F->rio, 0, &F->install_req, &F->install, install_cb);
        if (rv != 0) {
            F->install_status = rv;
            raft_free(F->install.bufs[0].base);
            raft_free(F->install.bufs);
        }
        /* The configuration stays ours until the end (freed there). */
        record(F->got, &F->n_got, m->server_id, m, NULL, false);
        return;
    }
    default:
        break;
    }
    /* Entries (and their frame) are libraft's now: a copy of the scalars
     * is kept, the rest released. */
    struct raft_message copy = *m;
    copy.append_entries.entries = NULL;
    if (m->type == RAFT_IO_APPEND_ENTRIES) {
        raft_free(m->append_entries.entries);
        raft_free(batch);
    }
    record(F->got, &F->n_got, m->server_id, &copy, NULL, false);
}

/* ---- opening and closing node 1 --------------------------------------------- */

static void store_open(void)
{
    /* Small segments: a few entries seal one (test_load_skips_damage...). */
    struct rl_store_config cfg = {.dir = F->dir, .segment_size = RL_STORE_MIN_SEGMENT_SIZE};
    char err[512];
    ck_assert_msg(rl_store_open(&F->loop, &cfg, &F->store, err, sizeof err) == 0, "%s", err);
}

/* Opens node 1 on the store in F->dir: init, load, start. */
static void node_open(void)
{
    store_open();
    if (F->cut_tail) {
        char err[512];
        ck_assert_msg(rl_floor_cut_damaged_tail(F->store, F->dir, 1, &F->cut_at, err,
                                                sizeof err) == 0, "%s", err);
    }
    struct rl_io_config cfg = {
        .loop = &F->loop, .store = F->store, .dir = F->dir, .trailing = F->trailing,
        .max_frame_body = F->max_body,
        .net = {.cluster = "test", .cluster_named = true, .max_inbound = 16,
                .max_per_address = 16, .handshake_timeout_ms = 1000000,
                .frame_timeout_ms = 1000000, .idle_timeout_ms = 1000000,
                .max_send_queue = 64u << 20},
        .hooks = {.peer_address = hook_peer_address, .committed_index = hook_committed,
                  .leader_id = hook_leader, .on_fatal = hook_fatal, .log = hook_log}};
    ck_assert_int_eq(rl_io_init(&F->rio, &cfg), 0);
    rl_io_set_bounds(&F->rio, &(struct rl_io_bounds){.fetch_serve_max = 4,
                                                     .fetch_serve_bytes = 64u << 20,
                                                     .held_max = 64});
    ck_assert_int_eq(F->rio.init(&F->rio, 1, "n1"), 0);
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap;
    raft_index start;
    struct raft_entry *entries;
    size_t n;
    int rv = F->rio.load(&F->rio, &term, &vote, &snap, &start, &entries, &n);
    ck_assert_msg(rv == 0, "load: %d %s", rv, F->rio.errmsg);
    F->load_start = start;
    F->load_n = n;
    F->load_snap = snap ? snap->index : 0;
    if (snap) {
        raft_configuration_close(&snap->configuration);
        raft_free(snap->bufs[0].base);
        raft_free(snap->bufs);
        raft_free(snap);
    }
    for (size_t i = 0; i < n; i++)
        raft_free(entries[i].buf.base);
    raft_free(entries);
    ck_assert_int_eq(F->rio.start(&F->rio, TICK_MS, tick_cb, recv_cb), 0);
    F->closed = false;
    fx_run();
}

static void closed_cb(struct raft_io *rio)
{
    (void)rio;
    F->closed = true;
}

static void node_close(void)
{
    F->rio.close(&F->rio, closed_cb);
    for (int i = 0; i < 1000 && !F->closed; i++)
        fx_run();
    ck_assert(F->closed);
    for (int id = 2; id <= 3; id++) {
        struct peer_link *l = &F->peers[id];
        if (l->out_fd >= 0)
            close(l->out_fd);
        if (l->in_fd >= 0)
            close(l->in_fd);
        l->out_fd = l->in_fd = -1;
        l->rx_len = 0;
    }
    fx_run();
}

static void setup(void)
{
    F = calloc(1, sizeof *F);
    ck_assert_ptr_nonnull(F);
    for (int i = 0; i < 4; i++)
        F->peers[i].out_fd = F->peers[i].in_fd = -1;
    F->max_body = 8u << 20;
    th_mkdtemp(F->dir, sizeof F->dir);
    ck_assert_int_eq(uv_loop_init(&F->loop), 0);
    rl_env = &test_env;
    node_open();
}

static void release_seen(struct seen *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (list[i].type == RL_WIRE_FETCH_RESPONSE)
            rl_wire_fetch_resp_release(&list[i].resp, list[i].body, list[i].owned);
        else if (!rl_wire_is_own(list[i].type))
            rl_wire_message_release(&list[i].m, list[i].body, list[i].owned);
        if (!list[i].owned)
            raft_free(list[i].body);
    }
}

static void teardown(void)
{
    if (!F->closed)
        node_close();
    ck_assert_int_eq(uv_loop_close(&F->loop), 0);
    release_seen(F->sent, F->n_sent);
    for (unsigned i = 0; i < F->n_got; i++)
        if (F->got[i].m.type == RAFT_IO_INSTALL_SNAPSHOT)
            raft_configuration_close(&F->got[i].m.install_snapshot.conf);
    for (unsigned i = 0; i < F->n_entry_arrays; i++) {
        for (unsigned k = 0; F->entries[i][k].buf.base; k++)
            raft_free(F->entries[i][k].buf.base);
        free(F->entries[i]);
    }
    for (int i = 0; i < 4; i++)
        free(F->peers[i].rx);
    for (unsigned i = 0; i < F->n_kept; i++)
        free(F->kept[i]);
    th_rmrf(F->dir);
    rl_env = NULL;
    free(F);
}

/* ---- peers ------------------------------------------------------------------------ */

/* Peer `from` writes m to node 1 over its own connection (opened on first
 * use, as lib/net hands an inbound one over); node 1 reads it when its
 * loop next turns. */
static void peer_sends(uint64_t from, struct rl_wire_out *out)
{
    struct peer_link *l = &F->peers[from];
    if (l->in_fd < 0) {
        uv_stream_t *s = stream_pair(&l->in_fd);
        char addr[16];
        snprintf(addr, sizeof addr, "n%llu", (unsigned long long)from);
        F->accept(F->t, from, addr, s);
    }
    for (unsigned i = 0; i < out->n_iov; i++)
        ck_assert_int_eq(write(l->in_fd, out->iov[i].base, out->iov[i].len),
                         (ssize_t)out->iov[i].len);
    rl_wire_out_free(out);
}

static void peer_writes(uint64_t from, struct raft_message m)
{
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode(&m, from, &out), 0);
    peer_sends(from, &out);
}

/* Peer `from` says m, and node 1 takes it in. */
static void peer_says(uint64_t from, struct raft_message m)
{
    peer_writes(from, m);
    fx_net();
}

/* Cuts both connections between node 1 and peer id. */
static void cut(uint64_t id)
{
    struct peer_link *l = &F->peers[id];
    close(l->out_fd);
    close(l->in_fd);
    l->out_fd = l->in_fd = -1;
    l->rx_len = 0;
    fx_net();
}

static struct raft_message vote(uint64_t from, uint64_t term)
{
    struct raft_message m = {.type = RAFT_IO_REQUEST_VOTE};
    m.request_vote.term = term;
    m.request_vote.candidate_id = from;
    return m;
}

static struct raft_message heartbeat(uint64_t term, uint64_t prev, uint64_t prev_term,
                                     uint64_t commit)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES};
    m.append_entries = (struct raft_append_entries){.term = term, .prev_log_index = prev,
                                                    .prev_log_term = prev_term,
                                                    .leader_commit = commit};
    return m;
}

/* The i-th message of `type` (from 0) in list, or NULL. */
static const struct seen *nth_of(const struct seen *list, unsigned n, unsigned short type,
                                 unsigned i)
{
    for (unsigned k = 0; k < n; k++)
        if (list[k].type == type && i-- == 0)
            return &list[k];
    return NULL;
}

/* What node 1 sent, and what libraft got. */
static const struct seen *sent_of(unsigned short type, unsigned i)
{
    return nth_of(F->sent, F->n_sent, type, i);
}

static const struct seen *got_of(unsigned short type, unsigned i)
{
    return nth_of(F->got, F->n_got, type, i);
}

/* The i-th frame of `type` node 1 sent, which must be there, to peer. */
static const struct seen *sent_frame(uint64_t peer, unsigned short type, unsigned i)
{
    const struct seen *s = sent_of(type, i);
    ck_assert_msg(s != NULL, "no message %u of type %u sent", i, type);
    ck_assert_uint_eq(s->peer, peer);
    return s;
}

/* The same for a raft message. */
static const struct raft_message *sent_to(uint64_t peer, unsigned short type, unsigned i)
{
    ck_assert(!rl_wire_is_own(type));
    return &sent_frame(peer, type, i)->m;
}

static unsigned count_sent(unsigned short type)
{
    unsigned n = 0;
    while (sent_of(type, n))
        n++;
    return n;
}

/* ---- entries -------------------------------------------------------------------------- */

/* n entries of `term`, each a batch of 2 records of `size` bytes
 * (zero-terminated array, kept until the test's end: an append's buffers
 * must live until its callback). */
static struct raft_entry *make_entries(unsigned n, uint64_t term, size_t size)
{
    struct raft_entry *e = calloc(n + 1, sizeof *e);
    ck_assert_ptr_nonnull(e);
    unsigned char *rec = malloc(size ? size : 1);
    for (unsigned i = 0; i < n; i++) {
        struct rl_batch_builder b;
        rl_batch_builder_init(&b);
        memset(rec, (int)(term * 16 + i + 1), size);
        ck_assert_int_eq(rl_batch_add(&b, rec, size), 0);
        ck_assert_int_eq(rl_batch_add(&b, rec, size), 0);
        size_t len;
        void *buf = rl_batch_seal(&b, 1, &len);
        ck_assert_ptr_nonnull(buf);
        rl_batch_builder_free(&b);
        e[i] = (struct raft_entry){.term = term, .type = RAFT_COMMAND, .buf = {buf, len}};
    }
    free(rec);
    ck_assert_uint_lt(F->n_entry_arrays, 64);
    F->entries[F->n_entry_arrays++] = e;
    return e;
}

static void append_cb(struct raft_io_append *req, int status)
{
    *(int *)req->data = status;
    event('A');
}

/* libraft appends n entries of `term` (1: its callback has not come).
 * Returns what append returned. */
static int raft_append(unsigned n, uint64_t term, size_t size, int *status)
{
    struct raft_io_append *req = calloc(1, sizeof *req);
    ck_assert_ptr_nonnull(req);
    keep(req); /* the callback may come after this returns */
    *status = 1;
    req->data = status;
    return F->rio.append(&F->rio, req, make_entries(n, term, size), n, append_cb);
}

/* Appends n entries of `term` (records of `size` bytes) and waits until
 * they are durable. */
static void stored_sized(unsigned n, uint64_t term, size_t size)
{
    int st;
    ck_assert_int_eq(raft_append(n, term, size, &st), 0);
    fx_run();
    ck_assert_int_eq(st, 0);
    F->events[0] = '\0';
}

static void stored(unsigned n, uint64_t term)
{
    stored_sized(n, term, 1000);
}

/* ---- held elections ---------------------------------------------------------------- */

/* libraft 0.15 votes and campaigns on entries not yet on disk: a
 * RequestVote or TimeoutNow that arrives while an append is in flight
 * reaches libraft only after the append completed. */
START_TEST(test_votes_wait_for_appends)
{
    int st;
    ck_assert_int_eq(raft_append(1, 1, 100, &st), 0);
    peer_says(2, vote(2, 2));
    struct raft_message tn = {.type = RAFT_IO_TIMEOUT_NOW};
    tn.timeout_now.term = 1;
    peer_says(2, tn);
    ck_assert_str_eq(F->events, "");
    ck_assert_int_eq(st, 1);
    fx_run();
    ck_assert_int_eq(st, 0);
    ck_assert_str_eq(F->events, "AVT");
    /* Nothing in flight: a vote goes straight through. */
    peer_says(3, vote(3, 3));
    ck_assert_str_eq(F->events, "AVTV");
}
END_TEST

/* The same for the election timer of a non-leader: ticks wait. */
START_TEST(test_ticks_wait_for_appends)
{
    fx_advance(TICK_MS);
    ck_assert_uint_eq(F->ticks, 1);
    int st;
    ck_assert_int_eq(raft_append(1, 1, 100, &st), 0);
    fx_advance(TICK_MS);
    fx_advance(TICK_MS);
    ck_assert_uint_eq(F->ticks, 1);
    fx_run();
    ck_assert_str_eq(F->events, "KAK");
}
END_TEST

/* At held_max, the oldest held message is dropped and counted; the rest
 * are delivered in order when the append completes. */
START_TEST(test_held_queue_drops_the_oldest)
{
    rl_io_set_bounds(&F->rio, &(struct rl_io_bounds){.fetch_serve_max = 4,
                                                     .fetch_serve_bytes = 64u << 20,
                                                     .held_max = 2});
    int st;
    ck_assert_int_eq(raft_append(1, 1, 100, &st), 0);
    for (uint64_t term = 2; term <= 5; term++)
        peer_says(2, vote(2, term));
    struct rl_io_bound_stats bs;
    rl_io_bound_stats(&F->rio, &bs);
    ck_assert_uint_eq(bs.held_dropped, 2);
    ck_assert_uint_eq(F->n_got, 0);
    fx_run();
    ck_assert_str_eq(F->events, "AVV");
    ck_assert_uint_eq(got_of(RAFT_IO_REQUEST_VOTE, 0)->m.request_vote.term, 4);
    ck_assert_uint_eq(got_of(RAFT_IO_REQUEST_VOTE, 1)->m.request_vote.term, 5);
}
END_TEST

/* ---- AppendEntries answers and commits capped -------------------------------------------- */

/* libraft 0.15 answers an AppendEntries that brings nothing new with its
 * last stored index, and takes min(leader_commit, last stored) as its
 * commit: both are capped at what the message proves. */
START_TEST(test_append_result_capped)
{
    stored(4, 1);
    F->claim_last = 4;
    peer_says(2, heartbeat(1, 2, 1, 4));
    const struct seen *g = got_of(RAFT_IO_APPEND_ENTRIES, 0);
    ck_assert_ptr_nonnull(g);
    ck_assert_uint_eq(g->m.append_entries.leader_commit, 2);
    ck_assert_uint_eq(sent_to(2, RAFT_IO_APPEND_ENTRIES_RESULT, 0)->append_entries_result.last_log_index, 2);
    /* A message that proves more: its answer and commit pass as they are. */
    peer_says(2, heartbeat(1, 4, 1, 3));
    ck_assert_uint_eq(got_of(RAFT_IO_APPEND_ENTRIES, 1)->m.append_entries.leader_commit, 3);
    ck_assert_uint_eq(sent_to(2, RAFT_IO_APPEND_ENTRIES_RESULT, 1)->append_entries_result.last_log_index, 4);
    /* Outside an AppendEntries nothing is capped. */
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = 2,
                             .server_address = "n2"};
    m.append_entries_result.term = 1;
    m.append_entries_result.last_log_index = 4;
    int st;
    ck_assert_int_eq(raft_send(&m, &st), 0);
    fx_run();
    ck_assert_int_eq(st, 0);
    ck_assert_uint_eq(sent_to(2, RAFT_IO_APPEND_ENTRIES_RESULT, 2)->append_entries_result.last_log_index, 4);
}
END_TEST

/* An AppendEntries that gives a committed entry another term never
 * reaches libraft (0.15 would stop the node for good). */
START_TEST(test_contradicting_committed_dropped)
{
    stored(3, 1);
    F->committed = 2;
    struct raft_message m = heartbeat(2, 1, 1, 3);
    struct raft_entry *e = make_entries(2, 2, 10);
    m.append_entries.entries = e;
    m.append_entries.n_entries = 2;
    peer_says(2, m);
    ck_assert_uint_eq(F->n_got, 0);
    /* One that agrees with the committed prefix goes through. */
    m = heartbeat(2, 2, 1, 3);
    m.append_entries.entries = e;
    m.append_entries.n_entries = 1;
    peer_says(2, m);
    ck_assert_str_eq(F->events, "E");
}
END_TEST

/* libraft 0.15 puts every entry it holds into one AppendEntries; one that
 * would not fit the peer's frame cap carries only the entries that do. */
START_TEST(test_long_append_entries_cut_to_frame)
{
    node_close();
    F->max_body = 16u << 10;
    node_open();
    struct raft_message m = heartbeat(1, 0, 0, 0);
    m.server_id = 3;
    m.server_address = "n3";
    m.append_entries.entries = make_entries(10, 1, 2000); /* ~4 KiB each */
    m.append_entries.n_entries = 10;
    /* The frame body (wire/raft_msg.c): 5 words, then per entry 3 words and the
     * payload padded to 8. */
    size_t per_entry = 24 + ((m.append_entries.entries[0].buf.len + 7) & ~(size_t)7);
    unsigned fit = (unsigned)((F->max_body - 40) / per_entry);
    ck_assert_uint_gt(fit, 1);
    ck_assert_uint_lt(fit, 10);
    int st;
    ck_assert_int_eq(raft_send(&m, &st), 0);
    fx_run();
    ck_assert_int_eq(st, 0);
    const struct raft_append_entries *ae = &sent_to(3, RAFT_IO_APPEND_ENTRIES, 0)->append_entries;
    ck_assert_uint_eq(ae->n_entries, fit);
    ck_assert_mem_eq(ae->entries[fit - 1].buf.base,
                     m.append_entries.entries[fit - 1].buf.base,
                     m.append_entries.entries[fit - 1].buf.len);
}
END_TEST

/* ---- snapshots ------------------------------------------------------------------------- */

static void conf_123(struct raft_configuration *c)
{
    raft_configuration_init(c);
    for (uint64_t id = 1; id <= 3; id++) {
        char addr[16];
        snprintf(addr, sizeof addr, "n%llu", (unsigned long long)id);
        ck_assert_int_eq(raft_configuration_add(c, id, addr, RAFT_VOTER), 0);
    }
}

static void put_cb(struct raft_io_snapshot_put *req, int status)
{
    *(int *)req->data = status;
}

/* libraft's own snapshot at `index` (term 1), keeping `trailing` entries:
 * the descriptor is written. */
static void descriptor_at(uint64_t index, unsigned trailing)
{
    struct raft_snapshot snap = {.index = index, .term = 1, .configuration_index = 1};
    conf_123(&snap.configuration);
    struct raft_io_snapshot_put req = {0};
    int st = 1;
    req.data = &st;
    ck_assert_int_eq(F->rio.snapshot_put(&F->rio, trailing, &req, &snap, put_cb), 0);
    fx_run();
    ck_assert_int_eq(st, 0);
    raft_configuration_close(&snap.configuration);
    ck_assert_uint_eq(rl_io_snapshot_index(&F->rio), index);
}

/* The leader's InstallSnapshot (its data: 8 zero bytes). */
static struct raft_message install_snapshot(uint64_t term, uint64_t index, uint64_t index_term)
{
    struct raft_message m = {.type = RAFT_IO_INSTALL_SNAPSHOT};
    struct raft_install_snapshot *is = &m.install_snapshot;
    is->term = term;
    is->last_index = index;
    is->last_term = index_term;
    is->conf_index = 1;
    conf_123(&is->conf);
    static uint64_t zero;
    is->data = (struct raft_buffer){&zero, 8};
    return m;
}

static void peer_installs(uint64_t from, uint64_t term, uint64_t index, uint64_t index_term)
{
    struct raft_message m = install_snapshot(term, index, index_term);
    peer_says(from, m);
    raft_configuration_close(&m.install_snapshot.conf);
}

/* ---- the fetch messages (wire/codec.h: struct rl_wire_fetch_req and
 * rl_wire_fetch_resp); every test builds and reads them here ---- */

struct fetch_req {
    uint64_t from, to, budget;
};

struct fetch_answer {
    int status;                 /* 0 or an RLOG_E* code */
    uint64_t first;             /* first entry (ETRIMMED: where the peer restarts) */
    uint64_t restart_term;      /* ETRIMMED: term of the entry before first */
    uint64_t last_or_offset;    /* the last index served; ETRIMMED: record offset of first */
    const struct raft_entry *entries;
    unsigned n;
};

/* Peer `from` asks node 1 for entries (written; peer_says_req: and taken
 * in). */
static void peer_writes_req(uint64_t from, struct fetch_req r)
{
    struct rl_wire_fetch_req req = {.first = r.from, .last = r.to, .budget = r.budget};
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode_fetch_req(&req, from, &out), 0);
    peer_sends(from, &out);
}

static void peer_says_req(uint64_t from, struct fetch_req r)
{
    peer_writes_req(from, r);
    fx_net();
}

static struct fetch_req fetch_request_of(const struct seen *s)
{
    ck_assert_uint_eq(s->type, RL_WIRE_FETCH_REQUEST);
    return (struct fetch_req){s->req.first, s->req.last, s->req.budget};
}

/* Peer `from` answers node 1's fetch (ETRIMMED with first <= 1: it holds
 * nothing of the range). */
static void peer_says_answer(uint64_t from, struct fetch_answer a)
{
    struct rl_wire_fetch_resp r = {.status = a.status, .first = a.first,
                                   .entries = (struct raft_entry *)a.entries, .n_entries = a.n};
    if (a.status != RLOG_ETRIMMED)
        r.last = a.last_or_offset;
    else if (a.first <= 1)
        r = (struct rl_wire_fetch_resp){.status = a.status, .last = a.last_or_offset};
    else {
        r.restart_term = a.restart_term;
        r.restart_offset = a.last_or_offset;
    }
    struct rl_wire_out out;
    ck_assert_int_eq(rl_wire_encode_fetch_resp(&r, from, &out), 0);
    peer_sends(from, &out);
    fx_net();
}

static struct fetch_answer fetch_answer_of(const struct seen *s)
{
    ck_assert_uint_eq(s->type, RL_WIRE_FETCH_RESPONSE);
    const struct rl_wire_fetch_resp *r = &s->resp;
    bool restart = r->status == RLOG_ETRIMMED && r->first;
    return (struct fetch_answer){.status = r->status, .first = r->first ? r->first : 1,
                                 .restart_term = r->restart_term,
                                 .last_or_offset = restart ? r->restart_offset : r->last,
                                 .entries = r->entries, .n = r->n_entries};
}

/* libraft got exactly one AppendEntries, and it says this. */
static void got_append_entries(uint64_t term, uint64_t prev, uint64_t prev_term, unsigned n,
                               uint64_t commit)
{
    ck_assert_ptr_null(got_of(RAFT_IO_APPEND_ENTRIES, 1));
    const struct seen *g = got_of(RAFT_IO_APPEND_ENTRIES, 0);
    ck_assert_ptr_nonnull(g);
    const struct raft_append_entries *ae = &g->m.append_entries;
    ck_assert_uint_eq(ae->term, term);
    ck_assert_uint_eq(ae->prev_log_index, prev);
    ck_assert_uint_eq(ae->prev_log_term, prev_term);
    ck_assert_uint_eq(ae->n_entries, n);
    ck_assert_uint_eq(ae->leader_commit, commit);
}

/* ---- the window guard and the rewind ------------------------------------------------ */

/* An AppendEntries below libraft's window (here prev_log_index 0, a
 * remote crash in libraft 0.15) becomes a heartbeat at the snapshot. */
START_TEST(test_below_window_becomes_heartbeat)
{
    stored(5, 1);
    descriptor_at(5, 2);
    struct raft_message m = heartbeat(1, 0, 0, 5);
    m.append_entries.entries = make_entries(2, 1, 10);
    m.append_entries.n_entries = 2;
    peer_says(2, m);
    got_append_entries(1, 5, 1, 0, 5);
}
END_TEST

/* libraft 0.15 takes an InstallSnapshot for a no-op when its own entry
 * there has a later term: the snapshot never reaches it; the leader's
 * entries after the committed prefix are fetched and handed over as an
 * AppendEntries that cuts the conflicting suffix. */
START_TEST(test_conflicting_suffix_rewound)
{
    stored(2, 1);
    stored(2, 3);
    F->committed = 2;
    peer_installs(2, 4, 4, 2);
    ck_assert_str_eq(F->events, "");
    struct fetch_req r = fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 0));
    ck_assert_uint_eq(r.from, 3);
    ck_assert_uint_eq(r.to, 4);
    peer_says_answer(2, (struct fetch_answer){.first = 3, .last_or_offset = 4,
                                                        .entries = make_entries(2, 2, 10),
                                                        .n = 2});
    ck_assert_str_eq(F->events, "E");
    got_append_entries(4, 2, 1, 2, 2);
}
END_TEST

/* ---- appends at libraft's view of the log end -------------------------------------------- */

/* libraft 0.15 takes an installed snapshot as its log at once: while the
 * store is still behind, an append it makes would land at the wrong
 * index. It is refused, reported from the loop (not at once), and
 * nothing is written; the node does not stop. */
START_TEST(test_append_at_wrong_index_refused)
{
    stored(2, 1);
    F->committed = 2;
    peer_installs(2, 1, 6, 1);
    ck_assert_str_eq(F->events, "I");
    int st;
    ck_assert_int_eq(raft_append(1, 1, 100, &st), 0);
    ck_assert_int_eq(st, 1);
    fx_run();
    ck_assert_int_eq(st, RAFT_IOERR);
    ck_assert_uint_eq(rl_store_next_index(F->store), 3);
    ck_assert_int_eq(F->fatal_code, 0);
}
END_TEST

/* ---- load ---------------------------------------------------------------------------- */

/* load() hands libraft the entries after the snapshot and at most
 * `trailing` before it (libraft never reads the disk again, and holds
 * all it is given). */
START_TEST(test_load_returns_bounded_tail)
{
    stored(10, 1);
    ck_assert_uint_eq(F->load_start, 1);
    descriptor_at(8, 3);
    unsigned trailing[] = {3, 0, 100};
    uint64_t start[] = {6, 9, 1};
    for (int i = 0; i < 3; i++) {
        node_close();
        F->trailing = trailing[i];
        node_open();
        ck_assert_uint_eq(F->load_snap, 8);
        ck_assert_uint_eq(F->load_start, start[i]);
        ck_assert_uint_eq(F->load_n, 10 - start[i] + 1);
    }
}
END_TEST

/* A damaged entry in the optional trailing window is left out: libraft's
 * memory starts after it (the entries after the snapshot are whole). */
START_TEST(test_load_skips_damage_before_the_snapshot)
{
    for (int i = 0; i < 10; i++) /* 3 a segment: entry 5 is in a sealed one */
        stored_sized(1, 1, 10000);
    descriptor_at(8, 5);
    node_close();
    char name[256];
    uint64_t pos;
    uint32_t len;
    ck_assert(th_frame_pos(F->dir, 5, name, sizeof name, &pos, &len));
    th_flip_bit(F->dir, name, pos + RL_STORE_FRAME_HEADER_SIZE + 40, 3);
    F->trailing = 5;
    node_open();
    ck_assert_uint_eq(F->load_snap, 8);
    ck_assert_uint_eq(F->load_start, 6);
    ck_assert_uint_eq(F->load_n, 5);
}
END_TEST

/* raftio/floor.c: a damaged entry libraft must load (there is no snapshot
 * descriptor here, so that is any entry) is cut with everything after it;
 * until the log is back as up to date as its old end, the node does not
 * campaign and a RequestVote from a candidate behind that end never reaches
 * libraft. */
static struct raft_message vote_with_log(uint64_t from, uint64_t term, uint64_t last_index,
                                         uint64_t last_term)
{
    struct raft_message m = vote(from, term);
    m.request_vote.last_log_index = last_index;
    m.request_vote.last_log_term = last_term;
    return m;
}

START_TEST(test_damaged_tail_cut_behind_a_floor)
{
    stored_sized(10, 2, 10000);
    node_close();
    char name[256], path[4200];
    uint64_t pos;
    uint32_t len;
    ck_assert(th_frame_pos(F->dir, 6, name, sizeof name, &pos, &len));
    th_flip_bit(F->dir, name, pos + RL_STORE_FRAME_HEADER_SIZE + 40, 3);
    F->cut_tail = true;
    node_open();
    ck_assert_uint_eq(F->cut_at, 6);
    ck_assert_uint_eq(F->load_start + F->load_n - 1, 5); /* libraft gets 1..5 */
    uint64_t at;
    ck_assert(rl_io_floor(&F->rio, &at, NULL));
    ck_assert_uint_eq(at, 10);
    snprintf(path, sizeof path, "%s/FLOOR", F->dir);
    ck_assert(th_file_exists(path));
    /* No campaign: ticks wait. */
    fx_advance(TICK_MS);
    fx_advance(TICK_MS);
    ck_assert_uint_eq(F->ticks, 0);
    /* Candidates behind (10, term 2) get nothing; one level with it does. */
    peer_says(2, vote_with_log(2, 3, 9, 2));
    peer_says(2, vote_with_log(2, 3, 12, 1));
    ck_assert_str_eq(F->events, "");
    peer_says(3, vote_with_log(3, 3, 10, 2));
    ck_assert_str_eq(F->events, "V");
    /* The leader sends the entries back: the floor goes, FLOOR too, and the
     * held ticks reach libraft. */
    int st;
    ck_assert_int_eq(raft_append(5, 2, 10000, &st), 0);
    fx_run();
    ck_assert_int_eq(st, 0);
    ck_assert(!rl_io_floor(&F->rio, NULL, NULL));
    ck_assert(!th_file_exists(path));
    ck_assert_uint_ge(F->ticks, 1);
    peer_says(2, vote_with_log(2, 4, 9, 2));
    ck_assert_uint_eq(F->n_got, 2);
    /* And a reopen finds no floor. */
    node_close();
    node_open();
    ck_assert_uint_eq(F->cut_at, 0);
    ck_assert(!rl_io_floor(&F->rio, NULL, NULL));
}
END_TEST

/* ---- serving fetches ------------------------------------------------------------------- */

/* A request is answered from the store, within its byte budget (at least
 * one entry), the entries' bytes as stored. */
START_TEST(test_fetch_served_within_budget)
{
    stored(10, 1);
    const struct raft_entry *mine = F->entries[0];
    size_t len = mine[0].buf.len;
    peer_says_req(3, (struct fetch_req){3, 8, 2 * len + len / 2});
    struct fetch_answer a = fetch_answer_of(sent_frame(3, RL_WIRE_FETCH_RESPONSE, 0));
    ck_assert_int_eq(a.status, 0);
    ck_assert_uint_eq(a.first, 3);
    ck_assert_uint_eq(a.n, 2);
    ck_assert_uint_eq(a.last_or_offset, 10);
    for (unsigned i = 0; i < a.n; i++) {
        ck_assert_uint_eq(a.entries[i].buf.len, len);
        ck_assert_mem_eq(a.entries[i].buf.base, mine[2 + i].buf.base, len);
    }
    /* A budget smaller than one entry still gets one. */
    fx_run();
    peer_says_req(3, (struct fetch_req){9, 10, 1});
    a = fetch_answer_of(sent_frame(3, RL_WIRE_FETCH_RESPONSE, 1));
    ck_assert_uint_eq(a.first, 9);
    ck_assert_uint_eq(a.n, 1);
}
END_TEST

/* fetch_serve_bytes: a request whose first entry does not fit is dropped
 * and counted (the peer asks again). */
START_TEST(test_fetch_serving_bounded)
{
    stored(3, 1);
    rl_io_set_bounds(&F->rio, &(struct rl_io_bounds){.fetch_serve_max = 4,
                                                     .fetch_serve_bytes = 100,
                                                     .held_max = 64});
    peer_says_req(3, (struct fetch_req){1, 3, 1u << 20});
    fx_run();
    ck_assert_uint_eq(count_sent(RL_WIRE_FETCH_RESPONSE), 0);
    struct rl_io_bound_stats bs;
    rl_io_bound_stats(&F->rio, &bs);
    ck_assert_uint_eq(bs.fetch_serve_refused, 1);
}
END_TEST

/* An answer holds its entries until it is written: one per peer, at
 * most fetch_serve_max at once; the others are dropped and counted. */
START_TEST(test_fetch_serving_one_at_a_time)
{
    stored(3, 1);
    rl_io_set_bounds(&F->rio, &(struct rl_io_bounds){.fetch_serve_max = 1,
                                                     .fetch_serve_bytes = 64u << 20,
                                                     .held_max = 64});
    /* Read in one turn: the first answer waits for its connection. */
    peer_writes_req(3, (struct fetch_req){1, 3, 1u << 20});
    peer_writes_req(3, (struct fetch_req){2, 3, 1u << 20});
    peer_writes_req(2, (struct fetch_req){1, 3, 1u << 20});
    fx_run();
    ck_assert_uint_eq(count_sent(RL_WIRE_FETCH_RESPONSE), 1);
    ck_assert_uint_eq(fetch_answer_of(sent_frame(3, RL_WIRE_FETCH_RESPONSE, 0)).first, 1);
    struct rl_io_bound_stats bs;
    rl_io_bound_stats(&F->rio, &bs);
    ck_assert_uint_eq(bs.fetch_serve_refused, 2);
    /* Once it is written, the next request is served. */
    peer_says_req(2, (struct fetch_req){2, 3, 1u << 20});
    fx_run();
    ck_assert_uint_eq(count_sent(RL_WIRE_FETCH_RESPONSE), 2);
}
END_TEST

static void store_cb(struct rl_store_req *req, int status)
{
    *(int *)req->data = status;
}

/* A request for a range this node has trimmed is answered RLOG_ETRIMMED
 * with where the asker's log can restart: the entry after the last fully
 * trimmed one, that one's term and the next record offset. */
START_TEST(test_fetch_answer_for_trimmed_range)
{
    stored(10, 1); /* entry i holds records 2(i-1), 2(i-1)+1 */
    struct rl_store_req req = {0};
    int st = 1;
    req.data = &st;
    ck_assert_int_eq(rl_store_trim_records(F->store, &req, 5, 10, store_cb), 0);
    fx_run();
    ck_assert_int_eq(st, 0);
    peer_says_req(3, (struct fetch_req){2, 8, 1u << 20});
    struct fetch_answer a = fetch_answer_of(sent_frame(3, RL_WIRE_FETCH_RESPONSE, 0));
    ck_assert_int_eq(a.status, RLOG_ETRIMMED);
    ck_assert_uint_eq(a.first, 6);
    ck_assert_uint_eq(a.restart_term, 1);
    ck_assert_uint_eq(a.last_or_offset, 10);
    ck_assert_uint_eq(a.n, 0);
}
END_TEST

/* ---- catching up by fetch ---------------------------------------------------------------- */

/* An install the log does not reach fetches the range chunk by chunk; a
 * cut connection loses the request in flight, and the fetch asks again
 * (after its timeout) from where it stopped, then completes the install. */
START_TEST(test_fetch_resumes_after_cut)
{
    stored(2, 1);
    F->committed = 2;
    peer_installs(2, 1, 6, 1);
    ck_assert_int_eq(F->install_status, 1);
    uint64_t next, target;
    ck_assert(rl_io_catchup(&F->rio, &next, &target));
    ck_assert_uint_eq(next, 3);
    ck_assert_uint_eq(target, 6);
    struct fetch_req r = fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 0));
    ck_assert_uint_eq(r.from, 3);
    ck_assert_uint_eq(r.to, 6);
    struct raft_entry *theirs = make_entries(4, 1, 300);
    peer_says_answer(2, (struct fetch_answer){.first = 3, .last_or_offset = 6,
                                                        .entries = theirs, .n = 2});
    fx_run();
    ck_assert_uint_eq(rl_store_last_index(F->store), 4);
    ck_assert_uint_eq(fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 1)).from, 5);
    cut(2);
    /* A late copy of the first answer changes nothing. */
    peer_says_answer(2, (struct fetch_answer){.first = 3, .last_or_offset = 6,
                                                        .entries = theirs, .n = 2});
    fx_run();
    ck_assert_uint_eq(rl_store_next_index(F->store), 5);
    ck_assert_uint_eq(count_sent(RL_WIRE_FETCH_REQUEST), 2);
    fx_advance(3000);
    ck_assert_uint_eq(count_sent(RL_WIRE_FETCH_REQUEST), 3);
    ck_assert_uint_eq(fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 2)).from, 5);
    ck_assert(rl_io_catchup(&F->rio, &next, &target));
    ck_assert_uint_eq(next, 5);
    peer_says_answer(2, (struct fetch_answer){.first = 5, .last_or_offset = 6,
                                                        .entries = theirs + 2, .n = 2});
    fx_run();
    ck_assert_int_eq(F->install_status, 0);
    ck_assert(!rl_io_catchup(&F->rio, &next, &target));
    ck_assert_uint_eq(rl_store_last_index(F->store), 6);
    ck_assert_uint_eq(rl_io_snapshot_index(&F->rio), 6);
    struct rl_store_entry e;
    ck_assert_int_eq(rl_store_read(F->store, 5, &e), 0);
    ck_assert_uint_eq(e.len, theirs[2].buf.len);
    ck_assert_mem_eq(e.buf, theirs[2].buf.base, e.len);
    free((void *)e.buf);
}
END_TEST

/* A peer that trimmed past this log's end answers ETRIMMED with its
 * restart point: the log is reset to start there (a reset descriptor
 * first), and the fetch goes on from it. */
START_TEST(test_fetch_restarts_past_a_peer_trim)
{
    stored(2, 1);
    F->committed = 2;
    peer_installs(2, 1, 6, 1);
    ck_assert_uint_eq(fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 0)).from, 3);
    peer_says_answer(2, (struct fetch_answer){.status = RLOG_ETRIMMED, .first = 5,
                                                        .restart_term = 1,
                                                        .last_or_offset = 8});
    fx_run();
    ck_assert_uint_eq(rl_store_first_index(F->store), 5);
    ck_assert_uint_eq(rl_store_first_offset(F->store), 8);
    ck_assert_uint_eq(rl_io_snapshot_index(&F->rio), 4);
    ck_assert_uint_eq(fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 1)).from, 5);
    peer_says_answer(2, (struct fetch_answer){.first = 5, .last_or_offset = 6,
                                                        .entries = make_entries(2, 1, 50),
                                                        .n = 2});
    fx_run();
    ck_assert_int_eq(F->install_status, 0);
    ck_assert_uint_eq(rl_store_last_index(F->store), 6);
    ck_assert_uint_eq(rl_io_snapshot_index(&F->rio), 6);
}
END_TEST

/* When no member holds the range any more, the install fails (libraft
 * sends a newer snapshot later) after every other member was asked; the
 * buffers of the failed install are freed once (ASan: libraft 0.15 frees
 * the data but not the array holding it). */
START_TEST(test_fetch_gives_up_when_nobody_holds_it)
{
    stored(2, 1);
    F->committed = 2;
    peer_installs(2, 1, 6, 1);
    struct fetch_answer gone = {.status = RLOG_ETRIMMED, .first = 1};
    peer_says_answer(2, gone);
    fx_run();
    ck_assert_int_eq(F->install_status, 1);
    ck_assert_uint_eq(fetch_request_of(sent_frame(3, RL_WIRE_FETCH_REQUEST, 1)).from, 3);
    peer_says_answer(3, gone);
    fx_run();
    ck_assert_uint_eq(fetch_request_of(sent_frame(2, RL_WIRE_FETCH_REQUEST, 2)).from, 3);
    peer_says_answer(2, gone);
    fx_run();
    ck_assert_int_eq(F->install_status, RAFT_IOERR);
    uint64_t next, target;
    ck_assert(!rl_io_catchup(&F->rio, &next, &target));
    ck_assert_uint_eq(rl_store_next_index(F->store), 3);
    ck_assert_int_eq(F->fatal_code, 0);
}
END_TEST

/* libraft 0.15 takes the snapshot as its log the moment an install
 * starts: while the install fetches, it must not campaign (TimeoutNow
 * waits), though it may vote (no append is in flight). */
START_TEST(test_campaign_waits_for_install)
{
    stored(2, 1);
    F->committed = 2;
    peer_installs(2, 1, 6, 1);
    peer_says(3, vote(3, 2));
    struct raft_message tn = {.type = RAFT_IO_TIMEOUT_NOW};
    tn.timeout_now.term = 1;
    peer_says(2, tn);
    ck_assert_str_eq(F->events, "IV");
    peer_says_answer(2, (struct fetch_answer){.first = 3, .last_or_offset = 6,
                                                        .entries = make_entries(4, 1, 50),
                                                        .n = 4});
    fx_run();
    ck_assert_int_eq(F->install_status, 0);
    ck_assert_str_eq(F->events, "IVT");
}
END_TEST

/* An install of a snapshot this log holds, committed: libraft's log now
 * ends at it, so the store's suffix after it goes too (appends then land
 * where libraft counts them). */
START_TEST(test_install_of_held_snapshot_cuts_suffix)
{
    stored(4, 1);
    F->committed = 3;
    peer_installs(2, 1, 3, 1);
    fx_run();
    ck_assert_int_eq(F->install_status, 0);
    ck_assert_uint_eq(rl_io_snapshot_index(&F->rio), 3);
    ck_assert_uint_eq(rl_store_next_index(F->store), 4);
    ck_assert_uint_eq(count_sent(RL_WIRE_FETCH_REQUEST), 0);
    stored(1, 1);
    ck_assert_uint_eq(rl_store_last_index(F->store), 4);
}
END_TEST

/* ---- sending after start, and after a failure -------------------------------------------- */

static struct raft_message append_result(uint64_t to)
{
    struct raft_message m = {.type = RAFT_IO_APPEND_ENTRIES_RESULT, .server_id = to,
                             .server_address = to == 2 ? "n2" : "n3"};
    m.append_entries_result.term = 1;
    m.append_entries_result.last_log_index = 1;
    return m;
}

/* libraft 0.15 frees an AppendEntries' entries twice when the send of its
 * answer fails at once: after start, a send never does; its failure comes
 * through the callback, from the loop. */
START_TEST(test_sends_never_fail_at_once)
{
    F->refuse_connects = true;
    struct raft_message m = append_result(3);
    int st1, st2;
    ck_assert_int_eq(raft_send(&m, &st1), 0);
    ck_assert_int_eq(st1, 1);
    ck_assert_int_eq(raft_send(&m, &st2), 0); /* recently unreachable: fails fast */
    ck_assert_int_eq(st2, 1);
    fx_net();
    ck_assert_int_eq(st1, RAFT_NOCONNECTION);
    ck_assert_int_eq(st2, RAFT_NOCONNECTION);
    ck_assert_uint_eq(F->connects, 1);
}
END_TEST

/* A node that failed stop (its term or vote may be ahead of its disk)
 * says nothing more and hears nothing more. */
START_TEST(test_failed_stop_sends_nothing)
{
    stored(1, 1);
    rl_io_fail_stop(&F->rio, RLOG_EIO, "test");
    ck_assert_int_eq(F->fatal_code, RLOG_EIO);
    struct raft_message m = append_result(2);
    int st;
    ck_assert_int_eq(raft_send(&m, &st), 0);
    ck_assert_int_eq(st, 1);
    fx_run();
    ck_assert_int_eq(st, RAFT_IOERR);
    struct raft_configuration conf;
    conf_123(&conf);
    rl_io_send_commit(&F->rio, &conf, &(struct rl_wire_commit){1, 1, 1}, RL_NOTICE_ALL);
    raft_configuration_close(&conf);
    struct rl_wire_fwd fwd = {.type = RL_WIRE_BARRIER, .request = 1};
    ck_assert_int_eq(rl_io_send_fwd(&F->rio, 2, "n2", &fwd, NULL, NULL), RLOG_ECLOSED);
    int ast;
    ck_assert_int_eq(raft_append(1, 1, 10, &ast), RAFT_IOERR);
    peer_says(2, vote(2, 5));
    peer_says(2, heartbeat(1, 1, 1, 1));
    fx_run();
    ck_assert_uint_eq(F->n_sent, 0);
    ck_assert_uint_eq(F->connects, 0);
    ck_assert_uint_eq(F->n_got, 0);
}
END_TEST

int main(void)
{
    th_tmp_begin();
    Suite *s = suite_create("raftio");
    TCase *tc = tcase_create("backend");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_votes_wait_for_appends);
    tcase_add_test(tc, test_ticks_wait_for_appends);
    tcase_add_test(tc, test_held_queue_drops_the_oldest);
    tcase_add_test(tc, test_append_result_capped);
    tcase_add_test(tc, test_contradicting_committed_dropped);
    tcase_add_test(tc, test_long_append_entries_cut_to_frame);
    tcase_add_test(tc, test_below_window_becomes_heartbeat);
    tcase_add_test(tc, test_conflicting_suffix_rewound);
    tcase_add_test(tc, test_append_at_wrong_index_refused);
    tcase_add_test(tc, test_load_returns_bounded_tail);
    tcase_add_test(tc, test_load_skips_damage_before_the_snapshot);
    tcase_add_test(tc, test_damaged_tail_cut_behind_a_floor);
    tcase_add_test(tc, test_fetch_served_within_budget);
    tcase_add_test(tc, test_fetch_serving_bounded);
    tcase_add_test(tc, test_fetch_serving_one_at_a_time);
    tcase_add_test(tc, test_fetch_answer_for_trimmed_range);
    tcase_add_test(tc, test_fetch_resumes_after_cut);
    tcase_add_test(tc, test_fetch_restarts_past_a_peer_trim);
    tcase_add_test(tc, test_fetch_gives_up_when_nobody_holds_it);
    tcase_add_test(tc, test_campaign_waits_for_install);
    tcase_add_test(tc, test_install_of_held_snapshot_cuts_suffix);
    tcase_add_test(tc, test_sends_never_fail_at_once);
    tcase_add_test(tc, test_failed_stop_sends_nothing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    th_tmp_end();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
