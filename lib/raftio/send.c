/*
 * Sending, behind raft_io: peers and their outbound connections, frames
 * out (libraft's messages and liblog's own), and the sends that failed at
 * once, reported from the loop.
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
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_RETRY_MS 200
/* AppendEntries body: 5 fixed words, then 3 words per entry (wire/raft_msg.c). */
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
    rl_io__wake(p->io, "a connection to a peer ended", p->id, true);
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

void rl_io__note_result(struct io *io, uint64_t from, const struct raft_append_entries_result *r)
{
    struct peer *p = io->peers;
    while (p && p->id != from)
        p = p->next;
    if (!p)
        return; /* nothing was sent to it: libraft is not pipelining to it */
    if (p->acked_term != r->term) {
        p->acked_term = r->term;
        p->acked_index = 0;
    }
    if (r->rejected == 0) {
        if (r->last_log_index > p->acked_index)
            p->acked_index = r->last_log_index;
        return;
    }
    if (r->rejected > p->acked_index)
        return;
    rl_io__log(io, 2, "member %" PRIu64 " no longer holds entries it acknowledged (it rejects"
               " index %" PRIu64 ", holding up to %" PRIu64 "): sending them again",
               from, (uint64_t)r->rejected, (uint64_t)r->last_log_index);
    p->acked_index = r->last_log_index;
    p->reprobe = true;
}

/* Whether this AppendEntries must fail unsent (rl_io__note_result). */
static bool must_reprobe(struct io *io, const struct raft_message *msg)
{
    if (msg->type != RAFT_IO_APPEND_ENTRIES)
        return false;
    for (struct peer *p = io->peers; p; p = p->next)
        if (p->id == msg->server_id && p->reprobe) {
            p->reprobe = false;
            return true;
        }
    return false;
}

int rl_io__send(struct raft_io *rio, struct raft_io_send *req, const struct raft_message *msg,
                raft_io_send_cb cb)
{
    struct io *io = rio->impl;
    struct raft_message capped, fitted;
    rl_io__wake(io, "libraft sends", 0, false);
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
    int rv = io->fatal                ? RAFT_IOERR
             : must_reprobe(io, msg) ? RAFT_NOCONNECTION
                                     : rl_io__send_msg(io, msg, req, cb, NULL, NULL);
    /* libraft 0.15 frees an AppendEntries' entries before sending its
     * answer, and frees them again if that send fails at once
     * (libraft's recv_append_entries.c, then its recv.c): a double free (found by the
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
        uv_timer_start(&io->send_fail_timer, io->deferred_cb, 0, 0);
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
                       const struct rl_wire_commit *c, enum rl_notice_to to)
{
    struct io *io = rio->impl;
    if (!io || io->closing || io->fatal)
        return;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == io->id)
            continue;
        bool voter = conf->servers[i].role == RAFT_VOTER;
        if ((to == RL_NOTICE_VOTERS && !voter) || (to == RL_NOTICE_NON_VOTERS && voter))
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
