/*
 * The transport behind raft_io: peers, sending, inbound connections.
 *
 * Connections come from lib/net (liblog's own transport: TCP with mutual
 * TLS or plain, the hello that names the peer; the simulator's streams in
 * tests), already authenticated; this file only moves frames over them.
 * Messages: one outbound connection per peer. Bytes queued for one peer
 * (written or waiting for the connect) are capped by max_send_queue: a
 * send beyond it fails and the connection is dropped (a peer that does
 * not read must not grow this node's memory). libraft 0.15 puts every
 * entry it holds into one AppendEntries; a message that would exceed the
 * peer's frame cap carries only the entries that fit (the follower answers
 * for those, and the leader sends the rest next).
 * Inbound connections are read as a stream of frames; the first bad frame
 * closes the connection with a logged reason, as do a frame not finished
 * within frame_timeout_ms and idle_timeout_ms without any frame.
 */
#include "raftio/internal.h"
#include "raftio/guard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_RETRY_MS 200
#define READ_CHUNK (64 * 1024)
/* AppendEntries body: 5 fixed words, then 3 words per entry (codec.c). */
#define AE_FIXED_BYTES 40u
#define AE_ENTRY_BYTES 24u

/* ---- sending --------------------------------------------------------------------- */

static void send_finish(struct send_req *s, int status)
{
    rl_wire_out_free(&s->out);
    free(s->bufs);
    if (s->peer && s->waiting)
        s->peer->wait_bytes -= s->bytes;
    struct raft_io_send *req = s->req;
    raft_io_send_cb cb = s->cb;
    void (*done)(void *, int) = s->done;
    void *done_arg = s->done_arg;
    bool never_written = s->conn == NULL; /* the connect failed, or the queue was full */
    free(s);
    if (done)
        done(done_arg, status != 0 && never_written ? RLOG_EAGAIN : status);
    else if (cb)
        cb(req, status);
}

void rl_io__peer_drop(struct peer *p)
{
    if (p->conn) {
        rl_conn_close(p->conn);
        p->conn = NULL;
    }
}

static void write_cb(void *arg, int status)
{
    struct send_req *s = arg;
    if (status != 0 && status != UV_ECANCELED && s->peer && s->peer->conn == s->conn) {
        rl_io__log(s->io, 1, "send to %" PRIu64 " (%s) failed: %s; dropping connection",
                   s->peer->id, s->peer->address, uv_strerror(status));
        rl_io__peer_drop(s->peer);
    }
    if (status == 0 && s->peer && s->peer->traffic)
        s->peer->traffic->sent += s->bytes;
    send_finish(s, status == 0 ? 0 : RAFT_NOCONNECTION);
}

static void peer_write(struct peer *p, struct send_req *s)
{
    struct io *io = p->io;
    if (rl_conn_queued(p->conn) + s->bytes > io->max_send_queue) {
        io->send_queue_overflows++;
        rl_io__log(io, 2, "%zu bytes already queued for node %" PRIu64 " (%s), cap %" PRIu64
                   ": dropping the connection (%lu times)", rl_conn_queued(p->conn), p->id,
                   p->address, io->max_send_queue, io->send_queue_overflows);
        rl_io__peer_drop(p);
        send_finish(s, RAFT_NOCONNECTION);
        return;
    }
    s->conn = p->conn;
    int rv = rl_conn_write(p->conn, s->bufs, s->out.n_iov, write_cb, s);
    if (rv != 0) {
        rl_io__peer_drop(p);
        send_finish(s, RAFT_NOCONNECTION);
    }
}

/* The peer has nothing to say on our outbound connection: bytes there are
 * a protocol error, an end (its idle timeout, a restart) means reconnect. */
static size_t out_data(void *arg, const unsigned char *b, size_t n)
{
    struct peer *p = arg;
    (void)b;
    rl_io__log(p->io, 1, "node %" PRIu64 " (%s) sent bytes on our connection to it; dropping it",
               p->id, p->address);
    rl_io__peer_drop(p);
    return n;
}

static void out_end(void *arg, int why, const char *msg)
{
    struct peer *p = arg;
    (void)why;
    rl_io__log(p->io, 0, "connection to node %" PRIu64 " (%s) ended: %s", p->id, p->address, msg);
    p->conn = NULL;
}

static void connect_cb(void *arg, struct rl_conn *conn, int status)
{
    struct peer *p = arg;
    struct io *io = p->io;
    p->connecting = false;
    if (status == 0 && io->closing) {
        rl_conn_close(conn);
        status = UV_ECANCELED;
    }
    if (status == 0) {
        p->conn = conn;
        struct rl_conn_cbs cbs = {.data = out_data, .end = out_end, .arg = p};
        rl_conn_set_cbs(conn, &cbs);
    } else {
        p->failed_at = uv_now(io->loop);
    }
    while (p->wait_head) {
        struct send_req *s = p->wait_head;
        p->wait_head = s->next;
        p->wait_bytes -= s->bytes;
        s->waiting = false;
        if (p->conn)
            peer_write(p, s);
        else
            send_finish(s, RAFT_NOCONNECTION);
    }
    p->wait_tail = NULL;
    /* During close, the transport calls every pending connect back (with
     * an error) before its own close callback, so io is still alive here
     * and connects need no share of close_pending. */
}

static struct peer *peer_get(struct io *io, uint64_t id, const char *address)
{
    for (struct peer *p = io->peers; p; p = p->next)
        if (p->id == id) {
            if (strcmp(p->address, address) != 0) {
                snprintf(p->address, sizeof p->address, "%s", address);
                rl_io__peer_drop(p);
            }
            return p;
        }
    struct peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->io = io;
    p->id = id;
    p->traffic = rl_traffic_of(&io->traffic, id);
    snprintf(p->address, sizeof p->address, "%s", address);
    p->next = io->peers;
    io->peers = p;
    return p;
}

static int send_encoded(struct io *io, uint64_t to, const char *address, struct send_req *s,
                        struct raft_io_send *req, raft_io_send_cb cb, void (*done)(void *, int),
                        void *done_arg);

/* Encodes msg and sends it to msg->server_id; exactly one of cb (raft's
 * messages) or done (ours) is called when the write completes, unless this
 * returns an error. */
int rl_io__send_msg(struct io *io, const struct raft_message *msg, struct raft_io_send *req,
                    raft_io_send_cb cb, void (*done)(void *, int), void *done_arg)
{
    if (io->closing)
        return RAFT_CANCELED;
    struct send_req *s = calloc(1, sizeof *s);
    if (!s)
        return RAFT_NOMEM;
    int rv = rl_wire_encode(msg, io->id, &s->out);
    if (rv != 0) {
        free(s);
        return rv == RLOG_ENOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
    }
    return send_encoded(io, msg->server_id, msg->server_address, s, req, cb, done, done_arg);
}

int rl_io__send_own(struct io *io, uint64_t to, const char *address, struct rl_wire_out *out,
                    void (*done)(void *, int), void *done_arg)
{
    struct send_req *s = io->closing ? NULL : calloc(1, sizeof *s);
    if (!s) {
        rl_wire_out_free(out);
        return io->closing ? RAFT_CANCELED : RAFT_NOMEM;
    }
    s->out = *out;
    return send_encoded(io, to, address, s, NULL, NULL, done, done_arg);
}

/* Sends the frame encoded in s->out (s is given away). */
static int send_encoded(struct io *io, uint64_t to, const char *address, struct send_req *s,
                        struct raft_io_send *req, raft_io_send_cb cb, void (*done)(void *, int),
                        void *done_arg)
{
    int rv;
    struct peer *p = peer_get(io, to, address);
    if (!p) {
        rl_wire_out_free(&s->out);
        free(s);
        return RAFT_NOMEM;
    }
    s->io = io;
    s->req = req;
    s->cb = cb;
    s->done = done;
    s->done_arg = done_arg;
    s->peer = p;
    s->bufs = calloc(s->out.n_iov, sizeof *s->bufs);
    if (!s->bufs) {
        rl_wire_out_free(&s->out);
        free(s);
        return RAFT_NOMEM;
    }
    for (unsigned i = 0; i < s->out.n_iov; i++) {
        s->bufs[i] = uv_buf_init((char *)s->out.iov[i].base, (unsigned)s->out.iov[i].len);
        s->bytes += s->out.iov[i].len;
    }
    if (p->conn) {
        peer_write(p, s);
        return 0;
    }
    if (p->wait_bytes + s->bytes > io->max_send_queue) {
        io->send_queue_overflows++;
        rl_io__log(io, 1, "%" PRIu64 " bytes already wait for the connect to node %" PRIu64
                   " (%s): send refused", p->wait_bytes, p->id, p->address);
        rl_wire_out_free(&s->out);
        free(s->bufs);
        free(s);
        return RAFT_NOCONNECTION;
    }
    if (!p->connecting) {
        if (p->failed_at && uv_now(io->loop) - p->failed_at < CONNECT_RETRY_MS) {
            /* Recently unreachable: fail fast instead of queueing heartbeats. */
            rl_wire_out_free(&s->out);
            free(s->bufs);
            free(s);
            return RAFT_NOCONNECTION;
        }
        rv = rl_net_connect(io->net, p->id, p->address, connect_cb, p);
        if (rv != 0) {
            p->failed_at = uv_now(io->loop);
            rl_wire_out_free(&s->out);
            free(s->bufs);
            free(s);
            return RAFT_NOCONNECTION;
        }
        p->connecting = true;
    }
    if (p->wait_tail)
        p->wait_tail->next = s;
    else
        p->wait_head = s;
    p->wait_tail = s;
    s->waiting = true;
    p->wait_bytes += s->bytes;
    return 0;
}

void rl_io__flush_failed_sends(struct io *io)
{
    while (io->failed_head) {
        struct failed_send *f = io->failed_head;
        io->failed_head = f->next;
        if (!io->failed_head)
            io->failed_tail = NULL;
        struct raft_io_send *req = f->req;
        raft_io_send_cb cb = f->cb;
        int status = f->status;
        free(f);
        if (cb)
            cb(req, status);
    }
}

void rl_io__deferred_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    rl_io__flush_failed_sends(io);
    rl_io__report_failed(io); /* refused appends; waits while appends are in flight */
}

/* The number of msg's entries (an AppendEntries) whose frame fits the
 * frame cap: at least one, since a single entry (<= batch_max_bytes) fits
 * by construction of the cap. */
static unsigned entries_that_fit(const struct io *io, const struct raft_message *msg)
{
    const struct raft_append_entries *ae = &msg->append_entries;
    uint64_t body = AE_FIXED_BYTES;
    for (unsigned i = 0; i < ae->n_entries; i++) {
        body += AE_ENTRY_BYTES + ((ae->entries[i].buf.len + 7) & ~(uint64_t)7);
        if (body > io->max_body)
            return i > 0 ? i : 1;
    }
    return ae->n_entries;
}

int rl_io__send(struct raft_io *rio, struct raft_io_send *req, const struct raft_message *msg,
                raft_io_send_cb cb)
{
    struct io *io = rio->impl;
    struct raft_message capped, fitted;
    if (msg->type == RAFT_IO_APPEND_ENTRIES) {
        unsigned n = entries_that_fit(io, msg);
        if (n < msg->append_entries.n_entries) {
            fitted = *msg;
            fitted.append_entries.n_entries = n;
            msg = &fitted;
        }
    }
    if (io->in_append_entries && msg->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
        msg->append_entries_result.rejected == 0 &&
        msg->append_entries_result.last_log_index > io->append_entries_match) {
        capped = *msg;
        capped.append_entries_result.last_log_index = io->append_entries_match;
        msg = &capped;
    }
    /* A failed node says nothing more: its term or vote may be ahead of
     * its disk (load.c, failed_metadata). */
    int rv = io->fatal ? RAFT_IOERR : rl_io__send_msg(io, msg, req, cb, NULL, NULL);
    /* libraft 0.15 frees an AppendEntries' entries before sending its
     * answer, and frees them again if that send fails at once
     * (recv_append_entries.c, then recv.c): a double free (found by the
     * simulator, random seed 36: an answer to a peer that had just been
     * unreachable). So a send never fails at once after start: the failure
     * is reported from the loop. */
    if (rv != 0 && io->tick_cb && !io->closing) {
        struct failed_send *f = malloc(sizeof *f);
        if (!f)
            return rv;
        *f = (struct failed_send){.req = req, .cb = cb, .status = rv};
        if (io->failed_tail)
            io->failed_tail->next = f;
        else
            io->failed_head = f;
        io->failed_tail = f;
        uv_timer_start(&io->send_fail_timer, rl_io__deferred_cb, 0, 0);
        return 0;
    }
    return rv;
}

static void commit_sent(void *arg, int status)
{
    (void)arg;
    (void)status;
}

int rl_io_send_fwd(struct raft_io *rio, uint64_t to, const char *address,
                   const struct rl_wire_fwd *m, void (*done)(void *arg, int status), void *arg)
{
    struct io *io = rio->impl;
    if (!io || io->closing || io->fatal)
        return RLOG_ECLOSED;
    struct rl_wire_out out;
    int rv = rl_wire_encode_fwd(m, io->id, &out);
    if (rv != 0)
        return rv;
    rv = rl_io__send_own(io, to, address, &out, done, arg);
    return rv == 0 ? 0 : rv == RAFT_NOMEM ? RLOG_ENOMEM : RLOG_EAGAIN;
}

void rl_io_send_commit(struct raft_io *rio, const struct raft_configuration *conf,
                       const struct rl_wire_commit *c)
{
    struct io *io = rio->impl;
    if (!io || io->closing || io->fatal)
        return;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == io->id)
            continue;
        /* Only over a connection that is up: a notice is not worth a connect. */
        struct peer *p = NULL;
        for (struct peer *q = io->peers; q; q = q->next)
            if (q->id == conf->servers[i].id)
                p = q;
        struct rl_wire_out out;
        if (p && p->conn && rl_wire_encode_commit(c, io->id, &out) == 0)
            rl_io__send_own(io, p->id, conf->servers[i].address, &out, commit_sent, NULL);
    }
}

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
    msg.server_address = c->address;
    const char *why = refusal(io, &msg);
    if (why) {
        dropped(c, (int)msg.type, why);
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
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
            if (!c->closing)
                rl_conn_deadline(c->conn, c->io->idle_timeout_ms);
        }
    }
    return nread;
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
        snprintf(c->address, sizeof c->address, "unknown-server-%" PRIu64, id);
    c->next = io->ins;
    if (io->ins)
        io->ins->prev = c;
    io->ins = c;
    struct rl_conn_cbs cbs = {.data = in_data, .end = in_end, .arg = c};
    rl_conn_set_cbs(conn, &cbs);
    rl_conn_deadline(conn, io->idle_timeout_ms);
}

void rl_io_peer_stats(struct raft_io *rio, uint64_t id, struct rl_io_peer_stats *st)
{
    struct io *io = rio->impl;
    *st = (struct rl_io_peer_stats){0};
    if (!io)
        return;
    const struct rl_traffic *t = rl_traffic_find(&io->traffic, id);
    if (t) {
        st->sent_bytes = t->sent;
        st->received_bytes = t->received;
    }
    for (const struct peer *p = io->peers; p; p = p->next)
        if (p->id == id)
            st->connected = p->conn != NULL;
}
