/*
 * sim — deterministic simulation of a liblog cluster (see world.h), with a
 * workload, a fault schedule and a checker of the history.
 *
 *   sim [--seeds N] [--seed-start S] [--scenario NAME|random|all] [--nodes 3|5]
 *       [--ms VIRTUAL_MS] [--hold-jobs] [--quiet] [--logs K] [-v]
 *
 * --logs K (and the scenario hosts, with 4): every node is a host of K logs
 * over one shared transport (world.h); the scenario drives the first, and
 * hostlogs.c gives the others appenders and a checker each.
 *
 * Each seed: clients append through whichever node they think leads
 * (retrying elsewhere on failure), readers read random offsets on random
 * nodes, a subscriber on every node follows the log; faults are injected at
 * random (or as the named scenario scripts them); then every fault is healed,
 * the cluster converges, and the checker compares the history with every
 * node's final log. A failure prints the seed and how to replay it; the
 * last line says how many seeds ran clean.
 */
#include <errno.h>
#include <inttypes.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "batch/batch.h"
#include "common/grow.h"
#include "sim/hostlogs.h"
#include "sim/recid.h"
#include "sim/world.h"
#include "raftio/io.h"
#include "raftio/snapshot.h"
#include "sm/sm.h"
#include "store/format.h"

/* ---- history ----------------------------------------------------------------- */

struct attempt {
    struct rec_id id;
    int status;          /* -1 while unanswered */
    uint64_t offset;
    bool producer;       /* sent with a producer (its client's) */
    bool cond;           /* conditional: expected offset `expect` */
    uint64_t expect;
    bool via_follower;   /* sent to a node that did not lead then */
    int node;            /* the node it was sent to */
};

/* The forward scenario's state (its code: "forwarding" below). */
static struct fwd_state {
    bool any_node;       /* clients append through any node, not the leader */
    uint64_t probe_seq;
    unsigned long probes_in_change, probes_acked, barriers_ok, barriers_failed;
    unsigned long barrier_reads;
    unsigned long barrier_errors[32]; /* by -code */
} FW;

struct obs {              /* something a read or subscriber was shown */
    int node;
    uint64_t offset;
    struct rec_id id;
};

#define MAX_CLIENTS 16

struct client {
    int idx;
    int target;          /* node index it thinks leads */
    uint64_t seq;
    struct attempt *cur; /* in flight, or NULL */
    /* Scenario producers: a producer client sends each record with its
     * producer id until it is acknowledged, and sometimes once more after
     * (a retry of a committed call); a conditional client expects the end
     * its target node has committed. */
    bool producer, conditional;
    unsigned char rec[600];
    size_t len;
    bool resend;         /* rec is to be sent again with the same sequence */
};

struct sub {
    int node;
    uint64_t cursor;     /* next offset it expects */
    bool busy;
    uint64_t incarnation;
};

struct collect {         /* reads a node's whole log at the end */
    int node;
    uint64_t next, end;
    bool busy, done;
    int error;
    struct rec_id *recs;
    size_t n, cap;
};

static int LOGS = 1; /* --logs: > 1 runs every node as a host (world.h) */

static struct {
    struct attempt **att;
    size_t n_att, cap_att;
    struct obs *obs;
    size_t n_obs, cap_obs;
    struct client clients[MAX_CLIENTS];
    int n_clients;
    struct sub subs[SIM_MAX_NODES];
    struct collect col[SIM_MAX_NODES];
    bool load_on, faults_on;
    uint64_t quiet_until;       /* no new fault or wipe before this (sm-join) */
    unsigned long acked, failed, reads, read_errors, corrupt_seen, crashes;
    unsigned long reads_here; /* served on the host's thread (rl_read_here) */
    unsigned long trims_ok, sub_jumps, forged, trim_crashes;
    unsigned long dup_acks, conflicts, cond_acks; /* scenario producers */
    uint64_t trim_acked;    /* the highest acknowledged trim point */
    uint64_t trim_ms_min, trim_ms_max; /* trimmer period; 0: no trims */
    bool retry_corrupt;     /* the final collection waits out damage under repair */
    int bitflip_node;       /* bitflip: the node whose segment was flipped */
    uint64_t snap_index[SIM_MAX_NODES]; /* as the node was stopped for a flip */
    struct flip {           /* repair: every bit flipped in a checksummed byte */
        int node;
        uint64_t index;     /* the entry whose frame holds the byte */
    } flips[256];
    int n_flips;
    unsigned long tail_flips, tail_cuts; /* tail-damage */
    /* The highest offset a successful callback reported on each node for
     * an append it proposed as leader: those come in log order (pipeline). */
    uint64_t last_ack_end[SIM_MAX_NODES];
    char failure[512];
} H;

/* The pipeline scenario (below): a deep pipeline, the lead changing in the
 * middle of it. */
static struct {
    bool on;
    bool due;                /* a leader change is wanted */
    uint64_t due_since;
    unsigned max_depth;      /* most entries seen in flight on a leader */
    unsigned deep_changes;   /* changes made with PL_DEEP or more in flight */
    unsigned transfers, kills, cuts;
    bool early_seen;         /* a leader had sent an early commit notice */
    int leader;              /* the leader at the last sample, and since when */
    uint64_t lead_since;
    unsigned long ahead;     /* samples: a follower showing past its leader */
} PL;

/* sm-install (below): wipes and the installs they led to. */
static struct {
    bool wiped[SIM_MAX_NODES];  /* since its wipe, no snapshot restored yet */
    unsigned long wipes, installs, tries;
    unsigned long join_installs; /* sm-join: restored by the added node */
} WI;

static void fail_check(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_check(const char *fmt, ...)
{
    if (H.failure[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(H.failure, sizeof H.failure, fmt, ap);
    va_end(ap);
}

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    p = rl_grow(p, cap, n, elem, 256);
    if (!p)
        abort();
    return p;
}

static void add_obs(int node, uint64_t offset, struct rec_id id)
{
    H.obs = grow(H.obs, &H.cap_obs, H.n_obs, sizeof *H.obs);
    H.obs[H.n_obs++] = (struct obs){.node = node, .offset = offset, .id = id};
}

/* A record is 16 bytes of identity (client, sequence) and random filler
 * (sim/recid.h). */

static void note_shown(uint64_t off, uint64_t ts, size_t len); /* retention-policy */

/* Walks a fetch chunk ({u64 base, u32 count, u32 len, payload}...) from
 * *next on; calls fn for each record; false if the chunk skips an offset. */
static bool walk_chunk(const unsigned char *chunk, size_t len, uint64_t *next,
                       void (*fn)(void *arg, uint64_t off, struct rec_id id), void *arg)
{
    size_t pos = 0;
    while (pos + 16 <= len) {
        uint64_t base = rl_get64(chunk + pos);
        uint32_t count = rl_get32(chunk + pos + 8), elen = rl_get32(chunk + pos + 12);
        const unsigned char *payload = chunk + pos + 16;
        pos += 16 + (size_t)rl_pad8(elen);
        if (base + count <= *next)
            continue;
        if (base > *next)
            return false;
        struct rl_batch_view v;
        if (!rl_batch_parse(payload, elen, &v))
            return false;
        for (uint64_t off = *next; off < base + count; off++) {
            const void *rec;
            size_t rlen;
            rl_batch_record(&v, (uint32_t)(off - base), &rec, &rlen);
            note_shown(off, v.timestamp, rlen);
            fn(arg, off, rec_identify(rec, rlen));
        }
        *next = base + count;
    }
    return true;
}

static struct rl_op *new_op(enum rl_op_kind kind, uint64_t offset, void (*done)(struct rl_op *),
                            void *arg)
{
    struct rl_op *op = calloc(1, sizeof *op);
    if (!op)
        abort();
    op->kind = kind;
    op->offset = offset;
    op->done = done;
    op->done_arg = arg;
    return op;
}

static void free_op(struct rl_op *op)
{
    free(op->buf);
    free(op);
}

/* ---- clients -------------------------------------------------------------------- */

static void client_tick(void *arg);

static int pick_up_node(int prefer)
{
    if (prefer >= 0 && node_up(&W->nodes[prefer]))
        return prefer;
    int start = (int)sim_range(0, (uint64_t)W->n - 1);
    for (int k = 0; k < W->n; k++) {
        int i = (start + k) % W->n;
        if (node_up(&W->nodes[i]))
            return i;
    }
    return -1;
}

static void append_cb(void *arg, int status, uint64_t offset)
{
    struct attempt *a = arg;
    if (a->status != -1)
        fail_check("client %" PRIu64 " seq %" PRIu64 ": a second callback (%s after %s)", a->id.client,
                   a->id.seq, rlog_errname(status), rlog_errname(a->status));
    /* Appends a node proposed itself, as leader: its fence settles them in
     * log order. Not forwarded ones: a result from a leader cut off can
     * come back after a newer leader's for a later append (seed 1500868). */
    if (status == 0 && PL.on && !a->via_follower) {
        if (offset < H.last_ack_end[a->node])
            fail_check("n%d acknowledged client %" PRIu64 " seq %" PRIu64 " at offset %" PRIu64
                       " after an acknowledgement at %" PRIu64 ": callbacks out of log order",
                       a->node + 1, a->id.client, a->id.seq, offset,
                       H.last_ack_end[a->node] - 1);
        H.last_ack_end[a->node] = offset + 1;
    }
    a->status = status;
    a->offset = offset;
    struct client *c = &H.clients[a->id.client];
    c->cur = NULL;
    if (c->producer) {
        /* Until acknowledged, and now and then once more after. */
        bool again = c->resend;
        c->resend = status != 0 || (!again && sim_chance(250));
        if (status == 0 && again)
            H.dup_acks++;
    }
    if (status == RLOG_ECONFLICT)
        H.conflicts++;
    if (status == 0) {
        H.acked++;
        H.cond_acks += a->cond;
        sim_at(W->now + (PL.on ? 0 : sim_range(0, 3)) * SIM_MS, client_tick, c);
        return;
    }
    H.failed++;
    /* Follow the node's view of the leader, or try another. */
    struct sim_node *n = &W->nodes[c->target];
    uint64_t leader = node_leader(n);
    c->target = leader ? (int)leader - 1 : (c->target + 1) % W->n;
    sim_at(W->now + sim_range(5, 50) * SIM_MS, client_tick, c);
}

static struct {
    bool on;               /* the quiet scenario runs (or --quiet) */
    bool idle;             /* clients hold their appends */
    unsigned rounds, quiet_seen, faults;
    unsigned long acked_at_resume;
} QT;

static void client_tick(void *arg)
{
    struct client *c = arg;
    if (!H.load_on || c->cur)
        return;
    if (QT.idle) { /* the quiet scenario's idle spell */
        sim_at(W->now + 100 * SIM_MS, client_tick, c);
        return;
    }
    int t = pick_up_node(FW.any_node ? (int)sim_range(0, (uint64_t)W->n - 1) : c->target);
    if (t < 0) {
        sim_at(W->now + 50 * SIM_MS, client_tick, c);
        return;
    }
    c->target = t;
    unsigned char *rec = c->rec;
    if (!c->resend) {
        c->len = (size_t)sim_range(16, sizeof c->rec);
        rl_put64(rec, (uint64_t)c->idx);
        rl_put64(rec + 8, c->seq);
        for (size_t i = 16; i < c->len; i++)
            rec[i] = (unsigned char)sim_rand();
        c->seq++;
    }
    size_t len = c->len;
    struct attempt *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->id = rec_identify(rec, len);
    a->status = -1;
    a->via_follower = !node_is_leader(&W->nodes[t]);
    a->node = t;
    H.att = grow(H.att, &H.cap_att, H.n_att, sizeof *H.att);
    H.att[H.n_att++] = a;
    struct rlog_buf b = {.base = rec, .len = len};
    struct rlog_append_opts o;
    rlog_append_opts_init(&o);
    if (c->producer) {
        o.producer_id = 1000 + (uint64_t)c->idx;
        o.sequence = a->id.seq + 1;
        a->producer = true;
    }
    if (c->conditional) {
        o.expect_offset = node_visible(&W->nodes[t]);
        a->cond = true;
        a->expect = o.expect_offset;
    }
    node_enter(&W->nodes[t]);
    int rv = rlog_append_ex_async(W->nodes[t].log, &o, &b, 1, append_cb, a);
    node_leave();
    if (rv != 0) {
        a->status = rv;
        H.failed++;
        c->target = (t + 1) % W->n;
        sim_at(W->now + 20 * SIM_MS, client_tick, c);
        return;
    }
    c->cur = a;
}

/* ---- readers and subscribers ------------------------------------------------------- */

static uint64_t max_acked_offset(void)
{
    uint64_t m = 0;
    for (size_t i = H.n_att; i-- > 0 && i + 64 > H.n_att;)
        if (H.att[i]->status == 0 && H.att[i]->offset + 1 > m)
            m = H.att[i]->offset + 1;
    return m;
}

static void read_done(struct rl_op *op)
{
    int node = (int)(intptr_t)op->done_arg;
    if (op->status == 0) {
        add_obs(node, op->offset, rec_identify(op->buf, op->len));
        H.reads++;
    } else {
        H.read_errors++;
        if (op->status == RLOG_ECORRUPT)
            H.corrupt_seen++;
    }
    free_op(op);
}

static void reader_tick(void *arg)
{
    (void)arg;
    if (!H.load_on)
        return;
    int t = pick_up_node(-1);
    uint64_t end = max_acked_offset();
    if (t >= 0 && end > 0) {
        uint64_t off = sim_range(0, end - 1);
        /* The same record read as a host thread reads it (the read cache,
         * else the segment files, without the loop): what it serves is an
         * observation, checked against the final log like any read. */
        void *buf;
        size_t len;
        if (node_read_here(&W->nodes[t], off, &buf, &len) == 0) {
            add_obs(t, off, rec_identify(buf, len));
            H.reads_here++;
            free(buf);
        }
        struct rl_op *op = new_op(RL_OP_READ, off, read_done, (void *)(intptr_t)t);
        if (node_submit(&W->nodes[t], op) != 0)
            free_op(op);
    }
    sim_at(W->now + sim_range(1, 6) * SIM_MS, reader_tick, NULL);
}

static void sub_seen(void *arg, uint64_t off, struct rec_id id)
{
    struct sub *s = arg;
    add_obs(s->node, off, id);
}

static void sub_done(struct rl_op *op)
{
    struct sub *s = op->done_arg;
    s->busy = false;
    if (op->status == 0) {
        if (!walk_chunk(op->buf, op->len, &s->cursor, sub_seen, s))
            fail_check("subscriber on n%d: fetch at %" PRIu64 " skipped offsets or bad batch",
                       s->node + 1, op->offset);
    } else if (op->status == RLOG_ECORRUPT) {
        H.corrupt_seen++;
    } else if (op->status == RLOG_ETRIMMED) {
        /* As a host would: what retention took is gone, go on from there. */
        /* A log reset past its trim point (a wipe, or a catch-up from a
         * peer that had trimmed further) begins later than it. */
        bool later = WI.wipes || W->resets;
        uint64_t t = later ? node_first(&W->nodes[s->node]) : node_trimmed(&W->nodes[s->node]);
        if (t <= s->cursor)
            fail_check("n%d says offset %" PRIu64 " is trimmed but its trim point is %" PRIu64,
                       s->node + 1, s->cursor, t);
        s->cursor = t;
        H.sub_jumps++;
    }
    free_op(op);
}

static void sub_tick(void *arg)
{
    struct sub *s = arg;
    struct sim_node *n = &W->nodes[s->node];
    if (!s->busy && node_up(n) && node_visible(n) > s->cursor) {
        struct rl_op *op = new_op(RL_OP_FETCH, s->cursor, sub_done, s);
        s->busy = node_submit(n, op) == 0;
        if (!s->busy)
            free_op(op);
    }
    if (H.load_on || !H.faults_on)
        sim_at(W->now + sim_range(2, 10) * SIM_MS, sub_tick, s);
}

/* ---- retention ------------------------------------------------------------------------- */

static void trim_done(struct rl_op *op)
{
    if (op->status == 0) {
        H.trims_ok++;
        if (op->offset > H.trim_acked)
            H.trim_acked = op->offset;
    } else if (op->status != RLOG_ENOTLEADER && op->status != RLOG_ECLOSED &&
               op->status != RLOG_EFATAL && op->status != RLOG_EINVAL &&
               op->status != RLOG_EINDOUBT) {
        fail_check("trim to %" PRIu64 " failed: %s: %s", op->offset, rlog_errname(op->status),
                   op->errmsg);
    }
    free_op(op);
}

/* Keeps the newest few hundred records, as a retention policy would. */
static void trimmer_tick(void *arg)
{
    (void)arg;
    if (!H.load_on)
        return;
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        uint64_t v = node_visible(n);
        if (node_is_leader(n) && v > 600) {
            struct rl_op *op = new_op(RL_OP_TRIM, v - sim_range(100, 500), trim_done, NULL);
            if (node_submit(n, op) != 0)
                free_op(op);
            break;
        }
    }
    sim_at(W->now + sim_range(H.trim_ms_min, H.trim_ms_max) * SIM_MS, trimmer_tick, NULL);
}

/* ---- faults ------------------------------------------------------------------------- */

static void heal_links(void *arg)
{
    (void)arg;
    memset(W->link_cut, 0, sizeof W->link_cut);
    sim_log("links healed");
}

static void heal_net(void *arg)
{
    (void)arg;
    net_calm();
    sim_log("network calm");
}

static void heal_disk(void *arg)
{
    struct sim_node *n = arg;
    n->disk_ns = 150000;
}

static int leader_idx(void)
{
    for (int i = 0; i < W->n; i++)
        if (node_is_leader(&W->nodes[i]))
            return i;
    return -1;
}

static void crash_and_restart(struct sim_node *n, uint64_t down_ms)
{
    long tear = sim_chance(500) ? (long)sim_range(1, 8192) : 0;
    node_crash(n, tear);
    H.crashes++;
    node_restart_after(n, down_ms * SIM_MS);
}

static void isolate(int i, bool both_ways)
{
    for (int j = 0; j < W->n; j++)
        if (j != i) {
            W->link_cut[i][j] = true;
            if (both_ways)
                W->link_cut[j][i] = true;
        }
}

static void arm_disk_fault(struct sim_node *n, int kind)
{
    struct rl_fs_faults f = {0};
    if (kind == 0) {
        f.write_fail_at = (unsigned)sim_range(1, 30);
        f.write_errno = EIO;
    } else if (kind == 1) {
        f.sync_fail_at = (unsigned)sim_range(1, 30);
        f.sync_errno = EIO;
    } else {
        f.disk_full = 1; /* no new segment can be made */
    }
    if (W->logs > 1) { /* on a host: the primary's store (the scenario's aim) */
        hl_arm_fault(n, kind, 0);
        return;
    }
    node_enter(n);
    rl_fs_faults_set(&f);
    node_leave();
    sim_log("n%" PRIu64 " disk fault %d armed", n->id, kind);
}

static void fault_tick(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    if (W->now < H.quiet_until) {
        sim_at(H.quiet_until + sim_range(1, 300) * SIM_MS, fault_tick, NULL);
        return;
    }
    int i = (int)sim_range(0, (uint64_t)W->n - 1);
    struct sim_node *n = &W->nodes[i];
    int l = leader_idx();
    switch (sim_range(0, 10)) {
    case 0:
        crash_and_restart(n, sim_range(50, 3000));
        break;
    case 1:
        if (l >= 0)
            crash_and_restart(&W->nodes[l], sim_range(50, 3000));
        break;
    case 2:
        isolate(l >= 0 && sim_chance(500) ? l : i, true);
        sim_log("n%d isolated", (l >= 0 ? l : i) + 1);
        sim_at(W->now + sim_range(200, 3000) * SIM_MS, heal_links, NULL);
        break;
    case 3: {
        int j = (i + 1 + (int)sim_range(0, (uint64_t)W->n - 2)) % W->n;
        W->link_cut[i][j] = true;
        sim_log("link n%d -> n%d cut", i + 1, j + 1);
        sim_at(W->now + sim_range(200, 3000) * SIM_MS, heal_links, NULL);
        break;
    }
    case 4:
        W->net.drop_pm = (unsigned)sim_range(10, 200);
        W->net.dup_pm = (unsigned)sim_range(0, 50);
        W->net.reorder = sim_chance(500);
        W->net.jitter_ns = sim_range(100, 5000) * 1000;
        sim_log("network chaos: drop %u dup %u reorder %d", W->net.drop_pm, W->net.dup_pm,
                W->net.reorder);
        sim_at(W->now + sim_range(500, 3000) * SIM_MS, heal_net, NULL);
        break;
    case 5:
        if (W->logs > 1 && host_up(n)) /* one log's store, or the whole disk */
            hl_arm_fault(n, (int)sim_range(0, 2), HL_ANY);
        else if (node_up(n))
            arm_disk_fault(n, (int)sim_range(0, 2));
        break;
    case 6:
        n->disk_ns = sim_range(2, 50) * SIM_MS;
        sim_log("n%" PRIu64 " disk slow", n->id);
        sim_at(W->now + sim_range(500, 3000) * SIM_MS, heal_disk, n);
        break;
    case 7:
        n->clock_offset_ns += (int64_t)(sim_range(100, 3000) * SIM_MS);
        sim_log("n%" PRIu64 " clock jumps ahead", n->id);
        break;
    case 8:
        net_sever(n);
        sim_log("n%" PRIu64 " connections reset", n->id);
        break;
    case 9:
        if (node_up(n)) {
            node_stop(n);
            node_restart_after(n, sim_range(100, 2000) * SIM_MS);
        }
        break;
    default:
        break; /* a quiet spell */
    }
    sim_at(W->now + sim_range(100, 1500) * SIM_MS, fault_tick, NULL);
}

/* ---- scenarios ------------------------------------------------------------------------- */

struct scenario {
    const char *name;
    int nodes;
    uint64_t ms;                 /* virtual time under load */
    uint64_t trim_ms;            /* a trim about this often; 0: never */
    void (*setup)(void);
    const char *(*verify)(void); /* scenario-specific check, or NULL */
};

static void random_setup(void)
{
    sim_at(W->now + sim_range(300, 1500) * SIM_MS, fault_tick, NULL);
}

/* Raft's Figure 8: a leader replicates entries to one follower only and
 * dies; the follower's copies (an earlier term's) may be carried by a later
 * leader or overwritten by another. The fence must keep them hidden until an
 * entry of the current term commits after them; the checker sees every
 * read and subscriber observation. Repeated, so some rounds overwrite. */
static bool fwd_probe(int node);
static void fig8_round(void *arg);
/* Until the nodes that never saw the suffix have a leader of their own
 * (or 10 s have passed), the follower holding it stays cut off and the old
 * leader down: either one back earlier could win with the longest log and
 * carry the suffix, and then nothing is overwritten. */
static void fig8_await(void *arg)
{
    intptr_t v = (intptr_t)arg;
    int leader = (int)(v >> 8 & 0xff), follower = (int)(v & 0xff), waited = (int)(v >> 16);
    int l = leader_idx();
    if ((l < 0 || l == leader || l == follower) && waited < 50) {
        sim_at(W->now + 200 * SIM_MS, fig8_await, (void *)(v + ((intptr_t)1 << 16)));
        return;
    }
    heal_links(NULL);
    node_restart_after(&W->nodes[leader], 300 * SIM_MS);
}

static void fig8_phase2(void *arg)
{
    int leader = (int)(intptr_t)arg >> 8, follower = (int)(intptr_t)arg & 0xff;
    node_crash(&W->nodes[leader], 0);
    H.crashes++;
    /* The follower with the extra entries is cut off while the others elect
     * a leader of a new term and commit past it; then both rejoin. */
    memset(W->link_cut, 0, sizeof W->link_cut);
    isolate(follower, true);
    sim_at(W->now + 1500 * SIM_MS, fig8_await, (void *)(intptr_t)(leader << 8 | follower));
}

static void fig8_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    if (l >= 0) {
        int f = (l + 1 + (int)sim_range(0, (uint64_t)W->n - 2)) % W->n;
        /* {leader, follower} | the rest: appends reach one follower only. */
        for (int i = 0; i < W->n; i++)
            for (int j = 0; j < W->n; j++)
                W->link_cut[i][j] = ((i == l || i == f) != (j == l || j == f));
        sim_log("figure 8: n%d leads, only n%d hears it", l + 1, f + 1);
        /* Appends on the leader itself, so the follower surely holds a
         * suffix the next leader overwrites (clients may be elsewhere). */
        for (int k = 0; k < 3; k++)
            fwd_probe(l);
        sim_at(W->now + sim_range(100, 400) * SIM_MS, fig8_phase2, (void *)(intptr_t)(l << 8 | f));
    }
    sim_at(W->now + 3500 * SIM_MS, fig8_round, NULL);
}

static void fig8_setup(void)
{
    sim_at(W->now + 1500 * SIM_MS, fig8_round, NULL);
}

static const char *fig8_verify(void)
{
    return W->truncations == 0 ? "no uncommitted suffix was ever overwritten: the scenario did not bite"
                               : NULL;
}

/* Elections while appends are in flight: the leader dies or is cut off
 * every 700 ms under 8 clients. */
static void inflight_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    if (l >= 0) {
        if (H.crashes == 0 || sim_chance(500)) { /* at least one kill per run */
            crash_and_restart(&W->nodes[l], 300);
        } else {
            isolate(l, true);
            sim_at(W->now + 400 * SIM_MS, heal_links, NULL);
        }
    }
    sim_at(W->now + 700 * SIM_MS, inflight_round, NULL);
}

static void inflight_setup(void)
{
    sim_at(W->now + 1500 * SIM_MS, inflight_round, NULL);
}

static const char *inflight_verify(void)
{
    return H.crashes == 0 ? "no leader was killed" : NULL;
}

static void disk_fault_again(void *arg);
static void disk_full_ev(void *arg)
{
    int l = leader_idx();
    int kind = (int)(intptr_t)arg;
    if (l < 0) {
        sim_at(W->now + 100 * SIM_MS, disk_full_ev, arg);
        return;
    }
    arm_disk_fault(&W->nodes[kind == 2 ? l : (l + 1) % W->n], kind);
    /* The armed node may have too little to write before the load ends
     * (seed 522: a follower that synced too seldom): arm again, on
     * whoever holds that role then, until a node has failed stop. */
    sim_at(W->now + 1500 * SIM_MS, disk_fault_again, arg);
}

static void disk_fault_again(void *arg)
{
    if (W->fatal_stops == 0 && H.faults_on)
        disk_full_ev(arg);
}

static void leader_full_setup(void)
{
    sim_at(W->now + 2000 * SIM_MS, disk_full_ev, (void *)(intptr_t)2);
}

static void follower_fsync_setup(void)
{
    sim_at(W->now + 2000 * SIM_MS, disk_full_ev, (void *)(intptr_t)1);
}

static const char *fatal_verify(int code, const char *what)
{
    for (unsigned i = 0; i < W->fatal_stops && i < 16; i++)
        if (W->fatal_codes[i] == code)
            return NULL;
    static char msg[128];
    snprintf(msg, sizeof msg, "no node failed stop with %s (%s)", rlog_errname(code), what);
    return msg;
}

static const char *leader_full_verify(void)
{
    return fatal_verify(RLOG_ENOSPC, "leader disk full");
}

static const char *follower_fsync_verify(void)
{
    return fatal_verify(RLOG_EIO, "follower fsync failure");
}

/* ---- bit flips in sealed segments ---------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The segment files of n (seg-*.log), in sequence order. */
static unsigned segment_files(const struct sim_node *n, char names[128][64])
{
    unsigned found = 0;
    DIR *d = opendir(n->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && found < 128)
        if (!strncmp(e->d_name, "seg-", 4) && strlen(e->d_name) == 24 &&
            !strcmp(e->d_name + 20, ".log"))
            snprintf(names[found++], 64, "%.63s", e->d_name);
    if (d)
        closedir(d);
    qsort(names, found, 64, cmp_name);
    return found;
}

/* Flips a random bit of the byte at `at` of fd (path) and records the flip
 * of entry `index` on n; false if the byte cannot be read or written. */
static bool flip_bit(struct sim_node *n, int fd, const char *path, uint64_t at, uint64_t index)
{
    unsigned char b;
    bool ok = pread(fd, &b, 1, (off_t)at) == 1;
    b ^= (unsigned char)(1u << sim_range(0, 7));
    if (!ok || pwrite(fd, &b, 1, (off_t)at) != 1) {
        fail_check("bit flip: cannot write %s", path);
        return false;
    }
    sim_log("bit flipped in %s at %" PRIu64 " (entry %" PRIu64 ")", path, at, index);
    if (H.n_flips < (int)(sizeof H.flips / sizeof H.flips[0]))
        H.flips[H.n_flips++] = (struct flip){.node = n->idx, .index = index};
    return true;
}

/* Flips one bit of a checksummed byte (a frame's header or payload, never
 * its padding) of a random entry in a sealed segment of n, on disk as it
 * is (the node may be running). Records the flip; false if n has no sealed
 * segment with entries yet. */
static bool flip_sealed(struct sim_node *n, uint64_t max_index)
{
    static char names[128][64];
    unsigned found = segment_files(n, names);
    /* The last file with a header is the one being written (a spare after
     * it has none): only those before it are sealed. */
    int last = -1;
    for (unsigned i = 0; i < found; i++) {
        char path[600];
        unsigned char h[RL_SEG_HDR];
        snprintf(path, sizeof path, "%.320s/%.63s", n->dir, names[i]);
        int fd = open(path, O_RDONLY);
        if (fd >= 0 && pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h && !rl_all_zero(h, sizeof h))
            last = (int)i;
        if (fd >= 0)
            close(fd);
    }
    if (last < 1)
        return false;
    char path[600];
    snprintf(path, sizeof path, "%.320s/%.63s", n->dir, names[sim_range(0, (uint64_t)last - 1)]);
    int fd = open(path, O_RDWR);
    off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
    unsigned char *buf = size > 0 ? malloc((size_t)size) : NULL;
    bool done = false;
    if (buf && pread(fd, buf, (size_t)size, 0) == (ssize_t)size) {
        /* The frames, from the header on; one of them at random. */
        uint64_t index = rl_get64(buf + 24), pos = RL_SEG_HDR, count = 0;
        while (pos + RL_FRAME_HDR <= (uint64_t)size && rl_get64(buf + pos + 8) == index + count) {
            pos += RL_FRAME_HDR + rl_pad8(rl_get32(buf + pos + 40));
            count++;
        }
        /* Not past max_index: damage after the node's snapshot descriptor
         * stops it at open (the documented limit of repair). */
        if (index + count - 1 > max_index)
            count = max_index >= index ? max_index - index + 1 : 0;
        if (count > 0) {
            uint64_t k = sim_range(0, count - 1);
            pos = RL_SEG_HDR;
            for (uint64_t i = 0; i < k; i++)
                pos += RL_FRAME_HDR + rl_pad8(rl_get32(buf + pos + 40));
            uint64_t at = pos + sim_range(0, RL_FRAME_HDR + rl_get32(buf + pos + 40) - 1);
            done = flip_bit(n, fd, path, at, index + k);
        }
    }
    free(buf);
    if (fd >= 0)
        close(fd);
    return done;
}

/* A bit flips in a closed segment of one replica while it is down. */
static void bitflip_restart(void *arg)
{
    struct sim_node *n = arg;
    if (n->log || n->host_closing) { /* (a host: all of it down) */
        sim_at(W->now + 50 * SIM_MS, bitflip_restart, n);
        return;
    }
    flip_sealed(n, H.snap_index[n->idx]);
    H.bitflip_node = n->idx;
    if (node_start(n) == RLOG_ECORRUPT)
        H.corrupt_seen++;
}

static void bitflip_ev(void *arg)
{
    (void)arg;
    int l = leader_idx();
    struct sim_node *n = &W->nodes[l >= 0 ? (l + 1) % W->n : 0];
    H.snap_index[n->idx] = n->log ? rl_io_snapshot_index(&n->log->io) : 0;
    node_stop(n);
    sim_at(W->now + 200 * SIM_MS, bitflip_restart, n);
}

static void bitflip_setup(void)
{
    H.retry_corrupt = true;
    sim_at(W->now + 4000 * SIM_MS, bitflip_ev, NULL);
}

static const char *repair_verify(void);

/* The flipped entry was found damaged, and repaired from a peer. */
static const char *bitflip_verify(void)
{
    if (H.n_flips == 0)
        return "no bit was flipped";
    return repair_verify();
}

/* Bit flips in sealed segments of random nodes, the leader among them:
 * on a running node (found by a read, or by a fetch it serves), on one
 * stopped and restarted (found at open), while nodes crash and catch up
 * (by segment fetch, through peers that may hold damage). Checked: no read
 * ever returned a record the final log does not hold there and every log
 * ends the same (a damaged copy served or sent would show as either), and
 * every flipped entry reads back whole on its node wherever another node
 * held a good copy (repair_verify). */
static void repair_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    int pick = l >= 0 && sim_chance(400) ? l : (int)sim_range(0, (uint64_t)W->n - 1);
    struct sim_node *n = &W->nodes[pick];
    uint64_t c = sim_range(0, 9);
    if (node_up(n) && !n->closing) {
        if (c < 6) {
            flip_sealed(n, rl_io_snapshot_index(&n->log->io));
        } else if (c < 8) {
            H.snap_index[n->idx] = rl_io_snapshot_index(&n->log->io);
            node_stop(n);
            sim_at(W->now + 200 * SIM_MS, bitflip_restart, n);
        } else {
            crash_and_restart(n, sim_range(1000, 3000));
        }
    }
    sim_at(W->now + sim_range(300, 900) * SIM_MS, repair_round, NULL);
}

static void repair_setup(void)
{
    H.retry_corrupt = true;
    sim_at(W->now + 2500 * SIM_MS, repair_round, NULL);
}

/* Reads entry `index` from node i's store (0, or why not). */
static int store_read_on(int i, uint64_t index)
{
    struct sim_node *n = &W->nodes[i];
    if (!n->log || !n->log->store || n->closing)
        return RLOG_ECLOSED;
    node_enter(n);
    struct rl_store_entry e;
    int rc = rl_store_read(n->log->store, index, &e);
    node_leave();
    free((void *)e.buf);
    return rc;
}

/* Every flipped entry reads back whole on its node where another node
 * holds a good copy; repairs under way get up to 60 virtual seconds. */
static const char *repair_verify(void)
{
    static char why[256];
    uint64_t deadline = W->now + 60000 * SIM_MS;
    for (;;) {
        int bad = -1, rc = 0, good = -1;
        for (int k = 0; k < H.n_flips && bad < 0; k++) {
            const struct flip *f = &H.flips[k];
            rc = store_read_on(f->node, f->index);
            if (rc == 0 || rc == RLOG_ETRIMMED)
                continue;
            for (int j = 0; j < W->n && good < 0; j++)
                if (j != f->node && store_read_on(j, f->index) == 0)
                    good = j;
            if (good >= 0)
                bad = k;
        }
        if (bad < 0)
            return NULL;
        if (W->now >= deadline) {
            snprintf(why, sizeof why, "n%d: flipped entry %" PRIu64 " still unreadable (%s)"
                     " 60 s after the end, though n%d holds a good copy",
                     H.flips[bad].node + 1, H.flips[bad].index, rlog_errname(rc), good + 1);
            return why;
        }
        world_run(W->now + 100 * SIM_MS, NULL);
    }
}

/* ---- damage after the snapshot descriptor --------------------------------------- */

/* Flips one bit of a checksummed byte of a random entry after min_index
 * (entries libraft must load at open) in any segment of n, stopped: never
 * the log's last entry, which recovery cannot tell from a torn write.
 * Records the flip; false if n holds no such entry. */
static bool flip_tail(struct sim_node *n, uint64_t min_index)
{
    /* The descriptor on disk is what the open goes by: it may be newer
     * than the index seen before the stop. Damage at or before it is the
     * ordinary repair's (sealed segments only: repair_round). */
    struct rl_snapshot_desc desc;
    char why[256];
    if (rl_snapshot_load(n->dir, &desc, why, sizeof why) == 0) {
        if (desc.index > min_index)
            min_index = desc.index;
        rl_snapshot_desc_close(&desc);
    }
    static char names[128][64];
    unsigned found = segment_files(n, names);
    struct cand {
        unsigned file;
        uint64_t index, pos, len;
    };
    static struct cand c[65536];
    size_t nc = 0;
    for (unsigned f = 0; f < found; f++) {
        char path[600];
        snprintf(path, sizeof path, "%.320s/%.63s", n->dir, names[f]);
        int fd = open(path, O_RDONLY);
        off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : 0;
        unsigned char *buf = size > 0 ? malloc((size_t)size) : NULL;
        if (buf && pread(fd, buf, (size_t)size, 0) == (ssize_t)size &&
            !rl_all_zero(buf, RL_SEG_HDR)) {
            uint64_t index = rl_get64(buf + 24), pos = RL_SEG_HDR, count = 0;
            while (pos + RL_FRAME_HDR <= (uint64_t)size && rl_get64(buf + pos + 8) == index + count &&
                   nc < sizeof c / sizeof c[0]) {
                uint64_t len = RL_FRAME_HDR + rl_get32(buf + pos + 40);
                if (index + count > min_index)
                    c[nc++] = (struct cand){f, index + count, pos, len};
                pos += RL_FRAME_HDR + rl_pad8(rl_get32(buf + pos + 40));
                count++;
            }
        }
        free(buf);
        if (fd >= 0)
            close(fd);
    }
    if (nc < 2)
        return false;
    const struct cand *k = &c[sim_range(0, nc - 2)]; /* not the last entry */
    char path[600];
    snprintf(path, sizeof path, "%.320s/%.63s", n->dir, names[k->file]);
    int fd = open(path, O_RDWR);
    uint64_t at = k->pos + sim_range(0, k->len - 1);
    bool done = fd >= 0 && flip_bit(n, fd, path, at, k->index);
    if (fd >= 0)
        close(fd);
    if (done)
        H.tail_flips++;
    return done;
}

/* The node comes back up with damage among the entries libraft loads: it
 * must start (cut before the damage, floor in force), never refuse. */
static void tail_restart(void *arg)
{
    struct sim_node *n = arg;
    if (n->log || n->host_closing) {
        sim_at(W->now + 50 * SIM_MS, tail_restart, n);
        return;
    }
    /* One node cut at a time: with a majority cut at once no node can win
     * an election (the documented price of the floor; floor.c). */
    bool other_cut = false;
    for (int i = 0; i < W->n; i++) {
        char path[600];
        snprintf(path, sizeof path, "%.320s/FLOOR", W->nodes[i].dir);
        if (i != n->idx && access(path, F_OK) == 0)
            other_cut = true; /* up or down: the floor is in its directory */
    }
    if (!other_cut && H.faults_on)
        flip_tail(n, H.snap_index[n->idx]);
    int rc = node_start(n);
    if (rc != 0 && rc != RLOG_EFATAL)
        fail_check("n%d: refused to start with damage after its snapshot: %s", n->idx + 1,
                   rlog_errname(rc));
    if (rc == 0 && n->log->floor_cut_entries) {
        H.tail_cuts++;
        /* Sometimes the leader is cut off at once: an election while this
         * node's floor is in force, with the third node possibly behind
         * it (then no leader until the links heal: this node's vote would
         * have elected a log missing entries it held). */
        int l = leader_idx();
        if (l >= 0 && l != n->idx && sim_chance(400)) {
            isolate(l, true);
            sim_at(W->now + sim_range(800, 2500) * SIM_MS, heal_links, NULL);
        }
    }
}

/* Bit flips in the entries after a node's snapshot descriptor, found when
 * it restarts: the node cuts its log before the damage and must not vote
 * a candidate behind its old end into office until the leader has sent the
 * cut entries back. Other nodes crash meanwhile, so elections happen while
 * a floor is in force. Checked: every log ends the same with every
 * acknowledged record (a vote on the shorter log could lose one), no read
 * returned a wrong record, every flipped entry reads back whole, and no
 * floor is left in force (tail_verify). */
static void tail_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    int pick = l >= 0 && sim_chance(350) ? l : (int)sim_range(0, (uint64_t)W->n - 1);
    struct sim_node *n = &W->nodes[pick];
    if (node_up(n) && !n->closing) {
        H.snap_index[n->idx] = rl_io_snapshot_index(&n->log->io);
        node_stop(n);
        sim_at(W->now + sim_range(100, 400) * SIM_MS, tail_restart, n);
        if (sim_chance(300)) { /* an election while it is cut */
            struct sim_node *o = &W->nodes[(pick + 1 + sim_range(0, (uint64_t)W->n - 2)) % W->n];
            if (node_up(o) && !o->closing)
                crash_and_restart(o, sim_range(500, 2000));
        }
    }
    sim_at(W->now + sim_range(1200, 2500) * SIM_MS, tail_round, NULL);
}

static void tail_setup(void)
{
    H.retry_corrupt = true;
    sim_at(W->now + 2500 * SIM_MS, tail_round, NULL);
}

static const char *tail_verify(void)
{
    static char why[256];
    if (H.tail_cuts == 0)
        return "no node ever started with its tail cut: the scenario did not bite";
    uint64_t deadline = W->now + 60000 * SIM_MS;
    for (;;) {
        int held = -1;
        uint64_t at = 0;
        for (int i = 0; i < W->n && held < 0; i++)
            if (node_up(&W->nodes[i]) && rl_io_floor(&W->nodes[i].log->io, &at, NULL))
                held = i;
        if (held < 0)
            break;
        if (W->now >= deadline) {
            snprintf(why, sizeof why, "n%d: still behind the floor at entry %" PRIu64
                     " 60 s after the end (its cut entries never came back)", held + 1, at);
            return why;
        }
        world_run(W->now + 100 * SIM_MS, NULL);
    }
    return repair_verify();
}

/* Retention while followers come and go: one is stopped for a few seconds
 * at a time, long enough for the others to trim past its end, so it must
 * restart its log where its peers' begin. */
static void retention_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    if (l >= 0) {
        struct sim_node *f = &W->nodes[(l + 1 + (int)sim_range(0, (uint64_t)W->n - 2)) % W->n];
        if (sim_chance(500))
            crash_and_restart(f, sim_range(2000, 4000));
        else {
            node_stop(f);
            node_restart_after(f, sim_range(2000, 4000) * SIM_MS);
        }
    }
    sim_at(W->now + 5000 * SIM_MS, retention_round, NULL);
}

static void retention_setup(void)
{
    sim_at(W->now + 1500 * SIM_MS, retention_round, NULL);
}

static const char *retention_verify(void)
{
    if (H.trims_ok == 0)
        return "no trim was acknowledged";
    return W->resets == 0 ? "no replica had to restart its log behind a trim point" : NULL;
}

/* A node shows a retention command, and dies before its store has made
 * the trim durable (random seeds 90000946, 90003881, 90006212: it came
 * back with the trimmed records readable, because its snapshot descriptor
 * had recorded the command as shown and nothing redid it). A slow disk
 * keeps trims queued; a node caught between showing a trim and finishing
 * it is killed. The run's retention rule (every node begins where the
 * highest acknowledged trim says) is the check. */
static void trim_crash_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        if (node_up(n) && n->log->trim_offset > rl_store_first_offset(n->log->store)) {
            sim_log("n%d showed a trim to %" PRIu64 " its store has not made durable", i + 1,
                    n->log->trim_offset);
            H.trim_crashes++;
            crash_and_restart(n, sim_range(200, 1500));
            heal_disk(n);
            break;
        }
    }
    /* One node at a time gets a slow disk for a while: its trims queue
     * behind appends while the other two keep committing. */
    struct sim_node *slow = &W->nodes[sim_range(0, (uint64_t)W->n - 1)];
    bool any_slow = false;
    for (int i = 0; i < W->n; i++)
        any_slow |= W->nodes[i].disk_ns > 150000;
    if (!any_slow && node_up(slow) && sim_chance(200)) {
        slow->disk_ns = sim_range(5, 40) * SIM_MS;
        sim_at(W->now + sim_range(300, 1500) * SIM_MS, heal_disk, slow);
    }
    sim_at(W->now + sim_range(20, 200) * SIM_MS, trim_crash_round, NULL);
}

static void trim_crash_setup(void)
{
    sim_at(W->now + 1200 * SIM_MS, trim_crash_round, NULL);
}

static const char *trim_crash_verify(void)
{
    if (H.trims_ok == 0)
        return "no trim was acknowledged";
    return H.trim_crashes == 0 ? "no node died between showing a trim and making it durable" : NULL;
}

/* A leader cut off with appends still being written, then caught up by
 * segment fetch (nemesis seed 394640568: node 3, SIGSTOPped while leading,
 * came back with an uncommitted suffix on its way to disk; its fetch kept
 * that suffix and appended the fetched range after it, and a failed
 * install left libraft and the store at different indexes). Here the
 * leader's disk turns slow, so its last appends are still queued when it
 * hears of the new term; it stays cut off long enough for the others to
 * move past libraft's window, so it must install a snapshot by fetch. */
static void paused_heal(void *arg)
{
    heal_links(NULL);
    sim_at(W->now + sim_range(200, 1500) * SIM_MS, heal_disk, arg);
}

/* The cut comes a moment after the disk turned slow: the followers go on
 * committing the leader's entries meanwhile, so its batcher keeps handing
 * new ones to the slow disk (at the instant of the slowdown the entry in
 * flight may already be written, and the next waits for it to commit:
 * fresh seed 92000034 did not bite that way). */
static void paused_isolate(void *arg)
{
    struct sim_node *n = arg;
    uint64_t cut = (uint64_t)n->pause_cut_ms;
    isolate(n->idx, true);
    sim_log("n%d paused: disk slow and cut off while leading", n->idx + 1);
    sim_at(W->now + cut * SIM_MS, paused_heal, n);
}

static void paused_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    if (l >= 0) {
        struct sim_node *n = &W->nodes[l];
        /* The disk stays slow past the cut, and appends on the leader
         * itself start a write at once: when the node hears of the new
         * term its catch-up surely finds entries still being written. */
        uint64_t cut = sim_range(3500, 6000);
        /* A write takes 0.5..1.5 disk_ns (world.c): even the quickest one
         * started now ends 0.5..1.5 s after the links heal, when the
         * catch-up has begun (fresh seeds 92000017 and 92000034 finished
         * the write before the cut and did not bite). */
        uint64_t lead = sim_range(200, 400);
        n->disk_ns = 2 * (lead + cut + sim_range(500, 1500)) * SIM_MS;
        n->pause_cut_ms = cut;
        for (int k = 0; k < 4; k++)
            fwd_probe(l);
        sim_at(W->now + lead * SIM_MS, paused_isolate, n);
    }
    sim_at(W->now + sim_range(9000, 11000) * SIM_MS, paused_round, NULL);
}

static void paused_setup(void)
{
    sim_at(W->now + 1500 * SIM_MS, paused_round, NULL);
}

static const char *paused_verify(void)
{
    return W->inflight_drops == 0
               ? "no catch-up ever found entries still being written: the scenario did not bite"
               : NULL;
}

/* A member forges what only a leader sends (issue 11): libraft 0.15's
 * crash frame (an AppendEntries at a higher term whose prev_log_index is 0,
 * below the receiver's window: refsDecr on entries it never held), and
 * commit notices past the receiver's log at its term or the next. No node
 * may crash, and the checker's rules must hold. (Entries forged at a term
 * whose leader the receiver does not know are Byzantine: out of scope, see
 * lib/raftio/guard.h.) */
static unsigned char forged_payload[8] = "forged!";

static void forge_round(void *arg)
{
    (void)arg;
    /* Until one frame was forged, also after the faults end: faults can
     * keep a leader and two live members from ever meeting (seed
     * 300000017: five crashes and two failed stops in 13 s). */
    if (!H.faults_on && H.forged > 0)
        return;
    int l = leader_idx();
    if (l >= 0) {
        int f = (l + 1 + (int)sim_range(0, (uint64_t)W->n - 2)) % W->n;
        int m = (f + 1) % W->n == l ? (f + 2) % W->n : (f + 1) % W->n;
        struct sim_node *to = &W->nodes[f], *from = &W->nodes[m];
        if (m != l && m != f && node_up(to) && node_up(from)) {
            uint64_t term = to->log->raft.current_term;
            uint64_t last = raft_last_index(&to->log->raft);
            struct raft_entry e = {.term = term + 1, .type = RAFT_COMMAND,
                                   .buf = {forged_payload, sizeof forged_payload}};
            struct raft_message msg = {.server_id = from->id, .server_address = from->address};
            struct rl_wire_commit notice = {0};
            switch (sim_range(0, 3) & 2) { /* the crash frame or a notice */
            case 0: /* the crash frame */
                msg.type = RAFT_IO_APPEND_ENTRIES;
                msg.append_entries = (struct raft_append_entries){
                    .term = term + 1, .prev_log_index = 0, .prev_log_term = 0,
                    .leader_commit = last + 100, .entries = &e, .n_entries = 1};
                break;
            case 1: /* entries at the receiver's term from a non-leader */
                e.term = term;
                msg.type = RAFT_IO_APPEND_ENTRIES;
                msg.append_entries = (struct raft_append_entries){
                    .term = term, .prev_log_index = last, .prev_log_term = term,
                    .leader_commit = last + 1, .entries = &e, .n_entries = 1};
                break;
            default: /* a commit notice past the log, at this term or the next */
                notice.term = term + sim_range(0, 1);
                notice.index = last + sim_range(1, 50);
                notice.entry_term = term;
                break;
            }
            struct rl_wire_out out;
            int rv = notice.term ? rl_wire_encode_commit(&notice, from->id, &out)
                                 : rl_wire_encode(&msg, from->id, &out);
            if (rv == 0 && world_inject(from, to, &out)) {
                H.forged++;
                sim_log("n%d forges a type %d message to n%d", m + 1,
                        notice.term ? RL_WIRE_COMMIT : (int)msg.type, f + 1);
            }
        }
    }
    sim_at(W->now + sim_range(200, 900) * SIM_MS, forge_round, NULL);
}

static void forge_setup(void)
{
    sim_at(W->now + 1500 * SIM_MS, forge_round, NULL);
    sim_at(W->now + sim_range(300, 1500) * SIM_MS, fault_tick, NULL);
}

static const char *forge_verify(void)
{
    return H.forged == 0 ? "nothing was forged" : NULL;
}

/* Idempotent producers and conditional appends (rlog_append_ex): four
 * producer clients send each record until it is acknowledged (liblog
 * itself retries in-doubt calls for producer_retry_ms, then the client
 * goes to another node), and now and then once more after it was; two
 * conditional clients race to append at the end their node has committed.
 * The leader is killed or cut off every few hundred ms. Checked, besides
 * the history: no record twice in the log; every acknowledgement of a
 * record names the same offset; a conditional append lands exactly where
 * it expected, and a refused one is nowhere; every node that has shown the
 * same entries holds the same producer table. */
static void producers_setup(void)
{
    for (int c = 0; c < 4; c++)
        H.clients[c].producer = true;
    for (int c = 4; c < 6; c++) {
        H.clients[c] = (struct client){.idx = c, .conditional = true,
                                       .target = (int)sim_range(0, (uint64_t)W->n - 1)};
        sim_at(W->now + sim_range(1000, 1500) * SIM_MS, client_tick, &H.clients[c]);
    }
    H.n_clients = 6;
    sim_at(W->now + 1500 * SIM_MS, inflight_round, NULL);
}

static const char *producers_verify(void)
{
    static char why[256];
    for (int i = 0; i < W->n; i++)
        for (int j = i + 1; j < W->n; j++) {
            const struct rlog *a = W->nodes[i].log, *b = W->nodes[j].log;
            if (!a || !b || a->fence.visible_index != b->fence.visible_index)
                continue;
            if (a->dedup.applied_index != b->dedup.applied_index ||
                rl_dedup_digest(&a->dedup) != rl_dedup_digest(&b->dedup)) {
                snprintf(why, sizeof why, "n%d and n%d have shown entries up to %" PRIu64
                         " but their producer tables differ (applied %" PRIu64 " vs %" PRIu64 ")",
                         i + 1, j + 1, a->fence.visible_index, a->dedup.applied_index,
                         b->dedup.applied_index);
                return why;
            }
        }
    if (H.crashes == 0)
        return "no leader was killed";
    if (H.dup_acks == 0)
        return "no retry of a committed producer call was answered: the scenario did not bite";
    if (H.cond_acks == 0 || H.conflicts == 0)
        return "conditional appends never both won and conflicted: the scenario did not bite";
    return NULL;
}

/* ---- forwarding ------------------------------------------------------------------------
 * Appends through any node (followers forward to the leader) while the
 * leader is crashed or cut off, and read barriers on random nodes. Bites by
 * construction: every round that finds a leader sends a probe append to a
 * follower and, in the same instant, kills or isolates the leader, so the
 * probe is in flight across a leader change; the last third of the run is
 * calm, and probes go to followers until one is acknowledged.
 * Checks beyond the common ones: a barrier that returned B on node X has B
 * at or past the end of every append acknowledged before it was called,
 * X's fence at B when it returns, and a read on X right after it of an
 * offset below B succeeds. */

#define FWD_PROBE_CLIENT (MAX_CLIENTS - 1) /* a record identity no client uses */

struct fwd_barrier {
    int node;
    uint64_t floor;      /* end of the appends acknowledged before the call */
};

static int fwd_follower_of(int l)
{
    int start = (int)sim_range(0, (uint64_t)W->n - 1);
    for (int k = 0; k < W->n; k++) {
        int i = (start + k) % W->n;
        if (i != l && node_up(&W->nodes[i]) && !W->nodes[i].closing &&
            node_leader(&W->nodes[i]) == (uint64_t)l + 1)
            return i;
    }
    return -1;
}

static void fwd_probe_cb(void *arg, int status, uint64_t offset)
{
    struct attempt *a = arg;
    a->status = status;
    a->offset = offset;
    if (status == 0) {
        H.acked++;
        FW.probes_acked++;
    } else {
        H.failed++;
    }
}

/* An append on node f (a follower, in the forward scenario), recorded like
 * a client's. */
static bool fwd_probe(int f)
{
    unsigned char rec[64];
    rl_put64(rec, FWD_PROBE_CLIENT);
    rl_put64(rec + 8, FW.probe_seq++);
    for (size_t i = 16; i < sizeof rec; i++)
        rec[i] = (unsigned char)sim_rand();
    struct attempt *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->id = rec_identify(rec, sizeof rec);
    a->status = -1;
    a->via_follower = !node_is_leader(&W->nodes[f]);
    H.att = grow(H.att, &H.cap_att, H.n_att, sizeof *H.att);
    H.att[H.n_att++] = a;
    struct rlog_buf b = {.base = rec, .len = sizeof rec};
    node_enter(&W->nodes[f]);
    int rv = rlog_append_async(W->nodes[f].log, &b, 1, fwd_probe_cb, a);
    node_leave();
    if (rv != 0)
        a->status = rv;
    return rv == 0;
}

static void fwd_round(void *arg)
{
    (void)arg;
    /* Past the calm point only until the first one is done. */
    if (!H.load_on || (!H.faults_on && FW.probes_in_change > 0))
        return;
    int l = leader_idx(), f = l >= 0 ? fwd_follower_of(l) : -1;
    if (f >= 0 && fwd_probe(f)) {
        /* Nothing runs between the two: the probe is in flight when the
         * leader goes. */
        FW.probes_in_change++;
        if (sim_chance(500)) {
            crash_and_restart(&W->nodes[l], sim_range(100, 1500));
        } else {
            isolate(l, sim_chance(700));
            sim_log("n%d isolated with a forwarded append in flight", l + 1);
            sim_at(W->now + sim_range(300, 2000) * SIM_MS, heal_links, NULL);
        }
    }
    if (f < 0)
        sim_at(W->now + 50 * SIM_MS, fwd_round, NULL); /* until a leader and follower show up */
    else
        sim_at(W->now + sim_range(600, 1400) * SIM_MS, fwd_round, NULL);
}

static void fwd_calm(void *arg)
{
    (void)arg;
    H.faults_on = false;
    heal_links(NULL);
    heal_net(NULL);
    sim_log("forward: calm from here");
}

static void fwd_calm_probe(void *arg)
{
    (void)arg;
    if (FW.probes_acked > 0 || !H.load_on)
        return;
    int l = leader_idx(), f = l >= 0 ? fwd_follower_of(l) : -1;
    if (f >= 0)
        fwd_probe(f);
    sim_at(W->now + 300 * SIM_MS, fwd_calm_probe, NULL);
}

static uint64_t fwd_acked_end(void)
{
    uint64_t m = 0;
    for (size_t i = 0; i < H.n_att; i++)
        if (H.att[i]->status == 0 && H.att[i]->offset + 1 > m)
            m = H.att[i]->offset + 1;
    return m;
}

static void fwd_read_done(struct rl_op *op)
{
    int node = (int)(intptr_t)op->done_arg;
    if (op->status == 0) {
        add_obs(node, op->offset, rec_identify(op->buf, op->len));
        FW.barrier_reads++;
    } else if (op->status != RLOG_ECLOSED && op->status != RLOG_EFATAL) {
        fail_check("n%d: read of %" PRIu64 " right after a barrier past it failed: %s: %s",
                   node + 1, op->offset, rlog_errname(op->status), op->errmsg);
    }
    free_op(op);
}

static void fwd_read_ev(void *arg)
{
    struct fwd_barrier *b = arg;
    struct rl_op *r = new_op(RL_OP_READ, b->floor, fwd_read_done, (void *)(intptr_t)b->node);
    if (node_submit(&W->nodes[b->node], r) != 0)
        free_op(r);
    free(b);
}

static void fwd_barrier_done(struct rl_op *op)
{
    struct fwd_barrier *b = op->done_arg;
    struct sim_node *n = &W->nodes[b->node];
    if (op->status == 0) {
        uint64_t B = op->first_offset;
        FW.barriers_ok++;
        if (B < b->floor)
            fail_check("n%d: barrier returned %" PRIu64 ", but appends up to %" PRIu64
                       " were acknowledged before it was called", b->node + 1, B, b->floor);
        else if (node_up(n) && node_visible(n) < B)
            fail_check("n%d: barrier returned %" PRIu64 " with the node's fence at %" PRIu64,
                       b->node + 1, B, node_visible(n));
        else if (B > 0 && node_up(n)) {
            /* Next in line at this instant (the callback runs inside the
             * node's turn, where it must not submit). */
            b->floor = sim_range(0, B - 1);
            sim_at(W->now, fwd_read_ev, b);
            b = NULL;
        }
    } else if (op->status == RLOG_ENOTLEADER || op->status == RLOG_ETIMEOUT ||
               op->status == RLOG_ECLOSED || op->status == RLOG_EFATAL) {
        FW.barriers_failed++;
        FW.barrier_errors[-op->status]++;
        if (W->verbose)
            sim_log("n%d: barrier: %s: %s", b->node + 1, rlog_errname(op->status), op->errmsg);
    } else {
        fail_check("n%d: barrier failed with %s: %s", b->node + 1, rlog_errname(op->status),
                   op->errmsg);
    }
    free(b);
    free_op(op);
}

static void fwd_barrier_tick(void *arg)
{
    (void)arg;
    if (!H.load_on)
        return;
    int t = pick_up_node((int)sim_range(0, (uint64_t)W->n - 1));
    if (t >= 0) {
        struct fwd_barrier *b = malloc(sizeof *b);
        if (!b)
            abort();
        *b = (struct fwd_barrier){.node = t, .floor = fwd_acked_end()};
        struct rl_op *op = new_op(RL_OP_BARRIER, 0, fwd_barrier_done, b);
        if (node_submit(&W->nodes[t], op) != 0) {
            free(b);
            free_op(op);
        }
    }
    sim_at(W->now + sim_range(20, 120) * SIM_MS, fwd_barrier_tick, NULL);
}

static void forward_setup(void)
{
    FW = (struct fwd_state){.any_node = true};
    sim_at(W->now + 1500 * SIM_MS, fwd_round, NULL);
    sim_at(W->now + sim_range(300, 1500) * SIM_MS, fault_tick, NULL); /* drops, repeats, ... */
    sim_at(W->now + 1200 * SIM_MS, fwd_barrier_tick, NULL);
    sim_at(W->now + 10000 * SIM_MS, fwd_calm, NULL);
    sim_at(W->now + 11000 * SIM_MS, fwd_calm_probe, NULL);
}

static const char *forward_verify(void)
{
    static char why[200];
    unsigned long via = 0;
    for (size_t i = 0; i < H.n_att; i++)
        via += H.att[i]->status == 0 && H.att[i]->via_follower;
    sim_log("forward: %lu acknowledged through followers, %lu probes across a leader change, "
            "barriers %lu ok %lu failed, %lu reads after them", via, FW.probes_in_change,
            FW.barriers_ok, FW.barriers_failed, FW.barrier_reads);
    if (via == 0 || FW.probes_in_change == 0 || FW.barriers_ok == 0) {
        snprintf(why, sizeof why, "did not bite: %lu appends acknowledged through followers, "
                 "%lu sent across a leader change, %lu barriers returned", via,
                 FW.probes_in_change, FW.barriers_ok);
        return why;
    }
    return NULL;
}

/* ---- named cursors ----------------------------------------------------------------------
 * rlog_cursor_commit from random nodes (followers forward) while trims run
 * and followers are stopped or crashed for seconds at a time (so they come
 * back behind a trim point and catch up past it), on top of the random
 * faults. Cursors come from a pool of 40 names, and max_cursors is 24, so
 * eviction happens, and a gap lasts until 24 names are committed after it. Checked: every 20 ms and at the end, two nodes that have
 * shown the same entries hold the same cursor table (digest) when both are
 * whole, and a table with a gap (caught up past a trim) holds only what a
 * whole one holds, with the same offsets: it may not know, never be wrong.
 * At the end, every acknowledged commit is in a whole node's table unless
 * a commit of the same name that was not acknowledged before it was
 * submitted set another offset, or 24 other names that were (evicted it). */
#define CUR_NAMES 40
#define CUR_MAX 24

struct cur_attempt {
    int name;
    uint64_t offset, submitted, acked; /* acked: virtual ns, 0 if not (yet) */
    int status;                        /* -1 while unanswered */
    bool via_follower;
};

static struct {
    struct cur_attempt *att;
    size_t n, cap;
    unsigned long acked, via_follower_acked, refused, gaps_seen, compared, gap_compared;
    unsigned long refused_by[32]; /* by -code */
} CU;

static void cur_name(int k, char *buf, size_t len)
{
    snprintf(buf, len, "consumer-%02d", k);
}

static void cur_done(struct rl_op *op)
{
    struct cur_attempt *a = &CU.att[(size_t)(uintptr_t)op->done_arg];
    a->status = op->status;
    if (op->status == 0) {
        a->acked = W->now;
        CU.acked++;
        CU.via_follower_acked += a->via_follower;
    } else if (op->status == RLOG_EPROTO || op->status == RLOG_ENOMEM ||
               op->status == RLOG_ECORRUPT) {
        fail_check("cursor commit failed with %s: %s", rlog_errname(op->status), op->errmsg);
    } else {
        CU.refused++;
        CU.refused_by[-op->status & 31]++;
    }
    free_op(op);
}

static void cur_commit_tick(void *arg)
{
    (void)arg;
    if (!H.load_on)
        return;
    int t = pick_up_node((int)sim_range(0, (uint64_t)W->n - 1));
    if (t >= 0) {
        CU.att = grow(CU.att, &CU.cap, CU.n, sizeof *CU.att);
        uint64_t vis = node_visible(&W->nodes[t]);
        struct cur_attempt *a = &CU.att[CU.n];
        *a = (struct cur_attempt){.name = (int)sim_range(0, CUR_NAMES - 1),
                                  .offset = sim_range(0, vis), .submitted = W->now,
                                  .status = -1,
                                  .via_follower = !node_is_leader(&W->nodes[t])};
        struct rl_op *op = new_op(RL_OP_CURSOR, a->offset, cur_done, (void *)(uintptr_t)CU.n);
        cur_name(a->name, op->cursor_name, sizeof op->cursor_name);
        CU.n++;
        if (node_submit(&W->nodes[t], op) != 0) {
            CU.n--;
            free_op(op);
        }
    }
    sim_at(W->now + sim_range(5, 60) * SIM_MS, cur_commit_tick, NULL);
}

struct cur_cmp {
    const struct rl_cursors *whole;
    const char *bad;
};

static void cur_subset(void *arg, const char *name, uint64_t offset, uint64_t index)
{
    struct cur_cmp *c = arg;
    uint64_t v;
    (void)index;
    if (!c->bad && (rl_cursors_lookup(c->whole, name, strlen(name), &v) != 0 || v != offset))
        c->bad = name;
}

/* Compares every pair of live nodes that have shown the same entries. */
static const char *cur_compare(void)
{
    static char why[300];
    for (int i = 0; i < W->n; i++)
        for (int j = 0; j < W->n; j++) {
            const struct rlog *a = W->nodes[i].log, *b = W->nodes[j].log;
            if (i == j || !a || !b || a->fence.visible_index != b->fence.visible_index ||
                a->cursors.gap_index)
                continue;
            if (!b->cursors.gap_index) {
                CU.compared++;
                if (i < j && (a->cursors.applied_index != b->cursors.applied_index ||
                              rl_cursors_digest(&a->cursors) != rl_cursors_digest(&b->cursors))) {
                    snprintf(why, sizeof why, "n%d and n%d have shown entries up to %" PRIu64
                             " but their cursor tables differ", i + 1, j + 1,
                             a->fence.visible_index);
                    return why;
                }
                continue;
            }
            CU.gap_compared++;
            struct cur_cmp c = {.whole = &a->cursors};
            rl_cursors_each(&b->cursors, cur_subset, &c);
            if (c.bad) {
                snprintf(why, sizeof why, "n%d (caught up past entry %" PRIu64 ") holds cursor %s "
                         "other than whole n%d does, both having shown entries up to %" PRIu64,
                         j + 1, b->cursors.gap_index, c.bad, i + 1, a->fence.visible_index);
                return why;
            }
        }
    return NULL;
}

static void cur_check_tick(void *arg)
{
    (void)arg;
    for (int i = 0; i < W->n; i++)
        CU.gaps_seen += W->nodes[i].log && W->nodes[i].log->cursors.gap_index;
    const char *why = cur_compare();
    if (why)
        fail_check("%s", why);
    if (H.load_on)
        sim_at(W->now + 20 * SIM_MS, cur_check_tick, NULL);
}

static void cursors_setup(void)
{
    memset(&CU, 0, sizeof CU);
    /* The nodes are open already: their tables take the bound now, and
     * restarts take it from the configuration. */
    W->base.max_cursors = CUR_MAX;
    for (int i = 0; i < W->n; i++)
        if (W->nodes[i].log)
            W->nodes[i].log->cursors.max = CUR_MAX;
    sim_at(W->now + 1200 * SIM_MS, cur_commit_tick, NULL);
    sim_at(W->now + 1200 * SIM_MS, cur_check_tick, NULL);
    sim_at(W->now + 1500 * SIM_MS, retention_round, NULL);
    sim_at(W->now + sim_range(300, 1500) * SIM_MS, fault_tick, NULL);
}

/* Whether the final value v of acknowledged attempt k's name is explained:
 * k's own offset, or that of an attempt of the same name that may have
 * been ordered after k (not acknowledged before k was submitted). */
static bool cur_explained(size_t k, bool present, uint64_t v)
{
    const struct cur_attempt *a = &CU.att[k];
    if (present && v == a->offset)
        return true;
    bool others[CUR_NAMES] = {false};
    unsigned n_others = 0;
    for (size_t m = 0; m < CU.n; m++) {
        const struct cur_attempt *b = &CU.att[m];
        bool maybe_in = b->status == 0 || b->status == -1 || b->status == RLOG_EINDOUBT;
        bool before = b->acked && b->acked < a->submitted;
        if (m == k || !maybe_in || before)
            continue;
        if (present && b->name == a->name && b->offset == v)
            return true;
        if (!present && b->name != a->name && !others[b->name]) {
            others[b->name] = true;
            n_others++;
        }
    }
    return !present && n_others >= CUR_MAX;
}

static const char *cursors_verify(void)
{
    static char why[300];
    const char *bad = cur_compare();
    if (bad)
        return bad;
    const struct rl_cursors *whole = NULL;
    int wi = -1;
    for (int i = 0; i < W->n && !whole; i++)
        if (W->nodes[i].log && !W->nodes[i].log->cursors.gap_index)
            whole = &W->nodes[(wi = i)].log->cursors;
    sim_log("cursors: %zu commits, %lu acked (%lu through followers), %lu refused; tables "
            "compared %lu times whole, %lu with a gap; gaps seen %lu", CU.n, CU.acked,
            CU.via_follower_acked, CU.refused, CU.compared, CU.gap_compared, CU.gaps_seen);
    for (int c = 1; c < 32; c++)
        if (CU.refused_by[c])
            sim_log("cursors: %lu refused with %s", CU.refused_by[c], rlog_errname(-c));
    if (!whole)
        return "no node holds a whole cursor table at the end";
    for (size_t k = 0; k < CU.n; k++) {
        if (CU.att[k].status != 0)
            continue;
        char name[32];
        cur_name(CU.att[k].name, name, sizeof name);
        uint64_t v = 0;
        bool present = rl_cursors_lookup(whole, name, strlen(name), &v) == 0;
        if (!cur_explained(k, present, v)) {
            snprintf(why, sizeof why, "cursor %s: commit of offset %" PRIu64 " acknowledged at "
                     "%.3f s, but n%d's final table %s", name, CU.att[k].offset,
                     (double)CU.att[k].acked / 1e9, wi + 1,
                     present ? "holds an offset no later commit set" : "lost it");
            return why;
        }
    }
    if (CU.acked == 0)
        return "no cursor commit was acknowledged: the scenario did not bite";
    /* Trims, and nodes catching up past them (a gap, which may close
     * within one step when the catch-up brings enough names), are the seed
     * line's trims= and resets= counts: most seeds have them; a seed whose
     * faults kept the log short has none, and is no failure. */
    return NULL;
}

/* ---- retention policies and the time index (liblog 0.4) --------------------------------
 * Every node runs with retention_bytes and retention_ms; faults are
 * crashes, leader changes and clock jumps (the wall clock, which stamps
 * batches, also backwards). What readers were shown of each offset (its
 * batch time and record length, the same on every node) is the model:
 * every rlog_offset_for_time answer must equal the model's over the
 * records that node had then ([first, commit)), and every trimmed record
 * must have been outside both policies when the newest wall clock of the
 * run saw it. */
static struct {
    bool on;
    uint64_t *ts1;            /* batch time (us) + 1 of each offset shown; 0: unknown */
    uint32_t *len;
    size_t n, cap;
    struct tprobe {
        int node, status;
        uint64_t t, first, visible, offset;
    } *pr;
    size_t n_pr, cap_pr;
    unsigned pending;         /* probes unanswered */
    unsigned long checked, unknown, jumps;
    int64_t max_skew;         /* the most any node's wall clock ran ahead of W->now */
} TI;

static void note_shown(uint64_t off, uint64_t ts, size_t len)
{
    if (!TI.on)
        return;
    while (off >= TI.cap) {
        size_t cap = TI.cap ? TI.cap * 2 : 4096;
        TI.ts1 = realloc(TI.ts1, cap * sizeof *TI.ts1);
        TI.len = realloc(TI.len, cap * sizeof *TI.len);
        if (!TI.ts1 || !TI.len)
            abort();
        memset(TI.ts1 + TI.cap, 0, (cap - TI.cap) * sizeof *TI.ts1);
        TI.cap = cap;
    }
    if (TI.ts1[off] && (TI.ts1[off] != ts + 1 || TI.len[off] != len))
        fail_check("offset %" PRIu64 " was shown with batch time %" PRIu64 " and %" PRIu64,
                   off, TI.ts1[off] - 1, ts);
    TI.ts1[off] = ts + 1;
    TI.len[off] = (uint32_t)len;
    if (off >= TI.n)
        TI.n = off + 1;
}

static void ti_free(void)
{
    free(TI.ts1);
    free(TI.len);
    free(TI.pr);
    memset(&TI, 0, sizeof TI);
}

static void policy_config(void)
{
    ti_free();
    TI.on = true;
    W->base.retention_bytes = sim_range(16, 48) << 10;
    W->base.retention_ms = sim_range(1000, 3000);
    W->base.retention_check_ms = (unsigned)sim_range(50, 400);
}

static uint64_t wall_us(int64_t skew)
{
    return (SIM_WALL_EPOCH + W->now + (uint64_t)skew) / 1000;
}

static void probe_done(struct rl_op *op)
{
    struct sim_node *n = op->done_arg;
    TI.pending--;
    if (op->status == 0 || op->status == RLOG_ENOTFOUND) {
        TI.pr = grow(TI.pr, &TI.cap_pr, TI.n_pr, sizeof *TI.pr);
        /* The node's bounds now are the ones the answer was computed with:
         * the op completes within the loop turn that served it. */
        TI.pr[TI.n_pr++] = (struct tprobe){.node = n->idx, .status = op->status,
                                           .t = op->offset, .first = node_trimmed(n),
                                           .visible = node_visible(n),
                                           .offset = op->first_offset};
    } else if (op->status != RLOG_ECLOSED && op->status != RLOG_EFATAL &&
               op->status != RLOG_ECORRUPT && op->status != RLOG_EIO) {
        fail_check("offset_for_time(%" PRIu64 ") on n%d: %s: %s", op->offset, n->idx + 1,
                   rlog_errname(op->status), op->errmsg);
    }
    free_op(op);
}

static void probe(struct sim_node *n, uint64_t t)
{
    if (!node_up(n))
        return;
    struct rl_op *op = new_op(RL_OP_TIME, t, probe_done, n);
    if (node_submit(n, op) != 0) {
        free_op(op);
        return;
    }
    TI.pending++;
}

static void probe_tick(void *arg)
{
    (void)arg;
    if (!H.load_on)
        return;
    for (int i = 0; i < W->n; i++)
        probe(&W->nodes[i], wall_us(0) - sim_range(0, 4000) * 1000 + sim_range(0, 1000) * 1000);
    sim_at(W->now + sim_range(100, 500) * SIM_MS, probe_tick, NULL);
}

static void skew_changed(struct sim_node *n)
{
    int64_t s = n->clock_offset_ns + n->wall_offset_ns;
    if (s > TI.max_skew)
        TI.max_skew = s;
}

static void policy_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    int l = leader_idx();
    struct sim_node *n = &W->nodes[sim_range(0, (uint64_t)W->n - 1)];
    switch (sim_range(0, 4)) {
    case 0:
        if (node_up(n))
            crash_and_restart(n, sim_range(300, 2000));
        break;
    case 1:
        if (l >= 0) { /* a leader change */
            node_stop(&W->nodes[l]);
            node_restart_after(&W->nodes[l], sim_range(500, 2000) * SIM_MS);
        }
        break;
    case 2:
        if (l >= 0)
            crash_and_restart(&W->nodes[l], sim_range(300, 2000));
        break;
    case 3: /* the wall clock jumps, either way */
        n->wall_offset_ns += (int64_t)(sim_range(0, 6000) * SIM_MS) - (int64_t)(3000 * SIM_MS);
        skew_changed(n);
        TI.jumps++;
        sim_log("n%" PRIu64 " wall clock jumps to skew %" PRId64 " ms", n->id,
                (n->clock_offset_ns + n->wall_offset_ns) / (int64_t)SIM_MS);
        break;
    case 4: /* both clocks jump ahead (the timers too) */
        n->clock_offset_ns += (int64_t)(sim_range(100, 3000) * SIM_MS);
        skew_changed(n);
        TI.jumps++;
        break;
    }
    sim_at(W->now + sim_range(700, 1500) * SIM_MS, policy_round, NULL);
}

static void policy_setup(void)
{
    sim_at(W->now + 1200 * SIM_MS, policy_round, NULL);
    sim_at(W->now + 1500 * SIM_MS, probe_tick, NULL);
}

/* The answer by definition over records [first, visible); -1 if a batch
 * time there was never shown. */
static int model_time(uint64_t first, uint64_t visible, uint64_t t, uint64_t *off)
{
    uint64_t m = 0;
    for (uint64_t o = first; o < visible; o++) {
        if (o >= TI.n || !TI.ts1[o])
            return -1;
        m = TI.ts1[o] - 1 > m ? TI.ts1[o] - 1 : m;
        if (m >= t) {
            *off = o;
            return 0;
        }
    }
    *off = visible;
    return RLOG_ENOTFOUND;
}

static const char *policy_verify(void)
{
    static char why[400];
    uint64_t first = node_trimmed(&W->nodes[0]), end = node_visible(&W->nodes[0]);
    /* At the end, every node is asked around every batch time it holds. */
    for (int i = 0; i < W->n; i++)
        for (int k = 0; k < 40 && end > first; k++) {
            uint64_t o = first + sim_range(0, end - first - 1);
            uint64_t t = o < TI.n && TI.ts1[o] ? TI.ts1[o] - 1 : 0;
            probe(&W->nodes[i], t + sim_range(0, 2) - 1);
        }
    for (int i = 0; i < W->n; i++) {
        probe(&W->nodes[i], 0);
        probe(&W->nodes[i], wall_us(TI.max_skew) + 1);
    }
    uint64_t deadline = W->now + 10000 * SIM_MS;
    while (TI.pending && W->now < deadline)
        world_run(W->now + 5 * SIM_MS, NULL);
    if (TI.pending)
        return "offset_for_time probes unanswered 10 s after the end";
    for (size_t k = 0; k < TI.n_pr; k++) {
        const struct tprobe *p = &TI.pr[k];
        uint64_t want;
        int rv = model_time(p->first, p->visible, p->t, &want);
        if (rv == -1) {
            TI.unknown++;
            continue;
        }
        TI.checked++;
        if (rv != p->status || want != p->offset) {
            snprintf(why, sizeof why, "n%d: offset_for_time(%" PRIu64 ") over [%" PRIu64 ", %" PRIu64
                     ") gave %s %" PRIu64 "; the batch times shown give %s %" PRIu64, p->node + 1,
                     p->t, p->first, p->visible, rlog_errname(p->status), p->offset,
                     rlog_errname(rv), want);
            return why;
        }
    }
    if (TI.checked < 50)
        return "fewer than 50 offset_for_time answers could be checked";
    if (first == 0 || first >= end) {
        snprintf(why, sizeof why, "the policies left the log at [%" PRIu64 ", %" PRIu64 ")",
                 first, end);
        return why;
    }
    /* Nothing still within a policy was trimmed: each trimmed record is
     * older than retention_ms by the newest wall clock of the run, or the
     * records from it on hold more than retention_bytes. */
    uint64_t bytes = 0, newest = wall_us(TI.max_skew), age = W->base.retention_ms * 1000;
    for (uint64_t o = first; o < end; o++)
        bytes += o < TI.n ? TI.len[o] : 0;
    for (uint64_t o = first; o-- > 0;) {
        if (o >= TI.n || !TI.ts1[o])
            break; /* never shown (a subscriber jumped it): unknown from here down */
        bytes += TI.len[o];
        uint64_t ts = TI.ts1[o] - 1;
        if (bytes <= W->base.retention_bytes && ts + age >= newest) {
            snprintf(why, sizeof why, "offset %" PRIu64 " was trimmed within both policies: "
                     "batch time %" PRIu64 " us, newest wall clock %" PRIu64 " us, retention_ms %"
                     PRIu64 "; %" PRIu64 " bytes from it on, retention_bytes %" PRIu64, o, ts,
                     newest, W->base.retention_ms, bytes, W->base.retention_bytes);
            return why;
        }
    }
    sim_log("time index: %lu answers checked, %lu unknown, %lu clock jumps", TI.checked,
            TI.unknown, TI.jumps);
    return NULL;
}

/* ---- state machines (liblog 0.4) -------------------------------------------------------
 * Every node runs a state machine whose state is a running xxh3 checksum
 * of the records it applied and their count; snapshots every few records
 * (sm_snapshot_every drawn per seed) and at random requests, on top of the
 * random faults (crashes, power loss, disk faults, restarts). Checked as
 * it runs: (a) every node's checksum at an offset is the one first seen
 * there (and, at the end, the final log's); (b) each lifetime of a state
 * applies offsets strictly consecutively from where it began (0 or the
 * restored snapshot's next_offset); (c) a restored state is the state
 * nodes had at that offset. At the end every node has applied the whole
 * log. */

struct sm_state {
    uint64_t incarnation;   /* the node's: a new one starts a fresh state */
    uint64_t next, sum, count;
};

static struct {
    struct sm_state st[SIM_MAX_NODES];
    uint64_t *sum_at;       /* [off]: checksum of records [0, off) */
    bool *have_at;
    size_t cap;
    unsigned long applied, taken, restores, restores_empty;
} SMS;


static struct sm_state *sm_state_of(struct sim_node *n)
{
    struct sm_state *s = &SMS.st[n->idx];
    if (s->incarnation != n->incarnation) /* a restart: a new process's state */
        *s = (struct sm_state){.incarnation = n->incarnation};
    return s;
}

/* Rules (a) and (c): the checksum of records before `off`. */
static void sm_sample(struct sim_node *n, uint64_t off, uint64_t sum, const char *what)
{
    if (off >= SMS.cap) {
        size_t cap = SMS.cap ? SMS.cap : 1024;
        while (cap <= off)
            cap *= 2;
        SMS.sum_at = realloc(SMS.sum_at, cap * sizeof *SMS.sum_at);
        SMS.have_at = realloc(SMS.have_at, cap * sizeof *SMS.have_at);
        memset(SMS.have_at + SMS.cap, 0, (cap - SMS.cap) * sizeof *SMS.have_at);
        SMS.cap = cap;
    }
    if (!SMS.have_at[off]) {
        SMS.have_at[off] = true;
        SMS.sum_at[off] = sum;
    } else if (SMS.sum_at[off] != sum) {
        fail_check("n%" PRIu64 " %s: its state at offset %" PRIu64 " is %016" PRIx64
                   ", another node's was %016" PRIx64, n->id, what, off, sum, SMS.sum_at[off]);
    }
}

static int64_t sm_apply(void *arg, uint64_t offset, const void *rec, size_t len)
{
    struct sim_node *n = arg;
    struct sm_state *s = sm_state_of(n);
    if (offset != s->next) /* rule (b) */
        fail_check("n%" PRIu64 " applied offset %" PRIu64 " after %" PRIu64 " (not the next one)",
                   n->id, offset, s->next);
    s->sum = XXH3_64bits_withSeed(rec, len, s->sum);
    s->count++;
    s->next = offset + 1;
    SMS.applied++;
    sm_sample(n, s->next, s->sum, "applied");
    return (int64_t)s->count;
}

static void *sm_snapshot(void *arg, uint64_t next_offset)
{
    struct sim_node *n = arg;
    struct sm_state *s = sm_state_of(n);
    if (next_offset != s->next)
        fail_check("n%" PRIu64 " asked to capture at %" PRIu64 " but applied up to %" PRIu64,
                   n->id, next_offset, s->next);
    struct sm_state *copy = malloc(sizeof *copy);
    *copy = *s;
    return copy;
}

/* The state, then filler (a function of the checksum) so that snapshots
 * span several chunks now and then. */
static size_t sm_filler(uint64_t sum)
{
    return (size_t)(sum % 16 == 0 ? sum % 600000 : sum % 2000);
}

static int sm_persist(void *arg, void *snap, rlog_sm_writer *w)
{
    (void)arg;
    const struct sm_state *s = snap;
    unsigned char b[24];
    memcpy(b, &s->next, 8);
    memcpy(b + 8, &s->sum, 8);
    memcpy(b + 16, &s->count, 8);
    int rv = rlog_sm_write(w, b, sizeof b);
    size_t filler = sm_filler(s->sum);
    unsigned char f[4096];
    memset(f, (int)(s->sum & 0xff), sizeof f);
    for (size_t done = 0; rv == 0 && done < filler; done += sizeof f)
        rv = rlog_sm_write(w, f, filler - done < sizeof f ? filler - done : sizeof f);
    if (rv == 0)
        SMS.taken++;
    return rv;
}

static void sm_release(void *arg, void *snap)
{
    (void)arg;
    free(snap);
}

static int sm_restore(void *arg, uint64_t next_offset, rlog_sm_reader *r)
{
    struct sim_node *n = arg;
    struct sm_state *s = sm_state_of(n);
    unsigned char b[4096];
    size_t got = 0, g;
    uint64_t total = 0;
    struct sm_state in = {.incarnation = s->incarnation};
    int rv;
    while ((rv = rlog_sm_read(r, b, sizeof b, &g)) == 0 && g > 0) {
        for (size_t i = 0; i < g && got < 24; i++, got++)
            ((unsigned char *)&in.next)[got] = b[i]; /* next, sum, count: contiguous */
        total += g;
    }
    if (rv != 0) {
        fail_check("n%" PRIu64 " restore of %" PRIu64 ": read failed: %s", n->id, next_offset,
                   rlog_errname(rv));
        return -1;
    }
    if (next_offset == 0 && total == 0) {
        *s = (struct sm_state){.incarnation = s->incarnation};
        SMS.restores_empty++;
        return 0;
    }
    if (got < 24 || in.next != next_offset || total != 24 + sm_filler(in.sum)) {
        fail_check("n%" PRIu64 " restore of %" PRIu64 ": a snapshot that verified holds another "
                   "state (next %" PRIu64 ", %" PRIu64 " bytes)", n->id, next_offset, in.next, total);
        return -1;
    }
    *s = in;
    SMS.restores++;
    if (WI.wiped[n->idx]) { /* its own snapshots were deleted: a peer's */
        WI.wiped[n->idx] = false;
        WI.installs++;
        WI.join_installs += n->join;
    }
    sm_sample(n, in.next, in.sum, "restored"); /* rule (c) */
    return 0;
}

static const struct rlog_sm SIM_SM = {.apply = sm_apply, .snapshot = sm_snapshot,
                                      .persist = sm_persist, .release = sm_release,
                                      .restore = sm_restore};

static void sm_configure(void)
{
    free(SMS.sum_at); /* the previous seed's */
    free(SMS.have_at);
    memset(&SMS, 0, sizeof SMS);
    W->base.sm = &SIM_SM;
    W->base.sm_snapshot_every = sim_range(30, 400);
    W->base.sm_snapshots_keep = (unsigned)sim_range(1, 3);
}

static void sm_snap_tick(void *arg)
{
    (void)arg;
    struct sim_node *n = &W->nodes[sim_range(0, (uint64_t)W->n - 1)];
    if (node_up(n))
        rl_sm_request_snapshot(n->log);
    if (H.faults_on)
        sim_at(W->now + sim_range(50, 800) * SIM_MS, sm_snap_tick, NULL);
}

static void sm_setup(void)
{
    /* Faults once the cluster had a chance to take appends: 6 s of load
     * is short enough that faults from the first instant can keep every
     * leader from forming (seed 2377). */
    sim_at(W->now + sim_range(1500, 2500) * SIM_MS, fault_tick, NULL);
    sim_at(W->now + sim_range(100, 800) * SIM_MS, sm_snap_tick, NULL);
}

static const char *sm_verify(void)
{
    static char why[256];
    uint64_t end = node_visible(&W->nodes[0]);
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        struct sm_state *s = sm_state_of(n);
        if (s->next != end) {
            snprintf(why, sizeof why, "n%d applied up to %" PRIu64 ", the log ends at %" PRIu64,
                     i + 1, s->next, end);
            return why;
        }
    }
    /* The final log's checksum, from node 1's store (its iterator serves
     * the loop thread at once). */
    struct sim_node *n = &W->nodes[0];
    /* From the trim point (sm-install trims): the state there, as the
     * nodes that applied or restored it sampled it. */
    uint64_t from = node_trimmed(n);
    if (from > 0 && (from >= SMS.cap || !SMS.have_at[from])) {
        snprintf(why, sizeof why, "no node's state at the trim point %" PRIu64 " was seen", from);
        return why;
    }
    node_enter(n);
    rlog_iter *it;
    uint64_t sum = from ? SMS.sum_at[from] : 0, off = 0;
    int rv = rlog_iter_open(n->log, from, end, &it);
    const void *rec;
    size_t len;
    while (rv == 0 && (rv = rlog_iter_next(it, &rec, &len, &off)) == 0)
        sum = XXH3_64bits_withSeed(rec, len, sum);
    rlog_iter_close(it);
    node_leave();
    if (rv != RLOG_ENOTFOUND) {
        snprintf(why, sizeof why, "reading n1's log back: %s", rlog_errname(rv));
        return why;
    }
    if (end > 0 && (end >= SMS.cap || !SMS.have_at[end] || SMS.sum_at[end] != sum)) {
        snprintf(why, sizeof why, "the nodes' state at %" PRIu64 " is not the final log's checksum", end);
        return why;
    }
    sim_log("sm: applied %lu, snapshots %lu, restores %lu (+%lu empty)", SMS.applied, SMS.taken,
            SMS.restores, SMS.restores_empty);
    if (SMS.taken == 0)
        return "no snapshot was taken: the scenario did not bite";
    return NULL;
}

/* ---- snapshot install (liblog 0.4.1) ---------------------------------------------------
 * The sm scenario's state machine and rules (a)-(c), with retention
 * trimming the log behind the leader's newest snapshot and nodes wiped: a
 * node is crashed, its data directory deleted, and it comes back empty. Its
 * log restarts behind the trim point, so its state machine needs a peer's
 * snapshot: fetched piece by piece over the (lossy, reordering) network,
 * verified, restored (rule (c): the state at that offset everywhere), then
 * applied on consecutively (rule (b)). A wipe happens only when it cannot
 * lose an acknowledged record (every other node holds the leader's whole
 * log), the directory goes at once (before anything could restart the
 * node), and the node stays down three election timeouts, so it cannot
 * vote again in a term it voted in before. Random faults run beside it. At the
 * end every node has applied the whole log, and at least one install
 * restored a peer's snapshot. */


/* The wipe under way: the victim, and what the other nodes must hold
 * before its directory may go. */
static struct wipe_plan {
    int victim, leader;
    uint64_t index, term;   /* the last entry the victim could have helped commit */
    uint64_t deadline;
} WP = {.victim = -1};

/* Whether every node but the victim holds entry WP.index of term WP.term.
 * A wiped node votes for any candidate (its log is empty), so each node
 * that stays must hold everything committed with the victim's help, or it
 * could win an election with the wiped node's vote and overwrite it. */
static bool others_hold(void)
{
    for (int j = 0; j < W->n; j++) {
        if (j == WP.victim)
            continue;
        struct sim_node *o = &W->nodes[j];
        if (!node_up(o))
            return false;
        struct rl_store_entry e;
        if (rl_store_first_index(o->log->store) > WP.index)
            continue; /* trimmed there: committed, so the same everywhere */
        if (rl_store_last_index(o->log->store) < WP.index ||
            rl_store_read(o->log->store, WP.index, &e) != 0)
            return false;
        free((void *)e.buf);
        if (e.term != WP.term)
            return false;
    }
    return true;
}

/* Whether a node other than v holds a snapshot covering the records every
 * other node's log lacks, so that v, wiped, has one to install: retention
 * keeps a quorum of snapshots, which survives losing one disk, not a second
 * before the first came back (seed 500000022 wiped the leader, then the one
 * other holder of a covering snapshot before the first had installed it). */
static bool snapshot_survives(int v)
{
    uint64_t need = 0, have = 0;
    for (int j = 0; j < W->n; j++) {
        struct sim_node *o = &W->nodes[j];
        if (j == v || !o->log || !o->log->sm)
            continue;
        uint64_t first = node_first(o);
        if (first > need)
            need = first;
        pthread_mutex_lock(&o->log->sm->mu);
        uint64_t next = o->log->sm->snap_offset;
        pthread_mutex_unlock(&o->log->sm->mu);
        if (next > have)
            have = next;
    }
    return have >= need;
}

static void wipe_tick(void *arg);

/* Deletes the crashed victim's data directory once it is closed and the
 * others hold everything it could have acknowledged (it can acknowledge
 * nothing more: its connections are cut); gives the wipe up if that does
 * not happen in time (the node then restarts with its data). Nothing
 * restarts it before hold_until either way. */
static void wipe_when_safe(void *arg)
{
    (void)arg;
    struct sim_node *n = &W->nodes[WP.victim];
    if (!n->log && others_hold()) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->dir);
        if (system(cmd) != 0)
            fail_check("could not wipe %s", n->dir);
        WI.wiped[WP.victim] = true;
        WI.wipes++;
        sim_log("n%" PRIu64 " wiped", n->id);
    } else if (W->now < WP.deadline) {
        if (n->hold_until < W->now + 20 * SIM_MS)
            n->hold_until = W->now + 20 * SIM_MS; /* still down while we wait */
        /* No new fault meanwhile: one that takes another node down would
         * keep the wipe waiting until it is given up (seed 600000003 gave
         * up both of its wipes and never installed). Faults go on once
         * the directory is gone, through the victim's install. */
        if (H.quiet_until < W->now + 20 * SIM_MS)
            H.quiet_until = W->now + 20 * SIM_MS;
        sim_at(W->now + 10 * SIM_MS, wipe_when_safe, NULL);
        return;
    } else {
        sim_log("n%" PRIu64 " not wiped: the others never held entry %" PRIu64, n->id, WP.index);
    }
    node_restart_after(n, n->hold_until > W->now ? n->hold_until - W->now : 0);
    WP.victim = -1;
    /* The next one once this one had time to come back and install. */
    sim_at(n->hold_until + sim_range(2000, 4000) * SIM_MS, wipe_tick, NULL);
}

static void wipe_tick(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    if (W->now < H.quiet_until) {
        sim_at(H.quiet_until + sim_range(1, 300) * SIM_MS, wipe_tick, NULL);
        return;
    }
    int l = leader_idx(), v = (int)sim_range(0, (uint64_t)W->n - 1);
    bool ready = l >= 0 && WP.victim < 0;
    for (int i = 0; i < W->n && ready; i++)
        ready = node_up(&W->nodes[i]) && !W->nodes[i].log->fatal;
    ready = ready && snapshot_survives(v);
    struct rl_store_entry e;
    /* What could be acknowledged with the victim's help: anything the
     * leader holds (its own commit index can lag what was committed, just
     * after an election: seed 80530). */
    uint64_t last = ready ? rl_store_last_index(W->nodes[l].log->store) : 0;
    WI.tries++;
    if (!ready || last == 0 || rl_store_read(W->nodes[l].log->store, last, &e) != 0) {
        sim_at(W->now + sim_range(20, 200) * SIM_MS, wipe_tick, NULL);
        return;
    }
    free((void *)e.buf);
    struct sim_node *n = &W->nodes[v];
    uint64_t down = 3ull * W->base.election_timeout_ms + sim_range(0, 1000);
    WP = (struct wipe_plan){.victim = v, .leader = l, .index = last, .term = e.term,
                            .deadline = W->now + 8000 * SIM_MS};
    sim_log("n%" PRIu64 " WIPE (%s; log trimmed to %" PRIu64 "; once the others hold entry %"
            PRIu64 ")", n->id, v == l ? "the leader" : "a follower", node_trimmed(&W->nodes[l]),
            last);
    n->hold_until = W->now + down * SIM_MS;
    node_crash(n, 0);
    wipe_when_safe(NULL);
}

static void install_configure(void)
{
    sm_configure();
    memset(&WI, 0, sizeof WI);
    WP.victim = -1;
    W->base.retention_bytes = sim_range(24, 96) << 10;
    W->base.retention_check_ms = (unsigned)sim_range(50, 400);
    /* Many pieces per snapshot, so drops, resets and resumes meet them. */
    rl_sm_install_piece = (uint32_t)sim_range(1, 64) << 10;
}

static void install_setup(void)
{
    sm_setup();
    sim_at(W->now + sim_range(2500, 4000) * SIM_MS, wipe_tick, NULL);
}

static bool all_applied(void)
{
    uint64_t end = node_visible(&W->nodes[0]);
    for (int i = 0; i < W->n; i++)
        if (sm_state_of(&W->nodes[i])->next != end)
            return false;
    return true;
}

static const char *install_verify(void)
{
    /* An install may still be under way after the logs converged. */
    uint64_t deadline = W->now + 30000 * SIM_MS;
    while (!all_applied() && W->now < deadline)
        world_run(W->now + 10 * SIM_MS, NULL);
    const char *why = sm_verify();
    if (why)
        return why;
    sim_log("install: %lu wipes (%lu tries), %lu installs restored", WI.wipes, WI.tries,
            WI.installs);
    if (WI.installs == 0)
        return WI.wipes ? "no wiped node needed a snapshot: the scenario did not bite"
                        : "no node was wiped: the scenario did not bite";
    return NULL;
}

/* ---- a node added after a trim -------------------------------------------------------
 * sm-install's world with a fourth node that is not in the first
 * configuration: once retention has trimmed the log, the node opens with
 * join = 1 and the leader adds it (as a spare, promoted to voter once caught
 * up); its state machine can only start from a peer's snapshot. The add is
 * retried through leader changes and crashes of either side (a promotion cut
 * short leaves a spare that a second add promotes), then wipes begin as in
 * sm-install. From the add on, nodes open with the four-node peers list, as
 * an operator would restart them: a node whose stored configuration
 * predates the add must still follow the added node when it leads. Checks:
 * those of sm-install on all four nodes (so every node converged), the add
 * took effect, and the new node restored a snapshot. */
static struct {
    int joiner;             /* index of the node being added */
    bool busy, added;
    unsigned tries, refusals, transfers;
    int missed;             /* the node taken down before the add, or -1 */
    uint64_t missed_up;     /* when it reopens */
    uint64_t added_at;      /* when the add was acknowledged */
    uint64_t deadline;      /* join even without a trim after this */
} JN;

static void join_tick(void *arg);
static void join_lead(void *arg);

static void join_done(struct rl_op *op)
{
    JN.busy = false;
    struct sim_node *n = &W->nodes[JN.joiner];
    /* An add reported lost with the leader may still have taken effect: a
     * retry then finds the node a voter, as an operator's would. */
    bool voter = op->status == RLOG_EINVAL && strstr(op->errmsg, "already a voter");
    if (op->status == 0 || voter) {
        JN.added = true;
        JN.added_at = W->now;
        W->boot_n = W->n; /* nodes open with the current membership from now on */
        sim_log("n%" PRIu64 " added", n->id);
        /* Often the new node is made leader while a node that missed the
         * add is still down (join_tick took one down): that node must
         * follow a leader its stored configuration does not name. */
        if (sim_chance(600))
            sim_at(W->now + sim_range(100, 1000) * SIM_MS, join_lead, NULL);
        sim_at(W->now + sim_range(2000, 4000) * SIM_MS, wipe_tick, NULL);
    } else {
        JN.refusals++;
        sim_log("adding n%" PRIu64 ": %s: %s", n->id, rlog_errname(op->status), op->errmsg);
        sim_at(W->now + sim_range(100, 500) * SIM_MS, join_tick, NULL);
    }
    free_op(op);
}

static void join_transfer_done(struct rl_op *op)
{
    sim_log("leadership to the added node: %s", op->status ? rlog_errname(op->status) : "done");
    JN.transfers += op->status == 0;
    free_op(op);
}

/* Whether node i's configuration names the added node. */
static bool knows_joiner(int i)
{
    const struct raft_configuration *c = &W->nodes[i].log->raft.configuration;
    for (unsigned k = 0; k < c->n; k++)
        if (c->servers[k].id == W->nodes[JN.joiner].id)
            return true;
    return false;
}

/* The end of the quiet spell after the added node was made leader: the
 * node that missed the add, back for a while, must follow it (its stored
 * configuration does not name it; the peers list it reopened with does). */
static void join_check(void *arg)
{
    (void)arg;
    struct sim_node *m = &W->nodes[JN.missed];
    /* Only if it reopened after the add, with the current membership: one
     * that came back before it (the add took longer than its spell down)
     * names the added node nowhere, and rightly drops its messages until
     * a member it knows leads (seed 1310021). */
    if (leader_idx() == JN.joiner && node_up(m) && m->log->raft_started && !m->log->fatal &&
        JN.missed_up >= JN.added_at &&
        W->now >= JN.missed_up + 3000 * SIM_MS && !knows_joiner(JN.missed))
        fail_check("n%d, down during the add, did not follow the added node as leader "
                   "(%.1f s since it reopened)", JN.missed + 1,
                   (double)(W->now - JN.missed_up) / 1e9);
}

static void join_lead(void *arg)
{
    (void)arg;
    int l = leader_idx();
    if (l < 0 || l == JN.joiner)
        return;
    if (JN.missed >= 0) { /* faults rest while the missed node comes back */
        H.quiet_until = W->now + 9000 * SIM_MS;
        sim_at(H.quiet_until, join_check, NULL);
    }
    struct rl_op *op = new_op(RL_OP_MEMBER, 0, join_transfer_done, NULL);
    op->member_kind = RL_MEMBER_TRANSFER;
    op->member_id = W->nodes[JN.joiner].id;
    if (node_submit(&W->nodes[l], op) != 0)
        free_op(op);
}

static void join_tick(void *arg)
{
    (void)arg;
    if (JN.added || JN.busy || W->finishing)
        return;
    int l = leader_idx();
    struct sim_node *n = &W->nodes[JN.joiner];
    bool trimmed = l >= 0 && node_trimmed(&W->nodes[l]) > 0;
    if (l < 0 || (!trimmed && W->now < JN.deadline)) {
        sim_at(W->now + sim_range(50, 300) * SIM_MS, join_tick, NULL);
        return;
    }
    if (!n->log && W->now >= n->hold_until)
        node_start(n);
    if (JN.tries == 0 && sim_chance(600)) { /* a follower misses the add */
        int f = (l + 1 + (int)sim_range(0, (uint64_t)W->boot_n - 2)) % W->boot_n;
        sim_log("n%d goes down before the add", f + 1);
        node_stop(&W->nodes[f]);
        uint64_t down = sim_range(2000, 5000) * SIM_MS;
        node_restart_after(&W->nodes[f], down);
        JN.missed = f;
        JN.missed_up = W->now + down; /* about: a close can take a little longer */
    }
    struct rl_op *op = new_op(RL_OP_MEMBER, 0, join_done, NULL);
    op->member_kind = RL_MEMBER_ADD;
    op->member_id = n->id;
    snprintf(op->member_addr, sizeof op->member_addr, "%s", n->address);
    JN.tries++;
    sim_log("adding n%" PRIu64 " through n%d (log trimmed to %" PRIu64 ")", n->id, l + 1,
            node_trimmed(&W->nodes[l]));
    if (node_submit(&W->nodes[l], op) == 0) {
        JN.busy = true;
    } else {
        free_op(op);
        sim_at(W->now + sim_range(50, 300) * SIM_MS, join_tick, NULL);
    }
}

static void join_configure(void)
{
    install_configure();
    memset(&JN, 0, sizeof JN);
    JN.joiner = W->n - 1;
    JN.missed = -1;
    W->boot_n = W->first_n = W->n - 1;
    W->nodes[JN.joiner].join = true;
    WI.wiped[JN.joiner] = true; /* it has no snapshot of its own */
}

static void join_setup(void)
{
    sm_setup();
    JN.deadline = W->now + 12000 * SIM_MS;
    sim_at(W->now + sim_range(2000, 4000) * SIM_MS, join_tick, NULL);
}

static const char *join_verify(void)
{
    if (!JN.added)
        return "the new node was never added";
    const char *why = install_verify();
    if (why)
        return why;
    sim_log("join: %u tries, %u refused, %u transfers to it", JN.tries, JN.refusals, JN.transfers);
    if (WI.join_installs == 0)
        return "the added node never restored a snapshot: the scenario did not bite";
    return NULL;
}

/* Quiet logs (issue 16, lib/node/quiet.c): every node's log goes quiet
 * when idle, with pulses (the simulator's logs have their own connections,
 * without a host's keepalives: rl_quiet_everywhere). Rounds: the clients
 * hold their appends; 3.5 s later, with every node up and every link up,
 * every node must be quiet (rule q1); then, while quiet, nothing, or the
 * leader or a follower crashes or is cut off, each back within 4 s; the
 * clients resume 5 s after the check, and an append must be acknowledged
 * within 5 s of that (rule q2: a quiet log wakes for its work and elects
 * when its leader went). Reads and subscribers run throughout (they must
 * not need to wake it), and the checker's rules hold as everywhere. */
static bool node_quiet(const struct sim_node *n)
{
    return n->log && rl_io_frozen(&n->log->io);
}

static void quiet_round(void *arg);

static void quiet_liveness(void *arg)
{
    (void)arg;
    if (H.faults_on && !QT.idle && H.acked == QT.acked_at_resume)
        fail_check("no append was acknowledged within 5 s after the clients resumed (round %u)",
                   QT.rounds);
}

static void quiet_resume(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    QT.idle = false;
    QT.acked_at_resume = H.acked;
    sim_log("quiet: clients resume");
    sim_at(W->now + 5000 * SIM_MS, quiet_liveness, NULL);
    sim_at(W->now + sim_range(5500, 7000) * SIM_MS, quiet_round, NULL);
}

static void quiet_check(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    bool all = true;
    for (int i = 0; i < W->n; i++) {
        all = all && node_up(&W->nodes[i]);
        for (int j = 0; j < W->n; j++)
            all = all && !W->link_cut[i][j];
    }
    if (all) {
        for (int i = 0; i < W->n; i++)
            if (!node_quiet(&W->nodes[i]))
                fail_check("n%d: idle for 3.5 s with every node up and connected, yet not quiet "
                           "(round %u)", i + 1, QT.rounds);
        QT.quiet_seen++;
    }
    int l = leader_idx();
    int kind = (int)sim_range(0, 4);
    if (l >= 0 && kind > 0) {
        int f = (l + 1 + (int)sim_range(0, (uint64_t)W->n - 2)) % W->n;
        int who = kind == 1 || kind == 2 ? l : f;
        uint64_t back = sim_range(1000, 4000);
        QT.faults++;
        if (kind == 1 || kind == 3) {
            sim_log("quiet: n%d (%s) crashes", who + 1, who == l ? "leader" : "follower");
            crash_and_restart(&W->nodes[who], back);
        } else {
            sim_log("quiet: n%d (%s) cut off", who + 1, who == l ? "leader" : "follower");
            isolate(who, kind == 2 || sim_chance(500));
            sim_at(W->now + back * SIM_MS, heal_links, NULL);
        }
    }
    sim_at(W->now + 5000 * SIM_MS, quiet_resume, NULL);
}

static void quiet_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    QT.idle = true;
    QT.rounds++;
    sim_log("quiet: round %u, clients hold their appends", QT.rounds);
    sim_at(W->now + 3500 * SIM_MS, quiet_check, NULL);
}

static void quiet_setup(void)
{
    net_calm();
    sim_at(W->now + 2000 * SIM_MS, quiet_round, NULL);
}

static const char *quiet_verify(void)
{
    return QT.quiet_seen == 0 ? "the log never went quiet: the scenario did not bite" : NULL;
}

/* Leaders spread over hosts (balance_leaders, lib/node/balance.c): every
 * node prefers the same voter (its name's jump hash over the voters in id
 * order; the log's name varies by seed), and a leader that is not it hands
 * the lead over once it is caught up, at a tick with nothing in flight.
 * Rounds, under the clients' load: the preferred voter or the leader
 * crashes or is cut off for 1 to 4 s; once every node has been up and
 * connected for 12 s again, the leader must be the preferred voter (rule
 * b1). The checker's rules hold as everywhere: a hand-over is a change of
 * leader like any other. */
static struct {
    unsigned rounds, checks;
    uint64_t calm_since; /* every node up and connected since (0: not now) */
} BL;

static const char *const BL_NAMES[] = {"orders", "payments", "sim-a", "sim-b", "events-7"};

static void balance_configure(void)
{
    W->base.balance_leaders = 1;
    W->base.cluster_name = BL_NAMES[sim_range(0, 4)];
}

static bool all_up_and_connected(void)
{
    for (int i = 0; i < W->n; i++) {
        if (!node_up(&W->nodes[i]))
            return false;
        for (int j = 0; j < W->n; j++)
            if (W->link_cut[i][j])
                return false;
    }
    return true;
}

static uint64_t preferred_now(void)
{
    for (int i = 0; i < W->n; i++)
        if (node_up(&W->nodes[i]))
            return rl_preferred_voter(&W->nodes[i].log->raft.configuration,
                                      rl_balance_hash(W->base.cluster_name));
    return 0;
}

static void balance_round(void *arg);

static void balance_watch(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    if (!all_up_and_connected()) {
        BL.calm_since = 0;
    } else if (BL.calm_since == 0) {
        BL.calm_since = W->now;
    } else if (W->now - BL.calm_since >= 12000 * SIM_MS) {
        int l = leader_idx();
        uint64_t want = preferred_now();
        if (l < 0 || W->nodes[l].id != want)
            fail_check("every node up and connected for 12 s, yet the leader is %s%d, not the "
                       "preferred voter n%" PRIu64 " (round %u)",
                       l < 0 ? "none " : "n", l < 0 ? 0 : l + 1, want, BL.rounds);
        BL.checks++;
        sim_at(W->now + sim_range(100, 2000) * SIM_MS, balance_round, NULL);
        return;
    }
    sim_at(W->now + 100 * SIM_MS, balance_watch, NULL);
}

static void balance_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    BL.rounds++;
    BL.calm_since = 0;
    int l = leader_idx();
    int p = (int)preferred_now() - 1;
    int who = sim_chance(500) && p >= 0 ? p : l >= 0 ? l : (int)sim_range(0, (uint64_t)W->n - 1);
    uint64_t back = sim_range(1000, 4000);
    if (sim_chance(500)) {
        sim_log("balance: round %u, n%d (%s) crashes", BL.rounds, who + 1,
                who == p ? "preferred" : "leader");
        crash_and_restart(&W->nodes[who], back);
    } else {
        sim_log("balance: round %u, n%d (%s) cut off", BL.rounds, who + 1,
                who == p ? "preferred" : "leader");
        isolate(who, sim_chance(500));
        sim_at(W->now + back * SIM_MS, heal_links, NULL);
    }
    sim_at(W->now + (back + 50) * SIM_MS, balance_watch, NULL);
}

static void balance_setup(void)
{
    memset(&BL, 0, sizeof BL);
    net_calm();
    sim_at(W->now + 3000 * SIM_MS, balance_watch, NULL); /* the first check: no fault yet */
}

static const char *balance_verify(void)
{
    uint64_t transfers = 0;
    for (int i = 0; i < W->n; i++)
        if (W->nodes[i].log)
            transfers += W->nodes[i].log->balance.transfers;
    sim_log("balance: %u rounds, %u checks, %" PRIu64 " hand-overs by the nodes up at the end",
            BL.rounds, BL.checks, transfers);
    return BL.checks == 0 ? "no round reached its check: the scenario did not bite" : NULL;
}

/* ---- hosts: several logs on every node, over one shared transport -------------- */

/* Every node is a host (world.h's host mode) with the primary log and
 * three others on one loop and one connection per peer host; the random
 * faults, and on top of them a disk fault confined to one log's store now
 * and then. Rules (hostlogs.h): each log's history checked as the
 * primary's is, and a log fails stop only when a fault touched its own
 * store. */
static void confined_fault_tick(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    struct sim_node *n = &W->nodes[sim_range(0, (uint64_t)W->n - 1)];
    if (host_up(n))
        hl_arm_fault(n, (int)sim_range(0, 2), (int)sim_range(0, (uint64_t)W->logs - 1));
    sim_at(W->now + sim_range(800, 2500) * SIM_MS, confined_fault_tick, NULL);
}

static void hosts_setup(void)
{
    hl_strict_primary(true);
    sim_at(W->now + sim_range(300, 1500) * SIM_MS, fault_tick, NULL);
    sim_at(W->now + sim_range(1000, 2000) * SIM_MS, confined_fault_tick, NULL);
}

static const char *hosts_verify(void)
{
    return hl_confined_stops() == 0 ? "no fault confined to one log's store stopped that log: "
                                      "the isolation rule did not bite"
                                    : NULL;
}

/* A deep pipeline (rl_pipeline_depth 8, rl_pipeline_max 12, two records a
 * batch) under 15 clients that append again as soon as they are answered,
 * and the lead taken away in the middle of it: handed over, killed, or cut
 * off, once the leader has PL_DEEP or more entries in flight (or after
 * 600 ms of waiting for that; at least one change must come deep: an
 * election can take seconds, and the load lasts six). Entries
 * in flight then commit under the next leader, are replaced, or end in
 * doubt; the rules (every acknowledged record at its offset, once, in each
 * client's order; one callback per append; each node's callbacks in log
 * order) must hold through all of it. */
#define PL_DEEP 4

static void pl_transfer_done(struct rl_op *op)
{
    PL.transfers += op->status == 0;
    free_op(op);
}

static void pl_change(int l)
{
    unsigned depth = W->nodes[l].log->n_inflight;
    PL.deep_changes += depth >= PL_DEEP;
    PL.due = false;
    switch (sim_range(0, 2)) {
    case 0: {
        sim_log("pipeline: hand the lead over from n%d, %u entries in flight", l + 1, depth);
        struct rl_op *op = new_op(RL_OP_MEMBER, 0, pl_transfer_done, NULL);
        op->member_kind = RL_MEMBER_TRANSFER;
        op->member_id = 0; /* the most up-to-date voter */
        if (node_submit(&W->nodes[l], op) != 0)
            free_op(op);
        break;
    }
    case 1:
        sim_log("pipeline: kill n%d, %u entries in flight", l + 1, depth);
        PL.kills++;
        crash_and_restart(&W->nodes[l], sim_range(100, 1000));
        break;
    default:
        sim_log("pipeline: cut n%d off, %u entries in flight", l + 1, depth);
        PL.cuts++;
        isolate(l, sim_chance(500));
        sim_at(W->now + sim_range(300, 800) * SIM_MS, heal_links, NULL);
        break;
    }
}

/* Every millisecond: how deep the leader's pipeline is, and a change that
 * is due made once it is deep (or after 600 ms of waiting for that), but
 * not before the leader has led for 300 ms (else a leader is changed as
 * soon as elected, its first entries in flight, and the log barely moves). */
static void pl_sample(void *arg)
{
    (void)arg;
    if (!H.load_on)
        return;
    int l = leader_idx();
    if (l != PL.leader) { /* a new leader leads a while before it is changed */
        PL.leader = l;
        PL.lead_since = W->now;
    }
    if (l >= 0 && W->nodes[l].log) {
        const struct rlog *lg = W->nodes[l].log;
        unsigned depth = lg->n_inflight;
        if (depth > PL.max_depth)
            PL.max_depth = depth;
        PL.early_seen |= lg->early_notices > 0;
        /* Once the leader has shown an entry of its own term, a follower
         * shows past it only by the early notice. */
        for (int i = 0; i < W->n && lg->lead_ready_term == lg->raft.current_term; i++)
            if (i != l && node_up(&W->nodes[i]) && W->nodes[i].log &&
                W->nodes[i].log->fence.visible_index > lg->fence.visible_index)
                PL.ahead++;
        uint64_t led = W->now - PL.lead_since, waited = W->now - PL.due_since;
        if (PL.due && H.faults_on && led >= 300 * SIM_MS &&
            (depth >= PL_DEEP || waited > 600 * SIM_MS))
            pl_change(l);
    }
    sim_at(W->now + SIM_MS, pl_sample, NULL);
}

static void pl_round(void *arg)
{
    (void)arg;
    if (!H.faults_on)
        return;
    if (!PL.due) {
        PL.due = true;
        PL.due_since = W->now;
    }
    sim_at(W->now + sim_range(400, 1200) * SIM_MS, pl_round, NULL);
}

static void pipeline_configure(void)
{
    rl_pipeline_depth = 8;
    rl_pipeline_max = 12;
    W->base.batch_max_records = 2;
}

static void pipeline_setup(void)
{
    sim_at(W->now + 1000 * SIM_MS, pl_sample, NULL);
    sim_at(W->now + 1500 * SIM_MS, pl_round, NULL);
}

static const char *pipeline_verify(void)
{
    sim_log("pipeline: deepest %u in flight; %u changes with %u or more in flight "
            "(%u hand-overs done, %u kills, %u cuts); a follower showed entries its "
            "leader had not in %lu samples",
            PL.max_depth, PL.deep_changes, PL_DEEP, PL.transfers, PL.kills, PL.cuts, PL.ahead);
    if (!PL.early_seen)
        return "no leader sent an early commit notice";
    if (PL.ahead == 0)
        return "no follower showed an entry before its leader did: the early commit notice "
               "did not bite";
    if (PL.max_depth < 6)
        return "no leader had 6 entries in flight: the pipeline was never deep";
    if (PL.deep_changes < 1)
        return "no leader change came with 4 or more entries in flight: the scenario did "
               "not bite";
    return NULL;
}

static const struct scenario scenarios[] = {
    {"random", 3, 12000, 2500, random_setup, NULL},
    {"random5", 5, 12000, 2500, random_setup, NULL},
    {"figure8", 5, 15000, 0, fig8_setup, fig8_verify},
    {"election-inflight", 3, 8000, 0, inflight_setup, inflight_verify},
    {"leader-disk-full", 3, 6000, 0, leader_full_setup, leader_full_verify},
    {"follower-fsync-failure", 3, 6000, 0, follower_fsync_setup, follower_fsync_verify},
    {"bitflip", 3, 8000, 0, bitflip_setup, bitflip_verify},
    {"retention", 3, 16000, 400, retention_setup, retention_verify},
    {"paused-leader-catchup", 3, 40000, 0, paused_setup, paused_verify},
    {"member-forgery", 3, 12000, 2500, forge_setup, forge_verify},
    {"trim-crash", 3, 12000, 300, trim_crash_setup, trim_crash_verify},
    {"repair", 3, 12000, 0, repair_setup, repair_verify},
    {"producers", 3, 12000, 0, producers_setup, producers_verify},
    {"forward", 3, 15000, 0, forward_setup, forward_verify},
    {"tail-damage", 3, 15000, 0, tail_setup, tail_verify},
    {"sm", 3, 6000, 0, sm_setup, sm_verify},
    {"retention-policy", 3, 5000, 0, policy_setup, policy_verify},
    {"cursors", 3, 8000, 300, cursors_setup, cursors_verify},
    {"sm-install", 3, 20000, 0, install_setup, install_verify},
    {"sm-join", 4, 20000, 0, join_setup, join_verify},
    {"quiet", 3, 40000, 0, quiet_setup, quiet_verify},
    {"balance", 3, 40000, 0, balance_setup, balance_verify},
    {"hosts", 3, 20000, 0, hosts_setup, hosts_verify},
    {"pipeline", 3, 6000, 0, pipeline_setup, pipeline_verify},
};
#define N_SCENARIOS (sizeof scenarios / sizeof scenarios[0])

/* ---- the end: heal, converge, collect, check ---------------------------------------- */

static void col_seen(void *arg, uint64_t off, struct rec_id id)
{
    struct collect *c = arg;
    (void)off;
    c->recs = grow(c->recs, &c->cap, c->n, sizeof *c->recs);
    c->recs[c->n++] = id;
}

static void col_done(struct rl_op *op)
{
    struct collect *c = op->done_arg;
    c->busy = false;
    if (op->status == RLOG_ECORRUPT && H.retry_corrupt) {
        free_op(op); /* damaged here, under repair: asked again */
        return;
    }
    if (op->status != 0) {
        c->error = op->status;
        c->done = true;
    } else if (!walk_chunk(op->buf, op->len, &c->next, col_seen, c)) {
        fail_check("n%d's log skips offsets after %" PRIu64, c->node + 1, c->next);
        c->done = true;
    } else if (c->next >= c->end) {
        c->done = true;
    }
    free_op(op);
}

static bool converged(void)
{
    uint64_t v = 0;
    bool leader = false;
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        if (!node_up(n) || n->log->fatal)
            return false;
        if (i == 0)
            v = node_visible(n);
        if (node_visible(n) != v)
            return false;
        leader |= node_is_leader(n);
    }
    for (int c = 0; c < H.n_clients; c++)
        if (H.clients[c].cur)
            return false;
    return leader;
}

static bool collected(void)
{
    bool all = true;
    for (int i = 0; i < W->n; i++) {
        struct collect *c = &H.col[i];
        if (c->done)
            continue;
        all = false;
        if (!c->busy) {
            struct rl_op *op = new_op(RL_OP_FETCH, c->next, col_done, c);
            c->busy = node_submit(&W->nodes[i], op) == 0;
            if (!c->busy) {
                free_op(op);
                c->done = true;
                c->error = RLOG_ECLOSED;
            }
        }
    }
    return all;
}

static void heal_all(void)
{
    H.faults_on = false;
    H.load_on = false;
    hl_stop_load();
    memset(W->link_cut, 0, sizeof W->link_cut);
    net_calm();
    for (int i = 0; i < W->n; i++) {
        struct sim_node *n = &W->nodes[i];
        heal_disk(n);
        node_enter(n);
        struct rl_fs_faults none = {0};
        if (!rl_fs_crashed())
            rl_fs_faults_set(&none);
        node_leave();
        if (!n->log) {
            if (W->now >= n->hold_until) /* held down after a wipe: later */
                node_start(n);
        } else if (n->closing || n->log->fatal)
            node_restart_after(n, 10 * SIM_MS);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Records the final log holds are R->recs[offset - base]; below base,
 * retention took them, and what readers were shown there is checked against
 * the acknowledged appends instead. */
static void check_history(uint64_t base, uint64_t end)
{
    /* Every node agrees on every offset it holds; the reference is the
     * longest log read without error. */
    int ref = -1;
    for (int i = 0; i < W->n; i++)
        if (H.col[i].error == 0 && (ref < 0 || H.col[i].n > H.col[ref].n))
            ref = i;
    if (ref < 0) {
        fail_check("no node's log could be read to the end");
        return;
    }
    struct collect *R = &H.col[ref];
    if (R->n != end - base)
        fail_check("n%d holds %zu records from offset %" PRIu64 ", its fence says %" PRIu64,
                   ref + 1, R->n, base, end - base);
    for (int i = 0; i < W->n; i++) {
        struct collect *c = &H.col[i];
        if (c->error || c->n != R->n)
            fail_check("n%d holds %zu records (error %s), n%d holds %zu", i + 1, c->n,
                       c->error ? rlog_errname(c->error) : "none", ref + 1, R->n);
        for (size_t k = 0; k < c->n && k < R->n; k++)
            if (!rec_same(&c->recs[k], &R->recs[k])) {
                fail_check("n%d and n%d differ at offset %" PRIu64, i + 1, ref + 1, base + k);
                break;
            }
    }
    /* Acknowledged appends are where they were acknowledged, intact. */
    struct rec_id *truth = calloc(end ? end : 1, sizeof *truth);
    bool *known = calloc(end ? end : 1, sizeof *known);
    if (!truth || !known)
        abort();
    for (size_t k = 0; k < H.n_att; k++) {
        struct attempt *a = H.att[k];
        if (a->status != 0)
            continue;
        if (a->offset >= end) {
            fail_check("append c%" PRIu64 "/%" PRIu64 " acknowledged at %" PRIu64
                       " but the log ends at %" PRIu64,
                       a->id.client, a->id.seq, a->offset, end);
            continue;
        }
        if (known[a->offset] && !(a->producer && rec_same(&truth[a->offset], &a->id)))
            fail_check("appends c%" PRIu64 "/%" PRIu64 " and c%" PRIu64 "/%" PRIu64
                       " were both acknowledged at offset %" PRIu64,
                       a->id.client, a->id.seq, truth[a->offset].client, truth[a->offset].seq,
                       a->offset);
        if (a->cond && a->offset != a->expect)
            fail_check("conditional append c%" PRIu64 "/%" PRIu64 " expected offset %" PRIu64
                       " and was acknowledged at %" PRIu64,
                       a->id.client, a->id.seq, a->expect, a->offset);
        truth[a->offset] = a->id;
        known[a->offset] = true;
        if (a->offset >= base && !rec_same(&R->recs[a->offset - base], &a->id)) {
            const struct rec_id *got = &R->recs[a->offset - base];
            fail_check("append c%" PRIu64 "/%" PRIu64 " acknowledged at %" PRIu64
                       " but the log holds c%" PRIu64 "/%" PRIu64 " there",
                       a->id.client, a->id.seq, a->offset, got->client, got->seq);
        }
    }
    /* No record twice. */
    uint64_t *keys = malloc((R->n ? R->n : 1) * sizeof *keys);
    for (size_t k = 0; k < R->n; k++)
        keys[k] = R->recs[k].client << 40 | R->recs[k].seq;
    qsort(keys, R->n, sizeof *keys, cmp_u64);
    for (size_t k = 1; k < R->n; k++)
        if (keys[k] == keys[k - 1])
            fail_check("record c%" PRIu64 "/%" PRIu64 " is in the log twice", keys[k] >> 40,
                       (uint64_t)(keys[k] & ((1ull << 40) - 1)));
    /* An append that failed with anything but RLOG_EINDOUBT appended
     * nothing (rlog_append(3)): its record is not in the log. (Unanswered
     * ones, from nodes that crashed, may be either.) Checked on the part
     * of the log that retention kept. */
    for (size_t k = 0; k < H.n_att; k++) {
        const struct attempt *a = H.att[k];
        if (a->status == RLOG_ECONFLICT && a->offset == a->expect)
            fail_check("conditional append c%" PRIu64 "/%" PRIu64 " expected %" PRIu64
                       " and was refused with RLOG_ECONFLICT naming that same offset",
                       a->id.client, a->id.seq, a->expect);
        if (a->status == 0 || a->status == -1 || a->status == RLOG_EINDOUBT || a->producer)
            continue; /* a producer's record may be in the log from another attempt */
        uint64_t key = a->id.client << 40 | a->id.seq;
        if (bsearch(&key, keys, R->n, sizeof *keys, cmp_u64))
            fail_check("append c%" PRIu64 "/%" PRIu64 " failed with %s, which means nothing was "
                       "appended, but the log holds it", a->id.client, a->id.seq,
                       rlog_errname(a->status));
    }
    free(keys);
    /* Nothing shown was ever overwritten or lost. */
    for (size_t k = 0; k < H.n_obs; k++) {
        struct obs *o = &H.obs[k];
        const struct rec_id *want = o->offset >= end      ? NULL
                                    : o->offset >= base   ? &R->recs[o->offset - base]
                                    : known[o->offset]    ? &truth[o->offset]
                                                          : NULL;
        if (o->offset < base && !want)
            continue; /* trimmed, and not an acknowledged append: nothing to compare */
        if (!want || !rec_same(want, &o->id))
            fail_check("n%d showed c%" PRIu64 "/%" PRIu64 " at offset %" PRIu64
                       ", which the final log does not hold there",
                       o->node + 1, o->id.client, o->id.seq, o->offset);
    }
    free(truth);
    free(known);
}

static int run_one(const struct scenario *sc, uint64_t seed, int nodes, uint64_t ms, bool verbose)
{
    struct sim_world w;
    memset(&H, 0, sizeof H);
    memset(&FW, 0, sizeof FW);
    memset(&WI, 0, sizeof WI);
    bool quiet_all = QT.on;
    memset(&QT, 0, sizeof QT);
    QT.on = quiet_all;
    memset(&PL, 0, sizeof PL);
    PL.on = sc->setup == pipeline_setup;
    PL.leader = -1;
    rl_pipeline_depth = 2; /* the library's own, but in the pipeline scenario */
    rl_pipeline_max = 8;
    rl_quiet_everywhere = QT.on || sc->setup == quiet_setup;
    /* host mode: --logs, or the hosts scenario's own four */
    world_init(&w, seed, nodes, sc->setup == hosts_setup && LOGS < 2 ? 4 : LOGS, verbose);
    if (sc->setup == sm_setup)
        sm_configure(); /* state machines: in the config before the nodes open */
    rl_sm_install_piece = RL_WIRE_SNAP_PIECE_MAX;
    if (sc->setup == install_setup)
        install_configure();
    if (sc->setup == join_setup)
        join_configure();
    if (getenv("SIM_TRACE_FROM"))
        w.trace_from = strtoull(getenv("SIM_TRACE_FROM"), NULL, 10) * SIM_MS;
    if (sc->setup == policy_setup)
        policy_config(); /* before the nodes open */
    if (sc->setup == balance_setup)
        balance_configure();
    if (sc->setup == pipeline_setup)
        pipeline_configure();
    for (int i = 0; i < W->boot_n; i++) /* a joining node opens when it is added */
        if (node_start(&W->nodes[i]) != 0) {
            fprintf(stderr, "seed %" PRIu64 ": n%d does not open\n", seed, i + 1);
            world_fini();
            return 1;
        }
    H.load_on = H.faults_on = true;
    if (W->logs > 1)
        hl_start();
    H.n_clients = PL.on ? 15 : strcmp(sc->name, "election-inflight") == 0 ? 8 : 4;
    for (int c = 0; c < H.n_clients; c++) {
        H.clients[c] = (struct client){.idx = c, .target = (int)sim_range(0, (uint64_t)W->n - 1)};
        sim_at(W->now + sim_range(1000, 1500) * SIM_MS, client_tick, &H.clients[c]);
    }
    for (int i = 0; i < W->n; i++) {
        H.subs[i] = (struct sub){.node = i};
        sim_at(W->now + 1000 * SIM_MS, sub_tick, &H.subs[i]);
    }
    sim_at(W->now + 1200 * SIM_MS, reader_tick, NULL);
    if (sc->trim_ms) {
        H.trim_ms_min = sc->trim_ms / 2;
        H.trim_ms_max = sc->trim_ms * 3 / 2;
        sim_at(W->now + sc->trim_ms * SIM_MS, trimmer_tick, NULL);
    }
    sc->setup();
    uint64_t start = W->now;
    world_run(start + ms * SIM_MS, NULL);

    heal_all();
    uint64_t deadline = W->now + 60000 * SIM_MS;
    while (!(converged() && hl_converged()) && W->now < deadline) {
        world_run(W->now + 10 * SIM_MS, NULL);
        heal_all();
    }
    if (!converged() || !hl_converged()) {
        fail_check("the cluster did not converge within 60 s after healing%s",
                   converged() ? " (a log beside the primary)" : "");
        world_dump();
    }
    /* Let subscribers catch up to the end too. */
    world_run(W->now + 500 * SIM_MS, NULL);
    uint64_t end = node_visible(&W->nodes[0]);
    /* Every node applied every trim by now: they agree on where the log
     * begins, and no trim that was acknowledged is missing. */
    uint64_t start_off = 0;
    /* A wiped node caught up from a peer that had been reset past the
     * trim point begins later still (sm-install): it serves from there. */
    bool wiped = WI.wipes > 0 || JN.added;
    for (int i = 0; i < W->n; i++) {
        uint64_t f = wiped ? node_first(&W->nodes[i]) : node_trimmed(&W->nodes[i]);
        if (f > start_off)
            start_off = f;
    }
    for (int i = 0; i < W->n && !H.failure[0]; i++)
        if ((node_trimmed(&W->nodes[i]) != start_off && !wiped) || start_off < H.trim_acked)
            fail_check("n%d's log begins at %" PRIu64 ", another's at %" PRIu64
                       " (highest trim acknowledged: %" PRIu64 ")",
                       i + 1, node_trimmed(&W->nodes[i]), start_off, H.trim_acked);
    for (int i = 0; i < W->n; i++)
        H.col[i] = (struct collect){.node = i, .next = start_off, .end = end,
                                    .done = end <= start_off};
    uint64_t cdeadline = W->now + 60000 * SIM_MS;
    while (!collected() && W->now < cdeadline)
        world_run(W->now + 5 * SIM_MS, NULL);
    while (W->logs > 1 && !hl_collected() && W->now < cdeadline)
        world_run(W->now + 5 * SIM_MS, NULL);
    for (int i = 0; i < W->n; i++)
        if (H.col[i].error == RLOG_ECORRUPT)
            H.corrupt_seen++;
    if (!H.failure[0])
        check_history(start_off, end); /* a damaged node repairs itself */
    if (!H.failure[0] && H.acked == 0)
        fail_check("no append was acknowledged");
    if (!H.failure[0] && W->logs > 1) {
        const char *why = hl_isolation();
        if (!why)
            why = hl_check();
        if (why)
            fail_check("%s", why);
    }
    if (!H.failure[0] && sc->verify) {
        const char *why = sc->verify();
        if (why)
            fail_check("%s", why);
    }
    printf("seed %" PRIu64 " %s: %s acked=%lu failed=%lu log=%" PRIu64 " reads=%lu here=%lu shown=%zu "
           "crashes=%lu fatal=%u truncations=%lu trims=%lu resets=%lu frames=%lu dropped=%lu dup=%lu "
           "dup_acks=%lu conflicts=%lu virtual_s=%.1f\n",
           seed, sc->name, H.failure[0] ? "FAIL" : "ok", H.acked, H.failed, end, H.reads, H.reads_here, H.n_obs,
           H.crashes, W->fatal_stops, W->truncations, H.trims_ok, W->resets, W->frames, W->dropped, W->duplicated,
           H.dup_acks, H.conflicts,
           (double)(W->now - start) / 1e9);
    if (W->logs > 1) {
        char more[200];
        hl_summary(more, sizeof more);
        printf("seed %" PRIu64 " %s:%s\n", seed, sc->name, more);
    }
    if (H.failure[0])
        printf("seed %" PRIu64 " %s: %s\n  replay: build/sim/sim --scenario %s --seed-start %" PRIu64
               " --seeds 1 -v\n",
               seed, sc->name, H.failure, sc->name, seed);
    fflush(stdout);
    int failed = H.failure[0] != 0;
    world_fini();
    hl_free();
    for (size_t k = 0; k < H.n_att; k++)
        free(H.att[k]);
    free(H.att);
    free(H.obs);
    free(CU.att);
    CU.att = NULL;
    for (int i = 0; i < SIM_MAX_NODES; i++)
        free(H.col[i].recs);
    ti_free();
    return failed;
}

int main(int argc, char **argv)
{
    uint64_t seeds = 1, first = 1, ms = 0;
    const char *name = "random";
    int nodes = 0;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seed-start") && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--scenario") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--nodes") && i + 1 < argc)
            nodes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ms") && i + 1 < argc)
            ms = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-v"))
            verbose = true;
        else if (!strcmp(argv[i], "--hold-jobs"))
            rl_hold_jobs_always = true; /* opening as on a shared loop: other schedules */
        else if (!strcmp(argv[i], "--logs") && i + 1 < argc)
            LOGS = atoi(argv[++i]); /* host mode: that many logs per node */
        else if (!strcmp(argv[i], "--quiet"))
            QT.on = true; /* every scenario's idle logs go quiet (with pulses) */
        else {
            fprintf(stderr, "usage: %s [--seeds N] [--seed-start S] [--scenario NAME|all] "
                            "[--nodes 3|5] [--ms VIRTUAL_MS] [--hold-jobs] [--quiet] [--logs K] [-v]\n"
                            "scenarios:",
                    argv[0]);
            for (size_t k = 0; k < N_SCENARIOS; k++)
                fprintf(stderr, " %s", scenarios[k].name);
            fprintf(stderr, "\n");
            return 2;
        }
    }
    if (LOGS < 1 || LOGS > SIM_MAX_LOGS) {
        fprintf(stderr, "--logs must be 1..%d\n", SIM_MAX_LOGS);
        return 2;
    }
    if (nodes && (nodes < 1 || nodes > SIM_MAX_NODES)) {
        fprintf(stderr, "--nodes must be 1..%d\n", SIM_MAX_NODES);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    unsigned long ran = 0, failed = 0;
    bool all = !strcmp(name, "all"), known = all;
    for (uint64_t s = first; s < first + seeds; s++)
        for (size_t k = 0; k < N_SCENARIOS; k++) {
            const struct scenario *sc = &scenarios[k];
            if (!all && strcmp(sc->name, name) != 0)
                continue;
            known = true;
            const char *not_hosts =
                sc->setup == forge_setup
                    ? "a log's forged frames mean nothing on a host's connection; test_hosts "
                      "attacks those"
                : sc->setup == paused_setup
                    ? "its disk, slowed to seconds a write for one log's writes, stays busy "
                      "with three logs' past the 60 s the checker allows to converge"
                    : NULL;
            if (LOGS > 1 && not_hosts) {
                if (s == first)
                    printf("%s: not in host mode (%s)\n", sc->name, not_hosts);
                continue;
            }
            failed += run_one(sc, s, nodes ? nodes : sc->nodes, ms ? ms : sc->ms, verbose);
            ran++;
        }
    if (!known) {
        fprintf(stderr, "unknown scenario %s\n", name);
        return 2;
    }
    printf("%lu of %lu runs clean (seeds %" PRIu64 "..%" PRIu64 ")\n", ran - failed, ran, first,
           first + seeds - 1);
    return failed ? 1 : 0;
}
