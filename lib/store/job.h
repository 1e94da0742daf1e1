/* A job of the writer (struct rl_batch) and the functions that do each
 * job's file work: shared by the writer's files only (writer.c, job.c,
 * write_append.c, write_edit.c). internal.h says how they are layered. */
#ifndef RL_STORE_JOB_H
#define RL_STORE_JOB_H

#include "store/internal.h"

struct frame_loc {
    struct rl_segment *seg;
    unsigned char *hdr;
    const void *payload;
    uint32_t len, records;
    uint64_t index, offset, pos;
};

struct extent {
    struct rl_segment *seg;
    uint64_t pos;
    int iov0, niov;
    bool opens_segment;
    unsigned char seghdr[RL_SEG_HDR];
};

enum job_kind { JOB_APPEND, JOB_TRUNCATE, JOB_TRIM, JOB_RESET, JOB_REPAIR, JOB_SPARE, JOB_INDEX };

struct rl_batch {
    uv_work_t work;
    struct rl_store *s;
    enum job_kind kind;
    /* Held mode (rl_store_hold_jobs): queued here, run by rl_store_turn. */
    uv_work_cb held_work;
    struct rl_batch *held_next;
    /* append */
    struct iovec *iov;
    int niov, iovcap;
    struct extent ext[2];
    int next;
    struct frame_loc *frames;
    size_t nframes, framecap;
    /* truncate / trim */
    struct rl_store_req *req;
    uint64_t index, offset, pos, prev_pos;
    bool after_damage; /* truncate: cut right behind a damaged range */
    struct rl_segment *seg; /* truncate target / spare / segment to index */
    size_t drop_from, drop_to; /* segs[] range whose files go */
    bool drop_spare;
    bool noop;                 /* trim: nothing to change */
    struct rl_damage damage;   /* repair: the range, as when it started */
    struct rl_rebuild rebuild; /* repair: the rebuilt segment */
    unsigned direct;           /* append: extents written with O_DIRECT */
    /* outcome */
    int err;
    char errmsg[240];
};

/* job.c: records the job's first failure (code and message); later ones
 * are dropped, so the message names the first cause. */
void rl_job_fail(struct rl_batch *b, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* write_append.c: the work of an append job (checksums, then each extent
 * written and fdatasync'd in turn; on the loop thread, writer.c says why),
 * of a spare (create and zero-fill the next segment file) and of an index
 * job (write a sealed segment's index file). They change only their batch,
 * the files, and (appends) the staging buffer and the segments' tail
 * copies. */
void rl_write_append_work(uv_work_t *w);
void rl_write_spare_work(uv_work_t *w);
void rl_write_index_work(uv_work_t *w);

/* write_edit.c: the file work of truncate, trim, reset and repair jobs
 * (unlinks, metadata updates, the rebuild of a repaired segment), on a
 * worker thread. */
void rl_write_truncate_work(uv_work_t *w);
void rl_write_trim_work(uv_work_t *w);
void rl_write_reset_work(uv_work_t *w);
void rl_write_repair_work(uv_work_t *w);

#endif
