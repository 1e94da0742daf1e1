#include "raftio/guard.h"

#include "liblog.h"
#include "wire/codec.h"

/* The largest term a raft message carries. */
static uint64_t max_term(const struct raft_message *m)
{
    uint64_t a = 0, b = 0;
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES:
        a = m->append_entries.term;
        b = m->append_entries.prev_log_term;
        break;
    case RAFT_IO_APPEND_ENTRIES_RESULT:
        a = m->append_entries_result.term;
        break;
    case RAFT_IO_REQUEST_VOTE:
        a = m->request_vote.term;
        b = m->request_vote.last_log_term;
        break;
    case RAFT_IO_REQUEST_VOTE_RESULT:
        a = m->request_vote_result.term;
        break;
    case RAFT_IO_INSTALL_SNAPSHOT:
        a = m->install_snapshot.term;
        b = m->install_snapshot.last_term;
        break;
    case RAFT_IO_TIMEOUT_NOW:
        a = m->timeout_now.term;
        b = m->timeout_now.last_log_term;
        break;
    default:
        break;
    }
    return a > b ? a : b;
}

/* The term of a message only a leader sends, or 0 for any other kind. */
static uint64_t leader_term(const struct raft_message *m)
{
    switch (m->type) {
    case RAFT_IO_APPEND_ENTRIES:
        return m->append_entries.term;
    case RAFT_IO_INSTALL_SNAPSHOT:
        return m->install_snapshot.term;
    default:
        return 0;
    }
}

int rl_guard_check_sender(const struct rl_guard_view *v, uint64_t from, const char **why)
{
    if (from == 0 || from == v->self) {
        *why = "the sender claims no id or this node's own";
        return RLOG_EPROTO;
    }
    if (!v->is_member || !v->is_member(v->arg, from)) {
        *why = "the sender is not a member";
        return RLOG_EPROTO;
    }
    return 0;
}

static int check_term(uint64_t term, const char **why)
{
    if (term > RL_GUARD_MAX_TERM) {
        *why = "a term above 2^63";
        return RLOG_EPROTO;
    }
    return 0;
}

int rl_guard_check_commit(const struct rl_guard_view *v, uint64_t from,
                          const struct rl_wire_commit *c, const char **why)
{
    int rv = rl_guard_check_sender(v, from, why);
    if (rv == 0)
        rv = check_term(c->term > c->entry_term ? c->term : c->entry_term, why);
    if (rv != 0)
        return rv;
    /* A commit notice shows entries: only the leader this node knows, at
     * this node's term, may send one (a lost notice costs latency only). */
    if (c->term != v->term || v->leader != from) {
        *why = "a commit notice from a node not known to lead this term";
        return RLOG_EPROTO;
    }
    return 0;
}

int rl_guard_check(const struct rl_guard_view *v, const struct raft_message *msg,
                   const char **why)
{
    uint64_t from = msg->server_id;
    int rv = rl_guard_check_sender(v, from, why);
    if (rv == 0)
        rv = check_term(max_term(msg), why);
    if (rv != 0)
        return rv;
    uint64_t t = leader_term(msg);
    if (t != 0 && t == v->term && v->leader == v->self) {
        *why = "a leader's message at the term this node leads";
        return RLOG_EPROTO;
    }
    return 0;
}
