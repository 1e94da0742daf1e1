/*
 * host — one loop thread that many logs share (issue 16, step 1: a log on a
 * borrowed loop). The host runs the loop; each log opened on it keeps its
 * own store, raft, transport and handles, and closes only what it opened,
 * so the loop outlives every log and a log's close ends on its own last
 * handle (node/lifecycle.c, rl_node_release).
 *
 * Internal for now: the public host object (one listener and one
 * connection per peer host for every log) is the next step; see
 * lib/README.md, "Many logs per process".
 */
#ifndef RL_HOST_H
#define RL_HOST_H

#include <stdbool.h>
#include <uv.h>

struct rl_host;

/* A function to run on the host's loop thread; the caller owns the struct
 * until fn has started. */
struct rl_host_call {
    void (*fn)(void *arg);
    void *arg;
    struct rl_host_call *next;
};

/* Starts the loop thread. RLOG_ENOMEM or RLOG_EIO with err filled. */
int rl_host_start(struct rl_host **out, char *err, size_t errlen);
/* The host's loop (for the logs opened on it) and its thread's id. */
uv_loop_t *rl_host_loop(struct rl_host *h);
uv_thread_t rl_host_thread(const struct rl_host *h);
/* Queues call to run on the loop thread, in the order posted. Any thread. */
void rl_host_post(struct rl_host *h, struct rl_host_call *call);
/* Counts the logs on the host (the caller's bookkeeping: a host stops only
 * when none is left). Any thread. rl_host_log_added is false, nothing
 * counted, once a stop has begun. */
bool rl_host_log_added(struct rl_host *h);
void rl_host_log_removed(struct rl_host *h);
unsigned rl_host_logs(struct rl_host *h);
/* Whether the caller runs on the host's loop thread. */
bool rl_host_is_self(const struct rl_host *h);
/* Ends the loop thread and frees the host. RLOG_EBUSY (nothing done) while
 * a log is still open on it; RLOG_EINVAL from its own thread. */
int rl_host_stop(struct rl_host *h);
/* The same in two steps, for stopping several hosts all or none: the
 * first refuses new logs from here on, or fails as rl_host_stop does;
 * cancel takes that back, end finishes the stop. */
int rl_host_begin_stop(struct rl_host *h);
void rl_host_cancel_stop(struct rl_host *h);
void rl_host_end_stop(struct rl_host *h);

#endif
