/*
 * timeindex — a sparse index of the committed log by batch time and by
 * record bytes, for rlog_offset_for_time and the retention policies.
 *
 * It holds one block per `every` batches (record-bearing entries): the
 * block's first record offset, the record bytes before it, and the newest
 * batch time within it and up to it (a running maximum, so answers move
 * forward with time even where a new leader's clock is behind). Memory is
 * 32 bytes per block. A lookup is a binary search over the blocks and then
 * a scan of at most one block's batches through `src` (from the read cache
 * or the store): O(log(n / every)) + `every` entry reads.
 *
 * Only committed batches are fed (from the visibility fence), in log order,
 * so an uncommitted suffix is never indexed; rl_tindex_truncate exists for
 * a log that is cut back anyway. The index may lag the committed end (it is
 * empty after open, and after a reset): rl_tindex_catch_up reads the
 * missing batches through `src`, only as far as a lookup needs, and batches
 * fed after a gap are ignored until then. The running maximum and the byte
 * count start at the index's first offset: records trimmed no longer count.
 *
 * Pure bookkeeping plus reads through `src`; loop thread only.
 */
#ifndef RL_NODE_TIMEINDEX_H
#define RL_NODE_TIMEINDEX_H

#include <stddef.h>
#include <stdint.h>

/* A batch as `src` reads it: the one holding a given record offset. */
struct rl_tindex_batch {
    uint64_t base;             /* its first record's offset */
    uint32_t records;          /* >= 1 */
    uint64_t ts;               /* its leader's wall clock when formed (us) */
    uint64_t bytes;            /* its records' bytes */
    const unsigned char *ends; /* u32 LE: the end of each record within them */
    void *owned;               /* for src->release */
};

struct rl_tindex_src {
    /* The batch holding record `offset`: 0 or an RLOG_E* code. */
    int (*read)(void *arg, uint64_t offset, struct rl_tindex_batch *b);
    void (*release)(void *arg, struct rl_tindex_batch *b);
    void *arg;
};

struct rl_tindex_block {
    uint64_t offset; /* its first record (block 0: the index's first offset) */
    uint64_t bytes;  /* record bytes before its first batch */
    uint64_t bmax;   /* the newest batch time within it */
    uint64_t pmax;   /* the newest batch time from the index's start through it */
};

struct rl_tindex {
    struct rl_tindex_block *b;
    size_t n, cap;
    uint64_t first, end; /* records [first, end) are indexed */
    uint64_t bytes;      /* record bytes before `end` (from an arbitrary origin) */
    unsigned every;      /* batches per block */
    unsigned fill;       /* batches in the last block */
};

#define RL_TINDEX_EVERY 32u

void rl_tindex_init(struct rl_tindex *t, unsigned every, uint64_t first);
void rl_tindex_free(struct rl_tindex *t);
/* Empties the index; it starts again at `first` (a reset, a failed scan). */
void rl_tindex_reset(struct rl_tindex *t, uint64_t first);
/* A committed batch, in log order. 0; 1 if it does not follow the indexed
 * end (ignored: rl_tindex_catch_up reads it later); RLOG_ENOMEM. */
int rl_tindex_add(struct rl_tindex *t, uint64_t base, uint32_t records, uint64_t ts,
                  uint64_t bytes);
/* Reads batches from the indexed end up to `upto` (the committed end),
 * stopping early once the running maximum reaches `until_ts` (UINT64_MAX:
 * never early). 0 or the
 * read's error (the index keeps what it had read). */
int rl_tindex_catch_up(struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t upto,
                       uint64_t until_ts);
/* Records before `first` were trimmed. Rescans what is left of the first
 * block through src (at most one block); on a read error the index starts
 * over at `first` (rebuilt by the next catch-up). */
void rl_tindex_trim(struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t first);
/* Records from `end` on are gone. Same rescan, of the last block. */
void rl_tindex_truncate(struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t end);
/* The first indexed record whose batch time, or an earlier indexed
 * record's, is at or after ts. 0; RLOG_ENOTFOUND (none that late: *offset
 * is the indexed end); or a read's error. Call rl_tindex_catch_up first. */
int rl_tindex_find_time(const struct rl_tindex *t, const struct rl_tindex_src *src, uint64_t ts,
                        uint64_t *offset);
/* The smallest offset o >= first such that the records [o, end) hold at
 * most `keep` bytes (end when even the last record holds more). 0 or a
 * read's error. Needs the index caught up to the end it is asked about. */
int rl_tindex_find_bytes(const struct rl_tindex *t, const struct rl_tindex_src *src,
                         uint64_t keep, uint64_t *offset);

#endif
