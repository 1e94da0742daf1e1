/*
 * iter — the iterator: walks committed records in chunks of entries, copied
 * from the read cache on the caller's thread when they are there, else
 * fetched by the loop thread (serve.c); and its wait for the commit point.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include "node/api.h"

/* What a host thread may read at `offset` without the loop thread: false
 * when only the loop can answer (closing, or trimmed there); else *visible
 * is the published commit point and *failed whether the node failed stop
 * (then that point moves no more). */
bool rl_published_readable(rlog *log, uint64_t offset, uint64_t *visible, bool *failed)
{
    pthread_mutex_lock(&log->mu);
    bool ok = log->accepting && offset >= log->pub_trim_offset;
    *visible = log->pub_visible_offset;
    *failed = log->pub_fatal != 0;
    pthread_mutex_unlock(&log->mu);
    return ok;
}

struct rlog_iter {
    rlog *log;
    uint64_t next, to;
    unsigned char *chunk;  /* entries fetched in one trip (serve.c rl_do_fetch) */
    size_t chunk_len, pos; /* pos: the entry after the current one */
    uint64_t base;         /* offset of the current entry's first record */
    uint32_t count;        /* its visible records */
    struct rl_batch_view view;
};

int rlog_iter_open(rlog *log, uint64_t from, uint64_t to, rlog_iter **out)
{
    if (!log || !out || to < from)
        return rl_fail(RLOG_EINVAL, "iter_open: bad arguments");
    rlog_iter *it = calloc(1, sizeof *it);
    if (!it)
        return rl_fail(RLOG_ENOMEM, "out of memory");
    it->log = log;
    it->next = from;
    it->to = to;
    *out = it;
    return 0;
}

/* Serves the iterator without a trip to the loop thread when it can: a
 * reader following the log wants the entries that just became visible, and
 * those are in the read cache; two thread wake-ups would cost more than the
 * copy. Returns 0 with a new chunk, an error (RLOG_ENOTFOUND: nothing
 * committed at it->next yet), or 1: ask the loop thread (not cached, or a
 * state it explains better: closing, trimmed, past a failed stop). */
static int iter_load_here(rlog_iter *it)
{
    rlog *log = it->log;
    uint64_t visible;
    bool failed;
    if (!rl_published_readable(log, it->next, &visible, &failed) || (failed && it->next >= visible))
        return 1; /* the loop thread says why */
    if (it->next >= visible)
        return rl_fail(RLOG_ENOTFOUND, "offset %" PRIu64 " is not committed (the log's next offset is %"
                    PRIu64 ")", it->next, visible);
    struct rl_chunk ch = {0};
    if (rl_cache_copy(&log->cache, it->next, visible, RL_FETCH_BUDGET, &ch) == 0) {
        free(ch.p);
        return 1;
    }
    it->chunk = ch.p;
    it->chunk_len = ch.len;
    it->pos = 0;
    return 0;
}

static void fetched_here(struct rl_op *op)
{
    (void)op; /* the caller owns op and reads it when fetch returns */
}

/* A fetch on the loop thread itself (stepped mode's state machine): served
 * at once, since nothing else can run on this thread meanwhile. */
static int fetch(rlog *log, struct rl_op *op)
{
    if (!rl_on_loop_thread(log))
        return rl_run_blocking(log, op);
    op->done = fetched_here;
    log->fetch(log, op);
    return op->status ? rl_fail(op->status, "%s", op->errmsg) : 0;
}

/* Makes the entry holding it->next current, from the chunk or a new fetch. */
static int iter_load(rlog_iter *it)
{
    for (;;) {
        struct rl_chunk_entry e;
        while (rl_chunk_next(it->chunk, it->chunk_len, &it->pos, &e)) {
            if (it->next < e.offset || it->next >= e.offset + e.visible)
                continue;
            /* Chunks are copies of verified entries (cache.c, store). */
            if (!rl_batch_parse_layout(e.buf, e.len, &it->view))
                return rl_fail(RLOG_ECORRUPT, "entry at offset %" PRIu64 " is not a valid batch",
                            e.offset);
            it->base = e.offset;
            it->count = e.visible;
            return 0;
        }
        free(it->chunk);
        it->chunk = NULL;
        it->count = 0;
        int rv = iter_load_here(it);
        if (rv < 0)
            return rv;
        if (rv == 0)
            continue;
        struct rl_op op = {.kind = RL_OP_FETCH, .offset = it->next};
        rv = fetch(it->log, &op);
        if (rv != 0) {
            free(op.buf);
            return rv;
        }
        it->chunk = op.buf;
        it->chunk_len = op.len;
        it->pos = 0;
    }
}

int rlog_iter_next(rlog_iter *it, const void **rec, size_t *len, uint64_t *offset)
{
    if (!it || !rec || !len)
        return rl_fail(RLOG_EINVAL, "iter_next: NULL argument");
    if (it->next >= it->to)
        return rl_fail(RLOG_ENOTFOUND, "end of range");
    if (it->count == 0 || it->next < it->base || it->next >= it->base + it->count) {
        int rv = iter_load(it);
        if (rv != 0)
            return rv;
    }
    rl_batch_record(&it->view, (uint32_t)(it->next - it->base), rec, len);
    if (offset)
        *offset = it->next;
    it->next++;
    return 0;
}

int rl_iter_wait_stop(rlog_iter *it, int timeout_ms, const bool *stop)
{
    if (!it)
        return rl_fail(RLOG_EINVAL, "iter_wait: NULL iterator");
    if (rl_on_loop_thread(it->log))
        return rl_fail(RLOG_EINVAL, "iter_wait from a liblog callback would deadlock");
    if (it->next >= it->to)
        return rl_fail(RLOG_ENOTFOUND, "end of range");
    rlog *log = it->log;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (timeout_ms > 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    int rv = 0;
    pthread_mutex_lock(&log->mu);
    while (log->pub_visible_offset <= it->next) {
        if (stop && *stop) {
            rv = RLOG_ECANCELED;
            break;
        }
        if (!log->accepting || log->pub_fatal) {
            rv = log->pub_fatal ? RLOG_EFATAL : RLOG_ECLOSED;
            break;
        }
        if (timeout_ms == 0) {
            rv = RLOG_ETIMEOUT;
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&log->visible_cv, &log->mu);
        else if (pthread_cond_timedwait(&log->visible_cv, &log->mu, &deadline) == ETIMEDOUT &&
                 log->pub_visible_offset <= it->next) {
            rv = RLOG_ETIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&log->mu);
    if (rv == RLOG_ETIMEOUT)
        return rl_fail(rv, "no record committed at offset %" PRIu64 " within %d ms", it->next,
                    timeout_ms);
    if (rv == RLOG_EFATAL)
        return rl_fail_stopped(log, "nothing more will commit here: this node failed stop: ");
    if (rv == RLOG_ECLOSED)
        return rl_fail(rv, "log is closing");
    return rv;
}

int rlog_iter_wait(rlog_iter *it, int timeout_ms)
{
    return rl_iter_wait_stop(it, timeout_ms, NULL);
}

void rlog_iter_close(rlog_iter *it)
{
    if (!it)
        return;
    free(it->chunk);
    free(it);
}
