/*
 * queue — the call queue onto the loop thread: host threads (and the loop
 * itself, for a forwarded call) queue ops in the inbox and wake the loop;
 * a blocking call waits on a per-call condition variable.
 */
#include "node/api.h"

/* Queues op to the loop; fails it (no callback) if the node is not taking work. */
int rl_submit(rlog *log, struct rl_op *op)
{
    pthread_mutex_lock(&log->mu);
    if (!log->accepting) {
        int fatal = log->pub_fatal;
        pthread_mutex_unlock(&log->mu);
        return fatal ? rl_fail_stopped(log, "") : rl_fail(RLOG_ECLOSED, "log is closing");
    }
    op->next = NULL;
    if (log->inbox_tail)
        log->inbox_tail->next = op;
    else
        log->inbox_head = op;
    log->inbox_tail = op;
    pthread_mutex_unlock(&log->mu);
    uv_async_send(&log->wake);
    return 0;
}

bool rl_on_loop_thread(rlog *log)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &log->thread);
}

/* Runs op on the loop and waits; returns its status. op stays the caller's. */
int rl_run_blocking(rlog *log, struct rl_op *op)
{
    if (rl_on_loop_thread(log))
        return rl_fail(RLOG_EINVAL, "blocking call from a liblog callback would deadlock");
    struct rl_waiter w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    op->waiter = &w;
    int rv = rl_submit(log, op);
    if (rv == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rv = op->status;
        if (rv != 0)
            rl_fail(rv, "%s", op->errmsg);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rv;
}
