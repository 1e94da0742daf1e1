/*
 * cursors — the table of named consumer positions (rlog_cursor_*): for
 * each name, the offset its last committed cursor command set.
 *
 * Replicated state, like the producer table (node/dedup.h): every node
 * feeds it the cursor commands (batch.h RL_BATCH_CURSOR) of the committed
 * log in log order (rl_cursors_shown, as the fence shows each entry), so
 * all nodes that have shown the same entries hold the same table, byte
 * for byte (rl_cursors_digest).
 *
 * Bounded: at most `max` names; a new name beyond it forgets the name
 * whose last commit is oldest in log order. That depends only on the log,
 * so it is the same everywhere.
 *
 * Incomplete: a node that misses committed commands (it caught up past a
 * peer's trim, or its saved table is older than the first entry its store
 * kept) cannot know the names committed there, nor whether names it held
 * were moved there. It forgets every name it held and records the gap
 * (gap_index): a lookup of a name it does not hold then fails with
 * RLOG_ETRIMMED, never a wrong or silently missing value. Names committed
 * after the gap are exact. Once the table is full with names committed
 * after the gap it is whole again: every name committed before the gap
 * would have been evicted by those on every node.
 *
 * Persistence: rl_cursors_encode gives the table as of applied_index,
 * which lib/raftio saves next to each snapshot descriptor (file CURSORS);
 * at open the node decodes it and replays the committed entries after
 * applied_index from the store.
 */
#ifndef RL_NODE_CURSORS_H
#define RL_NODE_CURSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_CURSORS_FILE "CURSORS"
#define RL_CURSOR_NAME_MAX 64u

struct rl_cursor;
struct rl_cursor_note;

struct rl_cursors {
    unsigned max;
    struct rl_cursor **buckets;
    size_t nbuckets, n;
    struct rl_cursor *oldest, *newest; /* by the index of their last commit */
    uint64_t applied_index;            /* the last entry fed in */
    uint64_t gap_index;                /* 0: whole; else commands up to it may be missing */
    /* Entries stored here and not yet shown that carry a cursor command. */
    struct rl_cursor_note *notes;
    size_t nnotes, notes_cap;
};

int rl_cursors_init(struct rl_cursors *t, unsigned max);
void rl_cursors_free(struct rl_cursors *t);

/* Whether name (NUL-ended) is a valid cursor name: 1..64 printable ASCII
 * bytes, no spaces. False with why filled in. */
bool rl_cursor_name_ok(const char *name, char *why, size_t whylen);

/* A committed cursor command of entry `index`, in log order. 0 or
 * RLOG_ENOMEM. */
int rl_cursors_set(struct rl_cursors *t, uint64_t index, const char *name, size_t len,
                   uint64_t offset);
/* The cursor's offset: 0, RLOG_ENOTFOUND (no such cursor), or
 * RLOG_ETRIMMED (not held here, and the table has a gap). */
int rl_cursors_lookup(const struct rl_cursors *t, const char *name, size_t len, uint64_t *offset);

/* An entry was stored here (not known committed): remembers its cursor
 * command, if its payload is one. 0 or RLOG_ENOMEM. */
int rl_cursors_note(struct rl_cursors *t, uint64_t index, uint64_t term, const void *buf,
                    size_t len);
/* Entries from index on were removed from this log. */
void rl_cursors_truncate(struct rl_cursors *t, uint64_t index);
/* The log now starts after entry `index`, and the commands up to it are
 * not known here: true if that opened a gap (see above). */
bool rl_cursors_reset(struct rl_cursors *t, uint64_t index);
/* Entry `index` of `term` is shown (committed): its noted command goes into
 * the table. 0 or RLOG_ENOMEM. */
int rl_cursors_shown(struct rl_cursors *t, uint64_t index, uint64_t term);
/* A committed entry fed in directly (replay at open); entries at or below
 * applied_index are skipped. 0 or RLOG_ENOMEM. */
int rl_cursors_apply_entry(struct rl_cursors *t, uint64_t index, const void *buf, size_t len);

/* Calls fn for each cursor, oldest commit first. */
void rl_cursors_each(const struct rl_cursors *t,
                     void (*fn)(void *arg, const char *name, uint64_t offset, uint64_t index),
                     void *arg);

/* The table as bytes (malloc'd, checksummed), and back. decode: 0,
 * RLOG_ECORRUPT (errmsg says why), RLOG_ENOMEM; the table is then empty
 * or holds what was encoded (the newest `max` names if it held more). */
int rl_cursors_encode(const struct rl_cursors *t, unsigned char **buf, size_t *len);
int rl_cursors_decode(struct rl_cursors *t, const unsigned char *buf, size_t len, char *errmsg,
                      size_t errlen);
/* A hash of the table's whole content, applied_index and gap (the
 * simulator compares nodes with it). */
uint64_t rl_cursors_digest(const struct rl_cursors *t);

#endif
