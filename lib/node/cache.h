/*
 * cache — the most recent entries' payloads in memory, so tail readers,
 * iterators and subscribers following the log do not touch the segment
 * files. Filled as entries are appended (by replication or catch-up),
 * dropped from the truncation point on, evicted oldest first past the byte
 * budget. Only entries that carry records are kept: those are what reads
 * look for, by record offset.
 *
 * The loop thread changes it; iterators on host threads copy from it
 * (rl_cache_copy) without a trip to the loop thread. Every function takes
 * the cache's lock, and hands out copies only: a pool's trim may evict
 * from any thread.
 *
 * A pool (logs on one rlog_host) bounds the caches in it together: when
 * a put leaves the pool over its budget, the caches holding the most above
 * the pool's floor give up their oldest entries until it is back under (or
 * every cache is at its floor), whichever log's thread put. So the pool's
 * caches hold at most budget + (caches x floor) bytes: a cache over the
 * floor got there only while the pool had room. Lock order: the pool's,
 * then a cache's; a put takes its cache's alone, then the pool's.
 */
#ifndef RL_NODE_CACHE_H
#define RL_NODE_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rl_cache_entry {
    uint64_t index, offset;
    uint32_t records;
    uint32_t len;
    unsigned char *data;
};

struct rl_cache_pool;

struct rl_cache {
    pthread_mutex_t mu;
    struct rl_cache_entry *ring;
    size_t cap, head, n; /* ring[head .. head+n) ascending by index */
    uint64_t bytes, budget;
    uint64_t hits, misses;
    /* In a pool: bytes as the pool sees it (read without mu), and the
     * pool's list, under the pool's lock. */
    struct rl_cache_pool *pool;
    _Atomic uint64_t held;
    struct rl_cache *pool_next, *pool_prev;
};

struct rl_cache_pool {
    pthread_mutex_t mu;
    uint64_t budget, floor;
    _Atomic uint64_t total;
    struct rl_cache *members;
};

/* A run of entries for an iterator, back to back: per entry {u64 offset of
 * its first record, u32 records visible, u32 payload length, payload padded
 * to 8 bytes}. */
struct rl_chunk {
    unsigned char *p;
    size_t len, cap;
};

/* Appends one entry to the chunk. 0 or RLOG_ENOMEM. */
int rl_chunk_add(struct rl_chunk *ch, uint64_t offset, uint32_t visible, const void *buf,
                 uint32_t len);

/* One entry of a chunk as rl_chunk_next reads it: its first record's
 * offset, its visible records, its payload (len bytes, inside the chunk). */
struct rl_chunk_entry {
    uint64_t offset;
    uint32_t visible, len;
    const unsigned char *buf;
};

/* Reads the entry at *pos of a chunk of `len` bytes at p (built by
 * rl_chunk_add) and moves *pos to the next: true, or false at the end. So
 * only this file knows the chunk's layout. */
bool rl_chunk_next(const unsigned char *p, size_t len, size_t *pos, struct rl_chunk_entry *e);

void rl_cache_pool_init(struct rl_cache_pool *p, uint64_t budget, uint64_t floor);
/* Its caches must have left it (rl_cache_free). */
void rl_cache_pool_free(struct rl_cache_pool *p);
/* Bytes held by the pool's caches together. */
uint64_t rl_cache_pool_total(struct rl_cache_pool *p);

void rl_cache_init(struct rl_cache *c, uint64_t budget);
/* Puts an empty cache into pool (before it is used). */
void rl_cache_join(struct rl_cache *c, struct rl_cache_pool *pool);
/* Drops every entry; the cache stays usable (and empty). */
void rl_cache_clear(struct rl_cache *c);
/* Leaves the pool, if in one, and frees the entries. */
void rl_cache_free(struct rl_cache *c);
/* Copies the payload in (entries larger than the budget are skipped). */
void rl_cache_put(struct rl_cache *c, uint64_t index, uint64_t offset, uint32_t records,
                  const void *buf, uint32_t len);
void rl_cache_truncate(struct rl_cache *c, uint64_t index);
/* A copy of the entry holding record `offset` (its data malloc'd, the
 * caller's to free): 0 (a hit), 1 if not cached (a miss), RLOG_ENOMEM. */
int rl_cache_get(struct rl_cache *c, uint64_t offset, struct rl_cache_entry *copy);
/* Any thread: appends to *out the consecutive cached entries from the one
 * holding record `offset`, only their records below `visible`, until *out
 * holds `budget` bytes. Returns how many entries (0 if `offset` is not
 * cached, not counted as a miss: the caller asks the loop thread then), or
 * stops early without error if memory runs out. */
size_t rl_cache_copy(struct rl_cache *c, uint64_t offset, uint64_t visible, size_t budget,
                     struct rl_chunk *out);
/* Any thread: copies record `offset` (below `visible`) into a malloc'd
 * *buf. 0 if served (a hit), 1 if that entry is not cached or does not
 * parse (the caller asks the loop thread, which reports why), or
 * RLOG_ENOMEM. */
int rl_cache_read(struct rl_cache *c, uint64_t offset, uint64_t visible, void **buf, size_t *len);
/* Any thread: counts a read that missed the cache (served elsewhere). */
void rl_cache_note_miss(struct rl_cache *c);
/* Bytes held, hits and misses, read together. */
void rl_cache_stats(struct rl_cache *c, uint64_t *bytes, uint64_t *hits, uint64_t *misses);

#endif
