/*
 * counters — the monitoring primitives the layers share (rlog_metrics):
 * a log2 histogram and a per-member traffic table. Histograms take relaxed
 * atomic adds, so the thread that observes (the loop, or a threadpool job)
 * never takes a lock and a reader may run on another thread; a read racing
 * an add may miss that one observation, never more. The traffic table is
 * the loop thread's only.
 */
#ifndef RL_COMMON_COUNTERS_H
#define RL_COMMON_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "liblog.h"

struct rl_hist {
    _Atomic uint64_t sum;
    _Atomic uint64_t buckets[RLOG_HISTOGRAM_BUCKETS];
};

/* The bucket an observation v falls in: the smallest i with v <= 2^i,
 * capped at the last bucket. */
unsigned rl_hist_bucket(uint64_t v);
void rl_hist_add(struct rl_hist *h, uint64_t v);
/* Copies h out; out->count is the sum of the buckets copied. */
void rl_hist_read(const struct rl_hist *h, struct rlog_histogram *out);

/* Monotonic microseconds, for latencies. */
uint64_t rl_now_us(void);

/* Bytes to and from each member, by id; slots are never reused, so a
 * pointer to one stays valid as long as the table. Enough for
 * RLOG_MAX_PEERS members and as many replaced over a node's life. */
#define RL_TRAFFIC_SLOTS (4 * RLOG_MAX_PEERS)
struct rl_traffic {
    uint64_t id, sent, received;
};
struct rl_traffic_table {
    struct rl_traffic slot[RL_TRAFFIC_SLOTS];
};
/* The slot of member id (taken if new); NULL if id is 0 or the table is
 * full (that member's traffic is then not counted). */
struct rl_traffic *rl_traffic_of(struct rl_traffic_table *t, uint64_t id);
/* The slot of member id, or NULL if nothing was counted for it. */
const struct rl_traffic *rl_traffic_find(const struct rl_traffic_table *t, uint64_t id);

#endif
