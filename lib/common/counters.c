/* counters — see counters.h. */
#include "common/counters.h"

#include <time.h>

uint64_t rlog_histogram_bound(unsigned i)
{
    return i < RLOG_HISTOGRAM_BUCKETS - 1 ? (uint64_t)1 << i : UINT64_MAX;
}

unsigned rl_hist_bucket(uint64_t v)
{
    if (v <= 1)
        return 0;
    unsigned i = 64u - (unsigned)__builtin_clzll(v - 1); /* ceil(log2 v) */
    return i < RLOG_HISTOGRAM_BUCKETS - 1 ? i : RLOG_HISTOGRAM_BUCKETS - 1;
}

void rl_hist_add(struct rl_hist *h, uint64_t v)
{
    atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->buckets[rl_hist_bucket(v)], 1, memory_order_relaxed);
}

void rl_hist_read(const struct rl_hist *h, struct rlog_histogram *out)
{
    out->count = 0;
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    for (unsigned i = 0; i < RLOG_HISTOGRAM_BUCKETS; i++) {
        out->buckets[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        out->count += out->buckets[i];
    }
}

uint64_t rl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct rl_traffic *rl_traffic_of(struct rl_traffic_table *t, uint64_t id)
{
    if (id == 0)
        return NULL;
    for (unsigned i = 0; i < RL_TRAFFIC_SLOTS; i++) {
        if (t->slot[i].id == id)
            return &t->slot[i];
        if (t->slot[i].id == 0) {
            t->slot[i].id = id;
            return &t->slot[i];
        }
    }
    return NULL;
}

const struct rl_traffic *rl_traffic_find(const struct rl_traffic_table *t, uint64_t id)
{
    for (unsigned i = 0; i < RL_TRAFFIC_SLOTS && t->slot[i].id; i++)
        if (t->slot[i].id == id)
            return &t->slot[i];
    return NULL;
}
