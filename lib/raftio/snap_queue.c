/*
 * Snapshot descriptor writes, one at a time (they share SNAPSHOT.tmp), on
 * the thread pool: libraft's snapshot_put and installs (snapshot_put.c) and
 * the catch-up's reset descriptors (fetch.c) queue them here. The node's
 * own state (hooks.snapshot_state) is saved just before each descriptor.
 */
#include "raftio/internal.h"

#include "fs/fs.h"

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
    /* The node's state saved first (hooks.snapshot_state), in order. */
    const char *state_name[RL_IO_STATES];
    void *state[RL_IO_STATES];
    size_t state_len[RL_IO_STATES];
    int status;
};

static void snap_put_work(uv_work_t *w)
{
    struct snap_put *p = w->data;
    p->status = 0;
    for (unsigned i = 0; i < RL_IO_STATES && p->status == 0; i++)
        if (p->state[i])
            p->status = rl_fs_replace(p->io->dir, p->state_name[i], p->state[i], p->state_len[i]);
    if (p->status == 0)
        p->status = rl_snapshot_save(p->io->dir, p->index, p->term, p->conf_index, p->visible,
                                     p->reset_offset, &p->conf);
}

static void snap_put_work(uv_work_t *w);
static void snap_put_after(uv_work_t *w, int status);

/* Completes a snapshot put. libraft 0.15 frees a discarded install's data
 * buffer but not the array holding it (replication.c, installSnapshotCb):
 * we free that array once libraft is done with it. It discards a failed
 * install, and any install completing while it closes (its state is then
 * unavailable, and io->closing is set: found by the simulator under ASan,
 * random5 seed 98100005, 16 bytes). */
void rl_io__snapshot_put_done(struct io *io, struct raft_io_snapshot_put *req, int status)
{
    struct raft_buffer *bufs = NULL;
    if (req == io->install_req) {
        bufs = status != 0 || io->closing ? io->install_bufs : NULL;
        io->install_req = NULL;
        io->install_bufs = NULL;
    }
    req->cb(req, status);
    raft_free(bufs);
}

static void snap_put_free(struct snap_put *p)
{
    for (unsigned i = 0; i < RL_IO_STATES; i++)
        free(p->state[i]);
    free(p);
}

/* The node's files to save with this descriptor. */
static int snap_put_states(struct io *io, struct snap_put *p)
{
    for (unsigned i = 0; io->hooks.snapshot_state && i < RL_IO_STATES; i++) {
        const char *name = NULL;
        if (io->hooks.snapshot_state(io->hooks.arg, i, &name, &p->state[i], &p->state_len[i]) != 0)
            return RAFT_NOMEM;
        p->state_name[i] = name;
        if (!name)
            break;
    }
    return 0;
}

static void snap_put_finish(struct snap_put *p, int rv)
{
    struct io *io = p->io;
    struct raft_io_snapshot_put *req = p->req;
    void (*done)(struct io *, int) = p->done;
    snap_put_free(p);
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
    if (p->status != 0 && p->req && p->req == io->install_req && !io->closing) {
        /* A leader's snapshot not installed: libraft 0.15 has already
         * replaced its log by it, yet takes its configuration only from an
         * install that succeeds, so it would go on appending the leader's
         * entries with whatever configuration it had (none, on a node that
         * joined empty: no member to ask for anything, simulator sm-join
         * seed 950184). A storage failure like any other: fail-stop, and a
         * restart loads what is durable. */
        char why[160];
        snprintf(why, sizeof why, "the snapshot descriptor could not be written (%s)",
                 strerror(-p->status));
        rv = rl_io__fail_stop_why(io, rl_errno_to_rlog(p->status), "snapshot install", why);
        raft_configuration_close(&p->conf);
    } else if (p->status != 0) {
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
        io->close_step(io);
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
    if (snap_put_states(io, p) != 0) {
        snap_put_free(p);
        return RAFT_NOMEM;
    }
    raft_configuration_init(&p->conf);
    for (unsigned i = 0; i < snapshot->configuration.n; i++)
        if (raft_configuration_add(&p->conf, snapshot->configuration.servers[i].id,
                                   snapshot->configuration.servers[i].address,
                                   snapshot->configuration.servers[i].role) != 0) {
            raft_configuration_close(&p->conf);
            snap_put_free(p);
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
        snap_put_free(p);
        return RAFT_IOERR;
    }
    return 0;
}
