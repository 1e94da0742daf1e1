/*
 * Subscriptions: a thread per subscription, walking an iterator and waiting
 * on the node's commit fence when it reaches the end. The history and the
 * live tail are the same loop, which is why there is no gap or duplicate at
 * the switch. Pausing parks the thread; stopping wakes it through the same
 * condition variable the fence uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/node.h"

struct rlog_sub {
    rlog *log;
    rlog_sub_cb cb;
    void *arg;
    uint64_t from;
    pthread_t thread;
    bool stop, paused, self_freed, finished;
    bool closed;           /* stopped by rlog_close: the end is RLOG_ECLOSED */
    struct rlog_sub *next; /* in log->subs, under log->mu */
};

static void unlink_sub(rlog *log, rlog_sub *sub)
{
    for (rlog_sub **pp = &log->subs; *pp; pp = &(*pp)->next)
        if (*pp == sub) {
            *pp = sub->next;
            return;
        }
}

static void *sub_main(void *p)
{
    rlog_sub *sub = p;
    rlog *log = sub->log;
    rlog_iter *it = NULL;
    int rv = rlog_iter_open(log, sub->from, UINT64_MAX, &it);
    uint64_t next = sub->from;
    while (rv == 0) {
        pthread_mutex_lock(&log->mu);
        while (sub->paused && !sub->stop)
            pthread_cond_wait(&log->visible_cv, &log->mu);
        bool stop = sub->stop;
        pthread_mutex_unlock(&log->mu);
        if (stop)
            break;
        const void *rec;
        size_t len;
        uint64_t off;
        rv = rlog_iter_next(it, &rec, &len, &off);
        if (rv == 0) {
            sub->cb(sub->arg, 0, off, rec, len);
            next = off + 1;
            continue;
        }
        if (rv == RLOG_ENOTFOUND)
            rv = rl_iter_wait_stop(it, -1, &sub->stop);
    }
    rlog_iter_close(it);
    pthread_mutex_lock(&log->mu);
    /* A thread that slept through the close wakes to the stop flag; its
     * host is still owed the end. */
    if ((rv == RLOG_ECANCELED || (rv == 0 && sub->stop)) && sub->closed)
        rv = RLOG_ECLOSED;
    pthread_mutex_unlock(&log->mu);
    if (rv != 0 && rv != RLOG_ECANCELED)
        sub->cb(sub->arg, rv, next, NULL, 0); /* the end, once */
    pthread_mutex_lock(&log->mu);
    sub->finished = true;
    bool self_freed = sub->self_freed;
    if (self_freed)
        unlink_sub(log, sub);
    pthread_mutex_unlock(&log->mu);
    if (self_freed) { /* rlog_unsubscribe was called from the callback */
        pthread_detach(pthread_self());
        free(sub);
    }
    return NULL;
}

int rlog_subscribe(rlog *log, uint64_t from, rlog_sub_cb cb, void *arg, rlog_sub **out)
{
    if (!log || !cb || !out)
        return RLOG_EINVAL;
    rlog_sub *sub = calloc(1, sizeof *sub);
    if (!sub)
        return RLOG_ENOMEM;
    *sub = (rlog_sub){.log = log, .cb = cb, .arg = arg, .from = from};
    pthread_mutex_lock(&log->mu);
    if (!log->accepting) {
        pthread_mutex_unlock(&log->mu);
        free(sub);
        return RLOG_ECLOSED;
    }
    /* *out before the thread starts: a callback may use its own handle
     * (rlog_unsubscribe from inside it) from the first record on. */
    *out = sub;
    if (pthread_create(&sub->thread, NULL, sub_main, sub) != 0) {
        pthread_mutex_unlock(&log->mu);
        *out = NULL;
        free(sub);
        return RLOG_ENOMEM;
    }
    sub->next = log->subs;
    log->subs = sub;
    pthread_mutex_unlock(&log->mu);
    return 0;
}

static void set_paused(rlog_sub *sub, bool paused)
{
    pthread_mutex_lock(&sub->log->mu);
    sub->paused = paused;
    pthread_cond_broadcast(&sub->log->visible_cv);
    pthread_mutex_unlock(&sub->log->mu);
}

void rlog_sub_pause(rlog_sub *sub)
{
    if (sub)
        set_paused(sub, true);
}

void rlog_sub_resume(rlog_sub *sub)
{
    if (sub)
        set_paused(sub, false);
}

void rlog_unsubscribe(rlog_sub *sub)
{
    if (!sub)
        return;
    rlog *log = sub->log;
    pthread_mutex_lock(&log->mu);
    sub->stop = true;
    pthread_cond_broadcast(&log->visible_cv);
    if (pthread_equal(pthread_self(), sub->thread)) {
        sub->self_freed = true; /* the thread frees it after the callback */
        pthread_mutex_unlock(&log->mu);
        return;
    }
    pthread_mutex_unlock(&log->mu);
    pthread_join(sub->thread, NULL);
    pthread_mutex_lock(&log->mu);
    unlink_sub(log, sub);
    pthread_mutex_unlock(&log->mu);
    free(sub);
}

void rl_subs_end_all(rlog *log)
{
    for (;;) {
        pthread_mutex_lock(&log->mu);
        rlog_sub *sub = log->subs;
        bool any = sub != NULL;
        while (sub && sub->self_freed)
            sub = sub->next;
        if (sub)
            sub->closed = true;
        pthread_mutex_unlock(&log->mu);
        if (sub) {
            rlog_unsubscribe(sub);
        } else if (any) {
            /* Only subscriptions ending themselves are left; they unlink
             * themselves as they finish, and must before the log is freed. */
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        } else {
            break;
        }
    }
}
