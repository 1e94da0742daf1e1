/*
 * dedup — the producer table: for each recent producer, the sequence
 * numbers of its last calls (rlog_append_ex) and the offsets they got.
 *
 * It is replicated state: every node builds it from the committed log in
 * log order (rl_dedup_shown, as the commit fence shows each entry), so all
 * nodes that have shown the same entries hold the same table, byte for
 * byte (rl_dedup_digest). Only the leader judges calls against it
 * (node/producers.c), and only once everything before its own term is
 * shown here; the entries then carry the runs it let through.
 *
 * Bounded: at most max_producers producers (the one whose last run is
 * oldest in log order goes first) and window runs each (the oldest
 * sequence goes first). Eviction depends only on the log, so it is the
 * same everywhere.
 *
 * Persistence: rl_dedup_encode gives the table as of applied_index, which
 * lib/raftio saves next to each snapshot descriptor (file PRODUCERS); at
 * open the node decodes it and replays the committed entries after
 * applied_index from the store (rl_dedup_apply_entry).
 */
#ifndef RL_NODE_DEDUP_H
#define RL_NODE_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_DEDUP_FILE "PRODUCERS"

struct rl_producer;
struct rl_dedup_note;

struct rl_dedup {
    unsigned max_producers, window;
    struct rl_producer **buckets;
    size_t nbuckets, n;
    struct rl_producer *oldest, *newest; /* by their last run's log index */
    uint64_t applied_index;              /* the last entry fed in */
    /* Entries stored here and not yet shown that carry runs, ascending. */
    struct rl_dedup_note *notes;
    size_t nnotes, notes_cap;
};

enum rl_dedup_verdict {
    RL_DEDUP_NEW,     /* the producer's next sequence, or an unknown producer */
    RL_DEDUP_DUP,     /* committed already, with these records: *offset */
    RL_DEDUP_REUSED,  /* committed already, with other records */
    RL_DEDUP_GAP,     /* past the next sequence (*last_seq is the last) */
    RL_DEDUP_TOO_OLD, /* at or below the last, older than the window */
};

int rl_dedup_init(struct rl_dedup *d, unsigned max_producers, unsigned window);
void rl_dedup_free(struct rl_dedup *d);

/* An entry was stored here (not known committed): remembers its runs, if
 * its payload is a batch with any. 0 or RLOG_ENOMEM. */
int rl_dedup_note(struct rl_dedup *d, uint64_t index, uint64_t term, uint64_t offset,
                  const void *buf, size_t len);
/* Entries from index on were removed from this log. */
void rl_dedup_truncate(struct rl_dedup *d, uint64_t index);
/* The log now starts after entry `index` (catch-up past a peer's trim):
 * runs of entries up to it can no longer be known. True if that loses
 * entries the table had not seen. */
bool rl_dedup_reset(struct rl_dedup *d, uint64_t index);
/* Entry `index` of `term` is shown (committed): its noted runs go into the
 * table. 0 or RLOG_ENOMEM. */
int rl_dedup_shown(struct rl_dedup *d, uint64_t index, uint64_t term);
/* A committed entry fed in directly (replay at open); entries at or below
 * applied_index are skipped. 0 or RLOG_ENOMEM. */
int rl_dedup_apply_entry(struct rl_dedup *d, uint64_t index, uint64_t offset, const void *buf,
                         size_t len);

/* What the table says of (producer, seq) with records of this hash. */
enum rl_dedup_verdict rl_dedup_check(const struct rl_dedup *d, uint64_t producer, uint64_t seq,
                                     uint64_t hash, uint64_t *offset, uint64_t *last_seq);

/* The table as bytes (malloc'd, checksummed), and back. decode: 0,
 * RLOG_ECORRUPT (errmsg says why), RLOG_ENOMEM; the table is then empty
 * or holds exactly what was encoded (trimmed to this table's bounds). */
int rl_dedup_encode(const struct rl_dedup *d, unsigned char **buf, size_t *len);
int rl_dedup_decode(struct rl_dedup *d, const unsigned char *buf, size_t len, char *errmsg,
                    size_t errlen);
/* A hash of the table's whole content and applied_index (the simulator
 * compares nodes with it). */
uint64_t rl_dedup_digest(const struct rl_dedup *d);

#endif
