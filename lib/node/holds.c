/*
 * holds — when a log has ended. A log on a loop it shares with others (a
 * host's) cannot wait for uv_run to return: it counts what is still under
 * way (its handles, raft's close, queued installer work), and its close op
 * completes, or its failed open is told, when the count reaches zero.
 */
#include "node/node.h"

#include <stdio.h>

void rl_node_hold(struct rlog *log)
{
    log->holds++;
}

/* The last of a closing or failed log: its close op completes (the host's
 * rlog_close then frees log), or the opener hears why the open failed. */
static void node_ended(struct rlog *log)
{
    if (log->close_op) {
        struct rl_op *op = log->close_op;
        log->close_op = NULL;
        op->status = log->fatal; /* the host learns of the stop here too */
        snprintf(op->errmsg, sizeof op->errmsg, "%s", log->fatal_msg);
        rl_op_finish(log, op);
        return;
    }
    pthread_mutex_lock(&log->mu);
    log->open_done = true;
    pthread_cond_signal(&log->open_cv);
    pthread_mutex_unlock(&log->mu);
}

void rl_node_release(struct rlog *log)
{
    if (--log->holds == 0 && log->ending)
        node_ended(log);
}

static void handle_closed(uv_handle_t *h)
{
    rl_node_release(h->data);
}

void rl_node_close_handle(struct rlog *log, uv_handle_t *h)
{
    h->data = log;
    uv_close(h, handle_closed);
}
