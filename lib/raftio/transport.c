/*
 * The transport behind raft_io: peers, sending, inbound connections.
 *
 * Messages: one outbound connection per peer, made through the raft_uv_tcp
 * transport (which does the handshake) and set TCP_NODELAY (libraft's stock
 * backend does not, and pipelined traffic stalls on Nagle + delayed ACK).
 * Inbound connections are read as a stream of frames; the first bad frame
 * closes the connection with a logged reason.
 */
#include "raftio/internal.h"
#include "raftio/guard.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_RETRY_MS 200
#define READ_CHUNK (64 * 1024)

/* ---- sending --------------------------------------------------------------------- */

static void send_finish(struct send_req *s, int status)
{
    rl_wire_out_free(&s->out);
    free(s->bufs);
    struct raft_io_send *req = s->req;
    raft_io_send_cb cb = s->cb;
    void (*done)(void *, int) = s->done;
    void *done_arg = s->done_arg;
    free(s);
    if (done)
        done(done_arg, status);
    else if (cb)
        cb(req, status);
}

static void peer_stream_closed(uv_handle_t *h)
{
    free(h);
}

void rl_io__peer_drop_stream(struct peer *p)
{
    if (p->stream) {
        uv_close((uv_handle_t *)p->stream, peer_stream_closed);
        p->stream = NULL;
    }
}

static void write_cb(uv_write_t *w, int status)
{
    struct send_req *s = w->data;
    if (status != 0 && s->peer && s->peer->stream == w->handle) {
        rl_io__log(s->io, 1, "send to %" PRIu64 " (%s) failed: %s; dropping connection",
                   s->peer->id, s->peer->address, uv_strerror(status));
        rl_io__peer_drop_stream(s->peer);
    }
    send_finish(s, status == 0 ? 0 : RAFT_NOCONNECTION);
}

static void peer_write(struct peer *p, struct send_req *s)
{
    s->write.data = s;
    int rv = uv_write(&s->write, p->stream, s->bufs, s->out.n_iov, write_cb);
    if (rv != 0) {
        rl_io__peer_drop_stream(p);
        send_finish(s, RAFT_NOCONNECTION);
    }
}

static void connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct peer *p = req->data;
    struct io *io = p->io;
    p->connecting = false;
    if (status == 0 && io->closing) {
        uv_close((uv_handle_t *)stream, peer_stream_closed);
        status = RAFT_CANCELED;
    }
    if (status == 0) {
        p->stream = stream;
        if (stream->type == UV_TCP)
            uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    } else {
        p->failed_at = uv_now(io->loop);
    }
    while (p->wait_head) {
        struct send_req *s = p->wait_head;
        p->wait_head = s->next;
        if (p->stream)
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
                rl_io__peer_drop_stream(p);
            }
            return p;
        }
    struct peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->io = io;
    p->id = id;
    snprintf(p->address, sizeof p->address, "%s", address);
    p->next = io->peers;
    io->peers = p;
    return p;
}

/* Encodes msg and sends it to msg->server_id; exactly one of cb (raft's
 * messages) or done (ours) is called when the write completes, unless this
 * returns an error. */
int rl_io__send_msg(struct io *io, const struct raft_message *msg, struct raft_io_send *req,
                    raft_io_send_cb cb, void (*done)(void *, int), void *done_arg)
{
    if (io->closing)
        return RAFT_CANCELED;
    struct peer *p = peer_get(io, msg->server_id, msg->server_address);
    struct send_req *s = calloc(1, sizeof *s);
    if (!p || !s) {
        free(s);
        return RAFT_NOMEM;
    }
    s->io = io;
    s->req = req;
    s->cb = cb;
    s->done = done;
    s->done_arg = done_arg;
    s->peer = p;
    int rv = rl_wire_encode(msg, io->id, &s->out);
    if (rv != 0) {
        free(s);
        return rv == RLOG_ENOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
    }
    s->bufs = calloc(s->out.n_iov, sizeof *s->bufs);
    if (!s->bufs) {
        rl_wire_out_free(&s->out);
        free(s);
        return RAFT_NOMEM;
    }
    for (unsigned i = 0; i < s->out.n_iov; i++)
        s->bufs[i] = uv_buf_init((char *)s->out.iov[i].base, (unsigned)s->out.iov[i].len);
    if (p->stream) {
        peer_write(p, s);
        return 0;
    }
    if (!p->connecting) {
        if (p->failed_at && uv_now(io->loop) - p->failed_at < CONNECT_RETRY_MS) {
            /* Recently unreachable: fail fast instead of queueing heartbeats. */
            rl_wire_out_free(&s->out);
            free(s->bufs);
            free(s);
            return RAFT_NOCONNECTION;
        }
        p->connect_req.data = p;
        rv = io->transport.connect(&io->transport, &p->connect_req, p->id, p->address, connect_cb);
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

int rl_io__send(struct raft_io *rio, struct raft_io_send *req, const struct raft_message *msg,
                raft_io_send_cb cb)
{
    struct io *io = rio->impl;
    struct raft_message capped;
    if (io->in_append_entries && msg->type == RAFT_IO_APPEND_ENTRIES_RESULT &&
        msg->append_entries_result.rejected == 0 &&
        msg->append_entries_result.last_log_index > io->append_entries_match) {
        capped = *msg;
        capped.append_entries_result.last_log_index = io->append_entries_match;
        msg = &capped;
    }
    int rv = rl_io__send_msg(io, msg, req, cb, NULL, NULL);
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

void rl_io_send_commit(struct raft_io *rio, const struct raft_configuration *conf, uint64_t term,
                       uint64_t index, uint64_t entry_term)
{
    struct io *io = rio->impl;
    if (!io || io->closing || io->fatal)
        return;
    for (unsigned i = 0; i < conf->n; i++) {
        if (conf->servers[i].id == io->id)
            continue;
        struct raft_message m = {.type = RL_WIRE_COMMIT, .server_id = conf->servers[i].id,
                                 .server_address = conf->servers[i].address};
        m.timeout_now.term = term;
        m.timeout_now.last_log_index = index;
        m.timeout_now.last_log_term = entry_term;
        /* Only over a connection that is up: a notice is not worth a connect. */
        struct peer *p = NULL;
        for (struct peer *q = io->peers; q; q = q->next)
            if (q->id == conf->servers[i].id)
                p = q;
        if (p && p->stream)
            rl_io__send_msg(io, &m, NULL, NULL, commit_sent, NULL);
    }
}

/* ---- receiving ------------------------------------------------------------------- */

static void in_closed(uv_handle_t *h)
{
    struct in_conn *c = h->data;
    raft_free(c->body);
    free(c->rbuf);
    free(c->stream);
    free(c);
}

void rl_io__in_close(struct in_conn *c, const char *why)
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
    uv_close((uv_handle_t *)c->stream, in_closed);
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct in_conn *c = h->data;
    (void)suggested;
    if (!c->rbuf)
        c->rbuf = malloc(READ_CHUNK);
    *buf = uv_buf_init(c->rbuf, c->rbuf ? READ_CHUNK : 0);
}

/* One complete frame: decode and hand to libraft (or hold it back). */
static bool is_member(void *arg, uint64_t id)
{
    struct io *io = arg;
    char addr[256];
    return io->hooks.peer_address && io->hooks.peer_address(io->hooks.arg, id, addr, sizeof addr) == 0;
}

/* Why a message must not go further, or NULL (guard.c has the rules). */
static const char *refusal(struct io *io, const struct in_conn *c, const struct raft_message *msg)
{
    struct rl_guard_view v = {.self = io->id, .term = rl_store_term(io->store),
                              .leader = io->hooks.leader_id ? io->hooks.leader_id(io->hooks.arg) : 0,
                              .is_member = is_member, .arg = io};
    const char *why = NULL;
    if (rl_guard_check(&v, msg, &why) != 0)
        return why;
    if (msg->type == RL_WIRE_FETCH_RESPONSE && c->id != io->snap_source_id &&
        c->id != io->rewind.source)
        return "a fetch answer nobody asked this node for";
    return rl_io__contradicts_committed(io, msg);
}

static int in_frame(struct in_conn *c)
{
    struct io *io = c->io;
    char err[256];
    struct raft_message msg;
    bool owned = false;
    void *body = c->body;
    c->body = NULL;
    int rv = rl_wire_decode(&c->h, body, &msg, &owned, err, sizeof err);
    if (rv != 0) {
        raft_free(body);
        rl_io__in_close(c, rv == RLOG_EPROTO ? err : "out of memory");
        return -1;
    }
    if (msg.server_id != c->id) {
        rl_wire_message_release(&msg, body, owned);
        rl_io__in_close(c, "frame sender does not match the connection's server id");
        return -1;
    }
    msg.server_address = c->address;
    const char *why = refusal(io, c, &msg);
    if (why) {
        io->dropped_messages++;
        rl_io__log(io, c->warned ? 0 : 2, "dropping a type %d message from %" PRIu64 " (%s): %s (%lu dropped)",
                   (int)msg.type, c->id, c->address, why, io->dropped_messages);
        c->warned = true;
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
    if (msg.type == RL_WIRE_COMMIT) {
        if (io->hooks.on_commit && !io->closing && !io->fatal)
            io->hooks.on_commit(io->hooks.arg, msg.timeout_now.last_log_index,
                                msg.timeout_now.last_log_term);
        raft_free(body);
        return 0;
    }
    if (msg.type == RL_WIRE_FETCH_RESPONSE && rl_io__rewind_answer(io, &msg)) {
        rl_io__deliver(io, &msg, body, owned);
        return 0;
    }
    if (msg.type == RAFT_IO_INSTALL_SNAPSHOT && rl_io__rewind_start(io, &msg, c->address)) {
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
    if (msg.type == RL_WIRE_FETCH_REQUEST || msg.type == RL_WIRE_FETCH_RESPONSE) {
        rl_io__fetch_recv(io, &msg, c->address);
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

static void in_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct in_conn *c = stream->data;
    if (nread < 0) {
        char why[128];
        if (nread == UV_EOF && (c->hdr_got > 0 || c->body)) {
            if (c->hdr_got < RL_WIRE_HDR)
                snprintf(why, sizeof why, "closed inside a frame header (%zu of %u bytes)",
                         c->hdr_got, RL_WIRE_HDR);
            else
                snprintf(why, sizeof why, "closed inside a frame body (%zu of %u bytes)",
                         c->body_got, (unsigned)c->h.length);
            rl_io__in_close(c, why);
        } else {
            rl_io__in_close(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        }
        return;
    }
    const unsigned char *p = (const unsigned char *)buf->base;
    size_t left = (size_t)nread;
    while (left > 0 && !c->closing) {
        if (c->hdr_got < RL_WIRE_HDR) {
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
                return;
            }
            /* Memory follows the bytes that actually arrive, not the
             * length a peer claims. */
            c->body_cap = c->h.length < READ_CHUNK ? (c->h.length ? c->h.length : 8) : READ_CHUNK;
            c->body = raft_malloc(c->body_cap);
            c->body_got = 0;
            if (!c->body) {
                rl_io__in_close(c, "out of memory for a frame body");
                return;
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
                return;
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
                return;
        }
    }
}

void rl_io__accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                      struct uv_stream_s *stream)
{
    struct io *io = t->data;
    /* libraft 0.15 passes the address the peer announced in its handshake,
     * in a buffer of the announced length with no guaranteed terminator:
     * never read it. The configuration says where server `id` listens. */
    (void)address;
    struct in_conn *c = calloc(1, sizeof *c);
    if (!c || io->closing) {
        free(c);
        uv_close((uv_handle_t *)stream, peer_stream_closed);
        return;
    }
    c->io = io;
    c->stream = stream;
    c->id = id;
    if (!io->hooks.peer_address ||
        io->hooks.peer_address(io->hooks.arg, id, c->address, sizeof c->address) != 0)
        snprintf(c->address, sizeof c->address, "unknown-server-%" PRIu64, (uint64_t)id);
    stream->data = c;
    if (stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    c->next = io->ins;
    if (io->ins)
        io->ins->prev = c;
    io->ins = c;
    int rv = uv_read_start(stream, in_alloc, in_read);
    if (rv != 0)
        rl_io__in_close(c, uv_strerror(rv));
}
