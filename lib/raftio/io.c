/*
 * raft_io over the segment store and our wire.
 *
 * Appends: libraft's io->append becomes one store append (group-committed
 * with everything else queued); the entries' record counts come from their
 * batch headers so the store can assign dense offsets. Truncate is queued
 * behind in-flight appends by the store itself.
 *
 * Messages: one outbound connection per peer, made through the raft_uv_tcp
 * transport (which does the handshake) and set TCP_NODELAY (libraft's stock
 * backend does not, and pipelined traffic stalls on Nagle + delayed ACK).
 * Inbound connections are read as a stream of frames; the first bad frame
 * closes the connection with a logged reason.
 *
 * Elections: RequestVote and TimeoutNow received while appends are in flight
 * are held and delivered when the store has caught up, and so are the ticks
 * of a non-leader, so libraft 0.15 never votes or campaigns on log entries
 * that are not yet durable.
 */
#include "raftio/io.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "common/env.h"
#include "store/format.h"
#include "liblog.h"
#include "raftio/snapshot.h"
#include "wire/codec.h"

#define CONNECT_RETRY_MS 200
#define READ_CHUNK (64 * 1024)

struct io;

struct send_req {
    struct io *io;
    struct raft_io_send *req;
    raft_io_send_cb cb;
    void (*done)(void *arg, int status); /* our own messages instead of cb */
    void *done_arg;
    struct rl_wire_out out;
    uv_buf_t *bufs;
    uv_write_t write;
    struct peer *peer;
    struct send_req *next;
};

struct peer {
    struct io *io;
    uint64_t id;
    char address[256];
    uv_stream_t *stream;
    bool connecting;
    struct raft_uv_connect connect_req;
    struct send_req *wait_head, *wait_tail; /* queued while connecting */
    uint64_t failed_at;
    struct peer *next;
};

struct in_conn {
    struct io *io;
    uv_stream_t *stream;
    uint64_t id;
    char address[256];
    unsigned char hdr[RL_WIRE_HDR];
    size_t hdr_got;
    struct rl_wire_hdr h;
    unsigned char *body;
    size_t body_got, body_cap;
    char *rbuf;
    bool closing;
    struct in_conn *next, *prev;
};

struct failed_send {
    struct raft_io_send *req;
    raft_io_send_cb cb;
    int status;
    struct failed_send *next;
};

struct held {
    struct raft_message msg;
    void *body;
    bool owned;
    char address[256];
    struct held *next;
};

struct append_req {
    struct io *io;
    struct raft_io_append *req;
    raft_io_append_cb cb;
    struct rl_store_req sreq;
    struct rl_store_entry *entries;
    int rv;                   /* a failed one's status, reported later */
    struct append_req *below; /* the failed stack */
};

/* A conflicting suffix libraft will not give up (fetch.inc, rewind). */
struct rewind {
    bool asked;                 /* a request is out */
    uint64_t source, term;      /* the leader asked, and its term */
    uint64_t prev, prev_term;   /* the AppendEntries will follow this entry */
    uint64_t to;                /* the snapshot's index */
    uint64_t end, end_term;     /* the last entry handed to libraft, and its term */
    uint64_t asked_ms;
    unsigned long count;
};

struct io {
    struct raft_io *rio;
    uv_loop_t *loop;
    struct rl_store *store;
    char dir[4096];
    unsigned trailing;
    uint32_t max_body;
    struct rl_io_hooks hooks;
    struct raft_uv_transport transport;
    bool transport_ready;
    uint64_t id;
    char address[256];
    uv_timer_t timer;
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    bool tick_held;
    struct peer *peers;
    struct in_conn *ins;
    struct held *held_head, *held_tail;
    unsigned appends;
    struct append_req *failed_top; /* failed appends, newest on top */
    /* The index libraft will give its next appended entry: its log's end
     * as it sees it. The store must end at the same place before it takes
     * an append (io_append says why). */
    uint64_t raft_next;
    unsigned long refused_appends;
    /* Sends that failed at once, reported from the loop instead (see
     * io_send); flushed by send_fail_timer. */
    struct failed_send *failed_head, *failed_tail;
    /* The snapshot install under way (see snapshot_put_done). */
    struct raft_io_snapshot_put *install_req;
    struct raft_buffer *install_bufs;
    uv_timer_t send_fail_timer;   /* reports failures io_send/io_append deferred */
    bool timers_ready;
    /* While libraft handles an AppendEntries: the last index it proves
     * this log matches the leader's (see deliver). */
    bool in_append_entries;
    uint64_t append_entries_match;
    int fatal;
    bool closing;
    raft_io_close_cb close_cb;
    int close_pending;
    struct rl_snapshot_desc snap;
    bool have_snap;
    unsigned rand_state;
    uint64_t snap_source_id;       /* sender of the last InstallSnapshot */
    char snap_source_addr[256];
    struct fetch *fetch;           /* catch-up in progress, or NULL */
    struct rewind rewind;          /* see fetch.inc, rewind_start */
    struct fetch *reset_fetch;     /* the fetch whose reset descriptor is being written */
    /* Descriptor writes, one at a time (they share SNAPSHOT.tmp). */
    struct snap_put *snap_head, *snap_tail;
};

static void io_log(struct io *io, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void close_step(struct io *io);
static int fetch_start(struct io *io, struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snap);
static int finish_interrupted_reset(struct io *io);
static void io_log(struct io *io, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (io->hooks.log)
        io->hooks.log(io->hooks.arg, level, line);
}

static void after_event(struct io *io)
{
    if (io->hooks.after_event && !io->closing)
        io->hooks.after_event(io->hooks.arg);
}

uint64_t rl_io_snapshot_index(struct raft_io *rio)
{
    struct io *io = rio->impl;
    return io && io->have_snap ? io->snap.index : 0;
}

uint32_t rl_io_batch_records(const void *buf, size_t len)
{
    struct rl_batch_view v;
    return rl_batch_parse(buf, len, &v) ? v.count : 0;
}

/* ---- held elections -------------------------------------------------- */

static void deliver(struct io *io, struct raft_message *msg, void *body, bool owned)
{
    if (!io->recv_cb || io->closing || io->fatal) {
        rl_wire_message_release(msg, body, owned);
        return;
    }
    /* libraft 0.15 answers an AppendEntries that brings nothing new with
     * "I hold everything up to my last stored index" (recv_append_entries.c),
     * even when entries after the leader's are from another term and about
     * to be replaced. The leader then takes them as matched and can count
     * this node towards a quorum for entries it does not hold (found by the
     * simulator: a leader's match index stuck above a follower's conflicting
     * suffix, its heartbeats rejected forever). The answer is capped at what
     * the message itself proves: prev_log_index + n_entries. */
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
    io->recv_cb(io->rio, msg);
    io->in_append_entries = false;
    if (!owned)
        raft_free(body);
    after_event(io);
}

/* libraft 0.15 takes a snapshot's last index as its own the moment an
 * install starts, and counts entries being written as stored: while either
 * is under way its log claims more than the disk holds. Votes it grants are
 * then only more cautious, but it must not campaign: ticks of a non-leader
 * and TimeoutNow wait. RequestVote waits for appends only, so a node
 * catching up from a leader that died still lets another node win. */
static bool campaign_held(const struct io *io)
{
    return io->appends > 0 || io->fetch != NULL;
}

static bool must_hold(const struct io *io, unsigned short type)
{
    return type == RAFT_IO_TIMEOUT_NOW ? campaign_held(io) : io->appends > 0;
}

static void release_held(struct io *io)
{
    /* In arrival order, up to the first message that must still wait. */
    while (io->held_head && !must_hold(io, io->held_head->msg.type)) {
        struct held *h = io->held_head;
        io->held_head = h->next;
        if (!io->held_head)
            io->held_tail = NULL;
        h->msg.server_address = h->address;
        deliver(io, &h->msg, h->body, h->owned);
        free(h);
    }
    if (!campaign_held(io) && io->tick_held && !io->closing && !io->fatal) {
        io->tick_held = false;
        io->tick_cb(io->rio);
        after_event(io);
    }
}

/* ---- load / bootstrap / metadata ----------------------------------------- */

static int io_init(struct raft_io *rio, raft_id id, const char *address)
{
    struct io *io = rio->impl;
    io->id = id;
    snprintf(io->address, sizeof io->address, "%s", address);
    int rv = rl_transport_init(&io->transport, io->loop);
    if (rv == 0)
        rv = io->transport.init(&io->transport, id, address);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "transport: %.200s", io->transport.errmsg);
        return rv;
    }
    io->transport.data = io;
    io->transport_ready = true;
    return 0;
}

/* Bytes of entries before the snapshot index that load() hands back to
 * libraft's memory: they only spare a slightly lagging follower a fetch. */
#define LOAD_TRAILING_BUDGET (64u << 20)

/* Reads entries [from, to] from the store, each into its own raft_malloc'd
 * buffer (batch NULL: libraft frees such an entry's buffer by itself), so a
 * load never holds more than the entries plus the one being read. Newest
 * first, so the optional part (below `needed`) can stop at the byte budget;
 * *start_out is the first index actually loaded. */
static int load_entries(struct io *io, uint64_t from, uint64_t to, uint64_t needed,
                        uint64_t *start_out, struct raft_entry **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    *start_out = to + 1;
    if (to < from)
        return 0;
    size_t cap = (size_t)(to - from + 1), n = 0, total = 0;
    struct raft_entry *entries = raft_calloc(cap, sizeof *entries); /* newest first */
    int rv = entries ? 0 : RAFT_NOMEM;
    for (uint64_t i = to; rv == 0 && i >= from && i > 0; i--) {
        struct rl_store_entry e;
        int r = rl_store_read(io->store, i, &e);
        if (r != 0) {
            snprintf(io->rio->errmsg, sizeof io->rio->errmsg, "load entry %" PRIu64 ": %.200s",
                     i, rl_store_errmsg(io->store));
            rv = RAFT_CORRUPT;
            break;
        }
        if (i < needed && total + e.len > LOAD_TRAILING_BUDGET) {
            free((void *)e.buf);
            break;
        }
        void *buf = e.len ? raft_malloc(e.len) : NULL;
        if (e.len && !buf) {
            free((void *)e.buf);
            rv = RAFT_NOMEM;
            break;
        }
        if (e.len)
            memcpy(buf, e.buf, e.len);
        free((void *)e.buf);
        entries[n++] = (struct raft_entry){.term = e.term, .type = e.type, .buf = {buf, e.len}};
        total += e.len;
    }
    if (rv != 0) {
        for (size_t k = 0; k < n; k++)
            raft_free(entries[k].buf.base);
        raft_free(entries);
        return rv;
    }
    for (size_t k = 0; k < n / 2; k++) { /* oldest first, as libraft wants */
        struct raft_entry t = entries[k];
        entries[k] = entries[n - 1 - k];
        entries[n - 1 - k] = t;
    }
    if (n == 0) {
        raft_free(entries);
        entries = NULL;
    }
    *out = entries;
    *n_out = n;
    *start_out = to + 1 - n;
    return 0;
}

static int io_load(struct raft_io *rio, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct io *io = rio->impl;
    *term = rl_store_term(io->store);
    *voted_for = rl_store_vote(io->store);
    *snapshot = NULL;
    if (io->have_snap && io->snap.reset_offset != RL_SNAPSHOT_NO_RESET &&
        io->snap.index > rl_store_last_index(io->store)) {
        int rv = finish_interrupted_reset(io);
        if (rv != 0)
            return rv;
    }
    uint64_t first = rl_store_first_index(io->store), last = rl_store_last_index(io->store);
    uint64_t start = first;
    if (io->have_snap) {
        if (io->snap.index > last) {
            snprintf(rio->errmsg, sizeof rio->errmsg,
                     "snapshot descriptor covers entry %" PRIu64 " but the log ends at %" PRIu64,
                     io->snap.index, last);
            return RAFT_CORRUPT;
        }
        struct raft_snapshot *s = raft_calloc(1, sizeof *s);
        void *data = raft_calloc(1, 8);
        if (!s || !data) {
            raft_free(s);
            raft_free(data);
            return RAFT_NOMEM;
        }
        s->index = io->snap.index;
        s->term = io->snap.term;
        s->configuration_index = io->snap.conf_index;
        raft_configuration_init(&s->configuration);
        for (unsigned i = 0; i < io->snap.conf.n; i++)
            if (raft_configuration_add(&s->configuration, io->snap.conf.servers[i].id,
                                       io->snap.conf.servers[i].address,
                                       io->snap.conf.servers[i].role) != 0)
                return RAFT_NOMEM;
        s->bufs = raft_calloc(1, sizeof *s->bufs);
        if (!s->bufs)
            return RAFT_NOMEM;
        s->bufs[0].base = data;
        s->bufs[0].len = 8;
        s->n_bufs = 1;
        *snapshot = s;
        /* Only a bounded tail goes back to libraft's memory. */
        if (io->snap.index + 1 > io->trailing && io->snap.index + 1 - io->trailing > start)
            start = io->snap.index + 1 - io->trailing;
    } else if (first != 1 && last >= first) {
        snprintf(rio->errmsg, sizeof rio->errmsg,
                 "log starts at entry %" PRIu64 " but there is no snapshot descriptor", first);
        return RAFT_CORRUPT;
    }
    if (last < start)
        start = last + 1;
    uint64_t needed = io->have_snap ? io->snap.index + 1 : start, loaded_from;
    int rv = load_entries(io, start, last, needed, &loaded_from, entries, n_entries);
    *start_index = rv == 0 && *n_entries ? loaded_from : last + 1;
    io->raft_next = last + 1;
    return rv;
}

struct sync_wait {
    bool done;
    int status;
};

static void sync_append_cb(struct rl_store_req *req, int status)
{
    struct sync_wait *w = req->data;
    w->done = true;
    w->status = status;
}

/* Runs the loop until a store request submitted with sync_append_cb is
 * done; only before the loop runs (load, bootstrap). */
static int store_wait(struct io *io, int rv, struct sync_wait *w)
{
    /* Called before the loop runs, so it is ours to turn here. */
    while (rv == 0 && !w->done)
        rl_block_turn(io->loop);
    return rv ? rv : w->status;
}

static int io_bootstrap(struct raft_io *rio, const struct raft_configuration *conf)
{
    struct io *io = rio->impl;
    /* Term 1 without entries: a bootstrap that a crash cut short. */
    if (rl_store_last_index(io->store) != 0 || rl_store_term(io->store) > 1)
        return RAFT_CANTBOOTSTRAP;
    struct raft_buffer buf;
    int rv = raft_configuration_encode(conf, &buf);
    if (rv != 0)
        return rv;
    rv = rl_store_set_term_vote(io->store, 1, 0);
    struct sync_wait w = {0};
    struct rl_store_req req = {.data = &w};
    struct rl_store_entry e = {.index = 1, .term = 1, .type = RAFT_CHANGE, .buf = buf.base,
                               .len = (uint32_t)buf.len};
    if (rv == 0)
        rv = store_wait(io, rl_store_append(io->store, &req, &e, 1, sync_append_cb), &w);
    raft_free(buf.base);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "bootstrap: %s",
                 rl_store_errmsg(io->store));
        return RAFT_IOERR;
    }
    if (io->hooks.on_append)
        io->hooks.on_append(io->hooks.arg, 1, 1, 0, 0, NULL, 0);
    return 0;
}

static int io_recover(struct raft_io *rio, const struct raft_configuration *conf)
{
    (void)conf;
    snprintf(rio->errmsg, sizeof rio->errmsg, "forced configuration recovery is not supported");
    return RAFT_NOTFOUND;
}

static int fail_stop(struct io *io, int code, const char *what)
{
    if (!io->fatal) {
        io->fatal = code ? code : RLOG_EIO;
        io_log(io, 3, "storage failure, stopping: %s: %s", what, rl_store_errmsg(io->store));
        if (io->hooks.on_fatal)
            io->hooks.on_fatal(io->hooks.arg, io->fatal, rl_store_errmsg(io->store));
    }
    snprintf(io->rio->errmsg, sizeof io->rio->errmsg, "%s", rl_store_errmsg(io->store));
    return RAFT_IOERR;
}

void rl_io_fail_stop(struct raft_io *rio, int code, const char *what)
{
    if (rio->impl)
        fail_stop(rio->impl, code, what);
}

static int io_set_term(struct raft_io *rio, raft_term term)
{
    struct io *io = rio->impl;
    if (io->fatal)
        return RAFT_IOERR;
    int rv = rl_store_set_term_vote(io->store, term, 0);
    return rv ? fail_stop(io, rv, "set term") : 0;
}

static int io_set_vote(struct raft_io *rio, raft_id server_id)
{
    struct io *io = rio->impl;
    if (io->fatal)
        return RAFT_IOERR;
    int rv = rl_store_set_term_vote(io->store, rl_store_term(io->store), server_id);
    return rv ? fail_stop(io, rv, "set vote") : 0;
}

/* ---- append / truncate ------------------------------------------------------ */

/* libraft 0.15's leader handles a failed append by truncating its log from
 * that append's first index (src/replication.c, appendLeaderCb). Reported
 * oldest first, the first truncation removes the later appends' entries too,
 * and their own truncations then run past the end of the log and free
 * entries twice (found by the simulator: an EIO with two appends in
 * flight). So failures wait until nothing is in flight and are reported
 * newest first: each truncation then starts at the log's current end. */
static void report_failed(struct io *io)
{
    while (io->appends == 0 && io->failed_top) {
        struct append_req *a = io->failed_top;
        io->failed_top = a->below;
        struct raft_io_append *req = a->req;
        raft_io_append_cb cb = a->cb;
        int rv = a->rv;
        free(a);
        if (cb)
            cb(req, rv);
    }
}

static void append_done(struct rl_store_req *sreq, int status)
{
    struct append_req *a = sreq->data;
    struct io *io = a->io;
    io->appends--;
    int rv = 0;
    if (status == RLOG_ECANCELED && io->closing) {
        rv = RAFT_CANCELED; /* the store cancelled it at close: no failure */
    } else if (status != 0) {
        /* Even a full disk (nothing written, store intact) stops the node:
         * libraft 0.15 keeps a failed entry in its memory and would carry
         * on past the gap. The cause shows as the fatal code. */
        fail_stop(io, status, "append");
        rv = status == RLOG_ENOSPC ? RAFT_NOSPACE : RAFT_IOERR;
    } else if (io->closing) {
        rv = RAFT_CANCELED;
    }
    free(a->entries);
    a->entries = NULL;
    if (rv != 0) {
        a->rv = rv;
        a->below = io->failed_top;
        io->failed_top = a;
        report_failed(io);
    } else {
        struct raft_io_append *req = a->req;
        raft_io_append_cb cb = a->cb;
        free(a);
        if (cb)
            cb(req, 0);
    }
    release_held(io);
    after_event(io);
}

static void deferred_cb(uv_timer_t *t);

/* libraft numbers entries by counting: an append goes after the last entry
 * of its log as it sees it, and the raft_io call does not say at which
 * index. If the store ends elsewhere, writing the entries at the store's
 * end would give them wrong indexes on this replica, the divergence
 * nemesis seed 394640568 found (a failed snapshot install had left libraft's
 * log at the snapshot and the store behind it). Such an append is refused,
 * and reported from the loop (libraft 0.15 turns an append that fails at
 * once into an unavailable node); the follower answers "rejected" and the
 * leader sends a snapshot again. Nothing is written. */
static int refuse_append(struct io *io, struct append_req *a, struct raft_io_append *req,
                         unsigned n, raft_io_append_cb cb)
{
    uint64_t at = rl_store_next_index(io->store);
    io->refused_appends++;
    io_log(io, io->refused_appends > 1 ? 0 : 3,
           "refusing %u entries at index %" PRIu64 ": the log ends at %" PRIu64
           " here (%lu refused so far)", n, io->raft_next, at - 1, io->refused_appends);
    io->raft_next += n; /* libraft holds them in memory all the same */
    *a = (struct append_req){.io = io, .req = req, .cb = cb, .rv = RAFT_IOERR,
                             .below = io->failed_top};
    io->failed_top = a;
    uv_timer_start(&io->send_fail_timer, deferred_cb, 0, 0);
    return 0;
}

static int io_append(struct raft_io *rio, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    struct io *io = rio->impl;
    if (io->fatal || io->closing)
        return io->fatal ? RAFT_IOERR : RAFT_CANCELED;
    struct append_req *a = calloc(1, sizeof *a);
    struct rl_store_entry *es = calloc(n ? n : 1, sizeof *es);
    if (!a || !es) {
        free(a);
        free(es);
        return RAFT_NOMEM;
    }
    uint64_t index = rl_store_next_index(io->store);
    if (index != io->raft_next) {
        free(es);
        return refuse_append(io, a, req, n, cb);
    }
    for (unsigned i = 0; i < n; i++) {
        es[i] = (struct rl_store_entry){
            .index = index + i,
            .term = entries[i].term,
            .type = (uint8_t)entries[i].type,
            .buf = entries[i].buf.base,
            .len = (uint32_t)entries[i].buf.len,
            .records = entries[i].type == RAFT_COMMAND
                           ? rl_io_batch_records(entries[i].buf.base, entries[i].buf.len)
                           : 0,
        };
    }
    a->io = io;
    a->req = req;
    a->cb = cb;
    a->entries = es;
    a->sreq.data = a;
    int rv = rl_store_append(io->store, &a->sreq, es, n, append_done);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "append: %s", rl_store_errmsg(io->store));
        free(es);
        free(a);
        if (rv == RLOG_EFATAL || rv == RLOG_EIO)
            return fail_stop(io, rv, "append");
        return RAFT_IOERR;
    }
    io->raft_next += n;
    io->appends++;
    if (io->hooks.on_append) {
        uint64_t off = a->sreq.first_offset;
        for (unsigned i = 0; i < n; i++) {
            io->hooks.on_append(io->hooks.arg, index + i, es[i].term, off, es[i].records,
                                es[i].buf, es[i].len);
            off += es[i].records;
        }
    }
    return 0;
}

static void truncate_done(struct rl_store_req *req, int status)
{
    struct io *io = req->data;
    free(req);
    if (status != 0 && status != RLOG_ECANCELED)
        fail_stop(io, status, "truncate");
}

/* Queues the store's truncation from `index` (after everything queued). */
static int store_truncate(struct io *io, uint64_t index)
{
    struct raft_io *rio = io->rio;
    if (io->fatal)
        return RAFT_IOERR;
    struct rl_store_req *req = calloc(1, sizeof *req);
    if (!req)
        return RAFT_NOMEM;
    req->data = io;
    int rv = rl_store_truncate(io->store, req, index, truncate_done);
    if (rv != 0) {
        free(req);
        snprintf(rio->errmsg, sizeof rio->errmsg, "truncate: %s", rl_store_errmsg(io->store));
        return rv == RLOG_EFATAL ? fail_stop(io, rv, "truncate") : RAFT_IOERR;
    }
    if (io->hooks.on_truncate)
        io->hooks.on_truncate(io->hooks.arg, index);
    return 0;
}

static int io_truncate(struct raft_io *rio, raft_index index)
{
    struct io *io = rio->impl;
    int rv = store_truncate(io, index);
    if (rv == 0)
        io->raft_next = index;
    return rv;
}

/* ---- snapshots (descriptors) ----------------------------------------------------- */

struct snap_put {
    uv_work_t work;
    struct snap_put *next;
    struct io *io;
    struct raft_io_snapshot_put *req;  /* libraft's, or NULL for ours: */
    void (*done)(struct io *io, int status);
    uint64_t index, term, conf_index, visible, reset_offset;
    struct raft_configuration conf;
    int status;
};

static void snap_put_work(uv_work_t *w)
{
    struct snap_put *p = w->data;
    p->status = rl_snapshot_save(p->io->dir, p->index, p->term, p->conf_index, p->visible,
                                 p->reset_offset, &p->conf);
}

static void snap_put_work(uv_work_t *w);
static void snap_put_after(uv_work_t *w, int status);

/* Completes a snapshot put. libraft 0.15 frees a failed install's data
 * buffer but not the array holding it (replication.c, installSnapshotCb):
 * we free that array once libraft is done with it. */
static void snapshot_put_done(struct io *io, struct raft_io_snapshot_put *req, int status)
{
    struct raft_buffer *bufs = NULL;
    if (req == io->install_req) {
        bufs = status != 0 ? io->install_bufs : NULL;
        io->install_req = NULL;
        io->install_bufs = NULL;
    }
    req->cb(req, status);
    raft_free(bufs);
}

static void snap_put_finish(struct snap_put *p, int rv)
{
    struct io *io = p->io;
    struct raft_io_snapshot_put *req = p->req;
    void (*done)(struct io *, int) = p->done;
    free(p);
    if (done)
        done(io, rv);
    else
        snapshot_put_done(io, req, rv);
}

static void snap_queue_next(struct io *io)
{
    struct snap_put *p = io->snap_head;
    if (p && rl_queue_work(io->loop, &p->work, snap_put_work, snap_put_after) != 0) {
        io->snap_head = p->next;
        if (!io->snap_head)
            io->snap_tail = NULL;
        raft_configuration_close(&p->conf);
        snap_put_finish(p, RAFT_IOERR);
        snap_queue_next(io);
    }
}

static void snap_put_after(uv_work_t *w, int status)
{
    struct snap_put *p = w->data;
    struct io *io = p->io;
    (void)status;
    io->snap_head = p->next;
    if (!io->snap_head)
        io->snap_tail = NULL;
    int rv = 0;
    if (p->status != 0) {
        io_log(io, 3, "writing snapshot descriptor: %s", strerror(-p->status));
        rv = RAFT_IOERR;
        raft_configuration_close(&p->conf);
    } else if (io->have_snap && io->snap.index > p->index) {
        raft_configuration_close(&p->conf); /* an older one finished later */
    } else {
        if (io->have_snap)
            rl_snapshot_desc_close(&io->snap);
        io->snap = (struct rl_snapshot_desc){.index = p->index, .term = p->term,
                                             .conf_index = p->conf_index, .visible = p->visible,
                                             .reset_offset = p->reset_offset, .conf = p->conf};
        io->have_snap = true;
    }
    snap_queue_next(io);
    snap_put_finish(p, rv);
    if (io->closing)
        close_step(io);
    else
        after_event(io);
}

/* Queues a descriptor write; done (ours) or req->cb (libraft's) follows. */
static int snap_put_queue(struct io *io, struct raft_io_snapshot_put *req,
                          void (*done)(struct io *, int), const struct raft_snapshot *snapshot,
                          uint64_t conf_index, uint64_t visible, uint64_t reset_offset)
{
    struct snap_put *p = calloc(1, sizeof *p);
    if (!p)
        return RAFT_NOMEM;
    p->io = io;
    p->req = req;
    p->done = done;
    p->index = snapshot->index;
    p->term = snapshot->term;
    p->conf_index = conf_index;
    p->visible = visible;
    p->reset_offset = reset_offset;
    raft_configuration_init(&p->conf);
    for (unsigned i = 0; i < snapshot->configuration.n; i++)
        if (raft_configuration_add(&p->conf, snapshot->configuration.servers[i].id,
                                   snapshot->configuration.servers[i].address,
                                   snapshot->configuration.servers[i].role) != 0) {
            raft_configuration_close(&p->conf);
            free(p);
            return RAFT_NOMEM;
        }
    p->work.data = p;
    bool idle = io->snap_head == NULL;
    if (io->snap_tail)
        io->snap_tail->next = p;
    else
        io->snap_head = p;
    io->snap_tail = p;
    if (idle && rl_queue_work(io->loop, &p->work, snap_put_work, snap_put_after) != 0) {
        io->snap_head = io->snap_tail = NULL;
        raft_configuration_close(&p->conf);
        free(p);
        return RAFT_IOERR;
    }
    return 0;
}

static int install_start(struct io *io, struct raft_io_snapshot_put *req,
                         const struct raft_snapshot *snapshot);
static int snapshot_put(struct io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb);

static int io_snapshot_put(struct raft_io *rio, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct io *io = rio->impl;
    if (io->fatal)
        return RAFT_IOERR;
    req->cb = cb;
    if (trailing != 0 || req == io->install_req) /* ours, or our own re-put */
        return snapshot_put(io, trailing, req, snapshot, cb);
    /* libraft's install of a leader's snapshot. libraft 0.15 has already
     * replaced its log by the snapshot (replication.c, logRestore): from
     * now on it appends after snapshot->index, whatever becomes of this. */
    io->raft_next = snapshot->index + 1;
    int rv = install_start(io, req, snapshot);
    if (rv == 0) {
        io->install_req = req;
        io->install_bufs = snapshot->bufs;
    }
    return rv;
}

/* The highest index this node knows to be committed: entries up to it are
 * the same on every replica (and so the same as any leader's). */
static uint64_t committed_here(struct io *io)
{
    uint64_t fence = io->hooks.visible_index ? io->hooks.visible_index(io->hooks.arg) : 0;
    /* Entries up to our own snapshot were applied, so committed (cutting
     * them left a descriptor beyond the log end, and a node that never
     * opened again: found by the simulator, whose fence lagged far behind
     * the snapshot). */
    if (io->have_snap && io->snap.index > fence)
        fence = io->snap.index;
    return fence;
}

/* Cuts the store back to end at `keep`, after everything queued before
 * (the store's end counts appends still being written). */
static int cut_after(struct io *io, uint64_t keep, const char *why)
{
    uint64_t end = rl_store_next_index(io->store) - 1;
    if (keep >= end)
        return 0;
    uint64_t durable = rl_store_last_index(io->store);
    io_log(io, 1, "%s: dropping entries %" PRIu64 "..%" PRIu64 "%s", why, keep + 1, end,
           end > durable ? " (some still being written)" : "");
    return store_truncate(io, keep + 1);
}

/* An install: the store must end up ending exactly at the snapshot's
 * index, as libraft's log now does, holding the leader's entries. */
static int install_start(struct io *io, struct raft_io_snapshot_put *req,
                         const struct raft_snapshot *snapshot)
{
    uint64_t end = rl_store_next_index(io->store) - 1;
    bool at_reset = io->have_snap && io->snap.index == snapshot->index &&
                    io->snap.term == snapshot->term &&
                    snapshot->index + 1 == rl_store_first_index(io->store);
    uint64_t committed = committed_here(io);
    if (at_reset || (snapshot->index <= committed && snapshot->index <= end)) {
        /* We hold the snapshot's entry, committed: the leader's own. What
         * follows it is gone from libraft's log, so from the store too. */
        int rv = cut_after(io, snapshot->index, "install");
        if (rv != 0)
            return rv;
        return snapshot_put(io, 0, req, snapshot, req->cb);
    }
    /* The log is its own snapshot: installing one means fetching the
     * missing range of the log from a peer. */
    return fetch_start(io, req, snapshot);
}

static int snapshot_put(struct io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct raft_io *rio = io->rio;
    bool at_reset = io->have_snap && io->snap.index == snapshot->index &&
                    io->snap.term == snapshot->term &&
                    snapshot->index + 1 == rl_store_first_index(io->store);
    if (trailing == 0 && !at_reset && snapshot->index <= rl_store_last_index(io->store)) {
        /* We hold the entries the snapshot covers: they must be the same. */
        struct rl_store_entry e;
        int rv = rl_store_read(io->store, snapshot->index, &e);
        free((void *)e.buf);
        if (rv != 0 || e.term != snapshot->term) {
            io_log(io, 3, "snapshot up to entry %" PRIu64 " (term %" PRIu64
                   ") conflicts with this log (%s)", (uint64_t)snapshot->index,
                   (uint64_t)snapshot->term, rv ? rl_store_errmsg(io->store) : "different term");
            snprintf(rio->errmsg, sizeof rio->errmsg, "snapshot conflicts with the local log");
            return RAFT_IOERR;
        }
    }
    req->cb = cb;
    return snap_put_queue(io, req, NULL, snapshot, snapshot->configuration_index,
                          io->hooks.visible_index ? io->hooks.visible_index(io->hooks.arg) : 0,
                          RL_SNAPSHOT_NO_RESET);
}

struct snap_get {
    uv_work_t work;
    struct io *io;
    struct raft_io_snapshot_get *req;
};

static void noop_work(uv_work_t *w)
{
    (void)w;
}

static void snap_get_after(uv_work_t *w, int status)
{
    struct snap_get *g = w->data;
    struct io *io = g->io;
    (void)status;
    struct raft_snapshot *s = NULL;
    int rv = RAFT_NOTFOUND;
    if (io->have_snap && (s = raft_calloc(1, sizeof *s)) != NULL) {
        s->index = io->snap.index;
        s->term = io->snap.term;
        s->configuration_index = io->snap.conf_index;
        raft_configuration_init(&s->configuration);
        rv = 0;
        for (unsigned i = 0; i < io->snap.conf.n && rv == 0; i++)
            rv = raft_configuration_add(&s->configuration, io->snap.conf.servers[i].id,
                                        io->snap.conf.servers[i].address,
                                        io->snap.conf.servers[i].role);
        s->bufs = raft_calloc(1, sizeof *s->bufs);
        void *data = raft_calloc(1, 8);
        if (rv != 0 || !s->bufs || !data) {
            raft_configuration_close(&s->configuration);
            raft_free(s->bufs);
            raft_free(data);
            raft_free(s);
            s = NULL;
            rv = RAFT_NOMEM;
        } else {
            s->bufs[0].base = data;
            s->bufs[0].len = 8;
            s->n_bufs = 1;
        }
    }
    struct raft_io_snapshot_get *req = g->req;
    free(g);
    req->cb(req, s, rv);
}

static int io_snapshot_get(struct raft_io *rio, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    struct io *io = rio->impl;
    struct snap_get *g = calloc(1, sizeof *g);
    if (!g)
        return RAFT_NOMEM;
    g->io = io;
    g->req = req;
    req->cb = cb;
    g->work.data = g;
    /* The callback must not run inside this call. */
    if (rl_queue_work(io->loop, &g->work, noop_work, snap_get_after) != 0) {
        free(g);
        return RAFT_IOERR;
    }
    return 0;
}

static raft_time io_time(struct raft_io *rio)
{
    struct io *io = rio->impl;
    return uv_now(io->loop);
}

static int io_random(struct raft_io *rio, int min, int max)
{
    struct io *io = rio->impl;
    if (max <= min)
        return min;
    return min + (int)((unsigned)rand_r(&io->rand_state) % (unsigned)(max - min));
}

struct async_work {
    uv_work_t work;
    struct raft_io_async_work *req;
    int status;
};

static void async_work_run(uv_work_t *w)
{
    struct async_work *a = w->data;
    a->status = a->req->work(a->req);
}

static void async_work_after(uv_work_t *w, int status)
{
    struct async_work *a = w->data;
    (void)status;
    struct raft_io_async_work *req = a->req;
    int st = a->status;
    free(a);
    req->cb(req, st);
}

static int io_async_work(struct raft_io *rio, struct raft_io_async_work *req,
                         raft_io_async_work_cb cb)
{
    struct io *io = rio->impl;
    struct async_work *a = calloc(1, sizeof *a);
    if (!a)
        return RAFT_NOMEM;
    a->req = req;
    req->cb = cb;
    a->work.data = a;
    if (rl_queue_work(io->loop, &a->work, async_work_run, async_work_after) != 0) {
        free(a);
        return RAFT_IOERR;
    }
    return 0;
}

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

static void peer_drop_stream(struct peer *p)
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
        io_log(s->io, 1, "send to %" PRIu64 " (%s) failed: %s; dropping connection",
               s->peer->id, s->peer->address, uv_strerror(status));
        peer_drop_stream(s->peer);
    }
    send_finish(s, status == 0 ? 0 : RAFT_NOCONNECTION);
}

static void peer_write(struct peer *p, struct send_req *s)
{
    s->write.data = s;
    int rv = uv_write(&s->write, p->stream, s->bufs, s->out.n_iov, write_cb);
    if (rv != 0) {
        peer_drop_stream(p);
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
                peer_drop_stream(p);
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
static int send_msg(struct io *io, const struct raft_message *msg, struct raft_io_send *req,
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

static void flush_failed_sends(struct io *io)
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

static void deferred_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    flush_failed_sends(io);
    report_failed(io); /* refused appends; waits while appends are in flight */
}

static int io_send(struct raft_io *rio, struct raft_io_send *req, const struct raft_message *msg,
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
    int rv = send_msg(io, msg, req, cb, NULL, NULL);
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
        uv_timer_start(&io->send_fail_timer, deferred_cb, 0, 0);
        return 0;
    }
    return rv;
}

#include "raftio/fetch.inc"

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
            send_msg(io, &m, NULL, NULL, commit_sent, NULL);
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

static void in_close(struct in_conn *c, const char *why)
{
    if (c->closing)
        return;
    c->closing = true;
    struct io *io = c->io;
    if (why)
        io_log(io, 2, "closing connection from %" PRIu64 " (%s): %s", c->id, c->address, why);
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
static bool below_window(struct io *io, struct raft_message *msg, void *body, bool owned)
{
    struct raft_append_entries *ae = &msg->append_entries;
    if (msg->type != RAFT_IO_APPEND_ENTRIES || !io->have_snap || ae->prev_log_index == 0 ||
        ae->prev_log_index >= io->snap.index || ae->term < rl_store_term(io->store))
        return false;
    uint64_t at_snap = io->snap.index - ae->prev_log_index; /* 1-based position in entries */
    if (at_snap <= ae->n_entries && ae->entries[at_snap - 1].term != io->snap.term)
        return false;
    uint64_t local;
    if (entry_term(io, ae->prev_log_index, &local) && local != ae->prev_log_term)
        return false; /* a committed entry disagrees: not ours to paper over */
    rl_wire_message_release(msg, body, owned);
    if (!owned)
        raft_free(body);
    ae->prev_log_index = io->snap.index;
    ae->prev_log_term = io->snap.term;
    return true;
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
        in_close(c, rv == RLOG_EPROTO ? err : "out of memory");
        return -1;
    }
    if (msg.server_id != c->id) {
        rl_wire_message_release(&msg, body, owned);
        in_close(c, "frame sender does not match the connection's server id");
        return -1;
    }
    msg.server_address = c->address;
    if (msg.type == RL_WIRE_COMMIT) {
        if (io->hooks.on_commit && !io->closing && !io->fatal)
            io->hooks.on_commit(io->hooks.arg, msg.timeout_now.last_log_index,
                                msg.timeout_now.last_log_term);
        raft_free(body);
        return 0;
    }
    if (msg.type == RL_WIRE_FETCH_RESPONSE && rewind_answer(io, &msg)) {
        deliver(io, &msg, body, owned);
        return 0;
    }
    if (msg.type == RAFT_IO_INSTALL_SNAPSHOT && rewind_start(io, &msg, c->address)) {
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
    if (msg.type == RL_WIRE_FETCH_REQUEST || msg.type == RL_WIRE_FETCH_RESPONSE) {
        fetch_recv(io, &msg, c->address);
        rl_wire_message_release(&msg, body, owned);
        if (!owned)
            raft_free(body);
        return 0;
    }
    if (msg.type == RAFT_IO_INSTALL_SNAPSHOT) {
        io->snap_source_id = c->id;
        snprintf(io->snap_source_addr, sizeof io->snap_source_addr, "%s", c->address);
    }
    if (below_window(io, &msg, body, owned)) {
        deliver(io, &msg, NULL, false);
        return 0;
    }
    if ((msg.type == RAFT_IO_REQUEST_VOTE || msg.type == RAFT_IO_TIMEOUT_NOW) &&
        (must_hold(io, msg.type) || io->held_head)) {
        struct held *h = calloc(1, sizeof *h);
        if (!h) {
            rl_wire_message_release(&msg, body, owned);
            return 0;
        }
        h->msg = msg;
        h->body = body;
        h->owned = owned;
        snprintf(h->address, sizeof h->address, "%s", c->address);
        if (io->held_tail)
            io->held_tail->next = h;
        else
            io->held_head = h;
        io->held_tail = h;
        return 0;
    }
    deliver(io, &msg, body, owned);
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
            in_close(c, why);
        } else {
            in_close(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
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
                in_close(c, err);
                return;
            }
            /* Memory follows the bytes that actually arrive, not the
             * length a peer claims. */
            c->body_cap = c->h.length < READ_CHUNK ? (c->h.length ? c->h.length : 8) : READ_CHUNK;
            c->body = raft_malloc(c->body_cap);
            c->body_got = 0;
            if (!c->body) {
                in_close(c, "out of memory for a frame body");
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
                in_close(c, "out of memory for a frame body");
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

static void accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
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
        in_close(c, uv_strerror(rv));
}

/* ---- start / close ----------------------------------------------------------------- */

static void timer_cb(uv_timer_t *t)
{
    struct io *io = t->data;
    if (io->closing || io->fatal)
        return;
    bool leader = io->hooks.is_leader && io->hooks.is_leader(io->hooks.arg);
    if (campaign_held(io) && !leader) {
        io->tick_held = true; /* delivered when the store catches up */
        return;
    }
    io->tick_cb(io->rio);
    after_event(io);
}

static int io_start(struct raft_io *rio, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv)
{
    struct io *io = rio->impl;
    /* The timers exist before anything can fail, so a close after a failed
     * start (an address in use) closes only handles that were initialised. */
    uv_timer_init(io->loop, &io->timer);
    io->timer.data = io;
    uv_timer_init(io->loop, &io->send_fail_timer);
    io->send_fail_timer.data = io;
    io->timers_ready = true;
    int rv = io->transport.listen(&io->transport, accept_cb);
    if (rv != 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "listen on %.100s: %.120s", io->address,
                 io->transport.errmsg);
        return rv;
    }
    io->tick_cb = tick;
    io->recv_cb = recv;
    uv_timer_start(&io->timer, timer_cb, msecs, msecs);
    return 0;
}

static void close_step(struct io *io);

static void store_closed(void *arg)
{
    struct io *io = arg;
    io->store = NULL;
    close_step(io);
}

static void timer_closed(uv_handle_t *h)
{
    struct io *io = h->data;
    io->close_pending--;
    close_step(io);
}

static void transport_closed(struct raft_uv_transport *t)
{
    struct io *io = t->data;
    rl_transport_fini(t);
    io->transport_ready = false;
    io->close_pending--;
    close_step(io);
}

static void close_step(struct io *io)
{
    /* Descriptor writes in flight come back to io: they finish first. */
    if (io->close_pending > 0 || (io->fetch && io->fetch->busy) || io->snap_head)
        return;
    if (io->store) {
        rl_store_close(io->store, store_closed, io);
        return;
    }
    while (io->peers) {
        struct peer *p = io->peers;
        io->peers = p->next;
        free(p);
    }
    while (io->held_head) {
        struct held *h = io->held_head;
        io->held_head = h->next;
        rl_wire_message_release(&h->msg, h->body, h->owned);
        free(h);
    }
    if (io->have_snap)
        rl_snapshot_desc_close(&io->snap);
    raft_io_close_cb cb = io->close_cb;
    struct raft_io *rio = io->rio;
    rio->impl = NULL;
    free(io);
    if (cb)
        cb(rio);
}

static void io_close(struct raft_io *rio, raft_io_close_cb cb)
{
    struct io *io = rio->impl;
    io->closing = true;
    fetch_stop(io);
    io->close_cb = cb;
    /* close_pending may already count a catch-up timer being closed. */
    for (struct peer *p = io->peers; p; p = p->next)
        peer_drop_stream(p);
    while (io->ins)
        in_close(io->ins, NULL);
    if (io->timers_ready) {
        io->close_pending++;
        uv_close((uv_handle_t *)&io->timer, timer_closed);
        flush_failed_sends(io);
        report_failed(io); /* refused appends, when nothing is in flight */
        io->close_pending++;
        uv_close((uv_handle_t *)&io->send_fail_timer, timer_closed);
    }
    if (io->transport_ready) {
        io->close_pending++;
        io->transport.close(&io->transport, transport_closed);
    }
    close_step(io);
}

int rl_io_init(struct raft_io *rio, const struct rl_io_config *cfg)
{
    struct io *io = calloc(1, sizeof *io);
    if (!io)
        return RLOG_ENOMEM;
    io->rio = rio;
    io->loop = cfg->loop;
    io->store = cfg->store;
    snprintf(io->dir, sizeof io->dir, "%s", cfg->dir);
    io->trailing = cfg->trailing;
    io->max_body = cfg->max_frame_body;
    io->hooks = cfg->hooks;
    if (rl_random(&io->rand_state, sizeof io->rand_state) != 0)
        io->rand_state = (unsigned)uv_hrtime();
    char err[256];
    int rv = rl_snapshot_load(cfg->dir, &io->snap, err, sizeof err);
    if (rv < 0) {
        snprintf(rio->errmsg, sizeof rio->errmsg, "%s", err);
        rl_snapshot_desc_close(&io->snap);
        free(io);
        return rv;
    }
    io->have_snap = rv == 0;
    if (!io->have_snap)
        rl_snapshot_desc_close(&io->snap);
    memset(rio, 0, sizeof *rio);
    rio->version = 2;
    rio->impl = io;
    rio->init = io_init;
    rio->close = io_close;
    rio->load = io_load;
    rio->start = io_start;
    rio->bootstrap = io_bootstrap;
    rio->recover = io_recover;
    rio->set_term = io_set_term;
    rio->set_vote = io_set_vote;
    rio->send = io_send;
    rio->append = io_append;
    rio->truncate = io_truncate;
    rio->snapshot_put = io_snapshot_put;
    rio->snapshot_get = io_snapshot_get;
    rio->time = io_time;
    rio->random = io_random;
    rio->async_work = io_async_work;
    return 0;
}
