/*
 * metrics — rlog_metrics and its Prometheus text (node/metrics.c): the
 * node's own counters, their hooks, the collection on the loop thread and
 * the rendering. Counters of other layers are read where they are kept:
 * the store's histograms (store.h), each member's traffic (raftio/io.h),
 * and everything rlog_status already counts.
 */
#ifndef RL_NODE_METRICS_H
#define RL_NODE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/counters.h"
#include "liblog.h"

struct rlog;
struct rl_op;

/* Owned by the loop thread (the histograms take atomic adds anyway). */
struct rl_metrics {
    struct rl_hist commit_us;     /* append call to its completion, status 0 */
    struct rl_hist entry_records; /* records per entry proposed */
    uint64_t appended_records, appended_bytes;
    uint64_t elections, leader_changes;
    uint64_t candidate_term;      /* the term of the last election counted */
    uint64_t leader;              /* the leader known at the last event */
};

/* Hooks (loop thread). An op is being answered (rl_op_finish); an entry of
 * `records` records was proposed; raft handled an event. */
void rl_metrics_answered(struct rlog *log, const struct rl_op *op);
void rl_metrics_proposed(struct rlog *log, uint64_t records);
void rl_metrics_raft_event(struct rlog *log);
/* serve.c: the RL_OP_METRICS op: fills op->metrics and finishes op. */
void rl_metrics_collect(struct rlog *log, struct rl_op *op);

/* The Prometheus text exposition (0.0.4) of m in a new NUL-terminated
 * buffer. 0 or RLOG_ENOMEM. */
/* What the text gives beyond struct rlog_metrics (whose size is part of
 * the ABI): quiescence (node/quiet.c). */
struct rl_metrics_extra {
    uint64_t quiet, quiesced, quiet_wakes;
    uint64_t preferred_leader, balance_transfers; /* balance_leaders */
    char log[64]; /* the log's cluster_name: a `log` label when set */
};
int rl_metrics_render(const struct rlog_metrics *m, const struct rl_metrics_extra *x, char **text,
                      size_t *len);

#endif
