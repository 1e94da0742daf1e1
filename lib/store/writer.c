/*
 * writer — group commit and every other change to the segment files: the
 * loop thread's side. Requests queue here; this file starts each job (for
 * appends it builds the coalesced write) and completes it. The file work
 * itself is in write_append.c (appends, the spare, index files) and
 * write_edit.c (truncate, trim, reset, repair).
 *
 * Happy path: requests queue in submission order. When no write is in
 * flight, kick() takes every queued append (up to max_batch_bytes) and builds
 * one iovec list per segment touched; a threadpool job checksums the frames,
 * does one pwritev and one fdatasync per segment, and on the loop thread the
 * completion updates the in-memory index and fires the callbacks in order.
 * Appends submitted meanwhile wait for the next write, so throughput grows
 * with load while a lone append goes out at once.
 *
 * The append job itself runs on the loop thread, at the start of the loop's
 * next turn, not in libuv's threadpool: a threadpool hop costs two wake-ups
 * per write (worker, then loop), and `make bench` measured the loop-thread
 * write faster on every workload (W1 p50 -7..17%, W2 +40%, W4 p50 -23%).
 * Deferring to the next turn (an idle handle) lets the caller finish first,
 * so a leader's AppendEntries are on the wire before its own fdatasync
 * starts. Every other job (spare, index, truncate, trim, reset) stays in the
 * threadpool: they are rare, and a spare's zero fill is long.
 *
 * A write never waits for a file to be created: the next segment (the spare)
 * is zero-filled ahead of time by its own job. A batch may roll over into the
 * spare once; the segment it leaves is sealed and its index file written in
 * the background. Segment files grow with the log: the first is
 * first_segment_size, each next one twice the last, up to segment_size, so
 * a new log takes a few MiB, not two full segments. An entry larger than
 * the spare (only while sizes still grow, and only one larger than the
 * first segment) waits while the spare is made again at its size.
 *
 * Truncate, trim and reset run as jobs in the same queue, so they are ordered with
 * appends, and never alongside a spare or index job that touches the same
 * files.
 *
 * Failure: a failed write or fdatasync latches the store fatal (the page
 * cache can no longer be trusted). A spare that cannot be made fails only the
 * appends that need it, with RLOG_ENOSPC, and the next append tries again.
 * The store can also turn fatal while a job runs (a failed term/vote write,
 * on the loop thread): the job finishes, its requests complete with
 * RLOG_EFATAL, and only then does the rest of the queue fail.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "common/grow.h"
#include "store/internal.h"
#include "store/job.h"
#include "store/writer.h"

static const unsigned char zero_pad[8];

static struct rl_segment *active(const struct rl_store *s)
{
    return s->nsegs ? s->segs[s->nsegs - 1] : NULL;
}

static bool idle(const struct rl_store *s)
{
    return !s->inflight && !s->spare_busy && s->bg_jobs == 0;
}

static struct rl_store_req *queue_pop(struct rl_store *s)
{
    struct rl_store_req *r = s->head;
    if (r) {
        s->head = r->next;
        if (!s->head)
            s->tail = NULL;
        r->next = NULL;
        free(r->headers);
        r->headers = NULL;
    }
    return r;
}

/* Fails every queued request, unless a job is running. That job's requests
 * are the head of the queue and the job still reads and writes them (frame
 * headers, payloads, the request itself): their owners free them in the
 * callback, so the callback must wait for the job. The requests behind
 * them wait too, because callbacks keep submission order; after_job()
 * fails them once the job has completed. */
static void fail_queued(struct rl_store *s, int status)
{
    if (s->inflight)
        return;
    s->next_index = s->last_index + 1;
    s->next_offset_sub = s->next_offset;
    struct rl_store_req *r;
    while ((r = queue_pop(s)) != NULL)
        if (r->cb)
            r->cb(r, status);
}

/* The status of a request whose job succeeded: the store may have turned
 * fatal while the job ran (a failed term/vote write), and then the request
 * fails like every other one behind it. */
static int job_success_status(const struct rl_store *s)
{
    return s->fatal ? RLOG_EFATAL : 0;
}

static void latch_fatal(struct rl_store *s, int code, const char *msg)
{
    if (!s->fatal) {
        char cause[sizeof s->errmsg];
        snprintf(cause, sizeof cause, "%s", msg); /* msg may be s->errmsg */
        s->fatal = code;
        snprintf(s->errmsg, sizeof s->errmsg, "fatal: %.*s", (int)sizeof s->errmsg - 8, cause);
    }
}

static void after_job(uv_work_t *w, int status);

static void run_inline(uv_idle_t *h)
{
    struct rl_store *s = h->data;
    struct rl_batch *b = s->runner_job;
    uv_idle_stop(h);
    s->runner_job = NULL;
    rl_write_append_work(&b->work);
    after_job(&b->work, 0);
}

static void queue_job(struct rl_store *s, struct rl_batch *b, uv_work_cb work)
{
    b->s = s;
    b->work.data = b;
    if (s->hold_jobs) {
        b->held_work = work;
        b->held_next = NULL;
        if (s->held_tail)
            s->held_tail->held_next = b;
        else
            s->held_head = b;
        s->held_tail = b;
        return;
    }
    if (s->runner_live && b->kind == JOB_APPEND) {
        s->runner_job = b;
        uv_idle_start(&s->runner, run_inline);
        return;
    }
    int rv = rl_queue_work(s->loop, &b->work, work, after_job);
    if (rv != 0) /* only on a closing loop: nothing sensible left to do */
        abort();
}

void rl_store_hold_jobs(struct rl_store *s, bool hold)
{
    if (!hold)
        while (s->held_head)
            rl_store_turn(s);
    s->hold_jobs = hold;
}

void rl_store_turn(struct rl_store *s)
{
    if (!s->hold_jobs) {
        rl_block_turn(s->loop);
        return;
    }
    /* One job, then back to the waiter: as one loop turn would. A job's
     * completion may queue the next; it runs at the next turn. */
    struct rl_batch *b = s->held_head;
    if (!b)
        return;
    s->held_head = b->held_next;
    if (!s->held_head)
        s->held_tail = NULL;
    b->held_work(&b->work);
    after_job(&b->work, 0);
}

/* ---- spare segment --------------------------------------------------- */

uint64_t rl_writer_next_segment_size(const struct rl_store *s)
{
    const struct rl_segment *last = active(s);
    uint64_t size = last && last->size < s->segment_size / 2 ? last->size * 2 : s->segment_size;
    if (!last)
        size = s->first_segment_size;
    if (size < s->first_segment_size)
        size = s->first_segment_size;
    if (size < s->spare_min)
        size = s->spare_min;
    return size < s->segment_size ? (size + 4095) / 4096 * 4096 : s->segment_size;
}

void rl_writer_prepare_spare(struct rl_store *s)
{
    if (s->spare_busy || s->closing || s->fatal)
        return;
    if (s->spare) {
        if (s->spare->size >= s->spare_min)
            return;
        /* Too small for the entry waiting: made again, larger (its file is
         * recreated). Only an entry larger than the first segments does
         * this, and only while segments are still growing. */
        rl_segment_free(s->spare);
        s->spare = NULL;
        s->stats.spare_regrown++;
    }
    struct rl_batch *b = calloc(1, sizeof *b);
    struct rl_segment *seg = rl_segment_new(active(s) ? active(s)->seq + 1 : 1);
    if (!b || !seg) {
        free(b);
        rl_segment_free(seg);
        return; /* retried at the next need */
    }
    seg->size = rl_writer_next_segment_size(s);
    b->kind = JOB_SPARE;
    b->seg = seg;
    s->spare_busy = true;
    queue_job(s, b, rl_write_spare_work);
}

/* ---- appends ---------------------------------------------------------- */

static int push_iov(struct rl_batch *b, const void *base, size_t len)
{
    if (b->niov == b->iovcap) {
        int cap = b->iovcap ? b->iovcap * 2 : 64;
        struct iovec *p = realloc(b->iov, (size_t)cap * sizeof *p);
        if (!p)
            return RLOG_ENOMEM;
        b->iov = p;
        b->iovcap = cap;
    }
    b->iov[b->niov++] = (struct iovec){.iov_base = (void *)base, .iov_len = len};
    return 0;
}

static int push_frame(struct rl_batch *b, const struct frame_loc *f)
{
    struct frame_loc *p = rl_grow(b->frames, &b->framecap, b->nframes, sizeof *p, 32);
    if (!p)
        return RLOG_ENOMEM;
    b->frames = p;
    b->frames[b->nframes++] = *f;
    return 0;
}

static void free_batch(struct rl_batch *b)
{
    free(b->iov);
    free(b->frames);
    free(b);
}

/* Builds and queues one coalesced write; returns false if it must wait. */
static bool start_appends(struct rl_store *s)
{
    struct rl_batch *b = calloc(1, sizeof *b);
    if (!b)
        return false;
    b->kind = JOB_APPEND;
    struct rl_segment *seg = active(s);
    uint64_t wpos = seg ? seg->end_pos : 0;
    uint64_t batch_first = 0;
    size_t bytes = 0;
    bool rolled = false, need_spare = false;
    const uint32_t gen = rl_meta_now(s).gen;
    struct extent *x = NULL;

    for (struct rl_store_req *r = s->head; r && r->kind == RL_REQ_APPEND; r = r->next) {
        while (r->done < r->n) {
            const struct rl_store_entry *e = &r->entries[r->done];
            unsigned char *hdr = r->headers + (size_t)r->done * RL_FRAME_HDR;
            uint64_t fsz = RL_FRAME_HDR + rl_pad8(e->len);
            if (b->nframes > 0 && bytes + fsz > s->max_batch_bytes)
                goto full;
            if (!seg || wpos + fsz > seg->size) {
                if (rolled)
                    goto full;
                if (!s->spare || s->spare->size < RL_SEG_HDR + fsz) {
                    if (b->nframes == 0 && s->spare_min < RL_SEG_HDR + fsz)
                        s->spare_min = RL_SEG_HDR + fsz;
                    need_spare = b->nframes == 0;
                    goto full;
                }
                seg = s->spare;
                rolled = true;
                x = &b->ext[b->next++];
                *x = (struct extent){.seg = seg, .pos = 0, .iov0 = b->niov, .opens_segment = true};
                struct rl_seg_hdr sh = {.seq = seg->seq, .first_index = e->index,
                                        .first_offset = rl_get64(hdr + 24),
                                        .dir_id = s->dir_id, .gen = gen};
                rl_seg_hdr_encode(x->seghdr, &sh);
                if (push_iov(b, x->seghdr, RL_SEG_HDR) != 0)
                    goto oom;
                wpos = RL_SEG_HDR;
            } else if (!x) {
                x = &b->ext[b->next++];
                *x = (struct extent){.seg = seg, .pos = wpos, .iov0 = b->niov};
            }
            if (!batch_first)
                batch_first = e->index;
            rl_put64(hdr + 32, batch_first);
            rl_put32(hdr + 48, gen);
            struct frame_loc f = {.seg = seg, .hdr = hdr, .payload = e->buf, .len = e->len,
                                  .records = e->records, .index = e->index,
                                  .offset = rl_get64(hdr + 24), .pos = wpos};
            if (push_frame(b, &f) != 0 || push_iov(b, hdr, RL_FRAME_HDR) != 0 ||
                (e->len && push_iov(b, e->buf, e->len) != 0) ||
                (rl_pad8(e->len) != e->len &&
                 push_iov(b, zero_pad, rl_pad8(e->len) - e->len) != 0))
                goto oom;
            wpos += fsz;
            bytes += fsz;
            r->done++;
        }
    }
full:
    if (b->nframes == 0) {
        free_batch(b);
        if (need_spare) {
            s->spare_needed = true;
            s->stats.spare_waits++;
            rl_writer_prepare_spare(s);
        }
        return false;
    }
    for (int i = 0; i < b->next; i++)
        b->ext[i].niov = (i + 1 < b->next ? b->ext[i + 1].iov0 : b->niov) - b->ext[i].iov0;
    s->inflight = b;
    queue_job(s, b, rl_write_append_work);
    return true;
oom:
    /* Undo what this batch claimed; the requests stay queued. */
    for (struct rl_store_req *r = s->head; r && r->kind == RL_REQ_APPEND; r = r->next) {
        unsigned mine = 0;
        for (unsigned i = 0; i < b->nframes; i++)
            if (b->frames[i].index >= r->first_index && b->frames[i].index < r->first_index + r->n)
                mine++;
        r->done -= mine;
    }
    free_batch(b);
    return false;
}

static void seal(struct rl_store *s, struct rl_segment *seg)
{
    seg->sealed = true;
    rl_segment_direct_close(seg); /* reopened if a truncate makes it active */
    struct rl_batch *b = calloc(1, sizeof *b);
    if (!b)
        return;
    b->kind = JOB_INDEX;
    b->seg = seg;
    s->bg_jobs++;
    queue_job(s, b, rl_write_index_work);
}

static void append_done(struct rl_store *s, struct rl_batch *b)
{
    if (b->err) {
        latch_fatal(s, b->err, b->errmsg);
        /* Requests the failed write carried get its cause; the rest learn
         * the store is fatal. */
        int status = b->err;
        struct rl_store_req *r;
        while ((r = s->head) && r->kind == RL_REQ_APPEND && r->done > 0) {
            queue_pop(s);
            if (r->cb)
                r->cb(r, status);
        }
        fail_queued(s, RLOG_EFATAL);
        return;
    }
    struct rl_segment *sealed = NULL;
    for (int i = 0; i < b->next; i++) {
        struct extent *x = &b->ext[i];
        if (!x->opens_segment)
            continue;
        struct rl_segment *seg = x->seg, *prev = active(s);
        struct rl_seg_hdr sh;
        rl_seg_hdr_decode(x->seghdr, &sh);
        seg->first_index = sh.first_index;
        seg->first_offset = sh.first_offset;
        seg->gen = sh.gen;
        seg->last_index = seg->first_index - 1;
        seg->next_offset = seg->first_offset;
        seg->end_pos = RL_SEG_HDR;
        seg->has_header = true;
        pthread_mutex_lock(&s->segs_mu);
        int pushed = rl_store_push_segment(s, seg);
        pthread_mutex_unlock(&s->segs_mu);
        if (pushed != 0) {
            latch_fatal(s, RLOG_ENOMEM, "out of memory tracking a new segment");
            fail_queued(s, RLOG_EFATAL);
            return;
        }
        s->spare = NULL;
        s->spare_min = 0;
        s->stats.rollovers++;
        s->stats.segments = s->nsegs;
        sealed = prev;
    }
    pthread_mutex_lock(&s->segs_mu);
    for (unsigned i = 0; i < b->nframes; i++) {
        const struct frame_loc *f = &b->frames[i];
        rl_segment_add_sample(f->seg, f->index, f->offset, f->pos, s->index_interval);
        f->seg->last_index = f->index;
        f->seg->last_pos = f->pos;
        f->seg->end_pos = f->pos + RL_FRAME_HDR + rl_pad8(f->len);
        f->seg->next_offset = f->offset + f->records;
        s->stats.bytes += RL_FRAME_HDR + rl_pad8(f->len);
    }
    pthread_mutex_unlock(&s->segs_mu);
    const struct frame_loc *last = &b->frames[b->nframes - 1];
    s->last_index = last->index;
    s->next_offset = last->offset + last->records;
    s->stats.batches++;
    s->stats.syncs += (uint64_t)b->next;
    s->stats.direct_writes += b->direct;
    s->stats.entries += b->nframes;
    rl_hist_add(&s->write_entries, b->nframes);
    /* Only now does the old segment hold its final frames. */
    if (sealed)
        seal(s, sealed);

    int status = job_success_status(s);
    struct rl_store_req *r;
    while ((r = s->head) && r->kind == RL_REQ_APPEND && r->done == r->n) {
        queue_pop(s);
        if (r->cb)
            r->cb(r, status);
    }
    if (!s->spare)
        rl_writer_prepare_spare(s);
}

/* ---- truncate and trim --------------------------------------------------- */

static bool start_truncate(struct rl_store *s, struct rl_store_req *req)
{
    struct rl_batch *b = calloc(1, sizeof *b);
    if (!b)
        return false;
    b->kind = JOB_TRUNCATE;
    b->req = req;
    b->index = req->arg;
    if (b->index <= s->last_index) {
        size_t k = s->nsegs;
        while (k > 0 && s->segs[k - 1]->first_index > b->index)
            k--;
        struct rl_segment *seg = s->segs[k - 1];
        struct rl_store_entry e;
        int rv = 0;
        b->pos = RL_SEG_HDR;
        b->offset = seg->first_offset;
        /* A cut at the first entry of a damaged range (a damaged tail cut
         * at open): where it starts is known from the good frame before. */
        const struct rl_damage *d = rl_store_damage_at(s, b->index, false);
        /* A cut just after a damaged range (a suffix replaced behind an
         * entry awaiting repair): where it starts is where the range ends,
         * and the frames of the range cannot be read to find it (fresh
         * simulator seed 1010025 of repair: the cut failed stop at every
         * start, for good). The last frame kept is taken to be the range's
         * first: exact for one entry, and for more only the index file's
         * fast path misses (it checks that frame at open and scans). */
        const struct rl_damage *before =
            b->index > seg->first_index ? rl_store_damage_at(s, b->index - 1, false) : NULL;
        if (d && d->first_index == b->index && d->seq == seg->seq && b->index > seg->first_index) {
            b->pos = d->pos;
            b->offset = d->first_offset;
            if (b->index - 1 > seg->first_index)
                rv = rl_segment_find(s, seg, b->index - 1, false, &e, &b->prev_pos, false);
            else
                b->prev_pos = RL_SEG_HDR;
        } else if (before && before->last_index == b->index - 1 && before->seq == seg->seq) {
            b->pos = before->end_pos;
            b->offset = before->end_offset;
            b->prev_pos = before->pos;
            b->after_damage = true;
        } else if (b->index > seg->first_index) {
            rv = rl_segment_find(s, seg, b->index, false, &e, &b->pos, false);
            b->offset = e.offset;
            if (rv == 0 && b->index - 1 > seg->first_index)
                rv = rl_segment_find(s, seg, b->index - 1, false, &e, &b->prev_pos, false);
            else
                b->prev_pos = RL_SEG_HDR;
        }
        if (rv != 0) {
            latch_fatal(s, rv, s->errmsg);
            free(b);
            fail_queued(s, RLOG_EFATAL);
            return false;
        }
        b->seg = seg;
        b->drop_from = k;
        b->drop_to = s->nsegs;
        b->drop_spare = s->spare && b->drop_to > b->drop_from;
        /* Readers stop seeing the suffix now. */
        s->last_index = b->index - 1;
        s->next_offset = b->offset;
    }
    s->inflight = b;
    queue_job(s, b, rl_write_truncate_work);
    return true;
}

/* A truncate or trim job failed: the store is fatal; its request gets the
 * cause, later ones learn the store is fatal. */
static void op_job_failed(struct rl_store *s, struct rl_batch *b)
{
    latch_fatal(s, b->err, b->errmsg);
    queue_pop(s);
    if (b->req->cb)
        b->req->cb(b->req, b->err);
    fail_queued(s, RLOG_EFATAL);
}

static void truncate_done(struct rl_store *s, struct rl_batch *b)
{
    if (b->err) {
        op_job_failed(s, b);
        return;
    }
    if (b->seg) {
        pthread_mutex_lock(&s->segs_mu);
        for (size_t i = b->drop_to; i > b->drop_from; i--)
            rl_segment_free(s->segs[i - 1]);
        s->nsegs = b->drop_from;
        if (b->drop_spare) {
            rl_segment_free(s->spare);
            s->spare = NULL;
        }
        struct rl_segment *seg = b->seg;
        seg->sealed = false;
        seg->last_index = b->index - 1;
        seg->next_offset = b->offset;
        seg->end_pos = b->pos;
        seg->tail_valid = false; /* end_pos moved back: reload the tail */
        seg->last_pos = b->index > seg->first_index ? b->prev_pos : 0;
        while (seg->nsamples && seg->samples[seg->nsamples - 1].index >= b->index)
            seg->nsamples--;
        /* Readers find what comes next from here, not by a walk through
         * the damage (as the sample the scan put after it did). */
        bool lost = b->after_damage &&
                    rl_segment_add_sample(seg, b->index, b->offset, b->pos, 0) != 0;
        pthread_mutex_unlock(&s->segs_mu);
        if (lost)
            latch_fatal(s, RLOG_ENOMEM, "out of memory");
        s->stats.segments = s->nsegs;
    }
    queue_pop(s);
    if (b->req->cb)
        b->req->cb(b->req, job_success_status(s));
    if (!s->spare)
        rl_writer_prepare_spare(s);
}

static bool start_trim(struct rl_store *s, struct rl_store_req *req)
{
    struct rl_batch *b = calloc(1, sizeof *b);
    if (!b)
        return false;
    b->kind = JOB_TRIM;
    b->req = req;
    b->index = req->arg > s->first_index ? req->arg : s->first_index;
    b->offset = s->first_offset;
    if (b->index == s->first_index) {
        /* first_offset already covers the entry's base */
    } else if (b->index > s->last_index) {
        b->offset = s->next_offset;
    } else if (b->index > s->first_index) {
        size_t k = s->nsegs;
        while (k > 0 && s->segs[k - 1]->first_index > b->index)
            k--;
        struct rl_store_entry e;
        const struct rl_damage *d = rl_store_damage_at(s, b->index, false);
        /* Inside damage the entry's own offset is unknown: the range's
         * start hides no record the trim point keeps. */
        int rv = d ? (e.offset = d->first_offset, 0)
                   : rl_segment_find(s, s->segs[k - 1], b->index, false, &e, NULL, false);
        if (rv != 0) {
            latch_fatal(s, rv, s->errmsg);
            free(b);
            fail_queued(s, RLOG_EFATAL);
            return false;
        }
        b->offset = e.offset;
    }
    /* Records never come back: the first offset only moves forward. */
    uint64_t hide = req->arg2 < s->next_offset ? req->arg2 : s->next_offset;
    if (b->offset < s->first_offset)
        b->offset = s->first_offset;
    if (b->offset < hide)
        b->offset = hide;
    /* Whole segments before the trim point go, but never the active one. */
    size_t n = 0;
    while (n + 1 < s->nsegs && s->segs[n]->last_index < b->index)
        n++;
    b->drop_from = 0;
    b->drop_to = n;
    b->noop = n == 0 && b->index == s->first_index && b->offset == s->first_offset;
    s->inflight = b;
    queue_job(s, b, rl_write_trim_work);
    return true;
}

static void trim_done(struct rl_store *s, struct rl_batch *b)
{
    if (b->err) {
        op_job_failed(s, b);
        return;
    }
    pthread_mutex_lock(&s->segs_mu);
    for (size_t i = b->drop_from; i < b->drop_to; i++)
        rl_segment_free(s->segs[i]);
    if (b->drop_to) {
        memmove(s->segs, s->segs + b->drop_to, (s->nsegs - b->drop_to) * sizeof *s->segs);
        s->nsegs -= b->drop_to;
    }
    s->first_index = b->index;
    s->first_offset = b->offset;
    pthread_mutex_unlock(&s->segs_mu);
    s->stats.segments = s->nsegs;
    queue_pop(s);
    if (b->req->cb)
        b->req->cb(b->req, job_success_status(s));
}

/* ---- reset --------------------------------------------------------------- */

static bool start_reset(struct rl_store *s, struct rl_store_req *req)
{
    struct rl_batch *b = calloc(1, sizeof *b);
    if (!b)
        return false;
    b->kind = JOB_RESET;
    b->req = req;
    b->index = req->arg;
    b->offset = req->arg2;
    b->drop_from = 0;
    b->drop_to = s->nsegs;
    /* Readers stop seeing the old log now. */
    pthread_mutex_lock(&s->segs_mu);
    s->first_index = b->index;
    s->first_offset = b->offset;
    pthread_mutex_unlock(&s->segs_mu);
    s->last_index = b->index - 1;
    s->next_offset = b->offset;
    s->inflight = b;
    queue_job(s, b, rl_write_reset_work);
    return true;
}

static void reset_done(struct rl_store *s, struct rl_batch *b)
{
    if (b->err) {
        op_job_failed(s, b);
        return;
    }
    pthread_mutex_lock(&s->segs_mu);
    for (size_t i = b->drop_from; i < b->drop_to; i++)
        rl_segment_free(s->segs[i]);
    s->nsegs = 0;
    pthread_mutex_unlock(&s->segs_mu);
    s->stats.segments = 0;
    queue_pop(s);
    if (b->req->cb)
        b->req->cb(b->req, job_success_status(s));
    if (!s->spare)
        rl_writer_prepare_spare(s);
}

/* ---- repair (rebuild.c does the work) ------------------------------------- */

static struct rl_damage *find_damage(struct rl_store *s, uint64_t seq, uint64_t first)
{
    for (size_t i = 0; i < s->ndamage; i++)
        if (s->damage[i].seq == seq && s->damage[i].first_index == first)
            return &s->damage[i];
    return NULL;
}

static bool start_repair(struct rl_store *s, struct rl_store_req *req)
{
    struct rl_damage *d = find_damage(s, req->arg2, req->arg);
    struct rl_segment *seg = NULL;
    for (size_t i = 0; d && i + 1 < s->nsegs; i++)
        if (s->segs[i]->seq == d->seq)
            seg = s->segs[i];
    struct rl_batch *b = seg ? calloc(1, sizeof *b) : NULL;
    if (b && rl_repair_prepare(seg, d, &b->rebuild) != 0) {
        free(b);
        b = NULL;
    }
    if (!b) {
        /* Trimmed or truncated away since it was queued (or no memory). */
        if (d)
            d->repairing = false;
        queue_pop(s);
        snprintf(s->errmsg, sizeof s->errmsg, "repair of entry %" PRIu64 ": %s", req->arg,
                 seg ? "out of memory" : "the range is no longer in the log");
        if (req->cb)
            req->cb(req, seg ? RLOG_ENOMEM : RLOG_EINVAL);
        return true;
    }
    b->kind = JOB_REPAIR;
    b->req = req;
    b->seg = seg;
    b->damage = *d;
    s->inflight = b;
    queue_job(s, b, rl_write_repair_work);
    return true;
}

static void repair_done(struct rl_store *s, struct rl_batch *b)
{
    struct rl_damage *d = find_damage(s, b->damage.seq, b->damage.first_index);
    if (b->err == 0) {
        rl_repair_install(s, b->seg, &b->rebuild, &b->damage);
    } else {
        rl_repair_release(&b->rebuild);
        if (d)
            d->repairing = false; /* the old segment stands; a later try may succeed */
    }
    if (b->err)
        snprintf(s->errmsg, sizeof s->errmsg, "%s", b->errmsg);
    queue_pop(s);
    if (b->req->cb)
        b->req->cb(b->req, b->err ? b->err : job_success_status(s));
}

/* ---- the queue ----------------------------------------------------------- */

void rl_writer_kick(struct rl_store *s)
{
    while (!s->inflight && s->head && !s->fatal && !s->closing && !s->completing) {
        struct rl_store_req *r = s->head;
        bool started;
        if (r->kind == RL_REQ_APPEND) {
            started = start_appends(s);
        } else {
            /* These touch files that spare and index jobs also touch. */
            if (s->spare_busy || s->bg_jobs)
                return;
            started = r->kind == RL_REQ_TRUNCATE ? start_truncate(s, r)
                      : r->kind == RL_REQ_TRIM   ? start_trim(s, r)
                      : r->kind == RL_REQ_REPAIR ? start_repair(s, r)
                                                 : start_reset(s, r);
        }
        if (!started)
            return;
    }
}

static void after_job(uv_work_t *w, int status)
{
    struct rl_batch *b = w->data;
    struct rl_store *s = b->s;
    (void)status;
    s->completing = true;
    switch (b->kind) {
    case JOB_APPEND:
        s->inflight = NULL;
        append_done(s, b);
        break;
    case JOB_TRUNCATE:
        s->inflight = NULL;
        truncate_done(s, b);
        break;
    case JOB_TRIM:
        s->inflight = NULL;
        trim_done(s, b);
        break;
    case JOB_RESET:
        s->inflight = NULL;
        reset_done(s, b);
        break;
    case JOB_REPAIR:
        s->inflight = NULL;
        repair_done(s, b);
        break;
    case JOB_SPARE:
        s->spare_busy = false;
        if (b->err) {
            rl_segment_free(b->seg);
            if (s->spare_needed) {
                /* The appends waiting for room fail; later ones retry. */
                s->spare_needed = false;
                snprintf(s->errmsg, sizeof s->errmsg, "%s", b->errmsg);
                fail_queued(s, b->err == RLOG_ENOSPC ? RLOG_ENOSPC : b->err);
            }
        } else if (s->closing) {
            s->spare = b->seg; /* kept as the spare of the next open */
        } else {
            s->spare = b->seg;
            s->spare_needed = false;
        }
        break;
    case JOB_INDEX:
        s->bg_jobs--;
        break;
    }
    if (b->kind == JOB_TRUNCATE || b->kind == JOB_TRIM || b->kind == JOB_RESET)
        rl_store_prune_damage(s); /* ranges no longer in the log */
    /* A fatal store starts no job, so nothing queued can complete any
     * more: fail it now, behind the requests of the job that just ended
     * (the store may have turned fatal while that job ran). */
    if (s->fatal)
        fail_queued(s, RLOG_EFATAL);
    s->completing = false;
    free_batch(b);
    if (s->closing)
        rl_writer_finish_close_if_idle(s);
    else
        rl_writer_kick(s);
}

void rl_writer_fail_all(struct rl_store *s, int status)
{
    fail_queued(s, status);
}

void rl_writer_finish_close_if_idle(struct rl_store *s)
{
    if (!s->closing || s->close_queued || !idle(s))
        return;
    rl_store_finish_close(s);
}
