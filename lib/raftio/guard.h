/*
 * guard — who may send what, decided before libraft sees a message.
 *
 * The transport authenticates a peer (or, in insecure loopback mode, takes
 * its claimed id); this module then checks each message against that
 * sender and this node's view of the cluster. It is pure: the caller gives
 * the view, it answers pass or drop (with a reason for the log and a
 * counter). Rules:
 *
 *  - The sender is a member: in the current configuration, or in the peer
 *    list the node was opened with (a node that has not yet received any
 *    configuration, e.g. one being added, only knows that list; one whose
 *    stored configuration predates an add knows the added node from it).
 *  - No term can wrap: a term above 2^63 is refused in every message that
 *    carries one (libraft adds 1 to terms; 2^64-1 left a cluster leaderless
 *    for good).
 *  - Messages only a leader sends (AppendEntries, InstallSnapshot) at the
 *    term this node leads itself are refused: Raft allows one leader per
 *    term, so their sender is an impostor. (Not "from the leader a follower
 *    knows": libraft 0.15 can keep the previous term's leader after a term
 *    change, and that rule dropped a real new leader's messages in the
 *    simulator.) A member that runs Raft wrongly is not defended against
 *    beyond this: members are trusted to run liblog. A higher
 *    term passes (libraft steps down to it, as Raft requires for liveness:
 *    a new leader must be able to reach followers that have not heard of
 *    it), and a lower one passes too (libraft answers it with the current
 *    term, which is how a deposed leader learns of it).
 *  - A commit notice (it makes entries visible without libraft) only from
 *    the leader this node knows, at this node's term: a notice is an
 *    optimisation, so dropping the doubtful ones costs latency only.
 *
 * Thread: none of its own; call from the loop thread.
 */
#ifndef RL_RAFTIO_GUARD_H
#define RL_RAFTIO_GUARD_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

/* Terms above this are refused (libraft would add 1 and wrap). */
#define RL_GUARD_MAX_TERM (UINT64_C(1) << 63)

struct rl_guard_view {
    uint64_t self;           /* this node's id */
    uint64_t term;           /* this node's current term */
    uint64_t leader;         /* the leader this node knows for `term`, or 0 */
    /* True if id is a member (see above). */
    bool (*is_member)(void *arg, uint64_t id);
    void *arg;
};

struct rl_wire_commit;

/* 0 if msg (a raft message), sent by msg->server_id, may go on; otherwise
 * RLOG_EPROTO and *why (a static string) says which rule it broke. */
int rl_guard_check(const struct rl_guard_view *v, const struct raft_message *msg,
                   const char **why);
/* The same for a commit notice from `from`. */
int rl_guard_check_commit(const struct rl_guard_view *v, uint64_t from,
                          const struct rl_wire_commit *c, const char **why);
/* The sender rule alone (the fetch protocol carries no term). */
int rl_guard_check_sender(const struct rl_guard_view *v, uint64_t from, const char **why);

#endif
