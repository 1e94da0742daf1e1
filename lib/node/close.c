/*
 * close — rlog_close on the loop thread: hand leadership over first (so
 * the cluster does not wait out an election), then close raft (and through
 * it the backend and the store), answering every op still held.
 */
#include "node/node.h"

#include <stdio.h>

static void raft_closed_cb(struct raft *r)
{
    struct rlog *log = r->data;
    /* Entries libraft had applied but the fence had not passed: every
     * append is answered exactly once, so they are answered now. */
    while (log->ifl_head) {
        log->ifl_head->apply_done = true;
        rl_ifl_settle_head(log, RLOG_EINDOUBT, 0);
    }
    log->raft_closed = true;
    log->store = NULL; /* closed by io->close */
    rl_batch_builder_free(&log->bb);
    rl_cache_clear(&log->cache); /* iterators may still look: it stays usable */
    if (log->wake_ready) {
        log->wake_ready = false;
        rl_node_close_handle(log, (uv_handle_t *)&log->close_timer);
        rl_node_close_handle(log, (uv_handle_t *)&log->wake);
    }
    /* The close op completes when the last of the node's handles and work
     * is gone (node_ended, lifecycle.c). */
    rl_node_release(log);
}

void rl_store_unshare(struct rlog *log)
{
    pthread_mutex_lock(&log->mu);
    log->shared_store = NULL;
    /* Each read under way is one walk of a segment file: short. */
    while (log->store_readers > 0)
        pthread_cond_wait(&log->store_cv, &log->mu);
    pthread_mutex_unlock(&log->mu);
}

static void begin_raft_close(struct rlog *log)
{
    if (log->raft_closing)
        return;
    log->raft_closing = true;
    rl_store_unshare(log);
    rl_fwd_close(log);
    if (log->member_op) {
        struct rl_op *op = log->member_op;
        log->member_op = NULL;
        rl_op_fail(log, op, RLOG_ECLOSED, "log is closing");
    }
    rl_producers_stop(log);
    rl_retention_stop(log);
    rl_fail_list(log, &log->pend_head, &log->pend_tail, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED);
    rl_fail_list(log, &log->open_head, &log->open_tail, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED);
    rl_node_hold(log); /* released when raft (io, store) has closed */
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

void rl_do_close(struct rlog *log, struct rl_op *op)
{
    if (log->stopping) { /* a second rlog_close queued beside the first */
        rl_op_fail(log, op, RLOG_ECLOSED, "log is closing");
        return;
    }
    pthread_mutex_lock(&log->mu);
    log->accepting = false;
    pthread_cond_broadcast(&log->visible_cv); /* waiters see the close */
    pthread_cond_broadcast(&log->room_cv);
    pthread_mutex_unlock(&log->mu);
    log->stopping = true;
    log->close_op = op;
    log->ending = true;
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
