/*
 * api — the state machine's public calls (rlog_apply*, rlog_sm_wait,
 * rlog_sm_snapshot) and the hooks lib/node calls at open, close and
 * status.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "node/api.h"
#include "fs/fs.h"
#include "node/identity.h"
#include "sm/sm.h"

#define DEFAULT_EVERY 100000u
#define DEFAULT_KEEP 2u
#define DEFAULT_RESULTS 65536u

int rl_sm_check_config(const struct rlog_config *cfg, char *err, size_t errlen)
{
    const struct rlog_sm *h = cfg->sm;
    const char *bad = NULL;
    if (!h)
        return 0;
    if (!h->apply)
        bad = "sm.apply is NULL";
    else if (h->snapshot && !h->persist)
        bad = "sm.snapshot is set but sm.persist is NULL (nothing would write the capture)";
    else if (h->snapshot && !h->restore)
        bad = "sm.snapshot is set but sm.restore is NULL (its snapshots could never be read back)";
    if (!bad)
        return 0;
    snprintf(err, errlen, "config.%s", bad);
    return RLOG_EINVAL;
}

int rl_sm_start(struct rlog *log, bool stepped)
{
    if (!log->cfg.sm)
        return 0;
    struct rl_sm *sm = calloc(1, sizeof *sm);
    if (!sm)
        return RLOG_ENOMEM;
    sm->log = log;
    sm->h = *log->cfg.sm;
    sm->stepped = stepped;
    snprintf(sm->dir, sizeof sm->dir, "%s/sm", log->data_dir);
    sm->id.node = log->cfg.id;
    struct rl_identity ident;
    char err[256];
    /* The directory's recorded cluster, not the configuration's: a derived
     * name changes with the peers list, the directory's does not. */
    if (rl_identity_load(log->data_dir, &ident, err, sizeof err) == 0) {
        sm->id.cluster = XXH3_64bits(ident.cluster, strlen(ident.cluster));
        sm->cluster_named = ident.named;
    }
    sm->fetch.fd = -1;
    char part[4200];
    snprintf(part, sizeof part, "%s/install.part", sm->dir);
    rl_fs_unlink(part); /* a fetch a crash or a close cut short */
    sm->wake_applied = UINT64_MAX;
    sm->every = log->cfg.sm_snapshot_every ? log->cfg.sm_snapshot_every : DEFAULT_EVERY;
    sm->keep = log->cfg.sm_snapshots_keep ? log->cfg.sm_snapshots_keep : DEFAULT_KEEP;
    sm->nres = log->cfg.sm_results ? log->cfg.sm_results : DEFAULT_RESULTS;
    sm->calls_min_end = UINT64_MAX;
    pthread_mutex_init(&sm->mu, NULL);
    pthread_cond_init(&sm->cv, NULL);
    log->sm = sm;
    if (rl_sm_results_init(sm) != 0)
        return RLOG_ENOMEM;
    if (!stepped) {
        if (pthread_create(&sm->apply_thread, NULL, rl_sm_apply_main, sm) != 0)
            return RLOG_ENOMEM;
        sm->apply_started = true;
    }
    return 0;
}

void rl_sm_stop(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    if (!sm)
        return;
    pthread_mutex_lock(&sm->mu);
    sm->stop = true;
    pthread_mutex_unlock(&sm->mu);
    rl_sm_poke(sm);
    if (sm->apply_started)
        pthread_join(sm->apply_thread, NULL);
    sm->apply_started = false;
    /* The snapshot being written completes: never a torn file. */
    if (sm->persist_started)
        pthread_join(sm->persist_thread, NULL);
    sm->persist_started = false;
    pthread_mutex_lock(&sm->mu);
    if (!sm->ended) {
        sm->ended = RLOG_ECLOSED;
        snprintf(sm->ended_msg, sizeof sm->ended_msg, "log is closing");
    }
    pthread_cond_broadcast(&sm->cv);
    pthread_mutex_unlock(&sm->mu);
    rl_sm_calls_fail(sm, RLOG_ECLOSED);
}

bool rl_sm_own_thread_of(struct rlog *log)
{
    return log->sm && rl_sm_own_thread == log->sm;
}

void rl_sm_free(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    if (!sm)
        return;
    rl_sm_stop(log);
    rl_sm_install_free(sm);
    rl_sm_results_free(sm);
    pthread_mutex_destroy(&sm->mu);
    pthread_cond_destroy(&sm->cv);
    free(sm);
    log->sm = NULL;
}

void rl_sm_status(struct rlog *log, struct rlog_status *st)
{
    struct rl_sm *sm = log->sm;
    if (!sm)
        return;
    pthread_mutex_lock(&sm->mu);
    st->applied_offset = sm->applied;
    st->snapshot_offset = sm->snap_offset;
    st->snapshots_taken = sm->taken;
    st->snapshots_installed = sm->installed;
    st->snapshot_failures = sm->failures;
    st->sm_needs_snapshot = sm->needs_snapshot;
    pthread_mutex_unlock(&sm->mu);
}

uint64_t rl_sm_trim_floor(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    if (!sm)
        return UINT64_MAX;
    return rl_sm_quorum_snapshot(log);
}

void rl_sm_step(struct rlog *log)
{
    if (log->sm)
        rl_sm_run_step(log->sm);
}

void rl_sm_request_snapshot(struct rlog *log)
{
    struct rl_sm *sm = log->sm;
    if (!sm)
        return;
    pthread_mutex_lock(&sm->mu);
    sm->snap_req++;
    pthread_mutex_unlock(&sm->mu);
}

/* ---- the public calls ------------------------------------------------------ */

static int no_sm(void)
{
    return rl_fail(RLOG_EINVAL, "no state machine: rlog_config.sm was NULL at rlog_open");
}

/* Blocking waits are refused where they would deadlock: the loop thread
 * (liblog's callbacks) and the apply thread (apply, snapshot, restore). */
static int check_blocking(rlog *log, const char *what)
{
    if (!log)
        return rl_fail(RLOG_EINVAL, "%s: NULL log", what);
    if (!log->sm)
        return no_sm();
    if (rl_on_loop_thread(log))
        return rl_fail(RLOG_EINVAL, "%s from a liblog callback would deadlock", what);
    if (rl_sm_own_thread == log->sm)
        return rl_fail(RLOG_EINVAL, "%s on the state machine's apply or persist thread would "
                       "deadlock", what);
    return 0;
}

static void appended(void *arg, int status, uint64_t first_offset)
{
    struct rl_sm_call *c = arg;
    if (status != 0) {
        c->cb(c->arg, status, first_offset, NULL, 0);
        free(c);
        return;
    }
    c->first = first_offset;
    rl_sm_call_add(c->sm, c);
}

int rlog_apply_async(rlog *log, const struct rlog_append_opts *opts, const struct rlog_buf *recs,
                     unsigned n, rlog_apply_cb cb, void *arg)
{
    if (!log || !cb)
        return rl_fail(RLOG_EINVAL, "apply_async: NULL argument");
    if (!log->sm)
        return no_sm();
    struct rl_sm_call *c = malloc(sizeof *c + (size_t)n * sizeof c->results[0]);
    if (!c)
        return rl_fail(RLOG_ENOMEM, "out of memory");
    *c = (struct rl_sm_call){.sm = log->sm, .n = n, .cb = cb, .arg = arg};
    int rv = rlog_append_ex_async(log, opts, recs, n, appended, c);
    if (rv != 0)
        free(c);
    return rv;
}

struct apply_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int status;
    uint64_t offset;
    int64_t result;
    char msg[384];
};

static void apply_done(void *arg, int status, uint64_t first_offset, const int64_t *results,
                       unsigned n)
{
    struct apply_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    w->offset = first_offset;
    if (status == 0 && n == 1)
        w->result = results[0];
    if (status == RLOG_ENOTFOUND)
        snprintf(w->msg, sizeof w->msg, "record %" PRIu64 " was applied, but its result was "
                 "dropped (more than sm_results records applied since)", first_offset);
    else if (status == RLOG_ECLOSED || status == RLOG_ETRIMMED)
        snprintf(w->msg, sizeof w->msg, "record %" PRIu64 " is committed, but this node stopped "
                 "applying before it (%s)", first_offset, rlog_strerror(status));
    else if (status != 0)
        snprintf(w->msg, sizeof w->msg, "%s", rlog_errmsg(NULL));
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int rlog_apply(rlog *log, const void *rec, size_t len, uint64_t *offset, int64_t *result)
{
    int rv = check_blocking(log, "rlog_apply");
    if (rv != 0)
        return rv;
    struct apply_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    struct rlog_buf b = {.base = rec, .len = len};
    rv = rlog_apply_async(log, NULL, &b, 1, apply_done, &w);
    if (rv == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rv = w.status;
        if (offset && (rv == 0 || rv == RLOG_ENOTFOUND || rv == RLOG_ECLOSED || rv == RLOG_ETRIMMED))
            *offset = w.offset;
        if (rv == 0 && result)
            *result = w.result;
        if (rv != 0)
            rl_fail(rv, "%s", w.msg);
    }
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return rv;
}

static void deadline_in(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static bool applied_to(struct rl_sm *sm, uint64_t offset)
{
    return sm->applied >= offset;
}

/* Waits under sm->mu until done(sm, arg) or the end or the deadline:
 * 0, the end's code, or RLOG_ETIMEOUT. A stop for lack of a snapshot is
 * an end only at the deadline with `through_install` (one is being
 * fetched from a peer meanwhile: install.c). */
static int wait_for(struct rl_sm *sm, bool (*done)(struct rl_sm *, uint64_t), uint64_t arg,
                    int timeout_ms, bool through_install)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_in(&deadline, timeout_ms);
    int rv = 0;
    sm->waiting++;
    while (!done(sm, arg)) {
        bool installing = through_install && sm->needs_snapshot && !sm->stop;
        if (sm->ended && (!installing || timeout_ms == 0)) {
            rv = sm->ended;
            break;
        }
        if (timeout_ms == 0) {
            rv = RLOG_ETIMEOUT;
            break;
        }
        if (done == applied_to && arg < sm->wake_applied)
            sm->wake_applied = arg;
        if (timeout_ms < 0)
            pthread_cond_wait(&sm->cv, &sm->mu);
        else if (pthread_cond_timedwait(&sm->cv, &sm->mu, &deadline) == ETIMEDOUT && !done(sm, arg))
            timeout_ms = 0;
    }
    sm->waiting--;
    return rv;
}

static int ended_fail(struct rl_sm *sm, int rv, const char *what)
{
    if (rv == RLOG_EFATAL)
        return rl_fail_stopped(sm->log, "nothing more will be applied: this node failed stop: ");
    return rl_fail(rv, "%s: %s", what, sm->ended_msg);
}

int rlog_sm_wait(rlog *log, uint64_t offset, int timeout_ms)
{
    int rv = check_blocking(log, "rlog_sm_wait");
    if (rv != 0)
        return rv;
    struct rl_sm *sm = log->sm;
    pthread_mutex_lock(&sm->mu);
    rv = wait_for(sm, applied_to, offset, timeout_ms, true);
    uint64_t applied = sm->applied;
    pthread_mutex_unlock(&sm->mu);
    if (rv == RLOG_ETIMEOUT)
        return rl_fail(rv, "records before %" PRIu64 " not applied within %d ms (applied up to %" PRIu64 ")",
                       offset, timeout_ms, applied);
    if (rv != 0)
        return ended_fail(sm, rv, "rlog_sm_wait");
    return 0;
}

static bool snapshot_answered(struct rl_sm *sm, uint64_t req)
{
    return sm->snap_done >= req;
}

int rlog_sm_snapshot(rlog *log, uint64_t *next_offset)
{
    int rv = check_blocking(log, "rlog_sm_snapshot");
    if (rv != 0)
        return rv;
    struct rl_sm *sm = log->sm;
    pthread_mutex_lock(&sm->mu);
    uint64_t req = ++sm->snap_req;
    pthread_mutex_unlock(&sm->mu);
    rl_sm_poke(sm);
    pthread_mutex_lock(&sm->mu);
    rv = wait_for(sm, snapshot_answered, req, -1, false);
    uint64_t next = sm->snap_done_next;
    if (rv == 0)
        rv = sm->snap_done_rv;
    pthread_mutex_unlock(&sm->mu);
    if (rv == 0) {
        if (next_offset)
            *next_offset = next;
        return 0;
    }
    if (rv == RLOG_ECANCELED)
        return rl_fail(rv, "no snapshot: snapshot() returned NULL or persist() gave up");
    if (rv == RLOG_EIO || rv == RLOG_ENOSPC || rv == RLOG_ENOMEM)
        return rl_fail(rv, "snapshot of records before %" PRIu64 " could not be written (the log "
                       "line says where)", next);
    return ended_fail(sm, rv, "rlog_sm_snapshot");
}
