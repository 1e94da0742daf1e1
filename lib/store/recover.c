/*
 * recover — what open does to rebuild the store's state from its files,
 * once the directory is locked and its metadata loaded (dir.c).
 *
 * List the segments, check that their headers chain, delete those wholly
 * before the trim point (left by a crash during trim), trust each sealed
 * segment's index file only if it matches the file (else rescan it), and
 * scan the last segment frame by frame, cutting a torn tail. Then bump the
 * write generation and record a cut at the recovered end, so nothing the
 * previous run left past it can ever be read as part of the log. Open reads
 * the last segment and the index files, not the whole log, so its cost does
 * not grow with the log's length.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "store/internal.h"
#include "store/recover.h"
#include "store/writer.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Collects segment sequence numbers; removes leftovers of interrupted
 * writes (*.tmp) and index files whose segment is gone. */
static int list_segments(struct rl_store *s, uint64_t **seqs_out, size_t *n_out)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return rl_store_fail(s, RLOG_EIO, "%s: %s", s->dir, strerror(errno));
    uint64_t *seqs = NULL, *idx = NULL;
    size_t n = 0, cap = 0, ni = 0, icap = 0;
    struct dirent *e;
    int rv = 0;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        char ext[8], tail;
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
            rl_fs_unlink(path);
            continue;
        }
        if (len != 24 || sscanf(e->d_name, "seg-%16" SCNx64 ".%3s%c", &seq, ext, &tail) != 2)
            continue;
        bool is_log = !strcmp(ext, "log");
        if (!is_log && strcmp(ext, "idx"))
            continue;
        uint64_t **arr = is_log ? &seqs : &idx;
        size_t *cnt = is_log ? &n : &ni, *cp = is_log ? &cap : &icap;
        if (*cnt == *cp) {
            size_t nc = *cp ? *cp * 2 : 64;
            uint64_t *p = realloc(*arr, nc * sizeof *p);
            if (!p) {
                rv = RLOG_ENOMEM;
                break;
            }
            *arr = p;
            *cp = nc;
        }
        (*arr)[(*cnt)++] = seq;
    }
    closedir(d);
    if (rv == 0) {
        if (n)
            qsort(seqs, n, sizeof *seqs, cmp_u64);
        for (size_t i = 0; i < ni; i++) {
            if (n && bsearch(&idx[i], seqs, n, sizeof *seqs, cmp_u64))
                continue;
            char path[4200];
            rl_seg_path(s, path, sizeof path, idx[i], "idx");
            rl_fs_unlink(path);
        }
    }
    free(idx);
    if (rv != 0) {
        free(seqs);
        return rl_store_fail(s, rv, "out of memory listing %s", s->dir);
    }
    *seqs_out = seqs;
    *n_out = n;
    return 0;
}

static void drop_files(struct rl_store *s, uint64_t seq)
{
    char path[4200];
    rl_seg_path(s, path, sizeof path, seq, "log");
    rl_fs_unlink(path);
    rl_seg_path(s, path, sizeof path, seq, "idx");
    rl_fs_unlink(path);
}

/* Opens each segment and reads its header; the last file may be a spare
 * (zero header) or a spare whose first write was torn (dropped). */
static int open_segments(struct rl_store *s, const uint64_t *seqs, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (seqs[i] != seqs[i - 1] + 1)
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s: seg-%016" PRIx64 ".log follows seg-%016" PRIx64
                                 ".log but seg-%016" PRIx64 ".log is missing",
                                 s->dir, seqs[i], seqs[i - 1], seqs[i - 1] + 1);
    for (size_t i = 0; i < n; i++) {
        char path[4200], name[64];
        rl_seg_path(s, path, sizeof path, seqs[i], "log");
        snprintf(name, sizeof name, "seg-%016" PRIx64 ".log", seqs[i]);
        struct rl_segment *seg = rl_segment_new(seqs[i]);
        if (!seg)
            return RLOG_ENOMEM;
        int rv = rl_fs_open(path, O_RDWR, 0, &seg->fd);
        unsigned char hb[RL_SEG_HDR];
        size_t got = 0;
        if (rv == 0)
            rv = rl_fs_file_size(seg->fd, &seg->size);
        if (rv == 0)
            rv = rl_fs_pread(seg->fd, hb, sizeof hb, 0, &got);
        if (rv != 0) {
            rl_segment_free(seg);
            return rl_store_fail(s, rl_errno_to_rlog(rv), "%s/%s: %s", s->dir, name, strerror(-rv));
        }
        bool last = i + 1 == n;
        struct rl_seg_hdr h;
        int hv = got == sizeof hb ? rl_seg_hdr_decode(hb, &h) : RLOG_ECORRUPT;
        bool zero = got == sizeof hb && rl_all_zero(hb, sizeof hb);
        if (last && (zero || hv == RLOG_ECORRUPT)) {
            if (zero && seg->size == rl_writer_next_segment_size(s)) {
                s->spare = seg; /* made by a previous run, never used */
            } else {
                if (!zero)
                    rl_store_add_note(s, "%s: torn first write of a new segment; removed", name);
                rl_segment_free(seg);
                drop_files(s, seqs[i]);
            }
            return 0;
        }
        if (hv != 0) {
            rl_segment_free(seg);
            return rl_store_fail(s, hv, "%s/%s: %s", s->dir, name,
                                 hv == RLOG_EVERSION ? "unsupported segment format version"
                                 : zero ? "unused segment followed by later segments"
                                        : "damaged segment header");
        }
        if (h.seq != seqs[i] || h.dir_id != s->dir_id) {
            rl_segment_free(seg);
            return rl_store_fail(s, h.dir_id != s->dir_id ? RLOG_EFOREIGN : RLOG_ECORRUPT,
                                 "%s/%s: %s", s->dir, name,
                                 h.dir_id != s->dir_id ? "belongs to another data directory"
                                                       : "header does not match its name");
        }
        seg->first_index = h.first_index;
        seg->first_offset = h.first_offset;
        seg->gen = h.gen;
        if (h.gen > s->max_gen)
            s->max_gen = h.gen;
        seg->has_header = true;
        struct rl_segment *prev = s->nsegs ? s->segs[s->nsegs - 1] : NULL;
        if ((prev && (h.first_index <= prev->first_index || h.first_offset < prev->first_offset)) ||
            h.first_index == 0) {
            rl_segment_free(seg);
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s/%s: starts at entry %" PRIu64 ", not after its predecessor",
                                 s->dir, name, h.first_index);
        }
        if ((rv = rl_store_push_segment(s, seg)) != 0) {
            rl_segment_free(seg);
            return rv;
        }
    }
    return 0;
}

static void edit_reopen(struct rl_meta *m, const void *arg)
{
    const uint64_t *cut = arg;
    /* Above every generation on disk, even one whose metadata write was
     * lost (frames newer than the metadata are possible after falling back
     * to the older copy): a generation is never issued twice. */
    if (cut[2] > m->gen)
        m->gen = (uint32_t)cut[2];
    m->gen++;
    m->flags &= ~RL_META_RESET; /* recovery removed what it marked stale */
    m->cut_seq = cut[0];
    m->cut_pos = cut[1];
    m->cut_gen = m->gen;
}

int rl_store_recover(struct rl_store *s)
{
    uint64_t *seqs = NULL;
    size_t n = 0;
    int rv = list_segments(s, &seqs, &n);
    if (rv == 0)
        rv = open_segments(s, seqs, n);
    free(seqs);
    if (rv != 0)
        return rv;

    /* Segments wholly before the trim point: a trim was interrupted. After
     * an interrupted reset every segment is old: the flag is cleared before
     * the new log writes its first segment. */
    size_t gone = 0;
    bool reset = s->meta.flags & RL_META_RESET;
    while (gone + 1 < s->nsegs && s->segs[gone + 1]->first_index <= s->meta.first_index)
        gone++;
    if (reset)
        gone = s->nsegs;
    if (gone) {
        for (size_t i = 0; i < gone; i++) {
            drop_files(s, s->segs[i]->seq);
            rl_segment_free(s->segs[i]);
        }
        memmove(s->segs, s->segs + gone, (s->nsegs - gone) * sizeof *s->segs);
        s->nsegs -= gone;
        rl_store_add_note(s, "removed %zu segment(s) of an interrupted %s", gone,
                          reset ? "reset" : "trim");
        /* The reset flag goes with the next metadata write: the files must
         * be gone for good first. */
        if (reset && (rv = rl_fs_fsync_dir(s->dir)) != 0)
            return rl_store_fail(s, rl_errno_to_rlog(rv), "fsync of %s: %s", s->dir,
                                 strerror(-rv));
    }
    for (size_t i = 0; i + 1 < s->nsegs; i++) {
        struct rl_segment *seg = s->segs[i];
        uint64_t expect_last = s->segs[i + 1]->first_index - 1;
        seg->sealed = true;
        if (rl_segment_load_index(s, seg, expect_last) == 0)
            continue;
        if ((rv = rl_segment_scan(s, seg, false, expect_last, false)) != 0)
            return rv;
        rl_segment_write_index(s, seg);
        rl_store_add_note(s, "rebuilt index of seg-%016" PRIx64 ".log", seg->seq);
    }
    struct rl_segment *last = s->nsegs ? s->segs[s->nsegs - 1] : NULL;
    if (last && (rv = rl_segment_scan(s, last, true, 0, false)) != 0)
        return rv;

    s->first_index = s->meta.first_index;
    s->first_offset = s->meta.first_offset;
    if (last) {
        if (s->segs[0]->first_index > s->first_index)
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s: log starts at entry %" PRIu64 " but the metadata says %" PRIu64,
                                 s->dir, s->segs[0]->first_index, s->first_index);
        s->last_index = last->last_index;
        s->next_offset = last->next_offset;
        if (s->last_index + 1 < s->first_index)
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s: log ends at entry %" PRIu64 ", before its trim point %" PRIu64,
                                 s->dir, s->last_index, s->first_index);
        if (s->last_index + 1 == s->first_index && s->next_offset != s->first_offset)
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s: the log is empty from entry %" PRIu64
                                 " but the metadata puts record %" PRIu64
                                 " there and the segments record %" PRIu64,
                                 s->dir, s->first_index, s->first_offset, s->next_offset);
    } else {
        s->last_index = s->first_index - 1;
        s->next_offset = s->first_offset;
    }
    s->next_index = s->last_index + 1;
    s->next_offset_sub = s->next_offset;
    if (s->first_index <= s->last_index) {
        struct rl_store_entry e;
        int r = rl_store_read(s, s->first_index, &e);
        free((void *)e.buf);
        if (r == RLOG_ECORRUPT && rl_store_damage_at(s, s->first_index, false))
            r = 0, e.offset = s->first_offset; /* damaged: repaired later */
        if (r != 0)
            return r;
        if (e.offset > s->first_offset || s->first_offset > s->next_offset)
            return rl_store_fail(s, RLOG_ECORRUPT,
                                 "%s: entry %" PRIu64 " holds record %" PRIu64
                                 " but the metadata says the log starts at record %" PRIu64,
                                 s->dir, s->first_index, e.offset, s->first_offset);
    }

    uint64_t cut[3] = {last ? last->seq : 0, last ? last->end_pos : 0, s->max_gen};
    rv = rl_meta_update(s, edit_reopen, cut);
    if (rv != 0)
        return rl_store_fail(s, rl_errno_to_rlog(rv), "%s: cannot write metadata: %s", s->dir,
                             strerror(-rv));
    s->stats.segments = s->nsegs;
    return 0;
}
