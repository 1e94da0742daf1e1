/*
 * Quiescence: libraft's clock stopped while a log is idle (io.h says when
 * it stops and what starts it again; node/quiet.c decides when a log is
 * idle). A stopped clock is the whole mechanism: libraft sends heartbeats
 * and times elections by the time it reads from the backend, so with the
 * time standing still it sends nothing and expects nothing, and its ticks
 * are not even run. When the clock runs again, the time it stood still is
 * taken out of what libraft sees, so no timer finds a gap: a follower's
 * election timer goes on from where it stopped (after a wake for a silent
 * peer host, it passes within an election timeout and the log elects).
 */
#include "raftio/internal.h"

#include <stdio.h>

uint64_t rl_io__time(struct io *io)
{
    uint64_t now = io->frozen ? io->frozen_at : uv_now(io->loop);
    return now - io->time_shift;
}

bool rl_io_shared_transport(struct raft_io *rio)
{
    struct io *io = rio->impl;
    return io && io->netcfg.via;
}

bool rl_io_quiet_ok(struct raft_io *rio)
{
    struct io *io = rio->impl;
    return io && io->tick_cb && !io->closing && !io->fatal && !io->fetch && !io->reset_fetch &&
           !io->held_head &&
           !io->snap_head && !io->failed_head && !io->install_req && !io->rewind.asked &&
           !io->tick_held;
}

/* An inbound connection between frames idles for good while the log is
 * quiet (the link's keepalives stand for it); its idle deadline is off. */
static void idle_deadlines(struct io *io, uint64_t ms)
{
    for (struct in_conn *c = io->ins; c; c = c->next)
        if (!c->closing && c->hdr_got == 0)
            rl_conn_deadline(c->conn, ms);
}

/* Ticks of a quiet log without pulses: hooks.on_tick only, this much
 * slower (every 5 s at libraft's 100 ms), for the node's own work that
 * may need the log awake (a state machine needing a snapshot, damage to
 * repair: node/quiet.c). Every second cost 1.4 % of a core per 1,000
 * quiet replicas (bench_idle), every 5 s 0.7 %. */
#define QUIET_TICK_FACTOR 50u

void rl_io_freeze(struct raft_io *rio, bool keep_ticks)
{
    struct io *io = rio->impl;
    if (!rl_io_quiet_ok(rio) || io->frozen)
        return;
    io->frozen = true;
    io->frozen_at = uv_now(io->loop);
    io->frozen_pulses = keep_ticks;
    if (!keep_ticks) {
        uint64_t slow = (uint64_t)io->tick_ms * QUIET_TICK_FACTOR;
        uv_timer_start(&io->timer, io->tick_timer_cb, slow, slow);
        /* The host's keepalives stand for the idle deadline (without
         * them, pulses keep the connections busy enough). */
        idle_deadlines(io, 0);
    }
    rl_io__log(io, 0, "quiet: the log is idle; its clock stops until it has work");
}

void rl_io__wake(struct io *io, const char *why, uint64_t from, bool peer_event)
{
    if (!io->frozen) {
        /* A leader asking its members to quiesce must not count an answer
         * from a member whose connection ended or fell silent meanwhile. */
        if (peer_event && io->hooks.on_wake)
            io->hooks.on_wake(io->hooks.arg, from, false);
        return;
    }
    uint64_t now = uv_now(io->loop);
    io->time_shift += now - io->frozen_at;
    io->frozen = false;
    if (!io->closing) {
        io->ticks_start(io);
        if (!io->frozen_pulses)
            idle_deadlines(io, io->idle_timeout_ms);
    }
    rl_io__log(io, 0, "quiet: the clock runs again (%s) after %.1f s", why,
               (double)(now - io->frozen_at) / 1e3);
    if (io->hooks.on_wake)
        io->hooks.on_wake(io->hooks.arg, from, true);
}

void rl_io_wake(struct raft_io *rio, const char *why)
{
    if (rio->impl)
        rl_io__wake(rio->impl, why, 0, false);
}

bool rl_io_frozen(struct raft_io *rio)
{
    struct io *io = rio->impl;
    return io && io->frozen;
}
