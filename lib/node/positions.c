/*
 * positions — named consumer positions (rlog_cursor_*) on the loop thread:
 * a commit becomes a cursor command proposed by the leader (a batch with
 * no records, batch.h RL_BATCH_CURSOR; a follower forwards it, node/
 * forward.c), and is answered when the fence shows it, after visible.c
 * has put it into the table (node/cursors.h). A get reads the table here.
 *
 * Persistence: the table is saved as CURSORS beside PRODUCERS before each
 * snapshot descriptor (rl_node_state); at open it is decoded and the
 * committed entries after it are replayed from the store. A directory of
 * liblog 0.3 has no CURSORS: its log holds no cursor command, so the
 * table is rebuilt whole from the entries the store holds.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"

#define DEFAULT_MAX_CURSORS 1024

void rl_do_cursor(struct rlog *log, struct rl_op *op)
{
    if (log->raft_closing || log->fatal || !log->store || log->stopping) {
        rl_op_fail(log, op, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED,
                   log->fatal ? log->fatal_msg : "log is closing");
        return;
    }
    if (log->raft.state != RAFT_LEADER) {
        rl_fwd_cursor(log, op);
        return;
    }
    /* The committed end as this leader shows it: a cursor never points past
     * what a consumer could have read. */
    if (op->offset > log->fence.visible_offset &&
        log->lead_ready_term != log->raft.current_term) {
        /* Just elected: what the last leader committed may not be shown
         * here yet, so "beyond the end" cannot be told from "not yet". */
        snprintf(op->errmsg, sizeof op->errmsg,
                 "cursor %s: leader %" PRIu64 " was just elected and shows %" PRIu64
                 " records so far; nothing committed, try again", op->cursor_name,
                 log->cfg.id, log->fence.visible_offset);
        op->status = RLOG_EAGAIN;
        rl_op_finish(log, op);
        return;
    }
    if (op->offset > log->fence.visible_offset) {
        snprintf(op->errmsg, sizeof op->errmsg,
                 "cursor %s: offset %" PRIu64 " is beyond the committed end of the log (%" PRIu64
                 " records committed)", op->cursor_name, op->offset, log->fence.visible_offset);
        op->status = RLOG_EINVAL;
        rl_op_finish(log, op);
        return;
    }
    size_t len = 0;
    void *buf = rl_batch_cursor(op->cursor_name, strlen(op->cursor_name), op->offset,
                                rl_unix_us(), &len);
    if (!buf) {
        rl_op_fail(log, op, RLOG_ENOMEM, "out of memory building a cursor command");
        return;
    }
    rl_propose(log, buf, len, op, 0);
}

void rl_do_cursor_get(struct rlog *log, struct rl_op *op)
{
    const struct rl_cursors *t = &log->cursors;
    int rv = rl_cursors_lookup(t, op->cursor_name, strlen(op->cursor_name), &op->first_offset);
    op->status = rv;
    if (rv == RLOG_ENOTFOUND)
        snprintf(op->errmsg, sizeof op->errmsg, "no cursor named %s (none committed, or "
                 "forgotten: max_cursors is %u)", op->cursor_name, t->max);
    else if (rv == RLOG_ETRIMMED)
        snprintf(op->errmsg, sizeof op->errmsg, "cursor %s is not known on this node: it "
                 "received the log only from entry %" PRIu64 " on (a peer had trimmed what came "
                 "before), and the cursor was not committed since; ask another node or commit "
                 "it again", op->cursor_name, t->gap_index + 1);
    rl_op_finish(log, op);
}

int rl_positions_init(struct rlog *log)
{
    unsigned max = log->cfg.max_cursors ? log->cfg.max_cursors : DEFAULT_MAX_CURSORS;
    return rl_cursors_init(&log->cursors, max);
}

/* ---- persistence ------------------------------------------------------------------ */

int rl_node_state(void *arg, unsigned i, const char **name, void **buf, size_t *len)
{
    struct rlog *log = arg;
    *buf = NULL;
    *len = 0;
    if (i == 0)
        return rl_producers_state(arg, name, buf, len);
    *name = NULL;
    if (i > 1)
        return 0;
    *name = RL_CURSORS_FILE;
    unsigned char *b;
    int rv = rl_cursors_encode(&log->cursors, &b, len);
    *buf = rv == 0 ? b : NULL;
    return rv;
}

/* The table being loaded, and whether a file held it. */
struct loading {
    struct rl_cursors *t;
    bool found;
};

static int decode_cursors(void *arg, const unsigned char *buf, size_t len, char *why,
                          size_t whylen)
{
    struct loading *l = arg;
    l->found = true;
    return rl_cursors_decode(l->t, buf, len, why, whylen);
}

/* Before rl_producers_load, which replays the entries after both saved
 * tables into both. */
int rl_cursors_load(struct rlog *log, char *err, size_t errlen)
{
    struct loading l = {&log->cursors, false};
    int rv = rl_state_load(log, RL_CURSORS_FILE, decode_cursors, &l, err, errlen);
    if (rv != 0)
        return rv;
    uint64_t first = rl_store_first_index(log->store), applied = l.t->applied_index;
    /* A saved table older than the store's first entry missed what was
     * dropped in between; so did one saved as a catch-up reset its log
     * (applied 0). Without a file the directory is of liblog 0.3, whose
     * log holds no cursor command: nothing is missed. */
    if (l.found && applied + 1 < first) {
        rl_log(log, 2, "cursor table: saved at entry %" PRIu64 ", the log starts at %" PRIu64
               "; cursors not committed since are reported unknown here", applied, first);
        rl_cursors_reset(l.t, first - 1);
    }
    return 0;
}
