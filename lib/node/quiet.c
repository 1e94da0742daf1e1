/*
 * quiet — idle logs on a host's shared transport stop their heartbeats
 * (issue 16's cheap idle logs). lib/raftio/quiet.c stops and restarts
 * libraft's clock; this file decides when a log is idle and brings its
 * members along:
 *
 *  1. A leader idle for quiet_after ticks (every member holds its last
 *     entry, stored and committed; nothing in flight here) asks each
 *     member to quiesce at (term, last index): QUIESCE.
 *  2. A follower that holds exactly that, stored and committed, with
 *     nothing in flight, stops its clock and answers QUIESCED.
 *  3. The leader stops its own clock once every member answered, before
 *     its next tick (a tick may send heartbeats, which wake the
 *     followers: an answer after it is stale and the ask starts over).
 *
 * Any work starts the clocks again (raftio's rules), and a follower whose
 * clock runs for a reason of its own (its leader's host fell silent, say)
 * tells its leader, UNQUIESCE, so that a leader that is still there
 * heartbeats before the follower's election timer passes. An ask nobody
 * answers in full (a member of an older version, which closes the
 * channel on these frames) is repeated after twice the wait each time,
 * up to a minute,
 * until the log moves on (a member down keeps its log from going quiet
 * until it is back).
 *
 * A log with its own connections has no host keepalives to tell it that
 * its leader's host fell silent, so it goes quiet only where asked
 * (rl_quiet_everywhere: the simulator, which runs every log on its own
 * connections) and then with pulses: the quiet leader sends QUIESCE again
 * every quarter election timeout (still a tenth of the heartbeats), and a
 * quiet follower that hears none for an election timeout runs its clock
 * again, as it would on a silent host connection.
 */
#include "node/node.h"

#include "raftio/io.h"
#include "sm/sm.h"
#include "wire/codec.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define QUIET_MAX_ASK_TICKS 600u /* a minute of 100 ms ticks */

bool rl_quiet_everywhere;

static void send_quiet(struct rlog *log, uint64_t to, uint16_t type, uint64_t seq,
                       uint64_t term, uint64_t index)
{
    char addr[256];
    const struct raft_configuration *c = &log->raft.configuration;
    addr[0] = 0;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == to)
            snprintf(addr, sizeof addr, "%s", c->servers[i].address);
    if (!addr[0])
        return;
    struct rl_wire_fwd m = {.type = type, .request = seq, .quiet_term = term,
                            .quiet_index = index};
    rl_io_send_fwd(&log->io, to, addr, &m, NULL, NULL);
}

/* Work of the node's own that starts from its polls after raft events (a
 * state machine that needs a snapshot, damage to repair): a quiet log has
 * no events, so this wakes it (rl_quiet_tick). */
static bool node_has_work(struct rlog *log)
{
    return !rl_sm_install_idle(log) || (log->store && rl_store_damaged(log->store, NULL, 0) > 0);
}

/* Nothing of the node's own under way that needs the clock or the peers. */
static bool node_idle(struct rlog *log)
{
    return !log->fatal && !log->raft_closing && !log->stopping && !log->pend_head &&
           !log->open_head && !log->ifl_head && !log->retry_head && !log->member_op &&
           !log->barrier_pending && !log->fwd.head && !log->fwd.bar && !log->ret_busy &&
           !log->trim_unsynced_index && !log->repair.asking && !log->repair.writing &&
           log->repair.first == 0 && log->fence.visible_index == log->raft.commit_index &&
           !node_has_work(log) && rl_io_quiet_ok(&log->io);
}

/* A member libraft replicates to: every one but a spare (libraft 0.15
 * sends a spare nothing, so its match index never moves). */
static bool replicated(const struct raft_server *s, raft_id self)
{
    return s->id != self && s->role != RAFT_SPARE;
}

/* libraft's side of a leader with nothing to do: every member holds its
 * last entry, stored and committed; no change of membership or leader. */
bool rl_leader_idle(struct rlog *log)
{
    struct raft *r = &log->raft;
    if (r->state != RAFT_LEADER || r->transfer || r->configuration_uncommitted_index ||
        r->leader_state.promotee_id || r->leader_state.change)
        return false;
    raft_index last = raft_last_index(r);
    if (r->commit_index != last || r->last_stored != last || r->configuration.n > RL_QUIET_PEERS)
        return false;
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (replicated(&r->configuration.servers[i], r->id) &&
            r->leader_state.progress[i].match_index != last)
            return false;
    return node_idle(log);
}

static void ask_over(struct rl_quiet *q)
{
    q->asking = false;
    q->ask_wait = q->ask_wait * 2 < QUIET_MAX_ASK_TICKS ? q->ask_wait * 2 : QUIET_MAX_ASK_TICKS;
    q->failed_index = q->index;
}

static uint64_t now_ms(struct rlog *log)
{
    return uv_now(log->loop);
}

/* A quiet log without keepalives (q->pulse): the leader's pulses, and a
 * follower's check that they still come. */
static void pulse_tick(struct rlog *log)
{
    struct rl_quiet *q = &log->quiet;
    struct raft *r = &log->raft;
    if (r->state == RAFT_LEADER) {
        if (++q->idle_ticks < q->pulse_ticks)
            return;
        q->idle_ticks = 0;
        for (unsigned i = 0; i < r->configuration.n; i++)
            if (replicated(&r->configuration.servers[i], r->id))
                send_quiet(log, r->configuration.servers[i].id, RL_WIRE_QUIESCE, q->seq,
                           q->term, q->index);
    } else if (now_ms(log) - q->heard_ms > log->cfg.election_timeout_ms) {
        rl_io_wake(&log->io, "no pulse from the leader");
    }
}

void rl_quiet_tick(struct rlog *log)
{
    struct rl_quiet *q = &log->quiet;
    if (!q->enabled)
        return;
    if (rl_io_frozen(&log->io)) {
        if (node_has_work(log))
            rl_io_wake(&log->io, "the state machine or a repair has work");
        else if (q->pulse)
            pulse_tick(log);
        return;
    }
    if (q->asking) /* unanswered in full before this tick: stale now */
        ask_over(q);
    if (!rl_leader_idle(log) || rl_balance_pending(log)) {
        q->idle_ticks = 0;
        return;
    }
    /* The log moved since an ask failed (a member down then, say): each
     * idle spell starts from the shortest wait again. */
    if (q->ask_wait > q->quiet_after && raft_last_index(&log->raft) != q->failed_index)
        q->ask_wait = q->quiet_after;
    if (++q->idle_ticks < q->ask_wait)
        return;
    q->idle_ticks = 0;
    struct raft *r = &log->raft;
    q->asking = true;
    q->seq++; /* answers to an earlier ask are not counted for this one */
    q->term = r->current_term;
    q->index = raft_last_index(r);
    q->n_acked = 0;
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (replicated(&r->configuration.servers[i], r->id))
            send_quiet(log, r->configuration.servers[i].id, RL_WIRE_QUIESCE, q->seq, q->term,
                       q->index);
}

static void take_ask(struct rlog *log, uint64_t from, uint64_t seq, uint64_t term,
                     uint64_t index)
{
    struct raft *r = &log->raft;
    struct rl_quiet *q = &log->quiet;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(r, &leader, &addr);
    if (rl_io_frozen(&log->io)) { /* a pulse */
        if (r->current_term == term && leader == from && q->term == term && q->index == index)
            q->heard_ms = now_ms(log);
        return;
    }
    if (r->state != RAFT_FOLLOWER || r->current_term != term || leader != from ||
        raft_last_index(r) != index || r->last_stored != index || r->commit_index != index ||
        !node_idle(log))
        return; /* not now: the leader asks again later */
    rl_io_freeze(&log->io, q->pulse);
    if (!rl_io_frozen(&log->io))
        return;
    q->term = term;
    q->index = index;
    q->heard_ms = now_ms(log);
    send_quiet(log, from, RL_WIRE_QUIESCED, seq, term, index);
}

static void take_answer(struct rlog *log, uint64_t from, uint64_t seq, uint64_t term,
                        uint64_t index)
{
    struct rl_quiet *q = &log->quiet;
    struct raft *r = &log->raft;
    if (!q->asking || seq != q->seq || term != q->term || index != q->index ||
        r->current_term != term)
        return;
    for (unsigned i = 0; i < q->n_acked; i++)
        if (q->acked[i] == from)
            return;
    if (q->n_acked < RL_QUIET_PEERS)
        q->acked[q->n_acked++] = from;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        uint64_t id = r->configuration.servers[i].id;
        bool have = !replicated(&r->configuration.servers[i], r->id);
        for (unsigned k = 0; k < q->n_acked && !have; k++)
            have = q->acked[k] == id;
        if (!have)
            return;
    }
    q->asking = false;
    if (!rl_leader_idle(log) || raft_last_index(r) != index)
        return;
    rl_io_freeze(&log->io, q->pulse);
    if (rl_io_frozen(&log->io)) {
        q->ask_wait = q->quiet_after;
        q->idle_ticks = 0; /* counts to the next pulse now */
        q->quiesced++;
    }
}

void rl_quiet_recv(struct rlog *log, uint64_t from, const struct rl_wire_fwd *m)
{
    if (!log->quiet.enabled)
        return;
    if (m->type == RL_WIRE_QUIESCE) {
        take_ask(log, from, m->request, m->quiet_term, m->quiet_index);
    } else if (m->type == RL_WIRE_QUIESCED) {
        take_answer(log, from, m->request, m->quiet_term, m->quiet_index);
    } else if (m->type == RL_WIRE_UNQUIESCE && log->raft.current_term == m->quiet_term) {
        log->quiet.asking = false; /* an ask under way: that member is awake */
        rl_io_wake(&log->io, "a follower's clock runs again");
    }
}

void rl_quiet_woken(struct rlog *log, uint64_t from, bool was_frozen)
{
    struct rl_quiet *q = &log->quiet;
    q->idle_ticks = 0;
    q->asking = false;
    if (!was_frozen)
        return; /* an ask under way ends: a member's connection ended or fell silent */
    q->wakes++;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&log->raft, &leader, &addr);
    /* Woken by anything but its leader's own message (a call here, a
     * silence, a candidate's vote request): a leader still there is
     * told, and heartbeats before this node's election timer passes. */
    if (log->raft.state == RAFT_FOLLOWER && leader && leader != log->cfg.id && from != leader)
        send_quiet(log, leader, RL_WIRE_UNQUIESCE, 0, log->raft.current_term,
                   raft_last_index(&log->raft));
}

void rl_quiet_init(struct rlog *log)
{
    struct rl_quiet *q = &log->quiet;
    memset(q, 0, sizeof *q);
    const char *env = getenv("LIBLOG_QUIESCE");
    bool shared = rl_io_shared_transport(&log->io);
    q->enabled = (shared || rl_quiet_everywhere) && !(env && strcmp(env, "0") == 0);
    q->pulse = !shared;
    unsigned hb = log->cfg.heartbeat_timeout_ms ? log->cfg.heartbeat_timeout_ms : 100;
    q->quiet_after = 2 * log->cfg.election_timeout_ms / hb;
    if (q->quiet_after < 10)
        q->quiet_after = 10;
    q->ask_wait = q->quiet_after;
    q->pulse_ticks = log->cfg.election_timeout_ms / (4 * hb);
    if (q->pulse_ticks < 1)
        q->pulse_ticks = 1;
}
