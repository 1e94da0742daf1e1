/*
 * visible — the fence's effects (node/fence.c decides what may be shown):
 * an entry it passes settles the append proposed there, applies a
 * retention command and feeds the producer and cursor tables; the commit point is
 * published to host threads; the leader sends its commit notice.
 */
#include "node/node.h"

#include <inttypes.h>

#include "raftio/io.h"
#include "wire/codec.h"

/* An entry the fence passed: settle the append proposed there, if any. */
static void entry_shown(void *arg, const struct rl_fence_entry *e)
{
    struct rlog *log = arg;
    if (e->trim_before)
        rl_apply_trim(log, e->index, e->trim_before);
    /* After a gap (an index rebuilt lazily) the batch is read later. */
    if (e->records && e->bytes != UINT64_MAX &&
        rl_tindex_add(&log->tindex, e->offset, e->records, e->ts, e->bytes) < 0)
        rl_log(log, 3, "out of memory indexing entry %" PRIu64 " by time", e->index);
    /* The table first: a call answered below is in it for its retries. */
    int no_room = rl_dedup_shown(&log->dedup, e->index, e->term);
    no_room |= rl_cursors_shown(&log->cursors, e->index, e->term);
    if (no_room)
        rl_log(log, 3, "out of memory recording the producers or cursor of entry %" PRIu64,
               e->index);
    if (log->raft.state == RAFT_LEADER && e->term == log->raft.current_term)
        log->lead_ready_term = e->term;
    while (log->ifl_head && log->ifl_head->index < e->index)
        rl_ifl_settle_head(log, RLOG_ENOTLEADER, 0); /* its entry was replaced */
    if (log->ifl_head && log->ifl_head->index == e->index)
        rl_ifl_settle_head(log, e->term == log->ifl_head->term ? 0 : RLOG_ENOTLEADER, e->offset);
}

void rl_visible_published(struct rlog *log)
{
    pthread_mutex_lock(&log->mu);
    log->pub_visible_offset = log->fence.visible_offset;
    pthread_cond_broadcast(&log->visible_cv); /* waiting iterators, subscribers */
    pthread_mutex_unlock(&log->mu);
    rl_fwd_poll(log); /* forwarded calls wait for this node's fence */
}

/* The early notice. A voter that holds an entry of this leader's term
 * durably, while this leader does too, makes a majority of a configuration
 * of two or three voters: the entry is then committed (stored on a majority
 * by the leader of its term, which is Raft's definition, whatever libraft
 * has heard yet). So as soon as its own write is durable, a leader of such
 * a group tells its voters "entry `durable` of my term is committed": each
 * shows what of it it holds durably, and the rest once its own write ends,
 * without waiting for its acknowledgement to reach the leader and a commit
 * notice to come back (one round trip and two wake-ups less to a follower's
 * readers). The frame is the commit notice a 0.5 follower already knows,
 * and its fence already shows a notice's entries only up to its own durable
 * end and only of the notice's term (node/fence.h): the same rule, so the
 * notice is safe for it too. Not sent while a configuration change is
 * uncommitted (then which configuration counts is in flux), to non-voters
 * (the leader and a non-voter are no majority), nor with more than three
 * voters (the leader and one voter are not enough). */
static void send_early_notice(struct rlog *log, uint64_t durable, uint64_t term)
{
    if (log->early_term != term) {
        log->early_term = term;
        log->early_index = 0;
    }
    const struct raft_configuration *conf = &log->raft.configuration;
    if (durable <= log->early_index || durable <= log->fence.visible_index ||
        log->raft.configuration_uncommitted_index != 0)
        return;
    unsigned voters = 0;
    for (unsigned i = 0; i < conf->n; i++)
        voters += conf->servers[i].role == RAFT_VOTER;
    if (voters < 2 || voters > 3)
        return;
    /* Worth a frame only if it names an entry of this term (the fence
     * shows nothing else by it). */
    const struct rl_fence *f = &log->fence;
    size_t k = f->n;
    while (k > 0 && f->tail[k - 1].index > durable)
        k--;
    if (k == 0 || f->tail[k - 1].index != durable || f->tail[k - 1].term != term)
        return;
    log->early_index = durable;
    log->early_notices++;
    rl_io_send_commit(&log->io, conf,
                      &(struct rl_wire_commit){.term = term, .index = durable, .entry_term = term},
                      RL_NOTICE_VOTERS);
}

void rl_visible_update(struct rlog *log)
{
    /* After a failed stop the fence stays where it was: readers get what
     * was committed then, and no more. */
    if (!log->raft_started || log->raft_closed || log->fence.n == 0 || log->fatal)
        return;
    uint64_t commit = log->raft.commit_index, term = log->raft.current_term;
    uint64_t durable = rl_store_last_index(log->store);
    bool leader = log->raft.state == RAFT_LEADER;
    /* The notice goes right after the append callbacks: on loopback a send
     * also runs the receiver's TCP processing, and ahead of the callbacks it
     * delayed every acknowledgement. A/B, `bench_node run --quick --w2-secs
     * 3`, three rounds: W1 p50 363/358/354 us before the callbacks,
     * 331/314/331 after; W4 p50 406/530/403 vs 409/445/445. (With the old
     * threadpool store it measured the other way: W4 792/742 before vs
     * 859/980 after, W1 even.) */
    uint64_t to = leader ? rl_fence_reach(&log->fence, commit, term, durable) : 0;
    size_t passed = rl_fence_advance(&log->fence, commit, term, durable, entry_shown, log);
    if (leader)
        send_early_notice(log, durable, term);
    if (to) /* voters that had the early notice for it need no other */
        rl_io_send_commit(&log->io, &log->raft.configuration,
                          &(struct rl_wire_commit){.term = term, .index = to, .entry_term = term},
                          log->early_term == term && log->early_index >= to ? RL_NOTICE_NON_VOTERS
                                                                          : RL_NOTICE_ALL);
    /* A follower's write that becomes durable after the notice for its entry
     * came: without this it would wait for the next AppendEntries (the next
     * append, or a heartbeat) to learn the commit index again. */
    if (!leader)
        passed += rl_fence_follow(&log->fence, durable, entry_shown, log);
    if (passed > 0)
        rl_visible_published(log);
}

/* The leader's fence passed entry `index` of term `entry_term`: this log's
 * prefix up to it is committed (rl_fence_notice), and shown where durable. */
void rl_visible_on_commit(void *arg, uint64_t index, uint64_t entry_term)
{
    struct rlog *log = arg;
    if (!log->raft_started || log->raft_closed || log->raft.state == RAFT_LEADER || log->fatal)
        return;
    if (rl_fence_notice(&log->fence, index, entry_term, rl_store_last_index(log->store),
                        entry_shown, log) > 0)
        rl_visible_published(log);
}
