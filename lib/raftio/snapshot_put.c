/*
 * Snapshots: libraft's snapshot_put and install of a leader's snapshot, and
 * snapshot_get. A liblog snapshot is only a descriptor (snapshot.c, written
 * one at a time by snap_queue.c); installing one that the log does not
 * reach is a catch-up fetch (fetch.c).
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int install_start(struct io *io, struct raft_io_snapshot_put *req,
                         const struct raft_snapshot *snapshot);
static int snapshot_put(struct io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

/* Keeps the configuration of a leader's snapshot (see io->vouched). A
 * copy that fails for memory keeps the older one: liveness, not safety. */
static void vouch(struct io *io, const struct raft_snapshot *snapshot)
{
    if (snapshot->configuration_index <= io->vouched_index)
        return;
    struct raft_configuration c;
    raft_configuration_init(&c);
    for (unsigned i = 0; i < snapshot->configuration.n; i++) {
        const struct raft_server *s = &snapshot->configuration.servers[i];
        if (raft_configuration_add(&c, s->id, s->address, s->role) != 0) {
            raft_configuration_close(&c);
            return;
        }
    }
    raft_configuration_close(&io->vouched);
    io->vouched = c;
    io->vouched_index = snapshot->configuration_index;
}

int rl_io__snapshot_put(struct raft_io *rio, unsigned trailing,
                        struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct io *io = rio->impl;
    if (io->fatal)
        return RAFT_IOERR;
    req->cb = cb;
    if (trailing != 0 || req == io->install_req) /* ours, or our own re-put */
        return snapshot_put(io, trailing, req, snapshot, cb);
    /* libraft's install of a leader's snapshot. libraft 0.15 has already
     * replaced its log by the snapshot (replication.c, logRestore): from
     * now on it appends after snapshot->index, whatever becomes of this. */
    io->raft_next = snapshot->index + 1;
    vouch(io, snapshot);
    int rv = install_start(io, req, snapshot);
    if (rv == 0) {
        io->install_req = req;
        io->install_bufs = snapshot->bufs;
    }
    return rv;
}

/* An install: the store must end up ending exactly at the snapshot's
 * index, as libraft's log now does, holding the leader's entries. */
/* The snapshot is the reset descriptor this log starts right after (a
 * catch-up past a peer's trim point): there is no entry to check it by. */
static bool is_reset_point(const struct io *io, const struct raft_snapshot *snapshot)
{
    return io->have_snap && io->snap.index == snapshot->index && io->snap.term == snapshot->term &&
           snapshot->index + 1 == rl_store_first_index(io->store);
}

static int install_start(struct io *io, struct raft_io_snapshot_put *req,
                         const struct raft_snapshot *snapshot)
{
    uint64_t end = rl_store_next_index(io->store) - 1;
    bool at_reset = is_reset_point(io, snapshot);
    uint64_t committed = rl_io__committed_here(io);
    if (at_reset || (snapshot->index <= committed && snapshot->index <= end)) {
        /* We hold the snapshot's entry, committed: the leader's own. What
         * follows it is gone from libraft's log, so from the store too. */
        int rv = rl_io__cut_after(io, snapshot->index, "install");
        if (rv != 0)
            return rv;
        return snapshot_put(io, 0, req, snapshot, req->cb);
    }
    /* The log is its own snapshot: installing one means fetching the
     * missing range of the log from a peer. */
    return rl_io__fetch_start(io, req, snapshot);
}

static int snapshot_put(struct io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct raft_io *rio = io->rio;
    bool at_reset = is_reset_point(io, snapshot);
    if (trailing == 0 && !at_reset && snapshot->index <= rl_store_last_index(io->store)) {
        /* We hold the entries the snapshot covers: they must be the same. */
        struct rl_store_entry e;
        int rv = rl_store_read(io->store, snapshot->index, &e);
        free((void *)e.buf);
        if (rv != 0 || e.term != snapshot->term) {
            rl_io__log(io, 3, "snapshot up to entry %" PRIu64 " (term %" PRIu64
                       ") conflicts with this log (%s)", (uint64_t)snapshot->index,
                       (uint64_t)snapshot->term,
                       rv ? rl_store_errmsg(io->store) : "different term");
            snprintf(rio->errmsg, sizeof rio->errmsg, "snapshot conflicts with the local log");
            return RAFT_IOERR;
        }
    }
    req->cb = cb;
    return rl_io__snap_put_queue(io, req, NULL, snapshot, snapshot->configuration_index,
                                 io->hooks.visible_index
                                     ? io->hooks.visible_index(io->hooks.arg) : 0,
                                 RL_SNAPSHOT_NO_RESET);
}

struct snap_get {
    uv_work_t work;
    struct io *io;
    struct raft_io_snapshot_get *req;
};

static void noop_work(uv_work_t *w)
{
    (void)w;
}

static void snap_get_after(uv_work_t *w, int status)
{
    struct snap_get *g = w->data;
    struct io *io = g->io;
    (void)status;
    struct raft_snapshot *s = NULL;
    int rv = RAFT_NOTFOUND;
    if (io->have_snap && (s = raft_calloc(1, sizeof *s)) != NULL) {
        s->index = io->snap.index;
        s->term = io->snap.term;
        s->configuration_index = io->snap.conf_index;
        raft_configuration_init(&s->configuration);
        rv = 0;
        for (unsigned i = 0; i < io->snap.conf.n && rv == 0; i++)
            rv = raft_configuration_add(&s->configuration, io->snap.conf.servers[i].id,
                                        io->snap.conf.servers[i].address,
                                        io->snap.conf.servers[i].role);
        s->bufs = raft_calloc(1, sizeof *s->bufs);
        void *data = raft_calloc(1, 8);
        if (rv != 0 || !s->bufs || !data) {
            raft_configuration_close(&s->configuration);
            raft_free(s->bufs);
            raft_free(data);
            raft_free(s);
            s = NULL;
            rv = RAFT_NOMEM;
        } else {
            s->bufs[0].base = data;
            s->bufs[0].len = 8;
            s->n_bufs = 1;
        }
    }
    struct raft_io_snapshot_get *req = g->req;
    free(g);
    req->cb(req, s, rv);
}

int rl_io__snapshot_get(struct raft_io *rio, struct raft_io_snapshot_get *req,
                        raft_io_snapshot_get_cb cb)
{
    struct io *io = rio->impl;
    struct snap_get *g = calloc(1, sizeof *g);
    if (!g)
        return RAFT_NOMEM;
    g->io = io;
    g->req = req;
    req->cb = cb;
    g->work.data = g;
    /* The callback must not run inside this call. */
    if (rl_queue_work(io->loop, &g->work, noop_work, snap_get_after) != 0) {
        free(g);
        return RAFT_IOERR;
    }
    return 0;
}
