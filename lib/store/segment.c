/*
 * One segment file: recovery scan, lookup through the sparse index, and the
 * index file written when the segment is sealed.
 *
 * A frame is accepted while scanning only if it is exactly the next entry
 * (index and record offset continue), its generation never goes backwards and
 * is not newer than the metadata's, it is not stale (at or past the recorded
 * cut with an older generation) and its checksum holds.
 *
 * The first frame that fails in the last segment is either the torn tail of
 * the write that was in flight at a crash, or corruption of data that was
 * acknowledged. Writes are serialised: a write starts only after the one
 * before it was fdatasync'd. So if any later valid frame of the current run
 * belongs to a write that began after the failed entry (its batch_first is
 * greater), the failed entry was durable: that is corruption, and open fails.
 * Otherwise the failed bytes are the unsynced tail and are cut away.
 * (Limit: a bit flip inside the very last write of a run cannot be told from
 * a torn write; it is cut and reported in the recovery note.)
 *
 * Damage (a durable frame that fails, in a sealed segment or proven durable
 * in the last one) does not stop the scan: rl_segment_damage looks for the
 * next frame that verifies, the entries in between are recorded as damaged
 * (unreadable until repaired) and the scan goes on from that frame. A read
 * that meets damage records it the same way. A damaged header's own fields
 * (index, offset, length) are never used: the range comes from the good
 * frames on either side.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/grow.h"
#include "fs/fs.h"
#include "store/internal.h"

#define SCAN_CHUNK (1u << 20)

struct rl_segment *rl_segment_new(uint64_t seq)
{
    struct rl_segment *seg = calloc(1, sizeof *seg);
    if (seg) {
        seg->seq = seq;
        seg->fd = -1;
        seg->dfd = -1;
    }
    return seg;
}

void rl_segment_free(struct rl_segment *seg)
{
    if (!seg)
        return;
    rl_segment_direct_close(seg);
    if (seg->fd >= 0)
        rl_fs_close(seg->fd);
    free(seg->samples);
    free(seg);
}

int rl_store_push_segment(struct rl_store *s, struct rl_segment *seg)
{
    struct rl_segment **p = rl_grow(s->segs, &s->segcap, s->nsegs, sizeof *p, 16);
    if (!p)
        return RLOG_ENOMEM;
    s->segs = p;
    s->segs[s->nsegs++] = seg;
    return 0;
}

void rl_segment_direct_open(const struct rl_store *s, struct rl_segment *seg)
{
    char path[4200];
    seg->direct_tried = true;
    rl_seg_path(s, path, sizeof path, seg->seq, "log");
    /* Any failure (EINVAL where O_DIRECT is unsupported) leaves buffered
     * writes, which work everywhere; a real I/O fault shows on them. */
    if (rl_fs_open(path, O_WRONLY | O_DIRECT, 0, &seg->dfd) != 0)
        seg->dfd = -1;
}

void rl_segment_direct_close(struct rl_segment *seg)
{
    if (seg->dfd >= 0)
        rl_fs_close(seg->dfd);
    seg->dfd = -1;
    seg->direct_tried = false;
    free(seg->tail);
    seg->tail = NULL;
    seg->tail_valid = false;
}

int rl_segment_add_sample(struct rl_segment *seg, uint64_t index, uint64_t offset,
                          uint64_t pos, uint32_t interval)
{
    if (seg->nsamples > 0 && pos < seg->samples[seg->nsamples - 1].pos + interval)
        return 0;
    struct rl_sample *p = rl_grow(seg->samples, &seg->cap, seg->nsamples, sizeof *p, 16);
    if (!p)
        return RLOG_ENOMEM;
    seg->samples = p;
    seg->samples[seg->nsamples++] = (struct rl_sample){index, offset, pos};
    return 0;
}

/* A window of a file, refilled on demand. */
struct reader {
    int fd;
    unsigned char *buf;
    size_t cap, len, chunk;
    uint64_t base;
};

/* Points *out at n bytes at pos: 0, 1 if the file ends first, or -errno. */
static int reader_at(struct reader *r, uint64_t pos, size_t n, const unsigned char **out)
{
    if (pos >= r->base && pos + n <= r->base + r->len) {
        *out = r->buf + (pos - r->base);
        return 0;
    }
    size_t want = n > r->chunk ? n : r->chunk;
    if (want > r->cap) {
        unsigned char *b = realloc(r->buf, want);
        if (!b)
            return -ENOMEM;
        r->buf = b;
        r->cap = want;
    }
    size_t got = 0;
    int rv = rl_fs_pread(r->fd, r->buf, want, pos, &got);
    r->base = pos;
    r->len = rv == 0 ? got : 0;
    if (rv != 0)
        return rv;
    if (got < n)
        return 1;
    *out = r->buf;
    return 0;
}

static bool is_stale(const struct rl_store *s, const struct rl_segment *seg, uint64_t pos,
                     uint32_t gen)
{
    struct rl_meta m = rl_meta_now((struct rl_store *)s);
    return seg->seq == m.cut_seq && pos >= m.cut_pos && gen < m.cut_gen;
}

static void seg_name(const struct rl_segment *seg, char *buf, size_t len)
{
    snprintf(buf, len, "seg-%016" PRIx64 ".log", seg->seq);
}

/* Reads and checks the frame at pos: 0 valid, 1 invalid, -errno. The frame
 * must be entry `index` at record offset `offset` unless index is 0. */
static int frame_at(const struct rl_store *s, const struct rl_segment *seg, struct reader *r,
                    uint64_t pos, uint64_t index, uint64_t offset, uint32_t min_gen,
                    struct rl_frame *f, const unsigned char **payload)
{
    const unsigned char *h;
    int rv = reader_at(r, pos, RL_FRAME_HDR, &h);
    if (rv != 0)
        return rv < 0 ? rv : 1;
    rl_frame_decode(h, f);
    if ((index && (f->index != index || f->offset != offset)) || f->gen < min_gen ||
        f->batch_first > f->index || h[54] || h[55] ||
        f->length > seg->size || pos + RL_FRAME_HDR + rl_pad8(f->length) > seg->size)
        return 1;
    unsigned char hdr[RL_FRAME_HDR];
    memcpy(hdr, h, sizeof hdr); /* the refill below may move the window */
    rv = reader_at(r, pos + RL_FRAME_HDR, f->length, payload);
    if (rv != 0)
        return rv < 0 ? rv : 1;
    return rl_frame_verify(hdr, *payload, f->length) ? 0 : 1;
}

/* After an invalid (or zeroed) frame at pos expected to be entry e: true if
 * a valid frame within [pos, limit) proves entry e was durable, i.e. belongs
 * to a write that started after e (see the file comment). Frames of the
 * same write (batch_first <= e) prove nothing; the search goes on past them. */
static int proves_durable(const struct rl_store *s, const struct rl_segment *seg,
                          struct reader *r, uint64_t pos, uint64_t limit, uint64_t e,
                          uint32_t min_gen, bool *durable)
{
    *durable = false;
    if (limit > seg->size)
        limit = seg->size;
    for (uint64_t q = pos + 8; q + RL_FRAME_HDR <= limit; q += 8) {
        const unsigned char *h;
        int rv = reader_at(r, q, RL_FRAME_HDR, &h);
        if (rv != 0)
            return rv < 0 ? rv : 0;
        uint64_t index = rl_get64(h + 8);
        uint32_t gen = rl_get32(h + 48);
        if (index <= e || index - e > (1u << 30) || gen < min_gen ||
            rl_get64(h + 32) <= e || is_stale(s, seg, q, gen))
            continue; /* cheap filters first: most positions are not frames */
        struct rl_frame f;
        const unsigned char *payload;
        rv = frame_at(s, seg, r, q, 0, 0, min_gen, &f, &payload);
        if (rv < 0)
            return rv;
        if (rv == 0 && f.batch_first > e) {
            *durable = true;
            return 0;
        }
    }
    return 0;
}

/* Keeps the samples sorted by position; a sample already there stays. */
static int insert_sample(struct rl_segment *seg, uint64_t index, uint64_t offset, uint64_t pos)
{
    size_t at = seg->nsamples;
    while (at > 0 && seg->samples[at - 1].pos >= pos) {
        if (seg->samples[at - 1].pos == pos)
            return 0;
        at--;
    }
    struct rl_sample *p = rl_grow(seg->samples, &seg->cap, seg->nsamples, sizeof *p, 16);
    if (!p)
        return RLOG_ENOMEM;
    seg->samples = p;
    memmove(p + at + 1, p + at, (seg->nsamples - at) * sizeof *p);
    p[at] = (struct rl_sample){index, offset, pos};
    seg->nsamples++;
    return 0;
}

int rl_segment_damage(struct rl_store *s, struct rl_segment *seg, uint64_t pos, uint64_t index,
                      uint64_t offset, uint32_t min_gen, uint64_t last_index,
                      uint64_t end_offset, struct rl_frame *resume, uint64_t *resume_pos)
{
    struct reader r = {.fd = seg->fd, .chunk = SCAN_CHUNK};
    memset(resume, 0, sizeof *resume);
    *resume_pos = 0;
    int rv = 0;
    for (uint64_t q = pos + 8; q + RL_FRAME_HDR <= seg->size; q += 8) {
        const unsigned char *h;
        int st = reader_at(&r, q, RL_FRAME_HDR, &h);
        if (st != 0) {
            rv = st < 0 ? st : 0;
            break;
        }
        uint64_t fi = rl_get64(h + 8), fo = rl_get64(h + 24);
        uint32_t gen = rl_get32(h + 48);
        /* cheap filters first: most positions are not frames */
        if (fi <= index || (last_index && fi > last_index) ||
            (!last_index && fi - index > (1u << 30)) || fo < offset ||
            (end_offset && fo > end_offset) || gen < min_gen || is_stale(s, seg, q, gen))
            continue;
        struct rl_frame f;
        const unsigned char *payload;
        st = frame_at(s, seg, &r, q, 0, 0, min_gen, &f, &payload);
        if (st < 0) {
            rv = st;
            break;
        }
        if (st == 0) {
            *resume = f;
            *resume_pos = q;
            break;
        }
    }
    free(r.buf);
    if (rv < 0)
        return rv;
    struct rl_damage d = {.seq = seg->seq, .first_index = index, .first_offset = offset,
                          .pos = pos};
    if (resume->index) {
        d.last_index = resume->index - 1;
        d.end_offset = resume->offset;
        d.end_pos = *resume_pos;
        d.gen = resume->gen;
        if ((rv = insert_sample(seg, resume->index, resume->offset, *resume_pos)) != 0)
            return -ENOMEM;
    } else {
        d.last_index = last_index;
        d.end_offset = end_offset;
        /* Nothing follows in this segment: any generation at least as new
         * as the frames before it will do. */
        uint32_t gen = rl_meta_now(s).gen;
        d.gen = gen > min_gen ? gen : min_gen;
    }
    return rl_store_add_damage(s, &d) ? -ENOMEM : 0;
}

/* Record offset the segment after seg starts at (0 if none is known). */
static uint64_t next_first_offset(const struct rl_store *s, const struct rl_segment *seg)
{
    for (size_t i = 0; i < s->nsegs; i++)
        if (s->segs[i]->seq == seg->seq + 1)
            return s->segs[i]->first_offset;
    return 0;
}

/* How far past a zeroed frame header recovery looks for proof that the
 * entries after it were durable (a lost sector), rather than the end. */
#define ZERO_LOOKAHEAD (1u << 20)

/* Records damage met by a scan at pos and moves the scan past it: 0 with
 * the position, index and offset at the next good frame (*to_end if the damage runs to
 * the end of a sealed segment), or an RLOG_E* code. */
static int scan_past_damage(struct rl_store *s, struct rl_segment *seg, const char *name,
                            bool is_last, uint64_t expect_last, uint32_t min_gen,
                            uint64_t *pos, uint64_t *index, uint64_t *offset, bool *to_end)
{
    struct rl_frame rf;
    uint64_t rp, end_off = is_last ? 0 : next_first_offset(s, seg);
    int st = rl_segment_damage(s, seg, *pos, *index, *offset, min_gen, is_last ? 0 : expect_last,
                               end_off, &rf, &rp);
    if (st < 0)
        return rl_store_fail(s, rl_errno_to_rlog(st), "%s/%s: %s", s->dir, name, strerror(-st));
    *to_end = rf.index == 0;
    if (*to_end && (is_last || !end_off))
        return rl_store_fail(s, RLOG_ECORRUPT,
                             "%s/%s: entry %" PRIu64 " at byte %" PRIu64
                             " is damaged and no later entry can be found",
                             s->dir, name, *index, *pos);
    rl_store_add_note(s, "%s: entries %" PRIu64 "..%" PRIu64 " at byte %" PRIu64
                      " are damaged; unreadable until repaired from a peer",
                      name, *index, *to_end ? expect_last : rf.index - 1, *pos);
    if (!*to_end) {
        *pos = rp;
        *index = rf.index;
        *offset = rf.offset;
    } else {
        seg->last_index = expect_last;
        seg->next_offset = end_off;
    }
    return 0;
}

int rl_segment_scan(struct rl_store *s, struct rl_segment *seg, bool is_last,
                    uint64_t expect_last, bool strict)
{
    char name[64];
    seg_name(seg, name, sizeof name);
    struct reader r = {.fd = seg->fd, .chunk = SCAN_CHUNK};
    uint64_t pos = RL_SEG_HDR, index = seg->first_index, offset = seg->first_offset;
    uint32_t prev_gen = seg->gen;
    int rv = 0;
    bool to_end = false;

    seg->nsamples = 0;
    seg->last_index = seg->first_index - 1;
    seg->next_offset = seg->first_offset;
    seg->end_pos = RL_SEG_HDR;
    seg->last_pos = 0;
    seg->tail_valid = false; /* end_pos moves: the writer reloads its tail */
    while (!to_end && (is_last || index <= expect_last)) {
        const unsigned char *h, *payload;
        struct rl_frame f;
        int st = reader_at(&r, pos, RL_FRAME_HDR, &h);
        if (st < 0) {
            rv = rl_store_fail(s, RLOG_EIO, "%s/%s: read at byte %" PRIu64 ": %s", s->dir, name,
                               pos, strerror(-st));
            goto out;
        }
        if (st == 1 || (is_last && is_stale(s, seg, pos, rl_get32(h + 48))))
            break;
        bool zero = rl_all_zero(h, RL_FRAME_HDR);
        st = zero ? 1 : frame_at(s, seg, &r, pos, index, offset, prev_gen, &f, &payload);
        if (st < 0) {
            rv = rl_store_fail(s, RLOG_EIO, "%s/%s: read at byte %" PRIu64 ": %s", s->dir, name,
                               pos, strerror(-st));
            goto out;
        }
        if (st == 1) {
            /* In a sealed segment every frame up to expect_last was
             * durable; in the last one, only a later write proves it. */
            bool durable = !is_last;
            if (is_last && (st = proves_durable(s, seg, &r, pos,
                                                zero ? pos + ZERO_LOOKAHEAD : seg->size, index,
                                                prev_gen, &durable)) < 0) {
                rv = rl_store_fail(s, RLOG_EIO, "%s/%s: %s", s->dir, name, strerror(-st));
                goto out;
            }
            if (durable && strict) {
                rv = rl_store_fail(s, RLOG_ECORRUPT,
                                   "%s/%s: entry %" PRIu64 " at byte %" PRIu64 " is %s", s->dir,
                                   name, index, pos,
                                   zero ? "missing (zeroed) but later entries exist"
                                        : "damaged (checksum or header mismatch)");
                goto out;
            }
            if (durable) {
                if ((rv = scan_past_damage(s, seg, name, is_last, expect_last, prev_gen, &pos,
                                           &index, &offset, &to_end)) != 0)
                    goto out;
                continue;
            }
            if (!zero)
                rl_store_add_note(s, "%s: torn write at byte %" PRIu64
                                  " cut; log ends at entry %" PRIu64, name, pos, index - 1);
            break; /* the end of the log */
        }
        if ((rv = rl_segment_add_sample(seg, index, offset, pos, s->index_interval)) != 0)
            goto out;
        seg->last_index = index;
        seg->last_pos = pos;
        seg->end_pos = pos + RL_FRAME_HDR + rl_pad8(f.length);
        prev_gen = f.gen;
        if (f.gen > s->max_gen)
            s->max_gen = f.gen;
        offset += f.records;
        seg->next_offset = offset;
        index++;
        pos = seg->end_pos;
    }
    if (!is_last && seg->last_index != expect_last)
        rv = rl_store_fail(s, RLOG_ECORRUPT,
                           "%s/%s: ends at entry %" PRIu64 " (byte %" PRIu64
                           ") but the next segment starts at entry %" PRIu64,
                           s->dir, name, seg->last_index, seg->end_pos, expect_last + 1);
out:
    free(r.buf);
    return rv;
}

int rl_segment_load_index(struct rl_store *s, struct rl_segment *seg, uint64_t expect_last)
{
    char path[4200];
    rl_seg_path(s, path, sizeof path, seg->seq, "idx");
    int fd, rv = rl_fs_open(path, O_RDONLY, 0, &fd);
    if (rv != 0)
        return 1;
    uint64_t size = 0;
    unsigned char *buf = NULL;
    struct rl_sample *samples = NULL;
    struct rl_idx_hdr h;
    size_t got = 0;
    rv = 1;
    if (rl_fs_file_size(fd, &size) != 0 || size < rl_idx_size(0) || size > (256u << 20))
        goto out;
    uint32_t max = (uint32_t)((size - rl_idx_size(0)) / 24);
    buf = malloc(size);
    samples = malloc((max ? max : 1) * sizeof *samples);
    if (!buf || !samples || rl_fs_pread(fd, buf, size, 0, &got) != 0 || got != size ||
        rl_idx_decode(buf, size, &h, samples, max) != 0)
        goto out;
    if (h.seq != seg->seq || h.first_index != seg->first_index || h.last_index != expect_last ||
        h.dir_id != s->dir_id || h.count == 0 || samples[0].index != seg->first_index ||
        samples[0].offset != seg->first_offset || samples[0].pos != RL_SEG_HDR ||
        h.end_pos > seg->size || h.last_pos + RL_FRAME_HDR > h.end_pos)
        goto out;
    /* The index must describe the frames now in the file, not an earlier
     * life of the segment before a truncation: check the last frame. */
    unsigned char fh[RL_FRAME_HDR];
    struct rl_frame f;
    if (rl_fs_pread(seg->fd, fh, sizeof fh, h.last_pos, &got) != 0 || got != sizeof fh)
        goto out;
    rl_frame_decode(fh, &f);
    if (f.index != h.last_index || f.checksum != h.last_checksum ||
        h.last_pos + RL_FRAME_HDR + rl_pad8(f.length) != h.end_pos ||
        f.offset + f.records != h.next_offset)
        goto out;
    free(seg->samples);
    seg->samples = samples;
    samples = NULL;
    seg->nsamples = seg->cap = h.count;
    seg->last_index = h.last_index;
    seg->next_offset = h.next_offset;
    seg->end_pos = h.end_pos;
    seg->last_pos = h.last_pos;
    seg->tail_valid = false; /* end_pos moved: the writer reloads its tail */
    rv = 0;
out:
    free(samples);
    free(buf);
    rl_fs_close(fd);
    return rv;
}

int rl_segment_write_index(struct rl_store *s, const struct rl_segment *seg)
{
    char path[4200], tmp[4210];
    unsigned char fh[RL_FRAME_HDR];
    size_t got = 0;
    if (seg->nsamples == 0 || seg->last_pos == 0)
        return 0;
    int rv = rl_fs_pread(seg->fd, fh, sizeof fh, seg->last_pos, &got);
    if (rv != 0 || got != sizeof fh)
        return rv ? rv : -EIO;
    struct rl_idx_hdr h = {
        .count = (uint32_t)seg->nsamples,
        .seq = seg->seq,
        .first_index = seg->first_index,
        .last_index = seg->last_index,
        .end_pos = seg->end_pos,
        .next_offset = seg->next_offset,
        .last_pos = seg->last_pos,
        .last_checksum = rl_get64(fh),
        .dir_id = s->dir_id,
    };
    size_t size = rl_idx_size(h.count);
    unsigned char *buf = malloc(size);
    if (!buf)
        return -ENOMEM;
    rl_idx_encode(buf, &h, seg->samples);
    rl_seg_path(s, path, sizeof path, seg->seq, "idx");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* No fsync: a lost or torn index fails its checks and is rebuilt. */
    int fd;
    rv = rl_fs_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644, &fd);
    if (rv == 0) {
        rv = rl_fs_pwrite(fd, buf, size, 0);
        rl_fs_close(fd);
        if (rv == 0)
            rv = rl_fs_rename(tmp, path);
        else
            rl_fs_unlink(tmp);
    }
    free(buf);
    return rv;
}

void rl_segment_walk_start(const struct rl_store *s, const struct rl_segment *seg, uint64_t key,
                           bool by_offset, struct rl_walk *w)
{
    *w = (struct rl_walk){.fd = seg->fd, .size = seg->size, .gen = seg->gen,
                          .last_index = seg->last_index, .chunk = s->index_interval + 4096};
    if (seg->nsamples == 0) {
        w->empty = true;
        return;
    }
    size_t lo = 0, hi = seg->nsamples; /* last sample with key at or before */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t k = by_offset ? seg->samples[mid].offset : seg->samples[mid].index;
        if (k <= key)
            lo = mid;
        else
            hi = mid;
    }
    w->pos = seg->samples[lo].pos;
    w->index = seg->samples[lo].index;
    w->offset = seg->samples[lo].offset;
}

int rl_segment_walk(struct rl_walk *w, uint64_t key, bool by_offset, struct rl_store_entry *out,
                    bool want_payload)
{
    if (w->empty)
        return RLOG_ENOTFOUND;
    struct reader r = {.fd = w->fd, .chunk = w->chunk};
    int rv = RLOG_ENOTFOUND;
    /* Every frame on the way is verified too: a damaged length would
     * otherwise send the walk into the middle of a payload. */
    while (w->index <= w->last_index) {
        const unsigned char *h, *payload = NULL;
        struct rl_frame f;
        int st = reader_at(&r, w->pos, RL_FRAME_HDR, &h);
        if (st == 0) {
            rl_frame_decode(h, &f);
            if (f.index != w->index || f.offset != w->offset || f.gen < w->gen ||
                w->pos + RL_FRAME_HDR + rl_pad8(f.length) > w->size)
                st = 1;
        }
        unsigned char hdr[RL_FRAME_HDR];
        if (st == 0) {
            memcpy(hdr, h, sizeof hdr);
            st = reader_at(&r, w->pos + RL_FRAME_HDR, f.length, &payload);
            if (st == 0 && !rl_frame_verify(hdr, payload, f.length))
                st = 1;
        }
        if (st != 0) {
            rv = st < 0 ? st : RL_WALK_BAD_FRAME;
            break;
        }
        w->gen = f.gen;
        bool match = by_offset ? key >= w->offset && key - w->offset < f.records : w->index == key;
        if (!match) {
            w->pos += RL_FRAME_HDR + rl_pad8(f.length);
            w->offset += f.records;
            w->index++;
            continue;
        }
        *out = (struct rl_store_entry){.index = f.index, .term = f.term, .offset = f.offset,
                                       .records = f.records, .type = f.type, .len = f.length};
        if (want_payload && f.length > 0) {
            void *copy = malloc(f.length);
            if (!copy) {
                rv = RLOG_ENOMEM;
                break;
            }
            memcpy(copy, payload, f.length);
            out->buf = copy;
        }
        rv = 0;
        break;
    }
    free(r.buf);
    return rv;
}

int rl_segment_find(struct rl_store *s, struct rl_segment *seg, uint64_t key, bool by_offset,
                    struct rl_store_entry *out, uint64_t *pos_out, bool want_payload)
{
    char name[64];
    seg_name(seg, name, sizeof name);
    struct rl_walk w;
    rl_segment_walk_start(s, seg, key, by_offset, &w);
    int rv = rl_segment_walk(&w, key, by_offset, out, want_payload);
    if (rv < 0)
        return rl_store_fail(s, RLOG_EIO, "%s/%s: read at byte %" PRIu64 ": %s", s->dir, name,
                             w.pos, strerror(-rv));
    if (rv == RL_WALK_BAD_FRAME) {
        struct rl_frame rf;
        uint64_t rp;
        int dv = rl_segment_damage(s, seg, w.pos, w.index, w.offset, w.gen, seg->last_index,
                                   seg->next_offset, &rf, &rp);
        const struct rl_damage *d = rl_store_damage_at(s, w.index, false);
        if (dv < 0 || !d)
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s/%s: entry %" PRIu64 " at byte %" PRIu64 " fails its checksum",
                                 s->dir, name, w.index, w.pos);
        return rl_store_fail(s, RLOG_ECORRUPT,
                             "%s/%s: entry %" PRIu64 " at byte %" PRIu64
                             " fails its checksum; entries %" PRIu64 "..%" PRIu64
                             " are unreadable until repaired from a peer",
                             s->dir, name, w.index, w.pos, d->first_index, d->last_index);
    }
    if (rv == 0 && pos_out)
        *pos_out = w.pos;
    return rv;
}
