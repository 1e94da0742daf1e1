/*
 * raft_io appends and truncation over the segment store.
 *
 * Appends: libraft's io->append becomes one store append (group-committed
 * with everything else queued); the entries' record counts come from their
 * batch headers so the store can assign dense offsets. Truncate is queued
 * behind in-flight appends by the store itself.
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- append / truncate ------------------------------------------------------ */

/* libraft 0.15's leader handles a failed append by truncating its log from
 * that append's first index (src/replication.c, appendLeaderCb). Reported
 * oldest first, the first truncation removes the later appends' entries too,
 * and their own truncations then run past the end of the log and free
 * entries twice (found by the simulator: an EIO with two appends in
 * flight). So failures wait until nothing is in flight and are reported
 * newest first: each truncation then starts at the log's current end. */
void rl_io__report_failed(struct io *io)
{
    while (io->appends == 0 && io->failed_top) {
        struct append_req *a = io->failed_top;
        io->failed_top = a->below;
        struct raft_io_append *req = a->req;
        raft_io_append_cb cb = a->cb;
        int rv = a->rv;
        free(a);
        if (cb)
            cb(req, rv);
    }
}

static void append_done(struct rl_store_req *sreq, int status)
{
    struct append_req *a = sreq->data;
    struct io *io = a->io;
    io->appends--;
    int rv = 0;
    if (status == RLOG_ECANCELED && io->closing) {
        rv = RAFT_CANCELED; /* the store cancelled it at close: no failure */
    } else if (status != 0) {
        /* Even a full disk (nothing written, store intact) stops the node:
         * libraft 0.15 keeps a failed entry in its memory and would carry
         * on past the gap. The cause shows as the fatal code. */
        rl_io__fail_stop(io, status, "append");
        rv = status == RLOG_ENOSPC ? RAFT_NOSPACE : RAFT_IOERR;
    } else if (io->closing) {
        rv = RAFT_CANCELED;
    }
    free(a->entries);
    a->entries = NULL;
    if (rv != 0) {
        a->rv = rv;
        a->below = io->failed_top;
        io->failed_top = a;
        rl_io__report_failed(io);
    } else {
        struct raft_io_append *req = a->req;
        raft_io_append_cb cb = a->cb;
        free(a);
        if (cb)
            cb(req, 0);
    }
    rl_io__release_held(io);
    rl_io__after_event(io);
}

/* libraft numbers entries by counting: an append goes after the last entry
 * of its log as it sees it, and the raft_io call does not say at which
 * index. If the store ends elsewhere, writing the entries at the store's
 * end would give them wrong indexes on this replica, the divergence
 * nemesis seed 394640568 found (a failed snapshot install had left libraft's
 * log at the snapshot and the store behind it). Such an append is refused,
 * and reported from the loop (libraft 0.15 turns an append that fails at
 * once into an unavailable node); the follower answers "rejected" and the
 * leader sends a snapshot again. Nothing is written. */
static int refuse_append(struct io *io, struct append_req *a, struct raft_io_append *req,
                         unsigned n, raft_io_append_cb cb)
{
    uint64_t at = rl_store_next_index(io->store);
    io->refused_appends++;
    rl_io__log(io, io->refused_appends > 1 ? 0 : 3,
               "refusing %u entries at index %" PRIu64 ": the log ends at %" PRIu64
               " here (%lu refused so far)", n, io->raft_next, at - 1, io->refused_appends);
    io->raft_next += n; /* libraft holds them in memory all the same */
    *a = (struct append_req){.io = io, .req = req, .cb = cb, .rv = RAFT_IOERR,
                             .below = io->failed_top};
    io->failed_top = a;
    uv_timer_start(&io->send_fail_timer, io->deferred_cb, 0, 0);
    return 0;
}

int rl_io__append(struct raft_io *rio, struct raft_io_append *req,
                  const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct io *io = rio->impl;
    if (io->fatal || io->closing)
        return io->fatal ? RAFT_IOERR : RAFT_CANCELED;
    rl_io__wake(io, "libraft appends", 0, false);
    struct append_req *a = calloc(1, sizeof *a);
    struct rl_store_entry *es = calloc(n ? n : 1, sizeof *es);
    if (!a || !es) {
        free(a);
        free(es);
        return RAFT_NOMEM;
    }
    uint64_t index = rl_store_next_index(io->store);
    if (index != io->raft_next) {
        free(es);
        return refuse_append(io, a, req, n, cb);
    }
    for (unsigned i = 0; i < n; i++) {
        es[i] = (struct rl_store_entry){
            .index = index + i,
            .term = entries[i].term,
            .type = (uint8_t)entries[i].type,
            .buf = entries[i].buf.base,
            .len = (uint32_t)entries[i].buf.len,
            .records = entries[i].type == RAFT_COMMAND
                           ? rl_io_batch_records(entries[i].buf.base, entries[i].buf.len)
                           : 0,
        };
    }
    a->io = io;
    a->req = req;
    a->cb = cb;
    a->entries = es;
    a->sreq.data = a;
    int rv = rl_store_append(io->store, &a->sreq, es, n, append_done);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "append: %s", rl_store_errmsg(io->store));
        free(es);
        free(a);
        if (rv == RLOG_EFATAL || rv == RLOG_EIO)
            return rl_io__fail_stop(io, rv, "append");
        return RAFT_IOERR;
    }
    io->raft_next += n;
    io->appends++;
    for (unsigned i = 0; i < n; i++)
        rl_io__note_term(io, index + i, es[i].term);
    if (io->hooks.on_append) {
        uint64_t off = a->sreq.first_offset;
        for (unsigned i = 0; i < n; i++) {
            io->hooks.on_append(io->hooks.arg, index + i, es[i].term, off, es[i].records,
                                es[i].buf, es[i].len);
            off += es[i].records;
        }
    }
    return 0;
}

static void truncate_done(struct rl_store_req *req, int status)
{
    struct io *io = req->data;
    free(req);
    if (status != 0 && status != RLOG_ECANCELED)
        rl_io__fail_stop(io, status, "truncate");
}

/* Queues the store's truncation from `index` (after everything queued). */
static int store_truncate(struct io *io, uint64_t index)
{
    struct raft_io *rio = io->rio;
    if (io->fatal)
        return RAFT_IOERR;
    struct rl_store_req *req = calloc(1, sizeof *req);
    if (!req)
        return RAFT_NOMEM;
    req->data = io;
    rl_io__forget_terms(io);
    int rv = rl_store_truncate(io->store, req, index, truncate_done);
    if (rv != 0) {
        free(req);
        snprintf(rio->errmsg, sizeof rio->errmsg, "truncate: %s", rl_store_errmsg(io->store));
        return rv == RLOG_EFATAL ? rl_io__fail_stop(io, rv, "truncate") : RAFT_IOERR;
    }
    if (io->hooks.on_truncate)
        io->hooks.on_truncate(io->hooks.arg, index);
    return 0;
}

int rl_io__truncate(struct raft_io *rio, raft_index index)
{
    struct io *io = rio->impl;
    int rv = store_truncate(io, index);
    if (rv == 0)
        io->raft_next = index;
    return rv;
}

/* Cuts the store back to end at `keep`, after everything queued before
 * (the store's end counts appends still being written). */
int rl_io__cut_after(struct io *io, uint64_t keep, const char *why)
{
    uint64_t end = rl_store_next_index(io->store) - 1;
    if (keep >= end)
        return 0;
    uint64_t durable = rl_store_last_index(io->store);
    rl_io__log(io, 1, "%s: dropping entries %" PRIu64 "..%" PRIu64 "%s", why, keep + 1, end,
               end > durable ? " (some still being written)" : "");
    int rv = store_truncate(io, keep + 1);
    if (rv != 0)
        rl_io__log(io, 2, "%s: could not drop them: %s", why, io->rio->errmsg);
    return rv;
}
