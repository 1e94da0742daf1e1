/*
 * The node's loop thread: raft, the commit-visibility fence, the batcher and
 * the operations host threads queue.
 *
 * Appends: host records gather in a batch builder; a batch becomes one raft
 * entry (raft_apply) at once when nothing is in flight, otherwise when the
 * entry in flight commits or the batch is full (bytes or records), with a few
 * batches in flight at most. An append is acknowledged when the fence passes
 * its entry and the entry there still has the term it was proposed in.
 */
#include "node/node.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/identity.h"
#include "raftio/io.h"
#include "raftio/bounds.h"
#include "raftio/snapshot.h"
#include "wire/codec.h"

#define MAX_INFLIGHT 8
/* Entries sent before the previous one commits, unless full. One keeps
 * entries largest; two overlap the leader's and the followers' fsyncs.
 * Measured (bench-append, 3 runs each): W1 p50 435-445 us vs 484-544 us,
 * W2 +8-11% records/s with two. */
#define PIPELINE_DEPTH 2

void rl_log(struct rlog *log, int level, const char *fmt, ...)
{
    char line[600];
    int n = snprintf(line, sizeof line, "liblog[%" PRIu64 "]: ", log->cfg.id);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (log->cfg.log_fn)
        log->cfg.log_fn(log->cfg.log_arg, level, line);
    else if (level >= 2)
        fprintf(stderr, "%s\n", line);
}

/* Gives back op's place among the appends in flight (backpressure). */
void rl_give_back_place(struct rlog *log, struct rl_op *op)
{
    if (!op->counted)
        return;
    op->counted = false;
    pthread_mutex_lock(&log->mu);
    log->appends_in_flight--;
    log->append_bytes_in_flight -= op->bytes;
    pthread_cond_broadcast(&log->room_cv);
    pthread_mutex_unlock(&log->mu);
}

void rl_op_finish(struct rlog *log, struct rl_op *op)
{
    if (op->kind == RL_OP_APPEND && rl_producers_finishing(log, op))
        return; /* to be sent again */
    rl_metrics_answered(log, op);
    if (op->waiter) {
        rl_give_back_place(log, op);
        pthread_mutex_lock(&op->waiter->mu);
        op->waiter->done = true;
        pthread_cond_signal(&op->waiter->cv);
        pthread_mutex_unlock(&op->waiter->mu);
        return; /* the waiting thread owns op */
    }
    if (op->done) {
        rl_give_back_place(log, op);
        op->done(op); /* stepped mode: the submitter owns op */
        return;
    }
    if (op->kind == RL_OP_APPEND && op->cb) {
        if (op->status != 0)
            rl_set_errmsg(op->errmsg); /* rlog_errmsg inside the callback */
        op->cb(op->cb_arg, op->status, op->first_offset);
    }
    /* After the callback: an append holds its place until it is answered,
     * its callback included. */
    rl_give_back_place(log, op);
    free(op->lens);
    free(op->data);
    free(op->buf);
    free(op);
}

static void op_fail(struct rlog *log, struct rl_op *op, int status, const char *msg)
{
    op->status = status;
    snprintf(op->errmsg, sizeof op->errmsg, "%s", msg ? msg : rlog_strerror(status));
    rl_op_finish(log, op);
}

static void not_leader_msg(struct rlog *log, char *buf, size_t len)
{
    raft_id id = 0;
    const char *addr = NULL;
    if (log->raft_started && !log->raft_closing)
        raft_leader(&log->raft, &id, &addr);
    if (id)
        snprintf(buf, len, "not the leader; leader is %" PRIu64 " at %s", (uint64_t)id, addr);
    else
        snprintf(buf, len, "not the leader; no leader is known yet");
}

/* Fails appends that were never proposed: nothing of them is anywhere. */
static void fail_list(struct rlog *log, struct rl_op **head, struct rl_op **tail, int status)
{
    char msg[256];
    if (status == RLOG_ENOTLEADER)
        not_leader_msg(log, msg, sizeof msg);
    else if (status == RLOG_EFATAL)
        snprintf(msg, sizeof msg, "append refused, nothing appended: this node failed stop: %.180s",
                 log->fatal_msg);
    else
        snprintf(msg, sizeof msg, "%s", rlog_strerror(status));
    while (*head) {
        struct rl_op *op = *head;
        *head = op->next;
        op_fail(log, op, status, msg);
    }
    *tail = NULL;
}

/* ---- the fence (node/fence.c decides; here its effects) ---------------- */

static void ifl_free_if_done(struct rl_inflight *f)
{
    if (f->apply_done && f->settled)
        free(f);
}

/* Settles the head of the in-flight list with `status` (0: acknowledged at
 * base offset `offset`). */
static void ifl_settle_head(struct rlog *log, int status, uint64_t offset)
{
    struct rl_inflight *f = log->ifl_head;
    log->ifl_head = f->next;
    if (!log->ifl_head)
        log->ifl_tail = NULL;
    log->n_inflight--;
    char msg[sizeof f->ops->errmsg] = "", leader[160];
    if (status == RLOG_EINDOUBT) {
        /* Proposed, then the outcome became unknowable here: a follower may
         * hold the entry and the next leader commit it. */
        if (log->fatal)
            snprintf(msg, sizeof msg, "in doubt: these records were proposed and may or may not "
                     "be in the log; this node failed stop: %s", log->fatal_msg);
        else if (log->stopping || log->raft_closing)
            snprintf(msg, sizeof msg, "in doubt: the handle closed with these records proposed; "
                     "they may or may not be in the log");
        else {
            not_leader_msg(log, leader, sizeof leader);
            snprintf(msg, sizeof msg, "in doubt: leadership was lost with these records proposed; "
                     "they may or may not be in the log (%s)", leader);
        }
    } else if (status == RLOG_ENOTLEADER) {
        snprintf(msg, sizeof msg, "not appended: a new leader replaced the entry that held "
                 "these records");
    }
    uint64_t off = offset;
    while (f->ops) {
        struct rl_op *op = f->ops;
        f->ops = op->next;
        op->next = NULL;
        op->status = status;
        op->first_offset = off;
        if (status)
            snprintf(op->errmsg, sizeof op->errmsg, "%s", msg[0] ? msg : rlog_strerror(status));
        else if (op->conflict) {
            op->status = RLOG_ECONFLICT;
            snprintf(op->errmsg, sizeof op->errmsg, "the log's next offset was %" PRIu64
                     " when this append was ordered, not the expected %" PRIu64
                     "; nothing appended", off, op->expect_offset);
        } else
            off += op->n;
        rl_op_finish(log, op);
    }
    f->settled = true;
    ifl_free_if_done(f);
}

static void store_trim_done(struct rl_store_req *req, int status)
{
    struct rlog *log = req->data;
    uint64_t trimmed_to = req->arg2; /* the record offset this job made durable */
    free(req);
    if (status == 0 && log->trim_unsynced_index && trimmed_to >= log->trim_unsynced_offset)
        log->trim_unsynced_index = log->trim_unsynced_offset = 0;
    /* The store is fatal now; the backend must stop too, or raft would go
     * on voting and leading over a store that refuses every write. */
    if (status != 0 && status != RLOG_ECANCELED)
        rl_io_fail_stop(&log->io, status, "trim");
}

/* Makes the store drop what retention allows: records before trim_offset,
 * and whole entries only up to the snapshot descriptor, because a restart
 * hands libraft the entries after it. One fully trimmed entry stays before
 * the first readable record: a peer catching up past this point learns
 * the term it must continue from there (lib/raftio/fetch.inc). */
static void store_trim(struct rlog *log)
{
    struct rl_store *st = log->store;
    uint64_t snap = rl_io_snapshot_index(&log->io), off = log->trim_offset, holding;
    log->trim_snap = snap;
    if (!st || log->fatal || rl_store_is_fatal(st))
        return;
    if (off >= rl_store_next_offset(st)) {
        holding = rl_store_last_index(st) + 1;
    } else {
        struct rl_store_entry e;
        int rv = rl_store_read_offset(st, off, &e);
        if (rv != 0) {
            if (rv != RLOG_ETRIMMED)
                rl_log(log, 2, "trim: cannot find record %" PRIu64 ": %s", off,
                       rl_store_errmsg(st));
            return;
        }
        free((void *)e.buf);
        holding = e.index;
    }
    uint64_t idx = holding < snap + 1 ? holding : snap + 1;
    idx = idx > 1 ? idx - 1 : 1;
    struct rl_store_req *req = calloc(1, sizeof *req);
    if (!req)
        return; /* the next snapshot tries again */
    req->data = log;
    if (rl_store_trim_records(st, req, idx, off, store_trim_done) != 0) {
        rl_log(log, 2, "trim: %s", rl_store_errmsg(st));
        free(req);
    }
}

/* Iterators read the cache on their own threads, so they learn the trim
 * point from its published copy. */
void rl_set_trim_offset(struct rlog *log, uint64_t offset)
{
    log->trim_offset = offset;
    pthread_mutex_lock(&log->mu);
    log->pub_trim_offset = offset;
    pthread_mutex_unlock(&log->mu);
}

/* A retention command reached the fence: the same log position on every
 * replica. Readers stop seeing the records at once; the files follow. */
static void apply_trim(struct rlog *log, uint64_t index, uint64_t before)
{
    if (before <= log->trim_offset)
        return;
    if (!log->trim_unsynced_index)
        log->trim_unsynced_index = index;
    log->trim_unsynced_offset = before; /* cleared once the store has it all */
    rl_set_trim_offset(log, before);
    rl_log(log, 1, "trim: records before offset %" PRIu64 " dropped", before);
    store_trim(log);
}

/* An entry the fence passed: settle the append proposed there, if any. */
static void entry_shown(void *arg, const struct rl_fence_entry *e)
{
    struct rlog *log = arg;
    if (e->trim_before)
        apply_trim(log, e->index, e->trim_before);
    /* The table first: a call answered below is in it for its retries. */
    if (rl_dedup_shown(&log->dedup, e->index, e->term) != 0)
        rl_log(log, 3, "out of memory recording the producers of entry %" PRIu64, e->index);
    if (log->raft.state == RAFT_LEADER && e->term == log->raft.current_term)
        log->lead_ready_term = e->term;
    while (log->ifl_head && log->ifl_head->index < e->index)
        ifl_settle_head(log, RLOG_ENOTLEADER, 0); /* its entry was replaced */
    if (log->ifl_head && log->ifl_head->index == e->index)
        ifl_settle_head(log, e->term == log->ifl_head->term ? 0 : RLOG_ENOTLEADER, e->offset);
}

static void fence_published(struct rlog *log)
{
    pthread_mutex_lock(&log->mu);
    log->pub_visible_offset = log->fence.visible_offset;
    pthread_cond_broadcast(&log->visible_cv); /* waiting iterators, subscribers */
    pthread_mutex_unlock(&log->mu);
    rl_fwd_poll(log); /* forwarded calls wait for this node's fence */
}

static void fence_update(struct rlog *log)
{
    /* After a failed stop the fence stays where it was: readers get what
     * was committed then, and no more. */
    if (!log->raft_started || log->raft_closed || log->fence.n == 0 || log->fatal)
        return;
    uint64_t commit = log->raft.commit_index, term = log->raft.current_term;
    uint64_t durable = rl_store_last_index(log->store);
    bool leader = log->raft.state == RAFT_LEADER;
    /* The notice goes right after the append callbacks: on loopback a send
     * also runs the receiver's TCP processing, and ahead of the callbacks it
     * delayed every acknowledgement. A/B, `bench_node run --quick --w2-secs
     * 3`, three rounds: W1 p50 363/358/354 us before the callbacks,
     * 331/314/331 after; W4 p50 406/530/403 vs 409/445/445. (With the old
     * threadpool store it measured the other way: W4 792/742 before vs
     * 859/980 after, W1 even.) */
    uint64_t to = leader ? rl_fence_reach(&log->fence, commit, term, durable) : 0;
    size_t passed = rl_fence_advance(&log->fence, commit, term, durable, entry_shown, log);
    if (to)
        rl_io_send_commit(&log->io, &log->raft.configuration,
                          &(struct rl_wire_commit){.term = term, .index = to, .entry_term = term});
    /* A follower's write that becomes durable after the notice for its entry
     * came: without this it would wait for the next AppendEntries (the next
     * append, or a heartbeat) to learn the commit index again. */
    if (!leader)
        passed += rl_fence_follow(&log->fence, durable, entry_shown, log);
    if (passed > 0)
        fence_published(log);
}

/* The leader's fence passed entry `index` of term `entry_term`: this log's
 * prefix up to it is committed (rl_fence_notice), and shown where durable. */
static void hook_on_commit(void *arg, uint64_t index, uint64_t entry_term)
{
    struct rlog *log = arg;
    if (!log->raft_started || log->raft_closed || log->raft.state == RAFT_LEADER || log->fatal)
        return;
    if (rl_fence_notice(&log->fence, index, entry_term, rl_store_last_index(log->store),
                        entry_shown, log) > 0)
        fence_published(log);
}

/* ---- the batcher ----------------------------------------------------------- */

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct rl_inflight *f = req->data;
    struct rlog *log = f->log;
    (void)result;
    f->apply_done = true;
    if (status != 0 && !f->settled) {
        /* Leadership lost or shutting down: the entry may still commit under
         * another leader, which is what the error tells the host. */
        struct rl_inflight **pp = &log->ifl_head, *prev = NULL;
        while (*pp && *pp != f) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = f->next;
            if (log->ifl_tail == f)
                log->ifl_tail = prev;
            f->next = log->ifl_head;
            log->ifl_head = f;
            if (!log->ifl_tail)
                log->ifl_tail = f;
            ifl_settle_head(log, RLOG_EINDOUBT, 0);
            return; /* settle freed it (apply_done is set) */
        }
    }
    ifl_free_if_done(f);
}

static bool op_fits(struct rlog *log, const struct rl_op *op)
{
    if (log->bb.count == 0 && log->bb.nruns == 0)
        return true;
    if (log->bb.count + op->n > log->cfg.batch_max_records)
        return false;
    size_t size = log->bb.len ? log->bb.len : RL_BATCH_HDR;
    size_t runs = rl_batch_runs_bytes(log->bb.nruns + (op->producer_id != 0));
    return size + op->bytes + 4u * (log->bb.count + op->n) + 16 + runs <= log->cfg.batch_max_bytes;
}

/* Where the next record of the batch being built would go: after this
 * leader's whole log (the fence tracks every stored entry, in-flight ones
 * not yet stored add theirs) and the batch so far. */
static uint64_t next_offset_here(struct rlog *log)
{
    const struct rl_fence *fc = &log->fence;
    uint64_t end = fc->n ? fc->tail[fc->n - 1].offset + fc->tail[fc->n - 1].records
                         : fc->visible_offset;
    uint64_t last = fc->n ? fc->tail[fc->n - 1].index : fc->visible_index;
    for (const struct rl_inflight *f = log->ifl_head; f; f = f->next)
        if (f->index > last)
            end += f->records;
    return end + log->bb.count;
}

/* Puts op's records (none if it conflicts) into the batch being built. */
static int add_to_batch(struct rlog *log, struct rl_op *op)
{
    if (op->conflict)
        return 0;
    size_t pos = 0;
    for (unsigned i = 0; i < op->n; i++) {
        if (rl_batch_add(&log->bb, op->data + pos, op->lens[i]) != 0)
            return RLOG_ENOMEM;
        pos += op->lens[i];
    }
    if (op->producer_id &&
        (rl_batch_add_run(&log->bb, op->producer_id, op->seq, op->n) != 0 ||
         rl_producers_added(log, op) != 0))
        return RLOG_ENOMEM;
    return 0;
}

static void fail_ops(struct rlog *log, struct rl_op *ops, int status, const char *msg)
{
    for (struct rl_op *op = ops, *next; op; op = next) {
        next = op->next;
        op_fail(log, op, status, msg);
    }
}

/* Proposes one COMMAND entry (buf, raft_malloc'd, is given away); ops are
 * answered when the fence passes it. */
static void propose(struct rlog *log, void *buf, size_t len, struct rl_op *ops, uint64_t records)
{
    struct rl_inflight *f = calloc(1, sizeof *f);
    if (!f) {
        raft_free(buf);
        fail_ops(log, ops, RLOG_ENOMEM, "out of memory proposing an entry");
        return;
    }
    f->log = log;
    f->ops = ops;
    f->req.data = f;
    struct raft_buffer rb = {.base = buf, .len = len};
    int rv = raft_apply(&log->raft, &f->req, &rb, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf);
        int st = rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST ? RLOG_ENOTLEADER : RLOG_EIO;
        char msg[256];
        if (st == RLOG_ENOTLEADER)
            not_leader_msg(log, msg, sizeof msg);
        else
            snprintf(msg, sizeof msg, "raft_apply: %s", raft_errmsg(&log->raft));
        fail_ops(log, ops, st, msg);
        free(f);
        return;
    }
    f->index = raft_last_index(&log->raft);
    f->term = log->raft.current_term;
    f->records = records;
    rl_metrics_proposed(log, records);
    if (log->ifl_tail)
        log->ifl_tail->next = f;
    else
        log->ifl_head = f;
    log->ifl_tail = f;
    log->n_inflight++;
}

static void flush(struct rlog *log)
{
    size_t len = 0;
    uint64_t records = log->bb.count;
    void *buf = rl_batch_seal(&log->bb, uv_hrtime() / 1000, &len);
    struct rl_op *ops = log->open_head;
    log->open_head = log->open_tail = NULL;
    if (!buf) {
        fail_ops(log, ops, RLOG_ENOMEM, "out of memory building a batch");
        return;
    }
    propose(log, buf, len, ops, records);
}

static void hand_over(struct rlog *log, struct rl_op **head, struct rl_op **tail)
{
    struct rl_op *op = *head;
    *head = *tail = NULL;
    while (op) {
        struct rl_op *next = op->next;
        op->next = NULL;
        rl_fwd_append(log, op);
        op = next;
    }
}

void rl_node_pump(struct rlog *log)
{
    if (log->fatal) {
        fail_list(log, &log->pend_head, &log->pend_tail, RLOG_EFATAL);
        fail_list(log, &log->open_head, &log->open_tail, RLOG_EFATAL);
        return;
    }
    if (log->raft_started && log->raft.state != RAFT_LEADER && !log->stopping &&
        !log->raft_closing) {
        /* Never proposed here: the leader orders them (node/forward.c). */
        hand_over(log, &log->pend_head, &log->pend_tail);
        if (log->open_head) {
            rl_batch_builder_free(&log->bb);
            rl_batch_builder_init(&log->bb);
            hand_over(log, &log->open_head, &log->open_tail);
        }
        return;
    }
    if (!log->raft_started || log->raft.state != RAFT_LEADER || log->stopping) {
        int st = log->stopping ? RLOG_ECLOSED : RLOG_ENOTLEADER;
        fail_list(log, &log->pend_head, &log->pend_tail, st);
        if (log->open_head) {
            rl_batch_builder_free(&log->bb);
            rl_batch_builder_init(&log->bb);
            fail_list(log, &log->open_head, &log->open_tail, st);
        }
        return;
    }
    while (log->pend_head) {
        struct rl_op *op = log->pend_head;
        if (!op_fits(log, op)) {
            if (log->n_inflight >= MAX_INFLIGHT)
                break;
            flush(log);
            continue;
        }
        /* Only a conditional call needs where the log ends (a walk of the
         * entries in flight): not every append. */
        uint64_t end = op->expect ? next_offset_here(log) : 0;
        log->pend_head = op->next;
        if (!log->pend_head)
            log->pend_tail = NULL;
        op->next = NULL;
        enum rl_judgement j = rl_producers_judge(log, op, end); /* may answer op */
        if (j == RL_JUDGE_WAIT) {
            /* Until this leader's own term is shown; the rest wait too, in order. */
            op->next = log->pend_head;
            log->pend_head = op;
            if (!log->pend_tail)
                log->pend_tail = op;
            break;
        }
        if (j != RL_JUDGE_ADD)
            continue;
        if (add_to_batch(log, op) != 0) {
            /* The batch may hold part of op: it cannot be proposed. */
            rl_batch_builder_free(&log->bb);
            rl_batch_builder_init(&log->bb);
            op_fail(log, op, RLOG_ENOMEM, "out of memory building a batch");
            fail_list(log, &log->open_head, &log->open_tail, RLOG_ENOMEM);
            continue;
        }
        if (log->open_tail)
            log->open_tail->next = op;
        else
            log->open_head = op;
        log->open_tail = op;
    }
    if (log->open_head && log->n_inflight < PIPELINE_DEPTH)
        flush(log);
}

/* ---- events ------------------------------------------------------------------ */

static void publish(struct rlog *log)
{
    raft_id id = 0;
    const char *addr = NULL;
    bool taking_part = log->raft_started && !log->raft_closed && !log->fatal;
    if (taking_part)
        raft_leader(&log->raft, &id, &addr);
    pthread_mutex_lock(&log->mu);
    log->pub_role = taking_part ? log->raft.state : RAFT_UNAVAILABLE;
    log->pub_leader_id = id;
    snprintf(log->pub_leader_addr, sizeof log->pub_leader_addr, "%s", addr ? addr : "");
    log->pub_fatal = log->fatal;
    snprintf(log->pub_fatal_msg, sizeof log->pub_fatal_msg, "%s", log->fatal_msg);
    pthread_mutex_unlock(&log->mu);
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct rlog *log = req->data;
    log->barrier_pending = false;
    (void)status;
}

static void hook_after_event(void *arg)
{
    struct rlog *log = arg;
    if (!log->raft_started || log->raft_closed || log->fatal)
        return; /* failed: nothing to re-evaluate (settle_fail_stop) */
    rl_metrics_raft_event(log);
    int role = log->raft.state;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&log->raft, &leader, &addr);
    if (role != log->last_role || leader != log->last_leader) {
        if (role == RAFT_LEADER && log->last_role != RAFT_LEADER) {
            rl_log(log, 1, "became leader in term %" PRIu64, (uint64_t)log->raft.current_term);
            /* An entry of our own term, so the fence can move (guard 1). */
            log->barrier.data = log;
            if (!log->barrier_pending &&
                raft_barrier(&log->raft, &log->barrier, barrier_cb) == 0)
                log->barrier_pending = true;
        } else if (role != RAFT_LEADER && log->last_role == RAFT_LEADER) {
            rl_log(log, 1, "lost leadership in term %" PRIu64, (uint64_t)log->raft.current_term);
        }
        log->last_role = role;
        log->last_leader = leader;
        publish(log);
    }
    fence_update(log);
    if (log->trim_offset && rl_io_snapshot_index(&log->io) != log->trim_snap)
        store_trim(log); /* a newer snapshot lets the store drop more */
    rl_repair_poll(log);
    rl_fwd_poll(log); /* a leader change ends forwarded calls sent to the old one */
    rl_node_pump(log);
}

/* The offset a retention command drops records before, or 0. */
static uint64_t trim_of(const void *buf, uint32_t len, uint32_t records)
{
    struct rl_batch_view v;
    if (records != 0 || !buf || !rl_batch_parse_layout(buf, len, &v))
        return 0;
    return v.trim_before;
}

static void hook_on_append(void *arg, uint64_t index, uint64_t term, uint64_t offset,
                           uint32_t records, const void *buf, uint32_t len)
{
    struct rlog *log = arg;
    struct rl_fence_entry e = {index, term, offset, records, trim_of(buf, len, records)};
    if (rl_fence_push(&log->fence, &e) != 0)
        rl_log(log, 3, "out of memory tracking entry %" PRIu64, index);
    if (rl_dedup_note(&log->dedup, index, term, offset, buf, len) != 0)
        rl_log(log, 3, "out of memory noting the producers of entry %" PRIu64, index);
    rl_cache_put(&log->cache, index, offset, records, buf, len);
}

static void hook_on_truncate(void *arg, uint64_t index)
{
    struct rlog *log = arg;
    /* Worth a line: a new leader overwrote entries this node held. */
    rl_log(log, 1, "truncating the log from index %" PRIu64 " (not committed; replaced by the leader's)",
           index);
    rl_fence_truncate(&log->fence, index);
    rl_dedup_truncate(&log->dedup, index);
    rl_cache_truncate(&log->cache, index);
}

static void hook_on_reset(void *arg, uint64_t index, uint64_t offset)
{
    struct rlog *log = arg;
    /* Everything before is committed (a peer trimmed it): the fence starts
     * there, and nothing of the old log stays visible or cached. */
    rl_fence_free(&log->fence);
    rl_fence_init(&log->fence, index - 1, offset);
    rl_cache_truncate(&log->cache, 0);
    rl_dedup_truncate(&log->dedup, 0);
    if (rl_dedup_reset(&log->dedup, index - 1))
        rl_log(log, 2, "producer table: the log was reset to start after entry %" PRIu64
               " (a peer had trimmed the entries this node lacked); producers that appended "
               "only before it are not known to this node", index - 1);
    if (offset > log->trim_offset)
        rl_set_trim_offset(log, offset);
    if (log->raft_started)
        fence_published(log);
}

/* The backend failed stop (lib/raftio: it drops every later message and
 * tick, so raft stays in memory but hears nothing and starts nothing more,
 * and nothing it does can ask the store to write). From here the node
 * refuses work and serves what was committed. The rest of the stop runs
 * from the loop's next turn (settle_fail_stop), outside whatever libraft or
 * store call is reporting this. */
static void hook_on_fatal(void *arg, int code, const char *msg)
{
    struct rlog *log = arg;
    /* The store cancels the appends still queued when it closes, and the
     * backend reports those like failures; closing is no storage error. */
    if (log->fatal || (code == RLOG_ECANCELED && log->raft_closing))
        return;
    log->fatal = code ? code : RLOG_EIO;
    snprintf(log->fatal_msg, sizeof log->fatal_msg, "storage failure: %s",
             msg && msg[0] ? msg : rlog_strerror(log->fatal));
    log->stop_term = log->raft_started ? log->raft.current_term : rl_store_term(log->store);
    publish(log);
    pthread_mutex_lock(&log->mu);
    pthread_cond_broadcast(&log->visible_cv); /* waiters past the commit point learn it */
    pthread_mutex_unlock(&log->mu);
    if (log->raft_started)
        uv_async_send(&log->wake); /* else start() sends it once wake exists */
}

/* What a failed stop leaves to settle, once: appends never proposed are
 * refused (fail_list), those proposed are in doubt (a follower may hold
 * them and the next leader commit them), a membership change in flight is
 * abandoned the same way, and the host hears why (cfg.on_fatal). */
static void settle_fail_stop(struct rlog *log)
{
    if (!log->fatal || log->stop_settled)
        return;
    log->stop_settled = true;
    fail_list(log, &log->pend_head, &log->pend_tail, RLOG_EFATAL);
    fail_list(log, &log->open_head, &log->open_tail, RLOG_EFATAL);
    while (log->ifl_head)
        ifl_settle_head(log, RLOG_EINDOUBT, 0);
    if (log->member_op) {
        struct rl_op *op = log->member_op;
        log->member_op = NULL;
        char msg[256];
        snprintf(msg, sizeof msg, "%.180s; the change may or may not take effect", log->fatal_msg);
        op_fail(log, op, RLOG_EFATAL, msg);
    }
    if (log->cfg.on_fatal)
        log->cfg.on_fatal(log->cfg.on_fatal_arg, log->fatal, log->fatal_msg);
}

static uint64_t hook_committed_index(void *arg)
{
    struct rlog *log = arg;
    uint64_t c = log->fence.visible_index;
    if (log->raft_started && !log->raft_closing && log->raft.commit_index > c)
        c = log->raft.commit_index;
    return c;
}

/* What a snapshot descriptor may record as shown: never a retention
 * command the store has not made durable yet (see trim_unsynced_index). */
static uint64_t hook_visible_index(void *arg)
{
    struct rlog *log = arg;
    uint64_t v = log->fence.visible_index;
    if (log->trim_unsynced_index && v >= log->trim_unsynced_index)
        v = log->trim_unsynced_index - 1;
    return v;
}

static int hook_peer_address(void *arg, uint64_t id, char *buf, size_t len)
{
    struct rlog *log = arg;
    if (log->raft_started) {
        const struct raft_configuration *c = &log->raft.configuration;
        for (unsigned i = 0; i < c->n; i++)
            if (c->servers[i].id == id) {
                snprintf(buf, len, "%s", c->servers[i].address);
                return 0;
            }
    }
    for (unsigned i = 0; i < log->cfg.n_peers; i++) /* before raft has started */
        if (log->peers[i].id == id) {
            snprintf(buf, len, "%s", log->peers[i].address);
            return 0;
        }
    return -1;
}

static uint64_t hook_leader_id(void *arg)
{
    struct rlog *log = arg;
    raft_id id = 0;
    const char *addr = NULL;
    if (log->raft_started)
        raft_leader(&log->raft, &id, &addr);
    return id;
}

static bool hook_is_leader(void *arg)
{
    struct rlog *log = arg;
    return log->raft_started && log->raft.state == RAFT_LEADER;
}

static void hook_log(void *arg, int level, const char *line)
{
    rl_log(arg, level, "%s", line);
}

/* ---- operations ------------------------------------------------------------------- */

/* The entry holding record `offset` (a copy: from the cache, or the store),
 * checked to be a valid batch. 0 or an error with msg filled. */
static int entry_at(struct rlog *log, uint64_t offset, struct rl_store_entry *e,
                    struct rl_batch_view *v, char *msg, size_t msglen)
{
    const struct rl_cache_entry *ce = rl_cache_find(&log->cache, offset);
    if (ce) {
        void *copy = malloc(ce->len ? ce->len : 1);
        if (!copy)
            return RLOG_ENOMEM;
        memcpy(copy, ce->data, ce->len);
        *e = (struct rl_store_entry){.index = ce->index, .offset = ce->offset,
                                     .records = ce->records, .buf = copy, .len = ce->len};
    } else {
        int rv = rl_store_read_offset(log->store, offset, e);
        if (rv != 0) {
            snprintf(msg, msglen, "%s", rl_store_errmsg(log->store));
            return rv;
        }
    }
    /* The cache's copy was verified on its way in, the store's by its
     * frame checksum as it was read: the layout is all left to check. */
    if (!rl_batch_parse_layout(e->buf, e->len, v) || v->count != e->records) {
        free((void *)e->buf);
        snprintf(msg, msglen, "entry %" PRIu64 " holding offset %" PRIu64 " is not a valid batch",
                 e->index, offset);
        return RLOG_ECORRUPT;
    }
    return 0;
}

/* The first readable record: a trim is in force before the store's job
 * that applies it completes. */
static uint64_t first_offset(struct rlog *log)
{
    uint64_t f = rl_store_first_offset(log->store);
    return f > log->trim_offset ? f : log->trim_offset;
}

/* Why a read of `offset` cannot be served now, or 0. */
static int readable(struct rlog *log, uint64_t offset, char *msg, size_t msglen)
{
    if (!log->store) {
        snprintf(msg, msglen, "log is closing");
        return RLOG_ECLOSED;
    }
    if (offset < first_offset(log)) {
        snprintf(msg, msglen, "offset %" PRIu64 " was trimmed; the log starts at %" PRIu64,
                 offset, first_offset(log));
        return RLOG_ETRIMMED;
    }
    if (offset >= log->fence.visible_offset && log->fatal) {
        /* Not "not yet": this node will learn of no further commit. */
        snprintf(msg, msglen, "offset %" PRIu64 " is past the %" PRIu64 " records committed "
                 "before this node failed stop: %.150s", offset, log->fence.visible_offset,
                 log->fatal_msg);
        return RLOG_EFATAL;
    }
    if (offset >= log->fence.visible_offset) {
        snprintf(msg, msglen, "offset %" PRIu64 " is not committed (the log's next offset is %" PRIu64
                 ")", offset, log->fence.visible_offset);
        return RLOG_ENOTFOUND;
    }
    return 0;
}

static void do_read(struct rlog *log, struct rl_op *op)
{
    struct rl_store_entry e;
    struct rl_batch_view v;
    int rv = readable(log, op->offset, op->errmsg, sizeof op->errmsg);
    if (rv == 0)
        rv = entry_at(log, op->offset, &e, &v, op->errmsg, sizeof op->errmsg);
    if (rv == 0) {
        const void *rec;
        size_t len;
        rl_batch_record(&v, (uint32_t)(op->offset - e.offset), &rec, &len);
        op->buf = malloc(len ? len : 1);
        if (op->buf)
            memcpy(op->buf, rec, len);
        op->len = len;
        free((void *)e.buf);
        if (!op->buf)
            rv = RLOG_ENOMEM;
    }
    op->status = rv;
    if (rv == RLOG_ENOMEM)
        snprintf(op->errmsg, sizeof op->errmsg, "out of memory");
    rl_op_finish(log, op);
}

/* Consecutive visible entries from op->offset into one chunk (node/cache.h);
 * op->count is how many. A later entry that fails ends the chunk early; its
 * error comes with the next fetch. */
static void do_fetch(struct rlog *log, struct rl_op *op)
{
    uint64_t off = op->offset;
    struct rl_chunk ch = {0};
    uint32_t n = 0;
    int rv = 0;
    while (ch.len < RL_FETCH_BUDGET) {
        char msg[256];
        struct rl_store_entry e;
        struct rl_batch_view v;
        rv = readable(log, off, msg, sizeof msg);
        if (rv == 0)
            rv = entry_at(log, off, &e, &v, msg, sizeof msg);
        if (rv != 0) {
            if (n == 0)
                snprintf(op->errmsg, sizeof op->errmsg, "%s", msg);
            break;
        }
        uint64_t visible = log->fence.visible_offset - e.offset;
        uint32_t count = (uint32_t)(visible < e.records ? visible : e.records);
        rv = rl_chunk_add(&ch, e.offset, count, e.buf, e.len);
        free((void *)e.buf);
        if (rv != 0)
            break;
        n++;
        off = e.offset + count;
        if (count < e.records)
            break; /* the rest is not committed yet */
    }
    if (n > 0) {
        op->status = 0;
        op->buf = ch.p;
        op->len = ch.len;
        op->count = n;
    } else {
        free(ch.p);
        op->status = rv ? rv : RLOG_ENOTFOUND;
        if (rv == RLOG_ENOMEM)
            snprintf(op->errmsg, sizeof op->errmsg, "out of memory");
    }
    rl_op_finish(log, op);
}

void rl_node_status(struct rlog *log, struct rlog_status *st)
{
    memset(st, 0, sizeof *st);
    st->id = log->cfg.id;
    struct rl_io_net_stats ns;
    rl_io_net_stats(&log->io, &ns);
    st->tls = log->cfg.tls_ca_file && log->cfg.tls_ca_file[0];
    st->insecure = !st->tls;
    st->refused_connections = ns.refused_connections;
    st->rejected_handshakes = ns.rejected_handshakes;
    st->timed_out_connections = ns.timed_out_connections;
    st->send_queue_overflows = ns.send_queue_overflows;
    st->fatal = log->fatal;
    st->commit_offset = log->fence.visible_offset;
    st->commit_index = log->fence.visible_index;
    rl_cache_stats(&log->cache, &st->cache_bytes, &st->cache_hits, &st->cache_misses);
    if (log->store) { /* gone once closing has closed it */
        st->first_offset = first_offset(log);
        st->last_offset = rl_store_next_offset(log->store);
        st->last_index = rl_store_last_index(log->store);
    }
    if (log->fatal) {
        /* Out of the cluster: role unavailable, no leader or peers. */
        st->term = log->stop_term;
        snprintf(st->fatal_msg, sizeof st->fatal_msg, "%s", log->fatal_msg);
    } else if (log->raft_started && !log->raft_closed) {
        st->role = log->raft.state;
        st->term = log->raft.current_term;
        raft_id id = 0;
        const char *addr = NULL;
        raft_leader(&log->raft, &id, &addr);
        st->leader_id = id;
        snprintf(st->leader_address, sizeof st->leader_address, "%s", addr ? addr : "");
        rl_io_catchup(&log->io, &st->catchup_index, &st->catchup_target);
        struct rl_io_bound_stats bs;
        rl_io_bound_stats(&log->io, &bs);
        st->fetch_serve_refused = bs.fetch_serve_refused;
        st->held_dropped = bs.held_dropped;
        const struct raft_configuration *c = &log->raft.configuration;
        for (unsigned i = 0; i < c->n && i < RLOG_MAX_PEERS; i++) {
            struct rlog_peer_status *p = &st->peers[st->n_peers++];
            p->id = c->servers[i].id;
            snprintf(p->address, sizeof p->address, "%s", c->servers[i].address);
            p->voter = c->servers[i].role == RAFT_VOTER;
            if (log->raft.state == RAFT_LEADER && log->raft.leader_state.progress)
                p->match_index = log->raft.leader_state.progress[i].match_index;
        }
    }
    rl_repair_status(log, st);
    st->forwarded_appends = log->fwd.forwarded_appends;
    st->forwards_served = log->fwd.forwards_served;
    st->forward_refused = log->fwd.forward_refused;
}

static void do_status(struct rlog *log, struct rl_op *op)
{
    rl_node_status(log, op->st);
    op->status = 0;
    rl_op_finish(log, op);
}

/* For operations only a leader takes: false (op failed) if this node
 * cannot take it now. */
static bool leader_can_take(struct rlog *log, struct rl_op *op)
{
    if (log->raft_closing || log->fatal || !log->store) {
        op_fail(log, op, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED,
                log->fatal ? log->fatal_msg : "log is closing");
        return false;
    }
    if (log->raft.state != RAFT_LEADER) {
        char msg[256];
        not_leader_msg(log, msg, sizeof msg);
        op_fail(log, op, RLOG_ENOTLEADER, msg);
        return false;
    }
    return true;
}

static void do_trim(struct rlog *log, struct rl_op *op)
{
    if (!leader_can_take(log, op))
        return;
    if (op->offset <= log->trim_offset) { /* already done: retention is monotonic */
        op->status = 0;
        rl_op_finish(log, op);
        return;
    }
    if (op->offset > log->fence.visible_offset) {
        snprintf(op->errmsg, sizeof op->errmsg,
                 "trim: offset %" PRIu64 " is beyond the committed end of the log (%" PRIu64
                 " records committed)", op->offset, log->fence.visible_offset);
        op->status = RLOG_EINVAL;
        rl_op_finish(log, op);
        return;
    }
    size_t len = 0;
    void *buf = rl_batch_trim(op->offset, uv_hrtime() / 1000, &len);
    if (!buf) {
        op_fail(log, op, RLOG_ENOMEM, "out of memory building a trim command");
        return;
    }
    propose(log, buf, len, op, 0);
}

static void raft_closed_cb(struct raft *r)
{
    struct rlog *log = r->data;
    /* Entries libraft had applied but the fence had not passed: every
     * append is answered exactly once, so they are answered now. */
    while (log->ifl_head) {
        log->ifl_head->apply_done = true;
        ifl_settle_head(log, RLOG_EINDOUBT, 0);
    }
    log->raft_closed = true;
    log->store = NULL; /* closed by io->close */
    rl_batch_builder_free(&log->bb);
    rl_cache_clear(&log->cache); /* iterators may still look: it stays usable */
    if (log->close_op) {
        uv_close((uv_handle_t *)&log->close_timer, NULL);
        uv_close((uv_handle_t *)&log->wake, NULL);
        struct rl_op *op = log->close_op;
        log->close_op = NULL;
        op->status = log->fatal; /* the host learns of the stop here too */
        snprintf(op->errmsg, sizeof op->errmsg, "%s", log->fatal_msg);
        rl_op_finish(log, op);
    }
}

static void begin_raft_close(struct rlog *log)
{
    if (log->raft_closing)
        return;
    log->raft_closing = true;
    rl_fwd_close(log);
    if (log->member_op) {
        struct rl_op *op = log->member_op;
        log->member_op = NULL;
        op_fail(log, op, RLOG_ECLOSED, "log is closing");
    }
    rl_producers_stop(log);
    fail_list(log, &log->pend_head, &log->pend_tail, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED);
    fail_list(log, &log->open_head, &log->open_tail, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED);
    raft_close(&log->raft, raft_closed_cb);
}

static void close_timeout(uv_timer_t *t)
{
    struct rlog *log = t->data;
    rl_log(log, 1, "leadership transfer did not finish in time; closing anyway");
    begin_raft_close(log);
}

static void transfer_cb(struct raft_transfer *req)
{
    struct rlog *log = req->data;
    uv_timer_stop(&log->close_timer);
    begin_raft_close(log);
}

static void do_close(struct rlog *log, struct rl_op *op)
{
    pthread_mutex_lock(&log->mu);
    log->accepting = false;
    pthread_cond_broadcast(&log->visible_cv); /* waiters see the close */
    pthread_cond_broadcast(&log->room_cv);
    pthread_mutex_unlock(&log->mu);
    log->stopping = true;
    log->close_op = op;
    if (log->raft_closed) {
        raft_closed_cb(&log->raft);
        return;
    }
    unsigned voters = 0;
    for (unsigned i = 0; i < log->raft.configuration.n; i++)
        voters += log->raft.configuration.servers[i].role == RAFT_VOTER;
    if (log->raft.state == RAFT_LEADER && voters > 1 && !log->fatal && !log->crash_close) {
        /* Hand over first, so the cluster does not wait out an election. */
        log->transfer.data = log;
        if (raft_transfer(&log->raft, &log->transfer, 0, transfer_cb) == 0) {
            uv_timer_start(&log->close_timer, close_timeout, 2 * log->cfg.election_timeout_ms, 0);
            return;
        }
    }
    begin_raft_close(log);
}

/* ---- membership ---------------------------------------------------------------- */

static int raft_to_rlog(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return RLOG_ENOTLEADER;
    case RAFT_CANTCHANGE:
        return RLOG_EBUSY;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADID:
    case RAFT_BADROLE:
    case RAFT_NOTFOUND:
        return RLOG_EINVAL;
    case RAFT_NOMEM:
        return RLOG_ENOMEM;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return RLOG_ECLOSED;
    default:
        return RLOG_EIO;
    }
}

static void member_done(struct rlog *log, int rv, const char *what)
{
    struct rl_op *op = log->member_op;
    log->member_op = NULL;
    if (!op)
        return;
    op->status = raft_to_rlog(rv);
    if (rv != 0)
        snprintf(op->errmsg, sizeof op->errmsg, "%s: %s", what,
                 op->status == RLOG_ENOTLEADER ? "leadership lost" : raft_strerror(rv));
    else
        rl_log(log, 1, "%s %" PRIu64 " done", what, op->member_id);
    rl_op_finish(log, op);
}

static void promote_cb(struct raft_change *req, int status)
{
    member_done(req->data, status, "promoting node");
}

static void add_cb(struct raft_change *req, int status)
{
    struct rlog *log = req->data;
    if (status != 0 || !log->member_op) {
        member_done(log, status, "adding node");
        return;
    }
    /* libraft catches the new node up before the configuration that makes it
     * a voter is appended; far behind, that is a segment fetch. */
    int rv = raft_assign(&log->raft, &log->change, log->member_op->member_id, RAFT_VOTER,
                         promote_cb);
    if (rv != 0)
        member_done(log, rv, "promoting node");
}

static void remove_cb(struct raft_change *req, int status)
{
    member_done(req->data, status, "removing node");
}

static void member_transfer_cb(struct raft_transfer *req)
{
    struct rlog *log = req->data;
    bool moved = log->raft.state != RAFT_LEADER;
    if (!moved) {
        struct rl_op *op = log->member_op;
        log->member_op = NULL;
        if (op) {
            op->status = RLOG_ETIMEOUT;
            snprintf(op->errmsg, sizeof op->errmsg, "leadership transfer did not complete");
            rl_op_finish(log, op);
        }
        return;
    }
    member_done(log, 0, "leadership transfer to");
}

static void do_member(struct rlog *log, struct rl_op *op)
{
    if (!leader_can_take(log, op))
        return;
    if (log->member_op) {
        op_fail(log, op, RLOG_EBUSY, "another membership change is under way");
        return;
    }
    log->member_op = op;
    log->change.data = log;
    int rv;
    const char *what;
    switch (op->member_kind) {
    case RL_MEMBER_ADD:
        what = "adding node";
        rl_log(log, 1, "adding node %" PRIu64 " at %s", op->member_id, op->member_addr);
        rv = raft_add(&log->raft, &log->change, op->member_id, op->member_addr, add_cb);
        break;
    case RL_MEMBER_REMOVE:
        what = "removing node";
        rv = raft_remove(&log->raft, &log->change, op->member_id, remove_cb);
        break;
    default:
        what = "leadership transfer";
        log->member_transfer.data = log;
        rv = raft_transfer(&log->raft, &log->member_transfer, op->member_id, member_transfer_cb);
        break;
    }
    if (rv != 0)
        member_done(log, rv, what);
}

static void wake_cb(uv_async_t *a)
{
    struct rlog *log = a->data;
    settle_fail_stop(log); /* first: a close queued meanwhile finds it done */
    pthread_mutex_lock(&log->mu);
    struct rl_op *ops = log->inbox_head;
    log->inbox_head = log->inbox_tail = NULL;
    pthread_mutex_unlock(&log->mu);
    while (ops) {
        struct rl_op *op = ops;
        ops = op->next;
        op->next = NULL;
        switch (op->kind) {
        case RL_OP_APPEND:
            rl_producers_taken(log, op);
            if (log->pend_tail)
                log->pend_tail->next = op;
            else
                log->pend_head = op;
            log->pend_tail = op;
            break;
        case RL_OP_READ:
            do_read(log, op);
            break;
        case RL_OP_FETCH:
            do_fetch(log, op);
            break;
        case RL_OP_STATUS:
            do_status(log, op);
            break;
        case RL_OP_CLOSE:
            do_close(log, op);
            break;
        case RL_OP_MEMBER:
            do_member(log, op);
            break;
        case RL_OP_TRIM:
            do_trim(log, op);
            break;
        case RL_OP_BARRIER:
            rl_fwd_barrier(log, op);
            break;
        case RL_OP_METRICS:
            rl_metrics_collect(log, op);
            break;
        }
    }
    if (!log->raft_closing)
        rl_node_pump(log);
}

/* ---- startup ---------------------------------------------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL; /* the log is the state; the fence decides visibility */
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    *bufs = raft_calloc(1, sizeof **bufs);
    if (!*bufs)
        return RAFT_NOMEM;
    (*bufs)[0].base = raft_calloc(1, 8);
    if (!(*bufs)[0].base) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    (*bufs)[0].len = 8;
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

/* The record offset after entry `index`, also where that entry is damaged
 * (repair.c): from the damaged range's bounds or the next entry. */
static int end_offset_of(struct rl_store *store, uint64_t index, uint64_t *offset)
{
    struct rl_store_entry en;
    int rv = rl_store_read(store, index, &en);
    if (rv == 0) {
        *offset = en.offset + en.records;
        free((void *)en.buf);
        return 0;
    }
    if (rv != RLOG_ECORRUPT)
        return rv;
    struct rl_store_damage d[16];
    size_t n = rl_store_damaged(store, d, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (d[i].last_index == index) {
            *offset = d[i].end_offset;
            return 0;
        }
    if (index < rl_store_last_index(store) && rl_store_read(store, index + 1, &en) == 0) {
        *offset = en.offset;
        free((void *)en.buf);
        return 0;
    }
    return RLOG_ECORRUPT; /* errmsg names the damage */
}

/* The fence's view of damaged entry `index` (awaiting repair): its records
 * from the damaged range's bounds (all on its first entry), its term the
 * one before it (never more than the real one, so the fence can only be
 * slower to move past it). Retention commands in it are not seen. */
static int damaged_fence_entry(struct rl_store *store, uint64_t index, uint64_t prev_term,
                               struct rl_fence_entry *fe)
{
    struct rl_store_damage d[16];
    size_t n = rl_store_damaged(store, d, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (index >= d[i].first_index && index <= d[i].last_index) {
            bool head = index == d[i].first_index;
            *fe = (struct rl_fence_entry){
                .index = index, .term = prev_term,
                .offset = head ? d[i].first_offset : d[i].end_offset,
                .records = head ? (uint32_t)(d[i].end_offset - d[i].first_offset) : 0};
            return 0;
        }
    return RLOG_ECORRUPT;
}

/* Fence position and the entries after it, from the store. */
/* A damaged entry among those libraft must load (after its snapshot
 * descriptor) is cut with what follows, before anything is loaded, and
 * comes back from the leader (lib/raftio/floor.c). */
static int cut_damaged_tail(struct rlog *log, char *err, size_t errlen)
{
    struct rl_snapshot_desc d;
    char e[256];
    int rv = rl_snapshot_load(log->data_dir, &d, e, sizeof e);
    if (rv < 0) {
        snprintf(err, errlen, "%s", e);
        return rv;
    }
    uint64_t needed = rv == 0 ? d.index + 1 : 1, last = rl_store_last_index(log->store), cut;
    rl_snapshot_desc_close(&d);
    if ((rv = rl_floor_cut_damaged_tail(&log->loop, log->store, log->data_dir, needed, &cut, err,
                                        errlen)) != 0 || !cut)
        return rv;
    log->floor_cut_entries = last - cut + 1;
    rl_log(log, 2, "entry %" PRIu64 " fails its checksum and libraft must load it: the log is cut "
           "before it (%" PRIu64 " entries, to come back from the leader); until they are back "
           "this node does not campaign or vote for a candidate behind its old end (entry %" PRIu64
           ")", cut, last - cut + 1, last);
    return 0;
}

static int load_tail(struct rlog *log, char *err, size_t errlen)
{
    struct rl_snapshot_desc d;
    char e[256];
    int rv = rl_snapshot_load(log->data_dir, &d, e, sizeof e);
    if (rv < 0) {
        snprintf(err, errlen, "%s", e);
        return rv;
    }
    uint64_t visible = rv == 0 ? d.visible : 0;
    rl_snapshot_desc_close(&d);
    uint64_t first = rl_store_first_index(log->store), last = rl_store_last_index(log->store);
    if (visible > last)
        visible = last;
    uint64_t visible_offset = rl_store_first_offset(log->store);
    if (visible >= first && (rv = end_offset_of(log->store, visible, &visible_offset)) != 0) {
        snprintf(err, errlen, "%s", rl_store_errmsg(log->store));
        return rv;
    }
    rl_fence_init(&log->fence, visible, visible_offset);
    rl_set_trim_offset(log, rl_store_first_offset(log->store));
    uint64_t prev_term = 0;
    for (uint64_t i = (visible + 1 > first ? visible + 1 : first); i <= last; i++) {
        struct rl_store_entry en;
        struct rl_fence_entry fe;
        if ((rv = rl_store_read(log->store, i, &en)) == RLOG_ECORRUPT &&
            damaged_fence_entry(log->store, i, prev_term, &fe) == 0) {
            prev_term = fe.term;
            if ((rv = rl_fence_push(&log->fence, &fe)) != 0)
                return rv;
            continue;
        }
        if (rv != 0) {
            snprintf(err, errlen, "%s", rl_store_errmsg(log->store));
            return rv;
        }
        fe = (struct rl_fence_entry){en.index, en.term, en.offset, en.records,
                                     trim_of(en.buf, en.len, en.records)};
        prev_term = en.term;
        free((void *)en.buf);
        if ((rv = rl_fence_push(&log->fence, &fe)) != 0)
            return rv;
    }
    return 0;
}

/* Whether the directory's IDENTITY file is still to be written. */
enum id_state { ID_RECORDED, ID_NEW, ID_ADOPTED /* made by an older liblog */ };

/* Refuses another node's or another cluster's directory (checks 1 and 2 of
 * node/identity.h). A directory without IDENTITY gets the configuration's
 * identity, recorded only once the stored membership agrees too (check 3),
 * so a wrong first open of an older directory leaves no wrong identity. */
static int load_identity(struct rlog *log, struct rl_identity *have, enum id_state *state,
                         char *err, size_t errlen)
{
    struct rl_identity want;
    rl_identity_of(&log->cfg, &want);
    int rv = rl_identity_load(log->data_dir, have, err, errlen);
    *state = ID_RECORDED;
    if (rv == 0)
        return rl_identity_check(log->data_dir, have, &want, err, errlen);
    if (rv == 1) {
        *have = want;
        /* At most the bootstrap entry (term 1): new, or a first open that
         * failed after bootstrapping; anything more is an older liblog's. */
        bool fresh = rl_store_last_index(log->store) <= 1 && rl_store_term(log->store) <= 1;
        *state = fresh ? ID_NEW : ID_ADOPTED;
        rv = 0;
    }
    return rv;
}

static int record_identity(struct rlog *log, const struct rl_identity *id, enum id_state state,
                           char *err, size_t errlen)
{
    int rv = rl_identity_save(log->data_dir, id, err, errlen);
    if (rv == 0)
        rl_log(log, state == ID_ADOPTED ? 2 : 1, "%s: recorded node %" PRIu64 " of cluster %s%s",
               log->data_dir, id->node, id->cluster,
               state == ID_ADOPTED ? " (a directory without IDENTITY: adopted)" : "");
    return rv;
}

#define OR_DEFAULT(v, d) ((v) ? (v) : (d))

static int start(struct rlog *log)
{
    char *err = log->open_err;
    size_t errlen = sizeof log->open_err;
    int rv = uv_loop_init(&log->loop);
    if (rv != 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rv));
        return RLOG_EIO;
    }
    /* The first segment holds one full batch, so a new log never makes a
     * spare over again for the first large batch. */
    struct rl_store_config scfg = {.dir = log->data_dir,
                                   .segment_size = log->cfg.segment_size,
                                   .first_segment_size = (uint64_t)log->cfg.batch_max_bytes + 4096};
    rv = rl_store_open(&log->loop, &scfg, &log->store, err, errlen);
    if (rv != 0)
        return rv;
    bool kept;
    unsigned was = rl_store_dir_mode_was(log->store, &kept);
    if (was)
        rl_log(log, 2, "%s: data directory was mode %04o (open to other users); %s", log->data_dir,
               was, kept ? "could NOT tighten it to 0700" : "tightened to 0700");
    struct rl_identity identity;
    enum id_state id_state;
    if ((rv = load_identity(log, &identity, &id_state, err, errlen)) != 0)
        return rv;
    if ((rv = cut_damaged_tail(log, err, errlen)) != 0 || (rv = load_tail(log, err, errlen)) != 0 ||
        (rv = rl_producers_load(log, err, errlen)) != 0)
        return rv;
    struct rl_io_config icfg = {
        .loop = &log->loop,
        .store = log->store,
        .dir = log->data_dir,
        .trailing = log->cfg.snapshot_trailing,
        /* A peer's frame: one entry at most (the transport sends libraft's
         * long AppendEntries in parts that fit), or a fetch answer. */
        .max_frame_body = log->cfg.batch_max_bytes + RL_IO_FRAME_ALLOWANCE,
        /* The TLS files are read here, during rlog_open, and not kept. */
        .net = {.cluster = identity.cluster, .cluster_named = identity.named,
                .tls_ca_file = log->cfg.tls_ca_file, .tls_cert_file = log->cfg.tls_cert_file,
                .tls_key_file = log->cfg.tls_key_file,
                .max_inbound = OR_DEFAULT(log->cfg.max_inbound_connections, 64),
                .max_per_address = OR_DEFAULT(log->cfg.max_connections_per_address, 8),
                .handshake_timeout_ms = OR_DEFAULT(log->cfg.handshake_timeout_ms, 5000),
                .frame_timeout_ms = OR_DEFAULT(log->cfg.frame_timeout_ms, 30000),
                .idle_timeout_ms = OR_DEFAULT(log->cfg.idle_timeout_ms, 60000),
                .max_send_queue = OR_DEFAULT(log->cfg.max_send_queue_bytes, 64u << 20)},
        .hooks = {.arg = log, .after_event = hook_after_event, .on_append = hook_on_append,
                  .on_truncate = hook_on_truncate, .on_reset = hook_on_reset,
                  .on_fatal = hook_on_fatal,
                  .visible_index = hook_visible_index, .committed_index = hook_committed_index,
                  .is_leader = hook_is_leader,
                  .leader_id = hook_leader_id,
                  .peer_address = hook_peer_address, .on_commit = hook_on_commit,
                  .log = hook_log, .on_repair_answer = rl_repair_answer,
                  .snapshot_state = rl_producers_state, .on_fwd = rl_fwd_recv},
    };
    if (!log->cfg.tls_ca_file || !log->cfg.tls_ca_file[0])
        icfg.net.tls_ca_file = icfg.net.tls_cert_file = icfg.net.tls_key_file = NULL;
    if ((rv = rl_io_init(&log->io, &icfg)) != 0) {
        snprintf(err, errlen, "%s", log->io.errmsg);
        return rv;
    }
    if (!icfg.net.tls_ca_file)
        rl_log(log, 2, "INSECURE: peer connections are plain text, and a peer's claimed id is "
               "trusted (%s); configure TLS (tls_ca_file, tls_cert_file, tls_key_file) to "
               "authenticate and encrypt them",
               log->cfg.insecure ? "config.insecure is set" : "every peer is on loopback");
    /* Bounds on what peers can make this node hold (hardening); 0: the
     * defaults rlog_config_init gives. */
    rl_io_set_bounds(&log->io,
                     &(struct rl_io_bounds){
                         .fetch_serve_max = log->cfg.fetch_serve_max ? log->cfg.fetch_serve_max : 4,
                         .fetch_serve_bytes = log->cfg.fetch_serve_bytes ? log->cfg.fetch_serve_bytes
                                                                         : 16u << 20,
                         .held_max = log->cfg.held_max ? log->cfg.held_max : 64});
    log->fsm = (struct raft_fsm){.version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot,
                                 .restore = fsm_restore};
    rv = raft_init(&log->raft, &log->io, &log->fsm, log->cfg.id, log->address);
    if (rv != 0) {
        snprintf(err, errlen, "raft_init: %.200s", log->io.errmsg[0] ? log->io.errmsg : raft_strerror(rv));
        return RLOG_EIO;
    }
    log->raft.data = log;
    raft_set_election_timeout(&log->raft, log->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&log->raft, log->cfg.heartbeat_timeout_ms);
    /* libraft resends a lost InstallSnapshot after this (30 s by default). */
    raft_set_install_snapshot_timeout(&log->raft, 4 * log->cfg.election_timeout_ms);
    raft_set_snapshot_threshold(&log->raft, log->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&log->raft, log->cfg.snapshot_trailing);
    /* Bootstrap only a node that never took part: an empty log with a term
     * past 1 has been emptied by a catch-up that a crash interrupted, and
     * its entries come back from the leader (found by the simulator: such
     * a node refused to start ever again). Every leader's term is >= 2. */
    if (rl_store_last_index(log->store) == 0 && rl_store_term(log->store) <= 1 && !log->cfg.join) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned i = 0; i < log->cfg.n_peers && rv == 0; i++)
            rv = raft_configuration_add(&conf, log->peers[i].id, log->peers[i].address,
                                        RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&log->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            snprintf(err, errlen, "bootstrap: %s", raft_errmsg(&log->raft));
            return RLOG_EIO;
        }
    }
    rv = raft_start(&log->raft);
    if (rv != 0) {
        /* libraft 0.15 does not pass on why its io failed to start (a
         * listen address in use, say): the backend's own message does. */
        const char *why = raft_errmsg(&log->raft);
        snprintf(err, errlen, "raft_start: %.200s", why && *why ? why : log->io.errmsg);
        return rv == RAFT_CORRUPT ? RLOG_ECORRUPT : RLOG_EIO;
    }
    log->raft_started = true;
    /* Only now is the stored membership known: libraft takes the latest
     * configuration from the snapshot descriptor and the entries it loaded. */
    rv = rl_identity_check_members(log->data_dir, &log->cfg, &identity, &log->raft.configuration,
                                   err, errlen);
    if (rv == 0 && id_state != ID_RECORDED)
        rv = record_identity(log, &identity, id_state, err, errlen);
    if (rv != 0)
        return rv;
    log->last_role = log->raft.state;
    uv_async_init(&log->loop, &log->wake, wake_cb);
    log->wake.data = log;
    uv_timer_init(&log->loop, &log->close_timer);
    log->close_timer.data = log;
    if ((rv = rl_producers_start(log)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rv;
    }
    rl_fwd_init(log);
    log->pub_visible_offset = log->fence.visible_offset;
    log->trim_snap = rl_io_snapshot_index(&log->io);
    publish(log);
    if (log->fatal)
        uv_async_send(&log->wake); /* failed while starting: settle it */
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Undoes a partial start: raft (and through it io and the store) or just the
 * store; then closes the loop. */
static void abort_start(struct rlog *log)
{
    if (log->raft_started || log->io.impl) {
        if (log->io.impl && !log->raft_started)
            log->io.close(&log->io, NULL);
        else
            raft_close(&log->raft, NULL);
        log->store = NULL;
    } else if (log->store) {
        rl_store_close(log->store, NULL, NULL);
        log->store = NULL;
    }
    rl_node_teardown(log);
}

void rl_node_teardown(struct rlog *log)
{
    uv_run(&log->loop, UV_RUN_DEFAULT);
    uv_walk(&log->loop, close_walk, NULL);
    uv_run(&log->loop, UV_RUN_DEFAULT);
    uv_loop_close(&log->loop);
}

int rl_node_start_here(struct rlog *log)
{
    int rv = start(log);
    pthread_mutex_lock(&log->mu);
    log->open_done = true;
    log->open_rv = rv;
    log->accepting = rv == 0;
    pthread_cond_signal(&log->open_cv);
    pthread_mutex_unlock(&log->mu);
    if (rv != 0)
        abort_start(log);
    return rv;
}

void rl_node_thread(void *arg)
{
    struct rlog *log = arg;
    /* A peer closing its socket must not kill the host with SIGPIPE; it is
     * sent to the writing thread, so blocking it here turns it into EPIPE. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    if (rl_node_start_here(log) == 0)
        rl_node_teardown(log);
}
