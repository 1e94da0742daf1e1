/*
 * serve — reads, iterator chunks and status, on the loop thread: from the
 * read cache or the store, only what is committed and not trimmed.
 */
#include "node/node.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "raftio/io.h"
#include "raftio/bounds.h"
#include "sm/sm.h"

/* The entry holding record `offset` (a copy: from the cache, or the store),
 * checked to be a valid batch. 0 or an error with msg filled. */
static int entry_at(struct rlog *log, uint64_t offset, struct rl_store_entry *e,
                    struct rl_batch_view *v, char *msg, size_t msglen)
{
    struct rl_cache_entry ce;
    int got = rl_cache_get(&log->cache, offset, &ce);
    if (got == RLOG_ENOMEM)
        return RLOG_ENOMEM;
    if (got == 0) {
        *e = (struct rl_store_entry){.index = ce.index, .offset = ce.offset,
                                     .records = ce.records, .buf = ce.data, .len = ce.len};
    } else {
        int rv = rl_store_read_offset(log->store, offset, e);
        if (rv != 0) {
            snprintf(msg, msglen, "%s", rl_store_errmsg(log->store));
            return rv;
        }
    }
    /* The cache's copy was verified on its way in, the store's by its
     * frame checksum as it was read: the layout is all left to check. */
    if (!rl_batch_parse_layout(e->buf, e->len, v) || v->count != e->records) {
        free((void *)e->buf);
        snprintf(msg, msglen, "entry %" PRIu64 " holding offset %" PRIu64 " is not a valid batch",
                 e->index, offset);
        return RLOG_ECORRUPT;
    }
    return 0;
}

/* The first readable record: a trim is in force before the store's job
 * that applies it completes. */
static uint64_t first_offset(struct rlog *log)
{
    uint64_t f = rl_store_first_offset(log->store);
    return f > log->trim_offset ? f : log->trim_offset;
}

/* Why a read of `offset` cannot be served now, or 0. */
static int readable(struct rlog *log, uint64_t offset, char *msg, size_t msglen)
{
    if (!log->store) {
        snprintf(msg, msglen, "log is closing");
        return RLOG_ECLOSED;
    }
    if (offset < first_offset(log)) {
        snprintf(msg, msglen, "offset %" PRIu64 " was trimmed; the log starts at %" PRIu64,
                 offset, first_offset(log));
        return RLOG_ETRIMMED;
    }
    if (offset >= log->fence.visible_offset && log->fatal) {
        /* Not "not yet": this node will learn of no further commit. */
        snprintf(msg, msglen, "offset %" PRIu64 " is past the %" PRIu64 " records committed "
                 "before this node failed stop: %.150s", offset, log->fence.visible_offset,
                 log->fatal_msg);
        return RLOG_EFATAL;
    }
    if (offset >= log->fence.visible_offset) {
        snprintf(msg, msglen, "offset %" PRIu64 " is not committed (the log's next offset is %" PRIu64
                 ")", offset, log->fence.visible_offset);
        return RLOG_ENOTFOUND;
    }
    return 0;
}

void rl_do_read(struct rlog *log, struct rl_op *op)
{
    struct rl_store_entry e;
    struct rl_batch_view v;
    int rv = readable(log, op->offset, op->errmsg, sizeof op->errmsg);
    if (rv == 0)
        rv = entry_at(log, op->offset, &e, &v, op->errmsg, sizeof op->errmsg);
    if (rv == 0) {
        const void *rec;
        size_t len;
        rl_batch_record(&v, (uint32_t)(op->offset - e.offset), &rec, &len);
        op->buf = malloc(len ? len : 1);
        if (op->buf)
            memcpy(op->buf, rec, len);
        op->len = len;
        free((void *)e.buf);
        if (!op->buf)
            rv = RLOG_ENOMEM;
    }
    op->status = rv;
    if (rv == RLOG_ENOMEM)
        snprintf(op->errmsg, sizeof op->errmsg, "out of memory");
    rl_op_finish(log, op);
}

/* Consecutive visible entries from op->offset into one chunk (node/cache.h);
 * op->count is how many. A later entry that fails ends the chunk early; its
 * error comes with the next fetch. */
void rl_do_fetch(struct rlog *log, struct rl_op *op)
{
    uint64_t off = op->offset;
    struct rl_chunk ch = {0};
    uint32_t n = 0;
    int rv = 0;
    while (ch.len < RL_FETCH_BUDGET) {
        char msg[256];
        struct rl_store_entry e;
        struct rl_batch_view v;
        rv = readable(log, off, msg, sizeof msg);
        if (rv == 0)
            rv = entry_at(log, off, &e, &v, msg, sizeof msg);
        if (rv != 0) {
            if (n == 0)
                snprintf(op->errmsg, sizeof op->errmsg, "%s", msg);
            break;
        }
        uint64_t visible = log->fence.visible_offset - e.offset;
        uint32_t count = (uint32_t)(visible < e.records ? visible : e.records);
        rv = rl_chunk_add(&ch, e.offset, count, e.buf, e.len);
        free((void *)e.buf);
        if (rv != 0)
            break;
        n++;
        off = e.offset + count;
        if (count < e.records)
            break; /* the rest is not committed yet */
    }
    if (n > 0) {
        op->status = 0;
        op->buf = ch.p;
        op->len = ch.len;
        op->count = n;
    } else {
        free(ch.p);
        op->status = rv ? rv : RLOG_ENOTFOUND;
        if (rv == RLOG_ENOMEM)
            snprintf(op->errmsg, sizeof op->errmsg, "out of memory");
    }
    rl_op_finish(log, op);
}

/* The time index reads whole entries (the cache's copy, else the store's,
 * checksummed) for the batch time in their header. */
static int time_read(void *arg, uint64_t offset, struct rl_tindex_batch *b)
{
    struct rlog *log = arg;
    struct rl_store_entry e;
    struct rl_batch_view v;
    char msg[256];
    if (!log->store)
        return RLOG_ECLOSED;
    int rv = entry_at(log, offset, &e, &v, msg, sizeof msg);
    if (rv != 0)
        return rv;
    *b = (struct rl_tindex_batch){.base = e.offset, .records = e.records, .ts = v.timestamp,
                                  .bytes = v.data_len, .ends = v.ends, .owned = (void *)e.buf};
    return 0;
}

static void time_release(void *arg, struct rl_tindex_batch *b)
{
    (void)arg;
    free(b->owned);
}

void rl_time_src(struct rlog *log, struct rl_tindex_src *src)
{
    *src = (struct rl_tindex_src){.read = time_read, .release = time_release, .arg = log};
}

void rl_do_time(struct rlog *log, struct rl_op *op)
{
    uint64_t t = op->offset, end = log->fence.visible_offset;
    struct rl_tindex_src src;
    rl_time_src(log, &src);
    int rv = log->store ? rl_tindex_catch_up(&log->tindex, &src, end, t) : RLOG_ECLOSED;
    if (rv == 0)
        rv = rl_tindex_find_time(&log->tindex, &src, t, &op->first_offset);
    if (rv == 0 && op->first_offset < log->trim_offset)
        op->first_offset = log->trim_offset;
    if (rv == RLOG_ENOTFOUND) {
        op->first_offset = end;
        snprintf(op->errmsg, sizeof op->errmsg, "no committed record has a batch time at or "
                 "after %" PRIu64 " us (the log's commit offset is %" PRIu64 ")", t, end);
    } else if (rv == RLOG_ECLOSED) {
        snprintf(op->errmsg, sizeof op->errmsg, "log is closing");
    } else if (rv != 0) {
        snprintf(op->errmsg, sizeof op->errmsg, "time index: reading the log: %s",
                 rv == RLOG_ENOMEM ? "out of memory" : rl_store_errmsg(log->store));
    }
    op->status = rv;
    rl_op_finish(log, op);
}

void rl_node_status(struct rlog *log, struct rlog_status *st)
{
    memset(st, 0, sizeof *st);
    st->id = log->cfg.id;
    struct rl_io_net_stats ns;
    rl_io_net_stats(&log->io, &ns);
    /* Its own files, or its host's (a shared transport). */
    st->tls = ns.tls || (log->cfg.tls_ca_file && log->cfg.tls_ca_file[0]) ||
              (log->via && log->via->tls);
    st->insecure = !st->tls;
    st->refused_connections = ns.refused_connections;
    st->rejected_handshakes = ns.rejected_handshakes;
    st->timed_out_connections = ns.timed_out_connections;
    st->send_queue_overflows = ns.send_queue_overflows;
    st->fatal = log->fatal;
    st->commit_offset = log->fence.visible_offset;
    st->commit_index = log->fence.visible_index;
    rl_cache_stats(&log->cache, &st->cache_bytes, &st->cache_hits, &st->cache_misses);
    rl_sm_status(log, st);
    if (log->store) { /* gone once closing has closed it */
        st->first_offset = first_offset(log);
        st->last_offset = rl_store_next_offset(log->store);
        st->last_index = rl_store_last_index(log->store);
    }
    if (log->fatal) {
        /* Out of the cluster: role unavailable, no leader or peers. */
        st->term = log->stop_term;
        snprintf(st->fatal_msg, sizeof st->fatal_msg, "%s", log->fatal_msg);
    } else if (log->raft_started && !log->raft_closed) {
        st->role = log->raft.state;
        st->term = log->raft.current_term;
        raft_id id = 0;
        const char *addr = NULL;
        raft_leader(&log->raft, &id, &addr);
        st->leader_id = id;
        snprintf(st->leader_address, sizeof st->leader_address, "%s", addr ? addr : "");
        rl_io_catchup(&log->io, &st->catchup_index, &st->catchup_target);
        struct rl_io_bound_stats bs;
        rl_io_bound_stats(&log->io, &bs);
        st->fetch_serve_refused = bs.fetch_serve_refused;
        st->held_dropped = bs.held_dropped;
        const struct raft_configuration *c = &log->raft.configuration;
        for (unsigned i = 0; i < c->n && i < RLOG_MAX_PEERS; i++) {
            struct rlog_peer_status *p = &st->peers[st->n_peers++];
            p->id = c->servers[i].id;
            snprintf(p->address, sizeof p->address, "%s", c->servers[i].address);
            p->voter = c->servers[i].role == RAFT_VOTER;
            if (log->raft.state == RAFT_LEADER && log->raft.leader_state.progress)
                p->match_index = log->raft.leader_state.progress[i].match_index;
        }
    }
    rl_repair_status(log, st);
    st->forwarded_appends = log->fwd.forwarded_appends;
    st->forwards_served = log->fwd.forwards_served;
    st->forward_refused = log->fwd.forward_refused;
    st->retention_trims = log->retention_trims;
}

void rl_do_status(struct rlog *log, struct rl_op *op)
{
    rl_node_status(log, op->st);
    op->status = 0;
    rl_op_finish(log, op);
}

/* rlog_metrics's collection: one op beside rlog_status's fill, whose
 * counters it reuses, so one scrape sees one moment (node/metrics.h). */
static void collect_peers(struct rlog *log, struct rlog_metrics *m)
{
    const struct rlog_status *st = &m->status;
    bool leader = st->role == RLOG_ROLE_LEADER;
    uint64_t last = leader ? (uint64_t)raft_last_index(&log->raft) : 0;
    for (unsigned i = 0; i < st->n_peers; i++) {
        if (st->peers[i].id == st->id)
            continue;
        struct rlog_peer_metrics *p = &m->peers[m->n_peers++];
        struct rl_io_peer_stats ps;
        rl_io_peer_stats(&log->io, st->peers[i].id, &ps);
        p->id = st->peers[i].id;
        p->sent_bytes = ps.sent_bytes;
        p->received_bytes = ps.received_bytes;
        p->connected = ps.connected;
        if (leader && last > st->peers[i].match_index)
            p->lag_entries = last - st->peers[i].match_index;
    }
}

void rl_metrics_collect(struct rlog *log, struct rl_op *op)
{
    struct rlog_metrics *m = op->metrics;
    memset(m, 0, sizeof *m);
    rl_node_status(log, &m->status);
    const struct rl_metrics *own = &log->metrics;
    m->appended_records = own->appended_records;
    m->appended_bytes = own->appended_bytes;
    rl_hist_read(&own->commit_us, &m->append_commit_us);
    rl_hist_read(&own->entry_records, &m->entry_records);
    m->elections = own->elections;
    m->leader_changes = own->leader_changes;
    if (log->store) { /* gone once closing has closed it */
        struct rl_store_stats ss;
        rl_store_stats(log->store, &ss);
        m->written_bytes = ss.bytes;
        rl_store_hists(log->store, &m->sync_us, &m->write_entries);
    }
    collect_peers(log, m);
    if (op->metrics_extra) {
        struct rl_metrics_extra *x = op->metrics_extra;
        *x = (struct rl_metrics_extra){
            .quiet = log->raft_started && rl_io_frozen(&log->io),
            .quiesced = log->quiet.quiesced, .quiet_wakes = log->quiet.wakes,
            .balance_transfers = log->balance.transfers};
        if (log->cfg.balance_leaders && log->raft_started)
            x->preferred_leader =
                rl_preferred_voter(&log->raft.configuration, log->balance.name_hash);
        snprintf(x->log, sizeof x->log, "%s", log->cluster_name ? log->cluster_name : "");
    }
    op->status = 0;
    rl_op_finish(log, op);
}
