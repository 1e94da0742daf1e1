/*
 * core — what every part of the raft_io backend uses, at the bottom of
 * lib/raftio (it calls no other file of it): the log line, the failed stop,
 * a batch's record count, a store request waited for before the loop runs,
 * what is committed here, and the terms of recent entries.
 */
#include "raftio/internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rl_io__log(struct io *io, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (io->hooks.log)
        io->hooks.log(io->hooks.arg, level, line);
}

int rl_io__fail_stop_why(struct io *io, int code, const char *what, const char *why)
{
    if (!io->fatal) {
        io->fatal = code ? code : RLOG_EIO;
        rl_io__log(io, 3, "storage failure, stopping: %s: %s", what, why);
        if (io->hooks.on_fatal)
            io->hooks.on_fatal(io->hooks.arg, io->fatal, why);
    }
    snprintf(io->rio->errmsg, sizeof io->rio->errmsg, "%s", why);
    return RAFT_IOERR;
}

int rl_io__fail_stop(struct io *io, int code, const char *what)
{
    return rl_io__fail_stop_why(io, code, what, rl_store_errmsg(io->store));
}

/* Entries reach the backend built by this node's batcher or received in a
 * frame whose checksum was verified, so only the layout is checked here:
 * no second pass over the bytes. */
uint32_t rl_io_batch_records(const void *buf, size_t len)
{
    struct rl_batch_view v;
    return rl_batch_parse_layout(buf, len, &v) ? v.count : 0;
}

void rl_io__sync_append_cb(struct rl_store_req *req, int status)
{
    struct sync_wait *w = req->data;
    w->done = true;
    w->status = status;
}

/* Runs the loop until a store request submitted with rl_io__sync_append_cb is
 * done; only before the loop runs (load, bootstrap). */
int rl_io__store_wait(struct io *io, int rv, struct sync_wait *w)
{
    /* Only while opening: the store holds its jobs for this thread to run
     * (rl_store_hold_jobs), or the loop is ours to turn. */
    while (rv == 0 && !w->done)
        rl_store_turn(io->store);
    return rv ? rv : w->status;
}

/* The highest index this node knows to be committed: entries up to it are
 * the same on every replica (and so the same as any leader's). */
uint64_t rl_io__committed_here(struct io *io)
{
    uint64_t fence = io->hooks.committed_index ? io->hooks.committed_index(io->hooks.arg) : 0;
    /* Entries up to our own snapshot were applied, so committed (cutting
     * them left a descriptor beyond the log end, and a node that never
     * opened again: found by the simulator, whose fence lagged far behind
     * the snapshot). */
    if (io->have_snap && io->snap.index > fence)
        fence = io->snap.index;
    return fence;
}

void rl_io__note_term(struct io *io, uint64_t index, uint64_t term)
{
    io->recent[index % RL_IO_RECENT].index = index;
    io->recent[index % RL_IO_RECENT].term = term;
}

void rl_io__forget_terms(struct io *io)
{
    memset(io->recent, 0, sizeof io->recent);
}

bool rl_io__entry_term(struct io *io, uint64_t index, uint64_t *term)
{
    if (index == 0) {
        *term = 0;
        return true;
    }
    if (io->have_snap && io->snap.index == index) {
        *term = io->snap.term;
        return true;
    }
    if (io->recent[index % RL_IO_RECENT].index == index) {
        *term = io->recent[index % RL_IO_RECENT].term;
        return true;
    }
    struct rl_store_entry e;
    if (rl_store_read(io->store, index, &e) != 0)
        return false;
    free((void *)e.buf);
    *term = e.term;
    return true;
}
