/*
 * Snapshots: descriptor writes (one at a time), libraft's snapshot_put and
 * install of a leader's snapshot, and snapshot_get. A liblog snapshot is
 * only a descriptor (snapshot.c); installing one that the log does not
 * reach is a catch-up fetch (fetch.c).
 */
#include "raftio/internal.h"

#include "fs/fs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- snapshots (descriptors) ----------------------------------------------------- */

struct snap_put {
    uv_work_t work;
    struct snap_put *next;
    struct io *io;
    struct raft_io_snapshot_put *req;  /* libraft's, or NULL for ours: */
    void (*done)(struct io *io, int status);
    uint64_t index, term, conf_index, visible, reset_offset;
    struct raft_configuration conf;
    const char *state_name; /* the node's state saved first (hooks.snapshot_state) */
    void *state;
    size_t state_len;
    int status;
};

static void snap_put_work(uv_work_t *w)
{
    struct snap_put *p = w->data;
    p->status = p->state ? rl_fs_replace(p->io->dir, p->state_name, p->state, p->state_len) : 0;
    if (p->status == 0)
        p->status = rl_snapshot_save(p->io->dir, p->index, p->term, p->conf_index, p->visible,
                                     p->reset_offset, &p->conf);
}

static void snap_put_work(uv_work_t *w);
static void snap_put_after(uv_work_t *w, int status);

/* Completes a snapshot put. libraft 0.15 frees a failed install's data
 * buffer but not the array holding it (replication.c, installSnapshotCb):
 * we free that array once libraft is done with it. */
void rl_io__snapshot_put_done(struct io *io, struct raft_io_snapshot_put *req, int status)
{
    struct raft_buffer *bufs = NULL;
    if (req == io->install_req) {
        bufs = status != 0 ? io->install_bufs : NULL;
        io->install_req = NULL;
        io->install_bufs = NULL;
    }
    req->cb(req, status);
    raft_free(bufs);
}

static void snap_put_finish(struct snap_put *p, int rv)
{
    struct io *io = p->io;
    struct raft_io_snapshot_put *req = p->req;
    void (*done)(struct io *, int) = p->done;
    free(p->state);
    free(p);
    if (done)
        done(io, rv);
    else
        rl_io__snapshot_put_done(io, req, rv);
}

static void snap_queue_next(struct io *io)
{
    struct snap_put *p = io->snap_head;
    if (p && rl_queue_work(io->loop, &p->work, snap_put_work, snap_put_after) != 0) {
        io->snap_head = p->next;
        if (!io->snap_head)
            io->snap_tail = NULL;
        raft_configuration_close(&p->conf);
        snap_put_finish(p, RAFT_IOERR);
        snap_queue_next(io);
    }
}

static void snap_put_after(uv_work_t *w, int status)
{
    struct snap_put *p = w->data;
    struct io *io = p->io;
    (void)status;
    io->snap_head = p->next;
    if (!io->snap_head)
        io->snap_tail = NULL;
    int rv = 0;
    if (p->status != 0) {
        rl_io__log(io, 3, "writing snapshot descriptor: %s", strerror(-p->status));
        rv = RAFT_IOERR;
        raft_configuration_close(&p->conf);
    } else if (io->have_snap && io->snap.index > p->index) {
        raft_configuration_close(&p->conf); /* an older one finished later */
    } else {
        if (io->have_snap)
            rl_snapshot_desc_close(&io->snap);
        io->snap = (struct rl_snapshot_desc){.index = p->index, .term = p->term,
                                             .conf_index = p->conf_index, .visible = p->visible,
                                             .reset_offset = p->reset_offset, .conf = p->conf};
        io->have_snap = true;
    }
    snap_queue_next(io);
    snap_put_finish(p, rv);
    if (io->closing)
        rl_io__close_step(io);
    else
        rl_io__after_event(io);
}

/* Queues a descriptor write; done (ours) or req->cb (libraft's) follows. */
int rl_io__snap_put_queue(struct io *io, struct raft_io_snapshot_put *req,
                          void (*done)(struct io *, int), const struct raft_snapshot *snapshot,
                          uint64_t conf_index, uint64_t visible, uint64_t reset_offset)
{
    struct snap_put *p = calloc(1, sizeof *p);
    if (!p)
        return RAFT_NOMEM;
    p->io = io;
    p->req = req;
    p->done = done;
    p->index = snapshot->index;
    p->term = snapshot->term;
    p->conf_index = conf_index;
    p->visible = visible;
    p->reset_offset = reset_offset;
    if (io->hooks.snapshot_state &&
        io->hooks.snapshot_state(io->hooks.arg, &p->state_name, &p->state, &p->state_len) != 0) {
        free(p);
        return RAFT_NOMEM;
    }
    raft_configuration_init(&p->conf);
    for (unsigned i = 0; i < snapshot->configuration.n; i++)
        if (raft_configuration_add(&p->conf, snapshot->configuration.servers[i].id,
                                   snapshot->configuration.servers[i].address,
                                   snapshot->configuration.servers[i].role) != 0) {
            raft_configuration_close(&p->conf);
            free(p->state);
            free(p);
            return RAFT_NOMEM;
        }
    p->work.data = p;
    bool idle = io->snap_head == NULL;
    if (io->snap_tail)
        io->snap_tail->next = p;
    else
        io->snap_head = p;
    io->snap_tail = p;
    if (idle && rl_queue_work(io->loop, &p->work, snap_put_work, snap_put_after) != 0) {
        io->snap_head = io->snap_tail = NULL;
        raft_configuration_close(&p->conf);
        free(p->state);
        free(p);
        return RAFT_IOERR;
    }
    return 0;
}

static int install_start(struct io *io, struct raft_io_snapshot_put *req,
                         const struct raft_snapshot *snapshot);
static int snapshot_put(struct io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

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
