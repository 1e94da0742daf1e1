/*
 * Catch-up by segment fetch, and serving it to other nodes. Its own
 * protocol over the transport (send.c, recv.c) and the store.
 *
 * libraft sends a follower that is behind the leader's in-memory window an
 * InstallSnapshot. A liblog snapshot is only a descriptor, so installing one
 * means making the local log reach the snapshot's index:
 *
 *  1. Entries after our commit fence may conflict with the leader's log, so
 *     the log is cut back to the fence (entries at or before it are
 *     committed, hence identical everywhere).
 *  2. We ask the node that sent the snapshot for the missing range in
 *     chunks of at most FETCH_CHUNK bytes (FETCH_REQUEST); it answers from
 *     its segment store (FETCH_RESPONSE). Each chunk is appended to our
 *     store, durably, before the next is asked for, so memory stays bounded
 *     by one chunk and a dropped connection costs one chunk: a request
 *     unanswered within FETCH_TIMEOUT_MS is simply asked again.
 *  3. When the log reaches the snapshot index and that entry has the
 *     snapshot's term, the descriptor is saved and libraft is told the
 *     install is complete; replication continues from there.
 *
 * Retention: if the peer has trimmed the start of the range, it answers
 * RLOG_ETRIMMED with the point it can serve from: entry I, the term of
 * entry I - 1 and the record offset of entry I. Our log, which ends before
 * that point, is then reset to begin there (everything before is committed,
 * and trimmed by the cluster): first a descriptor for I - 1 marked as a
 * reset (so a crash before the store's reset is finished makes the next
 * open finish it), then the store's reset; fetching goes on from I. The
 * peer keeps one fully trimmed entry before its first readable record
 * (node/trim.c, rl_trim_store), so I - 1 is always one whose term it knows.
 *
 * Serving reads every entry through the store, which verifies its checksum
 * and refuses a range recorded as damaged: a chunk ends before the first
 * entry this node cannot vouch for, so a damaged copy is never sent (and
 * the frame's checksum is computed over verified bytes only).
 *
 * Repair (node/repair.c) uses the same request and answer for a damaged
 * range of this node's own log: rl_io_repair_ask below, and answers it
 * asked for go to hooks.on_repair_answer instead of the catch-up.
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_CHUNK (4u << 20)
#define FETCH_TIMEOUT_MS 3000

struct fetch {
    struct io *io;
    struct raft_io_snapshot_put *req;
    uint64_t index, term, conf_index; /* the snapshot being installed */
    struct raft_configuration conf;
    uint64_t first, next;             /* range start and next index wanted */
    unsigned sources_tried;           /* peers that could not serve it at all */
    uint64_t bytes;
    uint64_t started_ms;
    uv_timer_t timer;
    bool busy;                        /* a chunk is being written */
    bool stopping, timer_closed;
    struct rl_store_req sreq;
    struct rl_store_entry *entries;
    unsigned n;
    unsigned char *chunk;
};

/* An answer being sent to a peer's fetch request; counted against the
 * serving bounds (bounds.h) from the read until its write completes. */
struct serve {
    struct io *io;
    uint64_t peer;
    uint64_t bytes;
    struct raft_entry *entries;
    struct rl_store_entry *reads;
    unsigned n;
    struct serve *next;
};

static void fetch_send(struct fetch *f);
static void fetch_reset(struct fetch *f, const struct rl_wire_fetch_resp *a);
static bool try_another_source(struct fetch *f);

static void fetch_free_if_done(struct fetch *f)
{
    if (!f->timer_closed || f->busy)
        return;
    struct io *io = f->io;
    raft_configuration_close(&f->conf);
    free(f->entries);
    free(f->chunk);
    free(f);
    io->close_pending--;
    if (io->closing) /* a close was waiting for us */
        io->close_step(io);
}

static void fetch_timer_closed(uv_handle_t *h)
{
    struct fetch *f = h->data;
    f->timer_closed = true;
    fetch_free_if_done(f);
}

/* Ends the fetch; completes libraft's request with status (if not yet). */
static void fetch_end(struct fetch *f, int status)
{
    struct io *io = f->io;
    if (f->stopping)
        return;
    f->stopping = true;
    io->fetch = NULL;
    io->close_pending++; /* until the timer handle is closed */
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, fetch_timer_closed);
    if (status != 0 && f->req) {
        struct raft_io_snapshot_put *req = f->req;
        f->req = NULL;
        rl_io__snapshot_put_done(io, req, status);
    }
    rl_io__release_held(io); /* the install is over: campaigns may go ahead */
}

void rl_io__fetch_stop(struct io *io)
{
    if (io->fetch)
        fetch_end(io->fetch, RAFT_CANCELED);
}

static void fetch_timeout(uv_timer_t *t)
{
    struct fetch *f = t->data;
    rl_io__log(f->io, 1, "catch-up: no answer for entry %" PRIu64 " from %" PRIu64 "; asking again",
               f->next, f->io->snap_source_id);
    fetch_send(f);
}

static void fetch_sent(void *arg, int status)
{
    (void)arg;
    (void)status; /* a lost request is covered by the timeout */
}

int rl_io__ask_fetch(struct io *io, uint64_t peer, const char *address, uint64_t first,
                     uint64_t last, uint64_t budget)
{
    struct rl_wire_fetch_req req = {.first = first, .last = last, .budget = budget};
    struct rl_wire_out out;
    int rv = rl_wire_encode_fetch_req(&req, io->id, &out);
    if (rv != 0)
        return rv == RLOG_ENOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
    return rl_io__send_own(io, peer, address, &out, fetch_sent, NULL);
}

static void fetch_send(struct fetch *f)
{
    struct io *io = f->io;
    uv_timer_start(&f->timer, fetch_timeout, FETCH_TIMEOUT_MS, 0);
    if (rl_io__ask_fetch(io, io->snap_source_id, io->snap_source_addr, f->next, f->index,
                         FETCH_CHUNK) != 0)
        rl_io__log(io, 1, "catch-up: cannot reach %" PRIu64 " at %s yet", io->snap_source_id,
                   io->snap_source_addr);
}

static void fetch_finish(struct fetch *f)
{
    struct io *io = f->io;
    uint64_t ms = uv_now(io->loop) - f->started_ms;
    rl_io__log(io, 1,
               "catch-up: fetched entries %" PRIu64 "..%" PRIu64 " (%.1f MB) in %.1f s (%.1f MB/s)",
               f->first, f->index, (double)f->bytes / 1e6, (double)ms / 1e3,
               ms ? (double)f->bytes / 1e3 / (double)ms : 0.0);
    struct raft_snapshot snap = {.index = f->index, .term = f->term,
                                 .configuration = f->conf,
                                 .configuration_index = f->conf_index};
    struct raft_io_snapshot_put *req = f->req;
    f->req = NULL;
    /* The log now holds the snapshot's range: the ordinary path checks the
     * entry's term and saves the descriptor (libraft's entry point, through
     * the vtable: snapshot_put.c sits above this file). */
    int rv = io->rio->snapshot_put(io->rio, 0, req, &snap, req->cb);
    fetch_end(f, 0);
    if (rv != 0)
        rl_io__snapshot_put_done(io, req, rv);
}

static void fetch_appended(struct rl_store_req *sreq, int status)
{
    struct fetch *f = sreq->data;
    struct io *io = f->io;
    f->busy = false;
    free(f->entries);
    free(f->chunk);
    f->entries = NULL;
    f->chunk = NULL;
    if (f->stopping) {
        fetch_free_if_done(f);
        return;
    }
    if (status != 0) {
        rl_io__fail_stop(io, status, "catch-up append");
        fetch_end(f, RAFT_IOERR);
        return;
    }
    f->next += f->n;
    if (f->next > f->index)
        fetch_finish(f);
    else
        fetch_send(f);
}

/* A chunk arrived: copy it out of the frame and append it. */
static void fetch_chunk(struct io *io, const struct rl_wire_fetch_resp *a)
{
    struct fetch *f = io->fetch;
    rl_io__log(io, 0, "catch-up: got %u entries from %" PRIu64 " (status %d)", a->n_entries,
               a->first, a->status);
    /* first 0: the peer holds nothing of this snapshot any more (it
     * trimmed past it); without ending, we would ask it forever (found by
     * the simulator, random seed 2 with retention). */
    if (f && !f->busy && !f->stopping && a->status == RLOG_ETRIMMED &&
        (a->first == 0 || a->first > f->next)) {
        fetch_reset(f, a);
        return;
    }
    if (!f || f->busy || f->stopping || a->first != f->next)
        return; /* stale or duplicate answer */
    /* Its copy is damaged (and under repair there): another member may
     * serve it now. */
    if (a->status == RLOG_ECORRUPT && try_another_source(f))
        return;
    if (a->status != 0 || a->n_entries == 0) {
        rl_io__log(io, 1, "catch-up: %" PRIu64 " cannot serve entry %" PRIu64 " (%s); retrying",
                   io->snap_source_id, f->next,
                   a->status ? rlog_strerror(a->status) : "it has nothing there yet");
        return; /* the timer asks again */
    }
    unsigned n = a->n_entries;
    if (f->next + n - 1 > f->index)
        n = (unsigned)(f->index - f->next + 1);
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += a->entries[i].buf.len;
    f->entries = calloc(n, sizeof *f->entries);
    f->chunk = malloc(total ? total : 1);
    if (!f->entries || !f->chunk) {
        free(f->entries);
        free(f->chunk);
        f->entries = NULL;
        f->chunk = NULL;
        return;
    }
    size_t pos = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct raft_entry *e = &a->entries[i];
        memcpy(f->chunk + pos, e->buf.base, e->buf.len);
        f->entries[i] = (struct rl_store_entry){
            .index = f->next + i, .term = e->term, .type = (uint8_t)e->type,
            .buf = f->chunk + pos, .len = (uint32_t)e->buf.len,
            .records = e->type == RAFT_COMMAND ? rl_io_batch_records(e->buf.base, e->buf.len) : 0};
        pos += e->buf.len;
    }
    f->n = n;
    f->sreq.data = f;
    uv_timer_stop(&f->timer);
    int rv = rl_store_append(io->store, &f->sreq, f->entries, n, fetch_appended);
    if (rv != 0) {
        rl_io__log(io, 3, "catch-up: append of %u entries at %" PRIu64 ": %s", n, f->next,
                   rl_store_errmsg(io->store));
        free(f->entries);
        free(f->chunk);
        f->entries = NULL;
        f->chunk = NULL;
        fetch_end(f, rv == RLOG_EFATAL ? rl_io__fail_stop(io, rv, "catch-up") : RAFT_IOERR);
        return;
    }
    f->busy = true;
    f->bytes += total;
    if (io->hooks.on_append) {
        uint64_t off = f->sreq.first_offset;
        for (unsigned i = 0; i < n; i++) {
            io->hooks.on_append(io->hooks.arg, f->entries[i].index, f->entries[i].term, off,
                                f->entries[i].records, f->entries[i].buf, f->entries[i].len);
            off += f->entries[i].records;
        }
    }
}

static void serve_done(void *arg, int status)
{
    struct serve *sv = arg;
    struct rl_io_harden *hd = &sv->io->harden;
    (void)status;
    for (struct serve **pp = &hd->serves; *pp; pp = &(*pp)->next)
        if (*pp == sv) {
            *pp = sv->next;
            hd->serving--;
            hd->serving_bytes -= sv->bytes;
            break;
        }
    for (unsigned i = 0; i < sv->n; i++)
        free((void *)sv->reads[i].buf);
    free(sv->reads);
    raft_free(sv->entries);
    free(sv);
}

/* The log was reset (descriptor, then store): fetching goes on from there. */
static void fetch_reset_done(struct rl_store_req *sreq, int status)
{
    struct fetch *f = sreq->data;
    struct io *io = f->io;
    f->busy = false;
    if (f->stopping) {
        fetch_free_if_done(f);
        return;
    }
    if (status != 0) {
        rl_io__fail_stop(io, status, "catch-up reset");
        fetch_end(f, RAFT_IOERR);
        return;
    }
    uint64_t index = rl_store_first_index(io->store);
    if (io->hooks.on_reset)
        io->hooks.on_reset(io->hooks.arg, index, rl_store_first_offset(io->store));
    f->first = f->next = index;
    if (f->next > f->index)
        fetch_finish(f);
    else
        fetch_send(f);
}

static int store_reset_to_snap(struct io *io, struct rl_store_req *sreq, rl_store_cb cb)
{
    rl_io__forget_terms(io);
    return rl_store_reset(io->store, sreq, io->snap.index + 1, io->snap.reset_offset, cb);
}

/* At load: the reset descriptor was saved but the store's reset was not
 * done (the log still ends before it). Done now, before libraft sees it. */
int rl_io__finish_interrupted_reset(struct io *io)
{
    struct sync_wait w = {0};
    struct rl_store_req req = {.data = &w};
    int rv = rl_io__store_wait(io, store_reset_to_snap(io, &req, rl_io__sync_append_cb), &w);
    if (rv != 0) {
        snprintf(io->rio->errmsg, sizeof io->rio->errmsg, "finishing a catch-up reset: %.200s",
                 rl_store_errmsg(io->store));
        return RAFT_IOERR;
    }
    rl_io__log(io, 1, "catch-up: finished an interrupted reset; the log starts at entry %" PRIu64,
               rl_store_first_index(io->store));
    if (io->hooks.on_reset)
        io->hooks.on_reset(io->hooks.arg, rl_store_first_index(io->store),
                           rl_store_first_offset(io->store));
    return 0;
}

static void fetch_reset_saved(struct io *io, int status)
{
    struct fetch *f = io->reset_fetch;
    io->reset_fetch = NULL;
    if (f->stopping) {
        f->busy = false;
        fetch_free_if_done(f);
        return;
    }
    if (status != 0) {
        /* A failed write of the descriptor: a storage failure like any
         * other, so fail-stop (a supervisor restarts the node, and the
         * reset is done again). Found by the simulator (sm-install seed
         * 80029: an EIO here left the node out of the cluster for good,
         * its log neither reset nor fetched). */
        f->busy = false;
        fetch_end(f, rl_io__fail_stop_why(io, RLOG_EIO, "catch-up reset",
                                          "the snapshot descriptor could not be written"));
        return;
    }
    f->sreq.data = f;
    int rv = store_reset_to_snap(io, &f->sreq, fetch_reset_done);
    if (rv != 0) {
        f->busy = false;
        rl_io__log(io, 3, "catch-up: cannot reset the log: %s", rl_store_errmsg(io->store));
        fetch_end(f, rv == RLOG_EFATAL ? rl_io__fail_stop(io, rv, "catch-up reset") : RAFT_IOERR);
    }
}

/* The source cannot serve this range at all: a log it reset itself begins
 * with a live entry whose predecessor's term it no longer knows. Another
 * member may (found by the simulator, random5 seed 1: the leader could not,
 * and libraft resent the same snapshot forever). Returns false once every
 * other member was asked. */
static bool try_another_source(struct fetch *f)
{
    struct io *io = f->io;
    unsigned n = f->conf.n;
    if (++f->sources_tried >= n)
        return false;
    unsigned at = 0;
    for (unsigned i = 0; i < n; i++)
        if (f->conf.servers[i].id == io->snap_source_id)
            at = i;
    for (unsigned k = 1; k < n; k++) {
        const struct raft_server *s = &f->conf.servers[(at + k) % n];
        if (s->id == io->id)
            continue;
        char addr[sizeof io->snap_source_addr];
        if (io->hooks.peer_address &&
            io->hooks.peer_address(io->hooks.arg, s->id, addr, sizeof addr) != 0)
            continue;
        if (!io->hooks.peer_address)
            snprintf(addr, sizeof addr, "%s", s->address);
        rl_io__log(io, 1, "catch-up: %" PRIu64 " cannot serve entry %" PRIu64 "; asking %" PRIu64,
                   io->snap_source_id, f->next, (uint64_t)s->id);
        io->snap_source_id = s->id;
        snprintf(io->snap_source_addr, sizeof io->snap_source_addr, "%s", addr);
        fetch_send(f);
        return true;
    }
    return false;
}

/* The peer trimmed what we asked for; it serves from a->first (0: nothing
 * of it). */
static void fetch_reset(struct fetch *f, const struct rl_wire_fetch_resp *a)
{
    struct io *io = f->io;
    uint64_t index = a->first;
    if ((index == 0 || index - 1 > f->index) && try_another_source(f))
        return;
    if (index == 0 || index - 1 > f->index) {
        /* No member holds anything of this snapshot any more: libraft sends
         * a newer one after its install timeout. */
        rl_io__log(io, 1, "catch-up: %" PRIu64 " has trimmed past entry %" PRIu64 "; waiting for a"
                   " newer snapshot", io->snap_source_id, f->index);
        fetch_end(f, RAFT_IOERR);
        return;
    }
    rl_io__log(io, 1, "catch-up: %" PRIu64 " has trimmed entries before %" PRIu64
               " (record %" PRIu64 "); this log restarts there", io->snap_source_id, index,
               a->restart_offset);
    struct raft_snapshot at = {.index = index - 1, .term = a->restart_term,
                               .configuration = f->conf};
    uint64_t conf_index = f->conf_index < index - 1 ? f->conf_index : index - 1;
    uv_timer_stop(&f->timer);
    f->busy = true;
    io->reset_fetch = f;
    int rv = rl_io__snap_put_queue(io, NULL, fetch_reset_saved, &at, conf_index, index - 1,
                                   a->restart_offset);
    if (rv != 0) {
        f->busy = false;
        io->reset_fetch = NULL;
        fetch_end(f, rv);
    }
}

/* Where a peer whose fetch starts before our first entry can restart its
 * log: entry *index, after an entry of term *term, at record *offset; or
 * false if not within the range it wants (up to `to`). */
static bool restart_point(struct io *io, uint64_t to, uint64_t *index, uint64_t *term,
                          uint64_t *offset)
{
    uint64_t first = rl_store_first_index(io->store), last = rl_store_last_index(io->store);
    struct rl_store_entry e;
    /* The first entry is the one kept fully trimmed for its term only if
     * all its records are gone; a log that was itself just reset begins
     * with a live entry (treating that one as trimmed lost its records on
     * the peer: found by the simulator, random5 seed 1). */
    if (first <= last && first <= to && rl_store_read(io->store, first, &e) == 0) {
        free((void *)e.buf);
        if (e.offset + e.records <= rl_store_first_offset(io->store)) {
            *index = first + 1;
            *term = e.term;
            *offset = e.offset + e.records;
            return true;
        }
    }
    if (!io->have_snap || io->snap.index + 1 != first || io->snap.index > to)
        return false;
    *index = first;
    *term = io->snap.term;
    *offset = rl_store_next_offset(io->store);
    if (first <= last) {
        if (rl_store_read(io->store, first, &e) != 0)
            return false;
        free((void *)e.buf);
        *offset = e.offset;
    }
    return true;
}

/* Why a fetch request must not be served now, or NULL. Each answer holds
 * the entries it read until its write completes, so without a bound a
 * stream of small requests makes this node hold gigabytes (250 requests of
 * 56 bytes took a node to 1 GB). A dropped request costs its sender one
 * retry after its timeout. Membership is checked before (guard.c). */
static const char *serve_refusal(struct io *io, uint64_t peer)
{
    const struct rl_io_harden *hd = &io->harden;
    for (const struct serve *sv = hd->serves; sv; sv = sv->next)
        if (sv->peer == peer)
            return "an answer to this peer is still being sent";
    if (hd->serving >= (hd->bounds.fetch_serve_max ? hd->bounds.fetch_serve_max : 1))
        return "fetch_serve_max answers are being sent";
    if (hd->serving_bytes >= hd->bounds.fetch_serve_bytes)
        return "fetch_serve_bytes are being sent";
    return NULL;
}

static void serve_refused(struct io *io, uint64_t peer, const char *why)
{
    struct rl_io_harden *hd = &io->harden;
    hd->stats.fetch_serve_refused++;
    rl_io__log(io, hd->warned_fetch ? 0 : 2,
               "catch-up: not serving a fetch request from %" PRIu64 ": %s (%" PRIu64
               " refused so far; the peer asks again)", peer, why, hd->stats.fetch_serve_refused);
    hd->warned_fetch = true;
}

/* Reads entries from..to for an answer, within `budget` bytes of payload
 * (at least one entry, if `room` allows it) and within a frame this node
 * would accept itself. Returns false if a bound left out even the first. */
static bool serve_read(struct io *io, struct serve *sv, uint64_t from, uint64_t to,
                       uint64_t budget, uint64_t room, bool *damaged_first)
{
    size_t cap = (size_t)(to - from + 1 < 4096 ? to - from + 1 : 4096);
    sv->reads = calloc(cap, sizeof *sv->reads);
    sv->entries = raft_calloc(cap, sizeof *sv->entries);
    /* The frame body: fixed fields, then per entry three fields and the
     * payload padded to 8 (lib/wire/raft_msg.c). */
    uint64_t body = 5 * 8;
    for (uint64_t i = from; sv->reads && sv->entries && i <= to && sv->n < cap; i++) {
        struct rl_store_entry *e = &sv->reads[sv->n];
        int rv = rl_store_read(io->store, i, e);
        if (rv != 0) {
            rl_io__log(io, 3, "catch-up: serving entry %" PRIu64 ": %s", i,
                       rl_store_errmsg(io->store));
            /* A damaged copy is never sent (checksums on the wire cover
             * verified bytes only); with nothing before it, the answer says
             * so and the asker goes to another member. */
            *damaged_first = rv == RLOG_ECORRUPT && sv->n == 0;
            break;
        }
        uint64_t grown = body + 3 * 8 + ((e->len + 7u) & ~7u);
        if (sv->bytes + e->len > room || grown > io->max_body ||
            (sv->n > 0 && sv->bytes + e->len > budget)) {
            free((void *)e->buf);
            return sv->n > 0;
        }
        sv->entries[sv->n] = (struct raft_entry){.term = e->term, .type = e->type,
                                                 .buf = {(void *)e->buf, e->len}};
        sv->n++;
        sv->bytes += e->len;
        body = grown;
    }
    return true;
}

/* Another node asks for part of our log. */
void rl_io__fetch_serve(struct io *io, uint64_t peer, const char *address,
                        const struct rl_wire_fetch_req *req)
{
    if (io->closing || io->fatal)
        return;
    struct rl_io_harden *hd = &io->harden;
    const char *why = serve_refusal(io, peer);
    if (why) {
        serve_refused(io, peer, why);
        return;
    }
    uint64_t from = req->first, to = req->last;
    uint64_t wanted_to = to;
    uint64_t budget = req->budget;
    uint64_t first = rl_store_first_index(io->store), last = rl_store_last_index(io->store);
    if (budget > FETCH_CHUNK)
        budget = FETCH_CHUNK;
    if (to > last)
        to = last;
    struct serve *sv = calloc(1, sizeof *sv);
    if (!sv)
        return;
    sv->io = io;
    sv->peer = peer;
    struct rl_wire_fetch_resp m = {.first = from, .last = last};
    if (from < first || from == 0) {
        uint64_t index, term, offset;
        /* Entry 1 has nothing trimmed before it: no restart point. */
        if (restart_point(io, wanted_to, &index, &term, &offset) && index >= 2)
            m = (struct rl_wire_fetch_resp){.status = RLOG_ETRIMMED, .first = index,
                                            .restart_term = term, .restart_offset = offset};
        else
            m = (struct rl_wire_fetch_resp){.status = RLOG_ETRIMMED, .last = last};
    } else if (from <= to) {
        bool damaged_first = false;
        if (!serve_read(io, sv, from, to, budget,
                        hd->bounds.fetch_serve_bytes - hd->serving_bytes, &damaged_first)) {
            serve_done(sv, 0);
            serve_refused(io, peer, "its first entry does not fit in fetch_serve_bytes or a frame");
            return;
        }
        if (damaged_first) /* the asker tries another member */
            m.status = RLOG_ECORRUPT;
        m.entries = sv->n ? sv->entries : NULL;
        m.n_entries = sv->n;
    }
    sv->next = hd->serves;
    hd->serves = sv;
    hd->serving++;
    hd->serving_bytes += sv->bytes;
    rl_io__log(io, 0, "catch-up: serving %u entries from %" PRIu64 " to %" PRIu64, sv->n, from,
               peer);
    struct rl_wire_out out;
    if (rl_wire_encode_fetch_resp(&m, io->id, &out) != 0 ||
        rl_io__send_own(io, peer, address, &out, serve_done, sv) != 0)
        serve_done(sv, 0);
}

void rl_io__fetch_answer(struct io *io, uint64_t peer, const struct rl_wire_fetch_resp *a)
{
    if (io->closing || io->fatal)
        return;
    if (!io->hooks.on_repair_answer || !io->hooks.on_repair_answer(io->hooks.arg, peer, a))
        fetch_chunk(io, a);
}

int rl_io_repair_ask(struct raft_io *rio, uint64_t peer, uint64_t from, uint64_t to)
{
    struct io *io = rio->impl;
    if (io->closing || io->fatal)
        return RLOG_ECLOSED;
    if (io->fetch || io->rewind.asked)
        return RLOG_EBUSY;
    char addr[sizeof io->snap_source_addr];
    if (!io->hooks.peer_address || io->hooks.peer_address(io->hooks.arg, peer, addr, sizeof addr))
        return RLOG_EINVAL;
    /* The transport takes fetch answers only from the source chosen last
     * (recv.c, own_refusal); no catch-up is using it now, and the next
     * InstallSnapshot chooses its own. */
    io->snap_source_id = peer;
    snprintf(io->snap_source_addr, sizeof io->snap_source_addr, "%s", addr);
    return rl_io__ask_fetch(io, peer, io->snap_source_addr, from, to, FETCH_CHUNK) == 0 ? 0
                                                                                     : RLOG_EIO;
}

int rl_io__fetch_start(struct io *io, struct raft_io_snapshot_put *req,
                       const struct raft_snapshot *snap)
{
    if (io->fetch)
        return RAFT_BUSY;
    if (!io->snap_source_id) {
        snprintf(io->rio->errmsg, sizeof io->rio->errmsg, "snapshot from an unknown node");
        return RAFT_IOERR;
    }
    struct fetch *f = calloc(1, sizeof *f);
    if (!f)
        return RAFT_NOMEM;
    f->io = io;
    f->req = req;
    f->index = snap->index;
    f->term = snap->term;
    f->conf_index = snap->configuration_index;
    raft_configuration_init(&f->conf);
    for (unsigned i = 0; i < snap->configuration.n; i++)
        if (raft_configuration_add(&f->conf, snap->configuration.servers[i].id,
                                   snap->configuration.servers[i].address,
                                   snap->configuration.servers[i].role) != 0) {
            raft_configuration_close(&f->conf);
            free(f);
            return RAFT_NOMEM;
        }
    uint64_t end = rl_store_next_index(io->store) - 1;
    uint64_t committed = rl_io__committed_here(io);
    uint64_t keep = end < committed ? end : committed;
    /* An entry holding trimmed records is committed too, though the fence
     * restored at a restart may lie below it (found by fresh simulator
     * seed 1010032 with three logs a host: the cut was refused, the
     * install failed, and libraft left the node unavailable for good). */
    uint64_t floor = rl_store_cut_floor(io->store);
    if (keep < floor - 1)
        keep = floor - 1;
    /* Step 1: drop what may conflict, including appends still queued or
     * being written (keeping those and fetching after the durable end
     * appended the fetched range behind a stale suffix: nemesis seed
     * 394640568). The cut is queued after them, the fetched chunks after
     * the cut. */
    int rv = rl_io__cut_after(io, keep, "catch-up");
    if (rv != 0) {
        raft_configuration_close(&f->conf);
        free(f);
        return rv;
    }
    f->first = f->next = keep + 1;
    f->started_ms = uv_now(io->loop);
    uv_timer_init(io->loop, &f->timer);
    f->timer.data = f;
    io->fetch = f;
    rl_io__log(io, 1, "catch-up: fetching entries %" PRIu64 "..%" PRIu64 " from %" PRIu64 " (%s)",
               f->next, f->index, io->snap_source_id, io->snap_source_addr);
    fetch_send(f);
    return 0;
}

/* A fetch still writing a chunk or its reset holds up a close. */
bool rl_io__fetch_busy(const struct io *io)
{
    return io->fetch && io->fetch->busy;
}

bool rl_io_catchup(struct raft_io *rio, uint64_t *next, uint64_t *target)
{
    struct io *io = rio->impl;
    if (!io || !io->fetch)
        return false;
    *next = io->fetch->next;
    *target = io->fetch->index;
    return true;
}
