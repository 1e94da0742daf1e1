/*
 * Receiving, behind raft_io: inbound connections (handed over by lib/net,
 * already authenticated) read as a stream of frames, each decoded, checked
 * (guard.c, hold.c's fences) and handed to libraft, to the catch-up
 * (fetch.c) or to a rewind (rewind.c). The first bad frame closes the
 * connection with a logged reason, as do a frame not finished within
 * frame_timeout_ms and idle_timeout_ms without any frame.
 */
#include "raftio/internal.h"
#include "raftio/guard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)

/* ---- receiving ------------------------------------------------------------------- */

/* Frees the connections closed since the last call: never while one of
 * them may still be on the stack (a frame handler closing its own). */
void rl_io__free_closed_ins(struct io *io)
{
    while (io->dead_ins) {
        struct in_conn *c = io->dead_ins;
        io->dead_ins = c->next;
        raft_free(c->body);
        free(c);
    }
}

/* Unlinks c and closes its connection (unless it ended on its own). */
static void in_drop(struct in_conn *c, const char *why, bool conn_ended)
{
    if (c->closing)
        return;
    c->closing = true;
    struct io *io = c->io;
    if (why)
        rl_io__log(io, 2, "closing connection from %" PRIu64 " (%s): %s", c->id, c->address, why);
    if (c->prev)
        c->prev->next = c->next;
    else
        io->ins = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (!conn_ended)
        rl_conn_close(c->conn);
    rl_net_forget(io->net, c->conn);
    c->conn = NULL;
    c->prev = NULL;
    c->next = io->dead_ins;
    io->dead_ins = c;
}

void rl_io__in_close(struct in_conn *c, const char *why)
{
    in_drop(c, why, false);
}

static void in_end(void *arg, int why, const char *msg)
{
    struct in_conn *c = arg;
    struct io *io = c->io;
    rl_io__wake(io, "a connection from a peer ended", c->id, true);
    char line[160];
    if (why == RL_CONN_TIMEOUT) {
        io->timed_out_connections++;
        bool mid = c->hdr_got > 0;
        snprintf(line, sizeof line, "%s %u ms (%lu connections timed out)",
                 mid ? "a frame not finished within" : "no frame for", mid ? io->frame_timeout_ms
                                                                           : io->idle_timeout_ms,
                 io->timed_out_connections);
        in_drop(c, line, true);
        return;
    }
    if (why == RL_CONN_EOF && (c->hdr_got > 0 || c->body)) {
        if (c->hdr_got < RL_WIRE_HDR)
            snprintf(line, sizeof line, "closed inside a frame header (%zu of %u bytes)",
                     c->hdr_got, RL_WIRE_HDR);
        else
            snprintf(line, sizeof line, "closed inside a frame body (%zu of %u bytes)",
                     c->body_got, (unsigned)c->h.length);
        in_drop(c, line, true);
        return;
    }
    in_drop(c, why == RL_CONN_EOF ? NULL : msg, true);
}

/* The address given to libraft for a sender no configuration names. */
#define UNKNOWN_PREFIX "unknown-server-"

/* One complete frame: decode and hand to libraft (or hold it back). */
static bool is_member(void *arg, uint64_t id)
{
    struct io *io = arg;
    char addr[256];
    return io->hooks.peer_address && io->hooks.peer_address(io->hooks.arg, id, addr, sizeof addr) == 0;
}

/* What the guard (guard.c) needs to know of this node. */
static struct rl_guard_view guard_view(struct io *io)
{
    return (struct rl_guard_view){.self = io->id, .term = rl_store_term(io->store),
                                  .leader = io->hooks.leader_id ? io->hooks.leader_id(io->hooks.arg)
                                                                : 0,
                                  .is_member = is_member, .arg = io};
}

/* Why a raft message must not go further, or NULL (guard.c has the rules). */
static const char *refusal(struct io *io, const struct raft_message *msg)
{
    struct rl_guard_view v = guard_view(io);
    const char *why = NULL;
    if (rl_guard_check(&v, msg, &why) != 0)
        return why;
    return rl_io__contradicts_committed(io, msg);
}

/* Why a frame of liblog's own from c must not go further, or NULL. */
static const char *own_refusal(struct io *io, const struct in_conn *c,
                               const struct rl_wire_commit *commit)
{
    struct rl_guard_view v = guard_view(io);
    const char *why = NULL;
    if (commit ? rl_guard_check_commit(&v, c->id, commit, &why) != 0
               : rl_guard_check_sender(&v, c->id, &why) != 0)
        return why;
    if (c->h.type == RL_WIRE_FETCH_RESPONSE && c->id != io->snap_source_id &&
        c->id != io->rewind.source)
        return "a fetch answer nobody asked this node for";
    return NULL;
}

/* Counts and logs (once per connection at warning level) a message
 * dropped for `why`. */
static void dropped(struct in_conn *c, int type, const char *why)
{
    struct io *io = c->io;
    io->dropped_messages++;
    rl_io__log(io, c->warned ? 0 : 2, "dropping a type %d message from %" PRIu64 " (%s): %s "
               "(%lu dropped)", type, c->id, c->address, why, io->dropped_messages);
    c->warned = true;
}

/* A frame that failed to decode, or whose sender is not the connection's,
 * closes the connection: -1. */
static int bad_frame(struct in_conn *c, int rv, const char *err)
{
    rl_io__in_close(c, rv == RLOG_EPROTO ? err : "out of memory");
    return -1;
}

static const char wrong_sender[] = "frame sender does not match the connection's server id";

static int in_commit(struct in_conn *c, void *body)
{
    struct io *io = c->io;
    char err[256];
    struct rl_wire_commit m;
    int rv = rl_wire_decode_commit(&c->h, body, &m, err, sizeof err);
    raft_free(body);
    if (rv != 0)
        return bad_frame(c, rv, err);
    if (c->h.sender != c->id)
        return bad_frame(c, RLOG_EPROTO, wrong_sender);
    const char *why = own_refusal(io, c, &m);
    if (why)
        dropped(c, RL_WIRE_COMMIT, why);
    else if (io->hooks.on_commit && !io->closing && !io->fatal)
        io->hooks.on_commit(io->hooks.arg, m.index, m.entry_term);
    return 0;
}

static int in_fetch_req(struct in_conn *c, void *body)
{
    struct io *io = c->io;
    char err[256];
    struct rl_wire_fetch_req m;
    int rv = rl_wire_decode_fetch_req(&c->h, body, &m, err, sizeof err);
    raft_free(body);
    if (rv != 0)
        return bad_frame(c, rv, err);
    if (c->h.sender != c->id)
        return bad_frame(c, RLOG_EPROTO, wrong_sender);
    const char *why = own_refusal(io, c, NULL);
    if (why)
        dropped(c, RL_WIRE_FETCH_REQUEST, why);
    else
        rl_io__fetch_serve(io, c->id, c->address, &m);
    return 0;
}

static int in_fetch_resp(struct in_conn *c, void *body)
{
    struct io *io = c->io;
    char err[256];
    struct rl_wire_fetch_resp m;
    bool owned = false;
    int rv = rl_wire_decode_fetch_resp(&c->h, body, &m, &owned, err, sizeof err);
    if (rv != 0) {
        raft_free(body);
        return bad_frame(c, rv, err);
    }
    const char *why = c->h.sender != c->id ? wrong_sender : own_refusal(io, c, NULL);
    struct raft_message ae;
    if (!why && rl_io__rewind_answer(io, c->id, c->address, &m, &ae)) {
        rl_io__deliver(io, &ae, body, owned);
        return 0;
    }
    if (why == wrong_sender)
        rv = bad_frame(c, RLOG_EPROTO, wrong_sender);
    else if (why)
        dropped(c, RL_WIRE_FETCH_RESPONSE, why);
    else
        rl_io__fetch_answer(io, c->id, &m);
    rl_wire_fetch_resp_release(&m, body, owned);
    if (!owned)
        raft_free(body);
    return rv;
}

/* A forwarding frame (lib/node/forward.c): only from a member; one that
 * breaks the format or the node's limits closes the connection. */
static int in_fwd_frame(struct in_conn *c, void *body)
{
    struct io *io = c->io;
    char err[256];
    struct rl_wire_fwd m;
    int rv = rl_wire_decode_fwd(&c->h, body, &m, err, sizeof err);
    raft_free(body);
    if (rv != 0)
        return bad_frame(c, rv, err);
    if (!is_member(io, c->id)) {
        dropped(c, (int)m.type, "not a member of the configuration");
        rl_wire_fwd_free(&m);
        return 0;
    }
    rv = io->hooks.on_fwd && !io->closing && !io->fatal ? io->hooks.on_fwd(io->hooks.arg, c->id, &m)
                                                        : 0;
    rl_wire_fwd_free(&m);
    if (rv != 0) {
        rl_io__in_close(c, m.msg[0] ? m.msg : "a forwarding frame beyond this node's limits");
        return -1;
    }
    return 0;
}

static int in_frame(struct in_conn *c)
{
    struct io *io = c->io;
    char err[256];
    struct raft_message msg;
    bool owned = false;
    void *body = c->body;
    c->body = NULL;
    if (rl_wire_is_fwd(c->h.type))
        return in_fwd_frame(c, body);
    if (c->h.type == RL_WIRE_COMMIT)
        return in_commit(c, body);
    if (c->h.type == RL_WIRE_FETCH_REQUEST)
        return in_fetch_req(c, body);
    if (c->h.type == RL_WIRE_FETCH_RESPONSE)
        return in_fetch_resp(c, body);
    int rv = rl_wire_decode(&c->h, body, &msg, &owned, err, sizeof err);
    if (rv != 0) {
        raft_free(body);
        return bad_frame(c, rv, err);
    }
    if (msg.server_id != c->id) {
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return bad_frame(c, RLOG_EPROTO, wrong_sender);
    }
    /* A sender unknown at accept may have become known since (a newer
     * configuration): replies need its address. */
    if (strncmp(c->address, UNKNOWN_PREFIX, sizeof UNKNOWN_PREFIX - 1) == 0 &&
        io->hooks.peer_address)
        io->hooks.peer_address(io->hooks.arg, c->id, c->address, sizeof c->address);
    msg.server_address = c->address;
    const char *why = refusal(io, &msg);
    if (why) {
        dropped(c, (int)msg.type, why);
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
    if (msg.type == RAFT_IO_APPEND_ENTRIES_RESULT)
        rl_io__note_result(io, c->id, &msg.append_entries_result);
    if (msg.type == RAFT_IO_INSTALL_SNAPSHOT && rl_io__rewind_start(io, &msg, c->address)) {
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
    if (msg.type == RAFT_IO_INSTALL_SNAPSHOT) {
        io->snap_source_id = c->id;
        snprintf(io->snap_source_addr, sizeof io->snap_source_addr, "%s", c->address);
    }
    if (rl_io__below_window(io, &msg, body, owned)) {
        rl_io__deliver(io, &msg, NULL, false);
        return 0;
    }
    if ((msg.type == RAFT_IO_REQUEST_VOTE || msg.type == RAFT_IO_TIMEOUT_NOW) &&
        (rl_io__must_hold(io, msg.type) || io->held_head)) {
        rl_io__hold(io, &msg, body, owned, c->address);
        return 0;
    }
    rl_io__deliver(io, &msg, body, owned);
    return 0;
}

static size_t in_data(void *arg, const unsigned char *p, size_t nread)
{
    struct in_conn *c = arg;
    size_t left = nread;
    if (c->traffic)
        c->traffic->received += nread;
    while (left > 0 && !c->closing) {
        if (c->hdr_got < RL_WIRE_HDR) {
            if (c->hdr_got == 0) /* a frame starts: it must finish in time */
                rl_conn_deadline(c->conn, c->io->frame_timeout_ms);
            size_t n = RL_WIRE_HDR - c->hdr_got < left ? RL_WIRE_HDR - c->hdr_got : left;
            memcpy(c->hdr + c->hdr_got, p, n);
            c->hdr_got += n;
            p += n;
            left -= n;
            if (c->hdr_got < RL_WIRE_HDR)
                break;
            char err[256];
            if (rl_wire_decode_hdr(c->hdr, c->io->max_body, &c->h, err, sizeof err) != 0) {
                rl_io__in_close(c, err);
                return nread;
            }
            /* Memory follows the bytes that actually arrive, not the
             * length a peer claims. */
            c->body_cap = c->h.length < READ_CHUNK ? (c->h.length ? c->h.length : 8) : READ_CHUNK;
            c->body = raft_malloc(c->body_cap);
            c->body_got = 0;
            if (!c->body) {
                rl_io__in_close(c, "out of memory for a frame body");
                return nread;
            }
        }
        size_t want = c->h.length - c->body_got;
        size_t n = want < left ? want : left;
        if (c->body_got + n > c->body_cap) {
            size_t cap = c->body_cap * 2;
            while (cap < c->body_got + n)
                cap *= 2;
            if (cap > c->h.length)
                cap = c->h.length;
            unsigned char *b = raft_realloc(c->body, cap);
            if (!b) {
                rl_io__in_close(c, "out of memory for a frame body");
                return nread;
            }
            c->body = b;
            c->body_cap = cap;
        }
        memcpy(c->body + c->body_got, p, n);
        c->body_got += n;
        p += n;
        left -= n;
        if (c->body_got == c->h.length) {
            c->hdr_got = 0;
            if (in_frame(c) != 0)
                return nread;
            if (!c->closing) /* none while quiet (quiet.c) */
                rl_conn_deadline(c->conn, c->io->frozen ? 0 : c->io->idle_timeout_ms);
        }
    }
    return nread;
}

/* The host's connection from this peer fell silent (lib/host/mux.c): it
 * may be gone, with this log quiet and waiting on it. */
static void in_stale(void *arg)
{
    struct in_conn *c = arg;
    rl_io__wake(c->io, "the peer's host fell silent", c->id, true);
}

void rl_io__accept(void *arg, uint64_t id, struct rl_conn *conn)
{
    struct io *io = arg;
    rl_io__free_closed_ins(io);
    struct in_conn *c = calloc(1, sizeof *c);
    if (!c || io->closing) {
        free(c);
        rl_conn_close(conn);
        rl_net_forget(io->net, conn);
        return;
    }
    c->io = io;
    c->conn = conn;
    c->id = id;
    c->traffic = rl_traffic_of(&io->traffic, id);
    if (!io->hooks.peer_address ||
        io->hooks.peer_address(io->hooks.arg, id, c->address, sizeof c->address) != 0)
        snprintf(c->address, sizeof c->address, UNKNOWN_PREFIX "%" PRIu64, id);
    c->next = io->ins;
    if (io->ins)
        io->ins->prev = c;
    io->ins = c;
    struct rl_conn_cbs cbs = {.data = in_data, .end = in_end, .stale = in_stale, .arg = c};
    rl_conn_set_cbs(conn, &cbs);
    rl_conn_deadline(conn, io->idle_timeout_ms);
}

