/*
 * ops — answering the operations host threads queue (rl_op_finish: a
 * callback, a waiter, or stepped mode's done), failing them with a clear
 * message (not the leader, closing, failed stop), their places among the
 * appends in flight (backpressure), and the node's log line.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

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
    if (op->kind == RL_OP_APPEND && log->finishing(log, op))
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

void rl_op_fail(struct rlog *log, struct rl_op *op, int status, const char *msg)
{
    op->status = status;
    snprintf(op->errmsg, sizeof op->errmsg, "%s", msg ? msg : rlog_strerror(status));
    rl_op_finish(log, op);
}

void rl_not_leader_msg(struct rlog *log, char *buf, size_t len)
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
void rl_fail_list(struct rlog *log, struct rl_op **head, struct rl_op **tail, int status)
{
    char msg[256];
    if (status == RLOG_ENOTLEADER)
        rl_not_leader_msg(log, msg, sizeof msg);
    else if (status == RLOG_EFATAL)
        snprintf(msg, sizeof msg, "append refused, nothing appended: this node failed stop: %.180s",
                 log->fatal_msg);
    else
        snprintf(msg, sizeof msg, "%s", rlog_strerror(status));
    while (*head) {
        struct rl_op *op = *head;
        *head = op->next;
        rl_op_fail(log, op, status, msg);
    }
    *tail = NULL;
}

/* For operations only a leader takes: false (op failed) if this node
 * cannot take it now. */
bool rl_leader_can_take(struct rlog *log, struct rl_op *op)
{
    if (log->raft_closing || log->fatal || !log->store) {
        rl_op_fail(log, op, log->fatal ? RLOG_EFATAL : RLOG_ECLOSED,
                log->fatal ? log->fatal_msg : "log is closing");
        return false;
    }
    if (log->raft.state != RAFT_LEADER) {
        char msg[256];
        rl_not_leader_msg(log, msg, sizeof msg);
        rl_op_fail(log, op, RLOG_ENOTLEADER, msg);
        return false;
    }
    return true;
}
