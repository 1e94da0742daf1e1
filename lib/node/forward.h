/*
 * forward — appends and read barriers on any node (lib/node/forward.c).
 *
 * A follower sends an append it cannot order itself to the leader in a
 * FORWARD frame over the authenticated peer transport; the leader queues
 * it like a local append and answers FORWARD_RESULT once the fence has
 * passed it. The follower completes the call only when its own fence has
 * passed the records too, so a read on the same node right after sees them.
 * A read barrier is a raft barrier entry of the leader's current term:
 * once the leader's fence passes it, every record acknowledged before the
 * call is below the leader's visible offset (libraft 0.15 has no
 * ReadIndex; the entry rides group commit like any other). A follower asks
 * the leader (BARRIER frame) and waits for its own fence to reach the
 * answer.
 *
 * Every buffer a peer can grow is bounded: a follower holds at most
 * max_forward_bytes of forwarded unanswered records; a leader takes at most
 * that much from each member, refusing more with RLOG_EAGAIN. Loop thread
 * only.
 */
#ifndef RL_NODE_FORWARD_H
#define RL_NODE_FORWARD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct rlog;
struct rl_op;
struct rl_wire_fwd;
struct rl_fwd_wait;
struct rl_fwd_peer;
struct rl_fwd_bar;

struct rl_fwd {
    bool ready, closed, timer_on, polling, again;
    uv_timer_t timer;            /* re-checks waits while any are open */
    uint64_t next_request;
    /* Follower: calls held for a leader, sent, or settling (waiting for
     * this node's fence), oldest first; bytes: their records. */
    struct rl_fwd_wait *head, *tail;
    uint64_t bytes;
    /* Leader: what each member has forwarded and not had answered. */
    struct rl_fwd_peer *peers;
    /* Leader: the barrier entry proposed (its calls in bar_cur) and the
     * calls that came after it was proposed (bar_next: the next entry). */
    struct rl_fwd_bar *bar;
    struct rl_op *bar_cur, *bar_next;
    uint64_t bar_index, bar_deadline;
    uint64_t forwarded_appends, forwards_served, forward_refused;
};

/* Starts the timer (after the loop is initialised). */
void rl_fwd_init(struct rlog *log);
/* A never-proposed append on a node that does not lead: held for a
 * leader, sent to it, or failed (forwarding off; a forwarded-in call). */
void rl_fwd_append(struct rlog *log, struct rl_op *op);
/* An RL_OP_CURSOR commit on a node that does not lead: held for a leader,
 * sent to it, or failed (a forwarded-in call). */
void rl_fwd_cursor(struct rlog *log, struct rl_op *op);
/* An RL_OP_BARRIER call, local or served for a member. */
void rl_fwd_barrier(struct rlog *log, struct rl_op *op);
/* Re-evaluates every wait (after raft events, fence moves, the timer). */
void rl_fwd_poll(struct rlog *log);
/* Fails every wait (RLOG_ECLOSED, or RLOG_EINDOUBT once sent) and closes
 * the timer. */
void rl_fwd_close(struct rlog *log);
/* The io hook on_fwd (raftio/io.h). */
int rl_fwd_recv(void *arg, uint64_t from, struct rl_wire_fwd *m);

#endif
