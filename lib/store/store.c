/*
 * store — opening (recovery), reading, and the request API. The byte layout
 * is in format.c, one file's scan and lookup (and damage found there) in
 * segment.c, the directory in dir.c, every change to the files in writer.c,
 * and the write-back of a repaired segment in rebuild.c.
 *
 * Open: lock the directory, load the metadata, list the segments, check that
 * their headers chain, delete those wholly before the trim point (left by a
 * crash during trim), trust each sealed segment's index file only if it
 * matches the file (else rescan it), and scan the last segment frame by frame,
 * cutting a torn tail. Then bump the write generation and record a cut at the
 * recovered end, so nothing the previous run left past it can ever be read
 * as part of the log. Open reads the last segment and the index files, not
 * the whole log, so its cost does not grow with the log's length.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "common/grow.h"
#include "fs/fs.h"
#include "store/internal.h"

#define DEFAULT_MAX_BATCH (8u << 20)

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

static int recover(struct rl_store *s)
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

int rl_store_open(uv_loop_t *loop, const struct rl_store_config *cfg, struct rl_store **out,
                  char *errmsg, size_t errlen)
{
    *out = NULL;
    struct rl_store *s = calloc(1, sizeof *s);
    if (!s) {
        if (errmsg && errlen)
            snprintf(errmsg, errlen, "out of memory");
        return RLOG_ENOMEM;
    }
    s->lock_fd = -1;
    s->loop = loop;
    pthread_mutex_init(&s->meta_mu, NULL);
    int rv = 0;
    if (!loop || !cfg || !cfg->dir || !cfg->dir[0]) {
        rv = rl_store_fail(s, RLOG_EINVAL, "store config: %s is required",
                           !loop ? "loop" : !cfg ? "config" : "dir");
        goto fail;
    }
    s->segment_size = cfg->segment_size ? cfg->segment_size : RL_STORE_DEFAULT_SEGMENT_SIZE;
    s->index_interval = cfg->index_interval ? cfg->index_interval : RL_STORE_DEFAULT_INDEX_INTERVAL;
    s->max_batch_bytes = cfg->max_batch_bytes ? cfg->max_batch_bytes : DEFAULT_MAX_BATCH;
    if (s->segment_size < RL_STORE_MIN_SEGMENT_SIZE || s->segment_size > ((uint64_t)1 << 40) ||
        s->segment_size % 4096) {
        rv = rl_store_fail(s, RLOG_EINVAL,
                           "store config: segment_size %" PRIu64
                           " must be a multiple of 4096 between %u and 2^40",
                           s->segment_size, RL_STORE_MIN_SEGMENT_SIZE);
        goto fail;
    }
    s->first_segment_size = cfg->first_segment_size ? cfg->first_segment_size
                                                    : RL_STORE_FIRST_SEGMENT_SIZE;
    s->first_segment_size = (s->first_segment_size + 4095) / 4096 * 4096;
    if (s->first_segment_size > s->segment_size)
        s->first_segment_size = s->segment_size;
    if (s->first_segment_size < RL_STORE_MIN_SEGMENT_SIZE)
        s->first_segment_size = RL_STORE_MIN_SEGMENT_SIZE;
    if (s->index_interval < 512 || s->index_interval > s->segment_size) {
        rv = rl_store_fail(s, RLOG_EINVAL,
                           "store config: index_interval %u must be between 512 and segment_size",
                           s->index_interval);
        goto fail;
    }
    s->dir = strdup(cfg->dir);
    if (!s->dir) {
        rv = rl_store_fail(s, RLOG_ENOMEM, "out of memory");
        goto fail;
    }
    size_t dl = strlen(s->dir);
    while (dl > 1 && s->dir[dl - 1] == '/')
        s->dir[--dl] = '\0';
    if ((rv = rl_dir_open(s)) != 0 || (rv = recover(s)) != 0)
        goto fail;
    if (!rl_env) { /* the simulator's deferred work already runs on the loop */
        uv_idle_init(loop, &s->runner);
        s->runner.data = s;
        s->runner_live = true;
    }
    if (!s->spare)
        rl_writer_prepare_spare(s);
    *out = s;
    return 0;
fail:
    if (errmsg && errlen)
        snprintf(errmsg, errlen, "%s", s->errmsg[0] ? s->errmsg : rlog_strerror(rv));
    if (rv == RLOG_ENOMEM || !s->errmsg[0])
        rv = rv ? rv : RLOG_EIO;
    rl_store_free(s);
    return rv;
}

/* ---- close (close.c ends it) ----------------------------------------------- */

void rl_store_close(struct rl_store *s, void (*cb)(void *arg), void *arg)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    s->close_cb = cb;
    s->close_arg = arg;
    rl_writer_finish_close_if_idle(s);
}

/* ---- requests ----------------------------------------------------------------- */

static int check_usable(struct rl_store *s)
{
    if (s->fatal)
        return RLOG_EFATAL; /* errmsg keeps the first cause */
    if (s->closing)
        return rl_store_fail(s, RLOG_ECLOSED, "store is closing");
    return 0;
}

static void enqueue(struct rl_store *s, struct rl_store_req *req)
{
    req->next = NULL;
    if (s->tail)
        s->tail->next = req;
    else
        s->head = req;
    s->tail = req;
    rl_writer_kick(s);
}

uint64_t rl_store_max_payload(const struct rl_store *s)
{
    return s->segment_size - RL_SEG_HDR - RL_FRAME_HDR;
}

int rl_store_append(struct rl_store *s, struct rl_store_req *req,
                    const struct rl_store_entry *entries, unsigned n, rl_store_cb cb)
{
    int rv = check_usable(s);
    if (rv)
        return rv;
    if (!req || !entries || n == 0)
        return rl_store_fail(s, RLOG_EINVAL, "append: no entries");
    for (unsigned i = 0; i < n; i++) {
        if (entries[i].index != s->next_index + i)
            return rl_store_fail(s, RLOG_EINVAL,
                                 "append: entry %u has index %" PRIu64 ", expected %" PRIu64, i,
                                 entries[i].index, s->next_index + i);
        if (entries[i].len > rl_store_max_payload(s))
            return rl_store_fail(s, RLOG_ETOOBIG,
                                 "append: entry %" PRIu64 " is %u bytes; a %" PRIu64
                                 "-byte segment holds at most %" PRIu64,
                                 entries[i].index, entries[i].len, s->segment_size,
                                 rl_store_max_payload(s));
        if (entries[i].len && !entries[i].buf)
            return rl_store_fail(s, RLOG_EINVAL, "append: entry %u has no buffer", i);
    }
    unsigned char *hdrs = malloc((size_t)n * RL_FRAME_HDR);
    if (!hdrs)
        return rl_store_fail(s, RLOG_ENOMEM, "append: out of memory");
    uint64_t offset = s->next_offset_sub;
    for (unsigned i = 0; i < n; i++) {
        struct rl_frame f = {.index = entries[i].index, .term = entries[i].term,
                             .offset = offset, .length = entries[i].len,
                             .records = entries[i].records, .type = entries[i].type};
        rl_frame_encode(hdrs + (size_t)i * RL_FRAME_HDR, &f);
        offset += entries[i].records;
    }
    *req = (struct rl_store_req){.data = req->data, .first_index = entries[0].index,
                                 .first_offset = s->next_offset_sub, .kind = RL_REQ_APPEND,
                                 .cb = cb, .entries = entries, .n = n, .headers = hdrs};
    s->next_index += n;
    s->next_offset_sub = offset;
    enqueue(s, req);
    return 0;
}

/* Record offset of entry `index`, which may still be queued. The queue can
 * hold the same index twice (an append, a truncate below it, the append
 * that replaces it): the newest covering append is the one that will stand
 * (taking the oldest gave a truncate behind a replaced suffix the stale
 * entry's offset, and the log a jump in its offsets: found by the
 * simulator, paused-leader-catchup seed 19). */
static int offset_of(struct rl_store *s, uint64_t index, uint64_t *offset)
{
    if (index == s->next_index) {
        *offset = s->next_offset_sub;
        return 0;
    }
    const struct rl_store_req *newest = NULL;
    for (struct rl_store_req *r = s->head; r; r = r->next)
        if (r->kind == RL_REQ_APPEND && index >= r->first_index && index < r->first_index + r->n)
            newest = r;
    if (newest) {
        *offset = rl_get64(newest->headers + (index - newest->first_index) * RL_FRAME_HDR + 24);
        return 0;
    }
    const struct rl_damage *d = rl_store_damage_at(s, index, false);
    if (d && d->first_index == index) {
        *offset = d->first_offset; /* known from the good frame before it */
        return 0;
    }
    struct rl_store_entry e;
    int rv = rl_store_read(s, index, &e);
    if (rv == 0) {
        free((void *)e.buf);
        *offset = e.offset;
    }
    return rv;
}

int rl_store_truncate(struct rl_store *s, struct rl_store_req *req, uint64_t index, rl_store_cb cb)
{
    int rv = check_usable(s);
    if (rv)
        return rv;
    if (!req || index < s->first_index || index > s->next_index)
        return rl_store_fail(s, RLOG_EINVAL,
                             "truncate: index %" PRIu64 " outside [%" PRIu64 ", %" PRIu64 "]", index,
                             s->first_index, s->next_index);
    uint64_t offset;
    if ((rv = offset_of(s, index, &offset)) != 0)
        return rv;
    if (offset < s->first_offset)
        return rl_store_fail(s, RLOG_EINVAL,
                             "truncate: entry %" PRIu64 " holds record %" PRIu64
                             ", before the first record %" PRIu64 " (trimmed records are committed)",
                             index, offset, s->first_offset);
    *req = (struct rl_store_req){.data = req->data, .kind = RL_REQ_TRUNCATE, .cb = cb, .arg = index};
    s->next_index = index;
    s->next_offset_sub = offset;
    enqueue(s, req);
    return 0;
}

int rl_store_trim_records(struct rl_store *s, struct rl_store_req *req, uint64_t index,
                          uint64_t offset, rl_store_cb cb)
{
    int rv = check_usable(s);
    if (rv)
        return rv;
    if (!req || index > s->next_index)
        return rl_store_fail(s, RLOG_EINVAL,
                             "trim: index %" PRIu64 " is beyond the end of the log (next %" PRIu64 ")",
                             index, s->next_index);
    if (offset > s->next_offset_sub)
        return rl_store_fail(s, RLOG_EINVAL,
                             "trim: record %" PRIu64 " is beyond the end of the log (next %" PRIu64 ")",
                             offset, s->next_offset_sub);
    *req = (struct rl_store_req){.data = req->data, .kind = RL_REQ_TRIM, .cb = cb, .arg = index,
                                 .arg2 = offset};
    enqueue(s, req);
    return 0;
}

int rl_store_trim(struct rl_store *s, struct rl_store_req *req, uint64_t index, rl_store_cb cb)
{
    return rl_store_trim_records(s, req, index, 0, cb);
}

int rl_store_reset(struct rl_store *s, struct rl_store_req *req, uint64_t index, uint64_t offset,
                   rl_store_cb cb)
{
    int rv = check_usable(s);
    if (rv)
        return rv;
    if (!req || index == 0)
        return rl_store_fail(s, RLOG_EINVAL, "reset: entries start at index 1");
    *req = (struct rl_store_req){.data = req->data, .kind = RL_REQ_RESET, .cb = cb, .arg = index,
                                 .arg2 = offset};
    s->next_index = index;
    s->next_offset_sub = offset;
    enqueue(s, req);
    return 0;
}

int rl_store_repair(struct rl_store *s, struct rl_store_req *req,
                    const struct rl_store_entry *entries, unsigned n, rl_store_cb cb)
{
    int rv = check_usable(s);
    if (rv)
        return rv;
    if (!req || !entries || n == 0)
        return rl_store_fail(s, RLOG_EINVAL, "repair: no entries");
    struct rl_damage *d = NULL;
    for (size_t i = 0; i < s->ndamage; i++)
        if (s->damage[i].first_index == entries[0].index)
            d = &s->damage[i];
    if (!d)
        return rl_store_fail(s, RLOG_EINVAL, "repair: entry %" PRIu64 " starts no damaged range",
                             entries[0].index);
    struct rl_segment *seg = NULL;
    for (size_t i = 0; i + 1 < s->nsegs; i++)
        if (s->segs[i]->seq == d->seq)
            seg = s->segs[i];
    if (!seg || d->repairing)
        return rl_store_fail(s, RLOG_EINVAL, "repair: entries %" PRIu64 "..%" PRIu64 " are %s",
                             d->first_index, d->last_index,
                             d->repairing ? "already being repaired"
                                          : "in the segment still being written");
    if (d->last_index - d->first_index + 1 != n)
        return rl_store_fail(s, RLOG_EINVAL,
                             "repair: the damaged range is entries %" PRIu64 "..%" PRIu64
                             ", not %u entries", d->first_index, d->last_index, n);
    uint64_t records = 0, bytes = 0;
    for (unsigned i = 0; i < n; i++) {
        if (entries[i].index != d->first_index + i || (entries[i].len && !entries[i].buf) ||
            entries[i].len > rl_store_max_payload(s))
            return rl_store_fail(s, RLOG_EINVAL, "repair: entry %u is not entry %" PRIu64
                                 " with a payload that fits", i, d->first_index + i);
        records += entries[i].records;
        bytes += RL_FRAME_HDR + rl_pad8(entries[i].len);
    }
    if (records != d->end_offset - d->first_offset)
        return rl_store_fail(s, RLOG_EINVAL,
                             "repair: entries %" PRIu64 "..%" PRIu64 " hold records %" PRIu64
                             "..%" PRIu64 " here (%" PRIu64 "), the copy holds %" PRIu64,
                             d->first_index, d->last_index, d->first_offset, d->end_offset,
                             d->end_offset - d->first_offset, records);
    if (d->end_pos ? bytes != d->end_pos - d->pos : d->pos + bytes > seg->size)
        return rl_store_fail(s, RLOG_EINVAL,
                             "repair: entries %" PRIu64 "..%" PRIu64 " take %" PRIu64
                             " bytes framed; the damaged bytes are %" PRIu64,
                             d->first_index, d->last_index, bytes,
                             d->end_pos ? d->end_pos - d->pos : seg->size - d->pos);
    *req = (struct rl_store_req){.data = req->data, .kind = RL_REQ_REPAIR, .cb = cb,
                                 .entries = entries, .n = n, .arg = d->first_index,
                                 .arg2 = d->seq};
    d->repairing = true;
    enqueue(s, req);
    return 0;
}

/* ---- metadata and accessors ------------------------------------------------- */

struct term_vote {
    uint64_t term, vote;
};

static void edit_term_vote(struct rl_meta *m, const void *arg)
{
    const struct term_vote *tv = arg;
    m->term = tv->term;
    m->vote = tv->vote;
}

int rl_store_set_term_vote(struct rl_store *s, uint64_t term, uint64_t vote)
{
    int rv = check_usable(s);
    if (rv)
        return rv;
    struct term_vote tv = {term, vote};
    rv = rl_meta_update(s, edit_term_vote, &tv);
    if (rv != 0) {
        /* A failed fdatasync leaves the page cache untrustworthy. */
        snprintf(s->errmsg, sizeof s->errmsg, "fatal: writing term/vote metadata: %s",
                 strerror(-rv));
        s->fatal = rl_errno_to_rlog(rv);
        rl_writer_fail_all(s, RLOG_EFATAL);
        return RLOG_EFATAL;
    }
    return 0;
}

uint64_t rl_store_term(const struct rl_store *s) { return s->meta.term; }
uint64_t rl_store_vote(const struct rl_store *s) { return s->meta.vote; }
uint64_t rl_store_first_index(const struct rl_store *s) { return s->first_index; }
uint64_t rl_store_last_index(const struct rl_store *s) { return s->last_index; }
uint64_t rl_store_first_offset(const struct rl_store *s) { return s->first_offset; }
uint64_t rl_store_next_offset(const struct rl_store *s) { return s->next_offset; }
uint64_t rl_store_next_index(const struct rl_store *s) { return s->next_index; }
const char *rl_store_errmsg(const struct rl_store *s) { return s->errmsg; }
const char *rl_store_recovery_note(const struct rl_store *s) { return s->note; }
bool rl_store_is_fatal(const struct rl_store *s) { return s->fatal != 0; }

bool rl_store_appending(const struct rl_store *s)
{
    for (const struct rl_store_req *r = s->head; r; r = r->next)
        if (r->kind == RL_REQ_APPEND)
            return true;
    return false;
}

void rl_store_stats(const struct rl_store *s, struct rl_store_stats *out)
{
    *out = s->stats;
}

void rl_store_hists(const struct rl_store *s, struct rlog_histogram *sync_us,
                    struct rlog_histogram *write_entries)
{
    rl_hist_read(&s->sync_us, sync_us);
    rl_hist_read(&s->write_entries, write_entries);
}
