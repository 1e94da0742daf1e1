/*
 * lifecycle — starting a node on its loop thread (the store, its identity,
 * the fence position and the entries after it, the backend, raft) and
 * tearing the loop down; a failed start is undone.
 */
#include "node/node.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "net/net.h"
#include "node/identity.h"
#include "raftio/io.h"
#include "raftio/bounds.h"
#include "raftio/snapshot.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL; /* the log is the state; the fence decides visibility */
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    (void)fsm;
    *bufs = raft_calloc(1, sizeof **bufs);
    if (!*bufs)
        return RAFT_NOMEM;
    (*bufs)[0].base = raft_calloc(1, 8);
    if (!(*bufs)[0].base) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    (*bufs)[0].len = 8;
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

/* The record offset after entry `index`, also where that entry is damaged
 * (repair.c): from the damaged range's bounds or the next entry. */
static int end_offset_of(struct rl_store *store, uint64_t index, uint64_t *offset)
{
    struct rl_store_entry en;
    int rv = rl_store_read(store, index, &en);
    if (rv == 0) {
        *offset = en.offset + en.records;
        free((void *)en.buf);
        return 0;
    }
    if (rv != RLOG_ECORRUPT)
        return rv;
    struct rl_store_damage d[16];
    size_t n = rl_store_damaged(store, d, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (d[i].last_index == index) {
            *offset = d[i].end_offset;
            return 0;
        }
    if (index < rl_store_last_index(store) && rl_store_read(store, index + 1, &en) == 0) {
        *offset = en.offset;
        free((void *)en.buf);
        return 0;
    }
    return RLOG_ECORRUPT; /* errmsg names the damage */
}

/* The fence's view of damaged entry `index` (awaiting repair): its records
 * from the damaged range's bounds (all on its first entry), its term the
 * one before it (never more than the real one, so the fence can only be
 * slower to move past it). Retention commands in it are not seen. */
static int damaged_fence_entry(struct rl_store *store, uint64_t index, uint64_t prev_term,
                               struct rl_fence_entry *fe)
{
    struct rl_store_damage d[16];
    size_t n = rl_store_damaged(store, d, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        if (index >= d[i].first_index && index <= d[i].last_index) {
            bool head = index == d[i].first_index;
            *fe = (struct rl_fence_entry){
                .index = index, .term = prev_term,
                .offset = head ? d[i].first_offset : d[i].end_offset,
                .records = head ? (uint32_t)(d[i].end_offset - d[i].first_offset) : 0,
                .bytes = UINT64_MAX};
            return 0;
        }
    return RLOG_ECORRUPT;
}

/* A damaged entry among those libraft must load (after its snapshot
 * descriptor) is cut with what follows, before anything is loaded, and
 * comes back from the leader (lib/raftio/floor.c). */
static int cut_damaged_tail(struct rlog *log, char *err, size_t errlen)
{
    struct rl_snapshot_desc d;
    char e[256];
    int rv = rl_snapshot_load(log->data_dir, &d, e, sizeof e);
    if (rv < 0) {
        snprintf(err, errlen, "%s", e);
        return rv;
    }
    uint64_t needed = rv == 0 ? d.index + 1 : 1, last = rl_store_last_index(log->store), cut;
    rl_snapshot_desc_close(&d);
    if ((rv = rl_floor_cut_damaged_tail(log->store, log->data_dir, needed, &cut, err,
                                        errlen)) != 0 || !cut)
        return rv;
    log->floor_cut_entries = last - cut + 1;
    rl_log(log, 2, "entry %" PRIu64 " fails its checksum and libraft must load it: the log is cut "
           "before it (%" PRIu64 " entries, to come back from the leader); until they are back "
           "this node does not campaign or vote for a candidate behind its old end (entry %" PRIu64
           ")", cut, last - cut + 1, last);
    return 0;
}

/* Fence position and the entries after it, from the store. */
static int load_tail(struct rlog *log, char *err, size_t errlen)
{
    struct rl_snapshot_desc d;
    char e[256];
    int rv = rl_snapshot_load(log->data_dir, &d, e, sizeof e);
    if (rv < 0) {
        snprintf(err, errlen, "%s", e);
        return rv;
    }
    uint64_t visible = rv == 0 ? d.visible : 0;
    rl_snapshot_desc_close(&d);
    uint64_t first = rl_store_first_index(log->store), last = rl_store_last_index(log->store);
    if (visible > last)
        visible = last;
    uint64_t visible_offset = rl_store_first_offset(log->store);
    if (visible >= first && (rv = end_offset_of(log->store, visible, &visible_offset)) != 0) {
        snprintf(err, errlen, "%s", rl_store_errmsg(log->store));
        return rv;
    }
    rl_fence_init(&log->fence, visible, visible_offset);
    rl_set_trim_offset(log, rl_store_first_offset(log->store));
    /* Empty: the first lookup reads what it needs (node/timeindex.h). */
    rl_tindex_init(&log->tindex, RL_TINDEX_EVERY, log->trim_offset);
    uint64_t prev_term = 0;
    for (uint64_t i = (visible + 1 > first ? visible + 1 : first); i <= last; i++) {
        struct rl_store_entry en;
        struct rl_fence_entry fe;
        if ((rv = rl_store_read(log->store, i, &en)) == RLOG_ECORRUPT &&
            damaged_fence_entry(log->store, i, prev_term, &fe) == 0) {
            prev_term = fe.term;
            if ((rv = rl_fence_push(&log->fence, &fe)) != 0)
                return rv;
            continue;
        }
        if (rv != 0) {
            snprintf(err, errlen, "%s", rl_store_errmsg(log->store));
            return rv;
        }
        fe = (struct rl_fence_entry){.index = en.index, .term = en.term, .offset = en.offset,
                                     .records = en.records};
        rl_fence_entry_fill(&fe, en.buf, en.len);
        prev_term = en.term;
        free((void *)en.buf);
        if ((rv = rl_fence_push(&log->fence, &fe)) != 0)
            return rv;
    }
    return 0;
}

/* Whether the directory's IDENTITY file is still to be written. */
enum id_state { ID_RECORDED, ID_NEW, ID_ADOPTED /* made by an older liblog */ };

/* Refuses another node's or another cluster's directory (checks 1 and 2 of
 * node/identity.h). A directory without IDENTITY gets the configuration's
 * identity, recorded only once the stored membership agrees too (check 3),
 * so a wrong first open of an older directory leaves no wrong identity. */
static int load_identity(struct rlog *log, struct rl_identity *have, enum id_state *state,
                         char *err, size_t errlen)
{
    struct rl_identity want;
    rl_identity_of(&log->cfg, &want);
    int rv = rl_identity_load(log->data_dir, have, err, errlen);
    *state = ID_RECORDED;
    if (rv == 0)
        return rl_identity_check(log->data_dir, have, &want, err, errlen);
    if (rv == 1) {
        *have = want;
        /* At most the bootstrap entry (term 1): new, or a first open that
         * failed after bootstrapping; anything more is an older liblog's. */
        bool fresh = rl_store_last_index(log->store) <= 1 && rl_store_term(log->store) <= 1;
        *state = fresh ? ID_NEW : ID_ADOPTED;
        rv = 0;
    }
    return rv;
}

static int record_identity(struct rlog *log, const struct rl_identity *id, enum id_state state,
                           char *err, size_t errlen)
{
    int rv = rl_identity_save(log->data_dir, id, err, errlen);
    if (rv == 0)
        rl_log(log, state == ID_ADOPTED ? 2 : 1, "%s: recorded node %" PRIu64 " of cluster %s%s",
               log->data_dir, id->node, id->cluster,
               state == ID_ADOPTED ? " (a directory without IDENTITY: adopted)" : "");
    return rv;
}

#define OR_DEFAULT(v, d) ((v) ? (v) : (d))

bool rl_hold_jobs_always;

static int start(struct rlog *log)
{
    char *err = log->open_err;
    size_t errlen = sizeof log->open_err;
    log->finishing = rl_producers_finishing;
    log->pump = rl_node_pump;
    log->fetch = rl_do_fetch;
    int rv = log->loop == &log->own_loop ? uv_loop_init(log->loop) : 0;
    if (rv != 0) {
        snprintf(err, errlen, "uv_loop_init: %s", uv_strerror(rv));
        return RLOG_EIO;
    }
    /* The first segment holds one full batch, so a new log never makes a
     * spare over again for the first large batch. */
    struct rl_store_config scfg = {.dir = log->data_dir,
                                   .segment_size = log->cfg.segment_size,
                                   .first_segment_size = (uint64_t)log->cfg.batch_max_bytes + 4096};
    /* Opening waits for the store here and there (a cut, the bootstrap):
     * on a loop other logs share, by running the store's jobs on this
     * thread, not by turning that loop. A log with a loop of its own turns
     * it, as before hosts existed (the simulator runs the other way with
     * --hold-jobs: that found a libraft crash, fenced in raftio/hold.c). */
    scfg.hold_jobs = log->loop != &log->own_loop || rl_hold_jobs_always;
    rv = rl_store_open(log->loop, &scfg, &log->store, err, errlen);
    if (rv != 0)
        return rv;
    bool kept;
    unsigned was = rl_store_dir_mode_was(log->store, &kept);
    if (was)
        rl_log(log, 2, "%s: data directory was mode %04o (open to other users); %s", log->data_dir,
               was, kept ? "could NOT tighten it to 0700" : "tightened to 0700");
    struct rl_identity identity;
    enum id_state id_state;
    if ((rv = load_identity(log, &identity, &id_state, err, errlen)) != 0)
        return rv;
    if ((rv = cut_damaged_tail(log, err, errlen)) != 0 || (rv = load_tail(log, err, errlen)) != 0 ||
        (rv = rl_cursors_load(log, err, errlen)) != 0 ||
        (rv = rl_producers_load(log, err, errlen)) != 0)
        return rv;
    struct rl_io_config icfg = {
        .loop = log->loop,
        .store = log->store,
        .dir = log->data_dir,
        .trailing = log->cfg.snapshot_trailing,
        /* A peer's frame: one entry at most (the transport sends libraft's
         * long AppendEntries in parts that fit), or a fetch answer. */
        .max_frame_body = log->cfg.batch_max_bytes + RL_IO_FRAME_ALLOWANCE,
        /* The TLS files are read here, during rlog_open, and not kept. */
        .net = {.cluster = identity.cluster, .cluster_named = identity.named,
                .tls_ca_file = log->cfg.tls_ca_file, .tls_cert_file = log->cfg.tls_cert_file,
                .tls_key_file = log->cfg.tls_key_file,
                .max_inbound = OR_DEFAULT(log->cfg.max_inbound_connections, 64),
                .max_per_address = OR_DEFAULT(log->cfg.max_connections_per_address, 8),
                .handshake_timeout_ms = OR_DEFAULT(log->cfg.handshake_timeout_ms, 5000),
                .frame_timeout_ms = OR_DEFAULT(log->cfg.frame_timeout_ms, 30000),
                .idle_timeout_ms = OR_DEFAULT(log->cfg.idle_timeout_ms, 60000),
                .max_send_queue = OR_DEFAULT(log->cfg.max_send_queue_bytes, 64u << 20),
                .via = log->via},
        .hooks = rl_loop_hooks(log),
    };
    if (!log->cfg.tls_ca_file || !log->cfg.tls_ca_file[0])
        icfg.net.tls_ca_file = icfg.net.tls_cert_file = icfg.net.tls_key_file = NULL;
    if ((rv = rl_io_init(&log->io, &icfg)) != 0) {
        snprintf(err, errlen, "%s", log->io.errmsg);
        return rv;
    }
    if (!icfg.net.tls_ca_file && !log->via) /* a host's transport: the host says it once */
        rl_log(log, 2, "INSECURE: peer connections are plain text, and a peer's claimed id is "
               "trusted (%s); configure TLS (tls_ca_file, tls_cert_file, tls_key_file) to "
               "authenticate and encrypt them",
               log->cfg.insecure ? "config.insecure is set" : "every peer is on loopback");
    /* Bounds on what peers can make this node hold (hardening); 0: the
     * defaults rlog_config_init gives. */
    rl_io_set_bounds(&log->io,
                     &(struct rl_io_bounds){
                         .fetch_serve_max = log->cfg.fetch_serve_max ? log->cfg.fetch_serve_max : 4,
                         .fetch_serve_bytes = log->cfg.fetch_serve_bytes ? log->cfg.fetch_serve_bytes
                                                                         : 16u << 20,
                         .held_max = log->cfg.held_max ? log->cfg.held_max : 64});
    log->fsm = (struct raft_fsm){.version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot,
                                 .restore = fsm_restore};
    rv = raft_init(&log->raft, &log->io, &log->fsm, log->cfg.id, log->address);
    if (rv != 0) {
        snprintf(err, errlen, "raft_init: %.200s", log->io.errmsg[0] ? log->io.errmsg : raft_strerror(rv));
        return RLOG_EIO;
    }
    log->raft.data = log;
    log->raft_inited = true;
    raft_set_election_timeout(&log->raft, log->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(&log->raft, log->cfg.heartbeat_timeout_ms);
    /* libraft resends a lost InstallSnapshot after this (30 s by default). */
    raft_set_install_snapshot_timeout(&log->raft, 4 * log->cfg.election_timeout_ms);
    raft_set_snapshot_threshold(&log->raft, log->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(&log->raft, log->cfg.snapshot_trailing);
    /* Bootstrap only a node that never took part: an empty log with a term
     * past 1 has been emptied by a catch-up that a crash interrupted, and
     * its entries come back from the leader (found by the simulator: such
     * a node refused to start ever again). Every leader's term is >= 2. */
    if (rl_store_last_index(log->store) == 0 && rl_store_term(log->store) <= 1 && !log->cfg.join &&
        !log->no_bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        for (unsigned i = 0; i < log->cfg.n_peers && rv == 0; i++)
            rv = raft_configuration_add(&conf, log->peers[i].id, log->peers[i].address,
                                        RAFT_VOTER);
        if (rv == 0)
            rv = raft_bootstrap(&log->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0) {
            snprintf(err, errlen, "bootstrap: %s", raft_errmsg(&log->raft));
            return RLOG_EIO;
        }
    }
    rv = raft_start(&log->raft);
    if (rv != 0) {
        /* libraft 0.15 does not pass on why its io failed to start (a
         * listen address in use, say): the backend's own message does. */
        const char *why = raft_errmsg(&log->raft);
        snprintf(err, errlen, "raft_start: %.200s", why && *why ? why : log->io.errmsg);
        return rv == RAFT_CORRUPT ? RLOG_ECORRUPT : RLOG_EIO;
    }
    log->raft_started = true;
    /* Only now is the stored membership known: libraft takes the latest
     * configuration from the snapshot descriptor and the entries it loaded. */
    rv = rl_identity_check_members(log->data_dir, &log->cfg, &identity, &log->raft.configuration,
                                   err, errlen);
    if (rv == 0 && id_state != ID_RECORDED)
        rv = record_identity(log, &identity, id_state, err, errlen);
    if (rv != 0)
        return rv;
    log->last_role = log->raft.state;
    uv_async_init(log->loop, &log->wake, rl_wake_cb);
    log->wake.data = log;
    uv_timer_init(log->loop, &log->close_timer);
    log->close_timer.data = log;
    log->wake_ready = true;
    rl_node_hold(log);
    rl_node_hold(log);
    if ((rv = rl_producers_start(log)) != 0 || (rv = rl_retention_start(log)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rv;
    }
    rl_fwd_init(log);
    rl_quiet_init(log);
    rl_balance_init(log);
    log->pub_visible_offset = log->fence.visible_offset;
    log->trim_snap = rl_io_snapshot_index(&log->io);
    rl_publish(log);
    if (log->fatal)
        uv_async_send(&log->wake); /* failed while starting: settle it */
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void abort_raft_closed(struct raft *r)
{
    rl_node_release(r->data);
}

static void abort_io_closed(struct raft_io *io)
{
    rl_node_release((struct rlog *)((char *)io - offsetof(struct rlog, io)));
}

static void abort_store_closed(void *arg)
{
    rl_node_release(arg);
}

/* Undoes a partial start: raft (and through it io and the store) or just
 * the store, and the node's own handles; the opener hears the failure
 * when the last is closed (node_ended). */
static void abort_start(struct rlog *log)
{
    log->ending = true;
    rl_node_hold(log); /* until the closes below are under way */
    if (log->raft_inited || log->io.impl) {
        rl_node_hold(log);
        /* raft_close also after a failed raft_start: it frees what
         * raft_init and the load took, and closes the io. */
        if (!log->raft_inited)
            log->io.close(&log->io, abort_io_closed);
        else
            raft_close(&log->raft, abort_raft_closed);
        log->store = NULL;
    } else if (log->store) {
        rl_node_hold(log);
        rl_store_close(log->store, abort_store_closed, log);
        log->store = NULL;
    }
    rl_producers_stop(log);
    rl_retention_stop(log);
    if (log->wake_ready) {
        log->wake_ready = false;
        rl_node_close_handle(log, (uv_handle_t *)&log->close_timer);
        rl_node_close_handle(log, (uv_handle_t *)&log->wake);
    }
    bool own_loop = log->loop == &log->own_loop;
    rl_node_release(log); /* on a host's loop, log may be gone from here */
    if (own_loop)
        rl_node_teardown(log);
}

static void count_open(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        ++*(unsigned *)arg;
}

void rl_node_teardown(struct rlog *log)
{
    if (log->loop != &log->own_loop)
        return; /* the host's loop: the log ended on its last handle */
    uv_run(log->loop, UV_RUN_DEFAULT);
    /* Every part closes the handles it opened; the walk below is a safety
     * net. A handle it finds is a leak to fix (and would outlive the log
     * on a loop shared by many logs). */
    unsigned left = 0;
    uv_walk(log->loop, count_open, &left);
    if (left > 0 && log->open_rv == 0)
        rl_log(log, 2, "%u libuv handle(s) still open after the close; closing them now", left);
    uv_walk(log->loop, close_walk, NULL);
    uv_run(log->loop, UV_RUN_DEFAULT);
    uv_loop_close(log->loop);
}

int rl_node_start_here(struct rlog *log)
{
    int rv = start(log);
    if (log->store)
        rl_store_hold_jobs(log->store, false); /* runs what opening left */
    pthread_mutex_lock(&log->mu);
    log->open_rv = rv;
    log->open_done = rv == 0; /* a failure is told once undone (node_ended) */
    log->accepting = rv == 0;
    log->shared_store = rv == 0 ? log->store : NULL;
    if (rv == 0)
        pthread_cond_signal(&log->open_cv);
    pthread_mutex_unlock(&log->mu);
    if (rv != 0)
        abort_start(log);
    return rv;
}

void rl_node_thread(void *arg)
{
    struct rlog *log = arg;
    /* A peer closing its socket must not kill the host with SIGPIPE; it is
     * sent to the writing thread, so blocking it here turns it into EPIPE. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    if (rl_node_start_here(log) == 0)
        rl_node_teardown(log);
}
