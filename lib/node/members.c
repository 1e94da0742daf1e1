/*
 * members — membership changes on the leader: add (as a spare, then
 * promoted to voter once caught up), remove, transfer of leadership; one
 * at a time.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
    log->member_promoting = false;
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

/* The server `id` in the current configuration, or NULL. */
static const struct raft_server *member(const struct rlog *log, uint64_t id)
{
    const struct raft_configuration *c = &log->raft.configuration;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id)
            return &c->servers[i];
    return NULL;
}

/* Whether the node being added is a voter in a committed configuration. */
static bool promoted(const struct rlog *log)
{
    const struct raft_server *s = member(log, log->member_op->member_id);
    return s && s->role == RAFT_VOTER && log->raft.configuration_uncommitted_index == 0;
}

static void promote_cb(struct raft_change *req, int status)
{
    struct rlog *log = req->data;
    /* libraft 0.15 completes a pending change when any configuration entry
     * commits: a new leader committing the add made by its predecessor
     * "completed" the promotion it had just begun, while the node was still
     * a spare (found by the simulator, scenario sm-join). The add is done
     * only once the node is a voter in a committed configuration. */
    if (status == 0 && log->member_op && !promoted(log)) {
        log->member_promoting = true;
        return;
    }
    member_done(log, status, "promoting node");
}

void rl_members_poll(struct rlog *log)
{
    if (!log->member_op || !log->member_promoting)
        return;
    if (log->raft.state != RAFT_LEADER) {
        member_done(log, RAFT_LEADERSHIPLOST, "promoting node");
        return;
    }
    const struct raft_server *s = member(log, log->member_op->member_id);
    if (promoted(log))
        member_done(log, 0, "promoting node");
    else if (!s || (s->role != RAFT_VOTER && log->raft.leader_state.promotee_id != s->id)) {
        struct rl_op *op = log->member_op;
        log->member_op = NULL;
        log->member_promoting = false;
        char msg[160];
        snprintf(msg, sizeof msg, "promoting node %" PRIu64 ": its catch-up ended before it "
                 "became a voter; add it again to resume", op->member_id);
        rl_op_fail(log, op, RLOG_EIO, msg);
    }
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

/* An add whose promotion was cut short (leadership lost, the node
 * unreachable while it caught up) leaves the node in the configuration as a
 * spare. Adding it again resumes at the promotion, instead of failing on
 * the duplicate id forever. Returns false if the op failed here. */
static bool check_add(struct rlog *log, struct rl_op *op, const struct raft_server *s)
{
    char msg[160];
    if (strcmp(s->address, op->member_addr) != 0)
        snprintf(msg, sizeof msg, "node %" PRIu64 " is already a member, at %s, not %s", op->member_id,
                 s->address, op->member_addr);
    else if (s->role == RAFT_VOTER)
        snprintf(msg, sizeof msg, "node %" PRIu64 " is already a voter", op->member_id);
    else
        return true;
    rl_op_fail(log, op, RLOG_EINVAL, msg);
    return false;
}

void rl_do_member(struct rlog *log, struct rl_op *op)
{
    if (!rl_leader_can_take(log, op))
        return;
    if (log->member_op) {
        rl_op_fail(log, op, RLOG_EBUSY, "another membership change is under way");
        return;
    }
    const struct raft_server *known =
        op->member_kind == RL_MEMBER_ADD ? member(log, op->member_id) : NULL;
    if (known && !check_add(log, op, known))
        return;
    log->member_op = op;
    log->member_promoting = false;
    log->change.data = log;
    int rv;
    const char *what;
    switch (op->member_kind) {
    case RL_MEMBER_ADD:
        what = "adding node";
        if (known) {
            rl_log(log, 1, "node %" PRIu64 " at %s is a member but not a voter: promoting it",
                   op->member_id, op->member_addr);
            rv = raft_assign(&log->raft, &log->change, op->member_id, RAFT_VOTER, promote_cb);
            break;
        }
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
