/*
 * write_edit — the file work of the jobs that change the log other than by
 * appending: truncate (cut a suffix), trim (drop a prefix), reset (start
 * over at a given entry) and repair (rebuild.c does that work). The writer
 * (writer.c) starts each on the loop thread and completes it there; this
 * runs on a worker and changes only its batch, the files and the metadata
 * (through rl_meta_update, which serialises).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/fs.h"
#include "store/job.h"

static void unlink_segment_files(struct rl_batch *b, uint64_t seq, bool sync_dir)
{
    char path[4200];
    rl_seg_path(b->s, path, sizeof path, seq, "log");
    int rv = rl_fs_unlink(path);
    if (rv != 0 && rv != -ENOENT)
        rl_job_fail(b, rl_errno_to_rlog(rv), "unlink %s: %s", path, strerror(-rv));
    rl_seg_path(b->s, path, sizeof path, seq, "idx");
    rl_fs_unlink(path);
    if (sync_dir && !b->err && (rv = rl_fs_fsync_dir(b->s->dir)) != 0)
        rl_job_fail(b, rl_errno_to_rlog(rv), "fsync of %s: %s", b->s->dir, strerror(-rv));
}

struct cut {
    uint64_t seq, pos;
};

static void edit_cut(struct rl_meta *m, const void *arg)
{
    const struct cut *c = arg;
    m->gen++;
    m->cut_seq = c->seq;
    m->cut_pos = c->pos;
    m->cut_gen = m->gen;
}

/* Files go newest first, each unlink made durable before the next, so a
 * crash leaves a contiguous run of segments. Then the cut is recorded: from
 * then on the frames at and after it are stale. */
void rl_write_truncate_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    struct rl_store *s = b->s;
    if (!b->seg)
        return; /* nothing durable to cut */
    if (b->drop_spare)
        unlink_segment_files(b, s->spare->seq, true);
    for (size_t i = b->drop_to; i > b->drop_from && !b->err; i--)
        unlink_segment_files(b, s->segs[i - 1]->seq, true);
    if (b->err)
        return;
    struct cut c = {b->seg->seq, b->pos};
    int rv = rl_meta_update(s, edit_cut, &c);
    if (rv != 0) {
        rl_job_fail(b, rl_errno_to_rlog(rv), "writing metadata for truncation: %s", strerror(-rv));
        return;
    }
    char path[4200];
    rl_seg_path(s, path, sizeof path, b->seg->seq, "idx");
    rl_fs_unlink(path);
}

struct trim_point {
    uint64_t index, offset;
};

static void edit_trim(struct rl_meta *m, const void *arg)
{
    const struct trim_point *t = arg;
    m->first_index = t->index;
    m->first_offset = t->offset;
}

/* The trim point is recorded first; segments wholly before it go after. A
 * crash in between leaves segments that the next open deletes. */
void rl_write_trim_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    struct rl_store *s = b->s;
    if (b->noop)
        return;
    struct trim_point t = {b->index, b->offset};
    int rv = rl_meta_update(s, edit_trim, &t);
    if (rv != 0) {
        rl_job_fail(b, rl_errno_to_rlog(rv), "writing metadata for trim: %s", strerror(-rv));
        return;
    }
    for (size_t i = b->drop_from; i < b->drop_to; i++)
        unlink_segment_files(b, s->segs[i]->seq, false);
    if (b->drop_to > b->drop_from && (rv = rl_fs_fsync_dir(s->dir)) != 0)
        rl_job_fail(b, rl_errno_to_rlog(rv), "fsync of %s: %s", s->dir, strerror(-rv));
}

static void edit_reset(struct rl_meta *m, const void *arg)
{
    const struct trim_point *t = arg;
    m->first_index = t->index;
    m->first_offset = t->offset;
    m->flags |= RL_META_RESET;
}

static void edit_reset_done(struct rl_meta *m, const void *arg)
{
    (void)arg;
    m->flags &= ~RL_META_RESET;
}

/* The new start is recorded first, marked as a reset so that a crash
 * before the old files are gone makes the next open delete them (instead
 * of finding a log that ends before its start). Only then is the mark
 * cleared, before any segment of the new log can exist. */
void rl_write_reset_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    struct rl_store *s = b->s;
    struct trim_point t = {b->index, b->offset};
    int rv = rl_meta_update(s, edit_reset, &t);
    if (rv != 0) {
        rl_job_fail(b, rl_errno_to_rlog(rv), "writing metadata for reset: %s", strerror(-rv));
        return;
    }
    for (size_t i = b->drop_from; i < b->drop_to; i++)
        unlink_segment_files(b, s->segs[i]->seq, false);
    if (!b->err && b->drop_to > b->drop_from && (rv = rl_fs_fsync_dir(s->dir)) != 0)
        rl_job_fail(b, rl_errno_to_rlog(rv), "fsync of %s: %s", s->dir, strerror(-rv));
    if (!b->err && (rv = rl_meta_update(s, edit_reset_done, NULL)) != 0)
        rl_job_fail(b, rl_errno_to_rlog(rv), "writing metadata after reset: %s", strerror(-rv));
}

void rl_write_repair_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    b->err = rl_repair_rebuild(b->s, &b->rebuild, b->seg->fd, &b->damage, b->req->entries,
                               b->req->n, b->errmsg, sizeof b->errmsg);
}
