/*
 * producers — idempotent and conditional appends (rlog_append_ex), on the
 * loop thread.
 *
 * The leader judges each call as it goes into a batch (rl_producers_judge),
 * against the log as the batch will extend it: the producer table
 * (node/dedup.h) holds every committed run, and the calls of this leader's
 * own term not yet committed are here, in `pending`. So a (producer,
 * sequence) is let into the log only if neither holds it: a retry of a
 * committed call gets the original offset, a retry of one in flight is
 * answered with it. Judging needs the whole log before this term in the
 * table, so a new leader holds producer and conditional calls until an
 * entry of its own term is shown (loop.c appends a barrier when it wins).
 * That is enough for at most once: an entry this leader proposes commits
 * only with this leader's log as its prefix (Log Matching), and every run
 * in that prefix is in the table or in `pending`.
 *
 * A conditional call whose expected offset is not where the log will then
 * end goes into the batch with no records; it is answered RLOG_ECONFLICT
 * (with the offset it would have had) when that entry commits, so the
 * answer is about the committed log, never about a suffix a new leader
 * may drop.
 *
 * At the caller's node, a call with a producer that ends in doubt or is
 * refused for a leadership change is queued again (rl_producers_retry)
 * until producer_retry_ms after it was first taken: the table makes the
 * retry harmless.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fs/fs.h"
#include "node/node.h"

#define RETRY_DELAY_MS 50
#define DEFAULT_MAX_PRODUCERS 4096
#define DEFAULT_WINDOW 256
#define DEFAULT_RETRY_MS 10000

/* A producer's calls in this leader's batches, not yet answered. */
struct rl_pending {
    uint64_t id, last_seq;
    struct rl_op *ops; /* by sequence, linked through op->pnext */
    struct rl_pending *hnext;
};

static size_t bucket_of(uint64_t id)
{
    return (size_t)(XXH3_64bits(&id, sizeof id) & (RL_PENDING_BUCKETS - 1));
}

int rl_producers_init(struct rlog *log)
{
    const struct rlog_config *c = &log->cfg;
    return rl_dedup_init(&log->dedup, c->max_producers ? c->max_producers : DEFAULT_MAX_PRODUCERS,
                         c->producer_window ? c->producer_window : DEFAULT_WINDOW);
}

void rl_producers_free(struct rlog *log)
{
    for (size_t b = 0; b < RL_PENDING_BUCKETS; b++)
        for (struct rl_pending *p = log->pending[b], *next; p; p = next) {
            next = p->hnext;
            free(p);
        }
    memset(log->pending, 0, sizeof log->pending);
    rl_dedup_free(&log->dedup);
}

static struct rl_pending *pending_of(struct rlog *log, uint64_t id)
{
    for (struct rl_pending *p = log->pending[bucket_of(id)]; p; p = p->hnext)
        if (p->id == id)
            return p;
    return NULL;
}

static void drop_pending(struct rlog *log, struct rl_pending *p)
{
    struct rl_pending **pp = &log->pending[bucket_of(p->id)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    free(p);
}

/* Whether everything before this leader's term is shown here (so in the
 * producer table). */
static bool leader_ready(const struct rlog *log)
{
    return log->raft.state == RAFT_LEADER && log->lead_ready_term == log->raft.current_term;
}

static void answer(struct rlog *log, struct rl_op *op, int status, uint64_t offset,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void answer(struct rlog *log, struct rl_op *op, int status, uint64_t offset,
                   const char *fmt, ...)
{
    op->status = status;
    op->first_offset = offset;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(op->errmsg, sizeof op->errmsg, fmt, ap);
        va_end(ap);
    }
    rl_op_finish(log, op);
}

enum rl_judgement rl_producers_judge(struct rlog *log, struct rl_op *op, uint64_t end_offset)
{
    if (op->producer_id == 0 && !op->expect)
        return RL_JUDGE_ADD;
    if (!leader_ready(log))
        return RL_JUDGE_WAIT;
    if (op->producer_id) {
        uint64_t id = op->producer_id, seq = op->seq, offset = 0, last = 0;
        struct rl_pending *p = pending_of(log, id);
        if (p && seq <= p->last_seq) {
            for (struct rl_op *o = p->ops; o; o = o->pnext)
                if (o->seq == seq) {
                    if (o->hash != op->hash) {
                        answer(log, op, RLOG_ESEQUENCE, 0,
                               "sequence %" PRIu64 " of producer %" PRIu64 " is being appended "
                               "with other records; nothing appended", seq, id);
                        return RL_JUDGE_DONE;
                    }
                    op->dups = o->dups; /* answered with the call in flight */
                    o->dups = op;
                    return RL_JUDGE_HELD;
                }
        }
        enum rl_dedup_verdict v = rl_dedup_check(&log->dedup, id, seq, op->hash, &offset, &last);
        if (p && seq > p->last_seq)
            v = seq == p->last_seq + 1 ? RL_DEDUP_NEW : RL_DEDUP_GAP, last = p->last_seq;
        switch (v) {
        case RL_DEDUP_NEW:
            break;
        case RL_DEDUP_DUP:
            answer(log, op, 0, offset, NULL);
            return RL_JUDGE_DONE;
        case RL_DEDUP_REUSED:
            answer(log, op, RLOG_ESEQUENCE, 0,
                   "sequence %" PRIu64 " of producer %" PRIu64 " was committed with other "
                   "records; nothing appended", seq, id);
            return RL_JUDGE_DONE;
        case RL_DEDUP_GAP:
            op->seq_gap = true;
            answer(log, op, RLOG_ESEQUENCE, 0,
                   "sequence %" PRIu64 " of producer %" PRIu64 " skips ahead: the log's last is "
                   "%" PRIu64 "; nothing appended", seq, id, last);
            return RL_JUDGE_DONE;
        case RL_DEDUP_TOO_OLD:
            answer(log, op, RLOG_ESEQUENCE, 0,
                   "sequence %" PRIu64 " of producer %" PRIu64 " is older than the last %u this "
                   "log remembers (last %" PRIu64 "): it may have been appended; nothing "
                   "appended now", seq, id, log->dedup.window, last);
            return RL_JUDGE_DONE;
        }
    }
    op->conflict = op->expect && op->expect_offset != end_offset;
    return RL_JUDGE_ADD;
}

int rl_producers_added(struct rlog *log, struct rl_op *op)
{
    if (op->producer_id == 0 || op->conflict)
        return 0;
    struct rl_pending *p = pending_of(log, op->producer_id);
    if (!p) {
        if (!(p = calloc(1, sizeof *p)))
            return RLOG_ENOMEM;
        p->id = op->producer_id;
        size_t b = bucket_of(p->id);
        p->hnext = log->pending[b];
        log->pending[b] = p;
    }
    struct rl_op **tail = &p->ops;
    while (*tail)
        tail = &(*tail)->pnext;
    *tail = op;
    op->pnext = NULL;
    op->in_pending = true;
    p->last_seq = op->seq;
    return 0;
}

static bool retryable(const struct rlog *log, const struct rl_op *op)
{
    switch (op->status) {
    case RLOG_ENOTLEADER:
        /* Without forwarding, only this node's own election can help. */
        return log->cfg.forward_appends || log->last_leader == 0;
    case RLOG_EINDOUBT:
    case RLOG_ETIMEOUT:
    case RLOG_EAGAIN:
        return true;
    case RLOG_ESEQUENCE:
        return op->seq_gap;
    default:
        return false;
    }
}

static void retry_timer_cb(uv_timer_t *t)
{
    struct rlog *log = t->data;
    struct rl_op *ops = log->retry_head;
    if (!ops)
        return;
    /* Ahead of newer calls, in the order they failed: a producer's calls
     * stay in sequence order. */
    log->retry_tail->next = log->pend_head;
    if (!log->pend_head)
        log->pend_tail = log->retry_tail;
    log->pend_head = ops;
    log->retry_head = log->retry_tail = NULL;
    log->pump(log); /* rl_node_pump */
}

bool rl_producers_finishing(struct rlog *log, struct rl_op *op)
{
    /* Duplicates share the outcome first: a call sent again is judged
     * afresh, and may become a duplicate itself. */
    while (op->dups) {
        struct rl_op *d = op->dups;
        op->dups = d->dups;
        d->dups = NULL;
        d->status = op->status;
        d->first_offset = op->first_offset;
        d->seq_gap = op->seq_gap;
        memcpy(d->errmsg, op->errmsg, sizeof d->errmsg);
        rl_op_finish(log, d);
    }
    if (op->in_pending) {
        op->in_pending = false;
        struct rl_pending *p = pending_of(log, op->producer_id);
        if (p) {
            struct rl_op **pp = &p->ops;
            while (*pp && *pp != op)
                pp = &(*pp)->pnext;
            if (*pp)
                *pp = op->pnext;
            if (!p->ops)
                drop_pending(log, p);
        }
    }
    uint64_t now = uv_now(log->loop);
    if (op->producer_id && !op->forwarded_in && retryable(log, op) && now < op->retry_until &&
        !log->stopping && !log->raft_closing && !log->fatal && log->retry_timer_ready) {
        op->next = NULL;
        op->conflict = op->seq_gap = false;
        if (log->retry_tail)
            log->retry_tail->next = op;
        else
            log->retry_head = op;
        log->retry_tail = op;
        if (!uv_is_active((uv_handle_t *)&log->retry_timer))
            uv_timer_start(&log->retry_timer, retry_timer_cb, RETRY_DELAY_MS, 0);
        return true;
    }
    return false;
}

void rl_producers_taken(struct rlog *log, struct rl_op *op)
{
    if (op->producer_id && op->retry_until == 0) {
        unsigned ms = log->cfg.producer_retry_ms ? log->cfg.producer_retry_ms : DEFAULT_RETRY_MS;
        op->retry_until = uv_now(log->loop) + ms;
    }
}

int rl_producers_start(struct rlog *log)
{
    int rv = uv_timer_init(log->loop, &log->retry_timer);
    if (rv != 0)
        return RLOG_ENOMEM;
    log->retry_timer.data = log;
    log->retry_timer_ready = true;
    rl_node_hold(log);
    return 0;
}

void rl_producers_stop(struct rlog *log)
{
    if (!log->retry_timer_ready)
        return;
    log->retry_timer_ready = false;
    uv_timer_stop(&log->retry_timer);
    rl_node_close_handle(log, (uv_handle_t *)&log->retry_timer);
    /* Calls waiting to be sent again end with the outcome they had. */
    while (log->retry_head) {
        struct rl_op *op = log->retry_head;
        log->retry_head = op->next;
        op->next = NULL;
        rl_op_finish(log, op);
    }
    log->retry_tail = NULL;
}

/* ---- persistence ------------------------------------------------------------------ */

int rl_producers_state(void *arg, const char **name, void **buf, size_t *len)
{
    struct rlog *log = arg;
    *name = RL_DEDUP_FILE;
    unsigned char *b;
    int rv = rl_dedup_encode(&log->dedup, &b, len);
    *buf = rv == 0 ? b : NULL;
    return rv;
}

/* Feeds entries first..last of the store to the tables (producers and
 * cursors: one read for both), as committed (replay) or as stored and not
 * yet shown (note). */
static int feed(struct rlog *log, uint64_t first, uint64_t last, bool committed, char *err,
                size_t errlen)
{
    for (uint64_t i = first; i <= last; i++) {
        struct rl_store_entry e;
        int rv = rl_store_read(log->store, i, &e);
        if (rv == RLOG_ECORRUPT) {
            /* Awaiting repair: its runs, if any, cannot be read now; a
             * cursor command there would be missed, so cursors not
             * committed since are reported unknown (node/cursors.h). */
            rl_log(log, 2, "producer and cursor tables: entry %" PRIu64 " is damaged here; "
                   "producers that appended only there are not known to this node", i);
            if (committed && i > log->cursors.applied_index)
                rl_cursors_reset(&log->cursors, i);
            continue;
        }
        if (rv != 0) {
            snprintf(err, errlen, "producer table: %s", rl_store_errmsg(log->store));
            return rv;
        }
        rv = committed ? rl_dedup_apply_entry(&log->dedup, i, e.offset, e.buf, e.len)
                       : rl_dedup_note(&log->dedup, i, e.term, e.offset, e.buf, e.len);
        if (rv == 0)
            rv = committed ? rl_cursors_apply_entry(&log->cursors, i, e.buf, e.len)
                           : rl_cursors_note(&log->cursors, i, e.term, e.buf, e.len);
        free((void *)e.buf);
        if (rv != 0) {
            snprintf(err, errlen, "producer and cursor tables: out of memory");
            return rv;
        }
    }
    return 0;
}

int rl_state_load(struct rlog *log, const char *name, rl_state_decode decode, void *table,
                  char *err, size_t errlen)
{
    unsigned char *buf = NULL;
    size_t size = 0;
    char why[128] = "";
    int rv = rl_fs_read_all(log->data_dir, name, &buf, &size);
    if (rv == -ENOENT)
        return 0;
    rv = rv ? rl_errno_to_rlog(rv) : decode(table, buf, size, why, sizeof why);
    free(buf);
    if (rv != 0)
        snprintf(err, errlen, "%s/%s: %s", log->data_dir, name, why[0] ? why : rlog_strerror(rv));
    return rv;
}

static int decode_dedup(void *table, const unsigned char *buf, size_t len, char *why,
                        size_t whylen)
{
    return rl_dedup_decode(table, buf, len, why, whylen);
}

int rl_producers_load(struct rlog *log, char *err, size_t errlen)
{
    int rv = rl_state_load(log, RL_DEDUP_FILE, decode_dedup, &log->dedup, err, errlen);
    if (rv != 0)
        return rv;
    /* Without the file (a new directory, or one of liblog 0.2) the table
     * is rebuilt from every entry the store holds. */
    uint64_t first = rl_store_first_index(log->store), visible = log->fence.visible_index;
    uint64_t from = log->dedup.applied_index + 1;
    if (from < first) {
        if (log->dedup.applied_index > 0)
            rl_log(log, 2, "producer table: it was saved at entry %" PRIu64 " and the log starts "
                   "at %" PRIu64 "; producers that appended only in between are not known",
                   log->dedup.applied_index, first);
        from = first;
    }
    /* rl_cursors_load came first; each table skips what it holds. */
    if (log->cursors.applied_index + 1 < from)
        from = log->cursors.applied_index + 1 < first ? first : log->cursors.applied_index + 1;
    rv = feed(log, from, visible, true, err, errlen);
    if (rv == 0 && log->dedup.applied_index < visible)
        log->dedup.applied_index = visible;
    if (rv == 0 && log->cursors.applied_index < visible)
        log->cursors.applied_index = visible;
    if (rv == 0 && log->fence.n > 0)
        rv = feed(log, log->fence.tail[0].index, log->fence.tail[log->fence.n - 1].index, false,
                  err, errlen);
    return rv;
}
