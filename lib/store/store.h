/*
 * store — liblog's durable segment store, which is also the Raft log.
 *
 * One data directory holds:
 *   FORMAT          what this directory is and its format version (text)
 *   LOCK            exclusive lock; holds the owner's pid
 *   meta-a, meta-b  term, vote, trim point, write generation: two alternating
 *                   checksummed copies, the newer valid one wins
 *   seg-<seq>.log   segments: a header, then framed entries; preallocated
 *                   and zero-filled so a full disk shows at creation
 *   seg-<seq>.idx   sparse index of a sealed segment (rebuilt if damaged)
 *
 * Entries are Raft entries: index (dense, from 1), term, type, payload, and
 * the number of user records the payload carries. The store assigns each
 * entry the base record offset (offsets are dense across the log; entries
 * with zero records take none), so reads can go by index or by offset.
 *
 * Threads: a store belongs to the libuv loop given at open. Every function
 * must be called on that loop's thread, except rl_store_read_offset_shared
 * (a host thread's read); callbacks run there. Appends are
 * written and fdatasync'd on the loop thread, at the start of its next turn
 * (writer.c says why); segment creation, index files, truncation, trim and
 * reset run on libuv's threadpool. No call blocks on the disk except
 * rl_store_set_term_vote(), which libraft requires to be durable on return.
 *
 * Requests (append, truncate, trim, reset) complete in submission order, each
 * callback exactly once. Concurrent appends are coalesced: all requests
 * queued while a write is in flight go out as one write (O_DIRECT where the
 * file system allows it) + one fdatasync per segment touched. A callback
 * with status 0 means the data is durable.
 *
 * Failure: after a failed write or fdatasync the store latches fatal; every
 * later append, truncate, trim, reset and term/vote update returns
 * RLOG_EFATAL and rl_store_errmsg() names the first cause. Reads of the
 * entries durable before the failure still work (checksummed as always).
 * Queued requests then fail with RLOG_EFATAL, still in order: one whose job
 * had started completes only when that job has (so it may be freed in its
 * callback), and the ones behind it follow.
 * A full disk when creating a segment is not fatal: the appends that needed
 * the segment fail with RLOG_ENOSPC and everything stored stays readable.
 */
#ifndef RL_STORE_H
#define RL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RL_STORE_DEFAULT_SEGMENT_SIZE (64u << 20)
#define RL_STORE_MIN_SEGMENT_SIZE (64u << 10)
#define RL_STORE_FIRST_SEGMENT_SIZE (1u << 20)
#define RL_STORE_DEFAULT_INDEX_INTERVAL (64u << 10)
/* Bytes of framing around each payload (payloads are padded to 8). */
#define RL_STORE_FRAME_HEADER_SIZE 56u
#define RL_STORE_SEGMENT_HEADER_SIZE 64u

struct rl_store;

struct rl_store_config {
    const char *dir;          /* created if missing */
    uint64_t segment_size;    /* 0 = default; >= RL_STORE_MIN_SEGMENT_SIZE */
    /* A new log's first segment file; each next one is twice the last, up
     * to segment_size, so disk use grows with the data. 0 = default
     * (RL_STORE_FIRST_SEGMENT_SIZE, or segment_size if smaller); rounded
     * up to 4096. An entry larger than the next file has it made larger. */
    uint64_t first_segment_size;
    uint32_t index_interval;  /* bytes between sparse index samples; 0 = default */
    size_t max_batch_bytes;   /* cap on one coalesced write; 0 = 8 MiB */
    /* Opens holding its jobs (rl_store_hold_jobs), from the first one that
     * opening itself queues. */
    bool hold_jobs;
};

/* An entry as appended (offset ignored) or as read back. */
struct rl_store_entry {
    uint64_t index;
    uint64_t term;
    uint64_t offset;   /* base record offset */
    uint32_t records;  /* user records in the payload (0 for raft-internal) */
    uint8_t type;
    const void *buf;
    uint32_t len;
};

struct rl_store_req;
typedef void (*rl_store_cb)(struct rl_store_req *req, int status);

/* Caller-allocated request; must stay valid until its callback. The store
 * fills first_index/first_offset for appends when accepted. */
struct rl_store_req {
    void *data;             /* for the caller */
    uint64_t first_index;   /* append: index of the first entry */
    uint64_t first_offset;  /* append: base offset of the first entry */
    /* private */
    int kind;
    rl_store_cb cb;
    struct rl_store_req *next;
    const struct rl_store_entry *entries;
    unsigned n;
    unsigned done;          /* entries already handed to a write */
    unsigned char *headers; /* n frame headers */
    uint64_t arg, arg2;
};

/* Opens (creating if needed) the store in cfg->dir on `loop`.
 * Errors: RLOG_EINVAL (config), RLOG_EBUSY (locked; errmsg names the pid),
 * RLOG_EFOREIGN, RLOG_EVERSION, RLOG_ECORRUPT (errmsg names file and byte),
 * RLOG_EIO, RLOG_ENOSPC, RLOG_ENOMEM. On error *out is NULL and errmsg (if
 * given) says why. */
int rl_store_open(uv_loop_t *loop, const struct rl_store_config *cfg,
                  struct rl_store **out, char *errmsg, size_t errlen);

/* While an owner opens a log on a loop that may be shared with other logs
 * (so it cannot turn it), hold = true keeps the store's jobs for
 * rl_store_turn to run on the caller's thread; hold = false runs those
 * still held and goes back to the loop's thread pool. */
void rl_store_hold_jobs(struct rl_store *s, bool hold);
/* Waits for progress on the store's jobs: runs one held job, or (not
 * holding) turns the loop once. For blocking waits while opening. */
void rl_store_turn(struct rl_store *s);

/* Cancels queued requests (RLOG_ECANCELED), waits for the write in flight,
 * releases the lock and frees the store, then calls cb (may be NULL) on the
 * loop thread. */
void rl_store_close(struct rl_store *s, void (*cb)(void *arg), void *arg);

/* Appends n >= 1 entries with consecutive indexes starting at the next index
 * (rl_store_next_index()). Payload buffers must stay valid until cb.
 * Errors returned now (cb never fires): RLOG_EINVAL (index gap, n == 0),
 * RLOG_ETOOBIG (an entry cannot fit in a segment), RLOG_EFATAL, RLOG_ECLOSED.
 * Errors through cb: RLOG_ENOSPC (no room for a new segment; the request and
 * every later queued one fail, the next index returns to the durable end),
 * RLOG_EIO (store is now fatal), RLOG_ECANCELED (closed first). */
int rl_store_append(struct rl_store *s, struct rl_store_req *req,
                    const struct rl_store_entry *entries, unsigned n,
                    rl_store_cb cb);

/* Deletes entries with index >= `index` (Raft conflict resolution), after
 * every request queued before it. The next append must use `index`.
 * cb may be NULL. Errors now: RLOG_EINVAL (index below first or above next),
 * RLOG_EFATAL, RLOG_ECLOSED. */
int rl_store_truncate(struct rl_store *s, struct rl_store_req *req,
                      uint64_t index, rl_store_cb cb);

/* Drops entries with index < `index` (retention). Reads below it then fail
 * with RLOG_ETRIMMED. Whole segments are deleted; the rest of a partly
 * trimmed segment stays on disk but is never returned. cb may be NULL.
 * Errors now: RLOG_EINVAL (index beyond the durable end + 1), RLOG_EFATAL,
 * RLOG_ECLOSED. */
int rl_store_trim(struct rl_store *s, struct rl_store_req *req,
                  uint64_t index, rl_store_cb cb);

/* Retention by record: hides records before `offset` (reads of them fail
 * with RLOG_ETRIMMED) and drops entries before `index`; the entries from
 * `index` on stay readable by index even where all their records are
 * hidden (Raft may still need them). The effective first offset is the
 * largest of `offset`, the current one and the base of the first kept
 * entry; it never moves back. Errors now: RLOG_EINVAL (index beyond the end
 * + 1, or offset beyond the end), RLOG_EFATAL, RLOG_ECLOSED. */
int rl_store_trim_records(struct rl_store *s, struct rl_store_req *req, uint64_t index,
                          uint64_t offset, rl_store_cb cb);

/* Replaces the whole log, after every request queued before it, by an empty
 * log that starts at entry `index` with record `offset` (a replica catching
 * up from a peer that trimmed past this log's end). Crash-safe: a crash
 * leaves the old log or the new one, never a mix. Appends submitted after
 * it continue at `index`. Errors now: RLOG_EINVAL (index 0), RLOG_EFATAL,
 * RLOG_ECLOSED. */
int rl_store_reset(struct rl_store *s, struct rl_store_req *req, uint64_t index,
                   uint64_t offset, rl_store_cb cb);

/* Reads the durable entry at `index` / the entry holding record `offset`,
 * also after the store latched fatal. On success out->buf is malloc'd
 * (caller frees; NULL if len == 0). Errors: RLOG_ENOTFOUND (beyond the
 * durable end), RLOG_ETRIMMED (before the first index/offset),
 * RLOG_ECORRUPT (checksum; errmsg names file and byte), RLOG_EIO. */
int rl_store_read(struct rl_store *s, uint64_t index, struct rl_store_entry *out);
int rl_store_read_offset(struct rl_store *s, uint64_t offset,
                         struct rl_store_entry *out);
/* The one call any thread may make (the caller keeps the store open
 * meanwhile): the entry holding record `offset`, read from the segment
 * files on the calling thread, checksummed as always, for a host's read
 * that missed the read cache (two thread wake-ups less than asking the
 * loop). 0 (out->buf malloc'd, NULL if len == 0), RLOG_ENOMEM, or 1: not
 * served here, for whatever reason (not durable, trimmed, damaged, a failed
 * read); the loop thread's rl_store_read_offset then says why, and records
 * any damage found. Only durable entries are served, and only the caller
 * knows which of them are committed. */
int rl_store_read_offset_shared(struct rl_store *s, uint64_t offset,
                                struct rl_store_entry *out);

/* ---- Damage ------------------------------------------------------------
 * A durable entry whose frame fails its checksum (or whose header does not
 * chain with its neighbours) is damage, not a torn tail: found at open
 * (scanning a segment) or on a read. The store does not refuse to open for
 * it: the range of entries between the good frames around it is recorded
 * and every read in it fails with RLOG_ECORRUPT (never data) until it is
 * repaired with entries from a peer. Damage in the uncommitted tail of the
 * last segment (the write in flight at a crash) is still cut as a torn
 * tail. */
struct rl_store_damage {
    uint64_t seq;                       /* segment file */
    uint64_t first_index, last_index;   /* entries */
    uint64_t first_offset, end_offset;  /* records [first_offset, end_offset) */
    bool sealed;                        /* repairable now (not the active segment) */
    bool repairing;                     /* a write-back is queued or running */
};
/* Copies up to max damaged ranges (ascending); returns how many exist. */
size_t rl_store_damaged(const struct rl_store *s, struct rl_store_damage *out, size_t max);
/* Entries currently unreadable because of damage. */
uint64_t rl_store_unreadable(const struct rl_store *s);

/* Writes entries first_index..last_index of a damaged range back, from
 * good copies (the caller checked them against its peers and Raft): the
 * whole sealed segment is rebuilt into a temporary file with those entries,
 * fdatasync'd, checked frame by frame, renamed over the damaged one and the
 * directory fsync'd, so a crash leaves the old segment (the damage found
 * again at the next read or open) or the new one, never a mix. Queued like
 * a truncate (appends behind it wait for it). The entries must carry the
 * range's records exactly and, where the damage ends before the segment's
 * last frame, fill exactly its bytes; their buffers stay valid until cb.
 * Errors now: RLOG_EINVAL (no such damaged range, not sealed yet, already
 * being repaired, entries that do not fit it; errmsg says which),
 * RLOG_EFATAL, RLOG_ECLOSED. Through cb: RLOG_ECORRUPT (the rebuilt file
 * did not verify; nothing replaced), RLOG_EIO / RLOG_ENOSPC (nothing
 * replaced, the store stays usable), RLOG_ECANCELED. */
int rl_store_repair(struct rl_store *s, struct rl_store_req *req,
                    const struct rl_store_entry *entries, unsigned n, rl_store_cb cb);

/* Term and vote, durable when this returns (synchronous fdatasync). */
int rl_store_set_term_vote(struct rl_store *s, uint64_t term, uint64_t vote);
uint64_t rl_store_term(const struct rl_store *s);
uint64_t rl_store_vote(const struct rl_store *s);

/* Durable bounds. An empty store has first_index = last_index + 1. */
uint64_t rl_store_first_index(const struct rl_store *s);
uint64_t rl_store_last_index(const struct rl_store *s);
uint64_t rl_store_first_offset(const struct rl_store *s);
uint64_t rl_store_next_offset(const struct rl_store *s); /* after last durable */
/* Index the next rl_store_append must start at (counts queued appends). */
uint64_t rl_store_next_index(const struct rl_store *s);
/* The lowest index a truncate may start at: past an entry that holds
 * trimmed records (a trim only takes committed records, so that entry is
 * committed). May read the first entry. */
uint64_t rl_store_cut_floor(struct rl_store *s);

/* True while any append is queued or being written. */
bool rl_store_appending(const struct rl_store *s);

/* The detailed message of the last error (or of the fatal latch). */
const char *rl_store_errmsg(const struct rl_store *s);
/* What recovery did at open ("" when the directory was clean). */
const char *rl_store_recovery_note(const struct rl_store *s);
bool rl_store_is_fatal(const struct rl_store *s);
/* The data directory's mode at open if it was open to other users (then
 * tightened to 0700, unless *kept: chmod failed), else 0. */
unsigned rl_store_dir_mode_was(const struct rl_store *s, bool *kept);

struct rl_store_stats {
    uint64_t batches;        /* coalesced writes */
    uint64_t syncs;          /* fdatasyncs of segment data */
    uint64_t entries;        /* entries written */
    uint64_t bytes;          /* bytes written to segments */
    uint64_t segments;       /* segment files in use */
    uint64_t rollovers;      /* times a write moved to a new segment */
    uint64_t spare_waits;    /* times a write waited for a segment to be made */
    uint64_t spare_regrown;  /* spares made again, larger, for a large entry */
    uint64_t direct_writes;  /* segment writes done with O_DIRECT */
    uint64_t damaged_ranges; /* damaged ranges found since open */
    uint64_t repaired_ranges, repaired_entries; /* written back since open */
};
void rl_store_stats(const struct rl_store *s, struct rl_store_stats *out);
struct rlog_histogram;
/* Latency of the fdatasyncs of segment data (microseconds) and entries per
 * coalesced write, as histograms (rlog_metrics). */
void rl_store_hists(const struct rl_store *s, struct rlog_histogram *sync_us,
                    struct rlog_histogram *write_entries);

#endif
