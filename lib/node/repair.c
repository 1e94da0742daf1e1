/*
 * repair — a damaged range of this node's committed log is fetched from a
 * peer whose copy verifies, and written back (store: rl_store_repair).
 *
 * The store records damage (a durable frame that fails its checksum, at
 * open or on a read) and refuses every read in it with RLOG_ECORRUPT, so
 * nothing damaged is ever served, sent in a fetch, or handed to libraft.
 * From the loop (rl_repair_poll, after every raft event) this module takes
 * the first damaged range that can be repaired now:
 *  - it lies in a sealed segment (the one being appended to is rebuilt once
 *    it is sealed);
 *  - it is committed here (at or before the visibility fence): Raft's log
 *    matching makes a committed entry the same on every replica, so any
 *    peer's verified copy of it is the one this node had. Nothing that
 *    could still change is repaired.
 * It asks one member at a time for the range (the catch-up fetch protocol,
 * lib/raftio/fetch.c), and trusts the answer only if every entry is well
 * formed (a COMMAND entry is a valid batch with its own checksum, on top of
 * the frame checksum on the wire), the terms never decrease and lie between
 * those of the good entries on either side of the range here, and the
 * whole fits the range exactly: the same number of entries and records,
 * and the same bytes on disk where the damage ends at a good frame (the
 * store checks those). The damaged bytes' own header fields (index, term,
 * offset, length) are never used. A peer that cannot serve the range (it
 * is damaged there too, or trimmed it), does not answer within
 * REPAIR_TIMEOUT_MS, or answers with entries that do not fit, is skipped
 * for the next member. When no member can, the range stays unreadable and
 * the node says so (log, rlog_status) and tries again every
 * REPAIR_RETRY_MS. Appends and reads elsewhere go on meanwhile.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch/batch.h"
#include "node/node.h"
#include "raftio/io.h"
#include "wire/codec.h"

#define REPAIR_POLL_MS 100
#define REPAIR_TIMEOUT_MS 2000
#define REPAIR_RETRY_MS 1000
#define REPAIR_NOTICE_MS 10000

static uint64_t now_ms(struct rlog *log)
{
    return uv_now(log->loop);
}

static void drop_entries(struct rl_repair *r)
{
    for (unsigned i = 0; i < r->n; i++)
        free((void *)r->entries[i].buf);
    free(r->entries);
    r->entries = NULL;
    r->n = r->cap = 0;
}

void rl_repair_free(struct rl_repair *r)
{
    if (!r->writing)
        drop_entries(r);
}

/* Ends the attempt with this peer; the next poll asks the next member. */
static void give_up_peer(struct rlog *log, const char *why)
{
    struct rl_repair *r = &log->repair;
    rl_log(log, 1, "repair: %" PRIu64 " cannot repair entries %" PRIu64 "..%" PRIu64 ": %s",
           r->source, r->first, r->last, why);
    drop_entries(r);
    r->asking = false;
    r->tried++;
    r->turn++;
    /* The next member at once; after a round of them, a pause. */
    unsigned others = log->raft.configuration.n > 1 ? log->raft.configuration.n - 1 : 1;
    r->retry_at = now_ms(log) + (r->tried % others ? 0 : REPAIR_RETRY_MS);
}

/* The term of entry index here, or 0 if it cannot be read. */
static uint64_t term_here(struct rlog *log, uint64_t index)
{
    struct rl_store_entry e;
    if (index == 0 || rl_store_read(log->store, index, &e) != 0)
        return 0;
    free((void *)e.buf);
    return e.term;
}

/* The next member to ask, other than this node; 0 if there is none. */
static uint64_t next_peer(struct rlog *log)
{
    const struct raft_configuration *c = &log->raft.configuration;
    for (unsigned k = 0; k < c->n; k++) {
        const struct raft_server *s = &c->servers[(log->repair.turn + k) % c->n];
        if (s->id != log->cfg.id) {
            log->repair.turn = (log->repair.turn + k) % c->n;
            return s->id;
        }
    }
    return 0;
}

static void ask(struct rlog *log)
{
    struct rl_repair *r = &log->repair;
    r->source = next_peer(log);
    if (!r->source)
        return;
    int rv = rl_io_repair_ask(&log->io, r->source, r->first + r->n, r->last);
    r->asked_ms = now_ms(log);
    r->asking = rv == 0;
    if (rv != 0) {
        r->turn++;
        r->retry_at = now_ms(log) + REPAIR_POLL_MS;
        return;
    }
    rl_log(log, 0, "repair: asking %" PRIu64 " for entries %" PRIu64 "..%" PRIu64, r->source,
           r->first + r->n, r->last);
}

static void written(struct rl_store_req *req, int status)
{
    struct rlog *log = req->data;
    struct rl_repair *r = &log->repair;
    r->writing = false;
    uint64_t ms = now_ms(log) - r->started_ms;
    if (status == 0) {
        rl_log(log, 2, "repair: entries %" PRIu64 "..%" PRIu64 " (records [%" PRIu64 ", %" PRIu64
               ")) were damaged here; repaired from %" PRIu64 "'s copy in %" PRIu64 " ms",
               r->first, r->last, r->first_offset, r->end_offset, r->source, ms);
        r->tried = 0;
    } else if (status != RLOG_ECANCELED) {
        rl_log(log, 3, "repair: writing entries %" PRIu64 "..%" PRIu64 " back failed (%s): %s",
               r->first, r->last, rlog_errname(status),
               log->store ? rl_store_errmsg(log->store) : "");
        r->retry_at = now_ms(log) + REPAIR_RETRY_MS;
    }
    drop_entries(r);
}

/* Checks the peer's entries against what this node knows, keeps copies. */
static const char *take(struct rlog *log, const struct rl_wire_fetch_resp *a)
{
    struct rl_repair *r = &log->repair;
    unsigned n = a->n_entries;
    uint64_t from = r->first + r->n;
    if (from + n - 1 > r->last)
        n = (unsigned)(r->last - from + 1);
    if (r->n + n > r->cap) {
        unsigned cap = (unsigned)(r->last - r->first + 1);
        struct rl_store_entry *p = realloc(r->entries, cap * sizeof *p);
        if (!p)
            return "out of memory";
        r->entries = p;
        r->cap = cap;
    }
    uint64_t prev = r->n ? r->entries[r->n - 1].term : r->prev_term;
    for (unsigned i = 0; i < n; i++) {
        const struct raft_entry *e = &a->entries[i];
        if (e->term == 0 || e->term < prev || (r->next_term && e->term > r->next_term) ||
            e->term > log->raft.current_term)
            return "an entry's term does not fit between its neighbours here";
        if (e->type != RAFT_COMMAND && e->type != RAFT_BARRIER && e->type != RAFT_CHANGE)
            return "an entry of an unknown type";
        /* A repair copy is checked whole, batch checksum too: it replaces
         * bytes this node found damaged. A retention command is a valid
         * batch with no records. */
        struct rl_batch_view v;
        if (e->type == RAFT_COMMAND && !rl_batch_parse(e->buf.base, e->buf.len, &v))
            return "a command entry that is not a valid batch";
        uint32_t records = e->type == RAFT_COMMAND ? v.count : 0;
        void *copy = malloc(e->buf.len ? e->buf.len : 1);
        if (!copy)
            return "out of memory";
        memcpy(copy, e->buf.base, e->buf.len);
        r->entries[r->n++] = (struct rl_store_entry){.index = from + i, .term = e->term,
                                                     .records = records, .type = (uint8_t)e->type,
                                                     .buf = copy, .len = (uint32_t)e->buf.len};
        prev = e->term;
    }
    return NULL;
}

bool rl_repair_answer(void *arg, uint64_t from, const struct rl_wire_fetch_resp *a)
{
    struct rlog *log = arg;
    struct rl_repair *r = &log->repair;
    if (!r->asking || from != r->source || a->first != r->first + r->n)
        return false;
    if (a->status != 0 || a->n_entries == 0) {
        char why[96];
        snprintf(why, sizeof why, "it %s",
                 a->status ? rlog_strerror(a->status) : "cannot serve them either");
        give_up_peer(log, why);
        return true;
    }
    const char *bad = take(log, a);
    if (bad) {
        give_up_peer(log, bad);
        return true;
    }
    if (r->first + r->n <= r->last) {
        ask(log); /* the rest, from the same peer */
        return true;
    }
    r->asking = false;
    r->req.data = log;
    int rv = rl_store_repair(log->store, &r->req, r->entries, r->n, written);
    if (rv != 0) {
        give_up_peer(log, rl_store_errmsg(log->store));
        return true;
    }
    r->writing = true;
    return true;
}

/* The first damaged range that can be repaired now, or false. */
static bool pick(struct rlog *log, struct rl_store_damage *out, bool *waiting)
{
    struct rl_store_damage d[16];
    size_t n = rl_store_damaged(log->store, d, 16);
    *waiting = n > 0;
    for (size_t i = 0; i < n && i < 16; i++)
        if (d[i].sealed && !d[i].repairing && d[i].last_index <= log->fence.visible_index) {
            *out = d[i];
            return true;
        }
    return false;
}

void rl_repair_poll(struct rlog *log)
{
    struct rl_repair *r = &log->repair;
    uint64_t now = now_ms(log);
    if (!log->store || log->fatal || r->writing || now < r->polled_ms + REPAIR_POLL_MS)
        return;
    r->polled_ms = now;
    if (r->asking) {
        if (now >= r->asked_ms + REPAIR_TIMEOUT_MS)
            give_up_peer(log, "no answer");
        return;
    }
    if (now < r->retry_at)
        return;
    struct rl_store_damage d;
    bool waiting;
    if (!pick(log, &d, &waiting)) {
        if (waiting && now >= r->noticed_ms + REPAIR_NOTICE_MS) {
            r->noticed_ms = now;
            rl_log(log, 2, "repair: %" PRIu64 " entries are damaged here and unreadable; waiting"
                   " until they are committed here and their segment is sealed",
                   rl_store_unreadable(log->store));
        }
        return;
    }
    if (d.first_index != r->first || d.last_index != r->last) {
        r->tried = 0;
        r->started_ms = now;
        rl_log(log, 2, "repair: entries %" PRIu64 "..%" PRIu64 " (records [%" PRIu64 ", %" PRIu64
               "), seg-%016" PRIx64 ".log) are damaged here; unreadable until repaired from a peer",
               d.first_index, d.last_index, d.first_offset, d.end_offset, d.seq);
    } else if (r->tried >= log->raft.configuration.n && now >= r->noticed_ms + REPAIR_NOTICE_MS) {
        r->noticed_ms = now;
        rl_log(log, 2, "repair: no member has served a good copy of entries %" PRIu64 "..%" PRIu64
               " yet; they stay unreadable here, retrying", d.first_index, d.last_index);
    }
    r->first = d.first_index;
    r->last = d.last_index;
    r->first_offset = d.first_offset;
    r->end_offset = d.end_offset;
    /* The good neighbours bound the terms (0: unknown, no bound). */
    r->prev_term = term_here(log, d.first_index - 1);
    r->next_term = term_here(log, d.last_index + 1);
    drop_entries(r);
    ask(log);
}

void rl_repair_status(struct rlog *log, struct rlog_status *st)
{
    if (!log->store)
        return;
    struct rl_store_stats ss;
    rl_store_stats(log->store, &ss);
    st->repaired_ranges = ss.repaired_ranges;
    st->repaired_entries = ss.repaired_entries;
    st->damaged_ranges = ss.damaged_ranges;
    /* A damaged entry libraft had to load was cut at open with the rest of
     * the tail (raftio/floor.c): repaired once the leader sent it all back. */
    unsigned long cleared = 0;
    if (log->floor_cut_entries) {
        bool pending = rl_io_floor(&log->io, NULL, &cleared);
        if (!pending && cleared) {
            st->repaired_ranges++;
            st->repaired_entries += log->floor_cut_entries;
        }
    }
    st->unreadable_entries = rl_store_unreadable(log->store);
}
