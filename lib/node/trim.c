/*
 * trim — retention: rlog_trim proposes a retention command (a batch with
 * no records); when the fence shows it, readers stop seeing the records
 * before its offset at once and the store drops what libraft's snapshot
 * allows.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/env.h"
#include "raftio/io.h"

static void store_trim_done(struct rl_store_req *req, int status)
{
    struct rlog *log = req->data;
    uint64_t trimmed_to = req->arg2; /* the record offset this job made durable */
    free(req);
    if (status == 0 && log->trim_unsynced_index && trimmed_to >= log->trim_unsynced_offset)
        log->trim_unsynced_index = log->trim_unsynced_offset = 0;
    /* The store is fatal now; the backend must stop too, or raft would go
     * on voting and leading over a store that refuses every write. */
    if (status != 0 && status != RLOG_ECANCELED)
        rl_io_fail_stop(&log->io, status, "trim");
}

/* Makes the store drop what retention allows: records before trim_offset,
 * and whole entries only up to the snapshot descriptor, because a restart
 * hands libraft the entries after it. One fully trimmed entry stays before
 * the first readable record: a peer catching up past this point learns
 * the term it must continue from there (lib/raftio/fetch.c). */
void rl_trim_store(struct rlog *log)
{
    struct rl_store *st = log->store;
    uint64_t snap = rl_io_snapshot_index(&log->io), off = log->trim_offset, holding;
    log->trim_snap = snap;
    if (!st || log->fatal || rl_store_is_fatal(st))
        return;
    if (off >= rl_store_next_offset(st)) {
        holding = rl_store_last_index(st) + 1;
    } else {
        struct rl_store_entry e;
        int rv = rl_store_read_offset(st, off, &e);
        if (rv != 0) {
            if (rv != RLOG_ETRIMMED)
                rl_log(log, 2, "trim: cannot find record %" PRIu64 ": %s", off,
                       rl_store_errmsg(st));
            return;
        }
        free((void *)e.buf);
        holding = e.index;
    }
    uint64_t idx = holding < snap + 1 ? holding : snap + 1;
    idx = idx > 1 ? idx - 1 : 1;
    struct rl_store_req *req = calloc(1, sizeof *req);
    if (!req)
        return; /* the next snapshot tries again */
    req->data = log;
    if (rl_store_trim_records(st, req, idx, off, store_trim_done) != 0) {
        rl_log(log, 2, "trim: %s", rl_store_errmsg(st));
        free(req);
    }
}

/* Iterators read the cache on their own threads, so they learn the trim
 * point from its published copy. */
void rl_set_trim_offset(struct rlog *log, uint64_t offset)
{
    log->trim_offset = offset;
    pthread_mutex_lock(&log->mu);
    log->pub_trim_offset = offset;
    pthread_mutex_unlock(&log->mu);
}

/* A retention command reached the fence: the same log position on every
 * replica. Readers stop seeing the records at once; the files follow. */
void rl_apply_trim(struct rlog *log, uint64_t index, uint64_t before)
{
    if (before <= log->trim_offset)
        return;
    if (!log->trim_unsynced_index)
        log->trim_unsynced_index = index;
    log->trim_unsynced_offset = before; /* cleared once the store has it all */
    rl_set_trim_offset(log, before);
    struct rl_tindex_src src;
    rl_time_src(log, &src);
    rl_tindex_trim(&log->tindex, &src, before);
    rl_log(log, 1, "trim: records before offset %" PRIu64 " dropped", before);
    rl_trim_store(log);
}

void rl_fence_entry_fill(struct rl_fence_entry *e, const void *buf, uint32_t len)
{
    struct rl_batch_view v;
    e->bytes = UINT64_MAX;
    if (!buf || !rl_batch_parse_layout(buf, len, &v))
        return; /* raft's own entries carry no batch */
    e->trim_before = e->records == 0 ? v.trim_before : 0;
    e->ts = v.timestamp;
    e->bytes = v.data_len;
}

void rl_do_trim(struct rlog *log, struct rl_op *op)
{
    if (!rl_leader_can_take(log, op))
        return;
    if (op->offset <= log->trim_offset) { /* already done: retention is monotonic */
        op->status = 0;
        rl_op_finish(log, op);
        return;
    }
    if (op->offset > log->fence.visible_offset) {
        snprintf(op->errmsg, sizeof op->errmsg,
                 "trim: offset %" PRIu64 " is beyond the committed end of the log (%" PRIu64
                 " records committed)", op->offset, log->fence.visible_offset);
        op->status = RLOG_EINVAL;
        rl_op_finish(log, op);
        return;
    }
    size_t len = 0;
    void *buf = rl_batch_trim(op->offset, rl_unix_us(), &len);
    if (!buf) {
        rl_op_fail(log, op, RLOG_ENOMEM, "out of memory building a trim command");
        return;
    }
    rl_propose(log, buf, len, op, 0);
}
