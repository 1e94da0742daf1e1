/*
 * run — the apply loop: restore the newest snapshot that verifies and that
 * the host accepts, then apply every committed record after it, once, in
 * offset order; snapshots between two applies (snapshot() captures, a
 * persist thread writes while apply goes on). The same steps run on the
 * apply thread (rl_sm_apply_main) or, in stepped mode, inline
 * (rl_sm_run_step).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/node.h"
#include "sm/sm.h"

_Thread_local struct rl_sm *rl_sm_own_thread;

void rl_sm_poke(struct rl_sm *sm)
{
    struct rlog *log = sm->log;
    pthread_mutex_lock(&log->mu);
    sm->poke = true;
    pthread_cond_broadcast(&log->visible_cv);
    pthread_mutex_unlock(&log->mu);
}

/* Apply stops: for good (closing, failed stop, a storage error), or until
 * a snapshot is installed (needs: records before the log's first offset
 * are gone and no snapshot covers them). */
static void end_apply(struct rl_sm *sm, int status, bool needs, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void end_apply(struct rl_sm *sm, int status, bool needs, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&sm->mu);
    va_start(ap, fmt);
    vsnprintf(sm->ended_msg, sizeof sm->ended_msg, fmt, ap);
    va_end(ap);
    sm->ended = status;
    sm->needs_snapshot = needs;
    pthread_cond_broadcast(&sm->cv);
    pthread_mutex_unlock(&sm->mu);
    if (status != RLOG_ECLOSED)
        rl_log(sm->log, 2, "%s", sm->ended_msg);
    rl_sm_calls_fail(sm, status);
}

/* Restores one verified file; false if the host refused it. installed:
 * it came from a peer (counted in snapshots_installed once restored). */
static bool restore_file(struct rl_sm *sm, uint64_t off, bool *attempted, bool installed)
{
    char path[4096], err[512];
    rlog_sm_reader *r;
    if (!rl_smf_path(path, sizeof path, sm->dir, off, false))
        return false;
    struct rl_smf_id want = rl_sm_want(sm);
    int rv = rl_smf_open(path, &want, &r, err, sizeof err);
    if (rv == 0) {
        *attempted = true;
        rv = sm->h.restore(sm->h.arg, off, r) == 0 ? 0 : RLOG_ECANCELED;
        rl_smf_close(r);
        if (rv != 0)
            snprintf(err, sizeof err, "snapshot %.400s: restore refused it", path);
    }
    if (rv != 0) {
        pthread_mutex_lock(&sm->mu);
        sm->failures++;
        pthread_mutex_unlock(&sm->mu);
        rl_log(sm->log, 2, "state machine: %s (%s); trying an older one", err, rlog_errname(rv));
        return false;
    }
    pthread_mutex_lock(&sm->mu);
    sm->applied = off;
    sm->snap_offset = off;
    sm->restored = true;
    sm->needs_snapshot = false;
    sm->ended = 0;
    if (installed)
        sm->installed++;
    pthread_cond_broadcast(&sm->cv); /* waiters up to off (an install) are done */
    pthread_mutex_unlock(&sm->mu);
    sm->last_capture = off;
    rl_log(sm->log, 1, "state machine: restored the snapshot of records before %" PRIu64, off);
    return true;
}

/* The newest snapshot that verifies and that restore accepts, else the
 * empty state at 0. With `newer_than`, only snapshots past it (an install
 * while stopped). 0, or an error that ends apply. */
static int restore(struct rl_sm *sm, bool install)
{
    char err[512];
    int rv = rl_smf_mkdir(sm->dir, err, sizeof err);
    uint64_t *offs = NULL;
    size_t n = 0;
    if (rv == 0)
        rv = rl_smf_list(sm->dir, &offs, &n, err, sizeof err);
    if (rv != 0) {
        end_apply(sm, rv, false, "state machine: %s", err);
        return rv;
    }
    bool attempted = false, done = false;
    for (size_t i = 0; i < n && !done; i++) {
        if (install && offs[i] <= sm->applied)
            break;
        if (!sm->h.restore)
            break;
        done = restore_file(sm, offs[i], &attempted, install);
    }
    free(offs);
    if (done || install)
        return 0;
    if (attempted) {
        /* A refused restore may have left the host's state half replaced:
         * the empty state, explicitly. */
        rlog_sm_reader *r;
        if (rl_smf_open_empty(&r) == 0) {
            sm->h.restore(sm->h.arg, 0, r);
            rl_smf_close(r);
        }
    }
    pthread_mutex_lock(&sm->mu);
    sm->applied = 0;
    sm->restored = true;
    pthread_mutex_unlock(&sm->mu);
    sm->last_capture = 0;
    return 0;
}

/* The persist side of one snapshot (persist thread, or inline). */
static void persist(struct rl_sm *sm, struct rl_sm_job *job)
{
    char err[512] = "";
    rlog_sm_writer *w;
    int rv = rl_smf_create(sm->dir, job->next_offset, &sm->id, RL_SMF_CHUNK, &w, err, sizeof err);
    if (rv == 0) {
        int hrv = sm->h.persist(sm->h.arg, job->snap, w);
        int werr = rl_smf_writer_error(w);
        if (hrv != 0 || werr != 0) {
            rv = werr ? werr : RLOG_ECANCELED;
            snprintf(err, sizeof err, "persist of the snapshot of records before %" PRIu64
                     " %s", job->next_offset, werr ? "could not write it" : "gave up");
            rl_smf_abandon(w);
        } else {
            rv = rl_smf_commit(w, err, sizeof err);
        }
    }
    if (rv == 0) {
        /* An old file left behind is harmless: the next prune takes it. */
        char perr[512];
        if (rl_smf_prune(sm->dir, sm->keep, perr, sizeof perr) != 0)
            rl_log(sm->log, 1, "state machine: %s", perr);
    }
    if (sm->h.release)
        sm->h.release(sm->h.arg, job->snap);
    pthread_mutex_lock(&sm->mu);
    if (rv == 0) {
        sm->taken++;
        if (job->next_offset > sm->snap_offset || sm->snap_offset == 0)
            sm->snap_offset = job->next_offset;
    } else {
        sm->failures++;
    }
    if (job->seq > sm->snap_done) {
        sm->snap_done = job->seq;
        sm->snap_done_rv = rv;
        sm->snap_done_next = job->next_offset;
    }
    sm->persisting = false;
    pthread_cond_broadcast(&sm->cv);
    pthread_mutex_unlock(&sm->mu);
    if (rv != 0)
        rl_log(sm->log, 2, "state machine: %s (%s)", err, rlog_errname(rv));
}

struct persist_arg {
    struct rl_sm *sm;
    struct rl_sm_job job;
};

static void *persist_thread(void *p)
{
    struct persist_arg *a = p;
    rl_sm_own_thread = a->sm;
    persist(a->sm, &a->job);
    rl_sm_poke(a->sm); /* a request may be waiting for this one to end */
    free(a);
    return NULL;
}

/* Takes a snapshot if one is due and none is being persisted. */
static void maybe_snapshot(struct rl_sm *sm)
{
    pthread_mutex_lock(&sm->mu);
    uint64_t next = sm->applied, seq = sm->snap_req;
    bool asked = sm->snap_req > sm->snap_done;
    bool due = (asked || next - sm->last_capture >= sm->every) && !sm->persisting &&
               (next > sm->last_capture || asked);
    if (due && !sm->h.snapshot) {
        /* Nothing to capture with: requests fail, automatic ones stop. */
        sm->snap_done = seq;
        sm->snap_done_rv = RLOG_ECANCELED;
        sm->snap_done_next = next;
        pthread_cond_broadcast(&sm->cv);
        due = false;
    }
    if (due)
        sm->persisting = true;
    pthread_mutex_unlock(&sm->mu);
    if (!due)
        return;
    sm->last_capture = next;
    void *snap = sm->h.snapshot(sm->h.arg, next);
    if (!snap) {
        pthread_mutex_lock(&sm->mu);
        sm->persisting = false;
        if (seq > sm->snap_done) {
            sm->snap_done = seq;
            sm->snap_done_rv = RLOG_ECANCELED;
            sm->snap_done_next = next;
        }
        pthread_cond_broadcast(&sm->cv);
        pthread_mutex_unlock(&sm->mu);
        return;
    }
    struct rl_sm_job job = {.snap = snap, .next_offset = next, .seq = seq};
    if (sm->stepped) {
        persist(sm, &job);
        return;
    }
    if (sm->persist_started) /* ended: persisting was false */
        pthread_join(sm->persist_thread, NULL);
    sm->persist_started = false;
    struct persist_arg *a = malloc(sizeof *a);
    if (a) {
        *a = (struct persist_arg){.sm = sm, .job = job};
        if (pthread_create(&sm->persist_thread, NULL, persist_thread, a) == 0) {
            sm->persist_started = true;
            return;
        }
        free(a);
    }
    persist(sm, &job); /* no thread to spare: here, holding up apply */
}

/* One step of the walk: 0 applied a record, 1 nothing committed to apply
 * now, else the error that stopped the walk. */
static int apply_one(struct rl_sm *sm, rlog_iter *it)
{
    const void *rec;
    size_t len;
    uint64_t off;
    int rv = rlog_iter_next(it, &rec, &len, &off);
    if (rv == 0) {
        rl_sm_applied(sm, off, sm->h.apply(sm->h.arg, off, rec, len));
        return 0;
    }
    return rv == RLOG_ENOTFOUND ? 1 : rv;
}

/* A stop of the walk that is not the end of committed records. true: try
 * again later (a damaged entry awaiting repair). */
static bool walk_stopped(struct rl_sm *sm, int rv)
{
    if (rv == RLOG_ECORRUPT)
        return true;
    if (rv == RLOG_ETRIMMED)
        end_apply(sm, rv, true,
                  "state machine: needs records from offset %" PRIu64 " but the log here starts later (%s) "
                  "and no snapshot here covers them: nothing more is applied until a snapshot is installed",
                  sm->applied, rlog_errmsg(NULL));
    else
        end_apply(sm, rv, false, "state machine: apply stopped at offset %" PRIu64 ": %s",
                  sm->applied, rlog_errmsg(NULL));
    return false;
}

static bool stop_asked(struct rl_sm *sm)
{
    pthread_mutex_lock(&sm->mu);
    bool stop = sm->stop;
    pthread_mutex_unlock(&sm->mu);
    return stop;
}

/* Waits while apply is stopped for lack of a snapshot until one newer
 * than what is applied is installed and restored (true), or a stop
 * (false). A poke for anything else (a snapshot request) waits on. */
static bool wait_install(struct rl_sm *sm)
{
    struct rlog *log = sm->log;
    for (;;) {
        pthread_mutex_lock(&log->mu);
        while (!sm->poke)
            pthread_cond_wait(&log->visible_cv, &log->mu);
        sm->poke = false;
        pthread_mutex_unlock(&log->mu);
        if (stop_asked(sm))
            return false;
        pthread_mutex_lock(&sm->mu);
        bool needs = sm->needs_snapshot;
        pthread_mutex_unlock(&sm->mu);
        if (!needs)
            return true;
        /* A snapshot persisting since before apply stopped: finished first,
         * so the listing never takes its .tmp and the host's persist never
         * runs beside its restore. */
        if (sm->persist_started)
            pthread_join(sm->persist_thread, NULL);
        sm->persist_started = false;
        if (restore(sm, true) != 0)
            return false; /* the directory cannot be listed: ended */
        pthread_mutex_lock(&sm->mu);
        needs = sm->needs_snapshot;
        pthread_mutex_unlock(&sm->mu);
        if (!needs)
            return true;
    }
}

void *rl_sm_apply_main(void *arg)
{
    struct rl_sm *sm = arg;
    struct rlog *log = sm->log;
    rl_sm_own_thread = sm;
    if (restore(sm, false) != 0)
        return NULL;
    for (;;) {
        rlog_iter *it = NULL;
        int rv = rlog_iter_open(log, sm->applied, UINT64_MAX, &it);
        while (rv == 0 && !stop_asked(sm)) {
            maybe_snapshot(sm);
            /* Up to 64 records between those two checks (each takes a
             * lock): a snapshot or a stop waits at most that many. */
            for (int k = 0; k < 64 && rv == 0; k++)
                rv = apply_one(sm, it);
            if (rv == 1) {
                rv = rl_iter_wait_stop(it, -1, &sm->poke);
                if (rv == RLOG_ECANCELED) {
                    pthread_mutex_lock(&log->mu);
                    sm->poke = false;
                    pthread_mutex_unlock(&log->mu);
                    rv = 0;
                }
            }
        }
        rlog_iter_close(it);
        if (stop_asked(sm))
            break;
        if (walk_stopped(sm, rv)) {
            struct timespec ms = {0, 50 * 1000000L};
            nanosleep(&ms, NULL);
            continue;
        }
        if (rv != RLOG_ETRIMMED || !wait_install(sm))
            break;
    }
    pthread_mutex_lock(&sm->mu);
    if (!sm->ended)
        sm->ended = RLOG_ECLOSED;
    snprintf(sm->ended_msg, sizeof sm->ended_msg, "log is closing");
    pthread_cond_broadcast(&sm->cv);
    pthread_mutex_unlock(&sm->mu);
    rl_sm_calls_fail(sm, RLOG_ECLOSED);
    return NULL;
}

void rl_sm_installed(struct rl_sm *sm)
{
    if (!sm->stepped) {
        rl_sm_poke(sm);
        return;
    }
    /* The next step restores it, on the world's turn like every apply. */
    pthread_mutex_lock(&sm->mu);
    sm->install_ready = true;
    pthread_mutex_unlock(&sm->mu);
}

void rl_sm_run_step(struct rl_sm *sm)
{
    pthread_mutex_lock(&sm->mu);
    bool restored = sm->restored, ended = sm->ended != 0;
    bool install = sm->install_ready && sm->needs_snapshot;
    sm->install_ready = false;
    pthread_mutex_unlock(&sm->mu);
    if (ended && install) {
        if (restore(sm, true) != 0)
            return;
        pthread_mutex_lock(&sm->mu);
        ended = sm->ended != 0;
        pthread_mutex_unlock(&sm->mu);
    }
    if (ended)
        return;
    if (!restored && restore(sm, false) != 0)
        return;
    rlog_iter *it = NULL;
    int rv = rlog_iter_open(sm->log, sm->applied, UINT64_MAX, &it);
    while (rv == 0) {
        maybe_snapshot(sm);
        rv = apply_one(sm, it);
    }
    rlog_iter_close(it);
    if (rv != 1)
        walk_stopped(sm, rv);
}
