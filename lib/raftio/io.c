/*
 * raft_io over the segment store and our wire: the io's lifecycle (init,
 * start, close) and the raft_io vtable. The other parts, each in its own
 * file, and their layer order are at the top of raftio/internal.h (which
 * holds the state they share).
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/hello.h"
#include "net/net.h"
#include "tls/tls.h"

uint64_t rl_io_snapshot_index(struct raft_io *rio)
{
    struct io *io = rio->impl;
    return io && io->have_snap ? io->snap.index : 0;
}

int rl_io_vouched_address(struct raft_io *rio, uint64_t id, uint64_t newer_than, char *buf,
                          size_t len)
{
    struct io *io = rio->impl;
    if (!io || io->vouched_index <= newer_than)
        return -1;
    for (unsigned i = 0; i < io->vouched.n; i++)
        if (io->vouched.servers[i].id == id) {
            snprintf(buf, len, "%s", io->vouched.servers[i].address);
            return 0;
        }
    return -1;
}

static bool is_member(void *arg, uint64_t id)
{
    struct io *io = arg;
    char addr[256];
    return io->hooks.peer_address && io->hooks.peer_address(io->hooks.arg, id, addr, sizeof addr) == 0;
}

static void net_log(void *arg, int level, const char *line)
{
    struct io *io = arg;
    if (io->hooks.log)
        io->hooks.log(io->hooks.arg, level, line);
}

static int io_init(struct raft_io *rio, raft_id id, const char *address)
{
    struct io *io = rio->impl;
    io->id = id;
    snprintf(io->address, sizeof io->address, "%s", address);
    const struct rl_io_net_config *n = &io->netcfg;
    struct rl_net_config cfg = {
        .loop = io->loop, .self = id, .address = address,
        .cluster_hash = rl_hello_cluster_hash(io->cluster), .any_cluster = !n->cluster_named,
        .tls = io->tls, .max_inbound = n->max_inbound, .max_per_address = n->max_per_address,
        .handshake_timeout_ms = n->handshake_timeout_ms, .is_member = is_member,
        .accept = rl_io__accept, .log = net_log, .arg = io, .via = n->via};
    int rv = rl_net_new(&cfg, &io->net);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "transport: cannot start");
        return RAFT_NOMEM;
    }
    return 0;
}

void rl_io_net_stats(struct raft_io *rio, struct rl_io_net_stats *st)
{
    struct io *io = rio->impl;
    *st = (struct rl_io_net_stats){0};
    if (!io)
        return;
    st->tls = io->tls != NULL || (io->netcfg.via && io->netcfg.via->tls);
    st->timed_out_connections = io->timed_out_connections;
    st->send_queue_overflows = io->send_queue_overflows;
    if (io->net) {
        struct rl_net_stats ns;
        rl_net_stats(io->net, &ns);
        st->refused_connections = ns.refused_connections;
        st->rejected_handshakes = ns.rejected_handshakes;
        st->timed_out_connections += ns.timed_out_handshakes;
    }
}

void rl_io_fail_stop(struct raft_io *rio, int code, const char *what)
{
    if (rio->impl)
        rl_io__fail_stop(rio->impl, code, what);
}

static raft_time io_time(struct raft_io *rio)
{
    return rl_io__time(rio->impl);
}

static int io_random(struct raft_io *rio, int min, int max)
{
    struct io *io = rio->impl;
    if (max <= min)
        return min;
    return min + (int)((unsigned)rand_r(&io->rand_state) % (unsigned)(max - min));
}

struct async_work {
    uv_work_t work;
    struct raft_io_async_work *req;
    int status;
};

static void async_work_run(uv_work_t *w)
{
    struct async_work *a = w->data;
    a->status = a->req->work(a->req);
}

static void async_work_after(uv_work_t *w, int status)
{
    struct async_work *a = w->data;
    (void)status;
    struct raft_io_async_work *req = a->req;
    int st = a->status;
    free(a);
    req->cb(req, st);
}

static int io_async_work(struct raft_io *rio, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    struct io *io = rio->impl;
    struct async_work *a = calloc(1, sizeof *a);
    if (!a)
        return RAFT_NOMEM;
    a->req = req;
    req->cb = cb;
    a->work.data = a;
    if (rl_queue_work(io->loop, &a->work, async_work_run, async_work_after) != 0) {
        free(a);
        return RAFT_IOERR;
    }
    return 0;
}

/* send_fail_timer's callback (io->deferred_cb): the sends and appends that
 * failed at once, reported from the loop. */
static void deferred_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    rl_io__flush_failed_sends(io);
    rl_io__report_failed(io); /* refused appends; waits while appends are in flight */
}

/* ---- start / close ----------------------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    if (io->fatal && !io->closing && !io->fatal_dropped && io->netcfg.via) {
        /* A failed node says nothing more; on a shared transport its
         * peers may be quiesced, waiting on it: its channels end, which
         * wakes them (quiet.c). Here, not in the failure's own call stack,
         * which may be inside one of these connections' callbacks. */
        io->fatal_dropped = true;
        for (struct peer *p = io->peers; p; p = p->next)
            rl_io__peer_drop(p);
        while (io->ins)
            rl_io__in_close(io->ins, "this node failed stop");
    }
    if (io->closing || io->fatal)
        return;
    if (io->frozen) { /* quiet, ticks kept: the node's check only */
        if (io->hooks.on_tick)
            io->hooks.on_tick(io->hooks.arg);
        return;
    }
    bool leader = io->hooks.is_leader && io->hooks.is_leader(io->hooks.arg);
    if (rl_io__campaign_held(io) && !leader) {
        io->tick_held = true; /* delivered when the store catches up */
        return;
    }
    io->tick_cb(io->rio);
    rl_io__after_event(io);
    if (io->hooks.on_tick && !io->closing)
        io->hooks.on_tick(io->hooks.arg);
}

/* Starts the tick timer (at the host's phase on a shared transport). */
static void ticks_start(struct io *io)
{
    /* On a shared transport every log of the host ticks at the same
     * instant (its phase), so their heartbeats leave in one write per
     * peer host; other hosts have phases of their own. */
    uint64_t msecs = io->tick_ms;
    const struct rl_net_via *via = io->netcfg.via;
    uint64_t first = via ? msecs - (uv_now(io->loop) + via->tick_phase) % msecs : msecs;
    uv_timer_start(&io->timer, timer_cb, first, msecs);
}

static int io_start(struct raft_io *rio, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv)
{
    struct io *io = rio->impl;
    /* The timers exist before anything can fail, so a close after a failed
     * start (an address in use) closes only handles that were initialised. */
    uv_timer_init(io->loop, &io->timer);
    io->timer.data = io;
    uv_timer_init(io->loop, &io->send_fail_timer);
    io->send_fail_timer.data = io;
    io->timers_ready = true;
    char why[200] = "";
    int rv = rl_net_listen(io->net, why, sizeof why);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "listen on %.100s: %.120s", io->address, why);
        return RAFT_IOERR;
    }
    io->tick_cb = tick;
    io->recv_cb = recv;
    io->tick_ms = msecs ? msecs : 1;
    ticks_start(io);
    return 0;
}

static void close_step(struct io *io);

static void store_closed(void *arg)
{
    struct io *io = arg;
    io->store = NULL;
    close_step(io);
}

static void timer_closed(uv_handle_t *h)
{
    struct io *io = h->data;
    io->close_pending--;
    close_step(io);
}

static void net_closed(void *arg)
{
    struct io *io = arg;
    io->net = NULL;
    io->close_pending--;
    close_step(io);
}

static void close_step(struct io *io)
{
    /* Descriptor writes in flight come back to io: they finish first. */
    if (io->close_pending > 0 || rl_io__fetch_busy(io) || io->snap_head)
        return;
    if (io->store) {
        rl_store_close(io->store, store_closed, io);
        return;
    }
    while (io->peers) {
        struct peer *p = io->peers;
        io->peers = p->next;
        free(p);
    }
    while (io->held_head) {
        struct held *h = io->held_head;
        io->held_head = h->next;
        rl_wire_message_release(&h->msg, h->body, h->owned);
        free(h);
    }
    if (io->have_snap)
        rl_snapshot_desc_close(&io->snap);
    raft_configuration_close(&io->vouched);
    rl_io__free_closed_ins(io);
    rl_tls_ctx_free(io->tls);
    raft_io_close_cb cb = io->close_cb;
    struct raft_io *rio = io->rio;
    rio->impl = NULL;
    free(io);
    if (cb)
        cb(rio);
}

static void io_close(struct raft_io *rio, raft_io_close_cb cb)
{
    struct io *io = rio->impl;
    io->closing = true;
    rl_io__fetch_stop(io);
    io->close_cb = cb;
    /* close_pending may already count a catch-up timer being closed. */
    for (struct peer *p = io->peers; p; p = p->next)
        rl_io__peer_drop(p);
    while (io->ins)
        rl_io__in_close(io->ins, NULL);
    if (io->timers_ready) {
        io->close_pending++;
        uv_close((uv_handle_t *)&io->timer, timer_closed);
        rl_io__flush_failed_sends(io);
        rl_io__report_failed(io); /* refused appends, when nothing is in flight */
        io->close_pending++;
        uv_close((uv_handle_t *)&io->send_fail_timer, timer_closed);
    }
    if (io->net) {
        io->close_pending++;
        rl_net_close(io->net, net_closed, io);
    }
    close_step(io);
}

int rl_io_init(struct raft_io *rio, const struct rl_io_config *cfg)
{
    struct io *io = calloc(1, sizeof *io);
    if (!io)
        return RLOG_ENOMEM;
    io->rio = rio;
    io->loop = cfg->loop;
    io->store = cfg->store;
    snprintf(io->dir, sizeof io->dir, "%s", cfg->dir);
    io->trailing = cfg->trailing;
    io->max_body = cfg->max_frame_body;
    io->hooks = cfg->hooks;
    io->close_step = close_step;
    io->deferred_cb = deferred_cb;
    io->ticks_start = ticks_start;
    io->tick_timer_cb = timer_cb;
    io->netcfg = cfg->net;
    snprintf(io->cluster, sizeof io->cluster, "%s", cfg->net.cluster ? cfg->net.cluster : "");
    io->netcfg.cluster = io->cluster;
    io->max_send_queue = cfg->net.max_send_queue;
    io->frame_timeout_ms = cfg->net.frame_timeout_ms;
    io->idle_timeout_ms = cfg->net.idle_timeout_ms;
    io->netcfg.tls_ca_file = io->netcfg.tls_cert_file = io->netcfg.tls_key_file = NULL;
    if (rl_random(&io->rand_state, sizeof io->rand_state) != 0)
        io->rand_state = (unsigned)uv_hrtime();
    char err[256];
    if (cfg->net.tls_ca_file) {
        /* Certificates name their cluster with a URI; a derived cluster
         * name is not one (any cluster then: the CA is the boundary). */
        struct rl_tls_config tc = {.ca_file = cfg->net.tls_ca_file,
                                   .cert_file = cfg->net.tls_cert_file,
                                   .key_file = cfg->net.tls_key_file,
                                   .cluster = cfg->net.cluster_named ? io->cluster : NULL};
        int rv = rl_tls_ctx_new(&tc, &io->tls, rio->errmsg, sizeof rio->errmsg);
        if (rv != 0) {
            free(io);
            return rv;
        }
    }
    int rv = rl_snapshot_load(cfg->dir, &io->snap, err, sizeof err);
    if (rv < 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "%s", err);
        rl_snapshot_desc_close(&io->snap);
        rl_tls_ctx_free(io->tls);
        free(io);
        return rv;
    }
    io->have_snap = rv == 0;
    if (!io->have_snap)
        rl_snapshot_desc_close(&io->snap);
    if ((rv = rl_io__floor_load(io, err, sizeof err)) != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "%s", err);
        rl_snapshot_desc_close(&io->snap);
        rl_tls_ctx_free(io->tls);
        free(io);
        return rv;
    }
    memset(rio, 0, sizeof *rio);
    rio->version = 2;
    rio->impl = io;
    rio->init = io_init;
    rio->close = io_close;
    rio->load = rl_io__load;
    rio->start = io_start;
    rio->bootstrap = rl_io__bootstrap;
    rio->recover = rl_io__recover;
    rio->set_term = rl_io__set_term;
    rio->set_vote = rl_io__set_vote;
    rio->send = rl_io__send;
    rio->append = rl_io__append;
    rio->truncate = rl_io__truncate;
    rio->snapshot_put = rl_io__snapshot_put;
    rio->snapshot_get = rl_io__snapshot_get;
    rio->time = io_time;
    rio->random = io_random;
    rio->async_work = io_async_work;
    return 0;
}
