/*
 * Rewind: a follower's conflicting suffix that libraft 0.15 will not give
 * up is replaced by the leader's entries (the comment below says how).
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rewind ------------------------------------------------------------
 *
 * libraft 0.15 takes an InstallSnapshot for a no-op when its own entry at
 * the snapshot's index has a term at least the snapshot's
 * (replication.c: "local_term >= args->last_term"), and answers that it
 * holds the snapshot. A follower whose conflicting suffix, from a later
 * term that never committed, reaches back past the leader's in-memory
 * window then rejects every AppendEntries and ignores every snapshot: the
 * cluster never converges (found by the simulator, random seed 85707030).
 *
 * Such a snapshot does not reach libraft. We ask the leader for its entries
 * after the last one known to be committed here (identical everywhere) and
 * hand them to libraft as the AppendEntries the leader would have sent if
 * its window reached that far: libraft cuts the conflicting suffix and
 * appends the leader's entries, and the leader's next snapshot installs as
 * usual. Each round starts after the last entry a previous round handed
 * over, if that entry still stands, so a long suffix takes several. */

#define REWIND_CHUNK (1u << 20)
#define REWIND_RETRY_MS 1000

bool rl_io__rewind_start(struct io *io, struct raft_message *msg, const char *address)
{
    const struct raft_install_snapshot *is = &msg->install_snapshot;
    uint64_t local;
    if (io->fetch || io->closing || io->fatal || is->term < rl_store_term(io->store) ||
        !rl_io__entry_term(io, is->last_index, &local) || local <= is->last_term)
        return false; /* libraft handles this one as it should */
    struct rewind *rw = &io->rewind;
    uint64_t now = uv_now(io->loop);
    if (rw->asked && rw->term == is->term && now - rw->asked_ms < REWIND_RETRY_MS)
        return true; /* a round is under way */
    uint64_t prev = rl_io__committed_here(io), prev_term, end_term;
    if (rw->end > prev && rw->end < is->last_index && rl_io__entry_term(io, rw->end, &end_term) &&
        end_term == rw->end_term)
        prev = rw->end; /* the last round's entries stand: go on after them */
    if (prev >= is->last_index || !rl_io__entry_term(io, prev, &prev_term)) {
        rl_io__log(io, 3, "snapshot %" PRIu64 "/%" PRIu64 " conflicts with entry %" PRIu64
                   " (term %" PRIu64 "), but no committed entry to rewind to",
                   (uint64_t)is->last_index, (uint64_t)is->last_term, (uint64_t)is->last_index,
                   local);
        return false;
    }
    *rw = (struct rewind){.asked = true, .source = msg->server_id, .term = is->term,
                          .prev = prev, .prev_term = prev_term, .to = is->last_index,
                          .end = rw->end, .end_term = rw->end_term, .asked_ms = now,
                          .count = rw->count + 1};
    rl_io__log(io, 1, "entry %" PRIu64 " has term %" PRIu64 " here, the leader's snapshot says %"
               PRIu64 ": asking %" PRIu64 " for its entries after %" PRIu64 " (rewind %lu)",
               (uint64_t)is->last_index, local, (uint64_t)is->last_term, rw->source, prev,
               rw->count);
    if (rl_io__ask_fetch(io, rw->source, address, prev + 1, is->last_index, REWIND_CHUNK) != 0)
        rw->asked = false;
    return true;
}

/* A fetch answer for a rewind becomes the leader's AppendEntries. */
bool rl_io__rewind_answer(struct io *io, uint64_t peer, const char *address,
                          const struct rl_wire_fetch_resp *a, struct raft_message *msg)
{
    struct rewind *rw = &io->rewind;
    if (!rw->asked || io->fetch || io->closing || io->fatal || peer != rw->source ||
        a->status != 0 || a->n_entries == 0 || a->first != rw->prev + 1 ||
        rl_store_term(io->store) > rw->term)
        return false;
    rw->asked = false;
    unsigned n = a->n_entries;
    if (rw->prev + n > rw->to)
        n = (unsigned)(rw->to - rw->prev);
    rw->end = rw->prev + n;
    rw->end_term = a->entries[n - 1].term;
    rl_io__log(io, 1, "rewind: handing entries %" PRIu64 "..%" PRIu64 " of %" PRIu64
               " to libraft", rw->prev + 1, rw->end, rw->source);
    *msg = (struct raft_message){.type = RAFT_IO_APPEND_ENTRIES, .server_id = peer,
                                 .server_address = address};
    msg->append_entries = (struct raft_append_entries){
        .term = rw->term, .prev_log_index = rw->prev, .prev_log_term = rw->prev_term,
        .leader_commit = rw->prev, /* proves nothing more is committed */
        .entries = a->entries, .n_entries = n};
    return true;
}
