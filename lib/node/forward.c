/*
 * Appends and read barriers on any node (node/forward.h has the contract).
 *
 * Follower side: a call waits in one list through three states. HELD: no
 * leader known (or it could not be reached yet); after one election
 * timeout it fails with RLOG_ENOTLEADER, nothing appended. A leader that
 * answers "not the leader" (it appended nothing: it had just lost or
 * handed over the lead) puts the call back to HELD, up to MAX_REFUSED
 * times, each with a new election timeout to find the next one. SENT: the
 * FORWARD (or BARRIER) frame is out; if the leader changes, the write
 * fails, or no answer comes within RESULT_WAIT election timeouts, an
 * append ends RLOG_EINDOUBT (the leader may have ordered it) and a barrier
 * RLOG_ENOTLEADER (it appends nothing). SETTLING: the leader answered
 * success; the call completes once this node's fence has passed the
 * records (the barrier's offset), or, for an append, after SETTLE_WAIT
 * election timeouts anyway: the records are committed.
 *
 * Leader side: a FORWARD from a member becomes an ordinary append op
 * (forwarded_in, never forwarded again) queued through rl_submit, and its
 * completion hook sends the answer back. The network may duplicate frames
 * (the simulator does), so each member's recent request ids are
 * remembered and a repeat is dropped: answering it would report "nothing
 * appended" for a call the first copy appended.
 *
 * A named cursor's commit (liblog 0.4) travels like an append (CURSOR
 * frame; in doubt once sent, since it may be ordered), takes no offset,
 * and is answered with the index of its entry: the follower completes it
 * once its own fence has shown that entry, so rlog_cursor_get there sees
 * it. On the leader it goes through the inbox to node/positions.c.
 *
 * Barriers on the leader: the calls that arrive while no barrier entry is
 * out share the next one; the answer is the fence's visible offset once
 * the fence passes that entry. Every entry committed before the call is at
 * a lower index than the barrier (the leader holds all of them), so the
 * answer covers every acknowledged record, even if the entry at that index
 * later turns out to be another leader's.
 */
#include "node/forward.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/env.h"
#include "node/node.h"
#include "raftio/io.h"
#include "sm/sm.h"
#include "wire/codec.h"

#define DEFAULT_MAX_FORWARD_BYTES (64ull << 20)
/* Election timeouts: waiting for an answer after sending, and for this
 * node's fence after a successful answer. */
#define RESULT_WAIT 3
#define SETTLE_WAIT 2
/* A barrier entry not shown within this many election timeouts fails. */
#define BARRIER_WAIT 4
/* What a barrier request counts against a member's bound. */
#define BARRIER_COST 4096u
/* Answers "not the leader" after which a call is held again for the next
 * leader, before it fails with that answer. */
#define MAX_REFUSED 3
/* Request ids remembered per member (duplicate frames). */
#define SEEN 256

enum { W_HELD, W_SENT, W_SETTLING };

struct rl_fwd_wait {
    struct rl_op *op;
    int state;
    bool lost;                  /* the frame's write failed */
    bool unsent;                /* ... before any of it was written */
    uint64_t request, leader;
    char leader_addr[64];
    uint64_t deadline;          /* loop ms */
    uint64_t hold_until;        /* held (no leader, or unreachable) until then */
    unsigned refused;           /* answers "not the leader": held again, this often */
    uint64_t refused_by, refused_term; /* the last such answer, and this node's term then */
    uint64_t result;            /* settling: first offset, or barrier offset */
    struct rl_fwd_wait *next;
};

struct rl_fwd_peer {
    uint64_t id, bytes;
    uint64_t seen[SEEN];
    unsigned seen_n, seen_pos;
    struct rl_fwd_peer *next;
};

struct rl_fwd_bar {
    struct raft_barrier req;
    struct rlog *log;
    bool detached;
};

/* A call served for a member: where its answer goes. */
struct served {
    struct rlog *log;
    uint64_t peer, request;
    uint64_t cost;
};

/* A frame being written: the wait it belongs to, found again by id. */
struct sending {
    struct rlog *log;
    uint64_t request;
};

static uint64_t now_ms(struct rlog *log)
{
    return uv_now(log->loop);
}

static uint64_t max_bytes(struct rlog *log)
{
    return log->cfg.max_forward_bytes ? log->cfg.max_forward_bytes : DEFAULT_MAX_FORWARD_BYTES;
}

static bool leads(struct rlog *log)
{
    return log->raft_started && !log->raft_closing && !log->fatal && !log->stopping &&
           log->raft.state == RAFT_LEADER;
}

static uint64_t leader_of(struct rlog *log, char *addr, size_t len)
{
    raft_id id = 0;
    const char *a = NULL;
    if (log->raft_started && !log->raft_closing && !log->fatal)
        raft_leader(&log->raft, &id, &a);
    if (addr)
        snprintf(addr, len, "%s", a ? a : "");
    return id;
}

static void finish(struct rlog *log, struct rl_op *op, int status, uint64_t offset,
                   const char *msg)
{
    op->status = status;
    op->first_offset = offset;
    if (status)
        snprintf(op->errmsg, sizeof op->errmsg, "%s", msg && msg[0] ? msg : rlog_strerror(status));
    rl_op_finish(log, op);
}

static void timer_cb(uv_timer_t *t)
{
    rl_fwd_poll(t->data);
}

static void timer_want(struct rlog *log)
{
    struct rl_fwd *f = &log->fwd;
    if (!f->ready || f->closed || f->timer_on)
        return;
    unsigned every = log->cfg.heartbeat_timeout_ms ? log->cfg.heartbeat_timeout_ms : 100;
    uv_timer_start(&f->timer, timer_cb, every, every);
    f->timer_on = true;
}

void rl_fwd_init(struct rlog *log)
{
    struct rl_fwd *f = &log->fwd;
    uv_timer_init(log->loop, &f->timer);
    f->timer.data = log;
    f->ready = true;
    rl_node_hold(log);
    /* Ids differ across restarts, so a leader never takes a new call for a
     * repeat of an old one. */
    if (rl_random(&f->next_request, sizeof f->next_request) != 0)
        f->next_request = uv_hrtime();
    f->next_request = (f->next_request >> 2) + 1;
}

/* ---- follower side ------------------------------------------------------- */

static void wait_unlink(struct rlog *log, struct rl_fwd_wait *w)
{
    struct rl_fwd *f = &log->fwd;
    struct rl_fwd_wait **pp = &f->head, *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = w->next;
    if (f->tail == w)
        f->tail = prev;
    if (w->op->kind == RL_OP_APPEND)
        f->bytes -= w->op->bytes;
}

/* Completes w's call and frees w. */
static void wait_end(struct rlog *log, struct rl_fwd_wait *w, int status, uint64_t offset,
                     const char *msg)
{
    wait_unlink(log, w);
    struct rl_op *op = w->op;
    free(w);
    finish(log, op, status, offset, msg);
}

static struct rl_fwd_wait *wait_find(struct rlog *log, uint64_t request)
{
    for (struct rl_fwd_wait *w = log->fwd.head; w; w = w->next)
        if (w->request == request)
            return w;
    return NULL;
}

static void wait_add(struct rlog *log, struct rl_op *op)
{
    struct rl_fwd *f = &log->fwd;
    struct rl_fwd_wait *w = calloc(1, sizeof *w);
    if (!w) {
        finish(log, op, RLOG_ENOMEM, 0, "out of memory forwarding to the leader");
        return;
    }
    w->op = op;
    w->state = W_HELD;
    w->request = f->next_request++;
    w->hold_until = now_ms(log) + log->cfg.election_timeout_ms;
    if (op->kind == RL_OP_APPEND)
        f->bytes += op->bytes;
    if (f->tail)
        f->tail->next = w;
    else
        f->head = w;
    f->tail = w;
    timer_want(log);
}

static void sent_cb(void *arg, int status)
{
    struct sending *s = arg;
    struct rlog *log = s->log;
    if (status != 0 && !log->fwd.closed) {
        struct rl_fwd_wait *w = wait_find(log, s->request);
        if (w && w->state == W_SENT) {
            /* Settled by the next poll, outside the transport's call. */
            if (status == RLOG_EAGAIN)
                w->unsent = true;
            else
                w->lost = true;
            timer_want(log);
        }
    }
    free(s);
}

/* Sends w's frame to the leader it names; false if it could not go out
 * now (nothing sent: it stays held). */
static bool wait_send(struct rlog *log, struct rl_fwd_wait *w, uint64_t leader, const char *addr)
{
    struct rl_op *op = w->op;
    struct rl_wire_fwd m = {.request = w->request};
    if (op->kind == RL_OP_APPEND) {
        m.type = RL_WIRE_FORWARD;
        m.producer_id = op->producer_id;
        m.seq = op->seq;
        m.expect_offset = op->expect ? op->expect_offset : RLOG_ANY_OFFSET;
        m.hash = op->hash;
        m.n = op->n;
        m.lens = op->lens;
        m.data = op->data;
        m.bytes = op->bytes;
    } else if (op->kind == RL_OP_CURSOR) {
        m.type = RL_WIRE_CURSOR;
        m.offset = op->offset;
        snprintf(m.cursor, sizeof m.cursor, "%s", op->cursor_name);
    } else {
        m.type = RL_WIRE_BARRIER;
    }
    struct sending *s = malloc(sizeof *s);
    if (!s)
        return false;
    *s = (struct sending){.log = log, .request = w->request};
    w->state = W_SENT;
    w->leader = leader;
    snprintf(w->leader_addr, sizeof w->leader_addr, "%s", addr);
    w->deadline = now_ms(log) + (uint64_t)RESULT_WAIT * log->cfg.election_timeout_ms;
    if (rl_io_send_fwd(&log->io, leader, addr, &m, sent_cb, s) != 0) {
        free(s);
        w->state = W_HELD;
        return false;
    }
    if (op->kind == RL_OP_APPEND)
        log->fwd.forwarded_appends++;
    return true;
}

/* One wait's next step; true if it ended (w is freed). */
static bool wait_step(struct rlog *log, struct rl_fwd_wait *w, uint64_t now)
{
    char addr[64], msg[384];
    uint64_t leader = leader_of(log, addr, sizeof addr);
    bool cursor = w->op->kind == RL_OP_CURSOR;
    /* A cursor commit may be ordered once sent, like an append. */
    bool append = w->op->kind == RL_OP_APPEND || cursor;
    const char *nothing = cursor ? "cursor not committed" : append ? "not appended" : "no barrier";
    if (w->state == W_HELD) {
        if (leads(log)) {
            /* This node leads now: nothing was sent, so it orders the call
             * itself. */
            struct rl_op *op = w->op;
            wait_unlink(log, w);
            free(w);
            if (append && rl_submit(log, op) != 0)
                finish(log, op, RLOG_ECLOSED, 0, "log is closing");
            else if (!append)
                rl_fwd_barrier(log, op);
            return true;
        }
        /* Not again to a leader that said it is not one, until this node
         * hears of another (or a new term): the hold bounds the wait. */
        bool stale = leader == w->refused_by && log->raft.current_term == w->refused_term;
        if (leader && leader != log->cfg.id && !stale && now < w->hold_until &&
            wait_send(log, w, leader, addr))
            return false;
        if (now < w->hold_until)
            return false;
        if (leader)
            snprintf(msg, sizeof msg, "%s: leader %" PRIu64 " at %s could not be reached within "
                     "%u ms", nothing, leader, addr, log->cfg.election_timeout_ms);
        else
            snprintf(msg, sizeof msg, "%s: no leader known (waited %u ms for one)", nothing,
                     log->cfg.election_timeout_ms);
        wait_end(log, w, RLOG_ENOTLEADER, 0, msg);
        return true;
    }
    if (w->state == W_SENT && w->unsent) {
        /* Nothing reached the leader: held again, within the first bound. */
        w->unsent = false;
        w->state = W_HELD;
        if (w->op->kind == RL_OP_APPEND)
            log->fwd.forwarded_appends--;
        timer_want(log);
        return wait_step(log, w, now);
    }
    if (w->state == W_SENT) {
        const char *why = NULL;
        char what[160];
        if (w->lost) {
            why = "the connection to it failed";
        } else if (leader != w->leader) {
            if (leader)
                snprintf(what, sizeof what, "the leader changed (now %" PRIu64 " at %s)", leader,
                         addr);
            else
                snprintf(what, sizeof what, "the leader changed (none known now)");
            why = what;
        } else if (now >= w->deadline) {
            snprintf(what, sizeof what, "no answer within %" PRIu64 " ms",
                     (uint64_t)RESULT_WAIT * log->cfg.election_timeout_ms);
            why = what;
        }
        if (!why)
            return false;
        if (cursor)
            snprintf(msg, sizeof msg, "in doubt: cursor %s was forwarded to leader %" PRIu64
                     " at %s, then %s; it may or may not be committed", w->op->cursor_name,
                     w->leader, w->leader_addr, why);
        else if (append)
            snprintf(msg, sizeof msg, "in doubt: these records were forwarded to leader %" PRIu64
                     " at %s, then %s; they may or may not be in the log", w->leader,
                     w->leader_addr, why);
        else
            snprintf(msg, sizeof msg, "no barrier: asked leader %" PRIu64 " at %s, then %s; try "
                     "again", w->leader, w->leader_addr, why);
        wait_end(log, w, append ? RLOG_EINDOUBT : RLOG_ENOTLEADER, 0, msg);
        return true;
    }
    uint64_t end = w->result + (append && !cursor ? w->op->n : 0);
    if (cursor ? log->fence.visible_index >= w->result : log->fence.visible_offset >= end) {
        wait_end(log, w, 0, w->result, NULL);
        return true;
    }
    if (now < w->deadline)
        return false;
    if (append) {
        /* Committed on a quorum (the leader said so): the call succeeded,
         * even if this node lags. */
        wait_end(log, w, 0, w->result, NULL);
        return true;
    }
    snprintf(msg, sizeof msg, "barrier: leader %" PRIu64 " at %s answered offset %" PRIu64
             ", and this node had not caught up to it within %" PRIu64 " ms (it has %" PRIu64 ")",
             w->leader, w->leader_addr, w->result,
             (uint64_t)SETTLE_WAIT * log->cfg.election_timeout_ms, log->fence.visible_offset);
    wait_end(log, w, RLOG_ETIMEOUT, 0, msg);
    return true;
}

void rl_fwd_append(struct rlog *log, struct rl_op *op)
{
    char addr[64], msg[384];
    if (op->forwarded_in || !log->cfg.forward_appends) {
        /* A member's call is never passed on: no loops. */
        uint64_t leader = leader_of(log, addr, sizeof addr);
        if (leader)
            snprintf(msg, sizeof msg, "not the leader; leader is %" PRIu64 " at %s", leader, addr);
        else
            snprintf(msg, sizeof msg, "not the leader; no leader is known yet");
        finish(log, op, RLOG_ENOTLEADER, 0, msg);
        return;
    }
    uint64_t max = max_bytes(log);
    if (log->fwd.bytes > 0 && log->fwd.bytes + op->bytes > max) {
        snprintf(msg, sizeof msg, "append refused, nothing appended: %" PRIu64 " bytes of records "
                 "forwarded to the leader and unanswered, %zu more would pass max_forward_bytes %"
                 PRIu64 "; retry once some have completed", log->fwd.bytes, op->bytes, max);
        finish(log, op, RLOG_EAGAIN, 0, msg);
        return;
    }
    wait_add(log, op);
    rl_fwd_poll(log);
}

void rl_fwd_cursor(struct rlog *log, struct rl_op *op)
{
    if (op->forwarded_in) { /* never passed on: no loops */
        char msg[256];
        rl_not_leader_msg(log, msg, sizeof msg);
        finish(log, op, RLOG_ENOTLEADER, 0, msg);
        return;
    }
    wait_add(log, op);
    rl_fwd_poll(log);
}

/* ---- leader side: barriers ---------------------------------------------- */

static void ops_end(struct rlog *log, struct rl_op **list, int status, uint64_t offset,
                    const char *msg)
{
    struct rl_op *op = *list;
    *list = NULL;
    while (op) {
        struct rl_op *next = op->next;
        op->next = NULL;
        finish(log, op, status, offset, msg);
        op = next;
    }
}

static void bar_detach(struct rlog *log)
{
    struct rl_fwd_bar *b = log->fwd.bar;
    log->fwd.bar = NULL;
    if (b && b->detached)
        free(b); /* its callback came already */
    else if (b)
        b->detached = true;
}

static void bar_cb(struct raft_barrier *req, int status)
{
    struct rl_fwd_bar *b = req->data;
    struct rlog *log = b->log;
    if (b->detached) {
        free(b);
        return;
    }
    if (status != 0) {
        log->fwd.bar = NULL;
        free(b);
        if (log->fence.visible_index >= log->fwd.bar_index) {
            ops_end(log, &log->fwd.bar_cur, 0, log->fence.visible_offset, NULL);
        } else {
            char msg[256];
            snprintf(msg, sizeof msg, "no barrier: leadership was lost before the barrier entry "
                     "committed (%s); try again", raft_strerror(status));
            ops_end(log, &log->fwd.bar_cur, RLOG_ENOTLEADER, 0, msg);
        }
        return;
    }
    /* Applied by libraft; the answer waits for the fence (bar_check). */
    b->detached = true; /* nothing more will call back: freed when answered */
}

static void bar_kick(struct rlog *log)
{
    struct rl_fwd *f = &log->fwd;
    if (f->bar || f->bar_cur || !f->bar_next)
        return;
    if (!leads(log)) {
        ops_end(log, &f->bar_next, RLOG_ENOTLEADER, 0,
                "no barrier: leadership was lost before the barrier entry was proposed; try again");
        return;
    }
    struct rl_fwd_bar *b = calloc(1, sizeof *b);
    if (!b) {
        ops_end(log, &f->bar_next, RLOG_ENOMEM, 0, "out of memory proposing a barrier");
        return;
    }
    b->log = log;
    b->req.data = b;
    int rv = raft_barrier(&log->raft, &b->req, bar_cb);
    if (rv != 0) {
        free(b);
        char msg[256];
        snprintf(msg, sizeof msg, "no barrier: %s; try again", raft_strerror(rv));
        ops_end(log, &f->bar_next, RLOG_ENOTLEADER, 0, msg);
        return;
    }
    f->bar = b;
    f->bar_index = raft_last_index(&log->raft);
    f->bar_deadline = now_ms(log) + (uint64_t)BARRIER_WAIT * log->cfg.election_timeout_ms;
    f->bar_cur = f->bar_next;
    f->bar_next = NULL;
    timer_want(log);
}

/* The barrier out: answered once the fence passes it. */
static void bar_check(struct rlog *log, uint64_t now)
{
    struct rl_fwd *f = &log->fwd;
    if (f->bar_cur && log->fence.visible_index >= f->bar_index) {
        bar_detach(log);
        ops_end(log, &f->bar_cur, 0, log->fence.visible_offset, NULL);
    } else if (f->bar_cur && (now >= f->bar_deadline || !leads(log))) {
        bool lost = !leads(log);
        bar_detach(log);
        char msg[256];
        if (lost)
            snprintf(msg, sizeof msg, "no barrier: leadership was lost before the barrier entry "
                     "was shown; try again");
        else
            snprintf(msg, sizeof msg, "barrier entry %" PRIu64 " not committed within %" PRIu64
                     " ms", f->bar_index, (uint64_t)BARRIER_WAIT * log->cfg.election_timeout_ms);
        ops_end(log, &f->bar_cur, lost ? RLOG_ENOTLEADER : RLOG_ETIMEOUT, 0, msg);
    }
    bar_kick(log);
}

void rl_fwd_barrier(struct rlog *log, struct rl_op *op)
{
    op->next = NULL;
    if (log->fatal) {
        char msg[300];
        snprintf(msg, sizeof msg, "no barrier: this node failed stop: %.200s", log->fatal_msg);
        finish(log, op, RLOG_EFATAL, 0, msg);
        return;
    }
    if (log->stopping || log->raft_closing || log->fwd.closed || !log->raft_started) {
        finish(log, op, RLOG_ECLOSED, 0, "log is closing");
        return;
    }
    if (leads(log)) {
        struct rl_op **pp = &log->fwd.bar_next;
        while (*pp)
            pp = &(*pp)->next;
        *pp = op;
        bar_kick(log);
        return;
    }
    if (op->forwarded_in) {
        finish(log, op, RLOG_ENOTLEADER, 0, "no barrier: not the leader");
        return;
    }
    wait_add(log, op);
    rl_fwd_poll(log);
}

/* ---- leader side: serving members ---------------------------------------- */

static struct rl_fwd_peer *peer_of(struct rlog *log, uint64_t id)
{
    for (struct rl_fwd_peer *p = log->fwd.peers; p; p = p->next)
        if (p->id == id)
            return p;
    struct rl_fwd_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->id = id;
    p->next = log->fwd.peers;
    log->fwd.peers = p;
    return p;
}

/* Whether `request` came before from p (a duplicate frame); remembers it. */
static bool seen_before(struct rl_fwd_peer *p, uint64_t request)
{
    for (unsigned i = 0; i < p->seen_n; i++)
        if (p->seen[i] == request)
            return true;
    p->seen[p->seen_pos] = request;
    p->seen_pos = (p->seen_pos + 1) % SEEN;
    if (p->seen_n < SEEN)
        p->seen_n++;
    return false;
}

static void answer_sent(void *arg, int status)
{
    (void)arg;
    (void)status; /* lost: the member's call ends in doubt by its own timeout */
}

static void answer(struct rlog *log, uint64_t peer, uint16_t type, uint64_t request, int status,
                   uint64_t offset, const char *msg)
{
    if (log->raft_closing || log->fwd.closed)
        return;
    char addr[256];
    struct rl_wire_fwd m = {.type = type, .request = request, .status = status,
                            .offset = offset};
    if (status)
        snprintf(m.msg, sizeof m.msg, "%s", msg && msg[0] ? msg : rlog_strerror(status));
    const struct raft_configuration *c = &log->raft.configuration;
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == peer) {
            snprintf(addr, sizeof addr, "%s", c->servers[i].address);
            rl_io_send_fwd(&log->io, peer, addr, &m, answer_sent, NULL);
            return;
        }
}

static void served_done(struct rl_op *op)
{
    struct served *s = op->done_arg;
    struct rlog *log = s->log;
    for (struct rl_fwd_peer *p = log->fwd.peers; p; p = p->next)
        if (p->id == s->peer)
            p->bytes -= s->cost;
    uint64_t offset = op->status == RLOG_ESEQUENCE ? op->seq_gap : op->first_offset;
    uint16_t type = op->kind == RL_OP_APPEND   ? RL_WIRE_FORWARD_RESULT
                    : op->kind == RL_OP_CURSOR ? RL_WIRE_CURSOR_RESULT
                                               : RL_WIRE_BARRIER_RESULT;
    answer(log, s->peer, type, s->request, op->status, offset, op->errmsg);
    free(s);
    free(op->lens);
    free(op->data);
    free(op->buf);
    free(op);
}

/* A member's FORWARD or BARRIER: checked, then served or refused. */
static int serve(struct rlog *log, uint64_t from, struct rl_wire_fwd *m)
{
    bool append = m->type == RL_WIRE_FORWARD, cursor = m->type == RL_WIRE_CURSOR;
    uint16_t rtype = append ? RL_WIRE_FORWARD_RESULT
                     : cursor ? RL_WIRE_CURSOR_RESULT : RL_WIRE_BARRIER_RESULT;
    char why[160];
    if (cursor && !rl_cursor_name_ok(m->cursor, why, sizeof why)) {
        snprintf(m->msg, sizeof m->msg, "cursor: %s", why);
        return RLOG_EPROTO;
    }
    if (append) {
        /* The same limits as a local call (submit.c make_append); a member
         * that breaks them is broken or hostile. */
        if (m->n > log->cfg.batch_max_records) {
            snprintf(m->msg, sizeof m->msg, "forward: %u records, batch_max_records is %u", m->n,
                     log->cfg.batch_max_records);
            return RLOG_EPROTO;
        }
        for (uint32_t i = 0; i < m->n; i++)
            if (m->lens[i] > log->cfg.max_record_size) {
                snprintf(m->msg, sizeof m->msg, "forward: record %u is %zu bytes, "
                         "max_record_size is %u", i, m->lens[i], log->cfg.max_record_size);
                return RLOG_EPROTO;
            }
        if (m->bytes + 4u * m->n + 64 > log->cfg.batch_max_bytes) {
            snprintf(m->msg, sizeof m->msg, "forward: %zu bytes in one call, batch_max_bytes is %u",
                     m->bytes, log->cfg.batch_max_bytes);
            return RLOG_EPROTO;
        }
    }
    m->msg[0] = '\0';
    struct rl_fwd_peer *p = peer_of(log, from);
    if (!p)
        return 0; /* out of memory: no answer, the member's call times out */
    if (seen_before(p, m->request))
        return 0;
    char msg[256], addr[64];
    if (!leads(log)) {
        uint64_t leader = leader_of(log, addr, sizeof addr);
        if (leader && leader != log->cfg.id)
            snprintf(msg, sizeof msg, "not the leader; leader is %" PRIu64 " at %s", leader, addr);
        else
            snprintf(msg, sizeof msg, "not the leader (node %" PRIu64 "); no leader is known yet",
                     log->cfg.id);
        answer(log, from, rtype, m->request, RLOG_ENOTLEADER, 0, msg);
        return 0;
    }
    uint64_t cost = append ? m->bytes : BARRIER_COST, max = max_bytes(log);
    if (p->bytes > 0 && p->bytes + cost > max) {
        log->fwd.forward_refused++;
        snprintf(msg, sizeof msg, "refused by leader %" PRIu64 ", nothing appended: %" PRIu64
                 " bytes forwarded from node %" PRIu64 " unanswered, max_forward_bytes %" PRIu64
                 "; retry once some have completed", log->cfg.id, p->bytes, from, max);
        answer(log, from, rtype, m->request, RLOG_EAGAIN, 0, msg);
        return 0;
    }
    struct rl_op *op = calloc(1, sizeof *op);
    struct served *s = malloc(sizeof *s);
    if (!op || !s) {
        free(op);
        free(s);
        answer(log, from, rtype, m->request, RLOG_ENOMEM, 0, "leader out of memory");
        return 0;
    }
    *s = (struct served){.log = log, .peer = from, .request = m->request, .cost = cost};
    op->done = served_done;
    op->done_arg = s;
    op->forwarded_in = true;
    p->bytes += cost;
    if (cursor) {
        op->kind = RL_OP_CURSOR;
        op->offset = m->offset;
        snprintf(op->cursor_name, sizeof op->cursor_name, "%s", m->cursor);
        if (rl_submit(log, op) != 0)
            finish(log, op, RLOG_ENOTLEADER, 0, "leader is closing; cursor not committed");
        return 0;
    }
    if (!append) {
        op->kind = RL_OP_BARRIER;
        rl_fwd_barrier(log, op);
        return 0;
    }
    op->kind = RL_OP_APPEND;
    op->n = m->n;
    op->lens = m->lens;
    op->data = m->data;
    op->bytes = m->bytes;
    m->lens = NULL;
    m->data = NULL;
    op->producer_id = m->producer_id;
    op->seq = m->seq;
    op->expect = m->expect_offset != RLOG_ANY_OFFSET;
    op->expect_offset = m->expect_offset;
    /* What the records are is computed here, not taken from the sender. */
    if (op->producer_id)
        op->hash = rl_batch_hash_lens(op->data, op->bytes, op->lens, op->n);
    log->fwd.forwards_served++;
    if (rl_submit(log, op) != 0)
        finish(log, op, RLOG_ENOTLEADER, 0, "leader is closing; nothing appended");
    return 0;
}

/* The leader's answer to one of this node's calls. */
static void answered(struct rlog *log, uint64_t from, const struct rl_wire_fwd *m)
{
    struct rl_fwd_wait *w = wait_find(log, m->request);
    bool append = m->type == RL_WIRE_FORWARD_RESULT;
    enum rl_op_kind kind = append                              ? RL_OP_APPEND
                           : m->type == RL_WIRE_CURSOR_RESULT ? RL_OP_CURSOR
                                                               : RL_OP_BARRIER;
    if (!w || w->state != W_SENT || w->leader != from || kind != w->op->kind)
        return; /* late, repeated, or not ours */
    if (m->status == RLOG_ENOTLEADER && w->refused < MAX_REFUSED) {
        /* Nothing of it was appended there (the leader had just handed the
         * lead over, say): held again for the next leader, a new bound. */
        w->refused++;
        w->refused_by = from;
        w->refused_term = log->raft.current_term;
        w->state = W_HELD;
        w->hold_until = now_ms(log) + log->cfg.election_timeout_ms;
        if (w->op->kind == RL_OP_APPEND)
            log->fwd.forwarded_appends--;
        timer_want(log);
        rl_fwd_poll(log);
        return;
    }
    if (m->status != 0) {
        char msg[384];
        snprintf(msg, sizeof msg, "%s leader %" PRIu64 " at %s: %s",
                 kind == RL_OP_BARRIER ? "barrier asked of" : "forwarded to", w->leader,
                 w->leader_addr, m->msg);
        if (append && m->status == RLOG_ESEQUENCE)
            w->op->seq_gap = m->offset == 1; /* retried, as a local call would be */
        wait_end(log, w, m->status, append && m->status == RLOG_ECONFLICT ? m->offset : 0, msg);
        return;
    }
    w->state = W_SETTLING;
    w->result = m->offset;
    w->deadline = now_ms(log) + (uint64_t)SETTLE_WAIT * log->cfg.election_timeout_ms;
    rl_fwd_poll(log);
}

int rl_fwd_recv(void *arg, uint64_t from, struct rl_wire_fwd *m)
{
    struct rlog *log = arg;
    if (log->fwd.closed || !log->raft_started)
        return 0;
    if (m->type == RL_WIRE_SNAP_REQUEST || m->type == RL_WIRE_SNAP_DATA ||
        m->type == RL_WIRE_SNAP_HAVE)
        return rl_sm_install_recv(log, from, m);
    if (m->type == RL_WIRE_QUIESCE || m->type == RL_WIRE_QUIESCED ||
        m->type == RL_WIRE_UNQUIESCE) {
        rl_quiet_recv(log, from, m);
        return 0;
    }
    if (m->type == RL_WIRE_FORWARD || m->type == RL_WIRE_BARRIER || m->type == RL_WIRE_CURSOR)
        return serve(log, from, m);
    answered(log, from, m);
    return 0;
}

/* ---- both ------------------------------------------------------------------ */

void rl_fwd_poll(struct rlog *log)
{
    struct rl_fwd *f = &log->fwd;
    if (!f->ready || f->closed)
        return;
    if (f->polling) {
        f->again = true;
        return;
    }
    f->polling = true;
    do {
        f->again = false;
        uint64_t now = now_ms(log);
        bar_check(log, now);
        /* One pass in order; a step that ends a wait frees it, so the next
         * one is taken first. Waits added meanwhile go to the tail and are
         * seen in this pass too. */
        for (struct rl_fwd_wait *w = f->head, *next; w; w = next) {
            next = w->next;
            if (wait_step(log, w, now))
                continue;
        }
    } while (f->again);
    f->polling = false;
    if (!f->head && !f->bar_cur && !f->bar_next && f->timer_on) {
        uv_timer_stop(&f->timer);
        f->timer_on = false;
    }
}

void rl_fwd_close(struct rlog *log)
{
    struct rl_fwd *f = &log->fwd;
    if (!f->ready || f->closed)
        return;
    f->closed = true;
    while (f->head) {
        struct rl_fwd_wait *w = f->head;
        bool append = w->op->kind != RL_OP_BARRIER; /* a cursor commit: in doubt once sent */
        char msg[384];
        if (w->state == W_HELD || !append)
            snprintf(msg, sizeof msg, "log is closing");
        else
            snprintf(msg, sizeof msg, "in doubt: the handle closed with these records forwarded "
                     "to leader %" PRIu64 " at %s; they may or may not be in the log", w->leader,
                     w->leader_addr);
        int st = w->state == W_HELD || !append ? RLOG_ECLOSED : RLOG_EINDOUBT;
        if (w->state == W_SETTLING && append)
            st = 0; /* the leader said committed */
        wait_end(log, w, st, w->result, msg);
    }
    bar_detach(log);
    ops_end(log, &f->bar_cur, RLOG_ECLOSED, 0, "log is closing");
    ops_end(log, &f->bar_next, RLOG_ECLOSED, 0, "log is closing");
    while (f->peers) {
        struct rl_fwd_peer *p = f->peers;
        f->peers = p->next;
        free(p);
    }
    uv_timer_stop(&f->timer);
    f->timer_on = false;
    rl_node_close_handle(log, (uv_handle_t *)&f->timer);
}
