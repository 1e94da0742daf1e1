/*
 * balance — the leaders of many logs spread over their hosts
 * (rlog_config.balance_leaders; issue 16's "a way to spread leaders").
 *
 * Elections put leaders wherever a timer fired first, and a host that
 * restarts leads nothing until something moves: with many logs on a few
 * hosts, one host ends up leading most of them, and its disk and CPU bound
 * them all. So each log prefers one voter, the same on every member
 * without any message: its voters in id order, one picked by the jump hash
 * of the log's name (rlog_partition's), which gives each host about an
 * equal share of the logs it holds. The leader, if not that voter, hands
 * the lead to it (Kafka's preferred leader election, done by each log for
 * itself) when:
 *  - it has led for an election timeout (a log just elected settles first:
 *    a preferred voter that just came back may still be catching up);
 *  - the preferred voter is a voter, answered within the last election
 *    timeout, and holds the leader's last entry;
 *  - nothing is in flight (node/quiet.c's rl_leader_idle, which the tick
 *    passes in): an append in
 *    flight across a change of leader ends in doubt, so a log busy without
 *    a pause keeps its leader rather than pay that;
 *  - its last attempt is 10 election timeouts old, twice that after a
 *    hand-over that did not stick (this node led again within 3 election
 *    timeouts), and so on up to 640: a preferred voter that cannot keep
 *    the lead, a slow disk say, is not handed it again and again;
 *    meanwhile the log does not go quiet (rl_balance_pending), as a quiet
 *    log's leader stays where it is.
 * The transfer is libraft's (raft_transfer), as rlog_transfer_leadership.
 */
#include "node/node.h"
#include "raftio/io.h"

#include <inttypes.h>
#include <string.h>
#include <xxhash.h>

#define RETRY_TIMEOUTS 10 /* election timeouts between two attempts, at least */
#define STUCK_TIMEOUTS 3  /* leading again within this after a hand-over: it did not stick */
#define MAX_BACKOFF 6     /* the wait doubles up to 64 times RETRY_TIMEOUTS */

uint64_t rl_balance_hash(const char *name)
{
    const char *s = name ? name : "";
    return XXH64(s, strlen(s), 0);
}

/* The voter of the configuration the log prefers, 0 if it has none. */
uint64_t rl_preferred_voter(const struct raft_configuration *c, uint64_t name_hash)
{
    uint64_t ids[RLOG_MAX_PEERS];
    unsigned n = 0;
    for (unsigned i = 0; i < c->n && n < RLOG_MAX_PEERS; i++) {
        if (c->servers[i].role != RAFT_VOTER)
            continue;
        unsigned j = n++; /* insertion in id order */
        for (; j > 0 && ids[j - 1] > c->servers[i].id; j--)
            ids[j] = ids[j - 1];
        ids[j] = c->servers[i].id;
    }
    return n ? ids[rl_jump_hash(name_hash, n)] : 0;
}

static void transfer_cb(struct raft_transfer *req)
{
    struct rlog *log = req->data;
    log->balance.transferring = false;
    rl_log(log, 1, "leadership handed to the preferred voter %" PRIu64 ": %s",
           log->balance.to, log->raft.state == RAFT_LEADER ? "did not complete" : "done");
}

/* The preferred voter's place in the configuration if it can take the
 * lead now, else -1. */
static int ready_target(struct raft *r, uint64_t to)
{
    raft_index last = raft_last_index(r);
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *s = &r->configuration.servers[i];
        if (s->id != to)
            continue;
        const struct raft_progress *p = &r->leader_state.progress[i];
        return s->role == RAFT_VOTER && p->recent_recv && p->match_index == last ? (int)i : -1;
    }
    return -1;
}

/* The voter this leader should hand the lead to now, or 0. */
static uint64_t due_target(struct rlog *log)
{
    struct raft *r = &log->raft;
    uint64_t to = rl_preferred_voter(&r->configuration, log->balance.name_hash);
    return to != 0 && to != log->cfg.id && ready_target(r, to) >= 0 ? to : 0;
}

bool rl_balance_pending(struct rlog *log)
{
    return log->cfg.balance_leaders && log->raft.state == RAFT_LEADER && due_target(log) != 0;
}

void rl_balance_tick(struct rlog *log, bool idle)
{
    struct rl_balance *b = &log->balance;
    struct raft *r = &log->raft;
    if (!log->cfg.balance_leaders || b->transferring || rl_io_frozen(&log->io))
        return; /* a quiet log: its members were all caught up, so it stays */
    uint64_t now = uv_now(log->loop);
    if (r->state != RAFT_LEADER) {
        b->term = 0;
        return;
    }
    unsigned et = log->cfg.election_timeout_ms;
    if (b->term != r->current_term) { /* newly leading: settle first */
        b->term = r->current_term;
        b->since_ms = now;
        /* Leading again soon after handing the lead over: it did not stick
         * there (a slow disk, a one-way partition); wait longer each time. */
        if (b->tried_ms && now - b->tried_ms < (uint64_t)STUCK_TIMEOUTS * et)
            b->backoff += b->backoff < MAX_BACKOFF;
        else
            b->backoff = 0;
        return;
    }
    uint64_t wait = (uint64_t)RETRY_TIMEOUTS * et << b->backoff;
    if (now - b->since_ms < et || (b->tried_ms && now - b->tried_ms < wait))
        return;
    uint64_t to = due_target(log);
    if (to == 0 || !idle)
        return;
    b->tried_ms = now;
    b->to = to;
    b->req.data = log;
    int rv = raft_transfer(r, &b->req, to, transfer_cb);
    if (rv != 0) {
        rl_log(log, 2, "handing leadership to the preferred voter %" PRIu64 ": %s", to,
               raft_strerror(rv));
        return;
    }
    b->transferring = true;
    b->transfers++;
    rl_log(log, 1, "handing leadership to the preferred voter %" PRIu64, to);
}

void rl_balance_init(struct rlog *log)
{
    memset(&log->balance, 0, sizeof log->balance);
    log->balance.name_hash = rl_balance_hash(log->cluster_name);
}
