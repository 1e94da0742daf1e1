/*
 * Bounds on what peers can make this node hold (hardening): catch-up
 * fetches served at once and the bytes read for them, and the RequestVote /
 * TimeoutNow messages held back while appends are in flight. The node sets
 * them from its configuration after rl_io_init; a bound of 0 is taken as 1.
 * What a bound refused is counted (rl_io_bound_stats) and logged once.
 */
#ifndef RL_RAFTIO_BOUNDS_H
#define RL_RAFTIO_BOUNDS_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

struct rl_io_bounds {
    unsigned fetch_serve_max;   /* fetch requests served at once, all peers */
    uint64_t fetch_serve_bytes; /* bytes read for them and not yet sent */
    unsigned held_max;          /* RequestVote/TimeoutNow held at once */
};

struct rl_io_bound_stats {
    uint64_t fetch_serve_refused; /* fetch requests dropped by a bound */
    uint64_t held_dropped;        /* held messages dropped (the oldest) */
};

/* State kept in struct io (internal.h). */
struct rl_io_harden {
    struct rl_io_bounds bounds;
    struct rl_io_bound_stats stats;
    unsigned serving;            /* fetch answers read and not yet sent */
    uint64_t serving_bytes;      /* their entry bytes */
    struct serve *serves;        /* the same answers, to find a peer's */
    unsigned held;               /* messages in io->held_head's queue */
    bool warned_fetch, warned_held;
};

void rl_io_set_bounds(struct raft_io *io, const struct rl_io_bounds *bounds);
void rl_io_bound_stats(struct raft_io *io, struct rl_io_bound_stats *out);

#endif
