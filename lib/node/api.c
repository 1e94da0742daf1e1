/*
 * The public API's thin entry points: open and close, reads, status,
 * membership, barriers and retention. They check arguments on the caller's
 * thread and hand operations to the node's loop thread (node/queue.c); the
 * appends are in submit.c, the iterator in iter.c, the configuration's
 * checks in config.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/api.h"

#include "common/env.h"
#include "host/host.h"
#include "node/config.h"
#include "sm/sm.h"

static void free_log(rlog *log)
{
    for (unsigned i = 0; i < log->cfg.n_peers && log->peers; i++)
        free((char *)log->peers[i].address);
    free(log->peers);
    free(log->address);
    free(log->data_dir);
    free(log->cluster_name);
    rl_fence_free(&log->fence);
    rl_tindex_free(&log->tindex);
    rl_cache_free(&log->cache);
    rl_repair_free(&log->repair);
    rl_producers_free(log);
    rl_cursors_free(&log->cursors);
    rl_sm_free(log);
    pthread_mutex_destroy(&log->mu);
    pthread_cond_destroy(&log->open_cv);
    pthread_cond_destroy(&log->visible_cv);
    pthread_cond_destroy(&log->room_cv);
    pthread_cond_destroy(&log->store_cv);
    free(log);
}

struct rl_host *(*rl_shared_host)(void);

static void start_on_host(void *arg)
{
    rl_node_start_here(arg); /* a failure reaches the opener once undone */
}

/* Waits for the loop thread's start (or, failed, its undoing) to end. */
static int wait_opened(rlog *log, char *err, size_t errlen)
{
    pthread_mutex_lock(&log->mu);
    while (!log->open_done)
        pthread_cond_wait(&log->open_cv, &log->mu);
    int rv = log->open_rv;
    pthread_mutex_unlock(&log->mu);
    if (rv != 0)
        snprintf(err, errlen, "%s", log->open_err);
    return rv;
}

/* Validates cfg and opens a node: on a loop thread of its own, on a host's
 * loop thread shared with other logs, or (stepped) on the caller's, with a
 * loop of its own or the caller's (step_loop, with the caller's shared
 * transport: the simulator's hosts). */
static int open_log(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen,
                    bool stepped, struct rl_host *host, struct rl_cache_pool *cache_pool,
                    const struct rl_net_via *via, unsigned flags, uv_loop_t *step_loop)
{
    char err[512] = "";
    if (out)
        *out = NULL;
    int rv = out ? rl_config_validate(cfg, err, sizeof err) : (snprintf(err, sizeof err, "out is NULL"), RLOG_EINVAL);
    if (rv == 0)
        rv = rl_sm_check_config(cfg, err, sizeof err);
    rlog *log = NULL;
    bool counted = false; /* in the host's count of logs */
    if (rv == 0 && !(log = calloc(1, sizeof *log)))
        rv = RLOG_ENOMEM;
    if (rv == 0) {
        log->cfg = *cfg;
        log->address = strdup(cfg->address);
        log->data_dir = strdup(cfg->data_dir);
        log->peers = calloc(cfg->n_peers, sizeof *log->peers);
        pthread_mutex_init(&log->mu, NULL);
        rl_cache_init(&log->cache, cfg->cache_bytes);
        bool table = rl_producers_init(log) == 0 && rl_positions_init(log) == 0;
        pthread_cond_init(&log->open_cv, NULL);
        pthread_cond_init(&log->visible_cv, NULL);
        pthread_cond_init(&log->room_cv, NULL);
        pthread_cond_init(&log->store_cv, NULL);
        bool ok = table && log->address && log->data_dir && log->peers;
        if (ok && cfg->cluster_name)
            ok = (log->cluster_name = strdup(cfg->cluster_name)) != NULL;
        for (unsigned i = 0; ok && i < cfg->n_peers; i++) {
            log->peers[i].id = cfg->peers[i].id;
            ok = (log->peers[i].address = strdup(cfg->peers[i].address)) != NULL;
        }
        log->cfg.address = log->address;
        log->cfg.data_dir = log->data_dir;
        log->cfg.peers = log->peers;
        log->cfg.cluster_name = log->cluster_name;
        if (!ok)
            rv = RLOG_ENOMEM;
    }
    if (rv == 0) {
        log->no_bootstrap = (flags & RL_OPEN_NO_BOOTSTRAP) != 0;
        log->host = stepped ? NULL : host;
        log->via = log->host || step_loop ? via : NULL;
        log->loop = log->host ? rl_host_loop(log->host) : step_loop ? step_loop : &log->own_loop;
    }
    if (rv == 0 && stepped) {
        rl_batch_builder_init(&log->bb);
        log->thread = uv_thread_self();
        rv = rl_node_start_here(log);
        if (rv != 0)
            snprintf(err, sizeof err, "%s", log->open_err);
    } else if (rv == 0 && log->host && !rl_host_log_added(log->host)) {
        rv = RLOG_ECLOSED;
        snprintf(err, sizeof err, "the host is closing");
    } else if (rv == 0 && log->host) {
        if (cache_pool) /* once counted: the pool outlives the log */
            rl_cache_join(&log->cache, cache_pool);
        rl_batch_builder_init(&log->bb);
        log->thread = rl_host_thread(log->host);
        log->host_call = (struct rl_host_call){.fn = start_on_host, .arg = log};
        rl_host_post(log->host, &log->host_call);
        counted = true;
        rv = wait_opened(log, err, sizeof err);
    } else if (rv == 0) {
        rl_batch_builder_init(&log->bb);
        if (uv_thread_create(&log->thread, rl_node_thread, log) != 0) {
            rv = RLOG_ENOMEM;
            snprintf(err, sizeof err, "cannot start the node thread");
        } else if ((rv = wait_opened(log, err, sizeof err)) != 0) {
            uv_thread_join(&log->thread);
        }
    }
    if (rv != 0) {
        if (rv == RLOG_ENOMEM && !err[0])
            snprintf(err, sizeof err, "out of memory");
        /* Stepped on the caller's loop, a failed start's closes run there:
         * its last hold ends before log can go (node_ended). */
        while (log && stepped && step_loop && log->ending && !log->open_done)
            rl_block_turn(step_loop);
        if (log)
            free_log(log);
        if (counted) /* after free_log: its cache may be in the host's pool */
            rl_host_log_removed(host);
        rl_fail(rv, "%s", err);
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", err);
        return rv;
    }
    if ((rv = rl_sm_start(log, stepped)) != 0) {
        if (!stepped)
            rlog_close(log);
        return rl_fail(rv, "cannot start the state machine's apply thread");
    }
    *out = log;
    return 0;
}

int rlog_open(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen)
{
    return open_log(cfg, out, errbuf, errlen, false, rl_shared_host ? rl_shared_host() : NULL,
                    NULL, NULL, 0, NULL);
}

int rl_open_on_host(struct rl_host *host, struct rl_cache_pool *cache_pool,
                    const struct rl_net_via *via, unsigned flags, const struct rlog_config *cfg,
                    rlog **out, char *errbuf, size_t errlen)
{
    return open_log(cfg, out, errbuf, errlen, false, host, cache_pool, via, flags, NULL);
}

int rl_open_stepped(const struct rlog_config *cfg, rlog **out, char *errbuf, size_t errlen)
{
    return open_log(cfg, out, errbuf, errlen, true, NULL, NULL, NULL, 0, NULL);
}

int rl_open_stepped_on(uv_loop_t *loop, const struct rl_net_via *via, const struct rlog_config *cfg,
                       rlog **out, char *errbuf, size_t errlen)
{
    return open_log(cfg, out, errbuf, errlen, true, NULL, NULL, via, 0, loop);
}

void rl_free_stepped(rlog *log)
{
    rl_node_teardown(log);
    free_log(log);
}

int rlog_close(rlog *log)
{
    if (!log)
        return RLOG_EINVAL;
    if (rl_on_loop_thread(log))
        return rl_fail(RLOG_EINVAL, "rlog_close from a liblog callback would deadlock");
    if (rl_sm_own_thread_of(log))
        return rl_fail(RLOG_EINVAL, "rlog_close from the state machine's apply or persist "
                       "thread would deadlock");
    rl_sm_stop(log); /* no apply after rlog_close returns */
    struct rl_op op = {.kind = RL_OP_CLOSE};
    int rv = rl_run_blocking(log, &op);
    if (rv == RLOG_ECLOSED)
        rv = 0; /* already stopping */
    struct rl_host *host = log->host; /* its close ended on its last handle */
    if (!host)
        uv_thread_join(&log->thread);
    rl_subs_end_all(log); /* they see RLOG_ECLOSED and stop */
    int fatal = log->pub_fatal;
    if (fatal) {
        rl_fail_stopped(log, ""); /* the stop's cause, whatever rv was */
        rv = fatal;
    }
    free_log(log);
    if (host) /* last: rlog_host_close may free the host (its cache pool) from here */
        rl_host_log_removed(host);
    return rv;
}

/* A committed record that missed the cache, from the segment files on the
 * caller's thread. 1: ask the loop thread (closing, or the store could not
 * serve it here: it says why). */
static int read_store_here(rlog *log, uint64_t offset, void **buf, size_t *len)
{
    pthread_mutex_lock(&log->mu);
    struct rl_store *store = log->shared_store;
    if (store)
        log->store_readers++;
    pthread_mutex_unlock(&log->mu);
    if (!store)
        return 1;
    struct rl_store_entry e;
    int rv = rl_store_read_offset_shared(store, offset, &e);
    pthread_mutex_lock(&log->mu);
    if (--log->store_readers == 0)
        pthread_cond_broadcast(&log->store_cv);
    pthread_mutex_unlock(&log->mu);
    if (rv != 0)
        return rv == RLOG_ENOMEM ? rl_fail(rv, "out of memory") : 1;
    struct rl_batch_view v;
    if (!rl_batch_parse_layout(e.buf, e.len, &v) || v.count != e.records ||
        offset - e.offset >= e.records) {
        free((void *)e.buf);
        return 1;
    }
    const void *rec;
    size_t n;
    rl_batch_record(&v, (uint32_t)(offset - e.offset), &rec, &n);
    void *copy = malloc(n ? n : 1);
    if (copy)
        memcpy(copy, rec, n);
    free((void *)e.buf);
    if (!copy)
        return rl_fail(RLOG_ENOMEM, "out of memory"); /* *buf, *len untouched */
    *buf = copy;
    *len = n;
    rl_cache_note_miss(&log->cache);
    return 0;
}

/* A committed record is read on the caller's thread, from the read cache
 * or the segment files: two wake-ups less than asking the loop thread. 1:
 * ask it. */
int rl_read_here(rlog *log, uint64_t offset, void **buf, size_t *len)
{
    uint64_t visible;
    bool failed;
    if (!rl_published_readable(log, offset, &visible, &failed) || offset >= visible)
        return 1; /* the loop thread says why */
    int rv = rl_cache_read(&log->cache, offset, visible, buf, len);
    if (rv == 1)
        return read_store_here(log, offset, buf, len);
    return rv == RLOG_ENOMEM ? rl_fail(rv, "out of memory") : rv;
}

int rlog_read(rlog *log, uint64_t offset, void **buf, size_t *len)
{
    if (!log || !buf || !len)
        return rl_fail(RLOG_EINVAL, "read: NULL argument");
    int here = rl_read_here(log, offset, buf, len);
    if (here <= 0)
        return here;
    struct rl_op op = {.kind = RL_OP_READ, .offset = offset};
    int rv = rl_run_blocking(log, &op);
    if (rv == 0) {
        *buf = op.buf;
        *len = op.len;
    } else {
        free(op.buf);
    }
    return rv;
}

void rlog_free(void *buf)
{
    free(buf);
}

int rlog_status(rlog *log, struct rlog_status *st)
{
    if (!log || !st)
        return rl_fail(RLOG_EINVAL, "status: NULL argument");
    struct rl_op op = {.kind = RL_OP_STATUS, .st = st};
    return rl_run_blocking(log, &op);
}

/* ---- membership ----------------------------------------------------------------- */

static int member(rlog *log, int kind, uint64_t id, const char *address)
{
    if (!log)
        return rl_fail(RLOG_EINVAL, "NULL log");
    char host[64], err[256];
    if (kind != RL_MEMBER_TRANSFER && id == 0)
        return rl_fail(RLOG_EINVAL, "node id must be >= 1");
    int problem = kind == RL_MEMBER_ADD ? rl_check_address(address, host, sizeof host) : RL_ADDR_OK;
    if (problem != RL_ADDR_OK) {
        rl_bad_address(err, sizeof err, "address", address, problem);
        return rl_fail(RLOG_EINVAL, "%s", err);
    }
    struct rl_op op = {.kind = RL_OP_MEMBER, .member_kind = kind, .member_id = id};
    if (address)
        snprintf(op.member_addr, sizeof op.member_addr, "%s", address);
    return rl_run_blocking(log, &op);
}

int rlog_add_node(rlog *log, uint64_t id, const char *address)
{
    return member(log, RL_MEMBER_ADD, id, address);
}

int rlog_remove_node(rlog *log, uint64_t id)
{
    return member(log, RL_MEMBER_REMOVE, id, NULL);
}

int rlog_transfer_leadership(rlog *log, uint64_t id)
{
    return member(log, RL_MEMBER_TRANSFER, id, NULL);
}

int rlog_barrier(rlog *log, uint64_t *offset)
{
    if (!log)
        return rl_fail(RLOG_EINVAL, "NULL log");
    pthread_mutex_lock(&log->mu);
    int fatal = log->pub_fatal;
    pthread_mutex_unlock(&log->mu);
    if (fatal)
        return rl_fail_stopped(log, "no barrier: this node failed stop: ");
    struct rl_op op = {.kind = RL_OP_BARRIER};
    int rv = rl_run_blocking(log, &op);
    if (rv == 0 && offset)
        *offset = op.first_offset;
    return rv;
}

int rlog_offset_for_time(rlog *log, uint64_t unix_us, uint64_t *offset)
{
    if (!log || !offset)
        return rl_fail(RLOG_EINVAL, "offset_for_time: NULL argument");
    struct rl_op op = {.kind = RL_OP_TIME, .offset = unix_us};
    int rv = rl_run_blocking(log, &op);
    if (rv == 0 || rv == RLOG_ENOTFOUND)
        *offset = op.first_offset;
    return rv;
}

int rlog_trim(rlog *log, uint64_t before_offset)
{
    if (!log)
        return rl_fail(RLOG_EINVAL, "NULL log");
    struct rl_op op = {.kind = RL_OP_TRIM, .offset = before_offset};
    return rl_run_blocking(log, &op);
}

/* ---- named cursors (liblog 0.4; the loop side is positions.c) ----------- */

static int cursor_op(rlog *log, const char *name, struct rl_op *op)
{
    char why[160];
    if (!log)
        return rl_fail(RLOG_EINVAL, "NULL log");
    if (!rl_cursor_name_ok(name, why, sizeof why))
        return rl_fail(RLOG_EINVAL, "%s", why);
    snprintf(op->cursor_name, sizeof op->cursor_name, "%s", name);
    return rl_run_blocking(log, op);
}

int rlog_cursor_commit(rlog *log, const char *name, uint64_t offset)
{
    /* RLOG_EAGAIN: a leader elected a moment ago does not show the whole
     * committed log yet (nothing was committed); it will within an entry's
     * round, so wait a little rather than hand the host a spurious error. */
    for (int tries = 0;; tries++) {
        struct rl_op op = {.kind = RL_OP_CURSOR, .offset = offset};
        int rv = cursor_op(log, name, &op);
        if (rv != RLOG_EAGAIN || tries >= 200)
            return rv;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

int rlog_cursor_get(rlog *log, const char *name, uint64_t *offset)
{
    if (!offset)
        return rl_fail(RLOG_EINVAL, "NULL offset");
    struct rl_op op = {.kind = RL_OP_CURSOR_GET};
    int rv = cursor_op(log, name, &op);
    if (rv == 0)
        *offset = op.first_offset;
    return rv;
}

int rlog_subscribe_cursor(rlog *log, const char *name, uint64_t from, rlog_sub_cb cb, void *arg,
                          rlog_sub **out)
{
    uint64_t at = from;
    int rv = rlog_cursor_get(log, name, &at);
    if (rv != 0 && rv != RLOG_ENOTFOUND)
        return rv;
    return rlog_subscribe(log, rv == 0 ? at : from, cb, arg, out);
}
