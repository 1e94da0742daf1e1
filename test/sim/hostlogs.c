/*
 * hostlogs — the logs beside the primary in host mode (see hostlogs.h).
 *
 * Each such log gets two appenders that follow its leader as the primary's
 * clients do; at the end every replica of every log is read whole and the
 * history checked as the primary's is: the replicas alike, every
 * acknowledged append at its offset, no record twice, and nothing that a
 * refusal said was not appended. The isolation rule is checked as stops
 * happen (world.h's on_fatal).
 */
#include "sim/hostlogs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "common/bytes.h"
#include "common/grow.h"
#include "sim/recid.h"
#include "sim/world.h"

#define HL_CLIENTS 2

struct hl_attempt {
    struct rec_id id;
    int status;              /* -1 while unanswered */
    uint64_t offset;
};

struct hl_client {
    int k, c;
    int target;              /* node index */
    uint64_t seq;
    bool busy;
};

struct hl_collect {
    uint64_t next, end;
    bool busy, done;
    int error;
    struct rec_id *recs;
    size_t n, cap;
};

static struct {
    bool load_on, strict_primary;
    struct hl_client clients[SIM_MAX_LOGS][HL_CLIENTS];
    struct hl_attempt **att[SIM_MAX_LOGS];
    size_t n_att[SIM_MAX_LOGS], cap_att[SIM_MAX_LOGS];
    unsigned long acked, failed;
    unsigned long acked_log[SIM_MAX_LOGS];
    /* isolation: per node, the logs a fault was confined to since its
     * host started (bit k), or the whole disk */
    uint32_t touched[SIM_MAX_NODES];
    bool whole[SIM_MAX_NODES];
    uint64_t touched_inc[SIM_MAX_NODES];
    unsigned long confined_stops, other_stops;
    char isolation[400];
    struct hl_collect col[SIM_MAX_LOGS][SIM_MAX_NODES];
    bool collecting;
    char failure[400];
} HL;

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    p = rl_grow(p, cap, n, elem, 256);
    if (!p)
        abort();
    return p;
}

/* ---- the isolation rule ------------------------------------------------------------ */

static void touched_now(struct sim_node *n)
{
    if (HL.touched_inc[n->idx] != n->host_inc) { /* a new host: a mended disk */
        HL.touched_inc[n->idx] = n->host_inc;
        HL.touched[n->idx] = 0;
        HL.whole[n->idx] = false;
    }
}

void hl_arm_fault(struct sim_node *n, int kind, int k)
{
    if (!host_up(n))
        return; /* down or going down: its next start mends the disk */
    struct rl_fs_faults f = {0};
    if (kind == 0) {
        f.write_fail_at = (unsigned)sim_range(1, 30);
        f.write_errno = EIO;
    } else if (kind == 1) {
        f.sync_fail_at = (unsigned)sim_range(1, 30);
        f.sync_errno = EIO;
    } else {
        f.disk_full = 1;
    }
    if (k == HL_ANY) /* one in four on the whole disk, else on one log's store */
        k = sim_chance(250) ? -1 : (int)sim_range(0, (uint64_t)W->logs - 1);
    touched_now(n);
    if (k < 0)
        HL.whole[n->idx] = true;
    else
        HL.touched[n->idx] |= 1u << k;
    node_arm_fault(n, k, &f);
    sim_log("n%" PRIu64 " disk fault %d armed on %s", n->id, kind,
            k < 0 ? "the whole disk" : k == 0 ? "the primary's store" : n->bg[k].name);
}

static void on_fatal(struct sim_node *n, int k, int code, const char *msg)
{
    touched_now(n);
    bool touched = HL.whole[n->idx] || (HL.touched[n->idx] >> k & 1);
    if (touched) {
        HL.confined_stops += !HL.whole[n->idx];
        return;
    }
    HL.other_stops++;
    if (k == 0 && !HL.strict_primary)
        return; /* scenarios that damage the primary's store by other means */
    if (!HL.isolation[0])
        snprintf(HL.isolation, sizeof HL.isolation,
                 "n%" PRIu64 "'s %s failed stop (%s: %.200s) though no fault touched its store "
                 "(a fault in another log's store on that host, or none, stopped it)",
                 n->id, k == 0 ? "primary log" : n->bg[k].name, rlog_errname(code), msg);
}

void hl_strict_primary(bool on)
{
    HL.strict_primary = on;
}

const char *hl_isolation(void)
{
    return HL.isolation[0] ? HL.isolation : NULL;
}

unsigned long hl_confined_stops(void)
{
    return HL.confined_stops;
}

/* ---- the workload -------------------------------------------------------------------- */

static void client_tick(void *arg);

struct hl_call {
    struct hl_client *c;
    struct hl_attempt *a;
};

static uint64_t leader_of(int k, int i)
{
    struct sim_node *n = &W->nodes[i];
    if (!bg_up(n, k))
        return 0;
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&n->bg[k].log->raft, &id, &addr);
    return id;
}

static void append_cb(void *arg, int status, uint64_t offset)
{
    struct hl_call *call = arg;
    struct hl_client *c = call->c;
    call->a->status = status;
    call->a->offset = offset;
    free(call);
    c->busy = false;
    if (status == 0) {
        HL.acked++;
        HL.acked_log[c->k]++;
        sim_at(W->now + sim_range(0, 20) * SIM_MS, client_tick, c);
        return;
    }
    HL.failed++;
    uint64_t leader = leader_of(c->k, c->target);
    c->target = leader && (int)leader - 1 < W->first_n ? (int)leader - 1
                                                       : (c->target + 1) % W->first_n;
    sim_at(W->now + sim_range(5, 50) * SIM_MS, client_tick, c);
}

static void client_tick(void *arg)
{
    struct hl_client *c = arg;
    if (!HL.load_on || c->busy)
        return;
    struct sim_node *n = &W->nodes[c->target];
    if (!bg_up(n, c->k)) {
        c->target = (c->target + 1) % W->first_n;
        sim_at(W->now + 50 * SIM_MS, client_tick, c);
        return;
    }
    unsigned char rec[300];
    size_t len = (size_t)sim_range(16, sizeof rec);
    rl_put64(rec, (uint64_t)(c->k * 100 + c->c));
    rl_put64(rec + 8, c->seq++);
    for (size_t i = 16; i < len; i++)
        rec[i] = (unsigned char)sim_rand();
    struct hl_attempt *a = calloc(1, sizeof *a);
    struct hl_call *call = calloc(1, sizeof *call);
    if (!a || !call)
        abort();
    a->id = rec_identify(rec, len);
    a->status = -1;
    HL.att[c->k] = grow(HL.att[c->k], &HL.cap_att[c->k], HL.n_att[c->k], sizeof *HL.att[c->k]);
    HL.att[c->k][HL.n_att[c->k]++] = a;
    *call = (struct hl_call){.c = c, .a = a};
    struct rlog_buf b = {.base = rec, .len = len};
    node_enter(n);
    int rv = rlog_append_async(n->bg[c->k].log, &b, 1, append_cb, call);
    node_leave();
    if (rv != 0) {
        free(call);
        a->status = rv;
        HL.failed++;
        c->target = (c->target + 1) % W->first_n;
        sim_at(W->now + 20 * SIM_MS, client_tick, c);
        return;
    }
    c->busy = true;
}

void hl_start(void)
{
    W->on_fatal = on_fatal;
    HL.load_on = true;
    for (int k = 1; k < W->logs; k++)
        for (int c = 0; c < HL_CLIENTS; c++) {
            HL.clients[k][c] = (struct hl_client){
                .k = k, .c = c, .target = (int)sim_range(0, (uint64_t)W->first_n - 1)};
            sim_at(W->now + sim_range(1000, 1500) * SIM_MS, client_tick, &HL.clients[k][c]);
        }
}

void hl_stop_load(void)
{
    HL.load_on = false;
}

/* ---- the end --------------------------------------------------------------------------- */

bool hl_converged(void)
{
    for (int k = 1; k < W->logs; k++) {
        uint64_t v = 0;
        bool leader = false;
        for (int i = 0; i < W->first_n; i++) {
            struct sim_node *n = &W->nodes[i];
            if (host_up(n) && !n->bg[k].log)
                node_bg_start(n, k); /* healed: an operator reopens it */
            if (!bg_up(n, k) || n->bg[k].log->fatal)
                return false;
            uint64_t vis = n->bg[k].log->fence.visible_offset;
            if (i == 0)
                v = vis;
            if (vis != v)
                return false;
            leader |= n->bg[k].log->raft.state == RAFT_LEADER;
        }
        if (!leader)
            return false;
        for (int c = 0; c < HL_CLIENTS; c++)
            if (HL.clients[k][c].busy)
                return false;
    }
    return true;
}

/* Walks a fetch chunk ({u64 base, u32 count, u32 len, payload}...). */
static bool walk(struct hl_collect *col, const unsigned char *chunk, size_t len)
{
    size_t pos = 0;
    while (pos + 16 <= len) {
        uint64_t base = rl_get64(chunk + pos);
        uint32_t count = rl_get32(chunk + pos + 8), elen = rl_get32(chunk + pos + 12);
        const unsigned char *payload = chunk + pos + 16;
        pos += 16 + (size_t)rl_pad8(elen);
        if (base + count <= col->next)
            continue;
        if (base > col->next)
            return false;
        struct rl_batch_view v;
        if (!rl_batch_parse(payload, elen, &v))
            return false;
        for (uint64_t off = col->next; off < base + count; off++) {
            const void *rec;
            size_t rlen;
            rl_batch_record(&v, (uint32_t)(off - base), &rec, &rlen);
            col->recs = grow(col->recs, &col->cap, col->n, sizeof *col->recs);
            col->recs[col->n++] = rec_identify(rec, rlen);
        }
        col->next = base + count;
    }
    return true;
}

static void fetch_done(struct rl_op *op)
{
    struct hl_collect *col = op->done_arg;
    col->busy = false;
    if (op->status != 0) {
        col->error = op->status;
        col->done = true;
    } else if (!walk(col, op->buf, op->len)) {
        col->error = RLOG_ECORRUPT;
        col->done = true;
    } else if (col->next >= col->end) {
        col->done = true;
    }
    free(op->buf);
    free(op);
}

bool hl_collected(void)
{
    if (!HL.collecting) {
        HL.collecting = true;
        for (int k = 1; k < W->logs; k++) {
            uint64_t end = W->nodes[0].bg[k].log ? W->nodes[0].bg[k].log->fence.visible_offset : 0;
            for (int i = 0; i < W->first_n; i++)
                HL.col[k][i] = (struct hl_collect){.end = end, .done = end == 0};
        }
    }
    bool all = true;
    for (int k = 1; k < W->logs; k++)
        for (int i = 0; i < W->first_n; i++) {
            struct hl_collect *col = &HL.col[k][i];
            if (col->done || col->busy) {
                all &= col->done;
                continue;
            }
            all = false;
            struct sim_node *n = &W->nodes[i];
            struct rl_op *op = calloc(1, sizeof *op);
            if (!op)
                abort();
            op->kind = RL_OP_FETCH;
            op->offset = col->next;
            op->done = fetch_done;
            op->done_arg = col;
            int rv = RLOG_ECLOSED;
            if (bg_up(n, k)) {
                node_enter(n);
                rv = rl_submit(n->bg[k].log, op);
                node_leave();
            }
            if (rv != 0) {
                free(op);
                col->error = rv;
                col->done = true;
            } else {
                col->busy = true;
            }
        }
    return all;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    if (HL.failure[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(HL.failure, sizeof HL.failure, fmt, ap);
    va_end(ap);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void check_log(int k)
{
    const char *name = W->nodes[0].bg[k].name;
    struct hl_collect *R = &HL.col[k][0];
    for (int i = 0; i < W->first_n; i++) {
        struct hl_collect *c = &HL.col[k][i];
        if (c->error || c->n != R->n || c->n != c->end) {
            fail("%s: n%d holds %zu records (error %s), n1 %zu, the fence says %" PRIu64, name,
                 i + 1, c->n, c->error ? rlog_errname(c->error) : "none", R->n, c->end);
            return;
        }
        for (size_t j = 0; j < c->n; j++)
            if (!rec_same(&c->recs[j], &R->recs[j])) {
                fail("%s: n%d and n1 differ at offset %zu", name, i + 1, j);
                return;
            }
    }
    uint64_t end = R->n;
    bool *known = calloc(end ? end : 1, sizeof *known);
    if (!known)
        abort();
    for (size_t j = 0; j < HL.n_att[k]; j++) {
        struct hl_attempt *a = HL.att[k][j];
        if (a->status != 0)
            continue;
        if (a->offset < end && known[a->offset]) {
            fail("%s: two appends were acknowledged at offset %" PRIu64 " (c%" PRIu64 "/%" PRIu64
                 " the second)", name, a->offset, a->id.client, a->id.seq);
            break;
        }
        if (a->offset >= end || !rec_same(&R->recs[a->offset], &a->id)) {
            fail("%s: append c%" PRIu64 "/%" PRIu64 " acknowledged at %" PRIu64 " is not there "
                 "(the log holds %" PRIu64 " records)", name, a->id.client, a->id.seq, a->offset,
                 end);
            break;
        }
        known[a->offset] = true;
    }
    free(known);
    /* Each appender waits for one append before the next: its records,
     * acknowledged or in doubt, are in the log in its order. */
    uint64_t last[HL_CLIENTS];
    bool seen[HL_CLIENTS] = {false};
    for (size_t j = 0; j < end; j++) {
        uint64_t c = R->recs[j].client - (uint64_t)k * 100;
        if (c >= HL_CLIENTS) {
            fail("%s: offset %zu holds a record of no appender of this log (c%" PRIu64 ")", name,
                 j, R->recs[j].client);
            break;
        }
        if (seen[c] && R->recs[j].seq <= last[c]) {
            fail("%s: c%" PRIu64 "/%" PRIu64 " at offset %zu after its /%" PRIu64, name,
                 R->recs[j].client, R->recs[j].seq, j, last[c]);
            break;
        }
        seen[c] = true;
        last[c] = R->recs[j].seq;
    }
    uint64_t *keys = malloc((end ? end : 1) * sizeof *keys);
    if (!keys)
        abort();
    for (size_t j = 0; j < end; j++)
        keys[j] = R->recs[j].client << 40 | R->recs[j].seq;
    qsort(keys, end, sizeof *keys, cmp_u64);
    for (size_t j = 1; j < end; j++)
        if (keys[j] == keys[j - 1])
            fail("%s: record c%" PRIu64 "/%" PRIu64 " is in the log twice", name, keys[j] >> 40,
                 (uint64_t)(keys[j] & ((1ull << 40) - 1)));
    for (size_t j = 0; j < HL.n_att[k]; j++) {
        const struct hl_attempt *a = HL.att[k][j];
        if (a->status == 0 || a->status == -1 || a->status == RLOG_EINDOUBT)
            continue;
        uint64_t key = a->id.client << 40 | a->id.seq;
        if (bsearch(&key, keys, end, sizeof *keys, cmp_u64))
            fail("%s: append c%" PRIu64 "/%" PRIu64 " failed with %s, which means nothing was "
                 "appended, but the log holds it", name, a->id.client, a->id.seq,
                 rlog_errname(a->status));
    }
    free(keys);
}

const char *hl_check(void)
{
    for (int k = 1; k < W->logs; k++)
        check_log(k);
    for (int k = 1; k < W->logs && !HL.failure[0]; k++)
        if (HL.acked_log[k] == 0)
            fail("%s: no append was acknowledged", W->nodes[0].bg[k].name);
    return HL.failure[0] ? HL.failure : NULL;
}

void hl_summary(char *buf, size_t len)
{
    size_t records = 0;
    for (int k = 1; k < W->logs; k++)
        records += HL.col[k][0].n;
    snprintf(buf, len, " logs=%d hl_acked=%lu hl_failed=%lu hl_records=%zu confined_stops=%lu",
             W->logs, HL.acked, HL.failed, records, HL.confined_stops);
}

void hl_free(void)
{
    for (int k = 0; k < SIM_MAX_LOGS; k++) {
        for (size_t j = 0; j < HL.n_att[k]; j++)
            free(HL.att[k][j]);
        free(HL.att[k]);
        for (int i = 0; i < SIM_MAX_NODES; i++)
            free(HL.col[k][i].recs);
    }
    memset(&HL, 0, sizeof HL);
}
