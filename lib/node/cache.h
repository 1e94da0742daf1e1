/*
 * cache — the most recent entries' payloads in memory, so tail readers,
 * iterators and subscribers following the log do not touch the segment
 * files. Filled as entries are appended (by replication or catch-up),
 * dropped from the truncation point on, evicted oldest first past the byte
 * budget. Only entries that carry records are kept: those are what reads
 * look for, by record offset. Loop thread only.
 */
#ifndef RL_NODE_CACHE_H
#define RL_NODE_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct rl_cache_entry {
    uint64_t index, offset;
    uint32_t records;
    uint32_t len;
    unsigned char *data;
};

struct rl_cache {
    struct rl_cache_entry *ring;
    size_t cap, head, n; /* ring[head .. head+n) ascending by index */
    uint64_t bytes, budget;
    uint64_t hits, misses;
};

void rl_cache_init(struct rl_cache *c, uint64_t budget);
void rl_cache_free(struct rl_cache *c);
/* Copies the payload in (entries larger than the budget are skipped). */
void rl_cache_put(struct rl_cache *c, uint64_t index, uint64_t offset, uint32_t records,
                  const void *buf, uint32_t len);
void rl_cache_truncate(struct rl_cache *c, uint64_t index);
/* The entry holding record `offset`, or NULL (counted as a hit or miss). */
const struct rl_cache_entry *rl_cache_find(struct rl_cache *c, uint64_t offset);

#endif
