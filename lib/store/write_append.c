/*
 * write_append — the file work of appends: a coalesced write built by the
 * writer (writer.c) goes to its segments here, and the spare segment and
 * the index file of a sealed one are made here.
 *
 * Segment data is written with O_DIRECT, through a second descriptor of the
 * segment (dfd) used only for appends; `fd` stays buffered for reads,
 * recovery, index building and everything else (Linux keeps direct writes
 * and buffered reads coherent). Overwriting the preallocated, zero-filled
 * blocks directly and then fdatasync'ing was measured ~25-40 us faster per
 * write than the same through the page cache. A direct write must be
 * aligned (offset, length and buffer to 4096), so each extent is copied into
 * one aligned staging buffer: the bytes of the block it starts in that come
 * before it, its frames, zeros up to the next block boundary; one pwrite at
 * the block's start, then the same fdatasync as before (it flushes the
 * device cache, and keeps the fault model and ordering unchanged). The
 * leading bytes come from an in-memory copy of the segment's last block
 * (seg->tail), refreshed after each direct write and reloaded through the
 * buffered fd when it is not valid: after open and recovery, and after a
 * truncate, the only other ways a segment's end moves (trim and reset drop
 * whole segments, never the tail of one being written).
 *
 * A torn direct write keeps a prefix of that write, which begins with bytes
 * already durable and identical, so it tears the new frames exactly as a
 * buffered write would; and the padding past the frames is zeros, as the
 * zero-filled file already was there, so recovery's rule "a zeroed frame
 * header ends the log" still holds. Where O_DIRECT is refused (EINVAL: some
 * file systems, e.g. tmpfs before Linux 6.6) or an extent would pass the end
 * of the file, the extent goes through the buffered fd as one pwritev.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "store/job.h"

/* Alignment of direct writes: offset, length and buffer. 4096 is the page
 * size and a multiple of every logical block size in use. */
#define RL_BLOCK 4096u

/* Makes the staging buffer (aligned for O_DIRECT) hold at least len bytes. */
static int stage_reserve(struct rl_store *s, size_t len)
{
    if (len <= s->stage_cap)
        return 0;
    size_t cap = s->stage_cap ? s->stage_cap : 16 * RL_BLOCK;
    while (cap < len)
        cap *= 2;
    void *p;
    if (posix_memalign(&p, RL_BLOCK, cap) != 0)
        return -ENOMEM;
    free(s->stage);
    s->stage = p;
    s->stage_cap = cap;
    return 0;
}

/* Copies the first `pre` bytes of the block at blk into dst: from the tail
 * copy, read once through the buffered fd when it is not valid (after open,
 * recovery or a truncate) — never per write, since a direct write leaves the
 * page cache without those bytes. */
static int tail_prefix(struct rl_segment *seg, uint64_t blk, unsigned char *dst, size_t pre)
{
    if (!seg->tail && !(seg->tail = malloc(RL_BLOCK)))
        return -ENOMEM;
    if (!seg->tail_valid || seg->tail_off != blk) {
        size_t got;
        int rv = rl_fs_pread(seg->fd, seg->tail, RL_BLOCK, blk, &got);
        if (rv != 0)
            return rv;
        if (got < pre)
            return -EIO; /* the file is shorter than its own frames */
        memset(seg->tail + got, 0, RL_BLOCK - got);
        seg->tail_off = blk;
        seg->tail_valid = true;
    }
    memcpy(dst, seg->tail, pre);
    return 0;
}

/* One extent as one aligned O_DIRECT write: the durable bytes of the block
 * it starts in, its frames, zeros to the next block boundary. *wlen gets
 * the length written from blk. 0, 1 when the extent cannot go direct (it
 * would pass the end of the file, or there is no memory to stage it: the
 * buffered write needs none), or -errno. */
static int write_direct(struct rl_store *s, struct rl_batch *b, const struct extent *x,
                        uint64_t *wlen)
{
    struct rl_segment *seg = x->seg;
    uint64_t blk = x->pos & ~(uint64_t)(RL_BLOCK - 1);
    size_t pre = (size_t)(x->pos - blk), bytes = 0;
    for (int i = 0; i < x->niov; i++)
        bytes += b->iov[x->iov0 + i].iov_len;
    size_t len = (pre + bytes + RL_BLOCK - 1) & ~(size_t)(RL_BLOCK - 1);
    if (blk + len > seg->size)
        return 1;
    if (stage_reserve(s, len) != 0)
        return 1;
    int rv = pre ? tail_prefix(seg, blk, s->stage, pre) : 0;
    if (rv != 0)
        return rv == -ENOMEM ? 1 : rv;
    unsigned char *p = s->stage + pre;
    for (int i = 0; i < x->niov; i++) {
        const struct iovec *v = &b->iov[x->iov0 + i];
        memcpy(p, v->iov_base, v->iov_len);
        p += v->iov_len;
    }
    memset(p, 0, len - pre - bytes);
    /* The copy is the file's block only once this write is durable. */
    seg->tail_valid = false;
    *wlen = len;
    return rl_fs_pwrite(seg->dfd, s->stage, len, blk);
}

/* The staged write is durable: its last block is the segment's new tail. */
static void keep_tail(struct rl_store *s, struct rl_segment *seg, uint64_t blk, uint64_t len)
{
    if (!seg->tail && !(seg->tail = malloc(RL_BLOCK)))
        return; /* reloaded at the next write */
    memcpy(seg->tail, s->stage + len - RL_BLOCK, RL_BLOCK);
    seg->tail_off = blk + len - RL_BLOCK;
    seg->tail_valid = true;
}

/* Writes one extent, direct when the segment has a direct fd. */
static int write_extent(struct rl_store *s, struct rl_batch *b, const struct extent *x,
                        uint64_t *blk, uint64_t *wlen)
{
    struct rl_segment *seg = x->seg;
    if (!seg->direct_tried)
        rl_segment_direct_open(s, seg);
    *wlen = 0;
    *blk = x->pos & ~(uint64_t)(RL_BLOCK - 1);
    if (seg->dfd >= 0) {
        int rv = write_direct(s, b, x, wlen);
        if (rv <= 0)
            return rv;
        *wlen = 0;
    }
    seg->tail_valid = false; /* a buffered write moves the tail block */
    return rl_fs_pwritev(seg->fd, b->iov + x->iov0, x->niov, x->pos);
}

void rl_write_append_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    struct rl_store *s = b->s;
    char name[64];
    /* Checksums here, off the loop thread. */
    for (unsigned i = 0; i < b->nframes; i++)
        rl_frame_seal(b->frames[i].hdr, b->frames[i].payload, b->frames[i].len);
    /* Extent by extent, each durable before the next is written: a new
     * segment's header must never reach the disk ahead of the frames that
     * end the segment before it, or recovery would find a gap. */
    for (int e = 0; e < b->next; e++) {
        struct extent *x = &b->ext[e];
        uint64_t blk, wlen;
        snprintf(name, sizeof name, "seg-%016" PRIx64 ".log", x->seg->seq);
        int rv = write_extent(s, b, x, &blk, &wlen);
        if (rv != 0) {
            rl_job_fail(b, rl_errno_to_rlog(rv), "write to %s at byte %" PRIu64 " failed: %s", name,
                        x->pos, strerror(-rv));
            return;
        }
        /* Kept with direct writes too: it flushes the device cache, and the
         * fault model (power loss at the k-th sync) stays the same. */
        uint64_t t0 = rl_now_us();
        rv = rl_fs_fdatasync(x->seg->fd);
        rl_hist_add(&s->sync_us, rl_now_us() - t0);
        if (rv != 0) {
            rl_job_fail(b, rl_errno_to_rlog(rv), "fdatasync of %s failed: %s", name, strerror(-rv));
            return;
        }
        if (wlen) {
            keep_tail(s, x->seg, blk, wlen);
            b->direct++;
        }
    }
}

void rl_write_spare_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    struct rl_store *s = b->s;
    char path[4200];
    rl_seg_path(s, path, sizeof path, b->seg->seq, "log");
    int rv = rl_fs_open(path, O_RDWR | O_CREAT | O_TRUNC, 0644, &b->seg->fd);
    if (rv == 0)
        rv = rl_fs_zero_fill(b->seg->fd, b->seg->size);
    if (rv == 0)
        rv = rl_fs_fsync_dir(s->dir);
    if (rv == 0)
        rl_segment_direct_open(s, b->seg); /* here, not on the write path */
    if (rv != 0) {
        rl_job_fail(b, rl_errno_to_rlog(rv), "cannot create segment %s (%" PRIu64 " bytes): %s",
                    path, b->seg->size, strerror(-rv));
        if (b->seg->fd >= 0) {
            rl_fs_close(b->seg->fd);
            b->seg->fd = -1;
        }
        rl_fs_unlink(path);
    }
}

void rl_write_index_work(uv_work_t *w)
{
    struct rl_batch *b = w->data;
    rl_segment_write_index(b->s, b->seg); /* failure only costs a rebuild */
}
