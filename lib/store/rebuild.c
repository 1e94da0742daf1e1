/*
 * rebuild — the write-back of a repaired range: the damaged sealed segment
 * is rebuilt whole into a temporary file and renamed over the old one.
 *
 * Why a whole new file rather than overwriting the damaged bytes in place:
 * an in-place write torn by a crash would leave a segment that is neither
 * the old nor the new one, and a damaged header may have lost the length,
 * so the old layout past the damage cannot always be trusted. The steps:
 *
 *   1. seg-<seq>.log.repair.tmp gets the segment's bytes before the damage,
 *      the good entries framed afresh, and the bytes after the damage
 *      (when the damage ends at a good frame; the entries then fill exactly
 *      the damaged bytes, so every later frame keeps its position);
 *   2. fdatasync, then every new frame is read back and verified;
 *   3. rename over seg-<seq>.log, fsync the directory;
 *   4. the index file is rewritten (never synced: a bad one is rebuilt).
 *
 * A crash before 3 leaves the old segment (and a *.tmp that the next open
 * deletes): the damage is found again. After 3 the new segment stands.
 * Runs on a worker thread; reads the old segment through its buffered
 * descriptor (pread is safe alongside the loop's reads) and touches no
 * shared state: the loop thread installs the result (rl_repair_install).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs.h"
#include "store/internal.h"

#define COPY_CHUNK (1u << 20)

static int fail(char *errmsg, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *errmsg, size_t errlen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* Copies bytes [from, to) of one file to the same place in another. */
static int copy_range(int src, int dst, uint64_t from, uint64_t to, unsigned char *buf)
{
    while (from < to) {
        size_t want = to - from < COPY_CHUNK ? (size_t)(to - from) : COPY_CHUNK, got = 0;
        int rv = rl_fs_pread(src, buf, want, from, &got);
        if (rv == 0 && got != want)
            rv = -EIO; /* the segment is shorter than its own frames say */
        if (rv == 0)
            rv = rl_fs_pwrite(dst, buf, want, from);
        if (rv != 0)
            return rv;
        from += want;
    }
    return 0;
}

/* Bytes the entries take framed. */
static uint64_t framed_size(const struct rl_store_entry *entries, unsigned n)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += RL_FRAME_HDR + rl_pad8(entries[i].len);
    return total;
}

/* Writes the entries as frames from byte pos; adds index samples. */
static int write_frames(const struct rl_store *s, int fd, const struct rl_damage *d,
                        const struct rl_store_entry *entries, unsigned n,
                        struct rl_segment *fresh, uint64_t *last_pos)
{
    static const unsigned char zeros[8];
    uint64_t pos = d->pos, offset = d->first_offset;
    for (unsigned i = 0; i < n; i++) {
        const struct rl_store_entry *e = &entries[i];
        unsigned char hdr[RL_FRAME_HDR] = {0};
        struct rl_frame f = {.index = d->first_index + i, .term = e->term, .offset = offset,
                             .batch_first = d->first_index + i, .length = e->len,
                             .records = e->records, .gen = d->gen, .type = e->type};
        rl_frame_encode(hdr, &f);
        rl_frame_seal(hdr, e->buf, e->len);
        int rv = rl_fs_pwrite(fd, hdr, sizeof hdr, pos);
        if (rv == 0 && e->len)
            rv = rl_fs_pwrite(fd, e->buf, e->len, pos + RL_FRAME_HDR);
        if (rv == 0 && rl_pad8(e->len) > e->len)
            rv = rl_fs_pwrite(fd, zeros, rl_pad8(e->len) - e->len, pos + RL_FRAME_HDR + e->len);
        if (rv != 0)
            return rv;
        if (rl_segment_add_sample(fresh, f.index, offset, pos, s->index_interval) != 0)
            return -ENOMEM;
        *last_pos = pos;
        pos += RL_FRAME_HDR + rl_pad8(e->len);
        offset += e->records;
    }
    return 0;
}

/* Reads the new frames back from the synced file and checks each. */
static int verify_frames(int fd, const struct rl_damage *d, const struct rl_store_entry *entries,
                         unsigned n, unsigned char *buf)
{
    uint64_t pos = d->pos, offset = d->first_offset;
    for (unsigned i = 0; i < n; i++) {
        size_t len = RL_FRAME_HDR + entries[i].len, got = 0;
        unsigned char *p = len <= COPY_CHUNK ? buf : malloc(len);
        if (!p)
            return -ENOMEM;
        int rv = rl_fs_pread(fd, p, len, pos, &got);
        struct rl_frame f = {0};
        if (rv == 0 && got == len)
            rl_frame_decode(p, &f);
        bool ok = rv == 0 && got == len && f.index == d->first_index + i && f.offset == offset &&
                  f.length == entries[i].len && rl_frame_verify(p, p + RL_FRAME_HDR, f.length);
        if (p != buf)
            free(p);
        if (rv != 0)
            return rv;
        if (!ok)
            return 1;
        pos += RL_FRAME_HDR + rl_pad8(entries[i].len);
        offset += entries[i].records;
    }
    return 0;
}

int rl_repair_prepare(const struct rl_segment *seg, const struct rl_damage *d,
                      struct rl_rebuild *rb)
{
    struct rl_segment *fresh = rl_segment_new(seg->seq);
    *rb = (struct rl_rebuild){0};
    if (!fresh)
        return RLOG_ENOMEM;
    *fresh = *seg;
    fresh->fd = -1;
    fresh->dfd = -1;
    fresh->tail = NULL;
    fresh->tail_valid = false;
    fresh->samples = NULL;
    fresh->nsamples = fresh->cap = 0;
    /* The samples before the damage stand, and (when the new frames fill
     * exactly the damaged bytes) those after it; the new frames get their
     * own, placed between them by the rebuild. */
    struct rl_sample *after = NULL;
    size_t nafter = 0;
    for (size_t i = 0; i < seg->nsamples; i++) {
        const struct rl_sample *sm = &seg->samples[i];
        if (sm->pos < d->pos) {
            if (rl_segment_add_sample(fresh, sm->index, sm->offset, sm->pos, 0) != 0)
                goto nomem;
        } else if (d->end_pos && sm->pos >= d->end_pos) {
            if (!after && !(after = malloc((seg->nsamples - i) * sizeof *after)))
                goto nomem;
            after[nafter++] = *sm;
        }
    }
    *rb = (struct rl_rebuild){.fresh = fresh, .after = after, .nafter = nafter};
    return 0;
nomem:
    free(after);
    rl_segment_free(fresh);
    return RLOG_ENOMEM;
}

int rl_repair_rebuild(struct rl_store *s, struct rl_rebuild *rb, int old_fd,
                      const struct rl_damage *d, const struct rl_store_entry *entries,
                      unsigned n, char *errmsg, size_t errlen)
{
    struct rl_segment *fresh = rb->fresh;
    char path[4200], tmp[4230];
    rl_seg_path(s, path, sizeof path, fresh->seq, "log");
    snprintf(tmp, sizeof tmp, "%s.repair.tmp", path); /* *.tmp: deleted at open */
    uint64_t newlen = framed_size(entries, n);
    unsigned char *buf = malloc(COPY_CHUNK);
    int fd = -1, rv;
    bool renamed = false;
    if (!buf) {
        rv = fail(errmsg, errlen, RLOG_ENOMEM, "repair: out of memory");
        goto out;
    }
    if ((rv = rl_fs_open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644, &fd)) != 0) {
        rv = fail(errmsg, errlen, rl_errno_to_rlog(rv), "repair: create %s: %s", tmp,
                  strerror(-rv));
        fd = -1;
        goto out;
    }
    uint64_t last_pos = 0;
    rv = copy_range(old_fd, fd, 0, d->pos, buf);
    if (rv == 0)
        rv = write_frames(s, fd, d, entries, n, fresh, &last_pos);
    if (rv == 0 && d->end_pos) {
        rv = copy_range(old_fd, fd, d->end_pos, fresh->end_pos, buf);
        for (size_t i = 0; rv == 0 && i < rb->nafter; i++)
            if (rl_segment_add_sample(fresh, rb->after[i].index, rb->after[i].offset,
                                      rb->after[i].pos, 0))
                rv = -ENOMEM;
    } else if (rv == 0) {
        fresh->end_pos = d->pos + newlen;
        fresh->last_pos = last_pos;
    }
    /* The same size as every segment: zeros past the frames. */
    if (rv == 0 && ftruncate(fd, (off_t)fresh->size) != 0)
        rv = -errno;
    if (rv == 0)
        rv = rl_fs_fdatasync(fd);
    if (rv != 0) {
        rv = fail(errmsg, errlen, rl_errno_to_rlog(rv), "repair: writing %s: %s", tmp,
                  strerror(-rv));
        goto out;
    }
    if ((rv = verify_frames(fd, d, entries, n, buf)) != 0) {
        rv = rv < 0 ? fail(errmsg, errlen, rl_errno_to_rlog(rv), "repair: reading back %s: %s",
                           tmp, strerror(-rv))
                    : fail(errmsg, errlen, RLOG_ECORRUPT,
                           "repair: %s does not read back as written", tmp);
        goto out;
    }
    if ((rv = rl_fs_rename(tmp, path)) != 0) {
        rv = fail(errmsg, errlen, rl_errno_to_rlog(rv), "repair: rename %s: %s", tmp,
                  strerror(-rv));
        goto out;
    }
    renamed = true;
    if ((rv = rl_fs_fsync_dir(s->dir)) != 0) {
        rv = fail(errmsg, errlen, rl_errno_to_rlog(rv), "repair: fsync of %s: %s", s->dir,
                  strerror(-rv));
        goto out;
    }
    fresh->fd = fd;
    fd = -1;
    rl_segment_write_index(s, fresh); /* a failure only costs a rebuild at open */
    rv = 0;
out:
    if (fd >= 0) {
        rl_fs_close(fd);
        if (!renamed)
            rl_fs_unlink(tmp);
    }
    free(buf);
    return rv;
}

void rl_repair_release(struct rl_rebuild *rb)
{
    rl_segment_free(rb->fresh);
    free(rb->after);
    *rb = (struct rl_rebuild){0};
}

void rl_repair_install(struct rl_store *s, struct rl_segment *seg, struct rl_rebuild *rb,
                       const struct rl_damage *d)
{
    struct rl_segment *fresh = rb->fresh;
    /* No job uses seg's descriptor now: the repair runs alone in the
     * writer's queue, after every spare and index job, and the loop's
     * reads are on this thread. A host thread's read walks a duplicate of
     * the old descriptor (read.c): it finds the damage there and asks the
     * loop thread. */
    pthread_mutex_lock(&s->segs_mu);
    if (seg->fd >= 0)
        rl_fs_close(seg->fd);
    seg->fd = fresh->fd;
    fresh->fd = -1;
    free(seg->samples);
    seg->samples = fresh->samples;
    seg->nsamples = fresh->nsamples;
    seg->cap = fresh->cap;
    fresh->samples = NULL;
    seg->end_pos = fresh->end_pos;
    seg->last_pos = fresh->last_pos;
    pthread_mutex_unlock(&s->segs_mu);
    rl_repair_release(rb);
    for (size_t i = 0; i < s->ndamage; i++)
        if (s->damage[i].seq == d->seq && s->damage[i].first_index == d->first_index) {
            memmove(&s->damage[i], &s->damage[i + 1], (s->ndamage - i - 1) * sizeof *s->damage);
            s->ndamage--;
            break;
        }
    s->stats.repaired_ranges++;
    s->stats.repaired_entries += d->last_index - d->first_index + 1;
}
