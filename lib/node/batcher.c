/*
 * batcher — turns queued appends into raft entries, and settles them.
 *
 * Host records gather in a batch builder; a batch becomes one raft entry
 * (raft_apply) at once when nothing is in flight, otherwise when the entry
 * in flight commits or the batch is full (bytes or records), with a few
 * batches in flight at most. An append is acknowledged when the fence
 * passes its entry and the entry there still has the term it was proposed
 * in (visible.c settles the in-flight list's head). On a follower the
 * appends go to the leader (node/forward.c).
 */
#include "node/node.h"

#include "common/env.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* The pipeline: a batch that is not full is proposed while fewer than
 * rl_pipeline_depth entries are in flight (two overlap the leader's and the
 * followers' fsyncs: bench-append, 3 runs each, W1 p50 435-445 us vs
 * 484-544 us with one, W2 +8-11% records/s); full ones while fewer than
 * rl_pipeline_max. Proposing a batch that is not full whenever this
 * leader's store had written all it was given (up to rl_pipeline_max) was
 * tried and left out: `bench_node run --quick`, two rounds each, W4's
 * leader acknowledgement p50 at W1's rate 549/555 us against 378/383, at
 * half W2's rate 1014/1002 against 888/1020, W2 no better. Variables, not
 * constants, so the simulator can run a deep pipeline. */
unsigned rl_pipeline_depth = 2, rl_pipeline_max = 8;

static void ifl_free_if_done(struct rl_inflight *f)
{
    if (f->apply_done && f->settled)
        free(f);
}

/* Settles the head of the in-flight list with `status` (0: acknowledged at
 * base offset `offset`). */
void rl_ifl_settle_head(struct rlog *log, int status, uint64_t offset)
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
            rl_not_leader_msg(log, leader, sizeof leader);
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
        op->first_offset = op->kind == RL_OP_CURSOR ? f->index : off; /* no offset of its own */
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
            rl_ifl_settle_head(log, RLOG_EINDOUBT, 0);
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
        rl_op_fail(log, op, status, msg);
    }
}

/* Proposes one COMMAND entry (buf, raft_malloc'd, is given away); ops are
 * answered when the fence passes it. */
void rl_propose(struct rlog *log, void *buf, size_t len, struct rl_op *ops, uint64_t records)
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
            rl_not_leader_msg(log, msg, sizeof msg);
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
    void *buf = rl_batch_seal(&log->bb, rl_unix_us(), &len);
    struct rl_op *ops = log->open_head;
    log->open_head = log->open_tail = NULL;
    if (!buf) {
        fail_ops(log, ops, RLOG_ENOMEM, "out of memory building a batch");
        return;
    }
    rl_propose(log, buf, len, ops, records);
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
        rl_fail_list(log, &log->pend_head, &log->pend_tail, RLOG_EFATAL);
        rl_fail_list(log, &log->open_head, &log->open_tail, RLOG_EFATAL);
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
        rl_fail_list(log, &log->pend_head, &log->pend_tail, st);
        if (log->open_head) {
            rl_batch_builder_free(&log->bb);
            rl_batch_builder_init(&log->bb);
            rl_fail_list(log, &log->open_head, &log->open_tail, st);
        }
        return;
    }
    /* libraft refuses proposals while the lead is being handed over
     * (raft_transfer: rlog_transfer_leadership's, or balance.c's): the
     * appends wait, and then go to the new leader (above), or are proposed
     * here if the hand-over did not complete. It lasts an election timeout
     * at most. */
    if (log->raft.transfer)
        return;
    while (log->pend_head) {
        struct rl_op *op = log->pend_head;
        if (!op_fits(log, op)) {
            if (log->n_inflight >= rl_pipeline_max)
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
            rl_op_fail(log, op, RLOG_ENOMEM, "out of memory building a batch");
            rl_fail_list(log, &log->open_head, &log->open_tail, RLOG_ENOMEM);
            continue;
        }
        if (log->open_tail)
            log->open_tail->next = op;
        else
            log->open_head = op;
        log->open_tail = op;
    }
    if (log->open_head && log->n_inflight < rl_pipeline_depth)
        flush(log);
}
