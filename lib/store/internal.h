/* Internal state of the store, shared by its files, and the functions of its
 * lower layers. Nothing here is visible outside lib/store/.
 *
 * The files, bottom first: each calls only functions of the files listed
 * above it, never one below (test/check-layers checks it in make check), so
 * each can be read knowing only what is above it in this list.
 *
 *   errors.c    rl_store_fail (the error message), rl_store_add_note (the
 *               recovery note): used by every file
 *   format.c    the on-disk encodings, pure functions (format.h)
 *   damage.c    the table of damaged ranges: add, look up, prune, list
 *   job.c       a writer job's failure (the job struct is in job.h)
 *   dir.c       the directory: FORMAT, LOCK, meta-a/meta-b
 *   segment.c   one segment file: scan, index file, lookup, damage found
 *               there; the store's list of segments
 *   read.c      reads by index and by record offset
 *   rebuild.c   the write-back of a repaired segment (a writer job's work)
 *   close.c     the end of a close, and freeing a store
 *   write_append.c  the file work of appends (O_DIRECT, staging, the tail
 *               copy), of the spare and of index files
 *   write_edit.c    the file work of truncate, trim, reset and repair
 *   writer.c    the writer's queue on the loop thread: starts each job
 *               (builds the coalesced write), completes it (writer.h)
 *   recover.c   what open does to rebuild the state from the files
 *               (recover.h)
 *   store.c     the entry points (store.h): open, close, requests,
 *               term/vote, accessors
 *
 * This header declares the functions of the files up to close.c; the
 * writer's are in writer.h (for recover.c and store.c), its jobs' in job.h
 * (for the writer's files), recovery's in recover.h (for store.c). */
#ifndef RL_STORE_INTERNAL_H
#define RL_STORE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>

#include "common/counters.h"
#include "liblog.h"
#include "store/format.h"
#include "store/store.h"

enum { RL_REQ_APPEND = 1, RL_REQ_TRUNCATE, RL_REQ_TRIM, RL_REQ_RESET, RL_REQ_REPAIR };

struct rl_segment {
    uint64_t seq;
    uint64_t size;        /* file size */
    uint32_t gen;         /* from the header: frames are never older */
    uint64_t first_index, first_offset;
    uint64_t last_index;  /* durable; first_index - 1 when empty */
    uint64_t next_offset; /* record offset after the last durable entry */
    uint64_t end_pos;     /* byte after the last durable frame */
    uint64_t last_pos;    /* start of the last durable frame (0 if none) */
    int fd;               /* buffered: reads, recovery, index, tail loads */
    /* Appends only (writer.c says why): an O_DIRECT fd, -1 if none. */
    int dfd;
    bool direct_tried;    /* dfd was opened, or cannot be */
    /* A copy of the block that holds end_pos, so that an aligned direct
     * write can start at its beginning without reading the disk. Valid
     * only while tail_valid; cleared wherever end_pos moves other than by a
     * direct append. */
    unsigned char *tail;
    uint64_t tail_off;
    bool tail_valid;
    bool sealed;          /* a later segment exists; its index file is due */
    bool has_header;      /* false for a prepared spare */
    struct rl_sample *samples;
    size_t nsamples, cap;
};

#define RL_DIR_MODE_SEEN 0x10000u
#define RL_DIR_MODE_KEPT 0x20000u

struct rl_batch;

/* A damaged range of durable entries (store.h, "Damage"): bytes [pos,
 * end_pos) of segment seq should hold entries first_index..last_index,
 * records [first_offset, end_offset). Every field comes from the good
 * frames around the damage (or the segment's neighbours), never from the
 * damaged bytes. end_pos 0: the damage runs to the end of the segment's
 * frames. gen: the generation repaired frames get (between their
 * neighbours', so a rescan accepts them). */
struct rl_damage {
    uint64_t seq, first_index, last_index, first_offset, end_offset, pos, end_pos;
    uint32_t gen;
    bool repairing; /* a write-back of it is queued or running */
};

struct rl_store {
    uv_loop_t *loop;
    char *dir;
    uint64_t segment_size;       /* the largest segment file */
    uint64_t first_segment_size; /* the first one; each next one doubles */
    uint32_t index_interval;
    size_t max_batch_bytes;
    uint64_t dir_id;
    int lock_fd;
    /* The directory's mode at open if it was open to other users, with
     * RL_DIR_MODE_SEEN (and RL_DIR_MODE_KEPT if it could not be tightened). */
    unsigned dir_mode_was;

    /* Metadata: written from the loop (term/vote) and from workers
     * (trim, truncate), so guarded: meta_mu serialises the updates (held
     * across their fdatasync); meta_pub_mu guards meta itself, held only
     * to copy it in or out, so readers (the loop, for every frame's term)
     * never wait on an update's I/O. Read it with rl_meta_now. */
    pthread_mutex_t meta_mu;
    pthread_mutex_t meta_pub_mu;
    struct rl_meta meta;
    uint32_t max_gen;   /* highest generation seen in a valid frame or header */

    /* What a host thread's read looks at (read.c,
     * rl_store_read_offset_shared): the list of used segments and, of each
     * listed one, its samples, descriptor, durable end and generation; the
     * first index and offset. Only
     * the loop thread changes them, and holds this while it does; the loop
     * thread reads them without it. Held for in-memory changes only, never
     * across I/O. */
    pthread_mutex_t segs_mu;
    struct rl_segment **segs; /* used segments, ascending seq */
    size_t nsegs, segcap;
    struct rl_segment *spare; /* prepared, zero-filled, no header yet */
    bool spare_busy;          /* a preparation job is running */
    bool spare_needed;        /* an append waits for it */
    uint64_t spare_min;       /* bytes the waiting entry needs (0: none) */

    /* Durable bounds. */
    uint64_t first_index, first_offset, last_index, next_offset;
    /* Submission bounds (include queued appends). */
    uint64_t next_index, next_offset_sub;

    struct rl_store_req *head, *tail; /* queued, in submission order */
    struct rl_batch *inflight;
    /* Runs the append job on the loop thread at the start of its next turn
     * (writer.c says why); an idle handle, so that turn's poll never blocks.
     * Not used under the simulator, whose deferred work runs on the loop. */
    uv_idle_t runner;
    bool runner_live;
    struct rl_batch *runner_job;
    /* While the owner opens (rl_store_hold_jobs): jobs wait here, and its
     * blocking waits run them on its own thread (rl_store_turn), never
     * turning a loop that other logs may share. */
    bool hold_jobs;
    struct rl_batch *held_head, *held_tail;
    unsigned bg_jobs;                 /* index writes in flight */
    bool completing;                  /* firing callbacks: no new jobs */

    int fatal;
    bool closing;
    bool close_queued;
    void (*close_cb)(void *);
    void *close_arg;
    uv_work_t close_work;

    /* Aligned staging buffer of direct appends, reused (writer.c). */
    unsigned char *stage;
    size_t stage_cap;

    /* Damaged ranges, unreadable until repaired (segment.c finds them,
     * repair.c writes them back). */
    struct rl_damage *damage;
    size_t ndamage, damagecap;

    char errmsg[256];
    char note[512];
    struct rl_store_stats stats;
    struct rl_hist sync_us, write_entries; /* rlog_metrics; rl_store_hists */
};

/* errors.c: the error message and the recovery note */
int rl_store_fail(struct rl_store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rl_store_add_note(struct rl_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* dir.c: the directory, its lock and its metadata */
int rl_dir_open(struct rl_store *s);
void rl_dir_close(struct rl_store *s);
/* Applies edit to a copy of the metadata, writes it (seq bumped) over the
 * older copy and fdatasyncs it; serialised by meta_mu. 0 or -errno. */
int rl_meta_update(struct rl_store *s, void (*edit)(struct rl_meta *, const void *),
                   const void *arg);
/* A copy of the metadata as last written; any thread. */
struct rl_meta rl_meta_now(struct rl_store *s);
void rl_seg_path(const struct rl_store *s, char *buf, size_t len, uint64_t seq,
                 const char *ext);

/* damage.c: the table of damaged ranges */
/* Records d (kept in first_index order; a range known already is left as
 * it is). 0 or RLOG_ENOMEM. */
int rl_store_add_damage(struct rl_store *s, const struct rl_damage *d);
/* The damaged range holding entry index / record offset, or NULL. */
const struct rl_damage *rl_store_damage_at(const struct rl_store *s, uint64_t key,
                                           bool by_offset);
/* Forgets damage no longer in the log (trimmed, truncated, reset). */
void rl_store_prune_damage(struct rl_store *s);

/* segment.c: one segment file, and the store's list of them */
struct rl_segment *rl_segment_new(uint64_t seq);
void rl_segment_free(struct rl_segment *seg);
/* Adds seg after the last used segment. 0 or RLOG_ENOMEM. */
int rl_store_push_segment(struct rl_store *s, struct rl_segment *seg);
int rl_segment_add_sample(struct rl_segment *seg, uint64_t index,
                          uint64_t offset, uint64_t pos, uint32_t interval);
/* Scans a segment's frames from its header, verifying every checksum.
 * is_last: the tail may be torn (cut it and note it) rather than corrupt.
 * Damage is recorded and skipped (rl_segment_damage), or with strict
 * fails the scan with RLOG_ECORRUPT. */
int rl_segment_scan(struct rl_store *s, struct rl_segment *seg, bool is_last,
                    uint64_t expect_last, bool strict);
int rl_segment_load_index(struct rl_store *s, struct rl_segment *seg,
                          uint64_t expect_last);
int rl_segment_write_index(struct rl_store *s, const struct rl_segment *seg);
/* Opens seg->dfd with O_DIRECT for appends; leaves it -1 where the file
 * system refuses (the writer then uses buffered writes on fd). */
void rl_segment_direct_open(const struct rl_store *s, struct rl_segment *seg);
/* Closes dfd and drops the tail copy: the segment takes no more appends. */
void rl_segment_direct_close(struct rl_segment *seg);
/* Finds the frame of `index` (or holding record `offset` when by_offset). */
int rl_segment_find(struct rl_store *s, struct rl_segment *seg, uint64_t key,
                    bool by_offset, struct rl_store_entry *out, uint64_t *pos,
                    bool want_payload);
/* The walk under rl_segment_find, apart from the store and the segment, so
 * that a host thread's read (read.c, rl_store_read_offset_shared) can copy
 * where to start under segs_mu and walk after letting it go: the file (a
 * descriptor the walker may own), its size, the durable end, the oldest
 * generation a frame may carry, and the frame to start from (the last
 * sample at or before the key). The walk verifies every frame it crosses
 * and moves pos/index/offset/gen along; where it stops they name the frame
 * it stopped at. */
struct rl_walk {
    int fd;
    uint64_t size, last_index;
    uint32_t gen, chunk;
    bool empty; /* no samples: nothing durable in the segment */
    uint64_t pos, index, offset;
};
#define RL_WALK_BAD_FRAME 1
void rl_segment_walk_start(const struct rl_store *s, const struct rl_segment *seg, uint64_t key,
                           bool by_offset, struct rl_walk *w);
/* 0 (*out filled; payload malloc'd if want_payload), RLOG_ENOTFOUND (not
 * in the segment's durable frames), RLOG_ENOMEM, RL_WALK_BAD_FRAME (the
 * frame at w->pos fails its checks: damage), or -errno (a failed read).
 * Touches nothing but w and the file. */
int rl_segment_walk(struct rl_walk *w, uint64_t key, bool by_offset, struct rl_store_entry *out,
                    bool want_payload);

/* Damage found at byte pos of seg, where entry `index` holding record
 * `offset` must begin (both known from the good frames before it). Finds
 * the next frame that verifies, records the range in between as damaged
 * (rl_store_damaged lists it) and returns 0 with *resume set to that frame
 * (index 0 if the damage runs to the segment's end); or a negative errno.
 * last_index/end_offset: where the segment's entries are known to end
 * (0: unknown, the last segment). */
int rl_segment_damage(struct rl_store *s, struct rl_segment *seg, uint64_t pos, uint64_t index,
                      uint64_t offset, uint32_t min_gen, uint64_t last_index,
                      uint64_t end_offset, struct rl_frame *resume, uint64_t *resume_pos);
/* rebuild.c: the write-back of a repaired segment (a job of the writer).
 * rl_repair_prepare, on the loop thread, copies what the job needs of seg
 * into *rb: its bounds, and the index samples outside the damage (a read
 * meeting other damage meanwhile may add samples to seg); RLOG_ENOMEM or 0.
 * rl_repair_rebuild, on a worker thread, rebuilds the segment (read
 * through old_fd) into a temporary file with d's range replaced by
 * entries, fdatasyncs it, reads the new frames back, renames it over the
 * segment, fsyncs the directory and rewrites its index; rb->fresh then
 * describes the new file (its fd open). 0 or an RLOG_E* with errmsg set;
 * touches no shared state. rl_repair_install, on the loop thread after a
 * successful rebuild, makes seg the new file and forgets the damage;
 * rl_repair_release frees what rb still holds. */
struct rl_rebuild {
    struct rl_segment *fresh;
    struct rl_sample *after; /* samples past the damage, kept in place */
    size_t nafter;
};
int rl_repair_prepare(const struct rl_segment *seg, const struct rl_damage *d,
                      struct rl_rebuild *rb);
int rl_repair_rebuild(struct rl_store *s, struct rl_rebuild *rb, int old_fd,
                      const struct rl_damage *d, const struct rl_store_entry *entries,
                      unsigned n, char *errmsg, size_t errlen);
void rl_repair_install(struct rl_store *s, struct rl_segment *seg, struct rl_rebuild *rb,
                       const struct rl_damage *d);
void rl_repair_release(struct rl_rebuild *rb);

/* close.c: the end of a store */
/* Frees s and everything it holds; releases the directory lock. */
void rl_store_free(struct rl_store *s);
/* Queues the last step of a close (cancel what is queued, free the store,
 * call close_cb) to run on the loop. Only once the writer is idle. */
void rl_store_finish_close(struct rl_store *s);

#endif
