/*
 * members — membership changes on the leader: add (as a spare, then
 * promoted to voter once caught up), remove, transfer of leadership; one
 * at a time.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdio.h>

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

void rl_do_member(struct rlog *log, struct rl_op *op)
{
    if (!rl_leader_can_take(log, op))
        return;
    if (log->member_op) {
        rl_op_fail(log, op, RLOG_EBUSY, "another membership change is under way");
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
