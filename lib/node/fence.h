/*
 * fence — which log entries may be shown (lib/README.md, guard 1).
 *
 * libraft 0.15 advances its commit index when a majority stores an entry,
 * whatever that entry's term (Raft's Figure 8: such an entry can still be
 * overwritten by a later leader). An entry is safe once an entry of the
 * *current* term at or after it is committed: only the leader of that term
 * made it, and it reached a majority. So the fence passes the longest prefix
 * ending at an entry that is committed, durable here, and of the current
 * term, and never moves back.
 *
 * Pure bookkeeping, no I/O: the node feeds it appends and truncations as the
 * backend makes them, and asks it to advance after every Raft event.
 */
#ifndef RL_NODE_FENCE_H
#define RL_NODE_FENCE_H

#include <stddef.h>
#include <stdint.h>

struct rl_fence_entry {
    uint64_t index, term, offset;
    uint32_t records;
    uint64_t trim_before; /* a retention command: records before this go */
    /* A batch's time and record bytes (node/timeindex.h); bytes is
     * UINT64_MAX where the payload could not be read (damage). */
    uint64_t ts, bytes;
};

struct rl_fence {
    struct rl_fence_entry *tail; /* entries after the fence, ascending */
    size_t n, cap;
    uint64_t visible_index;      /* last entry shown */
    uint64_t visible_offset;     /* records [0, visible_offset) shown */
    /* The newest commit notice from a leader (entry notice_index of term
     * notice_term is committed): kept, because on a follower it often
     * arrives before the entry is durable here. */
    uint64_t notice_index, notice_term;
};

void rl_fence_init(struct rl_fence *f, uint64_t visible_index, uint64_t visible_offset);
void rl_fence_free(struct rl_fence *f);
/* An entry was appended; any entries at or after its index are replaced.
 * 0 or RLOG_ENOMEM. */
int rl_fence_push(struct rl_fence *f, const struct rl_fence_entry *e);
/* Entries from index on were truncated. */
void rl_fence_truncate(struct rl_fence *f, uint64_t index);
/* Advances past every entry up to the last one with index <= min(commit,
 * durable) and term == term, calling passed() for each, in order. Returns
 * how many entries it passed. */
size_t rl_fence_advance(struct rl_fence *f, uint64_t commit, uint64_t term, uint64_t durable,
                        void (*passed)(void *arg, const struct rl_fence_entry *e), void *arg);

/* The index rl_fence_advance would move the fence to with these arguments,
 * or 0 if it would not move. */
uint64_t rl_fence_reach(const struct rl_fence *f, uint64_t commit, uint64_t term,
                        uint64_t durable);
/* A leader says its entry `index` of term `term` is committed. Every entry
 * of this log with that term at or below that index is that leader's own
 * (an index and a term name one entry), and so is its prefix (Log
 * Matching): committed. Remembers the notice if newer than the one held,
 * then advances as rl_fence_follow. Returns how many entries it passed. */
size_t rl_fence_notice(struct rl_fence *f, uint64_t index, uint64_t term, uint64_t durable,
                       void (*passed)(void *arg, const struct rl_fence_entry *e), void *arg);
/* Advances by the remembered notice, up to `durable`. */
size_t rl_fence_follow(struct rl_fence *f, uint64_t durable,
                       void (*passed)(void *arg, const struct rl_fence_entry *e), void *arg);

#endif
