/*
 * results — what apply returned for the most recent records (a ring of
 * sm_results, by offset), and the rlog_apply_async calls waiting until
 * their records are applied here. A call learns its offset on the loop
 * thread (the append's answer) while the apply thread may already be past
 * it, so both sides meet under sm->mu and whichever comes second
 * completes it.
 */
#include <stdlib.h>

#include "sm/sm.h"

int rl_sm_results_init(struct rl_sm *sm)
{
    sm->res = calloc(sm->nres, sizeof *sm->res);
    sm->res_tag = calloc(sm->nres, sizeof *sm->res_tag);
    return sm->res && sm->res_tag ? 0 : RLOG_ENOMEM;
}

void rl_sm_results_free(struct rl_sm *sm)
{
    free(sm->res);
    free(sm->res_tag);
    sm->res = NULL;
    sm->res_tag = NULL;
}

/* Fills c's results from the ring (under mu): status 0, or RLOG_ENOTFOUND
 * if some were dropped already. */
static void take_results(struct rl_sm *sm, struct rl_sm_call *c)
{
    c->status = 0;
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t off = c->first + i;
        size_t slot = (size_t)(off % sm->nres);
        if (sm->res_tag[slot] != off + 1) {
            c->status = RLOG_ENOTFOUND;
            return;
        }
        c->results[i] = sm->res[slot];
    }
}

static void complete(struct rl_sm_call *c)
{
    c->cb(c->arg, c->status, c->first, c->status == 0 ? c->results : NULL,
          c->status == 0 ? c->n : 0);
    free(c);
}

static void complete_list(struct rl_sm_call *done)
{
    while (done) {
        struct rl_sm_call *c = done;
        done = c->next;
        complete(c);
    }
}

/* Moves the calls whose records are all applied to *done (under mu). */
static void collect_done(struct rl_sm *sm, struct rl_sm_call **done)
{
    uint64_t min_end = UINT64_MAX;
    struct rl_sm_call **pp = &sm->calls;
    while (*pp) {
        struct rl_sm_call *c = *pp;
        uint64_t end = c->first + c->n;
        if (end <= sm->applied) {
            *pp = c->next;
            take_results(sm, c);
            c->next = *done;
            *done = c;
        } else {
            if (end < min_end)
                min_end = end;
            pp = &c->next;
        }
    }
    sm->calls_min_end = min_end;
}

void rl_sm_applied(struct rl_sm *sm, uint64_t offset, int64_t result)
{
    struct rl_sm_call *done = NULL;
    pthread_mutex_lock(&sm->mu);
    size_t slot = (size_t)(offset % sm->nres);
    sm->res[slot] = result;
    sm->res_tag[slot] = offset + 1;
    sm->applied = offset + 1;
    if (sm->calls && sm->applied >= sm->calls_min_end)
        collect_done(sm, &done);
    if (sm->waiting && sm->applied >= sm->wake_applied) {
        sm->wake_applied = UINT64_MAX; /* the ones still short of theirs say so again */
        pthread_cond_broadcast(&sm->cv);
    }
    pthread_mutex_unlock(&sm->mu);
    complete_list(done);
}

void rl_sm_call_add(struct rl_sm *sm, struct rl_sm_call *c)
{
    pthread_mutex_lock(&sm->mu);
    bool now = true;
    if (c->first + c->n <= sm->applied)
        take_results(sm, c);
    else if (sm->ended)
        c->status = sm->ended;
    else
        now = false;
    if (!now) {
        c->next = sm->calls;
        sm->calls = c;
        if (c->first + c->n < sm->calls_min_end)
            sm->calls_min_end = c->first + c->n;
    }
    pthread_mutex_unlock(&sm->mu);
    if (now)
        complete(c);
}

void rl_sm_calls_fail(struct rl_sm *sm, int status)
{
    pthread_mutex_lock(&sm->mu);
    struct rl_sm_call *list = sm->calls;
    sm->calls = NULL;
    sm->calls_min_end = UINT64_MAX;
    for (struct rl_sm_call *c = list; c; c = c->next)
        c->status = status;
    pthread_mutex_unlock(&sm->mu);
    complete_list(list);
}
