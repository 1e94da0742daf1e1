/*
 * read — an entry by index or a record by offset: the segment that holds it
 * (binary search over the used segments), then segment.c's lookup; an entry
 * in a damaged range fails with RLOG_ECORRUPT naming the range.
 *
 * Reads go on after the fatal latch: it stops writes building on a page
 * cache that a failed fdatasync left untrustworthy, but the entries up to
 * the durable end were synced before the failure, and every frame read is
 * checked against its checksum anyway. A node that failed stop serves its
 * committed records from here until it closes.
 *
 * A host thread's read (rl_store_read_offset_shared) copies where to start
 * and a duplicate of the segment's descriptor under segs_mu, then walks
 * without it: the loop may drop or replace the segment meanwhile (trim,
 * reset, repair), and the duplicate still reads the file the walk started
 * in. What it serves is what that file held, verified frame by frame; the
 * entries it is asked for are committed, which nothing rewrites.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/internal.h"

static int damaged_read(struct rl_store *s, const struct rl_damage *d, uint64_t key, bool by_offset)
{
    return rl_store_fail(s, RLOG_ECORRUPT,
                         "%s %" PRIu64 " is unreadable here: entries %" PRIu64 "..%" PRIu64
                         " (seg-%016" PRIx64 ".log from byte %" PRIu64 ") are damaged and %s",
                         by_offset ? "record" : "entry", key, d->first_index, d->last_index,
                         d->seq, d->pos,
                         d->repairing ? "being repaired" : "await repair from a peer");
}

/* A read that finds new damage before its entry tries once more: the
 * damage is now recorded, with a sample past it. */
static int find(struct rl_store *s, struct rl_segment *seg, uint64_t key, bool by_offset,
                struct rl_store_entry *out)
{
    for (int attempt = 0;; attempt++) {
        const struct rl_damage *d = rl_store_damage_at(s, key, by_offset);
        if (d)
            return damaged_read(s, d, key, by_offset);
        size_t before = s->ndamage;
        int rv = rl_segment_find(s, seg, key, by_offset, out, NULL, true);
        if (rv != RLOG_ECORRUPT || s->ndamage == before || attempt > 0)
            return rv;
        if (rl_store_damage_at(s, key, by_offset))
            return rv; /* errmsg names the damaged range */
    }
}

/* The used segment that would hold entry `key` (record `key` when
 * by_offset): the last one starting at or before it; there is at least
 * one. */
static struct rl_segment *seg_of(const struct rl_store *s, uint64_t key, bool by_offset)
{
    size_t lo = 0, hi = s->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((by_offset ? s->segs[mid]->first_offset : s->segs[mid]->first_index) <= key)
            lo = mid;
        else
            hi = mid;
    }
    return s->segs[lo];
}

int rl_store_read(struct rl_store *s, uint64_t index, struct rl_store_entry *out)
{
    memset(out, 0, sizeof *out);
    if (index < s->first_index)
        return rl_store_fail(s, RLOG_ETRIMMED, "entry %" PRIu64 " is before the first entry %" PRIu64,
                             index, s->first_index);
    if (index > s->last_index)
        return rl_store_fail(s, RLOG_ENOTFOUND, "entry %" PRIu64 " is past the last entry %" PRIu64,
                             index, s->last_index);
    return find(s, seg_of(s, index, false), index, false, out);
}

int rl_store_read_offset(struct rl_store *s, uint64_t offset, struct rl_store_entry *out)
{
    memset(out, 0, sizeof *out);
    if (offset < s->first_offset)
        return rl_store_fail(s, RLOG_ETRIMMED,
                             "record %" PRIu64 " is before the first record %" PRIu64, offset,
                             s->first_offset);
    if (offset >= s->next_offset)
        return rl_store_fail(s, RLOG_ENOTFOUND,
                             "record %" PRIu64 " is past the last record %" PRIu64, offset,
                             s->next_offset);
    int rv = find(s, seg_of(s, offset, true), offset, true, out);
    if (rv == 0 && out->index < s->first_index) {
        free((void *)out->buf);
        memset(out, 0, sizeof *out);
        return RLOG_ETRIMMED;
    }
    return rv;
}

int rl_store_read_offset_shared(struct rl_store *s, uint64_t offset, struct rl_store_entry *out)
{
    memset(out, 0, sizeof *out);
    struct rl_walk w = {.fd = -1};
    pthread_mutex_lock(&s->segs_mu);
    uint64_t first_index = s->first_index;
    if (s->nsegs > 0 && offset >= s->first_offset && offset >= s->segs[0]->first_offset) {
        const struct rl_segment *seg = seg_of(s, offset, true);
        if (offset < seg->next_offset && seg->fd >= 0) {
            rl_segment_walk_start(s, seg, offset, true, &w);
            w.fd = fcntl(seg->fd, F_DUPFD_CLOEXEC, 0);
        }
    }
    pthread_mutex_unlock(&s->segs_mu);
    if (w.fd < 0)
        return 1;
    int rv = rl_segment_walk(&w, offset, true, out, true);
    close(w.fd);
    if (rv == 0 && out->index >= first_index)
        return 0;
    free((void *)out->buf);
    memset(out, 0, sizeof *out);
    return rv == RLOG_ENOMEM ? RLOG_ENOMEM : 1;
}
