/*
 * raft_io load, bootstrap and metadata (term, vote) over the segment store.
 */
#include "raftio/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (r == RLOG_ECORRUPT && i < needed) {
            /* Damaged (and recorded for repair): the trailing entries are
             * optional, libraft's memory starts after it. */
            rl_io__log(io, 2, "load: %.200s; libraft's window starts at entry %" PRIu64,
                       rl_store_errmsg(io->store), i + 1);
            break;
        }
        if (r != 0) {
            /* Entries after the snapshot cannot be left out of libraft's
             * log, and a damaged one cannot be handed to it. */
            snprintf(io->rio->errmsg, sizeof io->rio->errmsg, "load entry %" PRIu64 ": %.120s%s",
                     i, rl_store_errmsg(io->store),
                     r == RLOG_ECORRUPT ? " (after the snapshot: libraft needs it)" : "");
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

int rl_io__load(struct raft_io *rio, raft_term *term, raft_id *voted_for,
                struct raft_snapshot **snapshot, raft_index *start_index,
                struct raft_entry *entries[], size_t *n_entries)
{
    struct io *io = rio->impl;
    *term = rl_store_term(io->store);
    *voted_for = rl_store_vote(io->store);
    *snapshot = NULL;
    if (io->have_snap && io->snap.reset_offset != RL_SNAPSHOT_NO_RESET &&
        io->snap.index > rl_store_last_index(io->store)) {
        int rv = rl_io__finish_interrupted_reset(io);
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

int rl_io__bootstrap(struct raft_io *rio, const struct raft_configuration *conf)
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
        rv = rl_io__store_wait(io, rl_store_append(io->store, &req, &e, 1, rl_io__sync_append_cb),
                               &w);
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

int rl_io__recover(struct raft_io *rio, const struct raft_configuration *conf)
{
    (void)conf;
    snprintf(rio->errmsg, sizeof rio->errmsg, "forced configuration recovery is not supported");
    return RAFT_NOTFOUND;
}

/* A failed term or vote write: the node fails stop, and libraft is told
 * the write went through. libraft 0.15 cannot take the failure when it
 * starts an election (convertToCandidate sets RAFT_FOLLOWER over the
 * candidate's state without clearing it, and a later clear frees a byte
 * of it as a pointer: found by the simulator, forward seed 11450, a
 * TimeoutNow with the vote write failing). Nothing of the unrecorded term
 * or vote is ever seen: a failed backend drops every message and tick, and
 * sends nothing more (rl_io__send). */
static int failed_metadata(struct io *io, int rv, const char *what)
{
    rl_io__fail_stop(io, rv, what);
    return 0;
}

int rl_io__set_term(struct raft_io *rio, raft_term term)
{
    struct io *io = rio->impl;
    if (io->fatal)
        return RAFT_IOERR;
    int rv = rl_store_set_term_vote(io->store, term, 0);
    return rv ? failed_metadata(io, rv, "set term") : 0;
}

int rl_io__set_vote(struct raft_io *rio, raft_id server_id)
{
    struct io *io = rio->impl;
    if (io->fatal)
        return RAFT_IOERR;
    int rv = rl_store_set_term_vote(io->store, rl_store_term(io->store), server_id);
    return rv ? failed_metadata(io, rv, "set vote") : 0;
}
