/*
 * retention — the retention policies (rlog_config.retention_bytes,
 * retention_ms): every retention_check_ms the leader finds the trim point
 * with the time index (node/timeindex.h) and proposes it as rlog_trim
 * would (trim.c), one trim at a time, never past the committed end and
 * never the newest committed record.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdlib.h>

#include "common/env.h"
#include "sm/sm.h"

/* With a host state machine the policies never trim past the newest
 * snapshot here (this node leads), so a restart here, and a node that
 * installs that snapshot, find every record after it. */
uint64_t rl_retention_floor(struct rlog *log)
{
    return rl_sm_trim_floor(log);
}

static void trim_done(struct rl_op *op)
{
    struct rlog *log = op->done_arg;
    log->ret_busy = false;
    /* expect_offset: the trim point when it was proposed (appends only
     * use it otherwise). */
    if (op->status == 0 && op->offset > op->expect_offset)
        log->retention_trims += op->offset - op->expect_offset;
    else if (op->status != 0)
        rl_log(log, 1, "retention: the trim before offset %" PRIu64 " did not complete: %s",
               op->offset, op->errmsg[0] ? op->errmsg : rlog_strerror(op->status));
    free(op);
}

/* Records the index reads per check while it is rebuilt after open, so a
 * long log does not hold the loop thread for long: the policies catch up
 * over several checks. */
#define REBUILD_STEP 65536u

/* Where the policies put the trim point now (the current one if nowhere
 * further). The index is caught up as far as each policy needs: the age
 * policy only up to the first record young enough. */
static uint64_t policy_point(struct rlog *log, uint64_t end)
{
    struct rl_tindex_src src;
    rl_time_src(log, &src);
    uint64_t point = log->trim_offset, o;
    uint64_t upto = end - log->tindex.end > REBUILD_STEP ? log->tindex.end + REBUILD_STEP : end;
    int rv = 0;
    if (log->cfg.retention_ms) {
        uint64_t now = rl_unix_us(), age = log->cfg.retention_ms * 1000;
        uint64_t since = now > age ? now - age : 0;
        rv = rl_tindex_catch_up(&log->tindex, &src, upto, since);
        if (rv == 0)
            rv = rl_tindex_find_time(&log->tindex, &src, since, &o);
        if (rv == RLOG_ENOTFOUND) /* every record indexed is older */
            o = log->tindex.end, rv = 0;
        if (rv == 0 && o > point)
            point = o;
    }
    if (rv == 0 && log->cfg.retention_bytes) {
        rv = rl_tindex_catch_up(&log->tindex, &src, upto, UINT64_MAX);
        /* Only a whole index knows the bytes after a record. */
        if (rv == 0 && log->tindex.end == end)
            rv = rl_tindex_find_bytes(&log->tindex, &src, log->cfg.retention_bytes, &o);
        else
            o = point;
        if (rv == 0 && o > point)
            point = o;
    }
    if (rv != 0) {
        rl_log(log, 2, "retention: cannot read the log to apply the policies: %s",
               rv == RLOG_ENOMEM ? "out of memory" : rl_store_errmsg(log->store));
        return log->trim_offset;
    }
    return point;
}

static void tick(uv_timer_t *t)
{
    struct rlog *log = t->data;
    /* Only once this leader's own term shows: its commit point is then the
     * cluster's, and the index covers the whole committed log. */
    if (log->ret_busy || log->fatal || log->stopping || log->raft_closing || !log->store ||
        log->raft.state != RAFT_LEADER || log->lead_ready_term != log->raft.current_term)
        return;
    uint64_t end = log->fence.visible_offset;
    if (end <= log->trim_offset + 1)
        return;
    uint64_t point = policy_point(log, end);
    if (point > end - 1)
        point = end - 1; /* the newest committed record stays */
    uint64_t floor = rl_retention_floor(log);
    if (point > floor)
        point = floor;
    if (point <= log->trim_offset)
        return;
    struct rl_op *op = calloc(1, sizeof *op);
    if (!op)
        return; /* the next tick tries again */
    *op = (struct rl_op){.kind = RL_OP_TRIM, .offset = point, .expect_offset = log->trim_offset,
                         .done = trim_done, .done_arg = log};
    log->ret_busy = true;
    rl_log(log, 1, "retention: trimming records before offset %" PRIu64, point);
    rl_do_trim(log, op);
}

int rl_retention_start(struct rlog *log)
{
    if (!log->cfg.retention_bytes && !log->cfg.retention_ms)
        return 0;
    int rv = uv_timer_init(log->loop, &log->ret_timer);
    if (rv != 0)
        return RLOG_ENOMEM;
    log->ret_timer.data = log;
    log->ret_timer_ready = true;
    rl_node_hold(log);
    unsigned every = log->cfg.retention_check_ms ? log->cfg.retention_check_ms : 1000;
    uv_timer_start(&log->ret_timer, tick, every, every);
    return 0;
}

void rl_retention_stop(struct rlog *log)
{
    if (!log->ret_timer_ready)
        return;
    log->ret_timer_ready = false;
    uv_timer_stop(&log->ret_timer);
    rl_node_close_handle(log, (uv_handle_t *)&log->ret_timer);
}
