/*
 * api — what the files of the public calls share (api.c, submit.c, iter.c,
 * sub.c, metrics.c): the thread's error message, the call queue onto the
 * loop thread, and what a host thread may read without it.
 */
#ifndef RL_NODE_API_H
#define RL_NODE_API_H

#include <stdbool.h>
#include <stdint.h>

#include "node/node.h"

/* errmsg.c: sets what rlog_errmsg returns on this thread; returns code. */
int rl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* RLOG_EFATAL with the cause after `what` (which ends in ": " or is ""):
 * the loop thread publishes the cause under mu. */
int rl_fail_stopped(rlog *log, const char *what);

/* queue.c: runs op on the loop and waits; returns its status (and sets the
 * thread's message). op stays the caller's. */
int rl_run_blocking(rlog *log, struct rl_op *op);

/* iter.c: what a host thread may read at `offset` without the loop thread:
 * false when only the loop can answer (closing, or trimmed there); else
 * *visible is the published commit point and *failed whether the node
 * failed stop (then that point moves no more). */
bool rl_published_readable(rlog *log, uint64_t offset, uint64_t *visible, bool *failed);

#endif
