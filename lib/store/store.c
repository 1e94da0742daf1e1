/*
 * store — the store's entry points: open, close, the requests (queued for
 * the writer), term/vote, and accessors. What each step does lives below:
 * internal.h lists the files of lib/store and their layers. Open locks the
 * directory and loads the metadata (dir.c), then rebuilds the state from
 * the files (recover.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "fs/fs.h"
#include "store/internal.h"
#include "store/recover.h"
#include "store/writer.h"

#define DEFAULT_MAX_BATCH (8u << 20)

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
    pthread_mutex_init(&s->meta_pub_mu, NULL);
    pthread_mutex_init(&s->segs_mu, NULL);
    int rv = 0;
    if (!loop || !cfg || !cfg->dir || !cfg->dir[0]) {
        rv = rl_store_fail(s, RLOG_EINVAL, "store config: %s is required",
                           !loop ? "loop" : !cfg ? "config" : "dir");
        goto fail;
    }
    s->segment_size = cfg->segment_size ? cfg->segment_size : RL_STORE_DEFAULT_SEGMENT_SIZE;
    s->index_interval = cfg->index_interval ? cfg->index_interval : RL_STORE_DEFAULT_INDEX_INTERVAL;
    s->max_batch_bytes = cfg->max_batch_bytes ? cfg->max_batch_bytes : DEFAULT_MAX_BATCH;
    s->hold_jobs = cfg->hold_jobs;
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
    if ((rv = rl_dir_open(s)) != 0 || (rv = rl_store_recover(s)) != 0)
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

static uint64_t rl_store_max_payload(const struct rl_store *s)
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

uint64_t rl_store_cut_floor(struct rl_store *s)
{
    uint64_t offset;
    if (s->first_index >= s->next_index || offset_of(s, s->first_index, &offset) != 0)
        return s->first_index;
    return offset < s->first_offset ? s->first_index + 1 : s->first_index;
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

uint64_t rl_store_term(const struct rl_store *s) { return rl_meta_now((struct rl_store *)s).term; }
uint64_t rl_store_vote(const struct rl_store *s) { return rl_meta_now((struct rl_store *)s).vote; }
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
