/*
 * Delivery of inbound messages to libraft, and the guards on it.
 *
 * Elections: RequestVote and TimeoutNow received while appends are in flight
 * are held and delivered when the store has caught up, and so are the ticks
 * of a non-leader, so libraft 0.15 never votes or campaigns on log entries
 * that are not yet durable.
 *
 * The queue is bounded (io->harden.bounds.held_max): a peer sending
 * RequestVotes faster than appends finish would otherwise make it grow
 * without end. When it is full the OLDEST message is dropped. That keeps
 * Raft live: a candidate whose RequestVote is lost simply campaigns again
 * at its next election timeout, with a higher term, and its newer request
 * is the one that counts anyway (a vote answer for an older term is ignored
 * by the candidate). Dropping the newest instead would let whatever filled
 * the queue first shut out every later, more current request. A dropped
 * TimeoutNow only means no leadership transfer happens now; the leader may
 * try again.
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- held elections -------------------------------------------------- */

/* After each event libraft handled (a message, a tick, an append or a
 * descriptor done): the floor's removal and what it held, then the node's
 * hook. */
void rl_io__after_event(struct io *io)
{
    if (rl_io__floor_check(io))
        rl_io__release_held(io);
    if (io->hooks.after_event && !io->closing)
        io->hooks.after_event(io->hooks.arg);
}

/* libraft 0.15 rolls an uncommitted configuration back, when an
 * AppendEntries cuts its entry, by decoding the last committed
 * configuration's entry from its in-memory log, with no fallback: once that
 * entry is compacted behind a snapshot it reads a NULL entry and the node
 * crashes (found by the simulator, sm-join seed 920019: an add-node whose
 * leader lost the lead before it committed). A message that will cut it
 * here is preceded by the rollback libraft cannot do: the configuration
 * becomes the snapshot's, which is the last committed one whenever its
 * entry is the snapshot's configuration entry, and nothing is left for
 * libraft to roll back. */
static void rollback_for_libraft(struct io *io, struct raft_message *msg)
{
    struct raft *r = io->rio->data; /* raft_init's; NULL under a test's own driver */
    if (!r || msg->type != RAFT_IO_APPEND_ENTRIES)
        return;
    const struct raft_append_entries *ae = &msg->append_entries;
    raft_index pending = r->configuration_uncommitted_index;
    if (pending == 0 ||
        r->configuration_index > r->log.offset || ae->term < r->current_term)
        return; /* nothing to roll back, libraft holds the entry, or no cut */
    uint64_t local;
    if (ae->prev_log_index > 0 &&
        (!rl_io__entry_term(io, ae->prev_log_index, &local) || local != ae->prev_log_term))
        return; /* refused without a cut */
    uint64_t cut = 0;
    for (unsigned i = 0; i < ae->n_entries && !cut; i++) {
        uint64_t index = ae->prev_log_index + 1 + i;
        if (!rl_io__entry_term(io, index, &local))
            break; /* past what is held here: appended, not cut */
        if (local != ae->entries[i].term)
            cut = index;
    }
    if (!cut || cut > pending)
        return;
    if (!io->have_snap || io->snap.conf_index != r->configuration_index) {
        rl_io__log(io, 2, "an AppendEntries cuts the uncommitted configuration at %" PRIu64
                   ", and the committed one (entry %" PRIu64 ") is neither in libraft's memory "
                   "nor the snapshot's", (uint64_t)pending, (uint64_t)r->configuration_index);
        return;
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < io->snap.conf.n; i++) {
        const struct raft_server *sv = &io->snap.conf.servers[i];
        if (raft_configuration_add(&conf, sv->id, sv->address, sv->role) != 0) {
            raft_configuration_close(&conf);
            return; /* out of memory: left to libraft */
        }
    }
    raft_configuration_close(&r->configuration);
    r->configuration = conf;
    r->configuration_uncommitted_index = 0;
    rl_io__log(io, 1, "configuration entry %" PRIu64 " cut by the leader: back to the committed "
               "configuration of entry %" PRIu64 " (from the snapshot)", (uint64_t)pending,
               (uint64_t)r->configuration_index);
}

void rl_io__deliver(struct io *io, struct raft_message *msg, void *body, bool owned)
{
    if (!io->recv_cb || io->closing || io->fatal) {
        rl_wire_message_release(msg, body, owned);
        if (!owned)
            raft_free(body); /* a failed node's heartbeats leaked here */
        return;
    }
    rl_io__wake(io, "a raft message arrived", msg->server_id, false);
    /* libraft 0.15 answers an AppendEntries that brings nothing new with
     * "I hold everything up to my last stored index" (recv_append_entries.c),
     * even when entries after the leader's are from another term and about
     * to be replaced. The leader then takes them as matched and can count
     * this node towards a quorum for entries it does not hold (found by the
     * simulator: a leader's match index stuck above a follower's conflicting
     * suffix, its heartbeats rejected forever). The answer is capped at what
     * the message itself proves: prev_log_index + n_entries. */
    /* A log cut at open (floor.c): a candidate behind its old end gets no
     * vote from this node, as from one that is down. */
    if (rl_io__vote_below_floor(io, msg)) {
        io->dropped_messages++;
        rl_io__log(io, 0, "RequestVote from %" PRIu64 " dropped: its log ends before entry %" PRIu64
                   " term %" PRIu64 ", which this node held before a damaged entry was cut",
                   (uint64_t)msg->server_id, io->floor_index, io->floor_term);
        rl_wire_message_release(msg, body, owned);
        if (!owned)
            raft_free(body);
        return;
    }
    io->in_append_entries = msg->type == RAFT_IO_APPEND_ENTRIES;
    if (io->in_append_entries) {
        struct raft_append_entries *ae = &msg->append_entries;
        io->append_entries_match = ae->prev_log_index + ae->n_entries;
        /* The same fault on the commit side: libraft 0.15 sets its commit
         * index to min(leader_commit, last stored index), so a heartbeat
         * that matches at prev_log_index marks this node's own conflicting
         * suffix committed (and then applied, and kept when a later
         * AppendEntries must cut it: found by the simulator, random seed
         * 85707030). Raft's rule is min(leader_commit, last new entry). */
        if (ae->leader_commit > io->append_entries_match)
            ae->leader_commit = io->append_entries_match;
    }
    rollback_for_libraft(io, msg);
    io->recv_cb(io->rio, msg);
    io->in_append_entries = false;
    if (!owned)
        raft_free(body);
    rl_io__after_event(io);
}

/* libraft 0.15 takes a snapshot's last index as its own the moment an
 * install starts, and counts entries being written as stored: while either
 * is under way its log claims more than the disk holds. Votes it grants are
 * then only more cautious, but it must not campaign: ticks of a non-leader
 * and TimeoutNow wait. RequestVote waits for appends only, so a node
 * catching up from a leader that died still lets another node win. */
bool rl_io__campaign_held(const struct io *io)
{
    return io->appends > 0 || io->fetch != NULL || io->floor_index != 0;
}

static void held_free(struct held *h)
{
    rl_wire_message_release(&h->msg, h->body, h->owned);
    if (!h->owned)
        raft_free(h->body);
    free(h);
}

void rl_io__hold(struct io *io, struct raft_message *msg, void *body, bool owned,
                 const char *address)
{
    struct rl_io_harden *hd = &io->harden;
    struct held *h = calloc(1, sizeof *h);
    if (!h) {
        rl_wire_message_release(msg, body, owned);
        if (!owned)
            raft_free(body);
        return;
    }
    /* A RequestVote or TimeoutNow is all scalars: its frame body is not
     * needed once decoded. Freed now, a held message costs only its struct
     * and nothing is left for a close to leak. */
    h->msg = *msg;
    if (!owned)
        raft_free(body);
    h->body = owned ? body : NULL;
    h->owned = owned;
    snprintf(h->address, sizeof h->address, "%s", address);
    unsigned max = hd->bounds.held_max ? hd->bounds.held_max : 1;
    while (hd->held >= max && io->held_head) {
        struct held *old = io->held_head;
        io->held_head = old->next;
        if (!io->held_head)
            io->held_tail = NULL;
        hd->held--;
        hd->stats.held_dropped++;
        rl_io__log(io, hd->warned_held ? 0 : 2,
                   "held elections: %u messages wait for appends; dropping the oldest (type %d"
                   " from %" PRIu64 "; %" PRIu64 " dropped so far)",
                   max, (int)old->msg.type, (uint64_t)old->msg.server_id,
                   hd->stats.held_dropped);
        hd->warned_held = true;
        held_free(old);
    }
    if (io->held_tail)
        io->held_tail->next = h;
    else
        io->held_head = h;
    io->held_tail = h;
    hd->held++;
}

bool rl_io__must_hold(const struct io *io, unsigned short type)
{
    return type == RAFT_IO_TIMEOUT_NOW ? rl_io__campaign_held(io) : io->appends > 0;
}

void rl_io__release_held(struct io *io)
{
    /* In arrival order, up to the first message that must still wait. */
    while (io->held_head && !rl_io__must_hold(io, io->held_head->msg.type)) {
        struct held *h = io->held_head;
        io->held_head = h->next;
        if (!io->held_head)
            io->held_tail = NULL;
        io->harden.held--;
        h->msg.server_address = h->address;
        rl_io__deliver(io, &h->msg, h->body, h->owned);
        free(h);
    }
    if (!rl_io__campaign_held(io) && io->tick_held && !io->closing && !io->fatal) {
        io->tick_held = false;
        io->tick_cb(io->rio);
        rl_io__after_event(io);
    }
}

void rl_io_set_bounds(struct raft_io *rio, const struct rl_io_bounds *bounds)
{
    struct io *io = rio->impl;
    io->harden.bounds = *bounds;
}

void rl_io_bound_stats(struct raft_io *rio, struct rl_io_bound_stats *out)
{
    struct io *io = rio->impl;
    *out = io ? io->harden.stats : (struct rl_io_bound_stats){0};
}

/* libraft 0.15 keeps a window of entries before its snapshot and knows
 * no term below it: an AppendEntries whose prev_log_index lies below the
 * window is rejected, and the leader probes further down, never up. A
 * follower whose own snapshot is past the leader's then never matches (the
 * leader also takes its "I have a newer snapshot" answer as a match at the
 * leader's snapshot index; found by the simulator, random seed 85707030).
 * Everything up to our snapshot is committed, so the same as the leader's:
 * such a message becomes a heartbeat at our snapshot, which matches, and
 * the leader goes on from there. The message's own entries up to our
 * snapshot must agree with it, or it is left to libraft. Returns true if
 * the message was rewritten (its entries released). */
bool rl_io__below_window(struct io *io, struct raft_message *msg, void *body, bool owned)
{
    struct raft_append_entries *ae = &msg->append_entries;
    /* prev_log_index 0 included: libraft 0.15 appends the entries of such a
     * message after its window, asks for them back at index 1 and frees
     * entries it never held (refsDecr, from replication.c's error path): a
     * remote crash with one small frame. */
    if (msg->type != RAFT_IO_APPEND_ENTRIES || !io->have_snap ||
        ae->prev_log_index >= io->snap.index || ae->term < rl_store_term(io->store))
        return false;
    uint64_t at_snap = io->snap.index - ae->prev_log_index; /* 1-based position in entries */
    if (at_snap <= ae->n_entries && ae->entries[at_snap - 1].term != io->snap.term)
        return false;
    uint64_t local;
    if (rl_io__entry_term(io, ae->prev_log_index, &local) && local != ae->prev_log_term)
        return false; /* a committed entry disagrees: not ours to paper over */
    rl_wire_message_release(msg, body, owned);
    if (!owned)
        raft_free(body);
    ae->prev_log_index = io->snap.index;
    ae->prev_log_term = io->snap.term;
    return true;
}

/* Entries committed here are the same on every replica, so a message that
 * gives one of them another term comes from no legitimate leader; libraft
 * 0.15 would stop the node ("conflicts with committed entry"). By the log
 * matching property, the last entry the message shares with the committed
 * prefix (or its prev_log_index) is the one to compare. */
const char *rl_io__contradicts_committed(struct io *io, const struct raft_message *msg)
{
    if (msg->type != RAFT_IO_APPEND_ENTRIES)
        return NULL;
    const struct raft_append_entries *ae = &msg->append_entries;
    uint64_t committed = rl_io__committed_here(io);
    if (ae->prev_log_index > committed)
        return NULL;
    uint64_t last = ae->prev_log_index + ae->n_entries;
    uint64_t at = last < committed ? last : committed;
    uint64_t theirs = at == ae->prev_log_index ? ae->prev_log_term
                                               : ae->entries[at - ae->prev_log_index - 1].term;
    uint64_t ours;
    if (!rl_io__entry_term(io, at, &ours) || ours == theirs)
        return NULL;
    return "an AppendEntries contradicting a committed entry";
}
