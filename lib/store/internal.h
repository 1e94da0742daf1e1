/* Internal state of the store, shared by its modules (dir, segment, writer,
 * store). Nothing here is visible outside lib/store/. */
#ifndef RL_STORE_INTERNAL_H
#define RL_STORE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>

#include "liblog.h"
#include "store/format.h"
#include "store/store.h"

enum { RL_REQ_APPEND = 1, RL_REQ_TRUNCATE, RL_REQ_TRIM, RL_REQ_RESET };

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

struct rl_store {
    uv_loop_t *loop;
    char *dir;
    uint64_t segment_size;
    uint32_t index_interval;
    size_t max_batch_bytes;
    uint64_t dir_id;
    int lock_fd;
    /* The directory's mode at open if it was open to other users, with
     * RL_DIR_MODE_SEEN (and RL_DIR_MODE_KEPT if it could not be tightened). */
    unsigned dir_mode_was;

    /* Metadata: written from the loop (term/vote) and from workers
     * (trim, truncate), so guarded. */
    pthread_mutex_t meta_mu;
    struct rl_meta meta;
    uint32_t max_gen;   /* highest generation seen in a valid frame or header */

    struct rl_segment **segs; /* used segments, ascending seq */
    size_t nsegs, segcap;
    struct rl_segment *spare; /* prepared, zero-filled, no header yet */
    bool spare_busy;          /* a preparation job is running */
    bool spare_needed;        /* an append waits for it */

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

    char errmsg[256];
    char note[512];
    struct rl_store_stats stats;
};

/* errors.c-style helpers */
int rl_store_fail(struct rl_store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rl_store_add_note(struct rl_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

uint64_t rl_store_max_payload(const struct rl_store *s);
/* Adds seg after the last used segment. 0 or RLOG_ENOMEM. */
int rl_store_push_segment(struct rl_store *s, struct rl_segment *seg);

/* dir.c: the directory, its lock and its metadata */
int rl_dir_open(struct rl_store *s);
void rl_dir_close(struct rl_store *s);
/* Applies edit to a copy of the metadata, writes it (seq bumped) over the
 * older copy and fdatasyncs it; serialised by meta_mu. 0 or -errno. */
int rl_meta_update(struct rl_store *s, void (*edit)(struct rl_meta *, const void *),
                   const void *arg);
void rl_seg_path(const struct rl_store *s, char *buf, size_t len, uint64_t seq,
                 const char *ext);

/* segment.c: one segment file */
struct rl_segment *rl_segment_new(uint64_t seq);
void rl_segment_free(struct rl_segment *seg);
int rl_segment_add_sample(struct rl_segment *seg, uint64_t index,
                          uint64_t offset, uint64_t pos, uint32_t interval);
/* Scans a segment's frames from its header, verifying every checksum.
 * is_last: the tail may be torn (cut it and note it) rather than corrupt. */
int rl_segment_scan(struct rl_store *s, struct rl_segment *seg, bool is_last,
                    uint64_t expect_last);
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

/* writer.c: group commit */
void rl_writer_kick(struct rl_store *s);
void rl_writer_prepare_spare(struct rl_store *s);
void rl_writer_finish_close_if_idle(struct rl_store *s);
bool rl_writer_idle(const struct rl_store *s);
/* Fails every queued request with `status`; while a job runs, its requests
 * complete when it does and the rest fail right after them (writer.c,
 * fail_queued, says why). Only for a store already latched fatal. */
void rl_writer_fail_all(struct rl_store *s, int status);

#endif
