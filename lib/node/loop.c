/*
 * loop — the loop thread's glue: the wake-up that takes queued ops from the
 * inbox and dispatches them, raft's events through the backend's hooks
 * (after each event: role changes, the fence, retention, repair, forwarded
 * calls, the batcher), and a failed stop's settling.
 */
#include "node/node.h"
#include "sm/sm.h"

#include <inttypes.h>
#include <stdio.h>

#include "raftio/io.h"

void rl_publish(struct rlog *log)
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
        rl_publish(log);
    }
    rl_visible_update(log);
    if (log->trim_offset && rl_io_snapshot_index(&log->io) != log->trim_snap)
        rl_trim_store(log); /* a newer snapshot lets the store drop more */
    rl_repair_poll(log);
    rl_members_poll(log);
    rl_sm_install_poll(log);
    rl_fwd_poll(log); /* a leader change ends forwarded calls sent to the old one */
    rl_node_pump(log);
}

static void hook_on_append(void *arg, uint64_t index, uint64_t term, uint64_t offset,
                           uint32_t records, const void *buf, uint32_t len)
{
    struct rlog *log = arg;
    struct rl_fence_entry e = {.index = index, .term = term, .offset = offset, .records = records};
    rl_fence_entry_fill(&e, buf, len);
    if (rl_fence_push(&log->fence, &e) != 0)
        rl_log(log, 3, "out of memory tracking entry %" PRIu64, index);
    int no_room = rl_dedup_note(&log->dedup, index, term, offset, buf, len);
    no_room |= rl_cursors_note(&log->cursors, index, term, buf, len);
    if (no_room)
        rl_log(log, 3, "out of memory noting the producers or cursor of entry %" PRIu64, index);
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
    rl_cursors_truncate(&log->cursors, index);
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
    rl_cursors_truncate(&log->cursors, 0);
    if (rl_cursors_reset(&log->cursors, index - 1))
        rl_log(log, 2, "cursor table: the log was reset to start after entry %" PRIu64
               "; cursors committed only before it are reported unknown here (RLOG_ETRIMMED) "
               "until committed again", index - 1);
    if (offset > log->trim_offset)
        rl_set_trim_offset(log, offset);
    rl_tindex_reset(&log->tindex, log->trim_offset);
    if (log->raft_started)
        rl_visible_published(log);
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
    /* Its ticks drop its connections (lib/raftio/io.c), which wakes quiet
     * peers waiting on it. */
    rl_io_wake(&log->io, "fail-stop");
    snprintf(log->fatal_msg, sizeof log->fatal_msg, "storage failure: %s",
             msg && msg[0] ? msg : rlog_strerror(log->fatal));
    log->stop_term = log->raft_started ? log->raft.current_term : rl_store_term(log->store);
    rl_publish(log);
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
    rl_fail_list(log, &log->pend_head, &log->pend_tail, RLOG_EFATAL);
    rl_fail_list(log, &log->open_head, &log->open_tail, RLOG_EFATAL);
    while (log->ifl_head)
        rl_ifl_settle_head(log, RLOG_EINDOUBT, 0);
    if (log->member_op) {
        struct rl_op *op = log->member_op;
        log->member_op = NULL;
        char msg[256];
        snprintf(msg, sizeof msg, "%.180s; the change may or may not take effect", log->fatal_msg);
        rl_op_fail(log, op, RLOG_EFATAL, msg);
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
        /* A leader's snapshot this node could not install yet may carry a
         * newer configuration (rl_io_vouched_address). */
        uint64_t ci = log->raft.configuration_uncommitted_index > log->raft.configuration_index
                          ? log->raft.configuration_uncommitted_index
                          : log->raft.configuration_index;
        if (rl_io_vouched_address(&log->io, id, ci, buf, len) == 0)
            return 0;
    }
    /* Not in the configuration (or none loaded yet): the peers list this
     * node was opened with. A node whose stored configuration predates a
     * membership change (down or wiped while a node was added) knows the
     * added node only from there: opened with the current membership, it
     * takes that node's messages as leader and can address its replies
     * (Raft accepts a leader outside the receiver's configuration; the
     * operator's list is what vouches for it here). */
    for (unsigned i = 0; i < log->cfg.n_peers; i++)
        if (log->peers[i].id == id) {
            snprintf(buf, len, "%s", log->peers[i].address);
            return 0;
        }
    return -1;
}

static void hook_on_tick(void *arg)
{
    struct rlog *log = arg;
    rl_quiet_tick(log);
    if (log->cfg.balance_leaders && log->raft.state == RAFT_LEADER)
        rl_balance_tick(log, rl_leader_idle(log));
    else
        rl_balance_tick(log, false);
}

static void hook_on_wake(void *arg, uint64_t from, bool was_frozen)
{
    rl_quiet_woken(arg, from, was_frozen);
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

void rl_wake_cb(uv_async_t *a)
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
        /* Work for a quiet log: its clock runs (reads and reports need
         * none). */
        if (log->raft_started && (op->kind == RL_OP_APPEND || op->kind == RL_OP_MEMBER ||
                                  op->kind == RL_OP_TRIM || op->kind == RL_OP_BARRIER ||
                                  op->kind == RL_OP_CURSOR || op->kind == RL_OP_CLOSE))
            rl_io_wake(&log->io, "a call to the log");
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
            rl_do_read(log, op);
            break;
        case RL_OP_FETCH:
            rl_do_fetch(log, op);
            break;
        case RL_OP_STATUS:
            rl_do_status(log, op);
            break;
        case RL_OP_CLOSE:
            rl_do_close(log, op);
            break;
        case RL_OP_MEMBER:
            rl_do_member(log, op);
            break;
        case RL_OP_TRIM:
            rl_do_trim(log, op);
            break;
        case RL_OP_BARRIER:
            rl_fwd_barrier(log, op);
            break;
        case RL_OP_METRICS:
            rl_metrics_collect(log, op);
            break;
        case RL_OP_CURSOR:
            rl_do_cursor(log, op);
            break;
        case RL_OP_CURSOR_GET:
            rl_do_cursor_get(log, op);
            break;
        case RL_OP_TIME:
            rl_do_time(log, op);
            break;
        }
    }
    if (!log->raft_closing)
        rl_node_pump(log);
}

/* The backend's hooks: how raft's events and questions reach the node. */
struct rl_io_hooks rl_loop_hooks(struct rlog *log)
{
    return (struct rl_io_hooks){
        .arg = log, .after_event = hook_after_event, .on_append = hook_on_append,
        .on_truncate = hook_on_truncate, .on_reset = hook_on_reset,
        .on_fatal = hook_on_fatal,
        .visible_index = hook_visible_index, .committed_index = hook_committed_index,
        .is_leader = hook_is_leader,
        .leader_id = hook_leader_id,
        .peer_address = hook_peer_address, .on_commit = rl_visible_on_commit,
        .on_tick = hook_on_tick, .on_wake = hook_on_wake,
        .log = hook_log, .on_repair_answer = rl_repair_answer,
        .snapshot_state = rl_node_state, .on_fwd = rl_fwd_recv};
}
